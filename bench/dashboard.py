"""Benchmark: the indicators page (/reports) and its XLSX download over a realistic store.

The store is bench/report.py's: the programme's forms registered, N rows per main form written
in bulk into the typed tables the indicators read. The web app runs in this process
(create_app with the in-process writer) and a signed-in supervisor and viewer open the page
with Flask's test client (no network: what is timed is the page's own work). Baseline: the
indicator computation the page is built from (store reads, pandas, published rows) for the same
period, timed the same way; the ratio says what the page adds (a second computation for a
quarter: the quarters and the per-quarter charts come from the whole programme; the charts and
the template); "again" is the same page within a minute, its reports kept.

    .venv/bin/python bench/dashboard.py                   # SQLite, 100,000 per form
    .venv/bin/python bench/dashboard.py --count 20000
    .venv/bin/python bench/dashboard.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

HERE = Path(__file__).resolve().parent
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def signed_in(app, name: str, password: str):
    client = app.test_client()
    token = CSRF.search(client.get("/sign-in").get_data(as_text=True)).group(1)
    answer = client.post("/sign-in", data={"name": name, "password": password, "csrf_token": token})
    assert answer.status_code == 302, answer.status_code
    return client


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    # Python put bench/ first on sys.path, where bench/queue.py shadows the stdlib's queue
    # module the server needs: the repository instead, and nigraan's modules imported here.
    sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]
    from forms.build import build_forms
    from nigraan.config import load_config
    from nigraan.keys import create_key_pair
    from reports.indicators import (
        compute,
        load_definitions,
        load_targets,
        parse_period,
        support_unit_districts,
    )
    from reports.publish import report_rows
    from server import create_app, store_process_options
    from server.store_process import InProcessWriter
    from server.web.accounts import hash_password
    from store.indicator_queries import indicator_rows
    from store.store import Store

    # bench/report.py's store filler, loaded by its path.
    spec = importlib.util.spec_from_file_location("bench_report", HERE / "report.py")
    report_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report_bench)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--database-url")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nigraan-bench-dashboard-"))
    create_key_pair(tmp / "keys" / "form-public.pem", passphrase=None)
    url = args.database_url or f"sqlite:///{tmp / 'store.sqlite3'}"
    schema = None
    if url.startswith("postgresql"):
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        engine = create_engine(url)  # the bare database: no store in it to open
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    config = load_config(
        overrides={
            "instance_dir": str(tmp / "instance"),
            "forms.lock_file": str(tmp / "versions.json"),
            "forms.public_key_file": str(tmp / "keys" / "form-public.pem"),
            "forms.validate": False,
            "database.url": url,
        },
        environ={},
    )
    build_forms(config)
    store = Store.open(url, upgrade=True)
    app = None
    try:
        for path in sorted(config["forms.build_dir"].glob("*.xml")):
            store.register_form(path.read_bytes())
        n = args.count
        report_bench.fill(
            store,
            {
                "survivor_registration": n,
                "service_contact": n,
                "survivor_intake": n,
                "custody_visit": n,
                "training_event": max(1, n // 50),
                "training_participant": n,
                "advocacy_event": n,
            },
        )
        store.people.create("sup", hash_password("sup-password-0123"), "supervisor")
        store.people.create("fun", hash_password("fun-password-0123"), "viewer")
        app = create_app(config, writer=InProcessWriter(url, store_process_options(config)))
        supervisor = signed_in(app, "sup", "sup-password-0123")
        viewer = signed_in(app, "fun", "fun-password-0123")
        definitions = load_definitions()
        districts = support_unit_districts(config["forms.reference_dir"])
        targets = load_targets(config["reports.targets_file"])

        def computation(label, suppressed):
            period = parse_period(label)
            report = compute(
                indicator_rows(store, period.start, period.end),
                definitions,
                period=period,
                ssu_district=districts,
                attendance_threshold=0.8,
                pass_mark=7,
                targets=targets,
            )
            return report_rows(report, suppressed=suppressed)

        def get(client, path):
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.status_code)
            return answer.data

        print(f"database: {store.engine.dialect.name}, {n:,} submissions per main form")
        # A viewer reads the whole programme only; a supervisor any quarter too.
        for label, query, who, client, suppressed in (
            ("all", "", "supervisor", supervisor, False),
            ("all", "", "viewer", viewer, True),
            ("2026-Q3", "?period=2026-Q3", "supervisor", supervisor, False),
        ):
            base = best_of(args.runs, lambda lb=label, s=suppressed: computation(lb, s))

            def cold(c=client, q=query):
                app.extensions.pop("nigraan_reports", None)  # the page's reports, kept 60 s
                return get(c, "/reports" + q)

            page = best_of(args.runs, cold)
            warm = best_of(args.runs, lambda c=client, q=query: get(c, "/reports" + q))
            size = len(get(client, "/reports" + query))
            print(
                f"period {label}, {who}: page {page:.2f} s ({size / 1024:.0f} KiB), again "
                f"within a minute {warm:.2f} s; computation alone {base:.2f} s"
            )
            print(f"ratio dashboard-page/computation {label} {who} {page / base:.2f}x")
            print(f"ratio dashboard-page-again/computation {label} {who} {warm / base:.2f}x")
        xlsx = best_of(args.runs, lambda: get(viewer, "/reports/indicators.xlsx"))
        print(f"XLSX download, whole programme (viewer): {xlsx:.2f} s")
    finally:
        if app is not None:
            app.extensions["nigraan"].close()
        store.close()
        if schema:
            engine = create_engine(args.database_url)
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()


if __name__ == "__main__":
    main()
