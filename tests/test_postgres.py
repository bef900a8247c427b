"""The PostgreSQL the store tests will use is there (CI=true makes its absence a failure)."""

from __future__ import annotations

import psycopg


def test_postgres_is_15_or_newer_and_writable(postgres_dsn):
    with psycopg.connect(postgres_dsn) as conn:
        version = conn.execute("show server_version_num").fetchone()[0]
        assert int(version) >= 150000
        conn.execute("create temporary table nigraan_probe (t text)")
        conn.execute("insert into nigraan_probe values (%s)", ("نگران",))
        assert conn.execute("select t from nigraan_probe").fetchone()[0] == "نگران"
