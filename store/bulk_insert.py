"""Fast inserts: executemany straight through the DBAPI, and INSERT ... ON CONFLICT DO NOTHING."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

BATCH = 1000  # submissions per transaction: fewer commits, bounded memory


class BulkInsert:
    """executemany straight through the DBAPI, with each column's SQLAlchemy bind processor.

    Importing is dominated by per-value overhead; this keeps SQLAlchemy's type handling (the
    same processors Core would run) without its per-row statement machinery.
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
        self.processors = [
            (k, processor)
            for k, c in enumerate(columns)
            if (processor := c.type.dialect_impl(dialect).bind_processor(dialect)) is not None
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
        conn.exec_driver_sql(self.sql, [tuple(row) for row in rows])


class BulkInserts:
    """One BulkInsert per table, made when first needed and kept (the statement is the same)."""

    def __init__(self) -> None:
        self._inserts: dict[Table, BulkInsert] = {}

    def __call__(self, conn: Connection, table: Table, rows: list) -> None:
        if not rows:
            return
        insert_ = self._inserts.get(table)
        if insert_ is None:
            insert_ = self._inserts[table] = BulkInsert(table, conn.dialect)
        insert_(conn, rows)


def insert_ignore(conn: Connection, table, rows: list[dict]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)
