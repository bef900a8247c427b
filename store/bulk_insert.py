"""Fast inserts: executemany straight through the DBAPI (SQLite), COPY (PostgreSQL), and
INSERT ... ON CONFLICT DO NOTHING."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Boolean, Date, LargeBinary, String, Table, Text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from store.tables import UTCDateTime

BATCH = 1000  # submissions per transaction: fewer commits, bounded memory


class BulkInsert:
    """executemany straight through the DBAPI, with each column's SQLAlchemy bind processor.

    Importing is dominated by per-value overhead; this keeps SQLAlchemy's type handling (the
    same processors Core would run) without its per-row statement machinery. On PostgreSQL
    the rows go through COPY, in the same transaction: psycopg formats them in C and the server
    parses one stream instead of a statement per row (store/README.md has the figures).
    """

    def __init__(self, table: Table, dialect):
        serial = table.autoincrement_column  # the database numbers these rows
        columns = [c for c in table.columns if c is not serial]
        self.names = [c.name for c in columns]
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in self.names)}) "  # noqa: S608 - identifiers are quoted names of our own tables
            f"VALUES ({', '.join([mark] * len(columns))})"
        )
        self.copy = None
        self.copy_types = None
        if dialect.name == "postgresql":
            self.copy = (
                f"COPY {quote(table.name)} ({', '.join(quote(n) for n in self.names)}) FROM STDIN"
            )
            self.copy_types = binary_copy_types(columns)
            if self.copy_types is not None:
                self.copy += " (FORMAT BINARY)"
        self.processors = [
            (k, processor)
            for k, c in enumerate(columns)
            if (processor := bind_processor(c.type, dialect)) is not None
        ]

    def __call__(self, conn: Connection, rows: list) -> None:
        """Insert rows: dicts by column name, or lists already in the table's column order."""
        if isinstance(rows[0], dict):
            names = self.names
            rows = [[row.get(n) for n in names] for row in rows]
        processors = self.processors
        if processors:
            for row in rows:
                for k, process in processors:
                    value = row[k]
                    if value is not None:
                        row[k] = process(value)
        if self.copy is not None:
            cursor = conn.connection.dbapi_connection.cursor()
            with cursor, cursor.copy(self.copy) as copy:
                if self.copy_types is not None:
                    copy.set_types(self.copy_types)
                for row in rows:
                    copy.write_row(row)
            return
        conn.exec_driver_sql(self.sql, [tuple(row) for row in rows])


# The column types COPY's binary format is used with, by their exact SQLAlchemy type.
_COPY_TYPES = {
    String: "varchar",
    Text: "text",
    LargeBinary: "bytea",
    Boolean: "bool",
    UTCDateTime: "timestamptz",
}


def binary_copy_types(columns) -> list[str] | None:
    """PostgreSQL's type of each column, for COPY's binary format; None to keep the text format.

    Only for tables that hold bytes (the raw payloads): in the text format a payload travels as
    hex, twice its size, formatted by psycopg and parsed again by the server (3,000 payloads of
    9 kB: 0.47 s in text, 0.17 s in binary). Every column must then be one of these types,
    and each value of the Python type its column's bind processor gives.
    """
    types = [_COPY_TYPES.get(type(c.type)) for c in columns]
    if "bytea" not in types or None in types:
        return None
    return types


def _sqlite_instant(value: datetime) -> str:
    """UTCDateTime then SQLAlchemy's SQLite DATETIME, in one step: the UTC wall time as text."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def bind_processor(column_type, dialect):
    """The column's SQLAlchemy bind processor; on SQLite, instants and dates get a shortcut
    that writes the same text (tests/test_bulk_insert.py compares them) at a third of the cost.
    """
    if dialect.name == "sqlite":
        if isinstance(column_type, UTCDateTime):
            return _sqlite_instant
        if type(column_type) is Date:
            return date.isoformat
    return column_type.dialect_impl(dialect).bind_processor(dialect)


class BulkInserts:
    """One BulkInsert per table, made when first needed and kept (the statement is the same)."""

    def __init__(self) -> None:
        self._inserts: dict[tuple[Table, str], BulkInsert] = {}

    def __call__(self, conn: Connection, table: Table, rows: list) -> None:
        if not rows:
            return
        key = (table, conn.dialect.name)
        insert_ = self._inserts.get(key)
        if insert_ is None:
            insert_ = self._inserts[key] = BulkInsert(table, conn.dialect)
        insert_(conn, rows)


def insert_ignore(conn: Connection, table, rows: list[dict]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)
