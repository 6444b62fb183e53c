"""open_download: downloads of open datasets per dataset, day and format (数据开放)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 16:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "open_download",
        sa.Column("resource_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("resource_id", "day", "format", name=op.f("pk_open_download")),
    )


def downgrade() -> None:
    op.drop_table("open_download")
