"""basedata: a base database's store says which items its table keeps, as a fed
store's mapping does (column → item, one column per item named by its code), so
resealing finds what it keeps sealed in the catalog's sensitive marks

Revision ID: 0049
Revises: 0048
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0049"
down_revision: str | None = "0048"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

base_database = sa.table(
    "base_database",
    sa.column("store_id", sa.Integer),
    sa.column("key_item", sa.String),
    sa.column("items", JSON),
)
shared_store = sa.table("shared_store", sa.column("id", sa.Integer), sa.column("mapping", JSON))


def upgrade() -> None:
    conn = op.get_bind()
    bases = conn.execute(
        sa.select(base_database.c.store_id, base_database.c.key_item, base_database.c["items"])
    ).all()
    for store_id, key_item, items in bases:
        if store_id is None:
            continue
        codes = [key_item, *(str(i["item"]) for i in items or [])]
        conn.execute(
            sa.update(shared_store)
            .where(shared_store.c.id == store_id)
            .values(mapping={code: code for code in codes})
        )


def downgrade() -> None:
    conn = op.get_bind()
    ids = [r[0] for r in conn.execute(sa.select(base_database.c.store_id)) if r[0] is not None]
    if ids:
        conn.execute(sa.update(shared_store).where(shared_store.c.id.in_(ids)).values(mapping={}))
