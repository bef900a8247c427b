"""`nigraan users ...` and `nigraan audit` through click's CliRunner, on a migrated store."""

from __future__ import annotations

import re

import pytest

from nigraan.cli import main
from server.web.accounts import HASHER
from store.store import Store


@pytest.fixture
def env(tmp_path):
    url = f"sqlite:///{tmp_path / 'instance' / 'nigraan.sqlite3'}"
    Store.open(url, upgrade=True).close()  # as `nigraan store init` leaves it
    return {"NIGRAAN_INSTANCE_DIR": str(tmp_path / "instance")}


def people(env):
    store = Store.open(f"sqlite:///{env['NIGRAAN_INSTANCE_DIR']}/nigraan.sqlite3")
    try:
        return {p.name: p for p in store.people.all()}, store.audit.entries()
    finally:
        store.close()


def password_in(output: str) -> str:
    return re.search(r"privately\): (\S+)", output).group(1)


def test_create_list_disable_reset_and_the_audit_of_each(runner, env):
    made = runner.invoke(main, ["users", "create", "sara", "--role", "supervisor"], env=env)
    assert made.exit_code == 0, made.output
    password = password_in(made.output)
    assert "Sign in at http://127.0.0.1:8080/" in made.output
    found, _ = people(env)
    assert found["sara"].role == "supervisor" and password not in found["sara"].password_hash
    assert found["sara"].password_hash.startswith("$argon2id$")
    assert HASHER.verify(found["sara"].password_hash, password)

    again = runner.invoke(main, ["users", "create", "sara", "--role", "supervisor"], env=env)
    assert again.exit_code == 2 and "already exists" in again.output
    quiet = runner.invoke(
        main, ["users", "create", "sara", "--role", "admin", "--if-missing"], env=env
    )
    assert quiet.exit_code == 0 and "exists" in quiet.output and password not in quiet.output

    worker = ["users", "create", "zara", "--role", "caseworker"]
    assert runner.invoke(main, worker, env=env).exit_code == 2  # a caseworker needs a unit
    assert runner.invoke(main, [*worker, "--unit", "ssu_nowhere"], env=env).exit_code == 2
    assert runner.invoke(main, [*worker, "--unit", "ssu_lahore"], env=env).exit_code == 0

    reset = runner.invoke(main, ["users", "reset-password", "sara"], env=env)
    assert reset.exit_code == 0
    assert HASHER.verify(people(env)[0]["sara"].password_hash, password_in(reset.output))
    assert runner.invoke(main, ["users", "disable", "zara"], env=env).exit_code == 0
    assert runner.invoke(main, ["users", "disable", "nobody"], env=env).exit_code == 2

    listed = runner.invoke(main, ["users", "list"], env=env).output.splitlines()
    assert re.match(r"sara\s+supervisor\s+active", listed[2])
    assert re.match(r"zara\s+caseworker\s+ssu_lahore\s+disabled", listed[3])
    assert "argon2" not in "".join(listed)

    _, audit = people(env)
    assert [(r["record"], r["detail"]) for r in audit] == [
        ("zara", "disabled"),
        ("sara", "password reset"),
        ("zara", "created, role caseworker, unit ssu_lahore"),
        ("sara", "created, role supervisor"),
    ]
    shown = runner.invoke(main, ["audit"], env=env)
    assert shown.exit_code == 0 and "password reset" in shown.output
    assert len(shown.output.splitlines()) == 2 + 4


def test_audit_filters_by_user_and_day(runner, env):
    from datetime import UTC, datetime

    store = Store.open(f"sqlite:///{env['NIGRAAN_INSTANCE_DIR']}/nigraan.sqlite3")
    store.audit.record("sign-in", actor="sara", at=datetime(2026, 11, 30, 9, tzinfo=UTC))
    store.audit.record("sign-in", actor="omar", at=datetime(2026, 12, 1, 9, tzinfo=UTC))
    store.audit.record("export", actor="sara", at=datetime(2026, 12, 1, 10, tzinfo=UTC))
    store.close()
    lines = runner.invoke(main, ["audit", "--user", "sara"], env=env).output.splitlines()[2:]
    assert [line.split()[3] for line in lines] == ["export", "sign-in"]
    lines = runner.invoke(main, ["audit", "--since", "2026-12-01"], env=env).output.splitlines()
    assert [line.split()[2] for line in lines[2:]] == ["sara", "omar"]
    bad = runner.invoke(main, ["audit", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
