"""`column IN (a long list of ids)` as one bound parameter instead of one per id.

SQLAlchemy renders `in_()` with a parameter per value, and compiling and sending a thousand of
them cost more than the query (the cross-form checks and ingest ask with a batch's ids):
PostgreSQL gets `= ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))`, SQLite
`IN (SELECT value FROM json_each(?))`, each with one JSON array. On PostgreSQL the array is made
once per statement (an InitPlan) and the column's index takes it as a text[] parameter, as
before; sent as a text[] itself, psycopg quoted every id with a regular expression in Python,
a third of the cross-form checks' own time on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import Text, any_, bindparam, cast, column, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection


def among(conn: Connection, target, values: Iterable[str]):
    """A WHERE clause: `target` (a column) is one of `values` (strings)."""
    values = list(values)
    listed_json = bindparam(None, json.dumps(values), type_=Text)
    if conn.dialect.name == "postgresql":
        ids = select(func.jsonb_array_elements_text(cast(listed_json, JSONB))).scalar_subquery()
        return target == any_(func.array(ids))
    listed = func.json_each(listed_json)
    return target.in_(select(column("value")).select_from(listed).scalar_subquery())
