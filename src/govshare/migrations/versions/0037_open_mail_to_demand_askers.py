"""open-data mail: the outbox also carries mail to the askers of data requests

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-04 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0037"
down_revision: str | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("developer_mail", schema=None) as batch_op:
        batch_op.alter_column("developer_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("demand_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_developer_mail_demand_id"), ["demand_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_developer_mail_demand_id_open_demand"),
            "open_demand",
            ["demand_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    op.execute("DELETE FROM developer_mail WHERE developer_id IS NULL")
    with op.batch_alter_table("developer_mail", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_developer_mail_demand_id_open_demand"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_developer_mail_demand_id"))
        batch_op.drop_column("demand_id")
        batch_op.alter_column("developer_id", existing_type=sa.Integer(), nullable=False)
