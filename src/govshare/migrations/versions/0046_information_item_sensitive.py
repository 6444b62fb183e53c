"""catalog: an information item may be marked 敏感 (personal or otherwise sensitive
information): never opened to the public, masked by default when a grant is approved

Revision ID: 0046
Revises: 0045
Create Date: 2026-12-06 06:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0046"
down_revision: str | None = "0045"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "information_item",
        sa.Column("sensitive", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("information_item", schema=None) as batch_op:
        batch_op.drop_column("sensitive")
