"""Benchmark: the XLSX export of 100,000 custody visits against pandas.DataFrame.to_excel.

Builds the programme's forms, registers custody_visit in a store (SQLite file, or a PostgreSQL
schema of its own) and fills it with N visits, every question answered (text questions one in
five) and one private interview on average (the repeat), written straight into the tables in
bulk; the store is kept under /tmp (`--cache`) and reused by the next run of the same size.
Then, each in a process of its own so its peak memory (max RSS) is its own:

- ours: `reports.exports.export_form(..., fmt="xlsx")`, the full profile (sheets
  custody_visit, custody_visit-interview and the dictionary);
- baseline: the same rows read with `pandas.read_sql` (the same queries, columns renamed as the
  export names them) and written with `DataFrame.to_excel` into the same two sheets (pandas'
  default engine), timed with and without the reads.

    .venv/bin/python bench/export.py                      # SQLite, 100,000 visits
    .venv/bin/python bench/export.py --count 10000
    .venv/bin/python bench/export.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Targets (issue 13): ours faster than to_excel, peak memory under 300 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FORM = "custody_visit"
POOL = 997  # distinct answer sets, cycled (a prime, so they do not line up with pages)


def _config(tmp: Path, url: str):
    from nigraan.config import load_config

    return load_config(
        overrides={
            "instance_dir": str(tmp / "instance"),
            "forms.lock_file": str(tmp / "versions.json"),
            "forms.public_key_file": str(tmp / "keys" / "form-public.pem"),
            "forms.validate": False,
            "database.url": url,
        },
        environ={},
    )


def _answers(schema, columns, repeat: str, rng: random.Random) -> dict:
    """One submission's (or repeat row's) typed values, by store column."""
    from nigraan import xform as x

    row = {}
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(525_600))
    for f in schema.fields:
        if f.repeat != repeat or f.kind in (x.NOTE, x.INSTANCE_ID):
            continue
        column = columns.get((repeat, f.path, ""))
        if f.kind == x.GEOPOINT:
            for part, value in zip(
                ("latitude", "longitude", "altitude", "accuracy"),
                (31.5 + rng.random(), 74.3 + rng.random(), 210.0, 5.0),
                strict=True,
            ):
                row[columns[(repeat, f.path, part)]] = value
        elif column is None:
            continue
        elif f.kind == x.INTEGER:
            row[column] = rng.randrange(30)
        elif f.kind == x.DECIMAL:
            row[column] = round(rng.random() * 20, 2)
        elif f.kind == x.DATE:
            row[column] = date(2026, 1, 1) + timedelta(days=rng.randrange(365))
        elif f.kind == x.DATETIME:
            row[column] = start + timedelta(minutes=rng.randrange(120))
            row[columns[(repeat, f.path, "utc_offset")]] = 300
        elif f.kind == x.SELECT_ONE and f.choices:
            row[column] = rng.choice(f.choices).name
        elif f.kind == x.SELECT_MULTIPLE and f.choices:
            chosen = rng.sample(f.choices, min(2, len(f.choices)))
            row[column] = " ".join(c.name for c in chosen)
            for c in f.choices:
                flag = columns.get((repeat, f.path, "choice:" + c.name))
                if flag:
                    row[flag] = c in chosen
        elif rng.random() < 0.2 or f.calculated:
            row[column] = f"{f.name} {rng.randrange(1000)}"
    return row


def fill(store, n: int) -> None:
    """n visits, with about one interview each, in bulk."""
    from store import tables as t

    rng = random.Random(13)
    schema = list(store.form_schemas(FORM).values())[-1]
    columns = store.export_columns(FORM)
    tables = store.form_tables(FORM)
    [repeat] = [r.path for r in schema.repeats]
    main, inner = tables[""], tables[repeat]
    # executemany needs every row to name every column: unanswered ones are None.
    blank_visit = {c.name: None for c in main.columns}
    blank_talk = {c.name: None for c in inner.columns}
    visits = [blank_visit | _answers(schema, columns, "", rng) for _ in range(POOL)]
    talks = [blank_talk | _answers(schema, columns, repeat, rng) for _ in range(POOL)]
    step = repeat.rsplit("/", 1)[-1]
    group = repeat.rsplit("/", 1)[0] if "/" in repeat else ""
    received = datetime(2026, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    for first in range(0, n, 5000):
        subs, rows, repeats = [], [], []
        for i in range(first, min(n, first + 5000)):
            root = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            subs.append(
                {
                    "form_id": FORM,
                    "root_id": root,
                    "current_instance_id": root,
                    "form_version": schema.version,
                    "source": "openrosa",
                    "encrypted": False,
                    "edits": 0,
                    "first_received_at": received + timedelta(seconds=i),
                    "updated_at": received + timedelta(seconds=i),
                    "submitter_name": "tablet-1",
                    "device_id": "collect:bench",
                    "normalised": "typed",
                }
            )
            rows.append(
                visits[i % POOL]
                | {"__id": root, "__instance_id": root, "__form_version": schema.version}
            )
            for k in range(i % 3):  # 0, 1 or 2 interviews
                inside = f"{group}#%%" if group else ""
                path = f"Submissions#{root}%%{inside}{step}#{k}"
                repeats.append(
                    talks[(i + k) % POOL]
                    | {
                        "__id": hashlib.sha1(path.encode()).hexdigest(),  # Central's row id
                        "__submission_id": root,
                        "__parent_id": root,
                        "__position": k + 1,
                    }
                )
        with store.engine.begin() as conn:
            conn.execute(insert(t.submissions), subs)
            conn.execute(insert(main), rows)
            if repeats:
                conn.execute(insert(inner), repeats)
    print(f"filled {n:,} visits in {time.perf_counter() - started:.1f} s", flush=True)


def prepare(n: int, url: str | None, cache: Path) -> str:
    """The store's URL, filled once per size and database and kept in `cache`."""
    from forms.build import build_forms
    from nigraan.keys import create_key_pair
    from store.store import Store

    cache.mkdir(parents=True, exist_ok=True)
    done = cache / "filled.json"
    if done.exists():
        return json.loads(done.read_text())["url"]
    if not (cache / "keys" / "form-public.pem").exists():
        create_key_pair(cache / "keys" / "form-public.pem", passphrase=None)
    if url and url.startswith("postgresql"):
        schema = f"bench_export_{uuid.uuid4().hex[:10]}"
        store = Store.open(url)
        with store.engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        store.close()
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    url = url or f"sqlite:///{cache / 'store.sqlite3'}"
    config = _config(cache, url)
    build_forms(config, [FORM])
    store = Store.open(url, upgrade=True)
    try:
        store.register_form((config["forms.build_dir"] / f"{FORM}.xml").read_bytes())
        fill(store, n)
    finally:
        store.close()
    done.write_text(json.dumps({"url": url, "count": n}))
    return url


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def run_ours(url: str, out: Path) -> dict:
    from reports.exports import export_form
    from store.store import Store

    store = Store.open(url)
    started, cpu = time.perf_counter(), time.process_time()
    with open(out, "wb") as f:
        result = export_form(store, FORM, f, fmt="xlsx")
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    store.close()
    return {"seconds": took, "cpu": cpu, "peak_mb": peak_mb(), "rows": result.rows}


