"""Decrypting the encrypted submissions the store holds, and filing identities from them.

The store keeps every encrypted submission as it arrived (the envelope and its `.enc` files):
that never changes. Decrypting happens in memory: the plaintext goes to the identity register
(encrypted field by field under the data key) and nowhere else in the store. A submission that
does not decrypt (wrong key, a part missing, a signature that does not match) stays as it is and
gets a row in `decryption_flags`, which goes when it later decrypts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import delete, insert, select, update

from nigraan.xform import CENTRAL_CSV_TRAILING_META, IDENTITY_FORM
from store import tables as t
from store.attachments import fill_attachment
from store.document import SubmissionDocument, SubmissionError, from_openrosa_xml
from store.identity_register import IdentityRegister, IdentityRegisterError
from store.incoming import sha256
from store.odk_decrypt import DecryptedSubmission, DecryptionError, decrypt_submission
from store.outcomes import ERASED

log = logging.getLogger(__name__)

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


WAITING = "waiting"  # a split upload (or a sync) whose other `.enc` parts have not come yet
DECRYPTED = "decrypted"  # another encrypted form's submission: checked, its plaintext dropped
NOT_ENCRYPTED = "not_encrypted"
NOT_FILED = "not_filed"  # decrypted, but the register refused it (no survivor code)


PLACEHOLDER, INCOMPLETE, COMPLETE = "placeholder", "incomplete", "complete"


def envelope_state(store, form_id: str, instance_id: str) -> str | None:
    """What the store holds of an encrypted version: PLACEHOLDER (Central's OData row, no
    envelope yet), INCOMPLETE (the envelope, some `.enc` part still to come), COMPLETE; None
    when it is not an encrypted submission (or not stored)."""
    sv = t.submission_versions
    with store.engine.connect() as conn:
        row = conn.execute(
            select(sv.c.payload_kind, t.submissions.c.encrypted)
            .join(
                t.submissions,
                (t.submissions.c.form_id == sv.c.form_id)
                & (t.submissions.c.root_id == sv.c.root_id),
            )
            .where(sv.c.form_id == form_id, sv.c.instance_id == instance_id)
        ).first()
    if row is None or not row.encrypted:
        return None
    if row.payload_kind != "xml":
        return PLACEHOLDER
    files = store.attachments(form_id, instance_id)
    return COMPLETE if files and all(a["exists"] for a in files) else INCOMPLETE


def decrypt_and_file(store, keys, form_id: str, instance_id: str) -> str:
    """Decrypt one stored envelope once all its parts are here and, for the identity form,
    file it in the register (`keys`: nigraan.identity_keys.IdentityKeys). The outcome:
    'created'/'updated' (filed), DECRYPTED (another form: only checked), WAITING,
    NOT_ENCRYPTED, NOT_FILED, or the DecryptionError reason it was flagged with.

    Never raises for a submission that does not decrypt, and never logs a value: what was
    decrypted exists only in memory, then in the register, encrypted field by field."""
    state = envelope_state(store, form_id, instance_id)
    if state is None:
        return NOT_ENCRYPTED
    if state != COMPLETE or keys.private_key is None:  # no self-supplied key: it waits
        return WAITING
    outcome = decrypt_stored_submission(store, form_id, instance_id, keys.private_key)
    if not outcome.decrypted:
        return outcome.reason or "not_decrypted"
    if form_id != IDENTITY_FORM:
        return DECRYPTED
    try:
        return file_identity(IdentityRegister(store.engine, keys.data_key), outcome.submission)
    except (IdentityRegisterError, SubmissionError) as exc:  # their messages name no value
        log.warning("%s %s decrypted but not filed: %s", form_id, instance_id, exc.message)
        return NOT_FILED


def keep_envelope(
    engine, form_id: str, instance_id: str, envelope: bytes, files: Mapping[str, bytes]
) -> bool:
    """Keep an encrypted submission's envelope and `.enc` files (from Central's REST) for the
    version the sync stored as OData's encrypted placeholder, which holds neither: the
    version's payload becomes the envelope, and a row per file it names (filled in as they
    come; the sync's attachment step fetches the rest). True if the envelope was new here.

    Ingesting the envelope as a submission would be a conflict (same instanceID, other
    content). The placeholder carries only Central's `__system`, which `submissions` keeps."""
    doc = from_openrosa_xml(envelope)
    if not doc.encrypted or doc.form_id != form_id or doc.instance_id != instance_id:
        raise SubmissionError(
            f"The envelope Central gave for {instance_id} of {form_id} is not its encrypted "
            "submission (another form or instanceID, or not encrypted).",
            hint="Sync again; if it persists, compare the submission in Central.",
        )
    sv, sa = t.submission_versions, t.submission_attachments
    now = t.utcnow()
    with engine.begin() as conn:
        row = conn.execute(
            select(sv.c.id, sv.c.payload_kind).where(
                sv.c.form_id == form_id, sv.c.instance_id == instance_id
            )
        ).first()
        if row is None:
            raise SubmissionError(
                f"No stored submission {instance_id} of {form_id} to keep its envelope with.",
                hint="Store its OData row first (the sync does).",
            )
        new = row.payload_kind != "xml"
        if new:
            conn.execute(
                update(sv)
                .where(sv.c.id == row.id)
                .values(payload=envelope, payload_kind="xml", payload_sha256=sha256(envelope))
            )
        named = set(
            conn.execute(
                select(sa.c.name).where(sa.c.form_id == form_id, sa.c.instance_id == instance_id)
            ).scalars()
        )
        rows = [
            {"form_id": form_id, "instance_id": instance_id, "name": name}
            for name in doc.files
            if name not in named
        ]
        if rows:
            conn.execute(insert(sa), rows)
        for name in doc.files:
            if name in files:
                fill_attachment(
                    conn, form_id, instance_id, name, files[name], "application/octet-stream", now
                )
    return new


