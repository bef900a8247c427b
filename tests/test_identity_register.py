"""The identity register on SQLite and PostgreSQL: ciphertext only, found by HMAC, rotated."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select, update

from nigraan.data_key import DataKey, create_data_key_file
from nigraan.errors import KeyFileError
from store import tables as t
from store.identity_register import (
    IdentityNotFound,
    IdentityRegister,
    IdentityRegisterError,
    WrongDataKey,
)

# Made up for the tests: no real person.
NAME = "Zarmina Qadeer Testname"
URDU_NAME = "زرمینہ قدیر"
CNIC = "35202-1234567-1"
PHONE = "03001234567"
ADDRESS = "House 12, Street 4, Testpura"
FIELDS = {
    "person/full_name": NAME,
    "person/father_husband_name": URDU_NAME,
    "person/cnic": CNIC,
    "contact/mobile": PHONE,
    "contact/safe_to_call": "no",
    "contact/alt_contact_name": None,
    "address_group/address": ADDRESS,
}
SECRETS = [NAME, URDU_NAME, CNIC, CNIC.replace("-", ""), PHONE, ADDRESS, "SSU-LHR-0042"]


@pytest.fixture
def key():
    return DataKey.generate()


@pytest.fixture
def register(store, key):
    return IdentityRegister(store.engine, key)


def test_put_then_reveal_gives_the_fields_back(register):
    assert register.put("SSU-LHR-0042", FIELDS) == "created"
    assert register.reveal("SSU-LHR-0042") == FIELDS


def test_find_by_hmac_names_the_fields_without_decrypting(register, store):
    register.put("SSU-LHR-0042", FIELDS)
    entry = register.find(register.code_hmac("SSU-LHR-0042"))
    assert entry is not None and entry.fields == tuple(sorted(FIELDS))
    assert register.find(register.code_hmac("SSU-LHR-0043")) is None
    # The lookup key is an HMAC under the data key: another key gives another one.
    assert DataKey.generate().code_hmac("SSU-LHR-0042") != entry.code_hmac


def test_put_again_replaces_every_field(register):
    register.put("SSU-LHR-0042", FIELDS)
    assert register.put("SSU-LHR-0042", {"person/full_name": "Other Testname"}) == "updated"
    assert register.reveal("SSU-LHR-0042") == {"person/full_name": "Other Testname"}
    assert register.count() == 1


def test_erase_removes_the_identity(register):
    register.put("SSU-LHR-0042", FIELDS)
    register.put("SSU-LHR-0043", {"person/full_name": "Second Testname"})
    assert register.erase("SSU-LHR-0042") is True
    assert register.erase("SSU-LHR-0042") is False
    with pytest.raises(IdentityNotFound):
        register.reveal("SSU-LHR-0042")
    with register.engine.connect() as conn:
        left = conn.execute(select(t.sealed_values.c.code_hmac)).scalars().all()
    assert set(left) == {register.code_hmac("SSU-LHR-0043")}


def test_an_empty_code_is_refused(register):
    with pytest.raises(IdentityRegisterError, match="survivor code"):
        register.put("  ", FIELDS)


def test_another_key_opens_nothing_and_says_so(register, store):
    register.put("SSU-LHR-0042", FIELDS)
    stranger = IdentityRegister(store.engine, DataKey.generate())
    with pytest.raises(IdentityNotFound):  # its HMAC finds no record
        stranger.reveal("SSU-LHR-0042")
    with store.engine.connect() as conn:
        row = conn.execute(select(t.sealed_values)).first()
    with pytest.raises(WrongDataKey, match="encrypted under data key"):
        stranger._open(stranger.key, row.key_id, row.code_hmac, row.field, row.sealed)


def test_a_value_moved_to_another_field_does_not_decrypt(register, store):
    register.put("SSU-LHR-0042", FIELDS)
    code_hmac = register.code_hmac("SSU-LHR-0042")
    fld = t.sealed_values
    with store.engine.begin() as conn:
        cnic = conn.execute(select(fld.c.sealed).where(fld.c.field == "person/cnic")).scalar_one()
        conn.execute(
            update(fld)
            .where(fld.c.code_hmac == code_hmac, fld.c.field == "contact/mobile")
            .values(sealed=cnic)
        )
    with pytest.raises(IdentityRegisterError, match="contact/mobile") as caught:
        register.reveal("SSU-LHR-0042")
    assert CNIC not in str(caught.value) and PHONE not in str(caught.value)


def test_rotation_reencrypts_every_field_and_the_old_key_is_useless(register, store, key):
    register.put("SSU-LHR-0042", FIELDS)
    register.put("SSU-RWP-0007", {"person/full_name": "Second Testname", "person/cnic": None})
    with store.engine.connect() as conn:
        before = {r.sealed for r in conn.execute(select(t.sealed_values))}
    new_key = DataKey.generate()
    assert register.rotate(new_key) == 2
    with store.engine.connect() as conn:
        after = conn.execute(select(t.sealed_values)).all()
        records = conn.execute(select(t.sealed_identities)).all()
    assert {r.key_id for r in after} == {r.key_id for r in records} == {new_key.key_id}
    assert not before & {r.sealed for r in after}  # every ciphertext is new
    assert register.reveal("SSU-LHR-0042") == FIELDS
    reopened = IdentityRegister(store.engine, new_key)
    assert reopened.reveal("SSU-RWP-0007") == {
        "person/full_name": "Second Testname",
        "person/cnic": None,
    }
    old = IdentityRegister(store.engine, key)
    with pytest.raises(IdentityNotFound):
        old.reveal("SSU-LHR-0042")
    row = after[0]
    with pytest.raises(WrongDataKey):
        old._open(key, row.key_id, row.code_hmac, row.field, row.sealed)
    with pytest.raises(IdentityRegisterError, match="already uses"):
        register.rotate(new_key)


def test_a_rotation_that_fails_changes_nothing(register, store, key):
    register.put("SSU-LHR-0042", FIELDS)
    with store.engine.begin() as conn:  # one field damaged: rotation must stop, all or nothing
        conn.execute(
            update(t.sealed_values)
            .where(t.sealed_values.c.field == "person/cnic")
            .values(sealed=b"\x00" * 40)
        )
    with pytest.raises(IdentityRegisterError):
        register.rotate(DataKey.generate())
    assert register.key is key
    assert register.find(register.code_hmac("SSU-LHR-0042")).key_id == key.key_id


# -- the data key


def test_the_key_file_is_created_0600_whatever_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        key = create_data_key_file(tmp_path / "keys" / "identity.key")
    finally:
        os.umask(old)
    path = tmp_path / "keys" / "identity.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DataKey.from_file(path).key_id == key.key_id
    with pytest.raises(KeyFileError, match="will not overwrite"):
        create_data_key_file(path)


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "identity.key"
    create_data_key_file(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        DataKey.from_file(path)


def test_the_key_from_the_environment(tmp_path):
    path = tmp_path / "identity.key"
    from_file = create_data_key_file(path)
    text = path.read_text().strip()
    assert DataKey.from_env("IDKEY", {"IDKEY": text}).key_id == from_file.key_id
    with pytest.raises(KeyFileError, match="IDKEY is not set"):
        DataKey.from_env("IDKEY", {})
    with pytest.raises(KeyFileError) as caught:
        DataKey.from_env("IDKEY", {"IDKEY": text[:-8]})
    assert text[:-8] not in str(caught.value)


def test_the_key_never_shows(tmp_path):
    path = tmp_path / "identity.key"
    key = create_data_key_file(path)
    secret = path.read_text().strip()
    assert secret not in repr(key) and secret not in str(key)
    assert key.key_id in repr(key)


# -- no plaintext anywhere nigraan writes


def _encodings(text: str) -> list[bytes]:
    return [text.encode(e) for e in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le")]


def _assert_no_secret(blob: bytes, where: str) -> None:
    for secret in SECRETS:
        for encoded in _encodings(secret):
            assert encoded not in blob, f"{secret!r} found in {where}"


def _database_bytes(store) -> dict[str, bytes]:
    """Every byte of the store: SQLite's file, WAL and SHM; PostgreSQL's tables in the test's
    schema as COPY BINARY gives them (raw text and bytea)."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        base = Path(url.database)
        return {p.name: p.read_bytes() for p in base.parent.iterdir() if p.is_file()}
    schema = url.query["options"].split("=", 1)[1]
    out = {}
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(
            "select table_name from information_schema.tables where table_schema = %s",
            (schema,),
        )
        for (table,) in cursor.fetchall():
            data = bytearray()
            with cursor.copy(f'COPY "{schema}"."{table}" TO STDOUT (FORMAT binary)') as copy:
                for chunk in copy:
                    data += chunk
            out[table] = bytes(data)
        cursor.close()
    finally:
        raw.close()
    return out


