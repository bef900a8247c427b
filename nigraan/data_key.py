"""The identity register's data key: 32 random bytes that live outside the database.

It is read from a key file only its owner may read (mode 0600) or from an environment variable,
as URL-safe base64. From it come, by HKDF-SHA256 with distinct labels, the AES-256-GCM key that
encrypts every identity field and the HMAC-SHA256 key that turns a survivor code into the
register's lookup key, and a key id that says which key a row was written under (so a wrong key
is named as such rather than failing as "corrupt data"). The key itself is never printed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from nigraan.errors import KeyFileError

KEY_BYTES = 32
DEFAULT_ENV = "NIGRAAN_IDENTITY_KEY"
CREATE_HINT = (
    "Make one with nigraan.data_key.create_data_key_file(<instance>/keys/identity.key), or set "
    f"{DEFAULT_ENV} to 32 random bytes in URL-safe base64."
)


def _derive(secret: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)


class DataKey:
    """The register's keys, derived from one secret; repr and str never show them."""

    def __init__(self, secret: bytes):
        if len(secret) != KEY_BYTES:
            raise KeyFileError(
                f"The identity data key is {len(secret)} bytes; it must be {KEY_BYTES}.",
                hint=CREATE_HINT,
            )
        self._secret = secret  # only for handing the key to the store process (to_wire)
        self._aead = AESGCM(_derive(secret, b"nigraan identity-register field aes-256-gcm"))
        self._hmac_key = _derive(secret, b"nigraan identity-register survivor-code hmac")
        self.key_id = _derive(secret, b"nigraan identity-register key id")[:8].hex()

    def __repr__(self) -> str:
        return f"DataKey(id={self.key_id})"

    __str__ = __repr__

    def to_wire(self) -> bytes:
        """The secret, for the store process's pipe (in memory); never to be written."""
        return self._secret

    def __reduce__(self):  # a DataKey is never pickled by accident (a log, a queue, a file)
        raise TypeError("A DataKey is not pickled; send DataKey.to_wire() over a pipe.")

    def code_hmac(self, code: str) -> str:
        """The register's lookup key for a survivor code (hex HMAC-SHA256)."""
        return hmac.new(self._hmac_key, code.encode("utf-8"), hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        """nonce (12 bytes) || AES-GCM ciphertext and tag, bound to `context`."""
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def decrypt(self, sealed: bytes, context: bytes) -> bytes:
        """Raises cryptography's InvalidTag if the bytes or their context were altered."""
        return self._aead.decrypt(sealed[:12], sealed[12:], context)

    @classmethod
    def generate(cls) -> DataKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_text(cls, text: str, where: str) -> DataKey:
        try:
            secret = base64.urlsafe_b64decode(text.strip().encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise KeyFileError(
                f"{where} is not a data key (URL-safe base64 of {KEY_BYTES} bytes).",
                hint=CREATE_HINT,
            ) from None  # the text may be a key: it is not chained into the error
        return cls(secret)

    @classmethod
    def from_env(cls, name: str = DEFAULT_ENV, environ=None) -> DataKey:
        environ = os.environ if environ is None else environ
        value = environ.get(name)
        if not value:
            raise KeyFileError(f"The environment variable {name} is not set.", hint=CREATE_HINT)
        return cls.from_text(value, f"The environment variable {name}")

    @classmethod
    def from_file(cls, path: Path) -> DataKey:
        """Read a key file; one that others may read or write is refused, not used."""
        path = Path(path)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise KeyFileError(f"No identity data key at {path}.", hint=CREATE_HINT) from None
        if stat.S_IMODE(mode) & 0o077:
            raise KeyFileError(
                f"The identity data key {path} has mode {stat.S_IMODE(mode):04o}: others on "
                "this machine may read it.",
                hint=f"Make it owner-only (chmod 600 {path}) and consider the key exposed: "
                "rotate it.",
            )
        return cls.from_text(path.read_text("ascii", errors="replace"), str(path))


def encode(key_bytes: bytes) -> str:
    return base64.urlsafe_b64encode(key_bytes).decode("ascii")


def create_data_key_file(path: Path) -> DataKey:
    """Write a new random data key to `path`, created 0600; never overwrites a key."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(
            f"{path} already exists; nigraan will not overwrite a data key.",
            hint="The identities encrypted under it would be lost. To change keys, rotate.",
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(encode(secret) + "\n")
    os.chmod(path, 0o600)  # os.open's mode is filtered by the umask; 0600 exactly
    return DataKey(secret)


def data_key_from_config(config) -> DataKey:
    """The data key the settings name: `identity.key` (NIGRAAN_IDENTITY_KEY) when set, else the
    owner-only file at `identity.key_file`."""
    if config["identity.key"]:
        return DataKey.from_text(
            config["identity.key"], f"The setting identity.key ({DEFAULT_ENV})"
        )
    return DataKey.from_file(Path(config["identity.key_file"]))
