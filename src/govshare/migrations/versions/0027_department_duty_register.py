"""department duty register (部门职责 / 权责清单): duties, their catalog entries, and the
changes of duties or systems that start the catalog's update deadline

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-04 09:25:15.001106
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import govshare.db

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "department_duty",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("declared_on", sa.Date(), nullable=False),
        sa.Column("withdrawn_on", sa.Date(), nullable=True),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_department_duty_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_department_duty")),
        sa.UniqueConstraint("department_id", "code", name="uq_department_duty_dept_code"),
    )
    with op.batch_alter_table("department_duty", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_department_duty_department_id"), ["department_id"], unique=False
        )

    op.create_table(
        "catalog_change_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "duty",
                "system",
                name="changekind",
                native_enum=False,
                create_constraint=False,
                length=10,
            ),
            nullable=False,
        ),
        sa.Column("duty_id", sa.Integer(), nullable=True),
        sa.Column("system_id", sa.Integer(), nullable=True),
        sa.Column("changed_on", sa.Date(), nullable=False),
        sa.Column("catalog_due", sa.Date(), nullable=False),
        sa.Column(
            "catalog_due_provisional", sa.Boolean(), server_default=sa.false(), nullable=False
        ),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_catalog_change_event_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["duty_id"],
            ["department_duty.id"],
            name=op.f("fk_catalog_change_event_duty_id_department_duty"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["information_system.id"],
            name=op.f("fk_catalog_change_event_system_id_information_system"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_change_event")),
    )
    with op.batch_alter_table("catalog_change_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_catalog_change_event_catalog_due"), ["catalog_due"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_catalog_change_event_department_id"), ["department_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_catalog_change_event_duty_id"), ["duty_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_catalog_change_event_system_id"), ["system_id"], unique=False
        )

    op.create_table(
        "duty_resource",
        sa.Column("duty_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("linked_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["duty_id"],
            ["department_duty.id"],
            name=op.f("fk_duty_resource_duty_id_department_duty"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resource.id"],
            name=op.f("fk_duty_resource_resource_id_resource"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("duty_id", "resource_id", name=op.f("pk_duty_resource")),
    )
    with op.batch_alter_table("duty_resource", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_duty_resource_resource_id"), ["resource_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("duty_resource", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_duty_resource_resource_id"))

    op.drop_table("duty_resource")
    with op.batch_alter_table("catalog_change_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_change_event_system_id"))
        batch_op.drop_index(batch_op.f("ix_catalog_change_event_duty_id"))
        batch_op.drop_index(batch_op.f("ix_catalog_change_event_department_id"))
        batch_op.drop_index(batch_op.f("ix_catalog_change_event_catalog_due"))

    op.drop_table("catalog_change_event")
    with op.batch_alter_table("department_duty", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_department_duty_department_id"))

    op.drop_table("department_duty")
