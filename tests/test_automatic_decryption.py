"""Identity submissions decrypted by nigraan itself, end to end, on SQLite and PostgreSQL: posted
Collect-style to a real `nigraan serve` (the store process decrypts each envelope once all its
parts are stored) and synced from the Central stand-in with the real pyodk (the envelope and
`.enc` files through REST, kept in the raw layer), filed in the identity register and read back
with `reveal`; tampered envelopes flagged and kept; then every byte nigraan wrote searched for
the seeded identity. The programme's own identity_register form is used, its public key
replaced by the recorded key's, so the one private key opens both it and the envelopes recorded
against a real Central (shared/central)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
import uuid
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from nigraan.data_key import DataKey, encode
from nigraan.identity_keys import IdentityKeys, load_identity_keys
from nigraan.keys import create_key_pair, load_private_key
from store import tables as t
from store.encrypted_submissions import decrypt_stored_submission, decryption_flags
from store.identity_register import IdentityNotFound, IdentityRegister
from store.store import Store
from sync.central import Central
from sync.pull import sync
from tests.central_standin import CentralStandin, admin_settings
from tests.odk_encrypt import encrypt_submission
from tests.openrosa_client import CollectClient
from tests.test_encrypted_submissions import _version, identity_xml
from tests.test_identity_register import CNIC, NAME, PHONE, URDU_NAME, _database_bytes

E01 = "uuid:5a3dab5c-b138-4238-9d0e-3eb674652917"
E02 = "uuid:607247a4-b2ea-4e9c-a887-ea3b425b5121"
RECORDED_SECRET = "Secret Person One"  # the recorded e01's plaintext name
CODES = ("SSU-LHR-0042", "SSU-RWP-0007")
SECRETS = [
    NAME,
    URDU_NAME,
    CNIC,
    CNIC.replace("-", ""),
    PHONE,
    PHONE[1:],
    RECORDED_SECRET,
    *CODES,
]
POLL = 30.0  # seconds to wait for the store process (2 cores shared by many test runs)


# -- the forms and keys


@pytest.fixture(scope="module")
def recorded_key(recorded_private_key_file):
    return load_private_key(recorded_private_key_file, None)


@pytest.fixture(scope="module")
def identity_form(built_programme_forms, recorded_key) -> bytes:
    """The programme's identity_register XForm, encrypted to the recorded key."""
    config, _ = built_programme_forms
    xform = (Path(config["forms.build_dir"]) / "identity_register.xml").read_bytes()
    der = recorded_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    b64 = base64.b64encode(der)
    out, n = re.subn(rb'base64RsaPublicKey="[^"]+"', b'base64RsaPublicKey="' + b64 + b'"', xform)
    assert n == 1
    return out


@pytest.fixture
def data_key():
    return DataKey.generate()


def identity_envelope(identity_form, recorded_key, code: str, media=None):
    instance_id = "uuid:" + str(uuid.uuid4())
    xml = identity_xml(_version(identity_form), instance_id, code)
    envelope, files = encrypt_submission(recorded_key.public_key(), xml, media)
    return instance_id, envelope, files


def recorded_parts(central_dir, label: str) -> tuple[bytes, dict[str, bytes]]:
    encrypted = central_dir / "submissions" / "encrypted"
    files = {
        p.name[len(label) + 1 :]: p.read_bytes() for p in sorted(encrypted.glob(f"{label}.*.enc"))
    }
    return (encrypted / f"{label}.manifest.xml").read_bytes(), files


def as_parts(files: dict[str, bytes]) -> list[tuple[str, bytes, str]]:
    return [(name, content, "application/octet-stream") for name, content in files.items()]


# -- nigraan serve with the keys


def publish_identity_form(build_dir: Path, xform: bytes) -> None:
    (build_dir / "identity_register.xml").write_bytes(xform)
    index_path = build_dir / "index.json"
    index = json.loads(index_path.read_text("utf-8"))
    index["identity_register"] = {
        "form_id": "identity_register",
        "version": _version(xform),
        "title": "Identity register",
        "file": "identity_register.xml",
        "md5": hashlib.md5(xform).hexdigest(),
        "encrypted": True,
        "media": [],
    }
    index_path.write_text(json.dumps(index), encoding="utf-8")


