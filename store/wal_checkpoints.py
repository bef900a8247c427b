"""SQLite: the WAL checkpoints of a bulk ingest made by a thread beside the writer.

A batch's commit appends its pages to the write-ahead log; SQLite's automatic checkpoint then
copies them into the database file and syncs it, inside the committing call: about 130 of the
200 µs a custody visit's commit took (store/README.md). While `ingest_many` writes full
batches, the writer's connection turns the automatic checkpoint off and a thread checkpoints
on a connection of its own after each commit, alongside the next batch's parsing and typing:
sqlite3 releases the GIL for the whole checkpoint, so it runs on the other core.

PASSIVE, as SQLite's own: it never blocks the writer or a reader, and copies what no reader
still needs. Commits are synced to the WAL (synchronous=FULL) before they return, so a
checkpoint late, failed or never run loses nothing; the WAL only grows. To keep it bounded the
writer waits when the thread is more than `lag` commits behind, and when a checkpoint fails
the thread stops (logged) and the writer's automatic checkpoint comes back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"
LAG = 2  # commits the thread may be behind before the writer waits (a batch is ~20 MB of WAL)
WRITER_CACHE_KIB = 32 * 1024  # the bulk writer's page cache (SQLite's default is 2 MB)


def applies(engine: Engine) -> bool:
    """A SQLite file (an in-memory database has no WAL)."""
    database = engine.url.database
    return engine.dialect.name == "sqlite" and bool(database) and database != ":memory:"


class BackgroundCheckpoints:
    """A thread that checkpoints the WAL after each commit the writer reports."""

    def __init__(
        self, engine: Engine, lag: int = LAG, on_failure: Callable[[], None] | None = None
    ):
        self.engine = engine
        self.lag = lag
        self.on_failure = on_failure  # run on the writer's thread, once
        self.asked = 0  # commits reported
        self.done = 0  # commits covered by a finished checkpoint
        self.failure: BaseException | None = None
        self._stop = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, name="nigraan-wal-checkpoints", daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        return self.failure is None and self._thread.is_alive()

    def after_commit(self) -> None:
        """A commit landed: checkpoint it, and wait while the thread is too far behind."""
        with self._cond:
            self.asked += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: self.asked - self.done <= self.lag or not self.running)
        if not self.running and self.on_failure is not None:
            on_failure, self.on_failure = self.on_failure, None
            on_failure()

    def close(self) -> None:
        """Let the thread finish what it was asked, then end it."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        try:
            with self.engine.connect() as conn:
                while True:
                    with self._cond:
                        self._cond.wait_for(lambda: self._stop or self.asked > self.done)
                        if self.asked == self.done:
                            return
                        target = self.asked
                    conn.exec_driver_sql(CHECKPOINT).all()
                    conn.commit()
                    with self._cond:
                        self.done = target
                        self._cond.notify_all()
        except Exception as exc:
            log.warning(
                "WAL checkpoints beside the ingest stopped (%s: %s); the writer checkpoints "
                "itself again, and nothing committed is lost",
                type(exc).__name__,
                exc,
            )
            with self._cond:
                self.failure = exc
                self._cond.notify_all()


@contextmanager
def bulk_writer(conn: Connection) -> Iterator[BackgroundCheckpoints]:
    """For the rest of a bulk ingest on this (SQLite) connection: checkpoints in a thread, no
    automatic checkpoint, and a page cache of WRITER_CACHE_KIB, so that the pages of the
    indexes on random ids (instanceIDs, repeat ids) stay read between batches (-8% at 100,000
    visits). Its settings are back before the connection returns to the pool."""
    raw = conn.connection.dbapi_connection
    settings = {
        name: raw.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("wal_autocheckpoint", "cache_size")
    }
    checkpoints = BackgroundCheckpoints(conn.engine, on_failure=lambda: _restore(raw, settings))
    raw.execute("PRAGMA wal_autocheckpoint=0")
    raw.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
    try:
        yield checkpoints
    finally:
        checkpoints.close()
        _restore(raw, settings)


def _restore(raw, settings: dict[str, int]) -> None:
    for name, value in settings.items():
        raw.execute(f"PRAGMA {name}={int(value)}")
