"""Benchmark: every programme indicator over a store of 100,000 submissions per main form.

Builds the programme's forms, registers them in a store (SQLite file, or a PostgreSQL schema of
its own) and fills the typed tables the indicators read with N rows per main form
(survivor_registration, service_contact, survivor_intake, custody_visit, training_participant,
advocacy_event; training_event gets N/50 courses). The rows are written straight into the form
tables in bulk: the report reads only those tables, and going through ingest would take minutes
per form without changing what is measured. The filled store is kept under /tmp
(nigraan-bench-report/) and reused by later runs (--fresh rebuilds it). Then times, best of
three runs: the store's reads (SQL), the pandas shaping and the suppressed published rows, for
one quarter and for all periods, against the baseline (the computation before it moved into
SQL, bench/baseline_*.py: every row read into pandas) in the same run, checking that both give
the same figures; and six periods read in one pass against one read per period. The issue's
target: all indicators under 2 s. Wall and CPU seconds are printed: on a shared machine the
CPU time of this process says what the work costs (for SQLite all of it, for PostgreSQL only
the client's part).

    .venv/bin/python bench/report.py                      # SQLite, 100,000 per form
    .venv/bin/python bench/report.py --count 20000 --runs 1
    .venv/bin/python bench/report.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, select, text

# The repository, not bench/ (whose queue.py would shadow the standard library's queue).
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import baseline_indicator_queries as baseline_queries
from bench import baseline_indicators
from forms.build import build_forms
from nigraan.config import load_config
from nigraan.keys import create_key_pair
from reports.indicators import (
    compute,
    compute_periods,
    load_definitions,
    load_targets,
    parse_period,
    support_unit_districts,
    training_groups,
)
from reports.publish import report_rows
from store import tables as t
from store.indicator_queries import FIELDS, indicator_rows
from store.store import Store

SSUS = ["ssu_lahore", "ssu_rawalpindi", "ssu_islamabad"]
DISTRICTS = ["lahore", "rawalpindi", "islamabad"]
SERVICES = [
    "legal_counselling",
    "legal_aid_representation",
    "stress_management_session",
    "life_skills_training",
    "psychosocial_counselling",
]
INSTITUTIONS = ["police", "prisons", "darul_aman_social_welfare", "cso_ngo", "media"]
START = date(2026, 1, 1)


def day(rng: random.Random) -> date:
    return START + timedelta(days=rng.randrange(365))


def rows_for(form_id: str, n: int, rng: random.Random) -> list[dict]:
    """Values by alias (store.indicator_queries.FIELDS) for n submissions."""
    survivors = max(1, n // 3)

    def code():
        return f"LHR-{rng.randrange(survivors):06d}"

    out = []
    for i in range(n):
        if form_id == "survivor_registration":
            v = {
                "survivor_code": f"LHR-{i % survivors:06d}",
                # re-registered on other days (the latest registration is the register's)
                "first_contact": START
                + timedelta(days=120 * (i // survivors % 3))
                + timedelta(days=rng.randrange(120)),
                "ssu_site": rng.choice(SSUS),
                "contact_setting": rng.choice(["jail", "darul_aman"]),
                "consent_services": "yes",
                "consent_reporting": rng.choice(["yes"] * 9 + ["no"]),
            }
        elif form_id == "service_contact":
            v = {
                "survivor_code": code(),
                "service_date": day(rng),
                "ssu_site": rng.choice(SSUS),
                "service_type": rng.choice(SERVICES),
                "provided_how": "provided_by_us",
            }
        elif form_id == "survivor_intake":
            v = {
                "survivor_code": code(),
                "interview_date": day(rng),
                "ssu_site": rng.choice(SSUS),
                "consent_reporting": "yes",
                "custodial_context": rng.choice(["yes", "no"]),
                "gbv_type": "physical_assault",
                "place_type": "police_lockup",
                "referrals_made": rng.choice(["legal_aid", "none"]),
            }
        elif form_id == "custody_visit":
            detained = rng.randrange(0, 8)
            station = rng.randrange(60)
            v = {
                "visit_date": day(rng),
                "facility_type": "police_station",
                "district": DISTRICTS[station % 3],  # a station lies in one district
                "police_station": f"ps_{station}",
                "facility_id": f"ps_{station}",
                "women_detained": detained,
                "women_held_over_24h": rng.randrange(0, detained + 1),
                "meets_minimum_standards": rng.choice(["yes", "no"]),
            }
        elif form_id == "training_event":
            start = day(rng)
            v = {
                "event_id": f"TRN-LHR-{i:05d}",
                "start_date": start,
                "end_date": start + timedelta(days=2),
                "training_district": rng.choice(DISTRICTS),
            }
        elif form_id == "training_participant":
            pre = rng.randrange(0, 8)
            post = min(10, pre + rng.randrange(0, 5))
            station = rng.randrange(60)
            v = {
                "event_id": f"TRN-LHR-{rng.randrange(max(1, n // 50)):05d}",
                "participant_code": f"LHR-POL-{rng.randrange(max(1, n // 2)):06d}",
                "sex": rng.choice(["female", "male"]),
                "institution_type": rng.choice(INSTITUTIONS),
                "district": DISTRICTS[station % 3],
                "police_station": f"ps_{station}",
                "attendance_share": rng.choice([1.0, 0.67, 0.8]),
                "pre_taken": "yes",
                "post_taken": "yes",
                "pre_score": pre,
                "post_score": post,
                "normalised_gain": round((post - pre) / (10 - pre), 3),
                "recorded": day(rng),
            }
        else:  # advocacy_event
            v = {
                "event_date": day(rng),
                "event_type": "seminar",
                "district": rng.choice(DISTRICTS),
                "direct_female": rng.randrange(100),
                "direct_male": rng.randrange(100),
                "indirect_reach": rng.randrange(10000),
            }
        out.append(v)
    return out


def fill(store: Store, counts: dict[str, int]) -> None:
    rng = random.Random(7)
    with store.engine.connect() as conn:
        versions = dict(conn.execute(select(t.forms.c.form_id, t.forms.c.latest_version)).all())
        mapping = {}
        for form_id in counts:
            table = store.form_table(form_id)
            fc = t.form_columns
            found = conn.execute(
                select(fc.c.field_path, fc.c.column_name).where(
                    fc.c.table_name == table.name, fc.c.part == ""
                )
            ).all()
            by_path = dict(found)
            mapping[form_id] = (table, {a: by_path[p] for a, p in FIELDS[form_id].items()})
    for form_id, n in counts.items():
        table, columns = mapping[form_id]
        started = time.perf_counter()
        rows = []
        for values in rows_for(form_id, n, rng):
            root = f"uuid:{uuid.UUID(int=rng.getrandbits(128))}"
            row = {"__id": root, "__instance_id": root, "__form_version": versions[form_id]}
            row.update({columns[a]: v for a, v in values.items()})
            rows.append(row)
        with store.engine.begin() as conn:
            for i in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[i : i + 5000])
        print(f"filled {form_id}: {n:,} rows in {time.perf_counter() - started:.1f} s")


def best_of(runs: int, fn):
    """(wall seconds, this process's CPU seconds, result), the best of `runs` runs. On a shared
    machine the CPU time says what the work costs; for SQLite it is all of it, for PostgreSQL
    only the client's part."""
    times, cpus, result = [], [], None
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return min(times), min(cpus), result


CACHE = Path(tempfile.gettempdir()) / "nigraan-bench-report"
DATA = "v3"  # bump when rows_for changes, so a cached store is rebuilt


def counts_for(n: int) -> dict[str, int]:
    return {
        "survivor_registration": n,
        "service_contact": n,
        "survivor_intake": n,
        "custody_visit": n,
        "training_event": max(1, n // 50),
        "training_participant": n,
        "advocacy_event": n,
    }


def open_filled_store(database_url: str | None, n: int, fresh: bool):
    """The store with n submissions per main form: built once, kept under /tmp (a SQLite file,
    or a PostgreSQL schema bench_report_<n>) and reused by later runs unless --fresh."""
    CACHE.mkdir(exist_ok=True)
    keys = CACHE / "keys" / "form-public.pem"
    if not keys.exists():
        create_key_pair(keys, passphrase=None)
    if database_url and database_url.startswith("postgresql"):
        schema = f"bench_report_{n}_{DATA}"
        done = CACHE / f"{schema}.done"
        if fresh or not done.exists():
            done.unlink(missing_ok=True)
            admin = create_engine(database_url)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            admin.dispose()
        sep = "&" if "?" in database_url else "?"
        url = f"{database_url}{sep}options=-csearch_path%3D{schema}"
    else:
        path = CACHE / f"store-{n}-{DATA}.sqlite3"
        done = CACHE / f"store-{n}-{DATA}.done"
        if fresh or not done.exists():
            done.unlink(missing_ok=True)
            for leftover in CACHE.glob(f"store-{n}-{DATA}.sqlite3*"):
                leftover.unlink()
        url = f"sqlite:///{path}"
    config = load_config(
        overrides={
            "instance_dir": str(CACHE / "instance"),
            "forms.lock_file": str(CACHE / "versions.json"),
            "forms.public_key_file": str(keys),
            "forms.validate": False,
            "database.url": url,
        },
        environ={},
    )
    if not done.exists():
        build_forms(config)
        store = Store.open(url, upgrade=True)
        for path in sorted(config["forms.build_dir"].glob("*.xml")):
            store.register_form(path.read_bytes())
        fill(store, counts_for(n))
        if store.engine.dialect.name == "postgresql":
            with store.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        done.touch()
    else:
        store = Store.open(url, upgrade=True)  # a cached bench store of an older schema
    return store, config


def same_report(new, old) -> list[str]:
    """Where the new computation differs from the baseline's (empty: identical)."""
    diffs = []
    for a, b in zip(new.results, old.results, strict=True):
        where = a.indicator.id
        for name in ("value", "numerator", "denominator", "target", "targets_by_district"):
            x, y = getattr(a, name), getattr(b, name)
            if x != y and not (isinstance(x, float) and isinstance(y, float) and abs(x - y) < 1e-9):
                diffs.append(f"{where}.{name}: {x!r} != {y!r}")
        for key in set(a.extra) | set(b.extra):
            x, y = a.extra.get(key), b.extra.get(key)
            if x != y:
                diffs.append(f"{where}.{key}: {x!r} != {y!r}")
        for part in ("breakdowns", "denominators"):
            x, y = getattr(a, part), getattr(b, part)
            if list(x) != list(y):
                diffs.append(f"{where}.{part}: {list(x)} != {list(y)}")
                continue
            for d in x:
                if list(x[d].items()) != [(k, int(v)) for k, v in y[d].items()]:
                    diffs.append(f"{where}.{part}[{d}]: {dict(x[d])} != {dict(y[d])}")
    if [vars(e) for e in new.exclusions] != [vars(e) for e in old.exclusions]:
        diffs.append(f"exclusions: {new.exclusions} != {old.exclusions}")
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--database-url")
    parser.add_argument("--fresh", action="store_true", help="Rebuild the cached store.")
    parser.add_argument("--runs", type=int, default=3, help="Best of this many runs.")
    args = parser.parse_args()
    n = args.count
    store, config = open_filled_store(args.database_url, n, args.fresh)
    try:
        definitions = load_definitions()
        settings = {
            "ssu_district": support_unit_districts(config["forms.reference_dir"]),
            "attendance_threshold": 0.8,
            "pass_mark": 7,
            "targets": load_targets(config["reports.targets_file"]),
        }
        read_settings = {
            "attendance_threshold": 0.8,
            "pass_mark": 7,
            "trained_groups": training_groups(definitions),
        }
        database = store.engine.dialect.name
        print(f"database: {database}, {n:,} submissions per main form")
        for label in ("2026-Q3", None):
            period = parse_period(label)
            read, read_cpu, rows = best_of(
                args.runs, lambda p=period: indicator_rows(store, p.start, p.end, **read_settings)
            )
            shaped, shaped_cpu, report = best_of(
                args.runs, lambda r=rows, p=period: compute(r, definitions, period=p, **settings)
            )
            published, published_cpu, out = best_of(
                args.runs, lambda r=report: report_rows(r, suppressed=True)
            )
            total = read + shaped + published
            cpu = read_cpu + shaped_cpu + published_cpu

            def baseline(p=period):
                old_rows = baseline_queries.indicator_rows(store, p.start, p.end)
                old = baseline_indicators.compute(old_rows, definitions, period=p, **settings)
                return old, report_rows(old, suppressed=True)

            before, before_cpu, (old, old_out) = best_of(max(1, args.runs - 1), baseline)
            diffs = same_report(report, old)
            if diffs or out != old_out:
                print("DIFFERENT from the baseline:", *diffs[:20], sep="\n  ")
            read_rows = sum(len(r.rows) for r in rows.values())
            print(
                f"period {period.label}: {len(report.results)} indicators, {read_rows:,} grouped "
                f"rows read; SQL {read:.2f} s, pandas {shaped:.2f} s, suppression "
                f"{published:.2f} s ({len(out)} published figures); total {total:.2f} s "
                f"(target < 2 s), CPU {cpu:.2f} s; baseline (rows into pandas) {before:.2f} s, "
                f"CPU {before_cpu:.2f} s; "
                f"{'identical' if not diffs and out == old_out else 'DIFFERENT'} figures"
            )
            print(f"ratio indicators_{database}_{period.label} {before / total:.2f}x")
        # The dashboard's view: every quarter, the year and the whole programme.
        periods = [parse_period(x) for x in ("2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4", "2026")]
        periods.append(parse_period(None))

        def one_pass():
            rows = indicator_rows(
                store, periods=[(p.start, p.end) for p in periods], **read_settings
            )
            return compute_periods(rows, definitions, periods=periods, **settings)

        def each():
            return {
                p.label: compute(
                    indicator_rows(store, p.start, p.end, **read_settings),
                    definitions,
                    period=p,
                    **settings,
                )
                for p in periods
            }

        together, _, reports = best_of(1, one_pass)
        apart, _, separate = best_of(1, each)
        diffs = [d for p in periods for d in same_report(reports[p.label], separate[p.label])]
        print(
            f"{len(periods)} periods (4 quarters, the year, all): one pass {together:.2f} s, "
            f"one read per period {apart:.2f} s; "
            f"{'identical' if not diffs else 'DIFFERENT'} figures"
        )
        print(f"ratio indicators_{database}_6_periods_one_pass {apart / together:.2f}x")
    finally:
        store.close()


if __name__ == "__main__":
    main()