@pytest.fixture
def keyed_server(serve_openrosa, identity_form, recorded_private_key_file, data_key):
    """serve_keyed(database_url, **settings) -> `nigraan serve` with the identity keys (the
    recorded private key, the data key in NIGRAAN_IDENTITY_KEY) offering identity_register
    too, and `.device`, a Collect client of an account for it."""
    from server.device_accounts import create_account

    def start(database_url: str, **settings):
        settings = {
            "identity__private_key_file": str(recorded_private_key_file),
            "identity__key": encode(data_key.to_wire()),
            **settings,
        }
        server = serve_openrosa(database_url, **settings)
        publish_identity_form(server.build_dir, identity_form)  # picked up without a restart
        store = Store.open(database_url)
        try:
            account = create_account(
                store.app_users, "caseworker-tablet", ["identity_register", "rec_encrypted"]
            )
        finally:
            store.close()
        server.device = CollectClient(account.token_url(server.base))
        # as Collect, the form list first (the server registers a newly built form then)
        assert server.device.get("/formList").status_code == 200
        return server

    return start


def wait_for(check, what: str, timeout: float = POLL):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)


def revealed(register: IdentityRegister, code: str):
    def check():
        try:
            return register.reveal(code)
        except IdentityNotFound:
            return None

    return check


# -- the Central stand-in


@pytest.fixture
def standin(central_dir, identity_form):
    server = CentralStandin().serve()
    server.add_form((central_dir / "forms" / "rec_encrypted.xml").read_bytes())
    server.add_form(identity_form)
    yield server
    server.stop()


def placeholder_row(instance_id: str, version: str, files: int, at: str) -> dict:
    """An encrypted submission as Central's OData shows it (recorded exchange 209)."""
    return {
        "__id": instance_id,
        "__system": {
            "submissionDate": at,
            "updatedAt": None,
            "submitterId": "7",
            "submitterName": "collector-1",
            "attachmentsPresent": files,
            "attachmentsExpected": files,
            "status": "notDecrypted",
            "reviewState": None,
            "deviceId": None,
            "edits": 0,
            "formVersion": version,
            "deletedAt": None,
        },
    }


def add_encrypted(standin, form_id, instance_id, version, envelope, files, at, missing=()):
    parts = {name: (content, "application/octet-stream") for name, content in files.items()}
    parts.update(dict.fromkeys(missing))  # named in the envelope, not uploaded to Central yet
    standin.add_rows(
        form_id,
        [placeholder_row(instance_id, version, len(files), at)],
        keep_dates=True,
        versions={instance_id: [envelope]},
        attachments={instance_id: parts},
    )


def add_recorded(standin, central_dir) -> None:
    for label, iid, missing in (("e01", E01, ()), ("e02", E02, ("submission.xml.enc",))):
        envelope, files = recorded_parts(central_dir, label)
        files = {k: v for k, v in files.items() if k not in missing}
        add_encrypted(
            standin,
            "rec_encrypted",
            iid,
            "2026112801",
            envelope,
            files,
            "2026-11-28T19:16:17.343Z",
            missing,
        )


@pytest.fixture
def central(standin):
    client = Central(admin_settings(standin.base_url, timeout=5.0, retries=2, retry_wait=0.01))
    yield client
    client.close()


# -- the grep


