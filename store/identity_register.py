"""The identity register: names, CNIC, phones, "safe to call?", address, stored only encrypted.

Every field is its own AES-256-GCM ciphertext under the data key (nigraan/data_key.py), which
lives outside the database; its authenticated context is the key id, the survivor's lookup key
and the field's name, so a value moved to another survivor or field no longer decrypts. A
survivor is found by the HMAC of her code (`find`), without decrypting anything; `reveal`
decrypts one survivor's fields, `erase` removes them, `rotate` re-encrypts everything under a
new key, after which the old key opens nothing. Plaintext never reaches the database, its WAL,
a log line or an error message: errors name the lookup key's first characters, never a value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidTag
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine

from nigraan.data_key import DataKey
from nigraan.errors import NigraanError
from store import tables as t

Fields = Mapping[str, str | None]


class IdentityRegisterError(NigraanError):
    """The register cannot do what was asked; the message never carries an identity."""

    code = "identity.unavailable"
    status = 500


class WrongDataKey(IdentityRegisterError):
    code = "identity.wrong_key"


class IdentityNotFound(IdentityRegisterError):
    code = "identity.not_found"
    status = 404


class IdentityErased(IdentityRegisterError):
    """The survivor's identity was erased (store/erasure.py): it is never filed again."""

    code = "identity.erased"
    status = 410


@dataclass(frozen=True)
class IdentityEntry:
    """What the register shows without decrypting: which fields a survivor has, and when."""

    code_hmac: str
    fields: tuple[str, ...]
    key_id: str
    created_at: datetime
    updated_at: datetime


def _context(key_id: str, code_hmac: str, field: str) -> bytes:
    return f"nigraan identity v1\x00{key_id}\x00{code_hmac}\x00{field}".encode()


def _code_of(code: str) -> str:
    code = code.strip() if isinstance(code, str) else ""
    if not code:
        raise IdentityRegisterError(
            "A survivor code is needed to file an identity; this one is empty.",
            hint="Fill in survivor_code in the identity register form.",
        )
    return code


