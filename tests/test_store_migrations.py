"""Migrations run only when asked (`nigraan store init`, server start-up), keep the data, and
the next one can be written with `python -m store.migrations.new`."""

from __future__ import annotations

import hashlib
import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import insert, select

from nigraan.cli import main
from nigraan.errors import NigraanError
from store import tables as t
from store.database import create_store_engine, current_revision, head_revision, migrate
from store.migrations.new import VERSIONS, new_migration, next_revision
from store.store import Store

V01 = "uuid:25ad35fd-1776-405a-b3ac-ccfb159d9ce8"
WHEN = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _store_at_0001_with_data(url: str, central_dir: Path) -> dict[str, bytes]:
    """A database left by nigraan at migration 0001: an encrypted form registered, and a
    rec_visit submission received before its form, with its photo and its problem."""
    encrypted = (central_dir / "forms" / "rec_encrypted.xml").read_bytes()
    payload = (central_dir / "submissions" / "v01.xml").read_bytes()
    photo = (central_dir / "submissions" / "media" / "photo0.jpg").read_bytes()
    engine = create_store_engine(url)
    try:
        migrate(engine, "0001")
        assert current_revision(engine) == "0001"
        with engine.begin() as conn:  # only the columns migration 0001 made
            conn.execute(
                insert(t.forms).values(
                    form_id="rec_encrypted",
                    title="Encrypted",
                    latest_version="2026112801",
                    encrypted=True,
                    raw_only=True,
                    registered_at=WHEN,
                )
            )
            conn.execute(
                insert(t.form_versions).values(
                    form_id="rec_encrypted",
                    version="2026112801",
                    xform=encrypted,
                    xform_sha256=_sha(encrypted),
                    registered_at=WHEN,
                )
            )
            conn.execute(
                insert(t.submission_versions).values(
                    form_id="rec_visit",
                    instance_id=V01,
                    root_id=V01,
                    deprecated_id=None,
                    form_version="2026112801",
                    source="openrosa",
                    payload_kind="xml",
                    payload=payload,
                    payload_sha256=_sha(payload),
                    received_at=WHEN,
                    current=True,
                )
            )
            conn.execute(
                insert(t.submissions).values(
                    form_id="rec_visit",
                    root_id=V01,
                    current_instance_id=V01,
                    form_version="2026112801",
                    source="openrosa",
                    encrypted=False,
                    edits=0,
                    first_received_at=WHEN,
                    updated_at=WHEN,
                    submitter_name="tablet-1",
                    normalised="unknown_form",
                )
            )
            conn.execute(insert(t.blobs).values(sha256=_sha(photo), size=len(photo), content=photo))
            conn.execute(
                insert(t.submission_attachments).values(
                    form_id="rec_visit",
                    instance_id=V01,
                    name="1764300000001.jpg",
                    sha256=_sha(photo),
                    content_type="image/jpeg",
                    size=len(photo),
                    received_at=WHEN,
                )
            )
            conn.execute(
                insert(t.problems).values(
                    form_id="rec_visit",
                    root_id=V01,
                    instance_id=V01,
                    code="unknown_form",
                    value="rec_visit",
                    message="No form 'rec_visit' is registered.",
                )
            )
    finally:
        engine.dispose()
    return {"payload": payload, "photo": photo, "encrypted": encrypted}


@pytest.fixture
def instance(tmp_path, central_dir):
    build = tmp_path / "instance" / "forms"
    build.mkdir(parents=True)
    for name in ("rec_visit.xml", "rec_encrypted.xml"):
        shutil.copy(central_dir / "forms" / name, build / name)
    return {"NIGRAAN_INSTANCE_DIR": str(tmp_path / "instance"), "NIGRAAN_CONFIG": None}


