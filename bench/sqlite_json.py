"""Benchmark: typing and inserting a batch inside SQLite, set-based from JSON, against
Python building each row's tuple and `executemany` (what the store does) (not a test).

The issue behind the store's ingest path proposed `INSERT … SELECT … FROM json_each(?)` with
SQLite's JSON functions. This measures its best case: the custody visits' own typed rows (the
store's `form_custody_visit` table, 224 columns, from `bench/normalise.py`'s generator), sent
as one JSON array whose objects are keyed by column and hold values already typed, so SQLite
only extracts them (no casts, no checks, no problems to record, all of which the store's typing
does as well). Into an in-memory copy of the table, so no disk time is counted:

- baseline: each row's tuple built in Python from its dict, then one `executemany`;
- `json_each(?)` with one `json_extract` a column;
- where SQLite is 3.45 or newer (the `pysqlite3` package, if it is installed, brings one): each
  object parsed once into JSONB in a materialized CTE, then one `json_extract` a column.

Prints `ratio json-vs-executemany N.NNx` per variant (the JSON path's time over the baseline's;
above 1 the JSON path is slower). Usage: python bench/sqlite_json.py [N] (default 2,000).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import json  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench.normalise import FORM_ID, build_xform, fresh_sqlite, odata_rows  # noqa: E402
from store import schema as s  # noqa: E402
from store.store import Incoming, Store  # noqa: E402


def typed_rows(work: Path, n: int) -> tuple[str, list[str], list[dict]]:
    """The custody visits' typed rows as the store wrote them: (CREATE TABLE, columns, rows)."""
    xform = build_xform(work / "build")
    schema = s.parse_xform(xform)
    url = fresh_sqlite(work / "store.sqlite3")
    st = Store.open(url, upgrade=True)
    st.register_form(xform)
    st.ingest_many([Incoming(r, "central", FORM_ID) for r in odata_rows(schema, n, 3)])
    table = st.form_table(FORM_ID).name
    st.close()
    with sqlite3.connect(work / "store.sqlite3") as conn:
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - the store's own identifiers
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, r, strict=True)) for r in cursor]
    return ddl.replace(table, "copy", 1), columns, rows


def measure(driver, ddl: str, columns: list[str], rows: list[dict]) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" * len(columns))
    document = json.dumps(rows)
    # Identifiers below are the store's own columns; the values go as parameters.
    into = f"INSERT INTO copy ({names})"
    variants = [("json_each", "value", into + " SELECT {} FROM json_each(?)")]  # noqa: S608
    if driver.sqlite_version_info >= (3, 45):
        variants.append(
            (
                "jsonb CTE",
                "j",
                "WITH d AS MATERIALIZED (SELECT jsonb(value) AS j FROM json_each(?)) "  # noqa: S608
                + into
                + " SELECT {} FROM d",
            )
        )
    n = len(rows)
    for label, column, sql in variants:
        extract = ", ".join(f"json_extract({column}, '$.\"{c}\"')" for c in columns)
        for _ in range(2):
            conn = driver.connect(":memory:")
            conn.execute(ddl)
            start = time.perf_counter()
            tuples = [tuple(r[c] for c in columns) for r in rows]
            conn.executemany(f"{into} VALUES ({marks})", tuples)
            baseline = time.perf_counter() - start
            conn.execute("DELETE FROM copy")
            start = time.perf_counter()
            conn.execute(sql.format(extract), (document,))
            ours = time.perf_counter() - start
            held = conn.execute("SELECT count(*) FROM copy").fetchone()[0]
            conn.close()
            assert held == n, held
            print(
                f"  SQLite {driver.sqlite_version}, {label}: tuples + executemany "
                f"{baseline / n * 1e6:.0f} µs a row, JSON {ours / n * 1e6:.0f} µs a row"
            )
        print(
            f"ratio json-vs-executemany ({label}, SQLite {driver.sqlite_version}) {ours / baseline:.2f}x"
        )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory(prefix="nigraan-bench-json-") as tmp:
        ddl, columns, rows = typed_rows(Path(tmp), n)
    print(f"{n} custody-visit rows of {len(columns)} columns")
    drivers = [sqlite3]
    try:
        import pysqlite3  # a newer SQLite than the system's, if installed (not a dependency)

        drivers.append(pysqlite3)
    except ImportError:
        pass
    for driver in drivers:
        measure(driver, ddl, columns, rows)


if __name__ == "__main__":
    main()
