"""compare_job, compare_run, compare_case: comparison jobs (比对), their runs and cases (线索)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 11:56:45.253179
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "compare_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("template", sa.String(length=40), nullable=True),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("schedule", sa.String(length=100), nullable=True),
        sa.Column("next_run_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_compare_job_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compare_job")),
    )
    with op.batch_alter_table("compare_job", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_compare_job_department_id"), ["department_id"], unique=False
        )

    op.create_table(
        "compare_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                name="runstatus",
                native_enum=False,
                length=12,
            ),
            nullable=False,
        ),
        sa.Column("trigger", sa.String(length=12), nullable=False),
        sa.Column("requested_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=80), nullable=False),
        sa.Column("lease_until", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("phase", sa.String(length=100), nullable=False),
        sa.Column("inputs", JSON, nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("new_cases", sa.Integer(), nullable=False),
        sa.Column("gone_cases", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["compare_job.id"], name=op.f("fk_compare_run_job_id_compare_job")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compare_run")),
    )
    with op.batch_alter_table("compare_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compare_run_job_id"), ["job_id"], unique=False)
        batch_op.create_index("ix_compare_run_status", ["status"], unique=False)

    op.create_table(
        "compare_case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("values", JSON, nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "checking",
                "confirmed",
                "refuted",
                name="casestate",
                native_enum=False,
                length=12,
            ),
            nullable=False,
        ),
        sa.Column(
            "presence",
            sa.Enum("new", "still", "gone", name="presence", native_enum=False, length=8),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("history", JSON, nullable=False),
        sa.Column("first_run_id", sa.Integer(), nullable=False),
        sa.Column("last_run_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["first_run_id"],
            ["compare_run.id"],
            name=op.f("fk_compare_case_first_run_id_compare_run"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["compare_job.id"], name=op.f("fk_compare_case_job_id_compare_job")
        ),
        sa.ForeignKeyConstraint(
            ["last_run_id"],
            ["compare_run.id"],
            name=op.f("fk_compare_case_last_run_id_compare_run"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compare_case")),
    )
    with op.batch_alter_table("compare_case", schema=None) as batch_op:
        batch_op.create_index("ix_compare_case_job_state", ["job_id", "state", "id"], unique=False)
        batch_op.create_index("uq_compare_case_job_key", ["job_id", "key_hash"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("compare_case", schema=None) as batch_op:
        batch_op.drop_index("uq_compare_case_job_key")
        batch_op.drop_index("ix_compare_case_job_state")

    op.drop_table("compare_case")
    with op.batch_alter_table("compare_run", schema=None) as batch_op:
        batch_op.drop_index("ix_compare_run_status")
        batch_op.drop_index(batch_op.f("ix_compare_run_job_id"))

    op.drop_table("compare_run")
    with op.batch_alter_table("compare_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compare_job_department_id"))

    op.drop_table("compare_job")
