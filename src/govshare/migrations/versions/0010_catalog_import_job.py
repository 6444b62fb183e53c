"""catalog: import jobs (导入任务)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "catalog_import_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("entries_total", sa.Integer(), nullable=False),
        sa.Column("entries_done", sa.Integer(), nullable=False),
        sa.Column("resource_ids", JSON, nullable=False),
        sa.Column("error", JSON, nullable=True),
        sa.Column("runner", sa.String(length=120), nullable=True),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_catalog_import_job_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_import_job")),
    )
    op.create_index(
        "ix_catalog_import_job_department_digest",
        "catalog_import_job",
        ["department_id", "digest"],
    )


def downgrade() -> None:
    op.drop_index("ix_catalog_import_job_department_digest", table_name="catalog_import_job")
    op.drop_table("catalog_import_job")
