"""alert rules (告警规则): thresholds, severity and channels edited in the console

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-04 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import govshare.db

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_rule",
        sa.Column(
            "kind",
            sa.Enum(
                "node_silent",
                "send_failed",
                "receive_failed",
                "database_error",
                "package_rejected",
                "reconciliation_mismatch",
                "reconciliation_timeout",
                "lag",
                "objection_overdue",
                "application_overdue",
                "calendar_missing",
                "conflict_overdue",
                "backup_stale",
                "document_unanswered",
                "case_task_overdue",
                "disk_low",
                "key_expiring",
                name="alertkind",
                native_enum=False,
                length=30,
            ),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("webhook", sa.Boolean(), nullable=False),
        sa.Column("mail", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_alert_rule")),
    )


def downgrade() -> None:
    op.drop_table("alert_rule")
