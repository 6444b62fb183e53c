"""sharing: applications, grants, usage reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 06:03:40.952757
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sharing_application",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("provider_department_id", sa.Integer(), nullable=False),
        sa.Column("consumer_department_id", sa.Integer(), nullable=False),
        sa.Column("applicant", sa.String(length=50), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column(
            "items",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("row_scope", sa.Text(), nullable=False),
        sa.Column(
            "row_filter",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "mode",
            sa.Enum("query", "subscription", "verification", name="sharingmode", native_enum=False),
            nullable=False,
        ),
        sa.Column("users", sa.Text(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("unconditional", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "submitted",
                "approved",
                "refused",
                "disputed",
                "refusal_upheld",
                "provided",
                name="applicationstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("submitted_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("submitted_on", sa.Date(), nullable=False),
        sa.Column("answer_due", sa.Date(), nullable=True),
        sa.Column("answered_on", sa.Date(), nullable=True),
        sa.Column("answered_by", sa.String(length=50), nullable=True),
        sa.Column("answer_reason", sa.Text(), nullable=False),
        sa.Column("provide_due", sa.Date(), nullable=True),
        sa.Column("provided_on", sa.Date(), nullable=True),
        sa.Column("dispute_reason", sa.Text(), nullable=False),
        sa.Column("disputed_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "dispute_outcome",
            sa.Enum("upheld", "overturned", name="disputeoutcome", native_enum=False, length=12),
            nullable=True,
        ),
        sa.Column("dispute_decision", sa.Text(), nullable=False),
        sa.Column("dispute_decided_by", sa.String(length=50), nullable=True),
        sa.Column("dispute_decided_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["consumer_department_id"],
            ["department.id"],
            name=op.f("fk_sharing_application_consumer_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_department_id"],
            ["department.id"],
            name=op.f("fk_sharing_application_provider_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resource.id"],
            name=op.f("fk_sharing_application_resource_id_resource"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_application")),
    )
    with op.batch_alter_table("sharing_application", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sharing_application_consumer_status",
            ["consumer_department_id", "status"],
            unique=False,
        )
        batch_op.create_index(
            "ix_sharing_application_provider_status",
            ["provider_department_id", "status"],
            unique=False,
        )

    op.create_table(
        "sharing_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("provider_department_id", sa.Integer(), nullable=False),
        sa.Column("consumer_department_id", sa.Integer(), nullable=False),
        sa.Column(
            "items",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("row_scope", sa.Text(), nullable=False),
        sa.Column(
            "row_filter",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "modes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column(
            "masking",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("revoked_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=50), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["sharing_application.id"],
            name=op.f("fk_sharing_grant_application_id_sharing_application"),
        ),
        sa.ForeignKeyConstraint(
            ["consumer_department_id"],
            ["department.id"],
            name=op.f("fk_sharing_grant_consumer_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_department_id"],
            ["department.id"],
            name=op.f("fk_sharing_grant_provider_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resource.id"], name=op.f("fk_sharing_grant_resource_id_resource")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_grant")),
        sa.UniqueConstraint("application_id", name=op.f("uq_sharing_grant_application_id")),
    )
    with op.batch_alter_table("sharing_grant", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sharing_grant_consumer_resource",
            ["consumer_department_id", "resource_id"],
            unique=False,
        )
        batch_op.create_index("ix_sharing_grant_provider", ["provider_department_id"], unique=False)

    op.create_table(
        "sharing_usage_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("reported_by", sa.String(length=50), nullable=False),
        sa.Column("reported_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_sharing_usage_report_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["sharing_grant.id"],
            name=op.f("fk_sharing_usage_report_grant_id_sharing_grant"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_usage_report")),
    )
    with op.batch_alter_table("sharing_usage_report", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sharing_usage_report_grant_id"), ["grant_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sharing_usage_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sharing_usage_report_grant_id"))

    op.drop_table("sharing_usage_report")
    with op.batch_alter_table("sharing_grant", schema=None) as batch_op:
        batch_op.drop_index("ix_sharing_grant_provider")
        batch_op.drop_index("ix_sharing_grant_consumer_resource")

    op.drop_table("sharing_grant")
    with op.batch_alter_table("sharing_application", schema=None) as batch_op:
        batch_op.drop_index("ix_sharing_application_provider_status")
        batch_op.drop_index("ix_sharing_application_consumer_status")

    op.drop_table("sharing_application")
