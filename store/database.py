"""Engines for SQLite (the embedded default) and PostgreSQL, Alembic migrations, schema checks."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from nigraan.config import BY_NAME
from nigraan.errors import NigraanError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class StoreError(NigraanError):
    """The reporting store cannot be opened or used."""

    code = "store.unavailable"
    status = 503


class StoreSchemaError(StoreError):
    """The store's fixed tables are not at the schema this nigraan expects."""

    code = "store.schema"


def shown_url(url: str) -> str:
    """The URL as it may be printed: the setting's own rule, so the password never shows."""
    return BY_NAME["database.url"].display(url)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (review screens) never block the writer (collection, sync).
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before the server acknowledges a submission.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their folder, WAL and a busy timeout."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"The database URL {shown_url(url)!r} is not a valid SQLAlchemy URL.",
            hint="Use sqlite:///path/to/file.sqlite3 or postgresql+psycopg://user@host/db "
            "(setting database.url / NIGRAAN_DATABASE_URL).",
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: an error or log line must never carry submitted values (names, ...).
        engine = create_engine(parsed, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() in ("psycopg2", "postgresql", ""):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    raise StoreError(
        f"nigraan's store runs on SQLite or PostgreSQL, not {backend!r}.",
        hint="Set database.url / NIGRAAN_DATABASE_URL to a sqlite:/// or postgresql:// URL.",
    )


def alembic_config(connection) -> AlembicConfig:
    """Alembic's configuration for the store: no alembic.ini, the connection handed to env.py."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _unreachable(engine: Engine, exc: OperationalError) -> StoreError:
    return StoreError(
        f"Cannot reach the database at {engine.url}: {exc.orig}.",  # str() hides the password
        hint="Check database.url / NIGRAAN_DATABASE_URL and that the server is running.",
    )


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(None))


def head_revision() -> str:
    """The newest migration this nigraan has (store/migrations/versions/)."""
    return _scripts().get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at; None for a database without the store's tables."""
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise _unreachable(engine, exc) from exc


def require_current_schema(engine: Engine) -> None:
    """Refuse a database whose fixed tables are not at this nigraan's newest migration.

    Only `nigraan store init` and the server's start-up migrate (one process at a time); every
    other command and process opens the store as it is and says what to do when it is behind.
    """
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = shown_url(engine.url.render_as_string(hide_password=False))
    if current is None:
        raise StoreSchemaError(
            f"The store at {where} has no tables yet: run `nigraan store init` to create it.",
            hint="`nigraan store init` creates the store's tables and registers the built forms "
            "(`nigraan serve` does the same when it starts).",
        )
    try:
        known = _scripts().get_revision(current) is not None
    except CommandError:  # "Can't locate revision"
        known = False
    if known:
        raise StoreSchemaError(
            f"The store at {where} has an older schema ({current}) than this nigraan ({head}): "
            "run `nigraan store init` to upgrade it.",
            hint="The upgrade keeps every stored row; back up the database first if you can.",
        )
    raise StoreSchemaError(
        f"The store at {where} has schema {current}, which this nigraan does not know "
        f"(its newest is {head}).",
        hint="It was written by a newer nigraan: run that version, or check database.url.",
    )


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the fixed tables to the newest migration, or to `revision` (idempotent)."""
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), revision)
    except OperationalError as exc:
        raise _unreachable(engine, exc) from exc
