"""SQLite: a bulk ingest's WAL is checkpointed by a thread beside the writer, losing nothing."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from datetime import UTC, datetime

import pytest

from store import wal_checkpoints
from store.store import CENTRAL, CREATED, Incoming
from tests.central_records import numbered_rows

FORM = "rec_visit"
FIRST = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def rec_store(store, central_dir):
    store.register_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    return store


@pytest.fixture
def seen(monkeypatch):
    """The BackgroundCheckpoints each bulk ingest ran."""
    made: list[wal_checkpoints.BackgroundCheckpoints] = []
    real = wal_checkpoints.BackgroundCheckpoints.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(wal_checkpoints.BackgroundCheckpoints, "__init__", init)
    return made


def _items(central_dir, n: int, prefix: str = "wal") -> list[Incoming]:
    return [Incoming(r, CENTRAL, FORM) for r in numbered_rows(central_dir, n, FIRST, prefix=prefix)]


def _database_file(store) -> str:
    return store.engine.url.database


SQLITE_DEFAULTS = {(1000, -2000)}  # wal_autocheckpoint, cache_size (KiB, negative)


def _settings_of_pooled_connections(store) -> set[tuple[int, int]]:
    """(wal_autocheckpoint, cache_size) of every connection the pool holds, checked out
    together: the bulk writer's settings must not stay on a connection of the pool."""
    held = [store.engine.connect() for _ in range(store.engine.pool.checkedin())]
    try:
        return {
            (
                c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one(),
                c.exec_driver_sql("PRAGMA cache_size").scalar_one(),
            )
            for c in held
        }
    finally:
        for c in held:
            c.close()


def _submissions_in_file_alone(store, tmp_path) -> int:
    """The submissions the database file holds without its WAL: what checkpoints copied."""
    copy = tmp_path / "file-alone.sqlite3"
    shutil.copyfile(_database_file(store), copy)
    with sqlite3.connect(copy) as conn:
        return conn.execute("SELECT count(*) FROM submissions").fetchone()[0]


def test_a_bulk_load_is_checkpointed_beside_the_writer(
    rec_store, central_dir, seen, tmp_path, monkeypatch
):
    if not wal_checkpoints.applies(rec_store.engine):
        assert rec_store.engine.dialect.name == "postgresql"
        rec_store.ingest_many(_items(central_dir, 7), batch_size=3)
        assert seen == []  # PostgreSQL has no WAL file to checkpoint
        return
    during = []
    real_after_commit = wal_checkpoints.BackgroundCheckpoints.after_commit

    def after_commit(self):
        raw = rec_store.engine.raw_connection()  # the pool's other connection: untouched
        try:
            during.append(raw.execute("PRAGMA cache_size").fetchone()[0])
        finally:
            raw.close()
        real_after_commit(self)

    monkeypatch.setattr(wal_checkpoints.BackgroundCheckpoints, "after_commit", after_commit)
    results = rec_store.ingest_many(_items(central_dir, 7), batch_size=3)
    assert [r.status for r in results] == [CREATED] * 7
    assert during == [-2000] * 3
    (checkpoints,) = seen
    # batches of 3, 3 and 1: each commit reported once a full batch started the thread
    assert checkpoints.asked == checkpoints.done == 3
    assert checkpoints.failure is None and not checkpoints.running
    # a small load never reaches SQLite's own threshold (1,000 pages): only the thread's
    # checkpoints can have put every row into the database file
    assert _submissions_in_file_alone(rec_store, tmp_path) == 7
    assert _settings_of_pooled_connections(rec_store) == SQLITE_DEFAULTS


def test_an_upload_smaller_than_a_batch_leaves_checkpoints_to_sqlite(rec_store, central_dir, seen):
    results = rec_store.ingest_many(_items(central_dir, 2), batch_size=3)
    assert [r.status for r in results] == [CREATED] * 2
    assert seen == []


def test_a_failing_checkpoint_loses_nothing(rec_store, central_dir, seen, monkeypatch, caplog):
    if not wal_checkpoints.applies(rec_store.engine):
        pytest.skip("SQLite's WAL")
    monkeypatch.setattr(wal_checkpoints, "CHECKPOINT", "SELECT * FROM no_such_table")
    with caplog.at_level(logging.WARNING, logger="store.wal_checkpoints"):
        results = rec_store.ingest_many(_items(central_dir, 8), batch_size=2)
    assert [r.status for r in results] == [CREATED] * 8
    assert rec_store.counts()[FORM]["submissions"] == 8
    (checkpoints,) = seen
    assert checkpoints.failure is not None and checkpoints.done == 0
    assert "WAL checkpoints beside the ingest stopped" in caplog.text
    assert "nothing committed is lost" in caplog.text
    # the writer checkpoints itself again
    assert _settings_of_pooled_connections(rec_store) == SQLITE_DEFAULTS


def test_the_writer_waits_for_a_checkpointer_too_far_behind(rec_store, central_dir, monkeypatch):
    if not wal_checkpoints.applies(rec_store.engine):
        pytest.skip("SQLite's WAL")
    rec_store.ingest_many(_items(central_dir, 2))
    checkpoints = wal_checkpoints.BackgroundCheckpoints(rec_store.engine, lag=0)
    try:
        for n in range(1, 4):
            checkpoints.after_commit()
            assert checkpoints.done == checkpoints.asked == n  # lag 0: never behind on return
    finally:
        checkpoints.close()


def test_a_reader_holding_a_snapshot_does_not_stop_a_load(rec_store, central_dir, seen, tmp_path):
    """PASSIVE checkpoints copy what no reader needs and never wait for one (review screens
    read while a sync writes)."""
    if not wal_checkpoints.applies(rec_store.engine):
        pytest.skip("SQLite's WAL")
    rec_store.ingest_many(_items(central_dir, 2, prefix="before"))
    reader = sqlite3.connect(_database_file(rec_store), timeout=0)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM submissions").fetchone()[0] == 2
        results = rec_store.ingest_many(_items(central_dir, 6), batch_size=2)
        assert [r.status for r in results] == [CREATED] * 6
        # the reader's snapshot is as it was
        assert reader.execute("SELECT count(*) FROM submissions").fetchone()[0] == 2
    finally:
        reader.close()
    (checkpoints,) = seen
    assert checkpoints.failure is None and checkpoints.done == checkpoints.asked == 3
    assert rec_store.counts()[FORM]["submissions"] == 8
