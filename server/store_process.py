"""The store's writer in a process of its own, so uploads use both cores.

Python runs one thread at a time per process. Reading HTTP requests and multipart bodies
(waitress, werkzeug) and storing submissions (parsing, typing, SQL) each take about half the
work of an upload; in two processes they run side by side. The server process sends each
submission down a pipe and answers the device only when this process says the transaction
committed, so nothing acknowledged can be lost. Inside, the SubmissionWriter still commits
the uploads that arrive together in one transaction.

If this process dies, the uploads in flight fail (the devices get 500 and send again; an
identical resend is harmless) and a new one is started. If the server process dies, this one
sees the pipe close, finishes the batch it is committing, and exits.

InProcessWriter offers the same interface without the process (tests pass it to create_app):
the same StoreWriter, called in the server's process.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import signal
import threading
from concurrent.futures import Future
from typing import Any, Protocol

from nigraan.errors import NigraanError
from nigraan.identity_keys import IdentityKeys
from nigraan.logs import STORE_PROCESS, explain_store_failure
from store.store import Incoming, IngestResult

log = logging.getLogger(__name__)
INGEST, REGISTER_FORM, HEALTH, STOP = "ingest", "register_form", "health", "stop"
IDENTITY_KEYS = "identity_keys"
# Ingest outcomes after which an envelope may be complete: new, a new version, or a resend
# (a split upload's last part, which fills in the files the first part lacked).
STORED = ("created", "edited", "duplicate")


class StoreProcessError(RuntimeError):
    """The store process went away before answering."""

    cause_kind = STORE_PROCESS


class StoreFailure(StoreProcessError):
    """The store process could not store: its classified cause and the line saying it."""

    def __init__(self, cause_kind: str, message: str):
        super().__init__(message)
        self.cause_kind = cause_kind
        self.message = message


class StoreWriterClient(Protocol):
    """What the server needs of the store's writer: StoreProcess, or InProcessWriter."""

    def write(self, item: Incoming, timeout: float = ...) -> IngestResult: ...

    def register_form(self, xform: bytes, timeout: float = ...) -> Any: ...

    def health(self, timeout: float = ...) -> dict[str, dict]: ...

    def close(self) -> None: ...


class StoreProcess:
    """Client side: `write` and `register_form` block until the store process has done them."""

    def __init__(
        self,
        database_url: str,
        options: dict[str, Any] | None = None,
        identity_keys: IdentityKeys | None = None,
    ):
        self.database_url = database_url
        # log.level, log.format, health.min_free_mb, health.max_wal_mb: plain values, picklable
        self.options = dict(options or {})
        # Sent down the pipe after each start (a restarted process needs them again), never
        # in the process's arguments: in memory only.
        self._identity_wire = identity_keys.to_wire() if identity_keys is not None else None
        self._context = multiprocessing.get_context("spawn")  # a clean interpreter, no threads
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._pending: dict[int, Future] = {}
        self._closing = False
        self._start()

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._conn = parent
        self._process = self._context.Process(
            target=run_store_process,
            args=(self.database_url, child, self.options),
            name="nigraan-store",
            daemon=True,
        )
        self._process.start()
        child.close()
        ready = parent.recv()  # ("ready", None) or ("failed", message)
        if ready[0] != "ready":
            self._process.join(5)
            raise StoreProcessError(ready[1])
        if self._identity_wire is not None:
            parent.send((None, IDENTITY_KEYS, self._identity_wire))
            if parent.recv()[1] is not True:
                raise StoreProcessError("the store process could not take the identity keys")
        self._reader = threading.Thread(
            target=self._read, args=(parent,), daemon=True, name="store-process-reader"
        )
        self._reader.start()

    def _send(self, kind: str, payload: Any) -> Future:
        done: Future = Future()
        with self._lock:
            if self._closing:
                raise StoreProcessError("the server is shutting down")
            if not self._process.is_alive():
                log.error("the store process had stopped; starting a new one")
                self._start()
            request_id = next(self._ids)
            self._pending[request_id] = done
            try:
                self._conn.send((request_id, kind, payload))
            except (OSError, EOFError) as exc:
                self._pending.pop(request_id, None)
                raise StoreProcessError(f"the store process is gone: {exc}") from exc
        return done

    def write(self, item: Incoming, timeout: float = 120.0) -> IngestResult:
        return self._send(INGEST, item).result(timeout=timeout)

    def register_form(self, xform: bytes, timeout: float = 300.0):
        return self._send(REGISTER_FORM, xform).result(timeout=timeout)

    def health(self, timeout: float = 15.0) -> dict[str, dict]:
        """The store process's checks (database, its disk, the WAL), run between batches."""
        return self._send(HEALTH, None).result(timeout=timeout)

    def _read(self, conn) -> None:
        while True:
            try:
                request_id, ok, value = conn.recv()
            except (EOFError, OSError):
                break
            done = self._pending.pop(request_id, None)
            if done is None:
                continue
            if ok:
                done.set_result(value)
            else:
                done.set_exception(failure_from_reply(value))
        with self._lock:  # whatever was in flight has no answer: the devices will resend
            pending, self._pending = self._pending, {}
        for done in pending.values():
            done.set_exception(StoreProcessError("the store process stopped"))

    def close(self) -> None:
        """Let the store process finish what it was sent, then stop it."""
        with self._lock:
            self._closing = True
            with contextlib.suppress(OSError, EOFError):
                # A message, not just closing our end: a reader thread blocked on the pipe
                # keeps it open, so the store process would never see it close.
                self._conn.send((None, STOP, None))
        self._process.join(60)
        if self._process.is_alive():  # stuck for a minute: it ignores SIGTERM, so kill it
            self._process.kill()
            self._process.join(5)
        self._conn.close()


