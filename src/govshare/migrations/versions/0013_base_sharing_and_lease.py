"""shared_store.unconditional_items: the items a base database shares without approval;
base_database.lease_until: one hub process assembles a base at a time

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("shared_store", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unconditional_items", JSON, nullable=True))
    with op.batch_alter_table("base_database", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lease_until", govshare.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("base_database", schema=None) as batch_op:
        batch_op.drop_column("lease_until")
    with op.batch_alter_table("shared_store", schema=None) as batch_op:
        batch_op.drop_column("unconditional_items")
