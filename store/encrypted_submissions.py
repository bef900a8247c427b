"""Decrypting the encrypted submissions the store holds, and filing identities from them.

The store keeps every encrypted submission as it arrived (the envelope and its `.enc` files):
that never changes. Decrypting happens in memory: the plaintext goes to the identity register
(encrypted field by field under the data key) and nowhere else in the store. A submission that
does not decrypt (wrong key, a part missing, a signature that does not match) stays as it is and
gets a row in `decryption_flags`, which goes when it later decrypts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import delete, insert, select, update

from store import tables as t
from store.document import SubmissionDocument, from_openrosa_xml
from store.identity_register import IdentityRegister, IdentityRegisterError
from store.odk_decrypt import DecryptedSubmission, DecryptionError, decrypt_submission
from store.outcomes import ERASED

log = logging.getLogger(__name__)

IDENTITY_FORM = "identity_register"
CODE_FIELD = "survivor_code"


@dataclass(frozen=True)
class StoredDecryption:
    """What came of decrypting one stored submission version."""

    form_id: str
    instance_id: str
    submission: DecryptedSubmission | None = None  # None: not decrypted, see reason
    reason: str | None = None  # DecryptionError.reason
    message: str | None = None

    @property
    def decrypted(self) -> bool:
        return self.submission is not None


def _stored_envelope(store, form_id: str, instance_id: str) -> bytes | None:
    sv = t.submission_versions
    with store.engine.connect() as conn:
        return conn.execute(
            select(sv.c.payload)
            .where(
                sv.c.form_id == form_id,
                sv.c.instance_id == instance_id,
                sv.c.payload_kind == "xml",
            )
            .order_by(sv.c.id.desc())
        ).scalar()


def record_decryption(store, form_id: str, instance_id: str, error: DecryptionError | None) -> None:
    """Flag a submission that did not decrypt (`error`), or clear its flag (None)."""
    flags = t.decryption_flags
    where = (flags.c.form_id == form_id, flags.c.instance_id == instance_id)
    with store.engine.begin() as conn:
        if error is None:
            conn.execute(delete(flags).where(*where))
            return
        values = {"reason": error.reason, "message": error.message, "flagged_at": t.utcnow()}
        changed = conn.execute(update(flags).where(*where).values(**values)).rowcount
        if not changed:
            conn.execute(insert(flags).values(form_id=form_id, instance_id=instance_id, **values))


def decrypt_stored_submission(
    store, form_id: str, instance_id: str, private_key: rsa.RSAPrivateKey
) -> StoredDecryption:
    """Decrypt one stored version (its envelope and `.enc` files from the store), in memory.

    Never raises for a submission that does not decrypt: it is flagged and reported in the
    result, and its stored envelope and files are left exactly as they were."""
    envelope = _stored_envelope(store, form_id, instance_id)
    if envelope is None:
        error = DecryptionError(
            f"No encrypted submission {instance_id} of {form_id} is stored as XML (a Central "
            "OData row holds no envelope: fetch it with sync.encrypted.fetch_encrypted_files).",
            reason=DecryptionError.MISSING_FILE,
        )
        return StoredDecryption(form_id, instance_id, reason=error.reason, message=error.message)
    files = {}
    for attachment in store.attachments(form_id, instance_id):
        if attachment["exists"]:
            files[attachment["name"]] = store.attachment(form_id, instance_id, attachment["name"])
    try:
        decrypted = decrypt_submission(envelope, files, private_key)
    except DecryptionError as exc:
        record_decryption(store, form_id, instance_id, exc)
        log.warning("%s %s not decrypted (%s): %s", form_id, instance_id, exc.reason, exc.message)
        return StoredDecryption(form_id, instance_id, reason=exc.reason, message=exc.message)
    record_decryption(store, form_id, instance_id, None)
    return StoredDecryption(form_id, instance_id, submission=decrypted)


def decryption_flags(store, form_id: str | None = None) -> list[dict]:
    flags = t.decryption_flags
    query = select(flags).order_by(flags.c.form_id, flags.c.instance_id)
    if form_id is not None:
        query = query.where(flags.c.form_id == form_id)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def _leaves(data, path: str = "") -> Iterator[tuple[str, str | None]]:
    for name, value in data.items():
        here = f"{path}/{name}" if path else name
        if isinstance(value, dict):
            yield from _leaves(value, here)
        elif isinstance(value, list):  # a repeat: one field per instance, numbered from 1
            for n, item in enumerate(value, 1):
                if isinstance(item, dict):
                    yield from _leaves(item, f"{here}[{n}]")
                else:
                    yield f"{here}[{n}]", item
        else:
            yield here, value


def identity_fields(doc: SubmissionDocument) -> tuple[str, dict[str, str | None]]:
    """(survivor code, every other field by path) of a decrypted identity_register submission;
    the meta block (instanceID and such) is not an identity field."""
    fields = dict(_leaves({k: v for k, v in doc.data.items() if k != "meta"}))
    code = fields.pop(CODE_FIELD, None)
    if not code or not code.strip():
        raise IdentityRegisterError(
            f"The identity register submission {doc.instance_id} has no {CODE_FIELD}.",
            hint="The form requires one; send the submission again from ODK Collect.",
        )
    return code, fields


def file_identity(register: IdentityRegister, decrypted: DecryptedSubmission) -> str:
    """File a decrypted identity_register submission in the register; 'created'/'updated',
    or 'erased' for an erased survivor's (store/erasure.py: it stays erased)."""
    from store.erasure import file_unless_erased

    doc = from_openrosa_xml(decrypted.xml)
    code, fields = identity_fields(doc)
    source = (decrypted.form_id, decrypted.instance_id)
    return file_unless_erased(register, code, fields, source)


def import_identities(
    store, register: IdentityRegister, private_key: rsa.RSAPrivateKey, form_id: str = IDENTITY_FORM
) -> dict[str, int]:
    """Decrypt every current stored submission of the identity form and file it; returns
    counts by outcome ('created', 'updated', 'erased' and the DecryptionError reasons)."""
    sub = t.submissions
    with store.engine.connect() as conn:
        current = (
            conn.execute(
                select(sub.c.current_instance_id)
                .where(
                    sub.c.form_id == form_id,
                    sub.c.encrypted.is_(True),
                    sub.c.deleted_at.is_(None),
                    sub.c.normalised != ERASED,  # nothing of it is left to decrypt
                )
                .order_by(sub.c.id)
            )
            .scalars()
            .all()
        )
    counts: dict[str, int] = {}
    for instance_id in current:
        outcome = decrypt_stored_submission(store, form_id, instance_id, private_key)
        key = file_identity(register, outcome.submission) if outcome.decrypted else outcome.reason
        counts[key] = counts.get(key, 0) + 1
    return counts
