"""sharing: subscriptions under grants (the provider task made for each)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 10:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import govshare.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sharing_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("provider_task_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_task_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["sharing_grant.id"],
            name=op.f("fk_sharing_subscription_grant_id_sharing_grant"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_task_id"],
            ["exchange_task.id"],
            name=op.f("fk_sharing_subscription_provider_task_id_exchange_task"),
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_task_id"],
            ["exchange_task.id"],
            name=op.f("fk_sharing_subscription_subscriber_task_id_exchange_task"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_subscription")),
    )
    op.create_index(
        op.f("ix_sharing_subscription_grant_id"),
        "sharing_subscription",
        ["grant_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sharing_subscription_grant_id"), table_name="sharing_subscription")
    op.drop_table("sharing_subscription")
