"""ODK encrypted submissions -> their plaintext XML and media (ODK.md 1.9; central README 32-34).

Pure: the envelope (the manifest Collect posts as `xml_submission_file`), its `.enc` files and
the form's RSA private key go in; the decrypted instance XML and media come out, or a
`DecryptionError` that says which of these went wrong: the wrong key, a file missing, a file
or envelope altered since it was encrypted. A submission whose element signature does not match
is never returned: the caller keeps it encrypted and flags it.

The signature is the MD5 of the submission's ids and each plaintext file's MD5, wrapped with
the form's public key. Anyone holding the public key (it is in the blank form) can make one, so
it proves the parts belong together and were not altered or swapped, not who sent them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # newer cryptography keeps CFB (ODK's content cipher) among its "decrepit" modes
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB
from lxml import etree

from nigraan.errors import NigraanError
from store.document import SubmissionError, from_openrosa_xml

# Collect's "RSA/NONE/OAEPWithSHA256AndMGF1Padding": SHA-256 for the hash *and* MGF1.
_OAEP = OAEP(mgf=MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_AES_KEY_BYTES = 32


class DecryptionError(NigraanError):
    """An encrypted submission cannot be decrypted, or its parts do not match its signature.

    Nothing is lost: the encrypted envelope and files stay as they were stored."""

    code = "submission.not_decrypted"
    status = 422

    WRONG_KEY = "wrong_key"  # the private key is not the one the submission was encrypted for
    MISSING_FILE = "missing_file"  # a `.enc` file the envelope names has not arrived
    TAMPERED = "tampered"  # a file or the envelope changed after encryption
    UNSIGNED = "unsigned"  # no element signature, so nothing can be checked
    BAD_ENVELOPE = "bad_envelope"  # not an encrypted submission as Collect writes one

    def __init__(
        self, message: str, *, reason: str, hint: str | None = None, file_name: str | None = None
    ):
        super().__init__(message, hint=hint)
        self.reason = reason
        self.file_name = file_name


@dataclass(frozen=True)
class Envelope:
    """The encrypted submission manifest: ids, the wrapped key, file names, the signature."""

    form_id: str
    version: str | None
    instance_id: str
    encrypted_key_b64: str  # as written in the envelope: the signature covers this text
    xml_file: str
    media_files: tuple[str, ...]
    signature: bytes | None

    @property
    def files(self) -> tuple[str, ...]:
        """Every `.enc` file in encryption order: media as listed, then the XML."""
        return (*self.media_files, self.xml_file)


@dataclass(frozen=True)
class DecryptedSubmission:
    """A submission whose signature matched: its instance XML and media, by plaintext name."""

    form_id: str
    version: str | None
    instance_id: str
    xml: bytes = field(repr=False)
    media: dict[str, bytes] = field(repr=False)


def _text(element) -> str:
    return "".join((element.text or "").split())


def parse_envelope(xml: bytes) -> Envelope:
    """The envelope's fields, once `store.document` has checked it is only an envelope."""
    try:
        doc = from_openrosa_xml(xml, with_data=False)
    except SubmissionError as exc:
        raise DecryptionError(
            exc.message, reason=DecryptionError.BAD_ENVELOPE, hint=exc.hint
        ) from exc
    if not doc.encrypted:
        raise DecryptionError(
            'This submission is not encrypted (its root has no encrypted="yes").',
            reason=DecryptionError.BAD_ENVELOPE,
            hint="Only encrypted submissions are decrypted; a plain one is read as it is.",
        )
    if not doc.instance_id:
        raise DecryptionError(
            "The encrypted submission has no instanceID, which its decryption needs.",
            reason=DecryptionError.BAD_ENVELOPE,
            hint="Send it again from ODK Collect.",
        )
    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)
    root = etree.fromstring(xml, parser)
    # By local name: the spec's namespace and Collect's differ (ODK.md 1.9).
    by_name = {etree.QName(child).localname: child for child in root}
    signature = None
    if "base64EncryptedElementSignature" in by_name:
        signature = base64.b64decode(_text(by_name["base64EncryptedElementSignature"]))
    return Envelope(
        form_id=doc.form_id,
        version=doc.form_version,
        instance_id=doc.instance_id,
        encrypted_key_b64=_text(by_name["base64EncryptedKey"]),
        xml_file=doc.files[-1],
        media_files=tuple(doc.files[:-1]),
        signature=signature,
    )


def _unwrap(private_key: rsa.RSAPrivateKey, wrapped: bytes, what: str) -> bytes:
    if len(wrapped) != private_key.key_size // 8:
        raise DecryptionError(
            f"The submission's {what} is {len(wrapped) * 8} bits, but the private key is a "
            f"{private_key.key_size}-bit key: it was encrypted for another key.",
            reason=DecryptionError.WRONG_KEY,
            hint="Use the private key that goes with the public key of this form version.",
        )
    try:
        return private_key.decrypt(wrapped, _OAEP)
    except ValueError as exc:
        raise DecryptionError(
            f"The private key does not open the submission's {what}: the submission was "
            "encrypted for another key (or its envelope was altered).",
            reason=DecryptionError.WRONG_KEY if what == "key" else DecryptionError.TAMPERED,
            hint="Use the private key that goes with the public key of this form version.",
        ) from exc


