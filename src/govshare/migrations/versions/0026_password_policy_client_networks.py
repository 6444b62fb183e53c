"""password policy (口令策略): when each password was set and the previous ones; API
clients' allowed networks (IP 白名单)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 05:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("password_changed_at", govshare.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("password_history", JSON, nullable=True))
    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_networks", JSON, nullable=True))
    # Existing passwords count as set now: they expire a full period after the upgrade,
    # not all at once on the first sign-in after it.
    user = sa.table(
        "app_user",
        sa.column("password_changed_at", govshare.db.UTCDateTime(timezone=True)),
        sa.column("password_history", JSON),
    )
    op.execute(user.update().values(password_changed_at=datetime.now(UTC), password_history=[]))
    client = sa.table("api_client", sa.column("allowed_networks", JSON))
    op.execute(client.update().values(allowed_networks=[]))
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.alter_column(
            "password_changed_at",
            existing_type=govshare.db.UTCDateTime(timezone=True),
            nullable=False,
        )
        batch_op.alter_column("password_history", existing_type=JSON, nullable=False)
    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.alter_column("allowed_networks", existing_type=JSON, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.drop_column("allowed_networks")
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_column("password_history")
        batch_op.drop_column("password_changed_at")