def run_pandas(url: str, out: Path) -> dict:
    """The same rows and columns, through pandas: read_sql, then to_excel per sheet."""
    import pandas as pd
    from sqlalchemy import select

    from reports import export_shape as sh
    from store import tables as t
    from store.store import Store

    store = Store.open(url)
    schema = list(store.form_schemas(FORM).values())[-1]
    shape = sh.build_shape(schema, store.export_columns(FORM), sh.FULL, notes=False)
    tables = store.form_tables(FORM)
    started, cpu = time.perf_counter(), time.process_time()
    frames = {}
    sub = t.submissions
    for table in shape:
        stored = tables[table.repeat]
        names = {c.source: c.name for c in table.columns if c.source}
        query = select(*(stored.c[s] for s in names))
        if not table.repeat:
            query = query.join(sub, sub.c.root_id == stored.c["__id"]).order_by(
                sub.c.first_received_at.desc()
            )
        with store.engine.connect() as conn:
            frame = pd.read_sql(query, conn).rename(columns=names)
        for name in frame.columns:  # Excel has no time zones: to_excel refuses aware times
            if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
                frame[name] = frame[name].dt.tz_localize(None)
            elif frame[name].dtype == object:
                first = frame[name].dropna().head(1).tolist()
                if first and isinstance(first[0], datetime) and first[0].tzinfo:
                    frame[name] = pd.to_datetime(frame[name], utc=True).dt.tz_localize(None)
        frames[table.name] = frame
    read = time.perf_counter() - started
    with pd.ExcelWriter(out) as writer:
        for name, frame in frames.items():
            frame.to_excel(writer, sheet_name=name[:31], index=False)
        engine = writer.engine
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    store.close()
    rows = {name: len(frame) for name, frame in frames.items()}
    return {
        "seconds": took,
        "cpu": cpu,
        "read_seconds": read,
        "peak_mb": peak_mb(),
        "rows": rows,
        "engine": engine,
    }


