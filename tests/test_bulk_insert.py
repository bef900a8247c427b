"""The bulk writer's shortcuts store exactly what SQLAlchemy's own processors would."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.dialects import sqlite

from store.bulk_insert import BulkInserts, binary_copy_types, bind_processor
from store.database import create_store_engine
from store.tables import UTCDateTime

INSTANTS = [
    datetime(2026, 11, 28, 10, 0, tzinfo=timezone(timedelta(hours=5))),
    datetime(2026, 11, 28, 5, 0, 0, 123000, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    datetime(2026, 3, 1, 12, 30),  # naive: taken as UTC
]
DATES = [date(1, 1, 1), date(2026, 2, 28), date(999, 12, 31), date(9999, 12, 31)]


def _sqlalchemy(column_type, value):
    dialect = sqlite.dialect()
    value = (
        column_type.process_bind_param(value, dialect)
        if hasattr(column_type, "process_bind_param")
        else value
    )
    impl = column_type.impl if isinstance(column_type, UTCDateTime) else column_type
    return impl.dialect_impl(dialect).bind_processor(dialect)(value)


@pytest.mark.parametrize("value", INSTANTS)
def test_sqlite_instants_are_written_as_sqlalchemy_writes_them(value):
    assert bind_processor(UTCDateTime(), sqlite.dialect())(value) == _sqlalchemy(
        UTCDateTime(), value
    )


@pytest.mark.parametrize("value", DATES)
def test_sqlite_dates_are_written_as_sqlalchemy_writes_them(value):
    assert bind_processor(Date(), sqlite.dialect())(value) == _sqlalchemy(Date(), value)


def test_rows_written_in_bulk_read_back_as_written(new_database):
    """SQLite (executemany) and PostgreSQL (COPY): the values come back as they went in."""
    engine = create_store_engine(new_database())
    meta = MetaData()
    tab = Table(
        "bulk_probe",
        meta,
        Column("id", Integer, primary_key=True),
        Column("at", UTCDateTime),
        Column("day", Date),
    )
    meta.create_all(engine)
    rows = [[None, at, day] for at, day in zip(INSTANTS[:4], DATES, strict=True)]
    rows += [[None, None, None]]
    with engine.begin() as conn:
        BulkInserts()(conn, tab, [row[1:] for row in rows])
    with engine.connect() as conn:
        got = conn.execute(select(tab.c.at, tab.c.day).order_by(tab.c.id)).all()
    want = [
        (at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC), day)
        for at, day in zip(INSTANTS[:4], DATES, strict=True)
    ] + [(None, None)]
    assert [tuple(r) for r in got] == want
    engine.dispose()


def test_rows_holding_bytes_read_back_as_written(new_database):
    """A table with bytes goes through COPY's binary format on PostgreSQL: same values back."""
    engine = create_store_engine(new_database())
    meta = MetaData()
    tab = Table(
        "bulk_bytes_probe",
        meta,
        Column("id", Integer, primary_key=True),
        Column("name", String(20)),
        Column("note", Text),
        Column("payload", LargeBinary),
        Column("current", Boolean),
        Column("at", UTCDateTime),
    )
    meta.create_all(engine)
    if engine.dialect.name == "postgresql":
        columns = [c for c in tab.columns if c.name != "id"]
        assert binary_copy_types(columns) == ["varchar", "text", "bytea", "bool", "timestamptz"]
    rows = [
        ["ä name", "a note\twith\ttabs\nand a line", b"\x00\\x01 \xff" * 500, True, INSTANTS[0]],
        ["", "", b"", False, INSTANTS[5]],
        [None, None, None, None, None],
    ]
    with engine.begin() as conn:
        BulkInserts()(conn, tab, [list(r) for r in rows])
    with engine.connect() as conn:
        got = conn.execute(
            select(tab.c.name, tab.c.note, tab.c.payload, tab.c.current, tab.c.at).order_by(
                tab.c.id
            )
        ).all()
    want = [
        (*r[:4], r[4].astimezone(UTC) if r[4].tzinfo else r[4].replace(tzinfo=UTC))
        for r in rows[:2]
    ] + [(None,) * 5]
    assert [(*r[:2], None if r[2] is None else bytes(r[2]), *r[3:]) for r in got] == want
    engine.dispose()
