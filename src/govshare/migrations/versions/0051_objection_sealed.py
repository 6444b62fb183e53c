"""sharing: an objection keeps its record key and the values claimed and corrected
sealed with the field key when encryption at rest is on (``sealed``); the record key's
column takes text of any length, as a sealed key is longer than the key

Revision ID: 0051
Revises: 0050
Create Date: 2026-12-07 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0051"
down_revision: str | None = "0050"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sharing_objection", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sealed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.alter_column(
            "record_key", existing_type=sa.String(length=200), type_=sa.Text(), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sharing_objection", schema=None) as batch_op:
        batch_op.alter_column(
            "record_key", existing_type=sa.Text(), type_=sa.String(length=200), nullable=False
        )
        batch_op.drop_column("sealed")
