"""collab: process definitions, cases, tasks, steps (业务协同)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 04:32:31.544420
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collab_definition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("bpmn_xml", sa.Text(), nullable=False),
        sa.Column(
            "forms",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "assignments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by", sa.String(length=50), nullable=False),
        sa.Column("uploaded_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collab_definition")),
        sa.UniqueConstraint("process_key", "version", name="uq_collab_definition_key_version"),
    )
    op.create_table(
        "collab_case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=24), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "closed",
                name="casestatus",
                native_enum=False,
                create_constraint=False,
                length=10,
            ),
            nullable=False,
        ),
        sa.Column("applicant_name", sa.String(length=50), nullable=False),
        sa.Column("applicant_key", sa.String(length=64), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("accepted_by", sa.String(length=50), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column(
            "flags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["collab_definition.id"],
            name=op.f("fk_collab_case_definition_id_collab_definition"),
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_collab_case_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collab_case")),
        sa.UniqueConstraint("number", name=op.f("uq_collab_case_number")),
    )
    with op.batch_alter_table("collab_case", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_collab_case_definition_id"), ["definition_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_collab_case_department_id"), ["department_id"], unique=False
        )

    op.create_table(
        "collab_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["collab_case.id"], name=op.f("fk_collab_step_case_id_collab_case")
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_collab_step_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collab_step")),
    )
    with op.batch_alter_table("collab_step", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_collab_step_case_id"), ["case_id"], unique=False)

    op.create_table(
        "collab_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("engine_id", sa.String(length=36), nullable=False),
        sa.Column("element_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "ready",
                "claimed",
                "done",
                name="taskstatus",
                native_enum=False,
                create_constraint=False,
                length=10,
            ),
            nullable=False,
        ),
        sa.Column("claimed_by", sa.String(length=50), nullable=True),
        sa.Column("completed_by", sa.String(length=50), nullable=True),
        sa.Column("decision", sa.String(length=10), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("working_days", sa.Integer(), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("due_provisional", sa.Boolean(), nullable=False),
        sa.Column("overdue_alerted", sa.Boolean(), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["collab_case.id"], name=op.f("fk_collab_task_case_id_collab_case")
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_collab_task_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collab_task")),
        sa.UniqueConstraint("case_id", "engine_id", name="uq_collab_task_case_engine"),
    )
    with op.batch_alter_table("collab_task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_collab_task_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_collab_task_department_status", ["department_id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("collab_task", schema=None) as batch_op:
        batch_op.drop_index("ix_collab_task_department_status")
        batch_op.drop_index(batch_op.f("ix_collab_task_case_id"))

    op.drop_table("collab_task")
    with op.batch_alter_table("collab_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collab_step_case_id"))

    op.drop_table("collab_step")
    with op.batch_alter_table("collab_case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collab_case_department_id"))
        batch_op.drop_index(batch_op.f("ix_collab_case_definition_id"))

    op.drop_table("collab_case")
    op.drop_table("collab_definition")