class StoreWriter:
    """The store's writing side: the SubmissionWriter over a store, the WAL watch after each
    commit, and the store checks. The store process runs one; InProcessWriter runs the same in
    the calling process (tests, without the process boundary)."""

    def __init__(
        self,
        store,
        options: dict[str, Any] | None = None,
        identity_keys: IdentityKeys | None = None,
    ):
        from nigraan.logs import StoreLocation
        from server.submission_writer import SubmissionWriter
        from store.health import WalWatch

        options = options or {}
        self.store = store
        self.watch = WalWatch(
            store.engine,
            StoreLocation.from_url(store.engine.url),
            options.get("health.max_wal_mb", 256),
        )
        self.writer = SubmissionWriter(store, after_commit=self.watch.after_commit)
        self.min_free_mb = options.get("health.min_free_mb", 500)
        self.identity_keys = identity_keys

    def submit(self, kind: str, payload: Any) -> Future:
        """Queue one request (INGEST, HEALTH or REGISTER_FORM) on the writer thread."""
        from store.health import store_checks

        if kind == INGEST:
            done = self.writer.submit(payload)
            keys = self.identity_keys
            if keys is not None and keys.decrypts_here and _may_be_envelope(payload):
                done.add_done_callback(self._decrypt_when_stored)
            return done
        if kind == HEALTH:
            return self.writer.submit_call(
                lambda: store_checks(self.store.engine, self.watch, self.min_free_mb)
            )
        return self.writer.submit_call(lambda: self.store.register_form(payload))

    def _decrypt_when_stored(self, done: Future) -> None:
        """After the device has its answer: decrypt the envelope on the writer thread, between
        batches (one SQLite writer, no lock to wait for), so no upload waits for it."""
        if done.exception() is not None:
            return
        result = done.result()
        if result.status not in STORED or not result.form_id or not result.instance_id:
            return
        form_id, instance_id = result.form_id, result.instance_id
        try:
            self.writer.submit_call(lambda: self._decrypt(form_id, instance_id))
        except RuntimeError:  # stopping: `nigraan identity import` decrypts it later
            log.warning("%s %s left encrypted: the server is stopping", form_id, instance_id)

    def _decrypt(self, form_id: str, instance_id: str) -> str | None:
        from store.encrypted_submissions import decrypt_and_file

        try:
            outcome = decrypt_and_file(self.store, self.identity_keys, form_id, instance_id)
        except Exception as exc:  # never stops the writer; the envelope stays stored
            log.error(  # noqa: TRY400 - no traceback: its text could quote a value
                "%s %s not decrypted: %s; it stays encrypted (`nigraan identity import` "
                "tries again)",
                form_id,
                instance_id,
                type(exc).__name__,
            )
            return None
        log.info("%s %s: %s", form_id, instance_id, outcome)
        return outcome

    def failure_reply(self, error: BaseException) -> tuple | dict:
        """What the store process sends back for a failed request (plain, picklable)."""
        if isinstance(error, NigraanError):  # a refusal to pass on as it is (a form clash)
            return (error.message, error.hint)
        cause, line = explain_store_failure(error, self.store.engine.url)  # hides SQL parameters
        return {"cause": cause.kind, "message": line}

    def close(self) -> None:
        self.writer.close()  # commits what was queued


