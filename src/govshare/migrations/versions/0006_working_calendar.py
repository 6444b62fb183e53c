"""sharing: holiday schedules entered in the console; provisional (预计) deadlines

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "working_calendar_year",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holidays", JSON, nullable=False),
        sa.Column("workdays", JSON, nullable=False),
        sa.Column("entered_by", sa.String(length=50), nullable=False),
        sa.Column("entered_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_working_calendar_year")),
    )
    false = sa.false()
    with op.batch_alter_table("sharing_application") as batch:
        batch.add_column(
            sa.Column("answer_due_provisional", sa.Boolean(), nullable=False, server_default=false)
        )
        batch.add_column(
            sa.Column("provide_due_provisional", sa.Boolean(), nullable=False, server_default=false)
        )
    with op.batch_alter_table("sharing_objection") as batch:
        batch.add_column(
            sa.Column("answer_due_provisional", sa.Boolean(), nullable=False, server_default=false)
        )


def downgrade() -> None:
    with op.batch_alter_table("sharing_objection") as batch:
        batch.drop_column("answer_due_provisional")
    with op.batch_alter_table("sharing_application") as batch:
        batch.drop_column("provide_due_provisional")
        batch.drop_column("answer_due_provisional")
    op.drop_table("working_calendar_year")
