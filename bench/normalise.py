"""Benchmark: normalising Central OData rows into the reporting store's typed tables.

Loads N synthetic `custody_visit` submissions (100,000 by default, with 0-3 instances of each
repeat) into a fresh SQLite reporting store with `Store.ingest_many`, then loads the very same
documents, in the same process, with a naive baseline: `pandas.json_normalize` per chunk of
10,000 rows (the submission table plus one `record_path` frame per repeat) and `DataFrame.to_sql`
into a second fresh SQLite file. The store does the full job (raw payload kept verbatim, the
logical submission, typed and validated columns, repeat row ids, problems); the baseline only
flattens and appends whatever pandas infers.

Target (issue): at least 2x the baseline's speed on SQLite and on PostgreSQL (`--database`,
both runs then write to schemas of their own in that database), peak memory under 300 MB.

How it is measured:

* The submissions come from a deterministic generator (`random.Random(seed)`) driven by the
  form's own schema (`store.schema.parse_xform` of the freshly built XForm), so any form would
  do. Rows are shaped as Central's OData feed read with `$expand=*` returns them: groups as
  objects, repeats as arrays of objects with their `__id` (left out when empty, as Central
  does), JSON numbers, `meta`, `__id` and `__system`. Nothing is pre-generated, so memory
  stays flat. The generator runs inside both timed runs; it is also timed on its own, and
  figures net of generation are printed next to the gross ones.
* Our run goes first; peak memory is `ru_maxrss` read right after it (the whole process:
  interpreter, imports, the form build, and the result list `ingest_many` returns). pandas is
  imported only after that reading, and the baseline runs after it.
* Both SQLite files are opened with the store's engine (WAL, synchronous=FULL), so the two runs
  write to the same kind of database. Store.open and form registration are not timed.

Run from the repository root:

    .venv/bin/python bench/normalise.py                  # 100,000 submissions
    .venv/bin/python bench/normalise.py --count 5000     # quick check
    .venv/bin/python bench/normalise.py --skip-baseline --db-dir /tmp/nigraan-bench
    .venv/bin/python bench/normalise.py --database postgresql+psycopg://postgres@127.0.0.1/test

Exits 1 when a submission was not "created" or raised a problem (the data is valid, so either
is a bug), after printing the first few.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.engine import make_url

from forms.build import build_forms
from nigraan.config import load_config
from store import schema as s
from store.database import create_store_engine
from store.rows import repeat_row_id
from store.store import BATCH, CENTRAL, CREATED, Incoming, Store

FORM_ID = "custody_visit"
NULL_SHARE = 0.1  # share of leaves left empty (skipped by relevance, say)
MAX_REPEATS = 3  # each repeat gets 0..MAX_REPEATS instances
POOL = 64  # distinct values drawn per field at set-up; rows pick from these

# ------------------------------------------------------------------------------ the documents

LEAF, GROUP, REPEAT, INSTANCE = "leaf", "group", "repeat", "instance"


def build_xform(work: Path) -> bytes:
    """Build the form with the project's own pipeline (no ODK Validate) and return its XForm."""
    config = load_config(
        overrides={
            "instance_dir": work / "instance",
            "forms.lock_file": work / "built-versions.json",
            "forms.public_key_file": work / "keys" / "form-public.pem",
            "forms.validate": False,
        },
        environ={},
    )
    report = build_forms(config, [FORM_ID])
    if not report.ok:
        problems = [str(p) for f in report.forms for p in f.problems] + [
            str(p) for p in report.list_problems
        ]
        raise SystemExit(f"Building {FORM_ID} failed:\n" + "\n".join(problems))
    return (config["forms.build_dir"] / f"{FORM_ID}.xml").read_bytes()


