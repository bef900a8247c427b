"""Logging for every command, and failure causes said so an operator can act on them.

One set-up (`setup_logging`) for the CLI, the server, its store process and sync: stdlib
`logging` to stderr, each line with its UTC time, level and component (the logger's name), as
text or as JSON lines for a log collector (settings log.level and log.format). Libraries that
repeat what nigraan already says (SQLAlchemy, psycopg, alembic, waitress's queue) are quieted.

`explain` turns an exception from the store (SQLite, PostgreSQL, the OS) into one line: the
cause, classified (disk full, I/O error, database unreachable, database locked, other), and what
to do about it. `RepeatedLog` logs a repeated cause once and then how often it came again.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
# Libraries whose own lines repeat what nigraan's classified line says (psycopg's "error
# ignored terminating <Pipeline [BAD]>" after a lost connection), or that chatter.
QUIET = {
    "alembic": logging.WARNING,  # form tables are altered through it
    "waitress.queue": logging.ERROR,  # busy threads are normal here
    "sqlalchemy": logging.WARNING,
    "psycopg": logging.ERROR,
    "urllib3": logging.WARNING,
}


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is logged (click's test runner swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record, datefmt=None) -> str:
        return _utc(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, component, message (and cause, traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _utc(record.created),
            "level": record.levelname,
            "component": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "cause", None):
            entry["cause"] = record.cause
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _utc(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send every logger to stderr in nigraan's format; idempotent (the last call wins)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, root.level))


def setup_from_config(config) -> None:
    setup_logging(config["log.level"], config["log.format"])


# ------------------------------------------------------------------ causes

DISK_FULL = "disk_full"
IO_ERROR = "io_error"
UNREACHABLE = "database_unreachable"
LOCKED = "database_locked"
STORE_PROCESS = "store_process"
OTHER = "other"

# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html)
_PG_CAUSES = {
    "53100": DISK_FULL,  # disk_full
    "58030": IO_ERROR,  # io_error
    "57P01": UNREACHABLE,  # admin_shutdown
    "57P02": UNREACHABLE,  # crash_shutdown
    "57P03": UNREACHABLE,  # cannot_connect_now (starting up, shutting down)
    "55P03": LOCKED,  # lock_not_available
    "40P01": LOCKED,  # deadlock_detected
}
_SQLITE_CODES = {13: DISK_FULL, 10: IO_ERROR, 5: LOCKED, 6: LOCKED}  # FULL, IOERR, BUSY, LOCKED
_TEXTS = (
    ("database or disk is full", DISK_FULL),
    ("no space left on device", DISK_FULL),
    ("could not extend file", DISK_FULL),
    ("disk i/o error", IO_ERROR),
    ("input/output error", IO_ERROR),
    ("database is locked", LOCKED),
    ("database table is locked", LOCKED),
    ("connection refused", UNREACHABLE),
    ("the connection is lost", UNREACHABLE),
    ("server closed the connection", UNREACHABLE),
    ("terminating connection", UNREACHABLE),
    ("the database system is shutting down", UNREACHABLE),
    ("the database system is starting up", UNREACHABLE),
    ("not currently accepting connections", UNREACHABLE),
    ("connection failed", UNREACHABLE),
    ("consuming input failed", UNREACHABLE),
)


@dataclass(frozen=True)
class Cause:
    kind: str  # one of the constants above
    detail: str  # the error's own first line (never SQL parameters: the engines hide them)


def classify(exc: BaseException) -> Cause:
    """The cause of a storage failure, from the exception and what it wraps."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 10:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        kind = _kind(current)
        if kind is not None:
            return Cause(kind, _first_line(current))
        todo += [getattr(current, "orig", None), current.__cause__, current.__context__]
    innermost = next((s for s in reversed(seen) if _first_line(s)), exc)
    # The DBAPI error under SQLAlchemy's wrapper, without its "Background on this error" link.
    shown = getattr(exc, "orig", None) or innermost
    return Cause(OTHER, f"{type(shown).__name__}: {_first_line(shown)}")


def _kind(exc: BaseException) -> str | None:
    if getattr(exc, "cause_kind", None):  # already classified (StoreFailure)
        return exc.cause_kind
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DISK_FULL
    if isinstance(exc, OSError) and exc.errno == errno.EIO:
        return IO_ERROR
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _SQLITE_CODES:
            return _SQLITE_CODES[code & 0xFF]
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate in _PG_CAUSES:
            return _PG_CAUSES[sqlstate]
        if sqlstate.startswith("08"):  # connection_exception
            return UNREACHABLE
    if getattr(exc, "connection_invalidated", False):  # SQLAlchemy saw the connection drop
        return UNREACHABLE
    text = str(exc).lower()
    for fragment, kind in _TEXTS:
        if fragment in text:
            return kind
    module = type(exc).__module__ or ""
    if module.startswith("psycopg") and type(exc).__name__ == "OperationalError":
        return UNREACHABLE  # psycopg's OperationalError without a SQLSTATE: the link failed
    return None


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0].strip() if text else ""


