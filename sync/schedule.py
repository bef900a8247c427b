"""The scheduled sync: `nigraan serve` mirrors Central on a schedule, and on demand.

`run_sync` is one guarded run: it takes the store's sync lease (one sync at a time across
processes: the server's schedule, the queue's button, `nigraan sync` from a shell), pushes the
queued review decisions, pulls every published form, and records the run (what came in, or
why it failed in words a supervisor can act on) for `Store.sync_status()`. `SyncScheduler` runs
it in a thread every `sync.interval_minutes`, and at once when `run_now()` is called.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from nigraan.errors import NigraanError
from nigraan.identity_keys import IdentityKeys
from store.store import Store
from sync.central import Central, CentralUnavailable

log = logging.getLogger(__name__)

LEASE_SECONDS = 15 * 60  # renewed after every form, so only a stuck process loses it


@dataclass
class SyncOutcome:
    ran: bool  # False: another sync held the lease
    ok: bool = False
    run_id: int | None = None
    message: str = ""


def holder_name(label: str = "") -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{label or uuid.uuid4().hex[:8]}"


def failure_words(exc: Exception, base_url: str = "") -> str:
    """What went wrong and what to do, for the queue page."""
    where = f" at {base_url}" if base_url else ""
    if isinstance(exc, CentralUnavailable):
        return (
            f"ODK Central{where} could not be reached: {exc.message} Check this "
            "computer's internet connection and that Central is up; the next sync tries "
            "again."
        )
    if isinstance(exc, NigraanError):
        hint = f" {exc.hint}" if getattr(exc, "hint", None) else ""
        return (
            f"ODK Central{where} refused the sync: {exc.message}{hint} An administrator "
            "should check the central.* settings (user, password, project)."
        )
    return (
        f"The sync stopped on an unexpected error ({type(exc).__name__}). Nothing "
        "received is lost; tell the administrator, who will find the details in the "
        "server's log."
    )


def run_sync(
    store: Store,
    central_factory: Callable[[], Central],
    trigger: str,
    *,
    holder: str | None = None,
    clock: Callable[[], datetime] | None = None,
    lease_seconds: float = LEASE_SECONDS,
    identity_keys: IdentityKeys | None = None,
    managed_passphrase: str | None = None,
) -> SyncOutcome:
    """One sync if no other holds the lease; records the run either way it ends. With
    `identity_keys`, encrypted submissions are decrypted and identities filed (sync/pull.py)."""
    from sync.pull import pull_forms
    from sync.review_outbox import push_reviews

    now = clock or (lambda: None)
    holder = holder or holder_name(trigger)
    if not store.take_sync_lease(holder, lease_seconds, now()):
        return SyncOutcome(False, message="A sync is already running; try again in a minute.")
    run_id = store.start_sync_run(trigger, now())
    central = None
    totals = {"new": 0, "changed": 0, "deleted": 0, "reviews_pushed": 0}
    lines: list[str] = []
    try:
        central = central_factory()
        pushed = push_reviews(central, store)
        totals["reviews_pushed"] = pushed.applied
        if pushed.unavailable:
            raise pushed.unavailable  # noqa: TRY301 - handled below like any failure of the run
        for result in pull_forms(
            central,
            store,
            identity_keys=identity_keys,
            managed_passphrase=managed_passphrase,
        ):
            totals["new"] += result.new
            totals["changed"] += result.changed
            totals["deleted"] += result.deleted
            lines.append(
                f"{result.form_id}: {result.new} new, {result.changed} changed, "
                f"{result.deleted} deleted" + (f"; {result.problems[0]}" if result.problems else "")
            )
            store.take_sync_lease(holder, lease_seconds, now())  # still ours: renewed
        failures = [line for line in lines if "; " in line]
        store.finish_sync_run(
            run_id,
            ok=True,
            now=now(),
            summary="\n".join(lines),
            failure="\n".join(failures) or None,
            **totals,
        )
        return SyncOutcome(True, True, run_id, "\n".join(lines))
    except Exception as exc:  # recorded for the page; the schedule goes on
        base_url = getattr(getattr(central, "settings", None), "base_url", "")
        words = failure_words(exc, base_url)
        log.warning("sync failed: %s", words)
        store.finish_sync_run(
            run_id, ok=False, now=now(), summary="\n".join(lines), failure=words, **totals
        )
        return SyncOutcome(True, False, run_id, words)
    finally:
        if central is not None:
            central.close()
        store.release_sync_lease(holder)


class SyncScheduler:
    """A thread that runs `run_sync` every `interval_seconds`, and when `run_now()` is called."""

    def __init__(
        self,
        store: Store,
        central_factory: Callable[[], Central],
        interval_seconds: float,
        clock: Callable[[], datetime] | None = None,
        identity_keys: IdentityKeys | None = None,
        managed_passphrase: str | None = None,
    ):
        self.store, self.central_factory = store, central_factory
        self.identity_keys = identity_keys
        self.managed_passphrase = managed_passphrase
        self.interval = interval_seconds
        self.clock = clock
        self.holder = holder_name("serve")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._trigger = "schedule"
        self._thread: threading.Thread | None = None
        self.runs = 0  # finished attempts (for tests and the log)

    def start(self) -> SyncScheduler:
        self._thread = threading.Thread(target=self._loop, name="nigraan-sync", daemon=True)
        self._thread.start()
        return self

    def run_now(self) -> None:
        """Start a sync now (the queue page's button); a running one is not doubled."""
        self._trigger = "button"
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        first = self.interval > 0  # interval 0: only when asked (run_now)
        while not self._stop.is_set():
            if not first:
                self._wake.wait(self.interval if self.interval > 0 else None)
            first = False
            if self._stop.is_set():
                return
            self._wake.clear()
            trigger, self._trigger = self._trigger, "schedule"
            try:
                run_sync(
                    self.store,
                    self.central_factory,
                    trigger,
                    holder=self.holder,
                    clock=self.clock,
                    identity_keys=self.identity_keys,
                    managed_passphrase=self.managed_passphrase,
                )
            except Exception:  # the store itself failed: logged, and the schedule goes on
                log.exception("scheduled sync could not run")
            self.runs += 1


def scheduler_from_config(
    config, store: Store, identity_keys: IdentityKeys | None = None
) -> SyncScheduler | None:
    """The server's scheduler when Central is configured (interval 0: it syncs only when asked).
    `identity_keys` (loaded by `nigraan serve`) decrypt what it brings; identity.passphrase
    also opens Central-managed keys (Central's decrypting export)."""
    minutes = config["sync.interval_minutes"]
    if not config["central.base_url"]:
        return None
    return SyncScheduler(
        store,
        lambda: Central.from_config(config),
        minutes * 60,
        identity_keys=identity_keys,
        managed_passphrase=config["identity.passphrase"] or None,
    )
