"""Benchmark: the review queue's first page and a filtered page on a large SQLite store.

Fills a fresh SQLite store (migrated to the newest revision) with N submissions (100,000 by
default) spread over the programme's forms, written straight into `submissions`,
`submission_summary` and `flags` with executemany (the queue reads only those; no payloads or
typed rows are needed), then times, each the best of 5 runs in the same process:

* the first page (every form, newest first, 50 rows, counts per state, flags of the page);
* a filtered page (one form, one review state, a district, a date range, free text on codes);
* a caseworker's first page (the four survivor forms, her support unit);
* the baseline: a plain `SELECT count(*) FROM submissions`.

Target (issue): each page well under 0.5 s. Run from the repository root:

    .venv/bin/python bench/review_queue.py                # 100,000 submissions
    .venv/bin/python bench/review_queue.py --count 10000
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from store import tables as t
from store.review_queue import QueueFilter
from store.store import Store

FORMS = [
    "survivor_registration",
    "survivor_intake",
    "service_contact",
    "case_closure",
    "custody_visit",
    "training_event",
    "training_participant",
    "advocacy_event",
]
STATES = [None, None, None, "hasIssues", "edited", "approved", "approved", "rejected"]
DISTRICTS = ["lahore", "multan", "faisalabad", "rawalpindi", "bahawalpur", "sargodha"]


def fill(store: Store, count: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    subs, summary, flags = [], [], []
    for i in range(count):
        form = rng.choice(FORMS)
        root = f"uuid:{i:08d}-bench"
        received = start + timedelta(seconds=i * 150 + rng.randrange(100))
        subs.append(
            {
                "form_id": form,
                "root_id": root,
                "current_instance_id": root,
                "form_version": "1",
                "source": "openrosa",
                "encrypted": False,
                "edits": 0,
                "first_received_at": received,
                "updated_at": received,
                "submitter_name": f"tablet-{rng.randrange(40)}",
                "device_id": f"collect:{rng.randrange(40)}",
                "review_state": rng.choice(STATES),
                "normalised": "typed",
            }
        )
        summary.append(
            {
                "form_id": form,
                "root_id": root,
                "district": rng.choice(DISTRICTS),
                "facility": f"ps-{rng.randrange(300)}",
                "support_unit": f"ssu_{rng.randrange(6)}",
                "codes": f"lhr-{i:05d} m{rng.randrange(50)}",
            }
        )
        if rng.random() < 0.05:
            flags.append(
                {
                    "form_id": form,
                    "root_id": root,
                    "rule_id": "unregistered_survivor",
                    "reason_en": "x",
                    "reason_ur": "x",
                    "since": received,
                }
            )
    with store.engine.begin() as conn:
        for table, rows in (
            (t.submissions, subs),
            (t.submission_summary, summary),
            (t.flags, flags),
        ):
            for j in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[j : j + 5000])


def best(fn, runs: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'queue.sqlite'}", upgrade=True)
        began = time.perf_counter()
        fill(store, args.count)
        print(f"filled {args.count:,} submissions in {time.perf_counter() - began:.1f} s")
        everything = QueueFilter(form_ids=tuple(FORMS))
        filtered = QueueFilter(
            form_ids=tuple(FORMS),
            form_id="custody_visit",
            state="approved",
            district="lahore",
            since=datetime(2026, 3, 1, tzinfo=UTC),
            until=datetime(2026, 6, 1, tzinfo=UTC),
            text="m1",
        )

        caseworker = QueueFilter(
            form_ids=(
                "survivor_registration",
                "survivor_intake",
                "service_contact",
                "case_closure",
            ),
            support_unit="ssu_2",
        )

        def count():
            with store.engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(t.submissions)).scalar()

        base, n = best(count)
        first, page = best(lambda: store.review_queue(everything))
        narrow, fpage = best(lambda: store.review_queue(filtered))
        mine, cpage = best(lambda: store.review_queue(caseworker))
        print(f"baseline SELECT count(*) ({n:,} rows)  {base * 1000:8.1f} ms")
        print(f"queue first page ({len(page.rows)} rows of {page.total:,})  {first * 1000:8.1f} ms")
        print(
            f"queue filtered page ({len(fpage.rows)} rows of {fpage.total:,})"
            f"  {narrow * 1000:8.1f} ms"
        )
        print(
            f"caseworker's first page ({len(cpage.rows)} rows of {cpage.total:,})"
            f"  {mine * 1000:8.1f} ms"
        )
        print(f"ratio queue-first-page-vs-count {first / base:.2f}x")
        print(f"ratio queue-filtered-page-vs-count {narrow / base:.2f}x")
        store.close()


if __name__ == "__main__":
    main()
