"""collaboration: a case keeps the particulars of its application (申请信息), e.g. the
enterprise details a window officer brought over from the legal-entity base database

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-04 23:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0038"
down_revision: str | None = "0037"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collab_case", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "particulars",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("collab_case", schema=None) as batch_op:
        batch_op.drop_column("particulars")
