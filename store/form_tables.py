"""SQLAlchemy tables generated from a form's layout, and the DDL that grows them."""

from __future__ import annotations

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Connection

from store import layout as lay
from store.tables import ID, UTCDateTime

_TYPES = {
    lay.INTEGER: BigInteger,
    lay.DECIMAL: lambda: Float(precision=53),
    lay.DATE: Date,
    lay.INSTANT: UTCDateTime,
    lay.TEXT: Text,
    lay.FLAG: SmallInteger,
}


# PostgreSQL moves a row's longest values out to its TOAST table once the row passes 2 kB, one
# TOAST row and index entry per value. A form's row of a couple of hundred short texts passes
# it (a custody visit: 3 kB) and had dozens of values moved, most of its COPY's time; rows up to
# a page (8,160 bytes) now stay whole (store/README.md, "Where ingest spends its time").
STORAGE = {"toast_tuple_target": 8160}


def column_type(storage: str):
    return _TYPES[storage]()


def field_column(column: lay.Column) -> Column:
    return Column(column.name, column_type(column.storage), nullable=True)


def build_tables(layout: lay.FormLayout, metadata: MetaData | None = None) -> dict[str, Table]:
    """One Table per repeat path ("" = the submission table), with every mapped column."""
    metadata = metadata or MetaData()
    tables: dict[str, Table] = {}
    for repeat, name in layout.tables.items():
        if repeat:
            system = [
                Column("__id", String(40), primary_key=True),
                Column("__submission_id", ID, nullable=False),
                Column("__parent_id", ID, nullable=False),
                Column("__position", Integer, nullable=False),
                Index(lay.index_name(name), "__submission_id"),
            ]
        else:
            system = [
                Column("__id", ID, primary_key=True),
                Column("__instance_id", ID, nullable=False),
                Column("__form_version", ID, nullable=True),
            ]
        fields = [field_column(c) for c in layout.table_columns(repeat)]
        tables[repeat] = Table(name, metadata, *system, *fields, postgresql_with=STORAGE)
    return tables


def create_missing(connection: Connection, change: lay.LayoutChange) -> dict[str, Table]:
    """Create new tables and add new columns to existing ones; returns the current Tables."""
    tables = build_tables(change.layout)
    operations = Operations(MigrationContext.configure(connection))
    new_tables = set(change.new_tables)
    for table in tables.values():
        if table.name in new_tables:
            table.create(connection)
    for column in change.new_columns:
        if column.table not in new_tables:
            operations.add_column(column.table, field_column(column))
    return tables


def recreate(connection: Connection, tables: dict[str, Table]) -> None:
    """Drop and create a form's tables (after a column's type widened); rows are re-derived."""
    for table in tables.values():
        table.drop(connection, checkfirst=True)
    for table in tables.values():
        table.create(connection)
