"""catalog: how the open-data portal masks an information item's values (开放脱敏)

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-04 13:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("information_item", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("open_masking", sa.String(length=20), server_default="none", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("information_item", schema=None) as batch_op:
        batch_op.drop_column("open_masking")
