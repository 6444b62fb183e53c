"""catalog search: three ranked columns (name, items, rest) with character pairs

The SQLite full-text table gains an ``items`` column; both databases' documents now
hold Chinese character pairs beside jieba's words, so every entry is indexed again
here (from the published version while it is in a change).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 15:30:00
"""

import json
from collections.abc import Sequence
from typing import Any

from alembic import op
from sqlalchemy import text

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _reindex() -> None:
    """Every entry's documents, read with plain SQL (not the ORM models, which may have
    moved on by the time an old hub is upgraded)."""
    from govshare.catalog.search import documents, write_documents

    conn = op.get_bind()
    entries = conn.execute(
        text(
            "SELECT r.id, r.code, r.name, r.abstract, r.status, r.published_version, "
            "d.name, d.short_name, c.name FROM resource r "
            "JOIN department d ON d.id = r.provider_department_id "
            "JOIN classification c ON c.id = r.classification_id ORDER BY r.id"
        )
    ).all()
    items: dict[int, list[tuple[str, str, str]]] = {}
    for rid, name, code, description in conn.execute(
        text(
            "SELECT resource_id, name, code, description FROM information_item "
            "ORDER BY resource_id, position"
        )
    ):
        items.setdefault(rid, []).append((name, code, description))
    published: dict[int, dict[str, Any]] = {}
    for rid, snap in conn.execute(
        text(
            "SELECT v.resource_id, v.snapshot FROM resource_version v JOIN resource r "
            "ON r.id = v.resource_id AND v.version = r.published_version "
            "WHERE r.status <> 'published'"
        )
    ):
        published[rid] = snap if isinstance(snap, dict) else json.loads(snap)
    docs = []
    for rid, code, name, abstract, _status, _pv, provider, short, klass in entries:
        if rid in published:
            snap = published[rid]
            name, abstract = snap["name"], snap["abstract"]
            its = [(it["name"], it["code"], it["description"]) for it in snap["items"]]
        else:
            its = items.get(rid, [])
        docs.append(
            (
                rid,
                *documents(
                    name=name,
                    code=code,
                    items=its,
                    abstract=abstract,
                    provider=provider,
                    provider_short=short,
                    classification=klass,
                ),
            )
        )
    for start in range(0, len(docs), 2000):
        write_documents(conn, docs[start : start + 2000])


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE catalog_fts")
        op.execute(
            "CREATE VIRTUAL TABLE catalog_fts USING fts5(title, items, body, tokenize='unicode61')"
        )
    _reindex()


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