# Columns of Central's CSV export that are Central's, not the form's (README facts 31, 34).
EXPORT_SYSTEM_COLUMNS = frozenset({"SubmissionDate", "KEY", *CENTRAL_CSV_TRAILING_META})


def exported_identity_fields(row: Mapping[str, str]) -> tuple[str, dict[str, str | None]]:
    """(survivor code, fields by path) of one row of Central's decrypted CSV export (a
    Central-managed key): its group paths joined by '-' become '/', empty cells None."""
    fields = {
        name.replace("-", "/"): (value if value != "" else None)
        for name, value in row.items()
        if name not in EXPORT_SYSTEM_COLUMNS and not name.startswith("meta-")
    }
    code = fields.pop(CODE_FIELD, None)
    if not code or not code.strip():
        raise IdentityRegisterError(
            f"The exported identity register row {row.get('KEY', '')} has no {CODE_FIELD}.",
            hint="The form requires one; check the submission in Central.",
        )
    return code, fields


def file_exported_identities(
    store, data_key, rows, instance_ids: set[str] | None = None
) -> dict[str, int]:
    """File the rows of Central's decrypting export (those of `instance_ids`, or all) in the
    register; counts by outcome."""
    from store.erasure import file_unless_erased

    register = IdentityRegister(store.engine, data_key)
    counts: dict[str, int] = {}
    for row in rows:
        instance_id = row.get("meta-instanceID") or row.get("KEY")
        if instance_ids is not None and instance_id not in instance_ids:
            continue
        try:
            code, fields = exported_identity_fields(row)
            # as file_identity: the source is kept (for retention) and an erased one stays so
            outcome = file_unless_erased(register, code, fields, (IDENTITY_FORM, instance_id))
        except IdentityRegisterError as exc:
            log.warning("%s not filed: %s", instance_id, exc.message)
            outcome = NOT_FILED
        else:
            record_decryption(store, IDENTITY_FORM, instance_id, None)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
