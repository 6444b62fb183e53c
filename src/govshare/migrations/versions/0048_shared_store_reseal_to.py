"""sharing: a shared store records the generation of the field key its sensitive items
are sealed under, and, while it is being resealed (its sensitive items changed in the
catalog, or the key rotated), the items it will keep sealed and the table it is being
copied to

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-07 06:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0048"
down_revision: str | None = "0047"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.add_column("shared_store", sa.Column("seal_key", sa.Integer, nullable=True))
    op.add_column("shared_store", sa.Column("reseal_to", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shared_store", schema=None) as batch_op:
        batch_op.drop_column("reseal_to")
        batch_op.drop_column("seal_key")
