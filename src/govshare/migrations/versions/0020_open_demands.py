"""open_demand, open_demand_vote: the public's requests for data and their votes
(数据需求征集)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import govshare.db

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "open_demand",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("nickname", sa.String(length=30), nullable=False),
        sa.Column("contact", sa.String(length=100), nullable=False),
        sa.Column("submitter", sa.String(length=64), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open", "answered", "hidden", name="demandstatus", native_enum=False, length=10
            ),
            nullable=False,
        ),
        sa.Column("votes", sa.Integer(), nullable=False),
        sa.Column(
            "answer_kind",
            sa.Enum(
                "opened", "planned", "declined", name="answerkind", native_enum=False, length=10
            ),
            nullable=True,
        ),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("dataset_code", sa.String(length=100), nullable=True),
        sa.Column("answered_by", sa.String(length=50), nullable=True),
        sa.Column("answered_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("hidden_reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_open_demand_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open_demand")),
    )
    with op.batch_alter_table("open_demand", schema=None) as batch_op:
        for column in ("department_id", "submitter", "created_at", "status"):
            batch_op.create_index(batch_op.f(f"ix_open_demand_{column}"), [column], unique=False)

    op.create_table(
        "open_demand_vote",
        sa.Column("demand_id", sa.Integer(), nullable=False),
        sa.Column("voter", sa.String(length=64), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["demand_id"],
            ["open_demand.id"],
            name=op.f("fk_open_demand_vote_demand_id_open_demand"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("demand_id", "voter", name=op.f("pk_open_demand_vote")),
    )
    with op.batch_alter_table("open_demand_vote", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_open_demand_vote_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("open_demand_vote")
    op.drop_table("open_demand")
