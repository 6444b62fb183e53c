"""evaluation (考核评估): year-to-date figures (年度累计) stored with each month's run and
each department's result, so a published month keeps them as it keeps its own numbers

Revision ID: 0029
Revises: 0027
Create Date: 2026-12-04 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0029"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Nullable: months computed before this revision have no year-to-date figures
    # (shown as "—") until they are computed again.
    with op.batch_alter_table("evaluation_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("year_to_date", JSON, nullable=True))
    with op.batch_alter_table("evaluation_result", schema=None) as batch_op:
        batch_op.add_column(sa.Column("year_to_date", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluation_result", schema=None) as batch_op:
        batch_op.drop_column("year_to_date")
    with op.batch_alter_table("evaluation_run", schema=None) as batch_op:
        batch_op.drop_column("year_to_date")
