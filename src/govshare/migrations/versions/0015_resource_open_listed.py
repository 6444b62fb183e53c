"""resource.open_listed: the entry is in the open catalog (开放目录), with an index that
answers the open catalog's counts and facets without reading the entries' rows

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 16:55:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Mirrors govshare.catalog.models.OPEN_CATALOG_COLUMNS as it stood at this revision.
COLUMNS = [
    "open_listed",
    "provider_department_id",
    "classification_id",
    "format",
    "update_cycle",
    "open_conditions",
    "listed",
    "published_version",
    "version",
    "status",
    "is_open",
    "updated_at",
]


def upgrade() -> None:
    with op.batch_alter_table("resource") as batch:
        batch.add_column(
            sa.Column("open_listed", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    conn = op.get_bind()
    # Listed entries whose published version is open: the working copy when it is the
    # published version, else the published snapshot (an entry in a change).
    rows = conn.execute(
        sa.text(
            "SELECT r.id, r.is_open, r.version, r.published_version, v.snapshot "
            "FROM resource r LEFT JOIN resource_version v "
            "ON v.resource_id = r.id AND v.version = r.published_version "
            "WHERE r.listed = :yes"
        ),
        {"yes": True},
    ).all()
    opened = []
    for rid, is_open, version, published, snap in rows:
        if version != published:
            if isinstance(snap, str):
                snap = json.loads(snap)
            is_open = bool((snap or {}).get("is_open"))
        if is_open:
            opened.append({"rid": rid})
    if opened:
        conn.execute(
            sa.text("UPDATE resource SET open_listed = :yes WHERE id = :rid"),
            [{**o, "yes": True} for o in opened],
        )
    op.create_index("ix_resource_open_catalog", "resource", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_resource_open_catalog", table_name="resource")
    with op.batch_alter_table("resource") as batch:
        batch.drop_column("open_listed")
