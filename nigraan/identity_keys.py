"""The two keys that let nigraan decrypt identity submissions by itself, loaded once at start.

`nigraan serve` (and `nigraan sync`) need the identity register's data key (`identity.key` or
`identity.key_file`) and, for envelopes encrypted with a self-supplied key, the encrypted forms'
RSA private key (`identity.private_key_file`, its passphrase from `identity.passphrase` /
NIGRAAN_IDENTITY_PASSPHRASE or asked for at a terminal). A Central-managed key's private half
never leaves Central: with the data key alone, the sync files those identities from Central's
decrypting export (opened with identity.passphrase). When a key is missing or does not open,
nigraan still serves and syncs: what it cannot decrypt is stored as it arrives and stays
encrypted until `nigraan identity import` is run with the key. One warning says so; it never
carries the passphrase or a key.

The store process is a separate interpreter: the keys travel to it over the existing pipe, in
memory, as unencrypted PKCS#8 DER and the data key's 32 bytes (`to_wire` / `from_wire`), never
through a file, an argument or the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nigraan.data_key import DataKey, data_key_from_config
from nigraan.errors import NigraanError
from nigraan.keys import form_private_key_from_config

STAYS_ENCRYPTED = (
    "Identity submissions are stored encrypted and stay so until `nigraan identity import` is "
    "run with the key"
)
PROMPT_TRIES = 3


@dataclass(frozen=True)
class IdentityKeys:
    """The form's private key (None: not loaded, only Central-managed keys can be read) and the
    register's data key; repr shows neither."""

    private_key: rsa.RSAPrivateKey | None = field(repr=False)
    data_key: DataKey

    @property
    def decrypts_here(self) -> bool:
        """Can nigraan open envelopes itself (a self-supplied key is loaded)?"""
        return self.private_key is not None

    def to_wire(self) -> tuple[bytes, bytes]:
        """Plain bytes for the store process's pipe (in memory only)."""
        if self.private_key is None:
            return b"", self.data_key.to_wire()
        der = self.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return der, self.data_key.to_wire()

    @classmethod
    def from_wire(cls, wire: tuple[bytes, bytes]) -> IdentityKeys:
        der, secret = wire
        if not der:
            return cls(None, DataKey(secret))
        key = serialization.load_der_private_key(der, None)
        if not isinstance(key, rsa.RSAPrivateKey):  # pragma: no cover - to_wire sends RSA only
            raise TypeError("not an RSA key")
        return cls(key, DataKey(secret))


def load_identity_keys(
    config, prompt: Callable[[str], str] | None, log: logging.Logger
) -> IdentityKeys | None:
    """The keys the settings name, or None after one warning saying why and what follows;
    with the data key but no private key, keys whose `private_key` is None (after the warning),
    so identities under a Central-managed key are still filed by the sync.

    `prompt` (click.prompt with hide_input, when stdin is a terminal) is asked for the private
    key's passphrase when the key is protected and identity.passphrase is empty; a wrong one
    is asked again, up to PROMPT_TRIES times."""
    try:
        data_key = data_key_from_config(config)
    except NigraanError as exc:  # its message names the file or setting, never the key
        log.warning("No identity data key (%s). %s.", exc.message, STAYS_ENCRYPTED)
        return None
    if not Path(config["identity.private_key_file"]).is_file():
        prompt = None  # nothing to ask a passphrase for: the missing file is what is said
    tries = PROMPT_TRIES if prompt is not None and not config["identity.passphrase"] else 1
    for attempt in range(1, tries + 1):
        try:
            private_key = form_private_key_from_config(config, prompt)
        except NigraanError as exc:  # names the key file; the passphrase is never in it
            if attempt < tries and "does not open" in exc.message:
                log.warning("%s Try again (%d of %d).", exc.message, attempt + 1, tries)
                continue
            how = (
                "Set NIGRAAN_IDENTITY_PASSPHRASE, or start `nigraan serve` at a terminal to be "
                "asked for it."
                if "protected by a passphrase" in exc.message
                else exc.hint or ""
            )
            log.warning(
                "The encrypted forms' private key is not loaded: %s %s %s (identities under a "
                "Central-managed key are still filed by the sync, with identity.passphrase).",
                exc.message,
                how,
                STAYS_ENCRYPTED,
            )
            return IdentityKeys(None, data_key)
        return IdentityKeys(private_key, data_key)
    return None  # pragma: no cover - the loop returns
