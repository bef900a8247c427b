"""`nigraan store ...` through click's CliRunner, on the default SQLite store."""

from __future__ import annotations

import shutil

import pytest

from nigraan.cli import main


@pytest.fixture
def env(tmp_path, central_dir):
    """An instance folder whose build folder holds Central's recorded rec_visit form."""
    build = tmp_path / "instance" / "forms"
    build.mkdir(parents=True)
    shutil.copy(central_dir / "forms" / "rec_visit.xml", build / "rec_visit.xml")
    return {"NIGRAAN_INSTANCE_DIR": str(tmp_path / "instance"), "NIGRAAN_CONFIG": None}


def test_the_default_store_is_sqlite_in_the_instance_folder(runner, env, tmp_path):
    result = runner.invoke(main, ["store", "init"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "instance" / "nigraan.sqlite3").is_file()
    assert f"sqlite:///{tmp_path / 'instance' / 'nigraan.sqlite3'}" in result.output


def test_init_load_rebuild_status(runner, env, new_database, central_dir):
    env = dict(env, NIGRAAN_DATABASE_URL=new_database())  # SQLite and PostgreSQL
    first = runner.invoke(main, ["store", "init"], env=env)
    assert first.exit_code == 0, first.output
    assert "rec_visit" in first.output and "new_form" in first.output
    again = runner.invoke(main, ["store", "init"], env=env)
    assert "unchanged" in again.output

    subs = central_dir / "submissions"
    files = [str(subs / f"v0{i}.xml") for i in range(1, 10)] + [str(subs / "malformed.xml")]
    loaded = runner.invoke(main, ["store", "load", *files, "--media", str(subs / "media")], env=env)
    assert loaded.exit_code == 0, loaded.output
    assert "10 submissions: 9 created, 1 unreadable; 1 problems recorded." in loaded.output

    odata = central_dir / "exchanges" / "257-odata-final-expand-page1.json"
    no_form = runner.invoke(main, ["store", "load", str(odata)], env=env)
    assert no_form.exit_code == 2 and "--form" in no_form.output

    rebuilt = runner.invoke(main, ["store", "rebuild"], env=env)
    assert rebuilt.exit_code == 0 and "Re-derived 10 submissions" in rebuilt.output

    status = runner.invoke(main, ["store", "status"], env=env)
    assert status.exit_code == 0
    line = next(ln for ln in status.output.splitlines() if ln.startswith("rec_visit "))
    assert line.split()[1:] == ["9", "9", "0", "0"]


def test_init_without_built_forms_says_what_to_do(runner, tmp_path):
    result = runner.invoke(
        main, ["store", "init"], env={"NIGRAAN_INSTANCE_DIR": str(tmp_path), "NIGRAAN_CONFIG": None}
    )
    assert result.exit_code == 2 and "nigraan forms build" in result.output


def test_bad_database_url_is_a_clear_error(runner, env):
    env = dict(env, NIGRAAN_DATABASE_URL="mysql://root:hunter2@127.0.0.1/x")
    result = runner.invoke(main, ["store", "status"], env=env)
    assert result.exit_code == 2 and "SQLite or PostgreSQL" in result.output
    assert "hunter2" not in result.output


def test_unreachable_postgres_is_a_clear_error_without_the_password(runner, env):
    env = dict(env, NIGRAAN_DATABASE_URL="postgresql://nigraan:s3cret@127.0.0.1:1/nigraan")
    result = runner.invoke(main, ["store", "status"], env=env)
    assert result.exit_code == 2 and "Cannot reach the database" in result.output
    assert "s3cret" not in result.output


def test_config_hides_the_database_password(runner, env):
    env = dict(env, NIGRAAN_DATABASE_URL="postgresql+psycopg://nigraan:s3cret@db:5432/nigraan")
    result = runner.invoke(main, ["config"], env=env)
    assert "postgresql+psycopg://nigraan:***@db:5432/nigraan" in result.output
    assert "s3cret" not in result.output
