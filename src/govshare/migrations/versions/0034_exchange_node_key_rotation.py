"""exchange: a node's signing key can be replaced (前置机签名密钥轮换); the keys it
replaced are kept to verify what they signed

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-04 16:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("exchange_node", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retired_keys", JSON, nullable=True))
        batch_op.add_column(
            sa.Column("key_rotated_at", govshare.db.UTCDateTime(timezone=True), nullable=True)
        )
    node = sa.table("exchange_node", sa.column("retired_keys", JSON))
    op.execute(node.update().values(retired_keys=[]))
    with op.batch_alter_table("exchange_node", schema=None) as batch_op:
        batch_op.alter_column("retired_keys", existing_type=JSON, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("exchange_node", schema=None) as batch_op:
        batch_op.drop_column("key_rotated_at")
        batch_op.drop_column("retired_keys")