def _value_pool(f: s.Field, rng: random.Random) -> list[Any]:
    """Valid OData (JSON) values for one field, as Central would return them."""
    base = datetime(2026, 1, 1, 8, 0, 0)
    kind = f.kind
    if kind == s.INTEGER:
        return [rng.randint(0, 60) for _ in range(POOL)]
    if kind == s.DECIMAL:
        return [round(rng.uniform(0, 250), 2) for _ in range(POOL)]
    if kind == s.DATE:
        return [(base + timedelta(days=rng.randrange(330))).date().isoformat() for _ in range(POOL)]
    if kind == s.DATETIME:
        return [
            (base + timedelta(seconds=rng.randrange(330 * 86400))).isoformat() + ".123+05:00"
            for _ in range(POOL)
        ]
    if kind == s.TIME:
        return [
            f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.000+05:00"
            for _ in range(POOL)
        ]
    if kind == s.SELECT_ONE:
        return [c.name for c in f.choices] or ["other"]
    if kind == s.SELECT_MULTIPLE:
        names = [c.name for c in f.choices] or ["other"]
        return [
            " ".join(rng.sample(names, rng.randint(1, min(3, len(names))))) for _ in range(POOL)
        ]
    if kind == s.GEOPOINT:  # a fresh dict per row (see _leaf), these are the coordinates
        return [
            (
                round(rng.uniform(60, 77), 5),
                round(rng.uniform(24, 37), 5),
                rng.randint(0, 2000),
                rng.randint(2, 30),
            )
            for _ in range(POOL)
        ]
    if kind == s.ATTACHMENT:
        return [f"{1764300000000 + rng.randrange(10**6)}.jpg" for _ in range(POOL)]
    if kind == s.TEXT:
        words = ("noted", "cell", "ward", "register", "staff", "visit", "follow-up", "women")
        return [
            f"{' '.join(rng.choices(words, k=rng.randint(1, 6)))} {rng.randrange(1000)}"
            for _ in range(POOL)
        ]
    return [None]  # notes, geotrace/geoshape, deprecatedID: left empty


def _leaf(f: s.Field, rng: random.Random) -> Callable[[Callable[[], float]], Any]:
    """A picker: one call of the row generator's random() per leaf."""
    if f.kind == s.NOTE:
        return lambda rand: None
    values = _value_pool(f, rng)
    pool = values + [None] * max(1, round(len(values) * NULL_SHARE / (1 - NULL_SHARE)))
    n = len(pool)
    if f.kind == s.GEOPOINT:

        def point(rand):
            value = pool[int(rand() * n)]
            if value is None:
                return None
            lon, lat, alt, acc = value
            return {
                "type": "Point",
                "coordinates": [lon, lat, alt],
                "properties": {"accuracy": acc},
            }

        return point
    return lambda rand: pool[int(rand() * n)]


def form_tree(schema: s.FormSchema, rng: random.Random) -> list:
    """The OData row's shape in form order: [(name, LEAF|GROUP|REPEAT|INSTANCE, spec), ...]."""
    trees: dict[str, dict] = {r: {} for r in [""] + [rp.path for rp in schema.repeats]}
    parents = {r.path: r.parent for r in schema.repeats}
    placed: set[str] = {""}

    def node(tree: dict, parts: list[str]) -> dict:
        for part in parts:
            tree = tree.setdefault(part, (GROUP, {}))[1]
        return tree

    def place(repeat: str) -> None:
        if repeat in placed:
            return
        parent = parents[repeat]
        place(parent)
        local = repeat[len(parent) + 1 :] if parent else repeat
        *groups, name = local.split("/")
        node(trees[parent], groups)[name] = (REPEAT, trees[repeat])
        placed.add(repeat)

    for f in schema.fields:
        place(f.repeat)
        *groups, name = f.local_path.split("/")
        spec = (INSTANCE, None) if f.kind == s.INSTANCE_ID else (LEAF, _leaf(f, rng))
        node(trees[f.repeat], groups)[name] = spec
    for r in schema.repeats:
        place(r.path)

    def freeze(tree: dict) -> list:
        return [
            (name, kind, freeze(spec) if kind in (GROUP, REPEAT) else spec)
            for name, (kind, spec) in tree.items()
        ]

    return freeze(trees[""])


def _fill(tree: list, rand, root_id: str, chain: list, link: str) -> dict:
    out: dict[str, Any] = {}
    for name, kind, spec in tree:
        if kind is LEAF:
            out[name] = spec(rand)
        elif kind is GROUP:
            out[name] = _fill(spec, rand, root_id, [*chain, (name, None)], f"{link}/{name}")
        elif kind is INSTANCE:
            out[name] = root_id
        else:
            count = int(rand() * (MAX_REPEATS + 1))
            if not count:  # Central leaves out an empty repeat altogether
                continue
            items = []
            for i in range(count):
                item_chain = [*chain, (name, i)]
                item_id = repeat_row_id(root_id, item_chain)
                item = _fill(spec, rand, root_id, item_chain, f"{link}/{name}('{item_id}')")
                item["__id"] = item_id
                items.append(item)
            out[f"{name}@odata.navigationLink"] = f"{link}/{name}"
            out[name] = items
    return out


