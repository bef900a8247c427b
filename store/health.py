"""What an operator watches about the store: can the database be reached, is there room on the
disk holding it (and does that disk still write), is SQLite's write-ahead log being
checkpointed, and when did a sync with Central last run.

Each check is a dict with a `status` of ok, warn or fail, and plain values; none carries a
password, a token or submitted data. `nigraan status`, the store process and `/health` use them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from nigraan.logs import (
    RepeatedLog,
    StoreLocation,
    classify,
    explain,
    free_bytes,
    megabytes,
)

log = logging.getLogger(__name__)
OK, WARN, FAIL = "ok", "warn", "fail"
CHECKPOINT_EVERY = 10.0  # seconds between checkpoints the store process runs after commits


def overall(checks: dict[str, dict[str, Any]]) -> str:
    statuses = {c.get("status") for c in checks.values()}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else OK


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def probe_disk(directory: Path) -> None:
    """Write and fsync a small file in `directory`: a full or failing disk raises here."""
    path = directory / f".nigraan-health-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)


def disk_check(directory: Path, what: str, min_free_mb: int) -> dict[str, Any]:
    """Free space on the disk holding `directory` and whether it takes a write."""
    location = StoreLocation(str(directory), directory)
    check: dict[str, Any] = {"status": OK, "holds": what}
    free = free_bytes(directory)
    if free is not None:
        check["free_mb"] = round(free / 1_000_000)
    try:
        probe_disk(directory)
    except OSError as exc:
        check["status"] = FAIL
        cause = classify(exc)
        check["cause"] = cause.kind
        check["message"] = explain(cause, location, f"cannot write {what}")
        return check
    if free is not None and free < min_free_mb * 1_000_000:
        check["status"] = WARN
        check["message"] = (
            f"the disk holding {what} has {megabytes(free)} free, less than "
            f"health.min_free_mb ({min_free_mb} MB) — free space before it "
            "fills"
        )
    return check


def database_check(engine: Engine, location: StoreLocation) -> dict[str, Any]:
    check: dict[str, Any] = {"status": OK, "backend": engine.dialect.name}
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1").scalar()
    except Exception as exc:
        cause = classify(exc)
        check.update(
            status=FAIL,
            cause=cause.kind,
            message=explain(cause, location, "cannot reach the store"),
        )
        return check
    check["answered_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return check


def wal_path(engine: Engine) -> Path | None:
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    return Path(engine.url.database + "-wal")


class WalWatch:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` on SQLite and remembers what came of it.

    SQLite checkpoints by itself at commit time, but a failed automatic checkpoint is silent:
    the commit succeeds and the WAL grows. Running one here shows the failure and logs it.
    """

    def __init__(
        self,
        engine: Engine,
        location: StoreLocation,
        max_wal_mb: int,
        repeats: RepeatedLog | None = None,
    ):
        self.engine = engine
        self.location = location
        self.max_wal_mb = max_wal_mb
        self.repeats = repeats or RepeatedLog(log)
        self.failed_in_a_row = 0
        self.last: dict[str, Any] | None = None
        self.last_at: str | None = None
        self.last_failure: dict[str, Any] | None = None
        self._ran = 0.0

    @property
    def applies(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def wal_bytes(self) -> int | None:
        path = wal_path(self.engine)
        try:
            return path.stat().st_size if path else None
        except OSError:
            return None

    def after_commit(self) -> None:
        """Checkpoint now and then while submissions come in."""
        if self.applies and time.monotonic() - self._ran >= CHECKPOINT_EVERY:
            self.checkpoint()

    def checkpoint(self) -> bool:
        self._ran = time.monotonic()
        try:
            with self.engine.connect() as conn:
                busy, frames, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
                conn.commit()
        except Exception as exc:
            self.failed_in_a_row += 1
            cause = classify(exc)
            wal = self.wal_bytes()
            after = (
                f"; the write-ahead log{f' is {megabytes(wal)} and' if wal else ''} grows until "
                "a checkpoint succeeds (submissions are still committed to it)"
            )
            message = explain(cause, self.location, "WAL checkpoint failed", after)
            self.last_failure = {"at": now_iso(), "cause": cause.kind, "message": message}
            self.repeats.log(f"checkpoint:{cause.kind}", message, cause=cause.kind)
            return False
        if self.failed_in_a_row:
            self.repeats.resolved("checkpoint:", "WAL checkpoints succeed again")
        self.failed_in_a_row = 0
        self.last = {"busy": bool(busy), "wal_frames": frames, "checkpointed_frames": done}
        self.last_at = now_iso()
        return True

    def check(self) -> dict[str, Any]:
        """The WAL's size and the checkpoints' record (runs one first)."""
        if not self.applies:
            return {"status": OK, "applies": False}
        self.checkpoint()
        wal = self.wal_bytes()
        check: dict[str, Any] = {
            "status": OK,
            "wal_mb": round((wal or 0) / 1_000_000, 1),
            "failed_checkpoints_in_a_row": self.failed_in_a_row,
            "last_checkpoint_at": self.last_at,
            "last_checkpoint": self.last,
        }
        if self.failed_in_a_row:
            check.update(
                status=FAIL, cause=self.last_failure["cause"], message=self.last_failure["message"]
            )
        elif wal and wal > self.max_wal_mb * 1_000_000:
            check.update(
                status=WARN,
                message=(
                    f"the write-ahead log of {self.location.shown} is {megabytes(wal)}, more than "
                    f"health.max_wal_mb ({self.max_wal_mb} MB): a reader may hold it open (a long "
                    "export or review screen); it shrinks once checkpoints get through"
                ),
            )
        return check


def store_checks(engine: Engine, watch: WalWatch, min_free_mb: int) -> dict[str, dict]:
    """Database, the disk holding it, and the WAL: the checks run where the store is written."""
    location = watch.location
    checks = {"database": database_check(engine, location)}
    if location.directory is not None:
        checks["store_disk"] = disk_check(location.directory, location.shown, min_free_mb)
    if checks["database"]["status"] == OK:
        checks["wal"] = watch.check()
    return checks


def sync_check(engine: Engine) -> dict[str, Any]:
    """When each form was last synced with Central (the store's sync_state table)."""
    from store import tables as t

    ss = t.sync_state
    query = select(ss.c.form_id, ss.c.watermark, ss.c.resume_link, ss.c.updated_at)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query.order_by(ss.c.form_id)).all()
    except Exception as exc:
        detail = classify(exc).detail
        if "no such table" in detail or "does not exist" in detail:
            return {
                "status": WARN,
                "message": "the store has no tables yet — run `nigraan store init`",
            }
        return {"status": WARN, "message": f"cannot read the sync state: {detail}"}
    forms = [
        {
            "form_id": r.form_id,
            "updated_at": _iso(r.updated_at),
            "watermark": r.watermark,
            "pass_in_progress": r.resume_link is not None,
        }
        for r in rows
    ]
    last = max((f["updated_at"] for f in forms if f["updated_at"]), default=None)
    return {"status": OK, "last_sync": last, "forms": forms}


def _iso(value) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
