"""sharing: a shared store (or base database) names the items it keeps sealed (字段加密)
and the type each had, so readers can open them and give the values back as they were

Revision ID: 0047
Revises: 0046
Create Date: 2026-12-07 02:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0047"
down_revision: str | None = "0046"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.add_column("shared_store", sa.Column("sealed_items", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shared_store", schema=None) as batch_op:
        batch_op.drop_column("sealed_items")
