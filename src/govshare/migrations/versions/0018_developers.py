"""open developers: accounts, confirmation links and sessions, mail outbox, API keys, key usage,
conditional-open applications (开发者中心)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 18:40:05.282608
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import govshare.db

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "open_developer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open_developer")),
        sa.UniqueConstraint("email", name=op.f("uq_open_developer_email")),
    )
    op.create_table(
        "open_key_usage",
        sa.Column("key_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "day", name=op.f("pk_open_key_usage")),
    )
    op.create_table(
        "developer_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("developer_id", sa.Integer(), nullable=False),
        sa.Column("to", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["developer_id"],
            ["open_developer.id"],
            name=op.f("fk_developer_mail_developer_id_open_developer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_developer_mail")),
    )
    with op.batch_alter_table("developer_mail", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_developer_mail_developer_id"), ["developer_id"], unique=False
        )

    op.create_table(
        "open_api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("developer_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("daily_quota", sa.BigInteger(), nullable=True),
        sa.Column("per_minute", sa.Integer(), nullable=True),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["developer_id"],
            ["open_developer.id"],
            name=op.f("fk_open_api_key_developer_id_open_developer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open_api_key")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_open_api_key_secret_hash")),
    )
    with op.batch_alter_table("open_api_key", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_open_api_key_developer_id"), ["developer_id"], unique=False
        )

    op.create_table(
        "open_developer_token",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("developer_id", sa.Integer(), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum(
                "confirm", "session", name="developertokenpurpose", native_enum=False, length=10
            ),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["developer_id"],
            ["open_developer.id"],
            name=op.f("fk_open_developer_token_developer_id_open_developer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_open_developer_token")),
    )
    with op.batch_alter_table("open_developer_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_open_developer_token_developer_id"), ["developer_id"], unique=False
        )

    op.create_table(
        "open_application",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("developer_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "approved",
                "refused",
                "revoked",
                name="applicationstatus",
                native_enum=False,
                length=10,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=60), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_open_application_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["developer_id"],
            ["open_developer.id"],
            name=op.f("fk_open_application_developer_id_open_developer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["open_api_key.id"],
            name=op.f("fk_open_application_key_id_open_api_key"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resource.id"],
            name=op.f("fk_open_application_resource_id_resource"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open_application")),
    )
    with op.batch_alter_table("open_application", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_open_application_department_id"), ["department_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_open_application_developer_id"), ["developer_id"], unique=False
        )
        batch_op.create_index(
            "ix_open_application_resource_status", ["resource_id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("open_application", schema=None) as batch_op:
        batch_op.drop_index("ix_open_application_resource_status")
        batch_op.drop_index(batch_op.f("ix_open_application_developer_id"))
        batch_op.drop_index(batch_op.f("ix_open_application_department_id"))

    op.drop_table("open_application")
    with op.batch_alter_table("open_developer_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_open_developer_token_developer_id"))

    op.drop_table("open_developer_token")
    with op.batch_alter_table("open_api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_open_api_key_developer_id"))

    op.drop_table("open_api_key")
    with op.batch_alter_table("developer_mail", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_developer_mail_developer_id"))

    op.drop_table("developer_mail")
    op.drop_table("open_key_usage")
    op.drop_table("open_developer")
