"""Logs and health an operator can act on: every storage fault says its cause and what to do in
one line (once, then a count), and /health and `nigraan status` show it while it lasts.

Faults in the store process are injected through tests/faults/sitecustomize.py (PYTHONPATH and
TEST_STORE_FAULTS); a database that goes away is a PostgreSQL database of the test's own that
stops taking connections, its sessions terminated with pg_terminate_backend.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
import sqlalchemy.exc

from nigraan.cli import main
from nigraan.logs import (
    DISK_FULL,
    IO_ERROR,
    LOCKED,
    OTHER,
    UNREACHABLE,
    JsonFormatter,
    RepeatedLog,
    StoreLocation,
    classify,
    explain_store_failure,
)
from store.store import Store
from tests.openrosa_client import CollectClient
from tests.test_openrosa_server import visit_xml

FAULTS_DIR = Path(__file__).resolve().parent / "faults"


# ------------------------------------------------------------------ causes


def _wrapped(orig: Exception) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("INSERT INTO submissions ...", {}, orig)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), DISK_FULL),
        (OSError(errno.EIO, "Input/output error"), IO_ERROR),
        (_wrapped(sqlite3.OperationalError("database or disk is full")), DISK_FULL),
        (_wrapped(sqlite3.OperationalError("disk I/O error")), IO_ERROR),
        (_wrapped(sqlite3.OperationalError("database is locked")), LOCKED),
        (_wrapped(psycopg.errors.lookup("53100")("could not extend file")), DISK_FULL),
        (
            _wrapped(
                psycopg.errors.lookup("57P01")(
                    "terminating connection due to administrator command"
                )
            ),
            UNREACHABLE,
        ),
        (_wrapped(psycopg.OperationalError("the connection is lost")), UNREACHABLE),
        (
            _wrapped(
                psycopg.OperationalError(
                    "connection failed: connection to server at "
                    '"127.0.0.1", port 1 failed: Connection refused'
                )
            ),
            UNREACHABLE,
        ),
        (_wrapped(psycopg.errors.lookup("55P03")("could not obtain lock")), LOCKED),
        (ValueError("something else"), OTHER),
    ],
)
def test_storage_failures_are_classified(exc, kind):
    assert classify(exc).kind == kind


def test_a_failure_line_says_cause_and_remedy_without_sqlalchemy_noise(tmp_path):
    url = f"sqlite:///{tmp_path / 'nigraan.sqlite3'}"
    exc = _wrapped(sqlite3.OperationalError("database or disk is full"))
    assert "Background on this error" in str(exc)  # what used to reach the log
    cause, line = explain_store_failure(exc, url)
    assert cause.kind == DISK_FULL
    assert line.startswith(f"cannot store submissions: the disk holding {tmp_path}")
    assert " is full (" in line and " free) — free space; tablets keep their submissions" in line
    assert "Background" not in line and "\n" not in line and "INSERT" not in line


def test_postgresql_location_never_shows_the_password():
    location = StoreLocation.from_url("postgresql+psycopg://nigraan:s3cret@db:5433/nigraan")
    assert location.shown == "PostgreSQL at db:5433/nigraan"
    assert location.directory is None


def test_a_repeated_cause_is_logged_once_then_counted(caplog):
    now = [1000.0]
    repeats = RepeatedLog(
        logging.getLogger("t.repeats"), window=60, clock=lambda: now[0], timer=False
    )
    caplog.set_level(logging.INFO, logger="t.repeats")
    for _ in range(905):
        repeats.log("store:disk_full", "cannot store submissions: the disk is full")
        now[0] += 40 / 905
    assert [r.getMessage() for r in caplog.records] == [
        "cannot store submissions: the disk is full"
    ]
    repeats.log("store:io_error", "another cause")  # its own line at once
    assert len(caplog.records) == 2
    now[0] += 21
    repeats.flush()
    assert caplog.records[-1].getMessage() == (
        "cannot store submissions: the disk is full … 904 more in the last 61 s"
    )
    repeats.log("store:disk_full", "cannot store submissions: the disk is full")  # a new window
    assert caplog.records[-1].getMessage() == "cannot store submissions: the disk is full"
    assert repeats.resolved("store:", "submissions are being stored again")
    assert caplog.records[-1].getMessage() == (
        "submissions are being stored again (after 2 failures)"
    )


def test_the_summary_comes_when_the_window_ends_even_if_the_fault_stops(caplog):
    caplog.set_level(logging.INFO, logger="t.timer")
    repeats = RepeatedLog(logging.getLogger("t.timer"), window=0.2)
    for _ in range(3):
        repeats.log("store:disk_full", "the disk is full")
    assert _wait_for(lambda: len(caplog.records) == 2, 5)
    assert caplog.records[-1].getMessage() == "the disk is full … 2 more in the last 1 s"


def test_json_lines_carry_time_level_component_and_cause():
    record = logging.LogRecord(
        "server.openrosa",
        logging.ERROR,
        __file__,
        1,
        "submission to %s not saved",
        ("custody_visit",),
        None,
    )
    record.cause = DISK_FULL
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "ERROR" and entry["component"] == "server.openrosa"
    assert entry["message"] == "submission to custody_visit not saved"
    assert entry["cause"] == DISK_FULL and entry["time"].endswith("Z")


# --------------------------------------------------------------------- CLI


def test_cli_errors_go_through_logging_as_json(runner, tmp_path):
    result = runner.invoke(
        main,
        ["store", "status"],
        env={
            "NIGRAAN_INSTANCE_DIR": str(tmp_path),
            "NIGRAAN_LOG_FORMAT": "json",
            "NIGRAAN_DATABASE_URL": "mysql://u:hunter2@db/x",
        },
    )
    assert result.exit_code == 2
    [line] = [ln for ln in result.output.splitlines() if ln.startswith("{")]
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["component"] == "nigraan"
    assert "SQLite or PostgreSQL" in entry["message"] and "hunter2" not in result.output


def test_cli_error_lines_have_time_level_component(runner, tmp_path):
    result = runner.invoke(
        main,
        ["store", "status"],
        env={
            "NIGRAAN_INSTANCE_DIR": str(tmp_path),
            "NIGRAAN_DATABASE_URL": "mysql://db/x",
        },
    )
    [line] = [ln for ln in result.output.splitlines() if "SQLite or PostgreSQL" in ln]
    stamp, level, component = line.split(" ", 3)[:3]
    assert stamp.endswith("Z") and level == "ERROR" and component == "nigraan:"


def test_a_full_disk_stops_a_cli_command_with_one_line(
    runner, make_config, tmp_path, monkeypatch, central_dir
):
    config = make_config()
    instance = central_dir / "submissions"
    xml_file = next(instance.glob("*.xml"), None) or next(central_dir.rglob("*.xml"))

    def full(self, items):
        raise _wrapped(sqlite3.OperationalError("database or disk is full"))

    Store.from_config(config, upgrade=True).close()  # as `nigraan store init`
    monkeypatch.setattr(Store, "ingest_many", full)
    result = runner.invoke(
        main,
        ["store", "load", str(xml_file)],
        obj=config,
        env={"NIGRAAN_INSTANCE_DIR": str(config["instance_dir"])},
    )
    assert result.exit_code == 1, result.output
    [line] = [ln for ln in result.output.splitlines() if "cannot use the store" in ln]
    assert " ERROR nigraan: cannot use the store: the disk holding " in line
    assert "is full (" in line and "— free space" in line
    assert "Traceback" not in result.output and "Background on this error" not in result.output


def test_status_shows_the_store_the_disk_the_wal_and_the_last_sync(runner, tmp_path):
    env = {
        "NIGRAAN_INSTANCE_DIR": str(tmp_path / "instance"),
        "NIGRAAN_SERVER_PORT": str(_closed_port()),
    }
    store = Store.open(f"sqlite:///{tmp_path / 'instance' / 'nigraan.sqlite3'}", upgrade=True)
    store.save_sync_state(
        "https://central.example/1/rec_visit", "rec_visit", watermark="2026-11-30T10:00:00.000Z"
    )
    store.close()
    result = runner.invoke(main, ["status"], env=env)
    assert result.exit_code == 0, result.output
    lines = {ln.split()[0]: ln for ln in result.output.splitlines() if ln.strip()}
    assert lines["database"].split()[1] == "ok"
    assert lines["store_disk"].split()[1] == "ok" and "MB free" in lines["store_disk"]
    assert "failed checkpoints in a row" in lines["wal"]
    assert "last sync 20" in lines["sync"] and "(1 forms)" in lines["sync"]
    assert "not running" in lines["server"]

    low = runner.invoke(
        main, ["status", "--json"], env={**env, "NIGRAAN_HEALTH_MIN_FREE_MB": "10000000"}
    )
    assert low.exit_code == 0, low.output
    report = json.loads(low.output)
    assert report["status"] == "warn" and report["checks"]["store_disk"]["status"] == "warn"
    assert "health.min_free_mb" in report["checks"]["store_disk"]["message"]


def test_status_fails_when_the_database_is_unreachable(runner, tmp_path):
    port = _closed_port()
    result = runner.invoke(
        main,
        ["status"],
        env={
            "NIGRAAN_INSTANCE_DIR": str(tmp_path),
            "NIGRAAN_DATABASE_URL": f"postgresql+psycopg://nigraan:s3cret@127.0.0.1:{port}/x",
            "NIGRAAN_SERVER_PORT": str(_closed_port()),
        },
    )
    assert result.exit_code == 1, result.output
    assert "database       fail" in result.output
    assert (
        f"cannot reach the store: the database (PostgreSQL at 127.0.0.1:{port}/x) is "
        "unreachable or shutting down"
    ) in result.output
    assert "s3cret" not in result.output


def test_status_does_not_make_an_empty_store(runner, tmp_path):
    env = {
        "NIGRAAN_INSTANCE_DIR": str(tmp_path / "instance"),
        "NIGRAAN_SERVER_PORT": str(_closed_port()),
    }
    result = runner.invoke(main, ["status"], env=env)
    assert result.exit_code == 1, result.output
    assert "there is no store at " in result.output and "nigraan store init" in result.output
    assert not (tmp_path / "instance" / "nigraan.sqlite3").exists()


def _closed_port() -> int:
    from tests.openrosa_client import free_port

    return free_port()


# ------------------------------------------------------------ the server


@pytest.fixture
def faults(tmp_path, monkeypatch):
    """fault("enospc" | "eio" | "checkpoint-eio" | "") -> set the store process's fault."""
    switch = tmp_path / "faults.txt"
    switch.write_text("")
    monkeypatch.setenv("TEST_STORE_FAULTS", str(switch))
    monkeypatch.setenv("PYTHONPATH", str(FAULTS_DIR))
    return switch.write_text


