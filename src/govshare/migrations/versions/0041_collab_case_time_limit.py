"""collaboration: an approval item's legal time limit for a whole case (办结时限) on its
process definition, and each case's due day (办结期限) with the mark of its overdue alert

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-05 15:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0041"
down_revision: str | None = "0040"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collab_definition", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_limit_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("collab_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("due_provisional", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("overdue_alerted", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("collab_case", schema=None) as batch_op:
        batch_op.drop_column("overdue_alerted")
        batch_op.drop_column("due_provisional")
        batch_op.drop_column("due_on")
    with op.batch_alter_table("collab_definition", schema=None) as batch_op:
        batch_op.drop_column("time_limit_days")
