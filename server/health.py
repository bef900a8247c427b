"""Health a monitoring tool can poll (`GET /health`: JSON, 200 or 503), and the server's
"submission not saved" lines, which say the cause the store process found.

The checks: the store process answers; from inside it, the database answers, the disk holding
the store takes a write and has room (health.min_free_mb), the WAL is checkpointed and not
too large (health.max_wal_mb); the disk holding uploads in transit (the temporary folder) has
room; submissions are being stored (the last failure, and whether it still holds); and the
last sync with Central. 503 when a check fails, 200 otherwise (`status` says ok or warn).
Nothing in the answer is a secret, a credential or submitted data.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify

from nigraan.logs import (
    DISK_FULL,
    IO_ERROR,
    OTHER,
    STORE_PROCESS,
    UNREACHABLE,
    RepeatedLog,
    StoreLocation,
    classify,
    explain,
    explain_store_failure,
)
from store.health import FAIL, OK, disk_check, now_iso, overall, sync_check

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)
# Failures the checks themselves would see while they last; others (a lock, a bug) count as
# current until a submission is stored again.
PROBED = {DISK_FULL, IO_ERROR, UNREACHABLE, STORE_PROCESS}


class ServerHealth:
    """What the server process knows: the last stored submission, the last failure."""

    def __init__(self, config, writer, read_engine):
        self.config = config
        self.writer = writer
        self.read_engine = read_engine
        self.location = StoreLocation.from_url(config["database.url"])
        self.repeats = RepeatedLog(log)
        self._lock = threading.Lock()
        self.last_stored_at: str | None = None
        self.last_failure: dict[str, Any] | None = None  # cleared by the next stored one

    def stored(self) -> None:
        with self._lock:
            self.last_stored_at = now_iso()
            had_failure, self.last_failure = self.last_failure is not None, None
        if had_failure:
            self.repeats.resolved("not_saved:", "submissions are being stored again")

    def not_saved(self, form_id: str, exc: BaseException) -> None:
        """Log why a submission was not stored (once per cause a minute, then a count)."""
        kind = getattr(exc, "cause_kind", None)
        line = getattr(exc, "message", None)
        if not (kind and isinstance(line, str)):  # not classified by the store process
            cause, line = explain_store_failure(exc, self.config["database.url"])
            kind = cause.kind
        with self._lock:
            self.last_failure = {"at": now_iso(), "cause": kind, "message": line}
        self.repeats.log(
            f"not_saved:{kind}", f"submission to {form_id} not saved: {line}", cause=kind
        )

    def storage_failed(self, exc: BaseException) -> bool:
        """A request failed reading the store: log its cause once a minute; False if the
        cause is not a storage one (then it deserves a traceback)."""
        cause = classify(exc)
        if cause.kind == OTHER:
            return False
        line = explain(
            cause, self.location, "cannot read the store", "; devices get 500 and try again"
        )
        self.repeats.log(f"read:{cause.kind}", line, cause=cause.kind)
        return True

    def report(self) -> dict[str, Any]:
        checks: dict[str, dict[str, Any]] = {}
        try:
            checks["store_process"] = {"status": OK}
            checks.update(self.writer.health())
        except Exception as exc:
            cause = classify(exc)
            checks["store_process"] = {
                "status": FAIL,
                "cause": cause.kind,
                "message": explain(cause, self.location, "the store process does not answer"),
            }
        uploads = Path(tempfile.gettempdir())
        checks["uploads_disk"] = disk_check(
            uploads, "uploads in transit", self.config["health.min_free_mb"]
        )
        checks["submissions"] = self._submissions(checks)
        checks["sync"] = sync_check(self.read_engine)
        return {"status": overall(checks), "time": now_iso(), "checks": checks}

    def _submissions(self, checks: dict[str, dict]) -> dict[str, Any]:
        with self._lock:
            failure = dict(self.last_failure) if self.last_failure else None
            check: dict[str, Any] = {"status": OK, "last_stored_at": self.last_stored_at}
        if failure is None:
            return check
        check["last_failure"] = failure
        probes_pass = all(c["status"] != FAIL for c in checks.values())
        if failure["cause"] not in PROBED or not probes_pass:
            check.update(status=FAIL, message=failure["message"])
        return check


def services_health() -> ServerHealth:
    return current_app.extensions["nigraan"].health


@bp.get("/health")
def health():
    report = services_health().report()
    response = jsonify(report)
    response.status_code = 503 if report["status"] == FAIL else 200
    response.headers["Cache-Control"] = "no-store"
    return response


def status_report(config) -> dict[str, Any]:
    """`nigraan status`: the store checks run from here, the last sync, and what a running
    `nigraan serve` answers on /health."""
    from server import server_url
    from store.database import create_store_engine
    from store.health import WalWatch, database_check, store_checks

    location = StoreLocation.from_url(config["database.url"])
    engine = create_store_engine(config["database.url"])
    file = engine.url.database if engine.dialect.name == "sqlite" else None
    if file and file != ":memory:" and not Path(file).exists():  # never make an empty one
        engine.dispose()
        missing = (
            f"there is no store at {location.shown} — run `nigraan store init` (or "
            "check database.url)"
        )
        checks = {"database": {"status": FAIL, "backend": "sqlite", "message": missing}}
        checks["server"] = _server_health(server_url(config) + "/health")
        return {"status": overall(checks), "time": now_iso(), "checks": checks}
    try:
        watch = WalWatch(engine, location, config["health.max_wal_mb"])
        checks = store_checks(engine, watch, config["health.min_free_mb"])
        if checks["database"]["status"] == OK:
            checks["sync"] = sync_check(engine)
    except Exception as exc:
        checks = {"database": database_check(engine, location)}
        if checks["database"]["status"] == OK:
            checks["database"] = {"status": FAIL, "message": classify(exc).detail}
    finally:
        engine.dispose()
    checks["server"] = _server_health(server_url(config) + "/health")
    return {"status": overall(checks), "time": now_iso(), "checks": checks}


def _server_health(url: str) -> dict[str, Any]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
        except ValueError:
            return {"status": FAIL, "url": url, "message": f"{url} answered HTTP {exc.code}"}
    except (OSError, ValueError):
        return {
            "status": OK,
            "url": url,
            "running": False,
            "message": f"no nigraan serve answers at {url}",
        }
    failing = {
        name: c.get("message", "")
        for name, c in answer.get("checks", {}).items()
        if c.get("status") == FAIL
    }
    check = {"status": answer.get("status", FAIL), "url": url, "running": True}
    if failing:
        check["message"] = "; ".join(f"{name}: {text}" for name, text in failing.items())
    return check
