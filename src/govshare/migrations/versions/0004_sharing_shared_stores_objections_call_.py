"""sharing: shared stores, objections, call statistics, client limits

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 07:58:17.362813
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "shared_store",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("source_task_id", sa.Integer(), nullable=False),
        sa.Column("key_item", sa.String(length=60), nullable=False),
        sa.Column(
            "mapping",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "verify_rules",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("applied_seq", sa.BigInteger(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resource.id"], name=op.f("fk_shared_store_resource_id_resource")
        ),
        sa.ForeignKeyConstraint(
            ["source_task_id"],
            ["exchange_task.id"],
            name=op.f("fk_shared_store_source_task_id_exchange_task"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shared_store")),
        sa.UniqueConstraint("resource_id", name=op.f("uq_shared_store_resource_id")),
        sa.UniqueConstraint("table_name", name=op.f("uq_shared_store_table_name")),
    )
    op.create_table(
        "sharing_call_stat",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("keys", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_client.id"], name=op.f("fk_sharing_call_stat_client_id_api_client")
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["sharing_grant.id"],
            name=op.f("fk_sharing_call_stat_grant_id_sharing_grant"),
        ),
        sa.PrimaryKeyConstraint("day", "client_id", "grant_id", name=op.f("pk_sharing_call_stat")),
    )
    op.create_table(
        "sharing_objection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("consumer_department_id", sa.Integer(), nullable=False),
        sa.Column("provider_department_id", sa.Integer(), nullable=False),
        sa.Column("record_key", sa.String(length=200), nullable=False),
        sa.Column(
            "claimed",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "accepted",
                "rejected",
                "corrected",
                name="objectionstatus",
                native_enum=False,
                length=12,
            ),
            nullable=False,
        ),
        sa.Column("raised_by", sa.String(length=50), nullable=False),
        sa.Column("raised_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("raised_on", sa.Date(), nullable=False),
        sa.Column("answer_due", sa.Date(), nullable=False),
        sa.Column("answered_by", sa.String(length=50), nullable=True),
        sa.Column("answered_on", sa.Date(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column(
            "correction",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("corrected_seq", sa.BigInteger(), nullable=True),
        sa.Column("archived_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["consumer_department_id"],
            ["department.id"],
            name=op.f("fk_sharing_objection_consumer_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["sharing_grant.id"],
            name=op.f("fk_sharing_objection_grant_id_sharing_grant"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_department_id"],
            ["department.id"],
            name=op.f("fk_sharing_objection_provider_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resource.id"], name=op.f("fk_sharing_objection_resource_id_resource")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_objection")),
    )
    with op.batch_alter_table("sharing_objection", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sharing_objection_consumer", ["consumer_department_id"], unique=False
        )
        batch_op.create_index(
            "ix_sharing_objection_provider_status",
            ["provider_department_id", "status"],
            unique=False,
        )

    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_per_second", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("daily_quota", sa.BigInteger(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.drop_column("daily_quota")
        batch_op.drop_column("rate_per_second")

    with op.batch_alter_table("sharing_objection", schema=None) as batch_op:
        batch_op.drop_index("ix_sharing_objection_provider_status")
        batch_op.drop_index("ix_sharing_objection_consumer")

    op.drop_table("sharing_objection")
    op.drop_table("sharing_call_stat")
    op.drop_table("shared_store")
