"""catalog: a revision number raised by SQLite triggers at every write to the tables an
open-data search reads, so the search keeps its facet counts until the catalog changes

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-05 18:30:00.000000
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0042"
down_revision: str | None = "0041"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same list as govshare.catalog.revision.TRACKED, frozen here as of this revision.
TRACKED = ("resource", "resource_version", "resource_transition", "department", "classification")
EVENTS = ("insert", "update", "delete")


def upgrade() -> None:
    op.create_table(
        "catalog_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_revision")),
    )
    op.execute(
        sa.text("INSERT INTO catalog_revision (id, n, generation) VALUES (1, 0, :g)").bindparams(
            g=uuid.uuid4().hex
        )
    )
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TRACKED:
        for event in EVENTS:
            op.execute(
                f"CREATE TRIGGER catalog_revision_{table}_{event} AFTER {event.upper()} "
                f"ON {table} BEGIN UPDATE catalog_revision SET n = n + 1 WHERE id = 1; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in TRACKED:
            for event in EVENTS:
                op.execute(f"DROP TRIGGER IF EXISTS catalog_revision_{table}_{event}")
    op.drop_table("catalog_revision")