def odata_rows(schema: s.FormSchema, count: int, seed: int) -> Iterator[dict]:
    """`count` OData rows as read with $expand=*; the same rows for the same seed."""
    rng = random.Random(seed)
    tree = form_tree(schema, rng)
    rand = rng.random
    submitted = datetime(2026, 11, 1, 0, 0, 0)
    for n in range(count):
        instance_id = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        row = _fill(tree, rand, instance_id, [], f"Submissions('{instance_id}')")
        meta = row.get("meta")
        if isinstance(meta, dict) and meta.get("instanceName") is None:
            meta["instanceName"] = f"visit {n}"
        row["__id"] = instance_id
        row["__system"] = {
            "submissionDate": (submitted + timedelta(seconds=n)).isoformat() + ".000Z",
            "updatedAt": None,
            "submitterId": "7",
            "submitterName": "collector-1",
            "attachmentsPresent": 0,
            "attachmentsExpected": 0,
            "status": None,
            "reviewState": None,
            "deviceId": None,
            "edits": 0,
            "formVersion": schema.version,
            "deletedAt": None,
        }
        yield row


# -------------------------------------------------------------------------------- the runs


def fresh_sqlite(path: Path) -> str:
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)
    return f"sqlite:///{path}"


class PostgresSchemas:
    """Fresh schemas in one PostgreSQL database, one per run, dropped at the end."""

    def __init__(self, url: str):
        self.url = make_url(url)
        self.admin = create_engine(self.url)
        self.made: list[str] = []

    def fresh(self, name: str) -> str:
        schema = f"nigraan_bench_{name}_{os.getpid()}"
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        self.made.append(schema)
        url = self.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.begin() as conn:
            for schema in self.made:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self.admin.dispose()


def count_rows(engine, table_names) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in table_names.items()
        }


def run_ours(st: Store, schema: s.FormSchema, count: int, seed: int, batch: int):
    items = (Incoming(row, CENTRAL, FORM_ID) for row in odata_rows(schema, count, seed))
    start = time.perf_counter()
    results = st.ingest_many(items, batch_size=batch)
    return time.perf_counter() - start, results


def time_generator(schema: s.FormSchema, count: int, seed: int) -> float:
    start = time.perf_counter()
    for _ in odata_rows(schema, count, seed):
        pass
    return time.perf_counter() - start


def run_baseline(url: str, schema: s.FormSchema, count: int, seed: int, chunk: int):
    """json_normalize + to_sql per chunk; returns (seconds, {table: rows}).

    Naive on purpose: pandas infers the column types, list-valued columns are dropped. A
    nested repeat's record_path needs every item on the way to hold it, which pandas does not
    check for us; custody_visit has a single, top-level repeat.
    """
    import pandas as pd

    engine = create_store_engine(url)
    main_table = schema.form_id
    # One table per repeat, its rows pulled by record_path and linked by the submission __id.
    repeats = [(r.path.replace("/", "_"), r.path.split("/")) for r in schema.repeats]

    def has_path(row, parts):
        for part in parts:
            if isinstance(row, list):
                return bool(row)
            if not isinstance(row, dict) or part not in row:
                return False
            row = row[part]
        return bool(row)

    def write(rows: list[dict]) -> None:
        frame = pd.json_normalize(rows, sep="_")
        frame = frame.drop(columns=_list_columns(frame))
        frame.to_sql(main_table, engine, if_exists="append", index=False)
        for name, record_path in repeats:
            with_items = [r for r in rows if has_path(r, record_path)]
            if not with_items:
                continue
            items = pd.json_normalize(
                with_items,
                record_path=record_path,
                meta=["__id"],
                meta_prefix="submission",
                sep="_",
                errors="ignore",
            )
            items = items.drop(columns=_list_columns(items))
            items.to_sql(name, engine, if_exists="append", index=False)

    start = time.perf_counter()
    rows: list[dict] = []
    for row in odata_rows(schema, count, seed):
        rows.append(row)
        if len(rows) >= chunk:
            write(rows)
            rows = []
    if rows:
        write(rows)
    seconds = time.perf_counter() - start
    names = inspect(engine).get_table_names()
    with engine.connect() as conn:
        counts = {
            # Identifiers are the quoted names of our own tables.
            n: conn.exec_driver_sql(f'SELECT count(*) FROM "{n}"').scalar_one()  # noqa: S608
            for n in names
        }
    engine.dispose()
    return seconds, counts


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _list_columns(frame) -> list[str]:
    """Columns json_normalize left holding lists (nested repeats, GeoJSON coordinates)."""
    out = []
    for column in frame.columns:
        present = frame[column].dropna()
        if "@odata" in column or (len(present) and isinstance(present.iloc[0], list)):
            out.append(column)
    return out


