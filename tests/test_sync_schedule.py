"""The scheduled sync: runs recorded for the queue page, failures in words, one sync at a time.

Against the Central stand-in (real pyodk over HTTP on 127.0.0.1); the schedule with an interval
of a fraction of a second; the lease raced by two processes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from store.store import Store
from sync.central import Central
from sync.schedule import SyncScheduler, run_sync
from tests import test_sync
from tests.test_sync import FORM, _settings

standin = test_sync.standin  # the fixtures of the sync tests: the stand-in and its data
recorded_rows = test_sync.recorded_rows


def _factory(standin, **overrides):
    return lambda: Central(_settings(standin, **overrides))


def test_a_run_is_recorded_with_what_came_in(standin, store):
    outcome = run_sync(store, _factory(standin), "button")
    assert outcome.ran and outcome.ok, outcome.message
    status = store.sync_status()
    assert not status["running"]
    last = status["last_run"]
    assert last["ok"] and last["trigger"] == "button" and last["new"] == 30
    assert f"{FORM}: 30 new" in last["summary"]
    assert status["last_success"]["id"] == last["id"]
    again = run_sync(store, _factory(standin), "schedule")
    assert again.ok and store.sync_status()["last_run"]["new"] == 0


def test_a_failed_run_says_what_to_do_and_keeps_the_last_success(standin, store):
    assert run_sync(store, _factory(standin), "schedule").ok
    standin.fail(503, count=100)
    outcome = run_sync(store, _factory(standin, retries=2), "schedule")
    assert outcome.ran and not outcome.ok
    last = store.sync_status()["last_run"]
    assert last["ok"] is False
    assert "could not be reached" in last["failure"] and "internet connection" in last["failure"]
    assert standin.base_url in last["failure"] and "pw-not-real" not in last["failure"]
    assert store.sync_status()["last_success"]["id"] < last["id"]
    assert not store.sync_status()["running"]  # the lease was given back


def test_the_lease_refuses_a_second_sync_until_released_or_run_out(standin, store):
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert store.take_sync_lease("other", 60, now)
    assert store.sync_status(now)["running"]
    refused = run_sync(store, _factory(standin), "button", clock=lambda: now)
    assert not refused.ran and "already running" in refused.message
    assert store.sync_status()["last_run"] is None  # nothing ran, nothing recorded
    later = now + timedelta(seconds=61)  # the other holder died: its lease ran out
    assert run_sync(store, _factory(standin), "button", clock=lambda: later).ok


def test_the_scheduler_syncs_on_its_interval_and_when_asked(standin, store):
    scheduler = SyncScheduler(store, _factory(standin), interval_seconds=0.2).start()
    try:
        deadline = time.monotonic() + 20
        while scheduler.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scheduler.runs >= 2
        scheduler.run_now()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            last = store.sync_status()["last_run"]
            if last and last["trigger"] == "button" and last["finished_at"]:
                break
            time.sleep(0.05)
        assert last["trigger"] == "button" and last["ok"]
    finally:
        scheduler.stop()
    assert store.sync_status()["last_run"]["new"] == 0  # the first run brought all 30


def test_interval_zero_syncs_only_when_asked(standin, store):
    scheduler = SyncScheduler(store, _factory(standin), interval_seconds=0).start()
    try:
        time.sleep(0.5)
        assert store.sync_status()["last_run"] is None
        scheduler.run_now()
        deadline = time.monotonic() + 20
        while scheduler.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.sync_status()["last_run"]["new"] == 30
    finally:
        scheduler.stop()


RACE = """
import sys, time
from store.store import Store
store = Store.open(sys.argv[1])
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
print(store.take_sync_lease(sys.argv[3], 60))
store.close()
"""


def test_two_processes_racing_for_the_lease_get_it_once(new_database):
    url = new_database()
    Store.open(url, upgrade=True).close()
    for attempt in range(3):
        start = time.time() + 1.5
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", RACE, url, str(start), f"p{i}-{attempt}"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        answers = [p.communicate(timeout=60)[0].strip() for p in procs]
        assert sorted(answers) == ["False", "True"], answers
        store = Store.open(url)
        winner = f"p{answers.index('True')}-{attempt}"
        store.release_sync_lease(winner)
        store.close()


def test_nigraan_sync_from_a_shell_waits_for_the_server_s_sync(standin, runner, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    store = Store.open(url, upgrade=True)
    env = {
        "NIGRAAN_DATABASE_URL": url,
        "NIGRAAN_CENTRAL_BASE_URL": standin.base_url,
        "NIGRAAN_CENTRAL_USERNAME": "admin@example.com",
        "NIGRAAN_CENTRAL_PASSWORD": "pw-not-real",
        "NIGRAAN_CENTRAL_PROJECT_ID": "1",
    }
    from nigraan.cli import main

    try:
        assert store.take_sync_lease("serve-elsewhere", 600)  # the server is syncing
        outcome = runner.invoke(main, ["sync"], env=env)
        assert outcome.exit_code == 1
        assert "Another sync with ODK Central is running" in outcome.output
        store.release_sync_lease("serve-elsewhere")
        outcome = runner.invoke(main, ["sync"], env=env)
        assert outcome.exit_code == 0, outcome.output
        assert not store.sync_status()["running"]  # the shell gave the lease back
    finally:
        store.close()
