"""documents: 电子公文交换 — documents, their encrypted files, recipients and signed receipts

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 04:29:54.868315
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import govshare.db

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_department_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("doc_number", sa.String(length=60), nullable=False),
        sa.Column(
            "secrecy",
            sa.Enum(
                "public",
                "internal",
                "secret",
                "confidential",
                "top_secret",
                name="secrecy",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column(
            "urgency",
            sa.Enum(
                "normal", "urgent", "extra_urgent", name="urgency", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("sent_by", sa.String(length=50), nullable=False),
        sa.Column("sent_by_name", sa.String(length=50), nullable=False),
        sa.Column("sent_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("digest_alg", sa.String(length=10), nullable=False),
        sa.Column("sig_alg", sa.String(length=10), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("package_digest", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sender_department_id"],
            ["department.id"],
            name=op.f("fk_document_sender_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document")),
        sa.UniqueConstraint(
            "sender_department_id", "doc_number", name="uq_document_sender_doc_number"
        ),
    )
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.create_index(
            "ix_document_sender_sent", ["sender_department_id", "sent_at"], unique=False
        )

    op.create_table(
        "document_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["document.id"],
            name=op.f("fk_document_file_document_id_document"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_file")),
        sa.UniqueConstraint("document_id", "position", name="uq_document_file_position"),
    )
    op.create_table(
        "document_receipt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("signed", "returned", name="receiptkind", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("acted_by", sa.String(length=50), nullable=False),
        sa.Column("acted_by_name", sa.String(length=50), nullable=False),
        sa.Column("acted_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("package_digest", sa.String(length=64), nullable=False),
        sa.Column("sig_alg", sa.String(length=10), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_document_receipt_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["document.id"],
            name=op.f("fk_document_receipt_document_id_document"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_receipt")),
        sa.UniqueConstraint("document_id", "department_id", name="uq_document_receipt"),
    )
    op.create_table(
        "document_recipient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("reminders", sa.Integer(), nullable=False),
        sa.Column("reminded_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_document_recipient_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["document.id"],
            name=op.f("fk_document_recipient_document_id_document"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_recipient")),
        sa.UniqueConstraint("document_id", "department_id", name="uq_document_recipient"),
    )
    with op.batch_alter_table("document_recipient", schema=None) as batch_op:
        batch_op.create_index("ix_document_recipient_department", ["department_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("document_recipient", schema=None) as batch_op:
        batch_op.drop_index("ix_document_recipient_department")

    op.drop_table("document_recipient")
    op.drop_table("document_receipt")
    op.drop_table("document_file")
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.drop_index("ix_document_sender_sent")

    op.drop_table("document")
