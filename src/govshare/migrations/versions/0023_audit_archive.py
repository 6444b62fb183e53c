"""audit_archive: the registry of archived, pruned ranges of the audit chain (审计归档)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import govshare.db

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_archive",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("first_seq", _SEQ, nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
        sa.Column("entries", _SEQ, nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("first_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("manifest_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_archive")),
        sa.UniqueConstraint("name", name=op.f("uq_audit_archive_name")),
        sa.UniqueConstraint("first_seq", name=op.f("uq_audit_archive_first_seq")),
    )


def downgrade() -> None:
    op.drop_table("audit_archive")
