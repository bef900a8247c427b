"""Alembic environment for the store's fixed tables; run through store.database.migrate."""

from __future__ import annotations

from alembic import context

from store.tables import metadata


def include_object(obj, name, type_, reflected, compare_to):
    # Form tables are generated from the forms, not migrated here: leave them alone.
    if type_ == "table":
        return name in metadata.tables
    return True


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "Migrations run through `nigraan store init` (store.database.migrate); write a new "
            "one with `python -m store.migrations.new` (see store/migrations/README.md)."
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
