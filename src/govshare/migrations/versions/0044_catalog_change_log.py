"""catalog: on PostgreSQL, a change log written by statement triggers on the tables an
open-data search reads; the catalog's revision is the sum of its weights

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-05 21:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0044"
down_revision: str | None = "0043"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same list as govshare.catalog.revision.TRACKED, frozen here as of this revision.
TRACKED = ("resource", "resource_version", "resource_transition", "department", "classification")


def upgrade() -> None:
    op.create_table(
        "catalog_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("weight", sa.BigInteger(), nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_change")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION catalog_revision_note() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN INSERT INTO catalog_change DEFAULT VALUES; RETURN NULL; END $$"
    )
    for table in TRACKED:
        op.execute(
            f"CREATE TRIGGER catalog_revision_{table} "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION catalog_revision_note()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TRACKED:
            op.execute(f"DROP TRIGGER IF EXISTS catalog_revision_{table} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS catalog_revision_note()")
    op.drop_table("catalog_change")
