"""Batches typed while the one before is written (PostgreSQL), and the one-thread path (SQLite):
the same rows and answers, resends and edits of the batch being written, errors raised with
the batches before them kept."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime

import pytest

from store import cross_form_checks, overlapped_ingest
from store.store import CENTRAL, CREATED, DUPLICATE, EDITED, Incoming
from tests.central_records import numbered_rows

FORM = "rec_visit"
FIRST = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
BATCH = 5


@pytest.fixture
def rec_form(central_dir) -> bytes:
    return (central_dir / "forms" / "rec_visit.xml").read_bytes()


@pytest.fixture
def open_rec_store(open_store, rec_form):
    def open_():
        st = open_store()
        st.register_form(rec_form)
        return st

    return open_


@pytest.fixture
def writes(monkeypatch):
    """The batches the writer thread wrote (their sizes)."""
    written: list[int] = []
    real = overlapped_ingest._write

    def write(conn, forms, writer, results):
        written.append(len(results))
        real(conn, forms, writer, results)

    monkeypatch.setattr(overlapped_ingest, "_write", write)
    return written


def _rows(central_dir, n: int) -> list[dict]:
    return numbered_rows(central_dir, n, FIRST, prefix="overlap")


def _items(rows: list[dict]) -> list[Incoming]:
    return [Incoming(copy.deepcopy(r), CENTRAL, FORM) for r in rows]


def _stored(st) -> dict:
    """What ingest derived: typed rows, problems, flags, and each submission's metadata."""
    submissions = {}
    for root in sorted(st.root_ids(FORM)):
        s = st.submission(FORM, root)
        submissions[root] = {
            k: s[k]
            for k in ("current_instance_id", "form_version", "normalised", "edits", "status")
        }
    return {
        "tables": {t.name: st.rows(t.name) for t in st.form_tables(FORM).values()},
        "problems": sorted(
            (p["root_id"], p["code"], p["field_path"] or "", p["value"] or "")
            for p in st.problems(FORM)
        ),
        "flags": sorted((f["root_id"], f["rule_id"]) for f in st.flags(FORM)),
        "submissions": submissions,
        "counts": st.counts(),
    }


def _answers(results) -> list[tuple]:
    return [
        (r.status, r.instance_id, r.root_id, r.normalised, r.problems, r.message) for r in results
    ]


def test_batches_typed_beside_the_writer_store_what_one_transaction_stores(
    open_rec_store, central_dir, writes
):
    rows = _rows(central_dir, 23)
    overlapped, whole = open_rec_store(), open_rec_store()

    results = overlapped.ingest_many(_items(rows), batch_size=BATCH)
    written_by_thread = list(writes)
    reference = whole.ingest_many(_items(rows), batch_size=1000)

    assert _answers(results) == _answers(reference)
    assert {r.status for r in results} == {CREATED}
    assert _stored(overlapped) == _stored(whole)
    assert overlapped.live_count(FORM) == 23
    if overlapped_ingest.applies(overlapped.engine):
        assert written_by_thread == [5, 5, 5, 5, 3]
    else:
        assert written_by_thread == []


def test_a_resend_and_an_edit_of_the_batch_being_written_are_looked_up(
    open_rec_store, central_dir, writes, monkeypatch
):
    """The second batch names the first, which is held uncommitted until the second is typed:
    its resend is a duplicate and its edit an edit, not a second insert of the same ids."""
    typed_next = threading.Event()
    real_typed, real_write = overlapped_ingest._typed, overlapped_ingest._write

    def typed(*args):
        try:
            return real_typed(*args)
        finally:
            if args[3]:  # the ids of a batch being written: the next batch was typed
                typed_next.set()

    def write(*args):
        assert typed_next.wait(10), "the next batch was not typed while this one waited"
        real_write(*args)

    monkeypatch.setattr(overlapped_ingest, "_typed", typed)
    monkeypatch.setattr(overlapped_ingest, "_write", write)
    rows = _rows(central_dir, 10)
    resend = copy.deepcopy(rows[0])
    edit = copy.deepcopy(rows[1])
    edit["meta"]["instanceID"] = "uuid:overlap-edit-1"
    edit["__system"]["edits"] = 1
    batches = [*rows[:5], resend, edit, *rows[5:8]]
    st = open_rec_store()

    results = st.ingest_many(_items(batches), batch_size=BATCH)

    statuses = [r.status for r in results]
    assert statuses[:5] == [CREATED] * 5
    assert statuses[5:7] == [DUPLICATE, EDITED]
    assert statuses[7:] == [CREATED] * 3
    assert st.live_count(FORM) == 8
    assert st.submission(FORM, rows[1]["__id"])["current_instance_id"] == "uuid:overlap-edit-1"
    # the batch with the resend and the edit was read and written in one transaction
    if overlapped_ingest.applies(st.engine):
        assert writes == [5]


def test_an_error_of_the_writer_is_raised_and_the_batches_before_it_stay(
    open_rec_store, central_dir, monkeypatch
):
    st = open_rec_store()
    real = cross_form_checks.evaluate
    calls = []

    def evaluate(conn, changed, forms):
        calls.append(changed)
        if len(calls) == 3:
            raise RuntimeError("the third batch's checks failed")
        return real(conn, changed, forms)

    monkeypatch.setattr(cross_form_checks, "evaluate", evaluate)

    with pytest.raises(RuntimeError, match="third batch"):
        st.ingest_many(_items(_rows(central_dir, 20)), batch_size=BATCH)

    assert st.live_count(FORM) == 10
    assert st.counts()[FORM]["versions"] == 10


def test_a_source_that_fails_keeps_the_batches_written_before(open_rec_store, central_dir):
    """A sync whose Central stops answering mid-page: what was read before is stored, the
    batch being read is not."""
    rows = _rows(central_dir, 12)

    def source():
        yield from _items(rows)
        raise ConnectionError("Central stopped answering")

    st = open_rec_store()
    with pytest.raises(ConnectionError):
        st.ingest_many(source(), batch_size=BATCH)

    assert st.live_count(FORM) == 10
    assert sorted(st.root_ids(FORM)) == sorted(r["__id"] for r in rows[:10])