@dataclass(frozen=True)
class StoreLocation:
    """Where the store is, as it may be shown: a SQLite file, or PostgreSQL's host and db."""

    shown: str
    directory: Path | None  # the folder on the disk holding it (SQLite), else None

    @classmethod
    def from_url(cls, url) -> StoreLocation:
        from sqlalchemy.engine import make_url

        parsed = make_url(str(url)) if not hasattr(url, "get_backend_name") else url
        if parsed.get_backend_name() == "sqlite":
            path = Path(parsed.database or ":memory:")
            try:
                shown = str(path.resolve().relative_to(Path.cwd()))
            except ValueError:
                shown = str(path)
            return cls(shown, path.resolve().parent)
        where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"
        return cls(f"PostgreSQL at {where}", None)  # never the user or password


def free_bytes(directory: Path | None) -> int | None:
    if directory is None:
        return None
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def megabytes(n: int) -> str:
    return f"{n / 1_000_000:.0f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} kB"


def explain(cause: Cause, location: StoreLocation, doing: str, after: str = "") -> str:
    """One line: what failed, why, and what to do: '<doing>: <why> — <remedy><after>'."""
    where = location.shown
    if cause.kind == DISK_FULL:
        free = free_bytes(location.directory)
        disk = f"the disk holding {where}" if location.directory else f"the disk of {where}"
        why = f"{disk} is full" + (f" ({megabytes(free)} free)" if free is not None else "")
        remedy = "free space"
    elif cause.kind == IO_ERROR:
        disk = f"the disk holding {where}" if location.directory else f"the disk of {where}"
        why = f"{disk} reports I/O errors ({cause.detail})"
        remedy = (
            "the disk may be failing: check the system log (dmesg), back up and move the "
            "store to a sound disk"
        )
    elif cause.kind == UNREACHABLE:
        why = f"the database ({where}) is unreachable or shutting down ({cause.detail})"
        remedy = "check that PostgreSQL is running and reachable; nigraan reconnects by itself"
    elif cause.kind == LOCKED:
        why = f"the database ({where}) is locked ({cause.detail})"
        remedy = "another program holds a lock on it (a long query, a backup): end or wait for it"
    elif cause.kind == STORE_PROCESS:
        why = f"the store process stopped ({cause.detail})"
        remedy = "a new one starts with the next upload; if this repeats, read the lines before"
    else:
        why = cause.detail
        remedy = "read the lines before this one; report it if it repeats"
    return f"{doing}: {why} — {remedy}{after}"


SUBMISSIONS = "cannot store submissions"
TABLETS_RESEND = "; tablets keep their submissions and resend"


def explain_store_failure(exc: BaseException, url) -> tuple[Cause, str]:
    """The cause of a failed submission write and the line that says it."""
    cause = classify(exc)
    return cause, explain(cause, StoreLocation.from_url(url), SUBMISSIONS, TABLETS_RESEND)


# --------------------------------------------------------------- repeats


class RepeatedLog:
    """Log a cause the first time; count its repeats for `window` seconds, then say how many.

    The summary ('… 904 more in the last 60 s') comes when the window ends (a timer), or with
    the line saying the trouble is over (`resolved`).
    """

    def __init__(
        self,
        logger: logging.Logger,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        timer: bool = True,
    ):
        self.logger = logger
        self.window = window
        self.clock = clock
        self.timer = timer
        self._lock = threading.Lock()
        self._open: dict[str, list] = {}  # key -> [started, repeats, message, level, extra]

    def log(self, key: str, message: str, level: int = logging.ERROR, **extra) -> bool:
        """Log `message` unless `key` was logged less than `window` s ago; True if logged."""
        with self._lock:
            self._summarise(ended_only=True)
            entry = self._open.get(key)
            if entry is not None:
                entry[1] += 1
                return False
            self._open[key] = [self.clock(), 0, message, level, extra or None]
        self.logger.log(level, message, extra=extra or None)
        if self.timer:
            t = threading.Timer(self.window + 0.05, self.flush)
            t.daemon = True
            t.start()
        return True

    def flush(self) -> None:
        """Say how often each cause whose window has ended came again."""
        with self._lock:
            self._summarise(ended_only=True)

    def resolved(self, key_prefix: str, message: str) -> bool:
        """The trouble under keys starting with `key_prefix` is over: say so, with the count."""
        with self._lock:
            keys = [k for k in self._open if k.startswith(key_prefix)]
            if not keys:
                return False
            total = sum(self._open[k][1] + 1 for k in keys)
            for key in keys:
                del self._open[key]
        self.logger.info("%s (after %d failure%s)", message, total, "" if total == 1 else "s")
        return True

    def _summarise(self, ended_only: bool) -> None:
        now = self.clock()
        for key, (started, repeats, message, level, extra) in list(self._open.items()):
            if ended_only and now - started < self.window:
                continue
            del self._open[key]
            if repeats:
                self.logger.log(
                    level,
                    "%s … %d more in the last %d s",
                    message,
                    repeats,
                    max(1, round(now - started)),
                    extra=extra,
                )