def _health(server) -> tuple[int, dict]:
    http = getattr(server, "http", requests)  # an in-process server has its own session
    response = http.get(server.base + "/health", timeout=30)
    assert response.headers["Content-Type"] == "application/json"
    return response.status_code, response.json()


def _log(server) -> str:
    return server.log_path.read_text(encoding="utf-8")


def _new_visit() -> bytes:
    return visit_xml(f"uuid:{uuid.uuid4()}")


def _wait_for(predicate, seconds: float = 10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_health_answers_json_in_process(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.json["status"] == "ok"
    assert response.json["checks"]["store_process"] == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)  # a store_disk check
def test_health_is_ok_on_a_sound_server(serve_in_process):
    server = serve_in_process()
    assert server.collect(server.token_url).send(_new_visit()).status_code == 201
    status, report = _health(server)
    assert status == 200 and report["status"] == "ok", report
    checks = report["checks"]
    assert set(checks) >= {
        "store_process",
        "database",
        "store_disk",
        "wal",
        "uploads_disk",
        "submissions",
        "sync",
    }
    assert checks["wal"]["failed_checkpoints_in_a_row"] == 0
    assert checks["submissions"]["last_stored_at"]
    assert server.password not in json.dumps(report) and "token" not in json.dumps(report)


def test_status_reports_what_the_running_server_says(serve_openrosa, tmp_path, runner, faults):
    server = serve_openrosa(f"sqlite:///{tmp_path / 's.sqlite3'}")
    env = {
        "NIGRAAN_INSTANCE_DIR": str(tmp_path / "cli"),
        "NIGRAAN_SERVER_PORT": str(server.port),
        "NIGRAAN_DATABASE_URL": server.database_url,
    }
    result = runner.invoke(main, ["status"], env=env)
    assert result.exit_code == 0, result.output
    assert f"server         ok    http://127.0.0.1:{server.port}/health: ok" in result.output
    faults("eio")
    assert CollectClient(server.token_url).send(_new_visit()).status_code == 500
    result = runner.invoke(main, ["status"], env=env)
    assert result.exit_code == 1, result.output
    assert "server         fail" in result.output
    assert "  server: store_disk: cannot write " in result.output and "I/O errors" in result.output


def test_a_full_disk_is_said_once_with_its_remedy_and_health_shows_it(
    serve_openrosa, tmp_path, faults
):
    server = serve_openrosa(f"sqlite:///{tmp_path / 's.sqlite3'}")
    device = CollectClient(server.token_url)
    faults("enospc")
    held = [_new_visit() for _ in range(12)]
    assert [device.send(xml).status_code for xml in held] == [500] * 12
    status, report = _health(server)
    assert status == 503 and report["status"] == "fail"
    assert report["checks"]["store_disk"]["cause"] == "disk_full"
    assert report["checks"]["submissions"]["last_failure"]["cause"] == "disk_full"
    log = _log(server)
    where = f"the disk holding {tmp_path / 's.sqlite3'} is full ("
    store_lines = [ln for ln in log.splitlines() if "server.submission_writer:" in ln]
    server_lines = [ln for ln in log.splitlines() if "server.health:" in ln]
    assert len(store_lines) == 1 and len(server_lines) == 1, log
    assert " ERROR server.submission_writer: cannot store submissions: " + where in store_lines[0]
    assert store_lines[0].endswith("free) — free space; tablets keep their submissions and resend")
    assert (
        "ERROR server.health: submission to rec_visit not saved: cannot store submissions: " + where
    ) in server_lines[0]
    assert "StoreProcessError" not in log and "Background on this error" not in log

    faults("")
    status, report = _health(server)
    assert status == 200, report
    assert [device.send(xml).status_code for xml in held] == [201] * 12
    assert _wait_for(
        lambda: "submissions are being stored again (after 12 failures)" in _log(server)
    )
    store = Store.open(server.database_url)
    try:
        assert store.counts()["rec_visit"]["submissions"] == 12
    finally:
        store.close()


def test_a_failing_disk_is_an_io_error_with_its_remedy(serve_openrosa, tmp_path, faults):
    server = serve_openrosa(f"sqlite:///{tmp_path / 's.sqlite3'}")
    device = CollectClient(server.token_url)
    faults("eio")
    xml = _new_visit()
    assert device.send(xml).status_code == 500
    status, report = _health(server)
    assert status == 503
    assert report["checks"]["store_disk"]["cause"] == "io_error"
    assert report["checks"]["submissions"]["last_failure"]["cause"] == "io_error"
    log = _log(server)
    assert (
        f"ERROR server.submission_writer: cannot store submissions: the disk holding "
        f"{tmp_path / 's.sqlite3'} reports I/O errors (disk I/O error) — the disk may be "
        "failing: check the system log (dmesg)"
    ) in log
    assert "submission to rec_visit not saved: cannot store submissions: the disk holding" in log
    faults("")
    assert _health(server)[0] == 200
    assert device.send(xml).status_code == 201


def test_failing_wal_checkpoints_are_logged_and_fail_health(serve_openrosa, tmp_path, faults):
    """The main database's fsync fails while the WAL still takes commits: submissions are
    stored, but the checkpoints fail, and that is no longer silent."""
    server = serve_openrosa(f"sqlite:///{tmp_path / 's.sqlite3'}")
    device = CollectClient(server.token_url)
    faults("checkpoint-eio")
    assert device.send(_new_visit()).status_code == 201
    status, report = _health(server)
    assert status == 503, report
    wal = report["checks"]["wal"]
    assert wal["status"] == "fail" and wal["failed_checkpoints_in_a_row"] >= 1
    assert wal["cause"] == "io_error"
    assert _health(server)[1]["checks"]["wal"]["failed_checkpoints_in_a_row"] >= 2
    log = _log(server)
    assert (
        f"ERROR store.health: WAL checkpoint failed: the disk holding {tmp_path / 's.sqlite3'}"
        " reports I/O errors (disk I/O error) — the disk may be failing"
    ) in log
    assert "grows until a checkpoint succeeds" in log
    assert log.count("WAL checkpoint failed") == 1  # then counted, not repeated
    faults("")
    status, report = _health(server)
    assert status == 200 and report["checks"]["wal"]["failed_checkpoints_in_a_row"] == 0
    assert "WAL checkpoints succeed again (after" in _log(server)


@pytest.fixture
def own_postgres_database(postgres_dsn):
    """A PostgreSQL database of this test's own (never the shared one), dropped afterwards."""
    name = f"nigraan_health_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(postgres_dsn)
    url = (
        f"postgresql+psycopg://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}"
        f":{info.get('port', 5432)}/{name}"
    )

    def cut_off(cut: bool) -> None:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if cut else "true"}')
            if cut:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )

    yield url, name, cut_off
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)  # its own database
def test_a_database_that_goes_away_is_said_and_health_follows(
    serve_in_process, own_postgres_database
):
    url, name, cut_off = own_postgres_database
    server = serve_in_process(url)
    device = server.collect(server.token_url)
    assert device.send(_new_visit()).status_code == 201
    cut_off(True)
    held = [_new_visit() for _ in range(3)]
    assert [device.send(xml).status_code for xml in held] == [500] * 3
    status, report = _health(server)
    assert status == 503
    assert report["checks"]["database"]["cause"] == "database_unreachable"
    log = _log(server)
    unreachable = (
        f"the database (PostgreSQL at 127.0.0.1:5432/{name}) is unreachable or shutting down"
    )
    assert "cannot store submissions: " + unreachable in log, log
    assert "check that PostgreSQL is running and reachable; nigraan reconnects by itself" in log
    assert "error ignored terminating" not in log and "Background on this error" not in log
    assert "Traceback" not in log
    cut_off(False)
    assert _wait_for(lambda: _health(server)[0] == 200, 30)
    assert [device.send(xml).status_code for xml in held] == [201] * 3