def test_store_init_upgrades_a_0001_store_and_keeps_its_data(
    runner, instance, new_database, central_dir
):
    url = new_database()  # SQLite and PostgreSQL
    kept = _store_at_0001_with_data(url, central_dir)

    result = runner.invoke(main, ["store", "init"], env=dict(instance, NIGRAAN_DATABASE_URL=url))
    assert result.exit_code == 0, result.output
    lines = {ln.split()[0]: ln.split() for ln in result.output.splitlines() if ln.strip()}
    assert lines["rec_encrypted"][2] == "unchanged"  # the registered version was kept as it was
    assert lines["rec_visit"][2] == "new_form"

    store = Store.open(url)  # at head now: opens without upgrading
    try:
        assert current_revision(store.engine) == head_revision()
        [version] = store.versions("rec_visit", V01)
        assert bytes(version["payload"]) == kept["payload"] and version["current"]
        assert version["received_at"] == WHEN and version["submitter_name"] is None  # 0004's
        submission = store.submission("rec_visit", V01)
        assert (submission["submitter_name"], submission["first_received_at"]) == ("tablet-1", WHEN)
        # Registering the form typed the submission kept raw since 0001, from its raw version.
        assert submission["normalised"] == "typed" and store.problems("rec_visit") == []
        [row] = store.rows("form_rec_visit")
        assert row["__id"] == V01
        assert store.attachment("rec_visit", V01, "1764300000001.jpg") == kept["photo"]
        assert store.form_versions("rec_encrypted").encrypted
        with store.engine.connect() as conn:
            xform = conn.execute(
                select(t.form_versions.c.xform).where(t.form_versions.c.form_id == "rec_encrypted")
            ).scalar_one()
        assert bytes(xform) == kept["encrypted"]
        assert store.sync_state("nothing yet") is None and store.reviews() == []  # 0003's tables
        assert store.app_users.all() == []  # 0002's
    finally:
        store.close()


def _with_password(url: str) -> str:
    # The test PostgreSQL trusts local connections, so a password in the URL is not checked.
    return url.replace("postgres@", "postgres:pw-not-real@", 1)


def test_opening_an_older_store_says_to_run_store_init(new_database, runner, instance):
    url = _with_password(new_database())
    engine = create_store_engine(url)
    try:
        migrate(engine, "0003")
    finally:
        engine.dispose()
    with pytest.raises(NigraanError) as older:
        Store.open(url)
    message = str(older.value)
    assert "older schema (0003)" in message and "run `nigraan store init`" in message
    assert "pw-not-real" not in message and ("***" in message or url.startswith("sqlite"))
    assert url.split("?")[0].replace("pw-not-real", "***") in message  # names the database

    status = runner.invoke(main, ["store", "status"], env=dict(instance, NIGRAAN_DATABASE_URL=url))
    assert status.exit_code != 0 and "run `nigraan store init`" in status.output
    engine = create_store_engine(url)
    try:
        assert current_revision(engine) == "0003"  # nothing was migrated on the way
    finally:
        engine.dispose()


def test_opening_an_empty_database_says_to_run_store_init(new_database):
    url = new_database()
    with pytest.raises(NigraanError) as empty:
        Store.open(url)
    assert "no tables yet" in str(empty.value) and "run `nigraan store init`" in str(empty.value)
    store = Store.open(url, upgrade=True)  # what `nigraan store init` and the server do
    store.close()
    Store.open(url).close()


def test_a_store_newer_than_this_nigraan_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'newer.sqlite3'}"
    Store.open(url, upgrade=True).close()
    engine = create_store_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    with pytest.raises(NigraanError, match=r"0999.*does not know"):
        Store.open(url)


def test_the_next_migration_is_written_from_the_tables(tmp_path, monkeypatch):
    versions = tmp_path / "versions"
    shutil.copytree(VERSIONS, versions, ignore=shutil.ignore_patterns("__pycache__"))
    head = head_revision()
    assert next_revision(versions) == f"{int(head) + 1:04d}"
    probe = sa.Table("probe_notes", t.metadata, sa.Column("id", sa.Integer, primary_key=True))
    try:
        path = new_migration("probe notes table", versions=versions, today=date(2026, 12, 24))
    finally:
        t.metadata.remove(probe)
    assert path.parent == versions
    assert re.fullmatch(rf"20261224_{int(head) + 1:04d}_probe_notes_table\.py", path.name)
    text = path.read_text()
    assert f"revision = '{int(head) + 1:04d}'" in text and f"down_revision = '{head}'" in text
    assert "op.create_table('probe_notes'" in text
    empty = new_migration("by hand", versions=versions, empty=True, today=date(2026, 12, 24))
    assert f"down_revision = '{int(head) + 1:04d}'" in empty.read_text()
    assert "def upgrade() -> None:\n    pass" in empty.read_text()
