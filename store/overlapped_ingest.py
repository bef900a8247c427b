"""PostgreSQL: each batch read and typed while the batch before it is written.

On PostgreSQL most of a batch's writing is the server's work (its COPYs, the checks'
statements, the commit), and the ingesting thread waited on it for two fifths of a load
(bench/normalise.py, 100,000 custody visits; store/README.md). From the first full batch on,
`ingest` types batch N+1 on the caller's thread, on a connection of its own, while a writer
thread writes batch N in its transaction on the batch connection: the server works on one
batch while Python reads the next.

What it must not change, and how it keeps it:

* The rows. The same BatchWriter types and writes them; only the thread differs.
* What is already stored. The typing thread's lookups see committed data, so the ids of the
  batch being written are added to what it knows as stored. A batch holding anything that is
  not plainly new (a resend, an edit, a Central row seen before) waits for the write before it
  and is then stored the usual way, read and written in one transaction.
* Nothing acknowledged lost. A batch's results are returned only once every batch is
  committed; an error of the writer is raised by `ingest`, and the batches committed before it
  stay, as when written one after the other.

SQLite is left alone: sqlite3 takes Python's lock again after every row it steps, so a writer
thread there waits on the typing thread row by row (measured slower).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from store import planner_statistics
from store.gc_pause import collector_paused
from store.incoming import Incoming, IngestResult
from store.ingest import BatchWriter, _ingest_batch

if TYPE_CHECKING:
    from store.form_registry import FormRegistry


def applies(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


class _NeedsItsTransaction(Exception):
    """The batch holds a submission the store may have: it is read and written as one."""


class _TypingWriter(BatchWriter):
    """Adds a batch's new submissions without writing; anything else is not for this thread."""

    def _not_new(self, parsed, doc, received) -> IngestResult:
        raise _NeedsItsTransaction


def ingest(
    conn: Connection,
    forms: FormRegistry,
    first: list[Incoming],
    rest: Iterator[Incoming],
    batch_size: int,
) -> list[IngestResult]:
    """Store `first`, then `rest` in batches of `batch_size`, each typed while the one before
    is written on `conn`; results in the same order."""
    results: list[IngestResult] = []
    with (
        conn.engine.connect() as reader,
        ThreadPoolExecutor(1, thread_name_prefix="nigraan-ingest-writer") as writer_thread,
    ):
        writing: Future | None = None
        writing_ids: set = set()  # (form id, id) of the batch being written
        batch = first
        while batch:
            typed = _typed(reader, forms, batch, writing_ids)
            if writing is not None:
                writing.result()  # committed, or its error raised here
                writing = None
            if typed is None:
                results += _ingest_batch(conn, forms, batch)
                writing_ids = set()
            else:
                writer, batch_results = typed
                writing_ids = set(writer.pending_ids)  # before the writer's flush empties it
                writer.conn = conn
                writing = writer_thread.submit(_write, conn, forms, writer, batch_results)
                results += batch_results
            batch = list(islice(rest, batch_size))
        if writing is not None:
            writing.result()
    return results


def _typed(
    reader: Connection, forms: FormRegistry, batch: list[Incoming], writing_ids: set
) -> tuple[BatchWriter, list[IngestResult]] | None:
    """The batch's rows, typed on `reader`; None when it must be stored in one transaction."""
    with collector_paused(), reader.begin():
        writer = _TypingWriter(forms, reader)
        writer.known_instances |= writing_ids
        writer.known_roots |= writing_ids
        try:
            return writer, writer.add_all(batch)
        except _NeedsItsTransaction:
            return None


def _write(
    conn: Connection, forms: FormRegistry, writer: BatchWriter, results: list[IngestResult]
) -> None:
    with collector_paused(), conn.begin():
        changed = writer.store(results)
    planner_statistics.after_batch(conn.engine, forms, changed)  # after the commit, in its own