def test_psycopg_lines_after_a_lost_connection_are_left_out(capsys):
    """psycopg logs 'error ignored terminating <psycopg.Pipeline [BAD]>' at WARNING when a
    connection drops mid-pipeline; nigraan's own classified line already says it."""
    from nigraan.logs import setup_logging

    setup_logging("INFO")
    logging.getLogger("psycopg").warning(
        "error ignored terminating %r: %s", "<psycopg.Pipeline [BAD]>", "the connection is lost"
    )
    logging.getLogger("server.health").error("a line of ours")
    err = capsys.readouterr().err
    assert "error ignored terminating" not in err
    assert " ERROR server.health: a line of ours" in err


@pytest.mark.postgres
def test_connections_terminated_mid_load_lose_nothing_and_log_no_noise(
    serve_openrosa, own_postgres_database
):
    """PostgreSQL ends every session of the database (as on a restart) while devices upload:
    what was acknowledged is stored, the rest is sent again, and the log has no library noise."""
    import threading

    url, _name, cut_off = own_postgres_database
    server = serve_openrosa(url)
    acked: list[str] = []
    stop = threading.Event()

    def upload(device: CollectClient) -> None:
        for _ in range(400):
            if stop.is_set():
                return
            instance = f"uuid:{uuid.uuid4()}"
            for _attempt in range(20):  # Collect keeps it and sends it again
                if device.send(visit_xml(instance)).status_code == 201:
                    acked.append(instance)
                    break
                time.sleep(0.05)

    devices = [
        threading.Thread(target=upload, args=(CollectClient(server.token_url),)) for _ in range(4)
    ]
    for d in devices:
        d.start()
    try:
        for _ in range(3):
            time.sleep(0.7)
            cut_off(True)
            cut_off(False)
    finally:
        stop.set()
        for d in devices:
            d.join(60)
    assert len(acked) > 20
    store = Store.open(url)
    try:
        assert all(store.submission("rec_visit", i) is not None for i in acked)
        assert store.counts()["rec_visit"]["submissions"] == len(set(acked))
    finally:
        store.close()
    log = _log(server)
    assert "error ignored terminating" not in log and "Background on this error" not in log
    assert "Traceback" not in log, log
    for line in log.splitlines():
        if " ERROR " in line:
            assert "unreachable or shutting down" in line, line