def _timing(label: str, seconds: float, generation: float, n: int) -> str:
    net = seconds - generation
    return (
        f"{label:20} {seconds:8.2f} s {n / seconds:9,.0f}/s"
        f"    net of generation {net:8.2f} s {n / net:9,.0f}/s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="submissions (100000)")
    parser.add_argument("--db-dir", type=Path, help="where the SQLite files go (a temp dir)")
    parser.add_argument(
        "--database",
        help="a PostgreSQL URL (postgresql+psycopg://...): both runs write to fresh schemas in it",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="time the store only")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument(
        "--batch-size", type=int, default=BATCH, help=f"ingest_many batch ({BATCH})"
    )
    parser.add_argument("--chunk", type=int, default=10_000, help="baseline chunk (10000)")
    args = parser.parse_args(argv)
    n = args.count

    with tempfile.TemporaryDirectory(prefix="nigraan-bench-") as tmp:
        work = Path(tmp)
        db_dir = args.db_dir or work / "db"
        db_dir.mkdir(parents=True, exist_ok=True)
        xform = build_xform(work / "build")
        schema = s.parse_xform(xform)

        schemas = PostgresSchemas(args.database) if args.database else None
        ours_url = schemas.fresh("ours") if schemas else fresh_sqlite(db_dir / "ours.sqlite3")
        st = Store.open(ours_url, upgrade=True)
        st.register_form(xform)
        rss_before = max_rss_mb()
        ours_s, results = run_ours(st, schema, n, args.seed, args.batch_size)
        rss_peak = max_rss_mb()

        statuses: dict[str, int] = {}
        for r in results:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        problems = [(r.instance_id, p) for r in results for p in r.problems]
        odd = [r for r in results if r.status != CREATED]
        del results
        ours_counts = count_rows(st.engine, {t.name: t for t in st.form_tables(FORM_ID).values()})
        stored = st.counts()
        st.close()

        gen_s = time_generator(schema, n, args.seed)
        if not args.skip_baseline:
            base_url = (
                schemas.fresh("baseline") if schemas else fresh_sqlite(db_dir / "baseline.sqlite3")
            )
            base_s, base_counts = run_baseline(base_url, schema, n, args.seed, args.chunk)

        shape = f"{len(schema.fields)} fields, {len(schema.repeats)} repeat(s)"
        print(f"form                 {schema.form_id} {schema.version} ({shape})")
        print(f"submissions          {n:,} (seed {args.seed}, ingest batch {args.batch_size})")
        if schemas:
            print(f"database             PostgreSQL, schemas {', '.join(schemas.made)} (dropped)")
        else:
            print(f"sqlite files         {db_dir}" + ("" if args.db_dir else " (temporary)"))
        print(f"generator alone      {gen_s:8.2f} s {n / gen_s:9,.0f}/s")
        print(_timing("ours (Store)", ours_s, gen_s, n))
        if not args.skip_baseline:
            print(_timing("baseline (pandas)", base_s, gen_s, n))
            net = (base_s - gen_s) / (ours_s - gen_s)
            where = "PostgreSQL" if schemas else "SQLite"
            print(
                f"ratio ours/baseline  {base_s / ours_s:8.2f}x      net of generation {net:.2f}x"
                f"  ({where}, {n:,} submissions)"
            )
        print(f"peak RSS after ours  {rss_peak:8.1f} MB (before ingest_many {rss_before:.1f} MB)")
        print(f"statuses             {statuses}")
        print(f"problems             {len(problems)}")
        for instance_id, p in problems[:5]:
            print(f"    {instance_id} {p.code} {p.path} {p.value!r}: {p.message}")
        for r in odd[:5]:
            print(f"    not created: {r.instance_id} {r.status}: {r.message}")
        print(f"store counts         {stored}")
        print("typed tables (ours)")
        for name, rows in ours_counts.items():
            print(f"    {name:48} {rows:10,}")
        if not args.skip_baseline:
            print("baseline tables")
            for name, rows in base_counts.items():
                print(f"    {name:48} {rows:10,}")
        if schemas:
            schemas.drop()
        if args.db_dir is None:
            shutil.rmtree(db_dir, ignore_errors=True)
    return 0 if not odd and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
