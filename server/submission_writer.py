"""One writer thread in front of the store: every write of the server goes through it.

Request threads hand their submission over and wait; the writer takes whatever has queued up
(up to MAX_BATCH) and stores it in one transaction, so eight tablets uploading at once cost
one durable commit instead of eight. A request is answered only after its transaction
committed. If a batch fails as a whole, each submission is retried on its own so one bad
upload cannot fail the others. Other writes (registering a rebuilt form) run on the same
thread, between batches, so they never race an ingest over the store's form cache.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from nigraan.logs import RepeatedLog, explain_store_failure
from store.store import Incoming, Store

log = logging.getLogger(__name__)
MAX_BATCH = 64


class SubmissionWriter:
    def __init__(
        self,
        store: Store,
        max_batch: int = MAX_BATCH,
        after_commit: Callable[[], None] | None = None,
    ):
        self.store = store
        self.max_batch = max_batch
        self.after_commit = after_commit  # on the writer thread, after each committed batch
        # A full disk fails every upload: its cause is logged once a minute, with a count.
        self.repeats = RepeatedLog(log)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="submission-writer", daemon=True)
        self._thread.start()

    def submit(self, item: Incoming) -> Future:
        """Queue one submission; the future resolves once it is committed (or fails)."""
        return self._put(item)

    def submit_call(self, fn: Callable[[], Any]) -> Future:
        """Queue `fn` to run on the writer thread, between batches."""
        return self._put(_Call(fn))

    def _put(self, work) -> Future:
        if not self._thread.is_alive():
            raise RuntimeError("the submission writer has stopped")
        done: Future = Future()
        self._queue.put((work, done))
        return done

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if isinstance(first[0], _Call):
                self._call(*first)
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None or isinstance(nxt[0], _Call):
                    self._store(batch)
                    if nxt is None:
                        return
                    self._call(*nxt)
                    batch = []
                    break
                batch.append(nxt)
            if batch:
                self._store(batch)

    @staticmethod
    def _call(call: _Call, done: Future) -> None:
        try:
            done.set_result(call.fn())
        except Exception as exc:
            done.set_exception(exc)

    def _store(self, batch: list[tuple[Incoming, Future]]) -> None:
        try:
            results = self.store.ingest_many([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                # The cause and what to do; the store hides SQL parameters, so no data leaks.
                cause, line = explain_store_failure(exc, self.store.engine.url)
                self.repeats.log(f"store:{cause.kind}", line, cause=cause.kind)
                batch[0][1].set_exception(exc)
                return
            for one in batch:  # find the one that fails; the rest still get stored
                self._store([one])
            return
        self.repeats.resolved("store:", "submissions are being stored again")
        for (_, done), result in zip(batch, results, strict=True):
            done.set_result(result)
        if self.after_commit is not None:
            try:
                self.after_commit()
            except Exception:  # watching must never stop the writer
                log.exception("after-commit check failed")


@dataclass(frozen=True)
class _Call:
    fn: Callable[[], Any]
