"""ODK decryption inside nigraan, against the submissions recorded from ODK Collect-style posts to
a real Central (e01 with a photo, e02 without) and the self-supplied key of `rec_encrypted`."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from nigraan.errors import KeyFileError
from nigraan.keys import create_key_pair, load_private_key, passphrase_from
from store.odk_decrypt import (
    DecryptionError,
    decrypt_submission,
    parse_envelope,
    signature_source,
    submission_ivs,
)


@pytest.fixture(scope="module")
def encrypted(central_dir):
    return central_dir / "submissions" / "encrypted"


@pytest.fixture(scope="module")
def private_key(recorded_private_key_file):
    return load_private_key(recorded_private_key_file, None)


def recorded(encrypted, label: str) -> tuple[bytes, dict[str, bytes]]:
    """The manifest and the `.enc` parts as they were POSTed (exchanges 099, 100)."""
    manifest = (encrypted / f"{label}.manifest.xml").read_bytes()
    files = {p.name[len(label) + 1 :]: p.read_bytes() for p in encrypted.glob(f"{label}.*.enc")}
    return manifest, files


@pytest.mark.parametrize("label", ["e01", "e02"])
def test_recorded_submissions_decrypt_to_the_known_plain_text(encrypted, private_key, label):
    manifest, files = recorded(encrypted, label)
    result = decrypt_submission(manifest, files, private_key)
    assert result.xml == (encrypted / f"{label}.plain.xml").read_bytes()
    assert result.form_id == "rec_encrypted" and result.version == "2026112801"


def test_the_photo_decrypts_to_the_jpeg_collect_sent(encrypted, private_key, central_dir):
    manifest, files = recorded(encrypted, "e01")
    result = decrypt_submission(manifest, files, private_key)
    photo = result.media["1764300100001.jpg"]
    assert photo.startswith(b"\xff\xd8\xff")  # a JPEG
    # The signature source Collect signed names the photo's plaintext md5.
    assert (
        "1764300100001.jpg::" + hashlib.md5(photo).hexdigest()
        in (encrypted / "e01.signature-source.txt").read_text()
    )


def test_the_signature_source_is_the_one_collect_signed(encrypted, private_key):
    manifest, files = recorded(encrypted, "e01")
    result = decrypt_submission(manifest, files, private_key)
    md5s = {
        "1764300100001.jpg.enc": hashlib.md5(result.media["1764300100001.jpg"]).hexdigest(),
        "submission.xml.enc": hashlib.md5(result.xml).hexdigest(),
    }
    source = signature_source(parse_envelope(manifest), md5s)
    assert source == (encrypted / "e01.signature-source.txt").read_bytes()


def test_the_files_downloaded_from_central_decrypt_too(central_dir, private_key):
    """Exchanges 212-215: the REST attachment listing and downloads of e01 are the bytes posted."""
    exchanges = central_dir / "exchanges"
    manifest = json.loads((exchanges / "213-enc-submission-xml.json").read_text())["response_body"]
    files = {
        "submission.xml.enc": (central_dir / "binaries/214-enc-attachment-download-xml-enc.bin"),
        "1764300100001.jpg.enc": (
            central_dir / "binaries/215-enc-attachment-download-photo-enc.bin"
        ),
    }
    result = decrypt_submission(
        manifest.encode(), {n: p.read_bytes() for n, p in files.items()}, private_key
    )
    assert b"<secret_name>Secret Person One</secret_name>" in result.xml


def test_ivs_step_one_byte_per_file_cumulatively():
    key = bytes(range(32))
    seed = bytearray(hashlib.md5(b"uuid:x" + key).digest())
    ivs = submission_ivs("uuid:x", key, 18)
    seed[0] = (seed[0] + 1) % 256
    assert ivs[0] == bytes(seed)
    seed[1] = (seed[1] + 1) % 256
    assert ivs[1] == bytes(seed)
    # file 16 steps byte 0 again, on top of file 0's step
    assert ivs[16][0] == (ivs[15][0] + 1) % 256 and ivs[16][1:] == ivs[15][1:]


def test_a_wrong_key_is_a_clear_error(encrypted):
    manifest, files = recorded(encrypted, "e01")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(DecryptionError) as caught:
        decrypt_submission(manifest, files, other)
    assert caught.value.reason == DecryptionError.WRONG_KEY
    assert "another key" in caught.value.message


def test_a_key_of_another_size_is_a_wrong_key(encrypted):
    manifest, files = recorded(encrypted, "e02")
    other = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    with pytest.raises(DecryptionError) as caught:
        decrypt_submission(manifest, files, other)
    assert caught.value.reason == DecryptionError.WRONG_KEY


@pytest.mark.parametrize("name", ["submission.xml.enc", "1764300100001.jpg.enc"])
def test_a_tampered_file_is_refused_and_not_returned(encrypted, private_key, name):
    manifest, files = recorded(encrypted, "e01")
    changed = bytearray(files[name])
    changed[5] ^= 0x01  # one bit in the first block: CFB decrypts the rest, padding survives
    tampered = {**files, name: bytes(changed)}
    with pytest.raises(DecryptionError) as caught:
        decrypt_submission(manifest, tampered, private_key)
    assert caught.value.reason == DecryptionError.TAMPERED
    assert files[name] != tampered[name]  # the caller still holds both, nothing was lost


def test_a_cut_file_is_tampered(encrypted, private_key):
    manifest, files = recorded(encrypted, "e01")
    cut = {**files, "submission.xml.enc": files["submission.xml.enc"][:-16]}
    with pytest.raises(DecryptionError) as caught:
        decrypt_submission(manifest, cut, private_key)
    assert caught.value.reason == DecryptionError.TAMPERED


def test_swapped_files_do_not_match_the_signature(encrypted, private_key):
    """e02's XML put in e01's envelope: each file is whole, but the signature says otherwise."""
    manifest, files = recorded(encrypted, "e01")
    _, other = recorded(encrypted, "e02")
    with pytest.raises(DecryptionError) as caught:
        decrypt_submission(
            manifest, {**files, "submission.xml.enc": other["submission.xml.enc"]}, private_key
        )
    assert caught.value.reason == DecryptionError.TAMPERED


def test_an_altered_envelope_does_not_match_the_signature(encrypted, private_key):
    manifest, files = recorded(encrypted, "e01")
    altered = manifest.replace(b'version="2026112801"', b'version="2026112802"')
    with pytest.raises(DecryptionError) as caught:
        decrypt_submission(altered, files, private_key)
    assert caught.value.reason == DecryptionError.TAMPERED


def test_a_missing_enc_part_is_named(encrypted, private_key):
    manifest, files = recorded(encrypted, "e01")
    del files["1764300100001.jpg.enc"]
    with pytest.raises(DecryptionError) as caught:
        decrypt_submission(manifest, files, private_key)
    assert caught.value.reason == DecryptionError.MISSING_FILE
    assert caught.value.file_name == "1764300100001.jpg.enc"
    assert "1764300100001.jpg.enc" in caught.value.message


def test_an_unsigned_submission_is_not_trusted(encrypted, private_key):
    manifest, files = recorded(encrypted, "e01")
    start = manifest.index(b"<base64EncryptedElementSignature>")
    end = manifest.index(b"</base64EncryptedElementSignature>") + len(
        b"</base64EncryptedElementSignature>"
    )
    with pytest.raises(DecryptionError) as caught:
        decrypt_submission(manifest[:start] + manifest[end:], files, private_key)
    assert caught.value.reason == DecryptionError.UNSIGNED


def test_a_plain_submission_is_not_an_envelope(encrypted, private_key):
    with pytest.raises(DecryptionError) as caught:
        decrypt_submission((encrypted / "e01.plain.xml").read_bytes(), {}, private_key)
    assert caught.value.reason == DecryptionError.BAD_ENVELOPE


def test_a_passphrase_protected_key_opens_with_its_passphrase(tmp_path):
    public = tmp_path / "form-public.pem"
    private = create_key_pair(public, passphrase=b"correct horse")
    key = load_private_key(private, passphrase_from("KEY_PASS", {"KEY_PASS": "correct horse"}))
    assert isinstance(key, rsa.RSAPrivateKey)


def test_a_wrong_passphrase_is_a_clear_error_without_the_passphrase(tmp_path):
    private = create_key_pair(tmp_path / "form-public.pem", passphrase=b"correct horse")
    with pytest.raises(KeyFileError) as caught:
        load_private_key(private, b"wrong battery")
    text = str(caught.value)
    assert "passphrase is wrong" in text
    assert "wrong battery" not in text and "correct horse" not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_protected_key_without_a_passphrase_says_how_to_give_it(tmp_path):
    private = create_key_pair(tmp_path / "form-public.pem", passphrase=b"correct horse")
    with pytest.raises(KeyFileError, match="--passphrase-env"):
        load_private_key(private, None)


def test_an_unset_passphrase_variable_is_named():
    with pytest.raises(KeyFileError, match="KEY_PASS"):
        passphrase_from("KEY_PASS", {})


def test_the_passphrase_is_asked_for_without_a_variable():
    asked = []
    assert passphrase_from(None, {}, prompt=lambda text: asked.append(text) or "typed") == b"typed"
    assert asked
