"""Benchmark: every programme indicator over a store of 100,000 submissions per main form.

Builds the programme's forms, registers them in a fresh store (SQLite file, or a PostgreSQL
schema of its own), and fills the typed tables the indicators read with N rows per main form
(survivor_registration, service_contact, survivor_intake, custody_visit, training_participant,
advocacy_event; training_event gets N/50 courses). The rows are written straight into the form
tables in bulk: the report reads only those tables, and going through ingest would take minutes
per form without changing what is measured. Then times, best of three runs: the store's reads
(SQL), the pandas computation, and the suppressed published rows, for one quarter and for all
periods. The issue's target: all indicators under 2 s.

    .venv/bin/python bench/report.py                      # SQLite, 100,000 per form
    .venv/bin/python bench/report.py --count 20000
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

from sqlalchemy import insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
                "first_contact": day(rng),
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
            v = {
                "visit_date": day(rng),
                "facility_type": "police_station",
                "district": rng.choice(DISTRICTS),
                "police_station": f"ps_{rng.randrange(60)}",
                "facility_id": f"ps_{rng.randrange(60)}",
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
            v = {
                "event_id": f"TRN-LHR-{rng.randrange(max(1, n // 50)):05d}",
                "participant_code": f"LHR-POL-{rng.randrange(max(1, n // 2)):06d}",
                "sex": rng.choice(["female", "male"]),
                "institution_type": rng.choice(INSTITUTIONS),
                "district": rng.choice(DISTRICTS),
                "police_station": f"ps_{rng.randrange(60)}",
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
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nigraan-bench-report-"))
    create_key_pair(tmp / "keys" / "form-public.pem", passphrase=None)
    url = args.database_url or f"sqlite:///{tmp / 'store.sqlite3'}"
    schema = None
    if url.startswith("postgresql"):
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        store = Store.open(url)
        with store.engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        store.close()
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
    store = Store.open(url)
    try:
        for path in sorted(config["forms.build_dir"].glob("*.xml")):
            store.register_form(path.read_bytes())
        n = args.count
        fill(
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
        definitions = load_definitions()
        districts = support_unit_districts(config["forms.reference_dir"])
        targets = load_targets(config["reports.targets_file"])
        print(f"database: {store.engine.dialect.name}, {n:,} submissions per main form")
        for label in ("2026-Q3", None):
            period = parse_period(label)
            read, rows = best_of(3, lambda p=period: indicator_rows(store, p.start, p.end))
            shaped, report = best_of(
                3,
                lambda r=rows, p=period: compute(
                    r,
                    definitions,
                    period=p,
                    ssu_district=districts,
                    attendance_threshold=0.8,
                    pass_mark=7,
                    targets=targets,
                ),
            )
            published, out = best_of(3, lambda r=report: report_rows(r, suppressed=True))
            read_rows = sum(len(r.rows) for r in rows.values())
            print(
                f"period {period.label}: {len(report.results)} indicators, {read_rows:,} rows "
                f"read; SQL reads {read:.2f} s, pandas {shaped:.2f} s, suppression "
                f"{published:.2f} s ({len(out)} published figures); total "
                f"{read + shaped + published:.2f} s (target < 2 s)"
            )
    finally:
        store.close()
        if schema:
            store = Store.open(args.database_url)
            with store.engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            store.close()


if __name__ == "__main__":
    main()
