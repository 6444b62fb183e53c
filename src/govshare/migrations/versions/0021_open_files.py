"""open_file: files departments upload for their open entries (开放文件)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import govshare.db

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "open_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by", sa.String(length=50), nullable=False),
        sa.Column("uploaded_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resource.id"], name=op.f("fk_open_file_resource_id_resource")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open_file")),
    )
    with op.batch_alter_table("open_file", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_open_file_resource_id"), ["resource_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_open_file_sha256"), ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_table("open_file")
