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
    # An operational failure (the database does not answer) exits 1; it exited 2 before the
    # exit-code convention (usage error 2, operational failure 1).
    assert result.exit_code == 1 and "Cannot reach the database" in result.output
    assert "s3cret" not in result.output


def test_config_hides_the_database_password(runner, env):
    env = dict(env, NIGRAAN_DATABASE_URL="postgresql+psycopg://nigraan:s3cret@db:5432/nigraan")
    result = runner.invoke(main, ["config"], env=env)
    assert "postgresql+psycopg://nigraan:***@db:5432/nigraan" in result.output
    assert "s3cret" not in result.output


def test_load_applies_edits_whatever_the_file_order(runner, env, new_database, central_dir):
    """Briefcase names instance folders by uuid, so an edit can come before its original."""
    env = dict(env, NIGRAAN_DATABASE_URL=new_database())
    assert runner.invoke(main, ["store", "init"], env=env).exit_code == 0
    subs = central_dir / "submissions"
    loaded = runner.invoke(
        main, ["store", "load", str(subs / "v05-edit1.xml"), str(subs / "v05.xml")], env=env
    )
    assert loaded.exit_code == 0, loaded.output
    assert "2 submissions: 1 created, 1 edited; 0 problems recorded." in loaded.output
    unknown = runner.invoke(
        main, ["store", "load", str(subs / "edit-unknown-deprecated.xml")], env=env
    )
    assert unknown.exit_code == 1
    assert "not stored: " in unknown.output and "unknown_deprecated" in unknown.output


def test_load_stores_the_files_an_envelope_names(runner, env, tmp_path, central_dir):
    shutil.copy(central_dir / "forms" / "rec_encrypted.xml", tmp_path / "instance" / "forms")
    assert runner.invoke(main, ["store", "init"], env=env).exit_code == 0
    folder = central_dir / "submissions" / "encrypted"
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(folder / "e01.1764300100001.jpg.enc", media / "1764300100001.jpg.enc")
    shutil.copy(folder / "e01.submission.xml.enc", media / "submission.xml.enc")
    loaded = runner.invoke(
        main, ["store", "load", str(folder / "e01.manifest.xml"), "--media", str(media)], env=env
    )
    assert loaded.exit_code == 0, loaded.output
    from store.store import Store

    store = Store.open(f"sqlite:///{tmp_path / 'instance' / 'nigraan.sqlite3'}")
    try:
        listed = store.attachments("rec_encrypted", "uuid:5a3dab5c-b138-4238-9d0e-3eb674652917")
    finally:
        store.close()
    assert [(a["name"], a["exists"]) for a in listed] == [
        ("1764300100001.jpg.enc", True),
        ("submission.xml.enc", True),
    ]


@pytest.mark.parametrize(
    "ids, order",
    [
        ([("b", "a"), ("a", None)], [1, 0]),
        ([("c", "b"), ("b", "a"), ("x", None), ("a", None)], [3, 1, 0, 2]),
        ([("a", None), ("b", "a"), ("c", "zz")], [0, 1, 2]),  # an unknown original: in place
        ([("a", "b"), ("b", "a")], [1, 0]),  # a cycle is not followed round
        ([(None, None), ("b", "a"), (None, None), ("a", None)], [0, 3, 1, 2]),
    ],
)
def test_originals_first(ids, order):
    from store.instance_files import originals_first

    assert originals_first(ids) == order


def test_load_of_a_file_that_is_not_json_says_so_and_loads_nothing(runner, env, tmp_path):
    bad = tmp_path / "export.json"
    bad.write_text("<not json/>", encoding="utf-8")
    result = runner.invoke(main, ["store", "load", str(bad), "--form", "rec_visit"], env=env)
    assert result.exit_code == 2, result.output
    assert f"{bad} is not JSON" in result.output and "nothing was loaded" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
