"""`column IN (a long list of ids)` as one bound parameter instead of one per id.

SQLAlchemy renders `in_()` with a parameter per value, and compiling and sending a thousand of
them cost more than the query (the cross-form checks and ingest ask with a batch's ids):
PostgreSQL gets `= ANY(%s)` with one text array, SQLite `IN (SELECT value FROM json_each(?))`
with one JSON array.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import Text, any_, bindparam, column, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection


def among(conn: Connection, target, values: Iterable[str]):
    """A WHERE clause: `target` (a column) is one of `values` (strings)."""
    values = list(values)
    if conn.dialect.name == "postgresql":
        return target == any_(bindparam(None, values, type_=ARRAY(Text)))
    listed = func.json_each(bindparam(None, json.dumps(values), type_=Text))
    return target.in_(select(column("value")).select_from(listed).scalar_subquery())
