"""catalog search: the items withheld from the open-data portal get their own column

The sharing catalog still finds an entry by a withheld item (不予开放 only keeps it off
the portal), but the portal's search must not: its match leaves the ``withheld`` column
(SQLite) or weight D (PostgreSQL) out. Every entry is indexed again here, from the
published version while it is in a change.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-04 13:00:00
"""

import json
from collections.abc import Sequence
from typing import Any

from alembic import op
from sqlalchemy import text

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Item = tuple[str, str, str]


def _reindex() -> None:
    """Every entry's documents, read with plain SQL (not the ORM models, which may have
    moved on by the time an old hub is upgraded)."""
    from govshare.catalog.search import documents, write_documents

    conn = op.get_bind()
    entries = conn.execute(
        text(
            "SELECT r.id, r.code, r.name, r.abstract, d.name, d.short_name, c.name "
            "FROM resource r "
            "JOIN department d ON d.id = r.provider_department_id "
            "JOIN classification c ON c.id = r.classification_id ORDER BY r.id"
        )
    ).all()
    items: dict[tuple[int, bool], list[_Item]] = {}
    for rid, name, code, description, withheld in conn.execute(
        text(
            "SELECT resource_id, name, code, description, open_withheld FROM information_item "
            "ORDER BY resource_id, position"
        )
    ):
        items.setdefault((rid, bool(withheld)), []).append((name, code, description))
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
    for rid, code, name, abstract, provider, short, klass in entries:
        shown = {False: items.get((rid, False), []), True: items.get((rid, True), [])}
        if rid in published:
            snap = published[rid]
            name, abstract = snap["name"], snap["abstract"]
            shown = {False: [], True: []}
            for it in snap["items"]:
                # Snapshots carry open_withheld only when it is set.
                shown[bool(it.get("open_withheld"))].append(
                    (it["name"], it["code"], it["description"])
                )
        docs.append(
            (
                rid,
                *documents(
                    name=name,
                    code=code,
                    items=shown[False],
                    abstract=abstract,
                    provider=provider,
                    provider_short=short,
                    classification=klass,
                    withheld_items=shown[True],
                ),
            )
        )
    for start in range(0, len(docs), 2000):
        write_documents(conn, docs[start : start + 2000])


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE catalog_fts")
        op.execute(
            "CREATE VIRTUAL TABLE catalog_fts "
            "USING fts5(title, items, body, withheld, tokenize='unicode61')"
        )
    _reindex()


def downgrade() -> None:
    # PostgreSQL's weight-D lexemes are searched as they are by the older code.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE catalog_fts RENAME TO catalog_fts_withheld")
        op.execute(
            "CREATE VIRTUAL TABLE catalog_fts USING fts5(title, items, body, tokenize='unicode61')"
        )
        op.execute(
            "INSERT INTO catalog_fts (rowid, title, items, body) "
            "SELECT rowid, title, trim(items || ' ' || withheld), body FROM catalog_fts_withheld"
        )
        op.execute("DROP TABLE catalog_fts_withheld")
