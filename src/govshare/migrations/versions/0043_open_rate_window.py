"""open data: rate-limit windows in the hub database, so the anonymous and sign-in limits
hold across hub processes on several machines

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-05 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0043"
down_revision: str | None = "0042"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "open_rate_window",
        sa.Column("bucket", sa.String(length=20), nullable=False),
        sa.Column("who", sa.String(length=100), nullable=False),
        sa.Column("window_no", sa.BigInteger(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "who", "window_no", name=op.f("pk_open_rate_window")),
    )
    with op.batch_alter_table("open_rate_window", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_open_rate_window_ends_at"), ["ends_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("open_rate_window", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_open_rate_window_ends_at"))
    op.drop_table("open_rate_window")