def test_no_plaintext_identity_in_any_byte_the_store_wrote(open_store, new_database, caplog):
    caplog.set_level(logging.DEBUG)
    url = new_database()
    store = open_store(url)
    key = DataKey.generate()
    register = IdentityRegister(store.engine, key)
    register.put("SSU-LHR-0042", FIELDS)
    register.put("SSU-LHR-0042", {**FIELDS, "contact/safe_to_call": "yes"})  # an update too
    register.put("SSU-RWP-0007", FIELDS)
    register.erase("SSU-RWP-0007")
    register.rotate(DataKey.generate())
    assert register.reveal("SSU-LHR-0042")["person/cnic"] == CNIC  # it is in there
    files = _database_bytes(store)  # while open: SQLite's WAL and SHM are there
    assert files and any(len(b) for b in files.values())
    if store.engine.url.get_backend_name() == "sqlite":
        assert any(name.endswith("-wal") for name in files)
    for name, blob in files.items():
        _assert_no_secret(blob, name)
    store.close()  # SQLite checkpoints the WAL into the file: read it again
    store = open_store(url)
    for name, blob in _database_bytes(store).items():
        _assert_no_secret(blob, name)
    _assert_no_secret(caplog.text.encode("utf-8"), "the log")


def test_errors_carry_no_identity(register, store):
    register.put("SSU-LHR-0042", FIELDS)
    messages = []
    other = IdentityRegister(store.engine, DataKey.generate())
    for attempt in (lambda: other.reveal("SSU-LHR-0042"), lambda: register.put("", FIELDS)):
        try:
            attempt()
        except IdentityRegisterError as exc:
            messages.append(str(exc))
    assert len(messages) == 2
    _assert_no_secret("\n".join(messages).encode(), "an error message")
