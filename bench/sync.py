"""Benchmark `nigraan sync` against the Central stand-in (not a test).

N submissions (default 100,000; rec_visit rows cycled from the recorded Central data, without
photos so only OData is measured) are served by the stand-in in a separate process. Measured in
this process, each against a fresh SQLite store:

- baseline: merely reading the same OData pages (`$top`, `$count`, `$expand=*`, nextLink) with
  pyodk's session and parsing them;
- full sync: the same pages, stored (typed tables, raw layer) plus deletions, reconciliation and
  attachment checks; reported as a ratio to the baseline (target <= 1.3);
- a no-op incremental sync (target < 1 s);
- peak memory (RSS) of this process (target < 300 MB).

Usage: python bench/sync.py [N] [--database URL]   (default: a fresh SQLite file; a PostgreSQL
URL must name an empty database or schema, e.g. ...?options=-csearch_path%3Dbench)
"""

from __future__ import annotations

import copy
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from store.store import Store  # noqa: E402
from sync.central import Central, CentralSettings  # noqa: E402
from sync.odata import read_pages, submissions_path  # noqa: E402
from sync.pull import sync  # noqa: E402
from tests.central_records import FINAL_PAGES, odata_rows  # noqa: E402

CENTRAL_DIR = ROOT / "tests" / "data" / "central"
PAGE = 1000


def _serve(n: int, queue) -> None:
    from tests.central_standin import CentralStandin

    standin = CentralStandin().serve()
    standin.add_form((CENTRAL_DIR / "forms" / "rec_visit.xml").read_bytes())
    templates = odata_rows(CENTRAL_DIR, *FINAL_PAGES)
    from datetime import UTC, datetime, timedelta

    from tests.central_standin import iso

    first = datetime.now(UTC) - timedelta(minutes=n + 60)  # one a minute, like months of work
    rows = []
    for i in range(n):
        row = copy.deepcopy(templates[i % len(templates)])
        instance = f"uuid:bench-{i:08d}"
        row["__id"] = instance
        row["meta"]["instanceID"] = instance
        row["photo"] = None
        row["__system"].update(
            attachmentsExpected=0,
            attachmentsPresent=0,
            edits=0,
            reviewState=None,
            updatedAt=None,
            submissionDate=iso(first + timedelta(minutes=i)),
        )
        rows.append(row)
    standin.add_rows("rec_visit", rows, keep_dates=True)
    queue.put(standin.base_url)
    while True:
        time.sleep(3600)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    argv = sys.argv[1:]
    database = None
    if "--database" in argv:
        at = argv.index("--database")
        database = argv[at + 1]
        del argv[at : at + 2]
    n = int(argv[0]) if argv else 100_000
    queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(n, queue), daemon=True)
    server.start()
    base_url = queue.get(timeout=600)
    settings = CentralSettings(base_url, "admin@example.com", "pw-not-real", 1, page_size=PAGE)
    central = Central(settings)
    where = "SQLite" if database is None else database.split("://")[0]
    print(f"{n} submissions in the stand-in at {base_url}; pages of {PAGE}; store: {where}")

    start = time.perf_counter()
    params = {"$top": PAGE, "$count": "true", "$expand": "*"}
    read = sum(
        len(p.rows)
        for p in read_pages(central, submissions_path(central, "rec_visit"), params, prefetch=False)
    )
    baseline = time.perf_counter() - start
    print(f"baseline: read {read} rows in {baseline:.2f} s")

    storing = [0.0]
    ingest_many = Store.ingest_many

    def timed_ingest(self, items, *args, **kwargs):  # how much of the sync is the store's
        start = time.perf_counter()
        try:
            return ingest_many(self, items, *args, **kwargs)
        finally:
            storing[0] += time.perf_counter() - start

    Store.ingest_many = timed_ingest
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(database or f"sqlite:///{tmp}/bench.sqlite3", upgrade=True)
        start = time.perf_counter()
        [full] = sync(central, store, ["rec_visit"])
        full_time = time.perf_counter() - start
        full_storing = storing[0]
        assert full.new == n, full
        start = time.perf_counter()
        [noop] = sync(central, store, ["rec_visit"])
        noop_time = time.perf_counter() - start
        assert noop.new == 0 and noop.changed == 0, noop
        store.close()
    print(
        f"full sync:            {full_time:.2f} s  = {full_time / baseline:.2f} x baseline "
        "(target <= 1.3)"
    )
    print(
        f"  of which Store.ingest_many: {full_storing:.2f} s ({full_storing / n * 1e6:.0f} us "
        f"per submission); the rest: {full_time - full_storing:.2f} s "
        f"= {(full_time - full_storing) / baseline:.2f} x baseline"
    )
    print(f"no-op incremental:    {noop_time:.2f} s  (target < 1 s)")
    print(f"peak memory (RSS):    {_rss_mb():.0f} MB  (target < 300 MB)")
    central.close()
    server.terminate()


if __name__ == "__main__":
    main()
