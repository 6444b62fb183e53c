"""Alembic environment: runs the hub's migrations against the configured database."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from govshare.models import metadata

config = context.config

# Search documents are dialect-specific tables made by raw SQL in the migrations.
SEARCH_TABLES = {"catalog_fts", "catalog_search"}


def include_object(
    _obj: object, name: str | None, type_: str, _reflected: bool, _compare_to: object
) -> bool:
    is_search_table = name in SEARCH_TABLES or (name or "").startswith("catalog_fts_")
    return not (type_ == "table" and is_search_table)


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        include_object=include_object,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = engine_from_config(
            config.get_section(config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        with engine.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        include_object=include_object,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
