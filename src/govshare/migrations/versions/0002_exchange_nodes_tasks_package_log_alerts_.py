"""exchange: nodes, tasks, package log, alerts, reconciliation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 05:19:18.916690
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchange_domain",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_domain")),
        sa.UniqueConstraint("name", name=op.f("uq_exchange_domain_name")),
    )
    op.create_table(
        "exchange_domain_member",
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_exchange_domain_member_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["exchange_domain.id"],
            name=op.f("fk_exchange_domain_member_domain_id_exchange_domain"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "domain_id", "department_id", name=op.f("pk_exchange_domain_member")
        ),
    )
    op.create_table(
        "exchange_node",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "enrolling", "active", "disabled", name="nodestatus", native_enum=False, length=12
            ),
            nullable=False,
        ),
        sa.Column("enrollment_token_hash", sa.String(length=64), nullable=True),
        sa.Column("sig_alg", sa.String(length=10), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("cipher", sa.String(length=10), nullable=False),
        sa.Column("cipher_key_sealed", sa.Text(), nullable=True),
        sa.Column("last_seen_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column(
            "report",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "schemas",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_exchange_node_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_node")),
        sa.UniqueConstraint("name", name=op.f("uq_exchange_node_name")),
    )
    with op.batch_alter_table("exchange_node", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_node_department_id"), ["department_id"], unique=False
        )

    op.create_table(
        "exchange_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("provider", "subscriber", name="taskkind", native_enum=False, length=12),
            nullable=False,
        ),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("source_task_id", sa.Integer(), nullable=True),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum("draft", "running", "stopped", name="taskstate", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "acked_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["exchange_node.id"], name=op.f("fk_exchange_task_node_id_exchange_node")
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resource.id"], name=op.f("fk_exchange_task_resource_id_resource")
        ),
        sa.ForeignKeyConstraint(
            ["source_task_id"],
            ["exchange_task.id"],
            name=op.f("fk_exchange_task_source_task_id_exchange_task"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_task")),
    )
    with op.batch_alter_table("exchange_task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exchange_task_node_id"), ["node_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_exchange_task_resource_id"), ["resource_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exchange_task_source_task_id"), ["source_task_id"], unique=False
        )

    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "node_silent",
                "send_failed",
                "receive_failed",
                "database_error",
                "package_rejected",
                "reconciliation_mismatch",
                "lag",
                name="alertkind",
                native_enum=False,
                length=30,
            ),
            nullable=False,
        ),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["exchange_node.id"], name=op.f("fk_alert_node_id_exchange_node")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["exchange_task.id"], name=op.f("fk_alert_task_id_exchange_task")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_node_id"), ["node_id"], unique=False)
        batch_op.create_index("ix_alert_open", ["resolved_at", "kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_task_id"), ["task_id"], unique=False)

    op.create_table(
        "exchange_package",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("bus_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["exchange_task.id"],
            name=op.f("fk_exchange_package_task_id_exchange_task"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_package")),
        sa.UniqueConstraint("task_id", "seq", name="uq_exchange_package_task_seq"),
    )
    with op.batch_alter_table("exchange_package", schema=None) as batch_op:
        batch_op.create_index("ix_exchange_package_received", ["received_at"], unique=False)

    op.create_table(
        "node_command",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("command", sa.String(length=30), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column(
            "args",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["exchange_node.id"], name=op.f("fk_node_command_node_id_exchange_node")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["exchange_task.id"], name=op.f("fk_node_command_task_id_exchange_task")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_command")),
    )
    with op.batch_alter_table("node_command", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_node_command_node_id"), ["node_id"], unique=False)

    op.create_table(
        "reconciliation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_task_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_task_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("requested_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "sent",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "received",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "source",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "target",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("completed_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["provider_task_id"],
            ["exchange_task.id"],
            name=op.f("fk_reconciliation_provider_task_id_exchange_task"),
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_task_id"],
            ["exchange_task.id"],
            name=op.f("fk_reconciliation_subscriber_task_id_exchange_task"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation")),
    )
    with op.batch_alter_table("reconciliation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_provider_task_id"), ["provider_task_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_reconciliation_subscriber_task_id"), ["subscriber_task_id"], unique=False
        )

    op.create_table(
        "delivery_ack",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column(
            "package_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("applied_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["exchange_package.id"],
            name=op.f("fk_delivery_ack_package_id_exchange_package"),
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["exchange_task.id"], name=op.f("fk_delivery_ack_task_id_exchange_task")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_ack")),
        sa.UniqueConstraint("task_id", "seq", name="uq_delivery_ack_task_seq"),
    )


def downgrade() -> None:
    op.drop_table("delivery_ack")
    with op.batch_alter_table("reconciliation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_subscriber_task_id"))
        batch_op.drop_index(batch_op.f("ix_reconciliation_provider_task_id"))

    op.drop_table("reconciliation")
    with op.batch_alter_table("node_command", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_node_command_node_id"))

    op.drop_table("node_command")
    with op.batch_alter_table("exchange_package", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_package_received")

    op.drop_table("exchange_package")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_task_id"))
        batch_op.drop_index("ix_alert_open")
        batch_op.drop_index(batch_op.f("ix_alert_node_id"))

    op.drop_table("alert")
    with op.batch_alter_table("exchange_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_task_source_task_id"))
        batch_op.drop_index(batch_op.f("ix_exchange_task_resource_id"))
        batch_op.drop_index(batch_op.f("ix_exchange_task_node_id"))

    op.drop_table("exchange_task")
    with op.batch_alter_table("exchange_node", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_node_department_id"))

    op.drop_table("exchange_node")
    op.drop_table("exchange_domain_member")
    op.drop_table("exchange_domain")
