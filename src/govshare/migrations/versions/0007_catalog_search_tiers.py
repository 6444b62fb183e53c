"""catalog search: three ranked columns (name, items, rest) with character pairs

The SQLite full-text table gains an ``items`` column; both databases' documents now
hold Chinese character pairs beside jieba's words, so every entry is indexed again —
by 0031, which gives the index its fourth column (the items withheld from the
open-data portal) and rewrites every document once for both changes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 15:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE catalog_fts")
        op.execute(
            "CREATE VIRTUAL TABLE catalog_fts USING fts5(title, items, body, tokenize='unicode61')"
        )


def downgrade() -> None:
    # PostgreSQL's documents serve the older search as they are (weights only rank).
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE catalog_fts RENAME TO catalog_fts_tiers")
        op.execute("CREATE VIRTUAL TABLE catalog_fts USING fts5(title, body, tokenize='unicode61')")
        op.execute(
            "INSERT INTO catalog_fts (rowid, title, body) "
            "SELECT rowid, title, items || ' ' || body FROM catalog_fts_tiers"
        )
        op.execute("DROP TABLE catalog_fts_tiers")