def failure_from_reply(value: Any) -> Exception:
    """The exception the server process raises for a failure the store process sent."""
    if isinstance(value, tuple):
        return NigraanError(value[0], hint=value[1])
    if isinstance(value, dict):  # a classified failure to store
        return StoreFailure(value["cause"], value["message"])
    return StoreProcessError(value)


def _may_be_envelope(item: Any) -> bool:
    """A cheap test on the bytes, so ordinary uploads pay nothing: an envelope's root says
    encrypted="yes" (a plain submission that merely contains the text costs one lookup)."""
    payload = getattr(item, "payload", None)
    return isinstance(payload, (bytes, bytearray)) and b"encrypted=" in payload


class InProcessWriter:
    """StoreProcess's interface with no process boundary: the same StoreWriter over its own
    Store, called in this process; failures come back exactly as over the pipe. For tests
    (`create_app(config, writer=InProcessWriter(url))`), which then need no subprocess.

    Like the store process, it opens its store when the server first uses it, after
    create_app has opened (and migrated) the database."""

    def __init__(
        self,
        database_url: str,
        options: dict[str, Any] | None = None,
        identity_keys: IdentityKeys | None = None,
    ):
        self.database_url = database_url
        self.options = dict(options or {})
        self.identity_keys = identity_keys
        self._lock = threading.Lock()
        self._writer: StoreWriter | None = None

    def _started(self) -> StoreWriter:
        with self._lock:
            if self._writer is None:
                from store.store import Store

                self._writer = StoreWriter(
                    Store.open(self.database_url), self.options, self.identity_keys
                )
            return self._writer

    def _call(self, kind: str, payload: Any, timeout: float):
        writer = self._started()
        done = writer.submit(kind, payload)
        error = done.exception(timeout=timeout)
        if error is None:
            return done.result()
        raise failure_from_reply(writer.failure_reply(error)) from error

    def write(self, item: Incoming, timeout: float = 120.0) -> IngestResult:
        return self._call(INGEST, item, timeout)

    def register_form(self, xform: bytes, timeout: float = 300.0):
        return self._call(REGISTER_FORM, xform, timeout)

    def health(self, timeout: float = 15.0) -> dict[str, dict]:
        return self._call(HEALTH, None, timeout)

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer.store.close()
                self._writer = None


def run_store_process(database_url: str, conn, options: dict[str, Any] | None = None) -> None:
    """The store process: receive submissions and forms, answer when committed."""
    # Ctrl-C reaches the whole process group; the server process decides when this one stops
    # (it sends STOP, or its end of the pipe closes), so a batch is never cut short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    options = options or {}

    from nigraan.logs import setup_logging
    from store.store import Store

    setup_logging(options.get("log.level", "INFO"), options.get("log.format", "text"))
    try:
        store = Store.open(database_url)
    except Exception as exc:  # e.g. the database is unreachable: say so to the server
        reason = (
            str(exc)
            if isinstance(exc, NigraanError)
            else explain_store_failure(exc, database_url)[1]
        )
        conn.send(("failed", reason))
        return
    writer = StoreWriter(store, options)
    send_lock = threading.Lock()

    def answer(request_id: int, done: Future) -> None:
        error = done.exception()
        if error is None:
            reply = (request_id, True, done.result())
        else:
            reply = (request_id, False, writer.failure_reply(error))
        # If the server is gone the data is committed (or rolled back) anyway.
        with send_lock, contextlib.suppress(OSError, EOFError):
            conn.send(reply)

    conn.send(("ready", None))
    while True:
        try:
            request_id, kind, payload = conn.recv()
        except (EOFError, OSError):
            break
        if kind == STOP:
            break
        if kind == IDENTITY_KEYS:
            writer.identity_keys = IdentityKeys.from_wire(payload)
            del payload  # the unencrypted key bytes go as soon as the key object exists
            with send_lock:
                conn.send((request_id, True, None))
            continue
        done = writer.submit(kind, payload)
        done.add_done_callback(lambda d, rid=request_id: answer(rid, d))
    writer.close()  # commits what was queued before the server went away
    store.close()
    conn.close()