@pytest.fixture
def small_volume(tmp_path):
    """An 8 MiB tmpfs of the test's own (needs root; skipped elsewhere), unmounted afterwards."""
    import os
    import subprocess

    volume = tmp_path / "volume"
    volume.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(volume)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    yield volume
    subprocess.run(["umount", "-l", str(volume)], check=False)


def _fill(volume: Path) -> Path:
    """Take every free byte of `volume`; the file to delete to free it again."""
    import os

    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(10_000):  # 8 MiB in 4 KiB pieces at most
            try:
                os.write(fd, b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    finally:
        os.close(fd)
    return filler


def test_a_really_full_volume_is_said_and_health_follows(serve_openrosa, small_volume):
    database = small_volume / "nigraan.sqlite3"
    server = serve_openrosa(f"sqlite:///{database}")
    device = CollectClient(server.token_url)
    assert device.send(_new_visit()).status_code == 201
    filler = _fill(small_volume)
    held = [visit_xml(f"uuid:{uuid.uuid4()}", photo="p.jpg") for _ in range(5)]
    photo = ("p.jpg", b"\xff\xd8" + bytes(range(256)) * 4000, "image/jpeg")
    assert [device.send(xml, [photo]).status_code for xml in held] == [500] * 5
    status, report = _health(server)
    assert status == 503, report
    assert report["checks"]["store_disk"]["cause"] == "disk_full"
    log = _log(server)
    assert (
        f"ERROR server.submission_writer: cannot store submissions: the disk holding "
        f"{database} is full ("
    ) in log
    assert "submission to rec_visit not saved: cannot store submissions: the disk holding" in log
    assert "Background on this error" not in log and "Traceback" not in log
    filler.unlink()
    assert _health(server)[0] == 200
    assert [device.send(xml, [photo]).status_code for xml in held] == [201] * 5


def test_json_lines_from_server_and_store_process(serve_openrosa, tmp_path, faults):
    server = serve_openrosa(f"sqlite:///{tmp_path / 's.sqlite3'}", log__format="json")
    faults("enospc")
    assert CollectClient(server.token_url).send(_new_visit()).status_code == 500
    entries = [json.loads(ln) for ln in _log(server).splitlines() if ln.startswith("{")]
    by_component = {e["component"]: e for e in entries if e["level"] == "ERROR"}
    assert by_component["server.submission_writer"]["cause"] == "disk_full"
    assert by_component["server.health"]["cause"] == "disk_full"
    assert by_component["server.health"]["message"].startswith(
        "submission to rec_visit not saved: cannot store submissions: the disk holding "
    )