def submission_ivs(instance_id: str, aes_key: bytes, count: int) -> list[bytes]:
    """The IV of each file in encryption order: seed = MD5(instanceID || key); before file i,
    byte i % 16 of the seed goes up by one (wrapping), and the seed so far is the IV."""
    seed = bytearray(hashlib.md5(instance_id.encode("utf-8") + aes_key).digest())  # noqa: S324 - protocol hash (OpenRosa md5 / Central ids / ODK encryption), not for secrecy
    ivs = []
    for i in range(count):
        seed[i % 16] = (seed[i % 16] + 1) % 256
        ivs.append(bytes(seed))
    return ivs


def _decrypt_file(aes_key: bytes, iv: bytes, data: bytes, name: str) -> bytes:
    decryptor = Cipher(algorithms.AES(aes_key), CFB(iv)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise DecryptionError(
            f"{name} does not decrypt to a whole file (bad padding): it was altered or cut "
            "short after it was encrypted.",
            reason=DecryptionError.TAMPERED,
            file_name=name,
            hint="Ask for the submission to be sent again from the tablet; the stored copy "
            "stays encrypted.",
        ) from exc


def plaintext_name(enc_name: str) -> str:
    """`photo.jpg.enc` -> `photo.jpg`: the name the signature and the instance XML use."""
    return enc_name[: -len(".enc")] if enc_name.endswith(".enc") else enc_name


def signature_source(envelope: Envelope, md5_by_name: Mapping[str, str]) -> bytes:
    """The text whose MD5 Collect signs: ids, the wrapped key, then `<file>::<md5hex>` of each
    plaintext file in encryption order, every line ending in a newline."""
    lines = [envelope.form_id]
    if envelope.version:
        lines.append(envelope.version)
    lines += [envelope.encrypted_key_b64, envelope.instance_id]
    lines += [f"{plaintext_name(n)}::{md5_by_name[n]}" for n in envelope.files]
    return ("\n".join(lines) + "\n").encode("utf-8")


def decrypt_submission(
    envelope_xml: bytes, files: Mapping[str, bytes], private_key: rsa.RSAPrivateKey
) -> DecryptedSubmission:
    """Decrypt an encrypted submission and check its element signature.

    `files` maps the `.enc` names the envelope lists (`submission.xml.enc`, `photo.jpg.enc`)
    to their bytes. Raises DecryptionError (wrong key, missing file, tampered, unsigned)."""
    envelope = parse_envelope(envelope_xml)
    missing = [n for n in envelope.files if n not in files]
    if missing:
        raise DecryptionError(
            f"The encrypted submission {envelope.instance_id} names {', '.join(missing)}, "
            "which has not arrived.",
            reason=DecryptionError.MISSING_FILE,
            file_name=missing[0],
            hint="Wait for the tablet (or the sync) to send the rest of the submission; the "
            "parts that arrived are kept.",
        )
    if envelope.signature is None:
        raise DecryptionError(
            f"The encrypted submission {envelope.instance_id} has no element signature, so "
            "nigraan cannot check that its parts are the ones the tablet encrypted.",
            reason=DecryptionError.UNSIGNED,
            hint="ODK Collect always signs; send it again from ODK Collect.",
        )
    try:
        wrapped = base64.b64decode(envelope.encrypted_key_b64, validate=True)
    except binascii.Error as exc:
        raise DecryptionError(
            "The envelope's base64EncryptedKey is not base64.", reason=DecryptionError.BAD_ENVELOPE
        ) from exc
    aes_key = _unwrap(private_key, wrapped, "key")
    if len(aes_key) != _AES_KEY_BYTES:
        raise DecryptionError(
            f"The submission's key is {len(aes_key)} bytes, not an AES-256 key.",
            reason=DecryptionError.TAMPERED,
        )
    ivs = submission_ivs(envelope.instance_id, aes_key, len(envelope.files))
    plain = {
        name: _decrypt_file(aes_key, iv, files[name], name)
        for name, iv in zip(envelope.files, ivs, strict=True)
    }
    md5s = {name: hashlib.md5(content).hexdigest() for name, content in plain.items()}  # noqa: S324 - protocol hash (OpenRosa md5 / Central ids / ODK encryption), not for secrecy
    expected = hashlib.md5(signature_source(envelope, md5s)).digest()  # noqa: S324 - protocol hash (OpenRosa md5 / Central ids / ODK encryption), not for secrecy
    signed = _unwrap(private_key, envelope.signature, "element signature")
    if not hmac.compare_digest(signed, expected):
        raise DecryptionError(
            f"The encrypted submission {envelope.instance_id} does not match its signature: "
            "a file or the envelope was altered, swapped or cut after the tablet encrypted it. "
            "It stays encrypted and is not trusted.",
            reason=DecryptionError.TAMPERED,
            hint="Ask for the submission to be sent again from the tablet.",
        )
    xml = plain[envelope.xml_file]
    _check_instance(xml, envelope)
    media = {plaintext_name(n): plain[n] for n in envelope.media_files}
    return DecryptedSubmission(envelope.form_id, envelope.version, envelope.instance_id, xml, media)


def _check_instance(xml: bytes, envelope: Envelope) -> None:
    """The decrypted XML must be the envelope's submission (same form and instanceID)."""
    try:
        doc = from_openrosa_xml(xml, with_data=False)
    except SubmissionError as exc:
        raise DecryptionError(
            f"The decrypted {envelope.xml_file} is not a submission: {exc.message}",
            reason=DecryptionError.TAMPERED,
        ) from exc
    if doc.form_id != envelope.form_id or doc.instance_id != envelope.instance_id:
        raise DecryptionError(
            f"The decrypted submission is not the one its envelope names "
            f"({envelope.form_id} {envelope.instance_id}).",
            reason=DecryptionError.TAMPERED,
        )
