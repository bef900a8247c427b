"""Key pairs for encrypted forms."""

from __future__ import annotations

import base64
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from nigraan.errors import KeyFileError
from nigraan.keys import create_key_pair, public_key_for_form


def test_create_writes_a_protected_pair_and_never_overwrites(tmp_path):
    public = tmp_path / "keys" / "form-public.pem"
    private = create_key_pair(public, passphrase=b"correct horse")
    assert private == tmp_path / "keys" / "form-private.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(private.read_bytes(), password=b"correct horse")
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    with pytest.raises(KeyFileError, match="will not overwrite"):
        create_key_pair(public, passphrase=None)


def test_form_value_is_base64_der_of_the_public_key(tmp_path):
    public = tmp_path / "form-public.pem"
    private = create_key_pair(public, passphrase=None)
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    value = public_key_for_form(public)
    assert base64.b64decode(value) == der
    b64_file = tmp_path / "key.b64"
    b64_file.write_text(value + "\n")
    assert public_key_for_form(b64_file) == value


def test_unusable_keys_are_refused_with_a_hint(tmp_path):
    with pytest.raises(KeyFileError, match=r"No public key at .*nigraan keys create"):
        public_key_for_form(tmp_path / "missing.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(KeyFileError, match="is not an RSA public key"):
        public_key_for_form(garbage)
    small = tmp_path / "small.pem"
    small.write_bytes(
        rsa.generate_private_key(65537, 1024)  # noqa: S505 - the weak key the test refuses
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFileError, match="1024-bit key"):
        public_key_for_form(small)
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFileError, match="ODK needs RSA"):
        public_key_for_form(ec_key)


def test_the_settings_name_the_private_key_and_its_passphrase(tmp_path):
    from nigraan.config import load_config
    from nigraan.keys import form_private_key_from_config

    public = tmp_path / "keys" / "form-public.pem"
    create_key_pair(public, passphrase=b"s3cret")
    config = load_config(overrides={"instance_dir": tmp_path}, environ={})
    assert config["identity.private_key_file"] == tmp_path / "keys" / "form-private.pem"
    with pytest.raises(KeyFileError, match="protected by a passphrase"):
        form_private_key_from_config(config)
    asked = form_private_key_from_config(config, prompt=lambda text: "s3cret")
    assert asked.key_size == 2048
    config = load_config(
        overrides={"instance_dir": tmp_path}, environ={"NIGRAAN_IDENTITY_PASSPHRASE": "not-it-7q"}
    )
    with pytest.raises(KeyFileError, match="does not open") as failure:
        form_private_key_from_config(config, prompt=lambda text: "s3cret")
    assert "not-it-7q" not in str(failure.value) and "not-it-7q" not in repr(config)


def test_the_data_key_comes_from_the_environment_or_the_key_file(tmp_path):
    from nigraan.config import load_config
    from nigraan.data_key import DataKey, create_data_key_file, data_key_from_config, encode

    config = load_config(overrides={"instance_dir": tmp_path}, environ={})
    with pytest.raises(KeyFileError, match="No identity data key"):
        data_key_from_config(config)
    made = create_data_key_file(tmp_path / "keys" / "identity.key")
    assert data_key_from_config(config).key_id == made.key_id
    secret = encode(bytes(range(32)))
    config = load_config(
        overrides={"instance_dir": tmp_path}, environ={"NIGRAAN_IDENTITY_KEY": secret}
    )
    assert data_key_from_config(config).key_id == DataKey(bytes(range(32))).key_id
    assert secret not in repr(config)