def encodings(text: str) -> list[bytes]:
    return [text.encode(e) for e in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le")]


def hits(blob: bytes) -> list[str]:
    return [s for s in SECRETS if any(e in blob for e in encodings(s))]


def every_byte_written(store, *folders: Path) -> dict[str, bytes]:
    """The store (SQLite file, WAL, SHM; PostgreSQL tables by COPY BINARY) and every file
    under the folders (the instance folder with the serve process's log)."""
    out = {f"db:{name}": blob for name, blob in _database_bytes(store).items()}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                out[str(path)] = path.read_bytes()
    return out


# -- tests


def test_identities_from_collect_and_from_central_are_filed_and_no_byte_shows_them(
    keyed_server,
    new_database,
    identity_form,
    recorded_key,
    data_key,
    central,
    standin,
    central_dir,
    tmp_path,
    caplog,
):
    caplog.set_level(logging.DEBUG)
    url = new_database()
    server = keyed_server(url)
    store = Store.open(url)
    register = IdentityRegister(store.engine, data_key)
    try:
        # (a) Collect-style, split in two uploads: the store process decrypts it when the
        # second part completes the envelope, after the device has its 201.
        _, envelope, files = identity_envelope(
            identity_form, recorded_key, CODES[0], media={"id_card.jpg": b"\xff\xd8card"}
        )
        first = [(n, c, k) for n, c, k in as_parts(files) if n != "submission.xml.enc"]
        second = [(n, c, k) for n, c, k in as_parts(files) if n == "submission.xml.enc"]
        assert server.device.post_submission(envelope, first, incomplete=True).status_code == 201
        time.sleep(0.5)  # incomplete: nothing to decrypt, nothing flagged
        assert register.count() == 0 and decryption_flags(store) == []
        assert server.device.post_submission(envelope, second).status_code == 201
        fields = wait_for(revealed(register, CODES[0]), "the posted identity filed")
        assert fields["person/full_name"] == NAME and fields["person/cnic"] == CNIC
        assert fields["person/father_husband_name"] == URDU_NAME
        assert fields["contact/mobile"] == PHONE and fields["contact/safe_to_call"] == "no"
        # the recorded e01 (another encrypted form): decrypted and checked, not flagged
        manifest, recorded = recorded_parts(central_dir, "e01")
        assert server.device.send(manifest, as_parts(recorded)).status_code == 201

        # (b) from Central: an identity and the recorded envelopes, through the real pyodk
        code_b = CODES[1]
        iid_b, env_b, files_b = identity_envelope(identity_form, recorded_key, code_b)
        version = _version(identity_form)
        add_encrypted(
            standin, "identity_register", iid_b, version, env_b, files_b, "2026-12-01T10:00:00Z"
        )
        add_recorded(standin, central_dir)
        keys = IdentityKeys(recorded_key, data_key)
        results = {r.form_id: r for r in sync(central, store, identity_keys=keys)}
        assert results["identity_register"].decrypted == 1, results["identity_register"]
        fields_b = register.reveal(code_b)
        assert fields_b["person/full_name"] == NAME and fields_b["contact/mobile"] == PHONE
        # e01 came from serve and from Central: one submission, no conflict; e02 waits for
        # its part
        assert results["rec_encrypted"].problems == [], results["rec_encrypted"]
        assert results["identity_register"].problems == []
        assert decryption_flags(store) == []
        assert register.count() == 2
    finally:
        server.stop()  # its log complete
        store.close()
    store = Store.open(url)  # SQLite has checkpointed its WAL: read both ways
    try:
        written = every_byte_written(store, tmp_path)
        assert any(name.startswith("db:") for name in written)
        assert any(name.endswith(".log") for name in written)  # the serve process's output
        found = {name: hits(blob) for name, blob in written.items() if hits(blob)}
        assert found == {}
        assert hits(caplog.text.encode()) == []
    finally:
        store.close()


def test_a_tampered_envelope_is_flagged_kept_and_acknowledged(
    keyed_server, new_database, identity_form, recorded_key, data_key
):
    url = new_database()
    server = keyed_server(url)
    store = Store.open(url)
    try:
        instance_id, envelope, files = identity_envelope(identity_form, recorded_key, CODES[0])
        altered = bytearray(files["submission.xml.enc"])
        altered[20] ^= 0x01
        files["submission.xml.enc"] = bytes(altered)
        assert server.device.send(envelope, as_parts(files)).status_code == 201  # nothing lost

        def flagged():
            return [(f["instance_id"], f["reason"]) for f in decryption_flags(store)]

        assert wait_for(flagged, "the tampered envelope flagged") == [(instance_id, "tampered")]
        assert IdentityRegister(store.engine, data_key).count() == 0  # never trusted
        stored = store.attachment("identity_register", instance_id, "submission.xml.enc")
        assert stored == bytes(altered)  # kept as it arrived
        assert store.submission("identity_register", instance_id)["encrypted"]
    finally:
        server.stop()
        store.close()


def test_a_wrong_passphrase_at_serve_start_warns_and_serves(
    keyed_server, tmp_path, identity_form, recorded_key, data_key
):
    public = tmp_path / "keys" / "form-public.pem"
    private = create_key_pair(public, b"the-right-passphrase-417")
    wrong = "a-wrong-passphrase-9931"
    server = keyed_server(
        f"sqlite:///{tmp_path / 'store.sqlite3'}",
        identity__private_key_file=str(private),
        identity__passphrase=wrong,
    )
    try:
        _, envelope, files = identity_envelope(identity_form, recorded_key, CODES[0])
        assert server.device.send(envelope, as_parts(files)).status_code == 201  # still serves
    finally:
        server.stop()
    log = server.log_path.read_text("utf-8")
    assert "does not open: the passphrase is wrong" in log
    assert str(private) in log and "nigraan identity import" in log
    assert wrong not in log and "the-right-passphrase-417" not in log
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    try:  # stored encrypted, waiting for `nigraan identity import`
        assert IdentityRegister(store.engine, data_key).count() == 0
        assert store.counts()["identity_register"]["submissions"] == 1
    finally:
        store.close()


def test_central_envelopes_are_kept_raw_and_the_recorded_one_decrypts(
    central, standin, open_store, central_dir, recorded_key, data_key, recorded_private_key_file
):
    add_recorded(standin, central_dir)
    store = open_store()
    keys = IdentityKeys(recorded_key, data_key)
    [result] = sync(central, store, ["rec_encrypted"], identity_keys=keys)
    assert result.encrypted == 2 and result.decrypted == 1 and result.problems == []
    assert result.attachments_waiting == 1  # e02's submission.xml.enc is not in Central yet
    manifest, files = recorded_parts(central_dir, "e01")
    with store.engine.connect() as conn:
        payload = conn.execute(
            select(t.submission_versions.c.payload).where(
                t.submission_versions.c.instance_id == E01
            )
        ).scalar()
    assert payload == manifest  # the envelope in the raw layer, as Central holds it
    for name, content in files.items():
        assert store.attachment("rec_encrypted", E01, name) == content
    shared = recorded_private_key_file.parents[1]  # shared/central, beside the keys
    plain = (shared / "binaries" / "enc-e01-decrypted-from-central.xml").read_bytes()
    assert decrypt_stored_submission(store, "rec_encrypted", E01, recorded_key).submission.xml == (
        plain
    )
    again = sync(central, store, ["rec_encrypted"], identity_keys=keys)[0]
    assert again.problems == [] and again.new == 0  # the placeholder again: no conflict
    # e02's missing part reaches Central: the next sync fetches it and decrypts
    _, e02 = recorded_parts(central_dir, "e02")
    sub = standin.form("rec_encrypted").subs[E02]
    sub.attachments["submission.xml.enc"] = (e02["submission.xml.enc"], "application/octet-stream")
    last = sync(central, store, ["rec_encrypted"], identity_keys=keys)[0]
    assert last.attachments == 1 and last.decrypted == 1 and decryption_flags(store) == []


def test_a_tampered_envelope_from_central_is_flagged_and_kept(
    central, standin, open_store, identity_form, recorded_key, data_key
):
    iid, envelope, files = identity_envelope(identity_form, recorded_key, CODES[0])
    altered = bytearray(files["submission.xml.enc"])
    altered[-1] ^= 0x01
    files["submission.xml.enc"] = bytes(altered)
    add_encrypted(
        standin,
        "identity_register",
        iid,
        _version(identity_form),
        envelope,
        files,
        "2026-12-01T10:00:00Z",
    )
    store = open_store()
    keys = IdentityKeys(recorded_key, data_key)
    [result] = sync(central, store, ["identity_register"], identity_keys=keys)
    assert result.not_decrypted == 1 and result.decrypted == 0
    assert [(f["instance_id"], f["reason"]) for f in decryption_flags(store)] == [(iid, "tampered")]
    assert store.attachment("identity_register", iid, "submission.xml.enc") == bytes(altered)
    assert IdentityRegister(store.engine, data_key).count() == 0


def managed_export_zip(form_id: str, rows: list[dict[str, str]]) -> bytes:
    import csv

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        archive.writestr(f"{form_id}.csv", text.getvalue().encode("utf-8-sig"))
    return body.getvalue()


def test_a_central_managed_key_identity_is_filed_from_centrals_export(
    central, standin, open_store, identity_form, recorded_key, data_key
):
    """Central-managed: its private key never leaves Central, so the sync keeps the envelope
    and files the identity from Central's decrypting export, opened with identity.passphrase;
    a wrong passphrase names the key id, never the passphrase."""
    iid, envelope, files = identity_envelope(identity_form, recorded_key, CODES[1])
    version = _version(identity_form)
    add_encrypted(
        standin, "identity_register", iid, version, envelope, files, "2026-12-01T10:00:00Z"
    )
    standin.encryption_keys[(1, "identity_register")] = [
        {"id": 41, "public": "MIIB", "managed": True, "hint": "the usual", "createdAt": None}
    ]
    row = {
        "SubmissionDate": "2026-12-01T10:00:00.000Z",
        "survivor_code": CODES[1],
        "person-full_name": NAME,
        "person-cnic": CNIC,
        "contact-mobile": PHONE,
        "contact-safe_to_call": "yes",
        "meta-instanceID": iid,
        "KEY": iid,
        "Status": "",
        "FormVersion": version,
    }
    passphrase = "managed-passphrase-5521"
    export = managed_export_zip("identity_register", [row])
    standin.managed_exports[(1, "identity_register")] = (41, passphrase, export)
    keys = IdentityKeys(None, data_key)  # a managed key's private half never leaves Central
    wrong_store = open_store()
    [refused] = sync(
        central, wrong_store, ["identity_register"], identity_keys=keys, managed_passphrase="nope"
    )
    assert refused.refused and "key 41" in refused.problems[0]
    assert "nope" not in " ".join(refused.problems)
    store = open_store()
    [result] = sync(
        central, store, ["identity_register"], identity_keys=keys, managed_passphrase=passphrase
    )
    assert result.decrypted == 1, result
    fields = IdentityRegister(store.engine, data_key).reveal(CODES[1])
    assert fields == {
        "person/full_name": NAME,
        "person/cnic": CNIC,
        "contact/mobile": PHONE,
        "contact/safe_to_call": "yes",
    }
    assert store.attachment("identity_register", iid, "submission.xml.enc")  # kept raw


# -- loading the keys at start (no server needed)


def test_the_keys_load_from_the_settings(make_config, tmp_path, recorded_private_key_file):
    key = DataKey.generate()
    config = make_config(
        identity__key=encode(key.to_wire()),
        identity__private_key_file=str(recorded_private_key_file),
    )
    keys = load_identity_keys(config, None, logging.getLogger("t"))
    assert keys is not None and keys.data_key.key_id == key.key_id
    back = IdentityKeys.from_wire(keys.to_wire())  # what crosses the store process's pipe
    assert back.data_key.key_id == key.key_id
    assert back.private_key.private_numbers() == keys.private_key.private_numbers()
    assert "PRIVATE" not in repr(keys) and encode(key.to_wire()) not in repr(keys)


def test_without_a_terminal_a_protected_key_warns_once(make_config, tmp_path, caplog):
    private = create_key_pair(tmp_path / "k" / "form-public.pem", b"pass-7781")
    config = make_config(
        identity__key=encode(DataKey.generate().to_wire()),
        identity__private_key_file=str(private),
    )
    with caplog.at_level(logging.WARNING):
        keys = load_identity_keys(config, None, logging.getLogger("t"))
    # the data key alone: managed-key identities are still filed by the sync
    assert keys is not None and keys.private_key is None and not keys.decrypts_here
    assert IdentityKeys.from_wire(keys.to_wire()).private_key is None
    [record] = caplog.records
    assert "protected by a passphrase" in record.getMessage()
    assert "NIGRAAN_IDENTITY_PASSPHRASE" in record.getMessage()
    assert "nigraan identity import" in record.getMessage()


def test_a_wrong_passphrase_typed_is_asked_again_and_never_shown(make_config, tmp_path, caplog):
    private = create_key_pair(tmp_path / "k" / "form-public.pem", b"pass-7781")
    config = make_config(
        identity__key=encode(DataKey.generate().to_wire()),
        identity__private_key_file=str(private),
    )
    typed = iter(["typo-1234", "pass-7781"])
    with caplog.at_level(logging.WARNING):
        keys = load_identity_keys(config, lambda _text: next(typed), logging.getLogger("t"))
    assert keys is not None
    assert "does not open" in caplog.text and "typo-1234" not in caplog.text
    assert "pass-7781" not in caplog.text


def test_no_data_key_warns_and_leaves_identities_encrypted(
    make_config, recorded_private_key_file, caplog
):
    config = make_config(identity__private_key_file=str(recorded_private_key_file))
    with caplog.at_level(logging.WARNING):
        assert load_identity_keys(config, None, logging.getLogger("t")) is None
    assert "No identity data key" in caplog.text and "nigraan identity import" in caplog.text


def test_a_data_key_is_never_pickled():
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(DataKey.generate())


def test_an_envelope_sent_after_centrals_placeholder_is_kept_and_decrypts(
    open_store, identity_form, recorded_key, data_key
):
    """A tablet sends nigraan the envelope of a submission the sync stored from Central's
    OData (a placeholder): one submission, the envelope and its files kept, not a conflict."""
    store = open_store()
    store.register_form(identity_form)
    iid, envelope, files = identity_envelope(identity_form, recorded_key, CODES[0])
    row = placeholder_row(iid, _version(identity_form), len(files), "2026-12-01T10:00:00.000Z")
    assert store.ingest(row, source="central", form_id="identity_register").status == "created"
    parts = {name: (content, None) for name, content in files.items()}
    assert store.ingest(envelope, attachments=parts).status == "duplicate"
    assert (
        store.attachment("identity_register", iid, "submission.xml.enc")
        == files["submission.xml.enc"]
    )
    from store.encrypted_submissions import decrypt_and_file

    assert decrypt_and_file(
        store, IdentityKeys(recorded_key, data_key), "identity_register", iid
    ) == ("created")
    assert IdentityRegister(store.engine, data_key).reveal(CODES[0])["person/cnic"] == CNIC
    # and Central's placeholder read again after it: the same one still
    assert store.ingest(row, source="central", form_id="identity_register").status == "duplicate"
    assert store.counts()["identity_register"]["submissions"] == 1
