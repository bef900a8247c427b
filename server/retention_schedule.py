"""The scheduled retention: `nigraan serve` erases identities past `identity.retention_days`.

`RetentionScheduler` runs `Store.run_retention` (store/erasure.py) in a thread at start and then
every `identity.retention_check_hours`, so a server that runs for months erases on time without a
cron job; `nigraan retention run` does the same from a shell. The day is read from `today`
(injectable, for tests); a run that fails is logged and the next one tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path

from nigraan.data_key import DataKey, data_key_from_config
from nigraan.errors import NigraanError
from store.store import RetentionRun

log = logging.getLogger(__name__)


class RetentionScheduler:
    """A thread that runs the retention at start and every `interval_seconds`."""

    def __init__(
        self,
        store,
        key: DataKey,
        days: int,
        interval_seconds: float,
        today: Callable[[], date] | None = None,
    ):
        self.store, self.key, self.days = store, key, days
        self.interval = interval_seconds
        self.today = today or (lambda: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # finished attempts (for tests and the log)
        self.last: RetentionRun | None = None

    def start(self) -> RetentionScheduler:
        self._thread = threading.Thread(target=self._loop, name="nigraan-retention", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> RetentionRun | None:
        try:
            run = self.store.run_retention(self.key, self.days, today=self.today())
        except Exception:  # the store failed: logged, and the schedule goes on
            log.exception("scheduled retention could not run")
            return None
        finally:
            self.runs += 1
        if run.erasures:
            # survivor codes are pseudonyms; no identity is ever logged
            log.info(
                "retention erased %d identities (cases closed more than %d days ago): %s",
                len(run.erasures),
                self.days,
                ", ".join(e.code for e in run.erasures),
            )
        self.last = run
        return run

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            if self._stop.wait(self.interval):
                return


def retention_scheduler_from_config(config, store) -> RetentionScheduler | None:
    """The server's retention schedule, or None (with the reason logged) when it is off: a
    check interval or retention of 0, or no data key to find the survivors' records with."""
    hours, days = config["identity.retention_check_hours"], config["identity.retention_days"]
    if hours <= 0 or days <= 0:
        return None
    if not config["identity.key"] and not Path(config["identity.key_file"]).exists():
        return None  # no data key, so no register: nothing to erase
    try:
        key = data_key_from_config(config)
    except NigraanError as exc:
        log.warning("retention not scheduled: %s", exc.message)
        return None
    return RetentionScheduler(store, key, days, hours * 3600)
