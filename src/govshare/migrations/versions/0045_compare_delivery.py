"""comparison jobs: a job may deliver its cases to the owning department's own database
through an ordinary subscription (a copy of its cases in the shared-store database)

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-06 00:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0045"
down_revision: str | None = "0044"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "compare_job",
        sa.Column("deliver", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("compare_job", schema=None) as batch_op:
        batch_op.drop_column("deliver")
