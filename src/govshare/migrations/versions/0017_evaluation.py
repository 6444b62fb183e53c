"""evaluation: schemes, monthly runs, department results and counted facts (考核评估)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "evaluation_scheme",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("weights", JSON, nullable=False),
        sa.Column("thresholds", JSON, nullable=False),
        sa.Column("dispute_penalty", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_scheme")),
        sa.UniqueConstraint("version", name=op.f("uq_evaluation_scheme_version")),
    )
    op.create_table(
        "evaluation_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("scheme_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("trigger", sa.String(length=12), nullable=False),
        sa.Column("platform", JSON, nullable=False),
        sa.Column("facts", sa.BigInteger(), nullable=False),
        sa.Column("computations", sa.Integer(), nullable=False),
        sa.Column("computed_by", sa.String(length=50), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=50), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["scheme_id"],
            ["evaluation_scheme.id"],
            name=op.f("fk_evaluation_run_scheme_id_evaluation_scheme"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_run")),
        sa.UniqueConstraint("month", name=op.f("uq_evaluation_run_month")),
    )
    op.create_table(
        "evaluation_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("department_name", sa.String(length=100), nullable=False),
        sa.Column("indicators", JSON, nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("grade", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_evaluation_result_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["evaluation_run.id"],
            name=op.f("fk_evaluation_result_run_id_evaluation_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_result")),
    )
    op.create_index(
        "ix_evaluation_result_run_department",
        "evaluation_result",
        ["run_id", "department_id"],
        unique=True,
    )
    op.create_index("ix_evaluation_result_department", "evaluation_result", ["department_id"])
    op.create_table(
        "evaluation_fact",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("indicator", sa.String(length=24), nullable=False),
        sa.Column("department_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("record_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hit", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["evaluation_run.id"],
            name=op.f("fk_evaluation_fact_run_id_evaluation_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "indicator", "department_id", "record_id", name=op.f("pk_evaluation_fact")
        ),
    )


def downgrade() -> None:
    op.drop_table("evaluation_fact")
    op.drop_index("ix_evaluation_result_department", table_name="evaluation_result")
    op.drop_index("ix_evaluation_result_run_department", table_name="evaluation_result")
    op.drop_table("evaluation_result")
    op.drop_table("evaluation_run")
    op.drop_table("evaluation_scheme")
