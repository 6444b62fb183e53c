"""exchange: the package log is pruned (交换日志清理) — a package whose bytes were
removed keeps its row, marked with when

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-04 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import govshare.db

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_package", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pruned_at", govshare.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("exchange_package", schema=None) as batch_op:
        batch_op.drop_column("pruned_at")
