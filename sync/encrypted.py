"""Encrypted submissions from ODK Central (central README facts 32-34).

OData gives an encrypted submission only its `__id` and `__system` (status `notDecrypted`) and
never names its files, so the envelope and `.enc` files come through REST:
`GET …/submissions/<id>.xml` (the envelope), `GET …/submissions/<id>/attachments` (the listing)
and one download per file. With a self-supplied key nigraan decrypts them itself
(store/odk_decrypt.py). A Central-managed key's private half never leaves Central (its
`/submissions/keys` lists only the public key and the hint [117]), so those are decrypted by
Central in the export, `POST …/submissions.csv.zip` with `<keyId>=<passphrase>` [122]; the
passphrase travels only in that request's body and never appears in a log line or an error.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from store.odk_decrypt import DecryptedSubmission, decrypt_submission, parse_envelope
from sync.central import Central, CentralError

SUBMISSION = "projects/{project_id}/forms/{form_id}/submissions/{instance_id}"


@dataclass(frozen=True)
class EncryptedParts:
    """An encrypted submission as Central holds it: the envelope and the `.enc` files it names
    that Central has (`missing`: named but not uploaded to Central yet)."""

    form_id: str
    instance_id: str
    envelope: bytes
    files: dict[str, bytes] = field(repr=False)
    missing: tuple[str, ...] = ()


def fetch_encrypted_files(central: Central, form_id: str, instance_id: str) -> EncryptedParts:
    """The envelope and `.enc` files of one encrypted submission, through the REST listing."""
    base = central.path(SUBMISSION, form_id=form_id, instance_id=instance_id)
    envelope = central.get(base + ".xml").content
    names = parse_envelope(envelope).files  # DecryptionError if it is not an envelope
    listing = central.get_json(base + "/attachments")
    present = {entry["name"] for entry in listing if entry.get("exists")}
    files, missing = {}, []
    for name in names:
        if name not in present:
            missing.append(name)
            continue
        path = central.path(
            SUBMISSION + "/attachments/{name}", form_id=form_id, instance_id=instance_id, name=name
        )
        files[name] = central.get(path).content  # a 307 to S3 is followed by requests
    return EncryptedParts(form_id, instance_id, envelope, files, tuple(missing))


def decrypt_from_central(
    central: Central, form_id: str, instance_id: str, private_key: rsa.RSAPrivateKey
) -> DecryptedSubmission:
    """Fetch and decrypt one self-supplied-key submission; DecryptionError (wrong key, missing
    part, tampered) when it cannot be trusted."""
    parts = fetch_encrypted_files(central, form_id, instance_id)
    return decrypt_submission(parts.envelope, parts.files, private_key)


def encryption_keys(central: Central, form_id: str) -> list[dict]:
    """The keys a form's submissions use: `[{id, public, managed, hint, createdAt}]`."""
    return central.get_json(
        central.path("projects/{project_id}/forms/{form_id}/submissions/keys", form_id=form_id)
    )


@dataclass(frozen=True)
class ManagedExport:
    """What Central decrypted with a managed key: the root table's rows and the media files."""

    rows: list[dict[str, str]] = field(repr=False)
    media: dict[str, bytes] = field(repr=False)


def read_export(form_id: str, body: bytes) -> ManagedExport:
    """A `submissions.csv.zip` body -> the root table's rows and the `media/` files."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        with archive.open(f"{form_id}.csv") as table:
            rows = list(csv.DictReader(io.TextIOWrapper(table, encoding="utf-8-sig")))
        media = {
            name[len("media/") :]: archive.read(name)
            for name in archive.namelist()
            if name.startswith("media/") and not name.endswith("/")
        }
    return ManagedExport(rows, media)


def managed_export(central: Central, form_id: str, passphrases: Mapping[int, str]) -> ManagedExport:
    """Ask Central to decrypt a managed-key form's submissions with the passphrases (by key
    id); a wrong passphrase is a CentralError naming the key, never the passphrase."""
    path = central.path(
        "projects/{project_id}/forms/{form_id}/submissions.csv.zip", form_id=form_id
    )
    data = {str(key_id): passphrase for key_id, passphrase in passphrases.items()}
    response = central.session.post(path, data=data)
    if response.status_code == 400:
        try:
            code = response.json().get("code")
        except ValueError:
            code = None
        if code == 400.12:
            raise CentralError(
                f"Central could not decrypt {form_id} with the passphrase given for key "
                f"{', '.join(map(str, passphrases))} (400.12).",
                hint="Check the passphrase (the key's hint is in `/submissions/keys`).",
                central_code=code,
            )
    central.check(response)
    return read_export(form_id, response.content)


def file_identities_from_central(
    central: Central,
    store,
    register,
    private_key,
    instance_ids,
    form_id: str = "identity_register",
) -> dict[str, int]:
    """Fetch, decrypt and file in the register the given encrypted submissions (the OData rows
    with `__system.status` `notDecrypted`); one that does not decrypt is flagged in the store
    (`decryption_flags`) and left in Central as it is. Counts by outcome."""
    from store.encrypted_submissions import file_identity, record_decryption
    from store.odk_decrypt import DecryptionError

    counts: dict[str, int] = {}
    for instance_id in instance_ids:
        try:
            decrypted = decrypt_from_central(central, form_id, instance_id, private_key)
        except DecryptionError as exc:
            record_decryption(store, form_id, instance_id, exc)
            outcome = exc.reason
        else:
            record_decryption(store, form_id, instance_id, None)
            outcome = file_identity(register, decrypted)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
