"""open data: a key's calls in its current minute, kept with its day's usage, so the
per-minute limit holds across the hub's processes

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-05 02:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0039"
down_revision: str | None = "0038"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("open_key_usage", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("minute", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("minute_calls", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("open_key_usage", schema=None) as batch_op:
        batch_op.drop_column("minute_calls")
        batch_op.drop_column("minute")
