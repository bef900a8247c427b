"""RSA key pairs for ODK form encryption.

An encrypted form carries the base64 DER SubjectPublicKeyInfo of an RSA key in its
`public_key` setting; devices encrypt each submission with it. Only the public key is needed
to build forms. The private key decrypts; it belongs with whoever may read identities.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nigraan.errors import KeyFileError

MIN_KEY_BITS = 2048
CREATE_HINT = (
    "Run `nigraan keys create`, or set NIGRAAN_FORMS_PUBLIC_KEY_FILE to an RSA public key."
)


def private_key_path_for(public_path: Path) -> Path:
    """Where `keys create` puts the private key that goes with a public key file."""
    name = public_path.name.replace("public", "private")
    if name == public_path.name:
        name = public_path.stem + "-private" + public_path.suffix
    return public_path.with_name(name)


def create_key_pair(public_path: Path, passphrase: bytes | None, bits: int = 2048) -> Path:
    """Write a new RSA key pair; returns the private key's path. Never overwrites."""
    private_path = private_key_path_for(public_path)
    for path in (public_path, private_path):
        if path.exists():
            raise KeyFileError(
                f"{path} already exists; nigraan will not overwrite a key.",
                hint="Submissions encrypted with it would become unreadable. Move it away first.",
            )
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path


def public_key_for_form(path: Path) -> str:
    """The XLSForm `public_key` value (base64 DER SubjectPublicKeyInfo) of a key file."""
    if not path.is_file():
        raise KeyFileError(f"No public key at {path}.", hint=CREATE_HINT)
    data = path.read_bytes().strip()
    try:
        if data.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(base64.b64decode(data, validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise KeyFileError(
            f"{path} is not an RSA public key (PEM, or base64 DER): {exc}.", hint=CREATE_HINT
        ) from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}; ODK needs RSA.", hint=CREATE_HINT)
    if key.key_size < MIN_KEY_BITS:
        raise KeyFileError(
            f"{path} is a {key.key_size}-bit key; use at least {MIN_KEY_BITS} bits.",
            hint=CREATE_HINT,
        )
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def passphrase_from(env_var: str | None, environ=None, prompt=None) -> bytes | None:
    """The private key's passphrase: from the environment variable named `env_var`, else from
    `prompt` (e.g. click.prompt with hide_input), else None. Never written or logged."""
    environ = os.environ if environ is None else environ
    if env_var:
        value = environ.get(env_var)
        if not value:
            raise KeyFileError(
                f"The environment variable {env_var} that should hold the private key's "
                "passphrase is not set or empty.",
                hint=f"Set {env_var}, or leave out --passphrase-env to be asked for it.",
            )
        return value.encode("utf-8")
    if prompt is not None:
        return prompt("Passphrase of the form's private key").encode("utf-8")
    return None


def load_private_key(path: Path, passphrase: bytes | None) -> rsa.RSAPrivateKey:
    """The RSA private key that decrypts submissions; errors never carry the passphrase."""
    if not path.is_file():
        raise KeyFileError(
            f"No private key at {path}.",
            hint="Decrypting needs the private key made with the form's public key "
            "(`nigraan keys create` puts it beside the public key).",
        )
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, passphrase)
    except TypeError:
        # cryptography says "Password was not given but private key is encrypted" or the
        # reverse; which one is all that is said, never the passphrase.
        if passphrase is None:
            raise KeyFileError(
                f"The private key {path} is protected by a passphrase.",
                hint="Give it with --passphrase-env VAR (the variable that holds it) "
                "or at the prompt.",
            ) from None
        key = serialization.load_pem_private_key(data, None)
    except ValueError:
        # Wrong passphrase and damaged file look alike to OpenSSL; the cause is not chained,
        # so no library text travels with the error.
        raise KeyFileError(
            f"The private key {path} does not open: the passphrase is wrong or the file is "
            "not a PEM private key.",
            hint="Check the passphrase (it is case-sensitive) and that this is the key file.",
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}; ODK needs RSA.")
    return key


def form_private_key_from_config(config, prompt=None) -> rsa.RSAPrivateKey:
    """The encrypted forms' private key the settings name (`identity.private_key_file`), opened
    with `identity.passphrase` (NIGRAAN_IDENTITY_PASSPHRASE) when set; else, for a protected
    key, with what `prompt` returns (None: the KeyFileError saying a passphrase is needed)."""
    path = Path(config["identity.private_key_file"])
    passphrase = config["identity.passphrase"].encode("utf-8") or None
    try:
        return load_private_key(path, passphrase)
    except KeyFileError:
        if passphrase is not None or prompt is None or b"ENCRYPTED" not in path.read_bytes():
            raise
    return load_private_key(path, passphrase_from(None, prompt=prompt))
