"""Ingest gathers PostgreSQL's statistics on its lookup columns as the tables grow."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from store import planner_statistics
from store.store import CENTRAL, Incoming
from tests.central_records import FINAL_PAGES, odata_rows

FORM = "rec_visit"


@pytest.fixture
def small_tables_count(monkeypatch):
    """Every table is big enough (the recorded data fills a few pages, not 512 kB)."""
    monkeypatch.setattr(planner_statistics, "MIN_PAGES", 1)


def _analysed_columns(store) -> set[tuple[str, str]]:
    with store.engine.connect() as conn:
        return set(
            conn.execute(
                text("SELECT tablename, attname FROM pg_stats WHERE schemaname = current_schema()")
            ).all()
        )


def test_a_load_analyses_the_columns_its_lookups_use(store, central_dir, small_tables_count):
    store.register_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    store.ingest_many([Incoming(r, CENTRAL, FORM) for r in odata_rows(central_dir, *FINAL_PAGES)])
    if store.engine.dialect.name != "postgresql":
        assert planner_statistics.refresh(store.engine, store.forms, [FORM]) == []
        return
    analysed = _analysed_columns(store)
    main, *repeats = store.form_tables(FORM).values()
    assert {("submissions", "root_id"), ("submission_versions", "instance_id")} <= analysed
    assert (main.name, "__id") in analysed
    assert {(r.name, "__submission_id") for r in repeats} <= analysed
    # only the lookup columns: a form table's hundreds of others are left to autovacuum
    assert not {(main.name, c.name) for c in main.columns if c.name != "__id"} & analysed


def test_a_table_is_analysed_again_only_once_it_has_grown(
    store, central_dir, small_tables_count, monkeypatch
):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("ANALYZE is PostgreSQL's")
    store.register_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    store.ingest_many([Incoming(r, CENTRAL, FORM) for r in odata_rows(central_dir, *FINAL_PAGES)])
    assert planner_statistics.refresh(store.engine, store.forms, [FORM]) == []
    monkeypatch.setattr(planner_statistics, "GROWTH", 1)  # as big as last time counts as grown
    assert "submissions" in planner_statistics.refresh(store.engine, store.forms, [FORM])


def test_the_tables_sizes_are_looked_at_once_enough_has_been_stored(
    store, central_dir, small_tables_count, monkeypatch
):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("ANALYZE is PostgreSQL's")
    store.register_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    store.ingest_many([Incoming(r, CENTRAL, FORM) for r in odata_rows(central_dir, *FINAL_PAGES)])
    monkeypatch.setattr(planner_statistics, "GROWTH", 1)  # every look analyses
    monkeypatch.setattr(planner_statistics, "LOOK_EVERY", 3)

    def batch(n: int) -> list[str]:
        touched = {FORM: {f"uuid:{i}" for i in range(n)}}
        return planner_statistics.after_batch(store.engine, store.forms, touched)

    assert "submissions" in batch(3)
    assert batch(1) == [] and batch(1) == []
    assert "submissions" in batch(1)
