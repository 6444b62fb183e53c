"""basedata: a conflict says how it keeps the person's key and both values (sealed as the
base keeps its key and the item, under which generation of the field key); rows made
before are in the clear and are sealed by their base's next assembly

Revision ID: 0050
Revises: 0049
Create Date: 2026-12-07 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0050"
down_revision: str | None = "0049"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("base_conflict", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key_sealed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("values_sealed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("seal_key", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("base_conflict", schema=None) as batch_op:
        batch_op.drop_column("seal_key")
        batch_op.drop_column("values_sealed")
        batch_op.drop_column("key_sealed")
