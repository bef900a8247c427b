"""The PostgreSQL the store tests will use is there (CI=true makes its absence a failure)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg


def test_postgres_is_15_or_newer_and_writable(postgres_dsn):
    with psycopg.connect(postgres_dsn) as conn:
        version = conn.execute("show server_version_num").fetchone()[0]
        assert int(version) >= 150000
        conn.execute("create temporary table nigraan_probe (t text)")
        conn.execute("insert into nigraan_probe values (%s)", ("نگران",))
        assert conn.execute("select t from nigraan_probe").fetchone()[0] == "نگران"


def _run_postgres_test(ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["NIGRAAN_TEST_POSTGRES"] = "host=127.0.0.1 port=1 user=postgres dbname=test"
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            f"{Path(__file__)}::test_postgres_is_15_or_newer_and_writable",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )


def test_unreachable_postgres_skips_locally_and_fails_in_ci():
    local = _run_postgres_test(None)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout
    ci = _run_postgres_test("true")
    assert ci.returncode == 1, ci.stdout
    assert "CI=true requires it" in ci.stdout
