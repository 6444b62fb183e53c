"""base databases: definitions, sources, conflicts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 05:34:13
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "base_database",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("key_item", sa.String(length=60), nullable=False),
        sa.Column("items", JSON, nullable=False),
        sa.Column("keys", JSON, nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("assembled_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resource.id"], name=op.f("fk_base_database_resource_id_resource")
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["shared_store.id"], name=op.f("fk_base_database_store_id_shared_store")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_base_database")),
        sa.UniqueConstraint("resource_id", name=op.f("uq_base_database_resource_id")),
        sa.UniqueConstraint("table_name", name=op.f("uq_base_database_table_name")),
    )
    op.create_table(
        "base_conflict",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("base_id", sa.Integer(), nullable=False),
        sa.Column("record_key", sa.String(length=200), nullable=False),
        sa.Column("item", sa.String(length=60), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("evidence_value", sa.Text(), nullable=True),
        sa.Column("evidence_store_id", sa.Integer(), nullable=False),
        sa.Column("evidence_seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "accepted",
                "confirmed",
                "resolved",
                name="conflictstatus",
                native_enum=False,
                length=10,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("handled_by", sa.String(length=50), nullable=True),
        sa.Column("objection_id", sa.Integer(), nullable=True),
        sa.Column("opened_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["base_id"], ["base_database.id"], name=op.f("fk_base_conflict_base_id_base_database")
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_base_conflict_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["evidence_store_id"],
            ["shared_store.id"],
            name=op.f("fk_base_conflict_evidence_store_id_shared_store"),
        ),
        sa.ForeignKeyConstraint(
            ["objection_id"],
            ["sharing_objection.id"],
            name=op.f("fk_base_conflict_objection_id_sharing_objection"),
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["shared_store.id"], name=op.f("fk_base_conflict_store_id_shared_store")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_base_conflict")),
    )
    with op.batch_alter_table("base_conflict", schema=None) as batch_op:
        batch_op.create_index(
            "ix_base_conflict_department_status", ["department_id", "status"], unique=False
        )
        batch_op.create_index(
            "ix_base_conflict_lookup", ["base_id", "record_key", "item"], unique=False
        )

    op.create_table(
        "base_source",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("base_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("merged_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["base_id"], ["base_database.id"], name=op.f("fk_base_source_base_id_base_database")
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["shared_store.id"], name=op.f("fk_base_source_store_id_shared_store")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_base_source")),
        sa.UniqueConstraint("base_id", "store_id", name=op.f("uq_base_source_base_id")),
    )
    with op.batch_alter_table("shared_store", schema=None) as batch_op:
        batch_op.alter_column("source_task_id", existing_type=sa.INTEGER(), nullable=True)

    with op.batch_alter_table("sharing_objection", schema=None) as batch_op:
        batch_op.alter_column("grant_id", existing_type=sa.INTEGER(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("sharing_objection", schema=None) as batch_op:
        batch_op.alter_column("grant_id", existing_type=sa.INTEGER(), nullable=False)

    with op.batch_alter_table("shared_store", schema=None) as batch_op:
        batch_op.alter_column("source_task_id", existing_type=sa.INTEGER(), nullable=False)

    op.drop_table("base_source")
    with op.batch_alter_table("base_conflict", schema=None) as batch_op:
        batch_op.drop_index("ix_base_conflict_lookup")
        batch_op.drop_index("ix_base_conflict_department_status")

    op.drop_table("base_conflict")
    op.drop_table("base_database")
