"""catalog: an information item can be withheld from the open-data portal (不予开放)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-04 10:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("information_item", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("open_withheld", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("information_item", schema=None) as batch_op:
        batch_op.drop_column("open_withheld")
