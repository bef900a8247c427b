"""Benchmark `nigraan sync` against the Central stand-in (not a test).

Three runs, each against its own stand-in process (built from the recorded Central data, rows
cycled from rec_visit) and a fresh store:

- fast: N submissions without photos, served as fast as the stand-in can. Baseline: merely
  reading the same OData pages (`$top`, `$count`, `$expand=*`, nextLink) with pyodk's session
  and parsing them, one after the other. Then a full sync (pages stored: raw layer, typed
  tables; deletions, reconciliation, attachment checks), its ratio to the baseline (target
  <= 1.3), a no-op incremental sync (target < 1 s) and the peak memory (target < 300 MB);
- slow: the same N submissions from a stand-in as slow as a real Central (2,500 rows a second
  with `$expand=*`). Here a sync that stores while it reads takes about as long as the reading
  alone (target <= 1.1);
- files: F submissions, each with a photo, at that pace, and every file download taking
  FILE_SECONDS (a round trip). Baseline: reading the pages, then downloading every file with
  `central.download_workers` connections, storing nothing. The real Central of the issue took
  72.5 s for 2,000 visits with 3,384 photos against 5.7 s to read the pages.

Each run prints a line `ratio sync-vs-read[-slow|-files] N.NNx`.

Against a real ODK Central instead (`--central FORM`): a first sync of that form, whose
submissions have files, from the Central that NIGRAAN_CENTRAL_BASE_URL, _USERNAME, _PASSWORD and
_PROJECT_ID name (the password from the environment, never printed). Baseline: reading its pages,
then downloading every file the rows name with `central.download_workers` connections. Prints
`ratio sync-vs-read-central N.NNx` (the issue's target: <= 1.3).

Usage: python bench/sync.py [N] [--files F] [--slow N] [--rows-per-second R] [--database URL]
       python bench/sync.py --central FORM [--database URL]
  N: submissions of the fast and slow runs (default 100,000); --slow: of the slow run only;
  --rows-per-second: the slow stand-in's pace (default 2,500);
  --files: submissions with photos (default 2,000; 0 skips the run); --database: a PostgreSQL
  URL (e.g. postgresql+psycopg://postgres@127.0.0.1/test): each run gets its own schema
  bench_sync_<run>, dropped and made again. Default: a fresh SQLite file per run.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this folder would come first on the path and bench/queue.py would shadow
# the standard library's queue (urllib3 needs it): the repository's root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from store.incoming import values_at  # noqa: E402
from store.schema import parse_xform  # noqa: E402
from store.store import Store  # noqa: E402
from sync.central import Central, CentralSettings  # noqa: E402
from sync.odata import read_pages, submissions_path  # noqa: E402
from sync.pull import sync  # noqa: E402
from tests.central_records import numbered_rows  # noqa: E402

CENTRAL_DIR = ROOT / "tests" / "data" / "central"
FORM = "rec_visit"
PAGE = 1000
ROWS_PER_SECOND = 2500.0  # a real Central v2026.2.2 with $expand=* on this machine's kind
FILE_SECONDS = 0.01  # one attachment download's round trip
FILE_BYTES = 60_000  # about a phone's photo at Collect's reduced size
WORKERS = 6  # central.download_workers' default
REC_VISIT_FILES = parse_xform(
    (CENTRAL_DIR / "forms" / "rec_visit.xml").read_bytes()
).attachment_paths


def _photo(i: int) -> bytes:
    seed = hashlib.sha256(f"bench photo {i}".encode()).digest()
    return (seed * (FILE_BYTES // len(seed) + 1))[:FILE_BYTES]


def _serve(n: int, photos: bool, rows_per_second: float | None, queue) -> None:
    from tests.central_standin import CentralStandin

    standin = CentralStandin().serve()
    standin.add_form((CENTRAL_DIR / "forms" / "rec_visit.xml").read_bytes())
    first = datetime.now(UTC) - timedelta(minutes=n + 60)  # one a minute, like months of work
    rows = numbered_rows(CENTRAL_DIR, n, first, photos=photos)
    files = None
    if photos:
        files = {r["__id"]: {r["photo"]: (_photo(i), "image/jpeg")} for i, r in enumerate(rows)}
    standin.add_rows(FORM, rows, keep_dates=True, attachments=files)
    del rows, files
    standin.rows_per_second = rows_per_second
    standin.file_seconds = FILE_SECONDS if photos else 0.0
    queue.put(standin.base_url)
    while True:
        time.sleep(3600)


class Standin:
    """A stand-in in its own process (its serving does not compete with this one's GIL)."""

    def __init__(self, n: int, photos: bool = False, rows_per_second: float | None = None):
        queue = multiprocessing.Queue()
        self.process = multiprocessing.Process(
            target=_serve, args=(n, photos, rows_per_second, queue), daemon=True
        )
        self.process.start()
        self.base_url = queue.get(timeout=900)

    def central(self) -> Central:
        extra = {}  # main before this change had no download_workers: the bench runs on both
        if "download_workers" in {f.name for f in dataclasses.fields(CentralSettings)}:
            extra["download_workers"] = WORKERS
        settings = CentralSettings(
            self.base_url, "admin@example.com", "pw-not-real", 1, page_size=PAGE, **extra
        )
        return Central(settings)

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(timeout=30)


def store_url(database: str | None, run: str, tmp: str) -> str:
    """A fresh, empty store for one run: a new SQLite file, or a new PostgreSQL schema."""
    if database is None:
        return f"sqlite:///{tmp}/{run}.sqlite3"
    from sqlalchemy import create_engine, text

    schema = f"bench_sync_{run}"
    engine = create_engine(database)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    joiner = "&" if "?" in database else "?"
    return f"{database}{joiner}options=-csearch_path%3D{schema}"


def read_all(central: Central, form: str = FORM, paths=None) -> list[tuple[str, str]]:
    """The baseline: every page of the feed, one after the other, parsed; the (root id, file
    name) pairs its rows name at the form's attachment `paths` (rec_visit's by default), read
    as the store reads them."""
    paths = paths if paths is not None else REC_VISIT_FILES
    params = {"$top": PAGE, "$count": "true", "$expand": "*"}
    url = submissions_path(central, form)
    named = []
    for page in read_pages(central, url, params, prefetch=False):
        for row in page.rows:
            names = [
                v for parts in paths for v in values_at(row, parts) if isinstance(v, str) and v
            ]
            named += [(row["__id"], name) for name in dict.fromkeys(names)]
    return named


def download_all(central: Central, named: list[tuple[str, str]], form: str = FORM) -> int:
    """The files' baseline: every file downloaded with WORKERS connections, kept nowhere."""
    template = "projects/{project_id}/forms/{form_id}/submissions/{root_id}/attachments/{name}"

    def one(entry):
        root_id, name = entry
        path = central.path(template, form_id=form, root_id=root_id, name=name)
        return len(central.get(path).content)

    with ThreadPoolExecutor(WORKERS) as pool:
        return sum(pool.map(one, named))


class StoreClock:
    """How much of a sync is the store's ingest (Store.ingest_many, timed)."""

    def __init__(self):
        self.seconds = 0.0
        ingest_many = Store.ingest_many
        clock = self

        def timed(store, items, *args, **kwargs):
            start = time.perf_counter()
            try:
                return ingest_many(store, items, *args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - start

        Store.ingest_many = timed


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_sync(central: Central, store: Store, form: str = FORM) -> tuple[float, object]:
    start = time.perf_counter()
    [result] = sync(central, store, [form])
    return time.perf_counter() - start, result


def read_then_download(central: Central, form: str = FORM, paths=None):
    """The files' baseline, timed: (named files, bytes, seconds reading, seconds in all)."""
    start = time.perf_counter()
    named = read_all(central, form, paths)
    read_time = time.perf_counter() - start
    size = download_all(central, named, form)
    return named, size, read_time, time.perf_counter() - start


def run_fast(n: int, database: str | None, tmp: str, clock: StoreClock) -> None:
    standin = Standin(n)
    central = standin.central()
    start = time.perf_counter()
    read_all(central)
    baseline = time.perf_counter() - start
    print(f"fast: {n} submissions; baseline: read the pages in {baseline:.2f} s")
    store = Store.open(store_url(database, "fast", tmp), upgrade=True)
    clock.seconds = 0.0
    full_time, full = timed_sync(central, store)
    storing = clock.seconds
    assert full.new == n, full
    noop_time, noop = timed_sync(central, store)
    assert noop.new == 0 and noop.changed == 0, noop
    store.close()
    central.close()
    standin.stop()
    print(f"  full sync {full_time:.2f} s; of which Store.ingest_many {storing:.2f} s")
    print(f"  ({storing / n * 1e6:.0f} us a submission, {storing / baseline:.2f}x the reading)")
    print(f"  no-op incremental sync {noop_time:.2f} s (target < 1 s)")
    print(f"ratio sync-vs-read {full_time / baseline:.2f}x  (target <= 1.3)")


def run_slow(n: int, database: str | None, tmp: str, clock: StoreClock, pace: float) -> None:
    standin = Standin(n, rows_per_second=pace)
    central = standin.central()
    start = time.perf_counter()
    read_all(central)
    baseline = time.perf_counter() - start
    print(
        f"slow: {n} submissions at {pace:.0f} rows/s; baseline: read the pages in {baseline:.2f} s"
    )
    store = Store.open(store_url(database, "slow", tmp), upgrade=True)
    clock.seconds = 0.0
    full_time, full = timed_sync(central, store)
    assert full.new == n, full
    store.close()
    central.close()
    standin.stop()
    print(f"  full sync {full_time:.2f} s; of which Store.ingest_many {clock.seconds:.2f} s")
    floor = max(baseline, clock.seconds)  # overlapped fully, a sync takes the longer of the two
    print(
        f"  the longer of reading and storing: {floor:.2f} s; the sync took {full_time / floor:.2f}x that"
    )
    print(f"ratio sync-vs-read-slow {full_time / baseline:.2f}x  (target <= 1.1)")


def run_files(n: int, database: str | None, tmp: str, clock: StoreClock, pace: float) -> None:
    standin = Standin(n, photos=True, rows_per_second=pace)
    central = standin.central()
    _, size, read_time, baseline = read_then_download(central)
    print(
        f"files: {n} submissions with a photo each ({size / 1e6:.0f} MB), pages at "
        f"{pace:.0f} rows/s, {FILE_SECONDS * 1000:.0f} ms a file; baseline: read "
        f"the pages in {read_time:.2f} s, download the files with {WORKERS} connections in "
        f"{baseline - read_time:.2f} s"
    )
    store = Store.open(store_url(database, "files", tmp), upgrade=True)
    clock.seconds = 0.0
    full_time, full = timed_sync(central, store)
    assert full.new == n and full.attachments == n, full
    store.close()
    central.close()
    standin.stop()
    print(f"  full sync {full_time:.2f} s; of which Store.ingest_many {clock.seconds:.2f} s")
    print(f"ratio sync-vs-read-files {full_time / baseline:.2f}x  (target <= 1.3)")


def run_central(form: str, database: str | None, tmp: str, clock: StoreClock) -> None:
    """A first sync of `form` from the real ODK Central that NIGRAAN_CENTRAL_* name, against
    reading its pages and then downloading its files with WORKERS connections."""
    env = os.environ
    settings = CentralSettings(
        env["NIGRAAN_CENTRAL_BASE_URL"].rstrip("/"),
        env["NIGRAAN_CENTRAL_USERNAME"],
        env["NIGRAAN_CENTRAL_PASSWORD"],
        int(env["NIGRAAN_CENTRAL_PROJECT_ID"]),
        page_size=PAGE,
        download_workers=WORKERS,
    )
    central = Central(settings)
    xform = central.get(central.path("projects/{project_id}/forms/{form_id}.xml", form_id=form))
    paths = parse_xform(xform.content).attachment_paths
    named, size, read_time, baseline = read_then_download(central, form, paths)
    rows = len({root_id for root_id, _ in named})
    print(
        f"central: {settings.shown_url}, form {form}: {rows} submissions with files, "
        f"{len(named)} files ({size / 1e6:.0f} MB); baseline: read the pages in "
        f"{read_time:.2f} s, download the files with {WORKERS} connections in "
        f"{baseline - read_time:.2f} s"
    )
    store = Store.open(store_url(database, "central", tmp), upgrade=True)
    clock.seconds = 0.0
    full_time, full = timed_sync(central, store, form)
    store.close()
    central.close()
    print(
        f"  full sync {full_time:.2f} s: {full.new} new, {full.attachments} files; of which "
        f"Store.ingest_many {clock.seconds:.2f} s"
    )
    if full.attachments != len(named):
        print(f"  the sync stored {full.attachments} files of the {len(named)} the rows name")
    print(f"ratio sync-vs-read-central {full_time / baseline:.2f}x  (target <= 1.3)")


def main() -> None:
    argv = sys.argv[1:]
    options = {
        "--database": None,
        "--files": "2000",
        "--slow": None,
        "--rows-per-second": None,
        "--central": None,
    }
    for name in options:
        if name in argv:
            at = argv.index(name)
            options[name] = argv[at + 1]
            del argv[at : at + 2]
    n = int(argv[0]) if argv else 100_000
    database = options["--database"]
    slow = int(options["--slow"]) if options["--slow"] is not None else n
    files = int(options["--files"])
    pace = float(options["--rows-per-second"] or ROWS_PER_SECOND)
    where = "SQLite" if database is None else database.split("://")[0]
    print(f"store: {where}; pages of {PAGE}")
    clock = StoreClock()
    with tempfile.TemporaryDirectory() as tmp:
        if options["--central"]:
            run_central(options["--central"], database, tmp, clock)
            return
        if n:
            run_fast(n, database, tmp, clock)
        if slow:
            run_slow(slow, database, tmp, clock, pace)
        if files:
            run_files(files, database, tmp, clock, pace)
    print(f"peak memory (RSS) of the syncing process: {_rss_mb():.0f} MB  (target < 300 MB)")


if __name__ == "__main__":
    main()
