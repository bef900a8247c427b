"""store/indicator_queries.py's groupings on SQLite's keyed tables (_Staging) give what the
database's own GROUP BY and window give: NULL keys and values, undated and tied records."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Column, Date, Float, MetaData, String, Table, select
from sqlalchemy.sql.functions import count
from sqlalchemy.sql.functions import max as max_
from sqlalchemy.sql.functions import min as min_
from sqlalchemy.sql.functions import sum as sum_

from store.indicator_queries import _newest, _Staging

ROWS = [  # sid, person, place, day, n
    ("s1", "a", "x", "2026-01-05", 1.0),
    ("s2", "a", "x", "2026-03-01", None),
    ("s3", "a", None, None, 2.5),  # undated: counts as the newest
    ("s4", "b", None, "2026-02-01", 4.0),
    ("s5", "b", "y", "2026-02-01", None),  # same day as s4: the larger id is the newer
    ("s6", None, "y", "2026-04-01", 3.0),
    ("s7", None, None, None, None),  # undated: newer than s6
]


@pytest.fixture
def records(store):
    table = Table(
        "scratch_records",
        MetaData(),
        Column("sid", String, primary_key=True),
        Column("person", String),
        Column("place", String),
        Column("day", Date),
        Column("n", Float),
    )
    table.create(store.engine)
    with store.engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "sid": s,
                    "person": p,
                    "place": pl,
                    "day": date.fromisoformat(d) if d else None,
                    "n": n,
                }
                for s, p, pl, d, n in ROWS
            ],
        )
    return store, table


def test_a_grouping_read_from_a_keyed_table_equals_the_group_by(records):
    store, t = records
    query = select(
        t.c.person,
        t.c.place,
        count().label("rows"),
        count(t.c.n).label("counted"),
        sum_(t.c.n).label("total"),
        min_(t.c.day).label("first"),
        max_(t.c.day).label("last"),
    ).group_by(t.c.person, t.c.place)
    with store.engine.connect() as conn:
        expected = sorted(map(tuple, conn.execute(query)), key=repr)
        staging = _Staging(conn)
        try:
            got = staging.read(query)
        finally:
            staging.drop()
    assert got.columns == ["person", "place", "rows", "counted", "total", "first", "last"]
    assert sorted(
        (tuple(str(v) if v is not None else None for v in r) for r in got.rows), key=repr
    ) == sorted((tuple(str(v) if v is not None else None for v in r) for r in expected), key=repr)


def test_the_newest_record_per_person_is_the_one_the_window_ranks_first(records):
    store, t = records
    with store.engine.connect() as conn:
        staging = _Staging(conn)
        try:
            newest = _newest(
                staging,
                "scratch_newest",
                t,
                [t.c.person],
                t.c.day,
                t.c.sid,
                [t.c.sid.label("which")],
                first=True,
            )
            got = {
                r.person: (r.which, str(r.first) if r.first else None)
                for r in conn.execute(select(newest))
            }
        finally:
            staging.drop()
    assert got == {"a": ("s3", "2026-01-05"), "b": ("s5", "2026-02-01"), None: ("s7", "2026-04-01")}
