"""Encrypted submissions received by `nigraan serve` decrypt inside nigraan; identities reach the
register encrypted and nowhere else."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from nigraan.data_key import DataKey
from nigraan.keys import load_private_key, private_key_path_for
from store import tables as t
from store.encrypted_submissions import (
    decrypt_stored_submission,
    decryption_flags,
    file_identity,
    import_identities,
)
from store.identity_register import IdentityRegister
from store.odk_decrypt import DecryptionError, decrypt_submission
from store.store import Store
from tests.odk_encrypt import encrypt_submission
from tests.openrosa_client import CollectClient
from tests.test_identity_register import CNIC, NAME, PHONE, URDU_NAME, _assert_no_secret

E01 = "uuid:5a3dab5c-b138-4238-9d0e-3eb674652917"
PHOTO = "1764300100001.jpg.enc"


@pytest.fixture(scope="module")
def recorded_key(recorded_private_key_file):
    return load_private_key(recorded_private_key_file, None)


def _e01(central_dir) -> tuple[bytes, list[tuple[str, bytes, str]]]:
    encrypted = central_dir / "submissions" / "encrypted"
    files = [
        (PHOTO, (encrypted / f"e01.{PHOTO}").read_bytes(), "application/octet-stream"),
        (
            "submission.xml.enc",
            (encrypted / "e01.submission.xml.enc").read_bytes(),
            "application/octet-stream",
        ),
    ]
    return (encrypted / "e01.manifest.xml").read_bytes(), files


@pytest.fixture
def served(serve_openrosa, tmp_path):
    server = serve_openrosa(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    store = Store.open(server.database_url)
    yield server, store
    store.close()


def test_an_envelope_received_by_serve_decrypts_in_nigraan(served, central_dir, recorded_key):
    server, store = served
    manifest, files = _e01(central_dir)
    # as Collect writes it: its own namespace, not the spec's (ODK.md 1.9)
    collect_style = manifest.replace(
        b'xmlns="http://opendatakit.org/submissions"',
        b'xmlns="http://www.opendatakit.org/xforms/encrypted"',
    )
    assert CollectClient(server.token_url).send(collect_style, files).status_code == 201
    outcome = decrypt_stored_submission(store, "rec_encrypted", E01, recorded_key)
    assert outcome.decrypted, outcome.message
    plain = (central_dir / "submissions/encrypted/e01.plain.xml").read_bytes()
    assert outcome.submission.xml == plain
    assert outcome.submission.media["1764300100001.jpg"].startswith(b"\xff\xd8")
    assert decryption_flags(store) == []


def test_a_tampered_envelope_stays_encrypted_and_is_flagged(served, central_dir, recorded_key):
    server, store = served
    manifest, files = _e01(central_dir)
    photo = bytearray(files[0][1])
    photo[40] ^= 0x80
    files[0] = (PHOTO, bytes(photo), "application/octet-stream")
    assert CollectClient(server.token_url).send(manifest, files).status_code == 201
    outcome = decrypt_stored_submission(store, "rec_encrypted", E01, recorded_key)
    assert not outcome.decrypted and outcome.reason == DecryptionError.TAMPERED
    flags = decryption_flags(store, "rec_encrypted")
    assert [(f["instance_id"], f["reason"]) for f in flags] == [(E01, "tampered")]
    # nothing lost: the stored envelope and files are the bytes that arrived
    assert store.attachment("rec_encrypted", E01, PHOTO) == bytes(photo)
    assert store.submission("rec_encrypted", E01)["encrypted"]


def test_a_missing_part_is_flagged_until_it_arrives(served, central_dir, recorded_key):
    server, store = served
    manifest, files = _e01(central_dir)
    device = CollectClient(server.token_url)
    assert device.post_submission(manifest, files[1:], incomplete=True).status_code == 201
    outcome = decrypt_stored_submission(store, "rec_encrypted", E01, recorded_key)
    assert outcome.reason == DecryptionError.MISSING_FILE and PHOTO in outcome.message
    assert [f["reason"] for f in decryption_flags(store)] == ["missing_file"]
    assert device.post_submission(manifest, files).status_code == 201
    assert decrypt_stored_submission(store, "rec_encrypted", E01, recorded_key).decrypted
    assert decryption_flags(store) == []  # the flag goes once it decrypts


def test_the_wrong_key_is_flagged_not_raised(served, central_dir):
    from cryptography.hazmat.primitives.asymmetric import rsa

    server, store = served
    manifest, files = _e01(central_dir)
    assert CollectClient(server.token_url).send(manifest, files).status_code == 201
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    outcome = decrypt_stored_submission(store, "rec_encrypted", E01, stranger)
    assert outcome.reason == DecryptionError.WRONG_KEY


# -- the identity register form, end to end


def identity_xml(version: str, instance_id: str, code: str) -> bytes:
    return (
        f'<?xml version="1.0"?><data id="identity_register" version="{version}" '
        f'xmlns:orx="http://openrosa.org/xforms">'
        f"<survivor_code>{code}</survivor_code><caseworker_code>CW-07</caseworker_code>"
        f"<person><full_name>{NAME}</full_name><relation_kind>d_o</relation_kind>"
        f"<father_husband_name>{URDU_NAME}</father_husband_name><cnic_needed>yes</cnic_needed>"
        f"<cnic>{CNIC}</cnic></person>"
        f"<contact><has_mobile>own</has_mobile><mobile>{PHONE}</mobile>"
        f"<safe_to_call>no</safe_to_call></contact>"
        f"<meta><instanceID>{instance_id}</instanceID></meta></data>"
    ).encode()


@pytest.fixture
def identity_form(built_programme_forms):
    config, _ = built_programme_forms
    xform = (Path(config["forms.build_dir"]) / "identity_register.xml").read_bytes()
    public = serialization.load_pem_public_key(Path(config["forms.public_key_file"]).read_bytes())
    private = load_private_key(private_key_path_for(Path(config["forms.public_key_file"])), None)
    return xform, public, private


def _version(xform: bytes) -> str:
    from store.schema import parse_xform

    return parse_xform(xform).version


def test_test_encryptor_round_trips(identity_form):
    _xform, public, private = identity_form
    xml = identity_xml("1", "uuid:" + str(uuid.uuid4()), "SSU-LHR-0042")
    envelope, files = encrypt_submission(public, xml, {"a.jpg": b"\xff\xd8photo"})
    out = decrypt_submission(envelope, files, private)
    assert out.xml == xml and out.media == {"a.jpg": b"\xff\xd8photo"}


def test_identities_reach_the_register_encrypted_and_nowhere_else(
    identity_form, open_store, new_database, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    xform, public, private = identity_form
    url = new_database()
    store = open_store(url)
    store.register_form(xform)
    version = _version(xform)
    instance_id = "uuid:" + str(uuid.uuid4())
    envelope, files = encrypt_submission(public, identity_xml(version, instance_id, "SSU-LHR-42"))
    assert store.ingest(envelope).status == "created"
    for name, content in files.items():
        assert store.add_attachment("identity_register", instance_id, name, content)
    register = IdentityRegister(store.engine, DataKey.generate())
    assert import_identities(store, register, private) == {"created": 1}
    fields = register.reveal("SSU-LHR-42")
    assert fields["person/cnic"] == CNIC and fields["contact/mobile"] == PHONE
    assert fields["person/full_name"] == NAME and fields["contact/safe_to_call"] == "no"
    assert "survivor_code" not in fields and not any(k.startswith("meta") for k in fields)
    # every byte nigraan wrote: the store (SQLite file, WAL, SHM / PostgreSQL tables), the
    # test's folder, the log
    from tests.test_identity_register import _database_bytes

    for name, blob in _database_bytes(store).items():
        _assert_no_secret(blob, name)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            _assert_no_secret(path.read_bytes(), str(path))
    _assert_no_secret(caplog.text.encode(), "the log")
    with store.engine.connect() as conn:  # the plaintext was never stored as a version
        assert len(conn.execute(select(t.submission_versions)).all()) == 1


def test_an_identity_decrypted_again_updates_its_record(identity_form, store):
    xform, public, private = identity_form
    store.register_form(xform)
    register = IdentityRegister(store.engine, DataKey.generate())
    xml = identity_xml(_version(xform), "uuid:" + str(uuid.uuid4()), "SSU-ISB-0001")
    envelope, files = encrypt_submission(public, xml)
    assert file_identity(register, decrypt_submission(envelope, files, private)) == "created"
    assert file_identity(register, decrypt_submission(envelope, files, private)) == "updated"
    assert register.count() == 1