def start(which: str, url: str) -> tuple[subprocess.Popen, Path]:
    out = Path(tempfile.mkdtemp(prefix="nigraan-bench-export-")) / f"{which}.xlsx"
    process = subprocess.Popen(
        [sys.executable, __file__, "--run", which, "--url", url, "--out", str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    return process, out


def finish(process: subprocess.Popen, out: Path) -> dict:
    stdout, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"{process.args[3]} failed (exit {process.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["bytes"] = out.stat().st_size
    out.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--database-url")
    parser.add_argument("--cache", type=Path, help="default /tmp/nigraan-bench-export-<db>-<N>")
    parser.add_argument("--one-by-one", action="store_true", help="not side by side")
    parser.add_argument("--run", choices=("ours", "pandas"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        fn = run_ours if args.run == "ours" else run_pandas
        print(json.dumps(fn(args.url, args.out)))
        return
    kind = "postgresql" if (args.database_url or "").startswith("postgresql") else "sqlite"
    cache = args.cache or Path(tempfile.gettempdir()) / f"nigraan-bench-export-{kind}-{args.count}"
    url = prepare(args.count, args.database_url, cache)
    # Side by side: on a shared machine both then see the same load (each has its own
    # process, so each peak is its own); --one-by-one runs them one after the other.
    if args.one_by_one:
        ours = finish(*start("ours", url))
        baseline = finish(*start("pandas", url))
    else:
        runs = [start("ours", url), start("pandas", url)]
        ours, baseline = (finish(*run) for run in runs)
    rows = ", ".join(f"{k}: {v:,}" for k, v in ours["rows"].items())
    print(f"database: {kind}, {args.count:,} custody visits ({rows})")
    print(
        f"ours (XlsxWriter constant_memory, paged reads): {ours['cpu']:.1f} s CPU "
        f"({ours['seconds']:.1f} s wall), "
        f"peak {ours['peak_mb']:.0f} MB, {ours['bytes'] / 1e6:.1f} MB file"
        + ("" if args.one_by_one else " (both run side by side)")
    )
    print(
        f"pandas read_sql + to_excel ({baseline['engine']}): {baseline['cpu']:.1f} s CPU "
        f"({baseline['seconds']:.1f} s wall, reads {baseline['read_seconds']:.1f} s), peak {baseline['peak_mb']:.0f} MB, "
        f"{baseline['bytes'] / 1e6:.1f} MB file"
    )
    # CPU seconds: on a shared machine the wall clock says more about the neighbours.
    print(f"ratio xlsx-export-vs-to_excel {baseline['cpu'] / ours['cpu']:.2f}x")
    print(f"ratio xlsx-export-vs-to_excel-wall {baseline['seconds'] / ours['seconds']:.2f}x")
    print(f"ratio xlsx-export-peak-memory-vs-to_excel {baseline['peak_mb'] / ours['peak_mb']:.2f}x")
    verdict = "met" if ours["cpu"] < baseline["cpu"] and ours["peak_mb"] < 300 else "MISSED"
    print(f"target (faster than to_excel, peak under 300 MB): {verdict}")


if __name__ == "__main__":
    main()
