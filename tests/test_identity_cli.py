"""`nigraan identity key-create | import | rotate` (nigraan/cli/identity.py), with CliRunner."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from nigraan.cli.identity import identity
from nigraan.data_key import DataKey
from store.identity_register import IdentityNotFound, IdentityRegister
from store.store import Store
from tests.odk_encrypt import encrypt_submission
from tests.test_encrypted_submissions import _version, identity_xml
from tests.test_identity_register import CNIC


@pytest.fixture
def setup(built_programme_forms, make_config, tmp_path):
    """A store holding one encrypted identity_register submission, received as Collect sends it."""
    built, _ = built_programme_forms
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    config = make_config(database__url=url)
    xform = (Path(built["forms.build_dir"]) / "identity_register.xml").read_bytes()
    public = serialization.load_pem_public_key(Path(config["forms.public_key_file"]).read_bytes())
    instance_id = "uuid:" + str(uuid.uuid4())
    envelope, files = encrypt_submission(public, identity_xml(_version(xform), instance_id, "C-1"))
    store = Store.open(url, upgrade=True)
    try:
        store.register_form(xform)
        store.ingest(envelope)
        for name, content in files.items():
            store.add_attachment("identity_register", instance_id, name, content)
    finally:
        store.close()
    return config, url


def _reveal(url: str, key: DataKey, code: str) -> dict:
    store = Store.open(url)
    try:
        return IdentityRegister(store.engine, key).reveal(code)
    finally:
        store.close()


def test_key_create_import_and_rotate(setup, runner):
    config, url = setup
    key_file = Path(config["instance_dir"]) / "keys" / "identity.key"
    made = runner.invoke(identity, ["key-create"], obj=config)
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert runner.invoke(identity, ["key-create"], obj=config).exit_code == 2  # never overwrites
    before = key_file.read_bytes()
    kept = runner.invoke(identity, ["key-create", "--if-missing"], obj=config)
    assert kept.exit_code == 0 and "kept" in kept.output and key_file.read_bytes() == before
    imported = runner.invoke(identity, ["import"], obj=config)
    assert imported.exit_code == 0, imported.output
    assert "1 identities filed (1 new)" in imported.output
    assert CNIC not in imported.output
    old = DataKey.from_file(key_file)
    assert _reveal(url, old, "C-1")["person/cnic"] == CNIC
    rotated = runner.invoke(identity, ["rotate"], obj=config)
    assert rotated.exit_code == 0, rotated.output
    assert "1 identities re-encrypted" in rotated.output
    new = DataKey.from_file(key_file)
    assert new.key_id != old.key_id and not key_file.with_name("identity.key.new").exists()
    assert _reveal(url, new, "C-1")["person/cnic"] == CNIC
    with pytest.raises(IdentityNotFound):
        _reveal(url, old, "C-1")


def test_import_without_a_data_key_says_how_to_make_one(setup, runner, caplog):
    config, _ = setup
    outcome = runner.invoke(identity, ["import"], obj=config)
    assert outcome.exit_code == 2
    assert "No identity data key at" in caplog.text and "create_data_key_file" in caplog.text


def test_import_reads_the_passphrase_variable_it_is_told_to(setup, runner, caplog):
    config, _ = setup
    runner.invoke(identity, ["key-create"], obj=config)
    outcome = runner.invoke(identity, ["import", "--passphrase-env", "NO_SUCH_VAR"], obj=config)
    assert outcome.exit_code == 2  # named, unset: a clear error, not a prompt
    assert "NO_SUCH_VAR" in caplog.text
