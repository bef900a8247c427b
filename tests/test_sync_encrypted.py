"""Encrypted submissions from Central: the envelope and `.enc` files through REST, decrypted by
nigraan (self-supplied key) or by Central's export (managed key), against the stand-in driven by
pyodk, shaped as recorded (exchanges 117, 120-124, 209-215)."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from nigraan.keys import load_private_key
from store.odk_decrypt import DecryptionError
from sync.central import Central, CentralError
from sync.encrypted import (
    decrypt_from_central,
    encryption_keys,
    fetch_encrypted_files,
    managed_export,
    read_export,
)
from tests.central_standin import CentralStandin, admin_settings

E01 = "uuid:5a3dab5c-b138-4238-9d0e-3eb674652917"
E02 = "uuid:607247a4-b2ea-4e9c-a887-ea3b425b5121"
M01 = "uuid:b226b5ef-becf-4d12-860d-f5f48832cfed"
PASSPHRASE = "not-the-recorded-one"  # the recording's passphrase is a placeholder


def _exchange(central_dir, number: str) -> dict:
    (path,) = (central_dir / "exchanges").glob(f"{number}-*.json")
    return json.loads(path.read_text("utf-8"))


def _parts(central_dir, label: str) -> tuple[bytes, dict[str, tuple[bytes, str]]]:
    encrypted = central_dir / "submissions" / "encrypted"
    files = {
        p.name[len(label) + 1 :]: (p.read_bytes(), "application/octet-stream")
        for p in sorted(encrypted.glob(f"{label}.*.enc"))
    }
    return (encrypted / f"{label}.manifest.xml").read_bytes(), files


@pytest.fixture
def standin(central_dir):
    server = CentralStandin().serve()
    server.add_form((central_dir / "forms" / "rec_encrypted.xml").read_bytes())
    rows = _exchange(central_dir, "209")["response_body"]["value"]
    envelopes, attachments = {}, {}
    for label, iid in (("e01", E01), ("e02", E02)):
        envelope, files = _parts(central_dir, label)
        envelopes[iid], attachments[iid] = [envelope], files
    attachments[E02] = {**attachments[E02], "submission.xml.enc": None}  # not uploaded yet
    server.add_rows(
        "rec_encrypted",
        [r for r in rows if r["__id"] in envelopes],
        keep_dates=True,
        versions=envelopes,
        attachments=attachments,
    )
    server.encryption_keys[(1, "rec_encrypted")] = _exchange(central_dir, "211")["response_body"]
    managed = (central_dir / "forms" / "rec_managed.central-encrypted.xml").read_bytes()
    server.add_form(managed)
    keys = _exchange(central_dir, "117")["response_body"]
    server.encryption_keys[(1, "rec_managed")] = keys
    export = (central_dir / "binaries" / "122-export-managed-csvzip-decrypted.zip").read_bytes()
    server.managed_exports[(1, "rec_managed")] = (keys[0]["id"], PASSPHRASE, export)
    yield server
    server.stop()


@pytest.fixture
def central(standin):
    client = Central(admin_settings(standin.base_url, timeout=5.0, retries=2, retry_wait=0.01))
    yield client
    client.close()


@pytest.fixture(scope="module")
def private_key(recorded_private_key_file):
    return load_private_key(recorded_private_key_file, None)


def test_the_enc_files_come_through_the_rest_attachment_listing(central, standin, central_dir):
    parts = fetch_encrypted_files(central, "rec_encrypted", E01)
    envelope, files = _parts(central_dir, "e01")
    assert parts.envelope == envelope
    assert parts.files == {name: content for name, (content, _) in files.items()}
    assert parts.missing == ()
    asked = [path for _, path, _ in standin.requests("rec_encrypted/submissions")]
    assert any(p.endswith("/attachments") for p in asked)  # the listing, as OData names none


def test_a_self_supplied_key_submission_from_central_decrypts(central, central_dir, private_key):
    decrypted = decrypt_from_central(central, "rec_encrypted", E01, private_key)
    assert decrypted.xml == (central_dir / "submissions/encrypted/e01.plain.xml").read_bytes()
    assert set(decrypted.media) == {"1764300100001.jpg"}


def test_a_part_central_does_not_have_yet_is_a_missing_part(central, private_key):
    parts = fetch_encrypted_files(central, "rec_encrypted", E02)
    assert parts.missing == ("submission.xml.enc",)
    with pytest.raises(DecryptionError) as caught:
        decrypt_from_central(central, "rec_encrypted", E02, private_key)
    assert caught.value.reason == DecryptionError.MISSING_FILE


def test_a_file_altered_in_central_is_not_trusted(central, standin, private_key):
    sub = standin.form("rec_encrypted").subs[E01]
    content, kind = sub.attachments["submission.xml.enc"]
    sub.attachments["submission.xml.enc"] = (
        content[:20] + bytes([content[20] ^ 1]) + content[21:],
        kind,
    )
    with pytest.raises(DecryptionError) as caught:
        decrypt_from_central(central, "rec_encrypted", E01, private_key)
    assert caught.value.reason == DecryptionError.TAMPERED


def test_the_keys_say_which_are_managed(central):
    assert [k["managed"] for k in encryption_keys(central, "rec_encrypted")] == [None]
    (managed,) = encryption_keys(central, "rec_managed")
    assert managed["managed"] is True and managed["hint"] == "recording passphrase"


def test_a_managed_key_export_gives_the_known_plain_text(central, central_dir, caplog):
    caplog.set_level(logging.DEBUG)
    key_id = encryption_keys(central, "rec_managed")[0]["id"]
    export = managed_export(central, "rec_managed", {key_id: PASSPHRASE})
    (row,) = export.rows
    assert (row["m_name"], row["m_count"], row["meta-instanceID"]) == ("Managed Person", "7", M01)
    recorded = central_dir / "binaries/122-export-managed-csvzip-decrypted-unzipped/media"
    photo = (recorded / "1764300200001.jpg").read_bytes()
    assert hashlib.md5(export.media["1764300200001.jpg"]).digest() == hashlib.md5(photo).digest()
    assert PASSPHRASE not in caplog.text


def test_a_wrong_managed_passphrase_is_a_clear_error_without_it(central):
    with pytest.raises(CentralError) as caught:
        managed_export(central, "rec_managed", {2: "wrong passphrase"})
    assert caught.value.central_code == 400.12
    assert "passphrase given for key 2" in str(caught.value)
    assert "wrong passphrase" not in str(caught.value) and PASSPHRASE not in str(caught.value)


def test_the_recorded_export_reads_as_central_wrote_it(central_dir):
    body = (central_dir / "binaries" / "122-export-managed-csvzip-decrypted.zip").read_bytes()
    export = read_export("rec_managed", body)
    assert export.rows[0]["FormVersion"] == "2026112801[encrypted:AaIjlni0]"
    assert export.rows[0]["Status"] == ""  # decrypted (not "not decrypted")


def test_identities_synced_from_central_reach_the_register(
    built_programme_forms, standin, central, store
):
    """identity_register rows from OData (`notDecrypted`): envelope and files through REST,
    decrypted, filed encrypted; a tampered one is flagged and filed nowhere."""
    import copy
    import uuid
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    from nigraan.data_key import DataKey
    from nigraan.keys import private_key_path_for
    from store.encrypted_submissions import decryption_flags
    from store.identity_register import IdentityRegister
    from sync.encrypted import file_identities_from_central
    from tests.odk_encrypt import encrypt_submission
    from tests.test_encrypted_submissions import _version, identity_xml
    from tests.test_identity_register import CNIC

    config, _ = built_programme_forms
    xform = (Path(config["forms.build_dir"]) / "identity_register.xml").read_bytes()
    key_file = Path(config["forms.public_key_file"])
    public = serialization.load_pem_public_key(key_file.read_bytes())
    private = load_private_key(private_key_path_for(key_file), None)
    standin.add_form(xform)
    rows, versions, attachments = [], {}, {}
    for code in ("SSU-LHR-0100", "SSU-LHR-0101"):
        iid = "uuid:" + str(uuid.uuid4())
        envelope, files = encrypt_submission(public, identity_xml(_version(xform), iid, code))
        system = {
            "submissionDate": "2026-11-30T10:00:00.000Z",
            "updatedAt": None,
            "submitterId": "7",
            "submitterName": "collector-1",
            "attachmentsPresent": 1,
            "attachmentsExpected": 1,
            "status": "notDecrypted",
            "reviewState": None,
            "deviceId": None,
            "edits": 0,
            "formVersion": _version(xform),
            "deletedAt": None,
        }
        rows.append({"__id": iid, "__system": system})
        versions[iid] = [envelope]
        attachments[iid] = {n: (c, "application/octet-stream") for n, c in files.items()}
    good, bad = rows[0]["__id"], rows[1]["__id"]
    content, kind = attachments[bad]["submission.xml.enc"]
    attachments[bad]["submission.xml.enc"] = (content[:-1] + bytes([content[-1] ^ 1]), kind)
    standin.add_rows(
        "identity_register", copy.deepcopy(rows), versions=versions, attachments=attachments
    )
    register = IdentityRegister(store.engine, DataKey.generate())
    counts = file_identities_from_central(central, store, register, private, [good, bad])
    assert counts == {"created": 1, "tampered": 1}
    assert register.reveal("SSU-LHR-0100")["person/cnic"] == CNIC
    assert register.count() == 1
    assert [(f["instance_id"], f["reason"]) for f in decryption_flags(store)] == [(bad, "tampered")]