class IdentityRegister:
    """The register's one way in and out, on the store's engine and a data key."""

    def __init__(self, engine: Engine, key: DataKey):
        self.engine = engine
        self.key = key

    def code_hmac(self, code: str) -> str:
        return self.key.code_hmac(_code_of(code))

    def _seal(self, key: DataKey, code_hmac: str, field: str, value) -> bytes:
        data = json.dumps(value, ensure_ascii=True).encode("ascii")
        return key.encrypt(data, _context(key.key_id, code_hmac, field))

    def _open(self, key: DataKey, row_key_id: str, code_hmac: str, field: str, sealed: bytes):
        if row_key_id != key.key_id:
            raise WrongDataKey(
                f"The identity register's record {code_hmac[:12]}… was encrypted under data key "
                f"{row_key_id}, not under the key given ({key.key_id}).",
                hint="Use the register's current data key (the key file or environment "
                "variable it was written with, or the one it was rotated to).",
            )
        try:
            data = key.decrypt(sealed, _context(key.key_id, code_hmac, field))
        except InvalidTag:
            raise IdentityRegisterError(
                f"The field {field!r} of the identity record {code_hmac[:12]}… does not "
                "decrypt: it was altered in the database.",
                hint="Restore the register from a backup; the other fields are unaffected.",
            ) from None
        return json.loads(data)

    def put(self, code: str, fields: Fields, source: tuple[str, str] | None = None) -> str:
        """File a survivor's identity fields under her code, replacing any filed before;
        'created' or 'updated'. `source` (form id, instanceID): the submission they came from,
        recorded so an erasure removes it too. An erased code is refused (IdentityErased)."""
        with self.engine.begin() as conn:
            return self.put_in(conn, code, fields, source)

    def put_in(self, conn, code: str, fields: Fields, source: tuple[str, str] | None = None) -> str:
        """`put` inside the caller's transaction."""
        code = _code_of(code)
        key = self.key
        code_hmac = key.code_hmac(code)
        now = t.utcnow()
        reg, fld = t.sealed_identities, t.sealed_values
        if conn.execute(
            select(t.erasures.c.id).where(t.erasures.c.code_hmac == code_hmac).limit(1)
        ).first():
            raise IdentityErased(
                f"The identity {code_hmac[:12]}… was erased; it is not filed again.",
                hint="An erased identity stays erased; a survivor who comes back is "
                "registered under a new survivor code.",
            )
        existing = conn.execute(select(reg.c.key_id).where(reg.c.code_hmac == code_hmac)).first()
        sealed_code = self._seal(key, code_hmac, "", code)
        if existing is None:
            conn.execute(
                insert(reg).values(
                    code_hmac=code_hmac,
                    code_sealed=sealed_code,
                    key_id=key.key_id,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            conn.execute(delete(fld).where(fld.c.code_hmac == code_hmac))
            conn.execute(
                update(reg)
                .where(reg.c.code_hmac == code_hmac)
                .values(code_sealed=sealed_code, key_id=key.key_id, updated_at=now)
            )
        rows = [
            {
                "code_hmac": code_hmac,
                "field": name,
                "key_id": key.key_id,
                "sealed": self._seal(key, code_hmac, name, value),
            }
            for name, value in fields.items()
        ]
        if rows:
            conn.execute(insert(fld), rows)
        if source is not None:
            src = t.sealed_sources
            form_id, instance_id = source
            where = (src.c.form_id == form_id, src.c.instance_id == instance_id)
            conn.execute(delete(src).where(*where))
            conn.execute(
                insert(src).values(
                    form_id=form_id, instance_id=instance_id, code_hmac=code_hmac, filed_at=now
                )
            )
        return "created" if existing is None else "updated"

    def find(self, code_hmac: str) -> IdentityEntry | None:
        """The record filed under a lookup key, without decrypting any of it."""
        reg, fld = t.sealed_identities, t.sealed_values
        with self.engine.connect() as conn:
            row = conn.execute(select(reg).where(reg.c.code_hmac == code_hmac)).first()
            if row is None:
                return None
            names = conn.execute(
                select(fld.c.field).where(fld.c.code_hmac == code_hmac).order_by(fld.c.field)
            ).scalars()
            return IdentityEntry(
                code_hmac, tuple(names), row.key_id, row.created_at, row.updated_at
            )

    def reveal(self, code: str) -> dict[str, str | None]:
        """One survivor's identity fields, decrypted (the caller writes the audit row)."""
        code_hmac = self.code_hmac(code)
        fld = t.sealed_values
        if self.find(code_hmac) is None:
            raise IdentityNotFound(
                "No identity is filed under this survivor code.",
                hint="Check the code; an identity is filed when its identity_register "
                "submission is decrypted.",
            )
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(fld).where(fld.c.code_hmac == code_hmac).order_by(fld.c.field)
            ).all()
        return {r.field: self._open(self.key, r.key_id, code_hmac, r.field, r.sealed) for r in rows}

    def erase(self, code: str) -> bool:
        """Remove a survivor's identity; False if none was filed."""
        code_hmac = self.code_hmac(code)
        reg, fld = t.sealed_identities, t.sealed_values
        with self.engine.begin() as conn:
            conn.execute(delete(fld).where(fld.c.code_hmac == code_hmac))
            return conn.execute(delete(reg).where(reg.c.code_hmac == code_hmac)).rowcount > 0

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(t.sealed_identities)).scalar()

    def key_ids(self) -> set[str]:
        """The data keys the register's records were written under (a key that finds nothing
        when the register is not empty is the wrong key, not a missing identity)."""
        reg = t.sealed_identities
        with self.engine.connect() as conn:
            return set(conn.execute(select(reg.c.key_id).distinct()).scalars())

    def rotate(self, new_key: DataKey) -> int:
        """Re-encrypt every record under `new_key`, in one transaction (all or nothing), and
        use it from now on; returns the number of records. The old key then opens nothing."""
        if new_key.key_id == self.key.key_id:
            raise IdentityRegisterError(
                "The new data key is the key the register already uses.",
                hint="Make a new key file and rotate to that.",
            )
        reg, fld = t.sealed_identities, t.sealed_values
        old = self.key
        with self.engine.begin() as conn:
            records = conn.execute(select(reg)).all()
            fields = conn.execute(select(fld)).all()
            by_record: dict[str, list] = {}
            for f in fields:
                by_record.setdefault(f.code_hmac, []).append(f)
            new_records, new_fields = [], []
            for r in records:
                code = self._open(old, r.key_id, r.code_hmac, "", r.code_sealed)
                new_hmac = new_key.code_hmac(code)
                new_records.append(
                    {
                        "code_hmac": new_hmac,
                        "key_id": new_key.key_id,
                        "code_sealed": self._seal(new_key, new_hmac, "", code),
                        "created_at": r.created_at,
                        "updated_at": r.updated_at,
                    }
                )
                for f in by_record.get(r.code_hmac, []):
                    value = self._open(old, f.key_id, r.code_hmac, f.field, f.sealed)
                    new_fields.append(
                        {
                            "code_hmac": new_hmac,
                            "field": f.field,
                            "key_id": new_key.key_id,
                            "sealed": self._seal(new_key, new_hmac, f.field, value),
                        }
                    )
            conn.execute(delete(fld))
            conn.execute(delete(reg))
            if new_records:
                conn.execute(insert(reg), new_records)
            if new_fields:
                conn.execute(insert(fld), new_fields)
            self._rotate_lookups(conn, old, new_key)
        self.key = new_key
        return len(new_records)

    def _rotate_lookups(self, conn, old: DataKey, new_key: DataKey) -> None:
        """The sources and the tombstones of erased identities follow the new lookup keys, so
        an erased identity stays erased and a filed one keeps its envelopes after rotation."""
        er, src = t.erasures, t.sealed_sources
        moved: dict[str, str] = {}
        for r in conn.execute(select(er)).all():
            code = self._open(old, r.key_id, r.code_hmac, "", r.code_sealed)
            new_hmac = new_key.code_hmac(code)
            moved[r.code_hmac] = new_hmac
            conn.execute(
                update(er)
                .where(er.c.id == r.id)
                .values(
                    code_hmac=new_hmac,
                    key_id=new_key.key_id,
                    code_sealed=self._seal(new_key, new_hmac, "", code),
                )
            )
        for r in conn.execute(
            select(t.sealed_identities.c.code_sealed, t.sealed_identities.c.code_hmac)
        ).all():
            code = self._open(new_key, new_key.key_id, r.code_hmac, "", r.code_sealed)
            moved[old.code_hmac(code)] = r.code_hmac
        for old_hmac, new_hmac in moved.items():
            conn.execute(update(src).where(src.c.code_hmac == old_hmac).values(code_hmac=new_hmac))
