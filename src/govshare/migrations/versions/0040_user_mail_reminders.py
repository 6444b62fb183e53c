"""users' e-mail addresses, their mail outbox, and the card a collaboration task's
handlers were last reminded of (到期提醒 to the people who decide the task)

Revision ID: 0040
Revises: 0039
Create Date: 2026-12-05 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import govshare.db

revision: str = "0040"
down_revision: str | None = "0039"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
    with op.batch_alter_table("collab_task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reminded_card", sa.String(length=10), nullable=True))
    op.create_table(
        "user_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("to", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_user_mail_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_mail")),
    )
    with op.batch_alter_table("user_mail", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_mail_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_user_mail_sent_at"), ["sent_at"], unique=False)


def downgrade() -> None:
    op.drop_table("user_mail")
    with op.batch_alter_table("collab_task", schema=None) as batch_op:
        batch_op.drop_column("reminded_card")
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_column("email")
