"""quality: rules per item, scans and their failing values (数据质量)

Revision ID: 0012
Revises: 0011 (0011, the base databases, is written alongside; the chain is fixed when
both are merged)
Create Date: 2026-12-03 05:39:43
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import govshare.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quality_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("item_code", sa.String(length=60), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("data_type", sa.String(length=2), nullable=False),
        sa.Column("max_length", sa.Integer(), nullable=True),
        sa.Column(
            "format",
            sa.String(length=16),
            nullable=False,
        ),
        sa.Column("code_table", sa.String(length=40), nullable=True),
        sa.Column("date_min", sa.Date(), nullable=True),
        sa.Column("date_max", sa.Date(), nullable=True),
        sa.Column("updated_by", sa.String(length=50), nullable=False),
        sa.Column("updated_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resource.id"],
            name=op.f("fk_quality_rule_resource_id_resource"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_rule")),
        sa.UniqueConstraint("resource_id", "item_code", name="uq_quality_rule_resource_item"),
    )
    op.create_table(
        "quality_scan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=12), nullable=False),
        sa.Column(
            "status",
            sa.String(length=8),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("started_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("applied_seq", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rows_scanned", sa.BigInteger(), nullable=False),
        sa.Column("completeness_checked", sa.BigInteger(), nullable=False),
        sa.Column("completeness_failed", sa.BigInteger(), nullable=False),
        sa.Column("completeness_score", sa.Float(), nullable=True),
        sa.Column("validity_checked", sa.BigInteger(), nullable=False),
        sa.Column("validity_failed", sa.BigInteger(), nullable=False),
        sa.Column("validity_score", sa.Float(), nullable=True),
        sa.Column("uniqueness_checked", sa.BigInteger(), nullable=False),
        sa.Column("uniqueness_failed", sa.BigInteger(), nullable=False),
        sa.Column("uniqueness_score", sa.Float(), nullable=True),
        sa.Column("update_cycle", sa.String(length=20), nullable=False),
        sa.Column("silent_days", sa.Float(), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=True),
        sa.Column("timeliness_score", sa.Float(), nullable=True),
        sa.Column("consistency_checked", sa.BigInteger(), nullable=False),
        sa.Column("consistency_failed", sa.BigInteger(), nullable=False),
        sa.Column("consistency_score", sa.Float(), nullable=True),
        sa.Column("overall_score", sa.Float(), nullable=True),
        sa.Column("problems_kept", sa.Integer(), nullable=False),
        sa.Column("problems_dropped", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_quality_scan_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resource.id"], name=op.f("fk_quality_scan_resource_id_resource")
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["shared_store.id"],
            name=op.f("fk_quality_scan_store_id_shared_store"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_scan")),
    )
    op.create_index(
        "ix_quality_scan_department_started", "quality_scan", ["department_id", "started_at"]
    )
    op.create_index(
        "ix_quality_scan_resource_started", "quality_scan", ["resource_id", "started_at"]
    )
    op.create_index("ix_quality_scan_store_started", "quality_scan", ["store_id", "started_at"])

    op.create_table(
        "quality_problem",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column(
            "dimension",
            sa.String(length=12),
            nullable=False,
        ),
        sa.Column("row_key", sa.String(length=200), nullable=False),
        sa.Column("item_code", sa.String(length=60), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("rule", sa.String(length=20), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["quality_scan.id"],
            name=op.f("fk_quality_problem_scan_id_quality_scan"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_problem")),
    )
    op.create_index("ix_quality_problem_scan_id", "quality_problem", ["scan_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_quality_problem_scan_id", table_name="quality_problem")

    op.drop_table("quality_problem")
    op.drop_index("ix_quality_scan_store_started", table_name="quality_scan")
    op.drop_index("ix_quality_scan_resource_started", table_name="quality_scan")
    op.drop_index("ix_quality_scan_department_started", table_name="quality_scan")

    op.drop_table("quality_scan")
    op.drop_table("quality_rule")
