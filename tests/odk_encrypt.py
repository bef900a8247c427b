"""Encrypt a submission as ODK Collect does (ODK.md 1.9), for tests of forms with a test key.

The decryptor is checked against submissions Collect-style clients posted to a real Central
(tests/test_odk_decrypt.py); this encryptor is checked by decrypting its output with it.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from lxml import etree

from store.odk_decrypt import submission_ivs

OAEP_SHA256 = OAEP(mgf=MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), CFB(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def encrypt_submission(
    public_key: rsa.RSAPublicKey, xml: bytes, media: dict[str, bytes] | None = None
) -> tuple[bytes, dict[str, bytes]]:
    """(the envelope Collect posts as xml_submission_file, {`.enc` name: bytes})."""
    root = etree.fromstring(xml)
    form_id, version = root.get("id"), root.get("version")
    instance_id = root.find("meta/instanceID").text
    media = media or {}
    aes_key = os.urandom(32)
    names = [*media, "submission.xml"]
    ivs = submission_ivs(instance_id, aes_key, len(names))
    plain = {**media, "submission.xml": xml}
    files = {f"{n}.enc": _encrypt(aes_key, iv, plain[n]) for n, iv in zip(names, ivs, strict=True)}
    wrapped = base64.b64encode(public_key.encrypt(aes_key, OAEP_SHA256)).decode()
    lines = [form_id, *([version] if version else []), wrapped, instance_id]
    lines += [f"{n}::{hashlib.md5(plain[n]).hexdigest()}" for n in names]
    digest = hashlib.md5(("\n".join(lines) + "\n").encode()).digest()
    signature = base64.b64encode(public_key.encrypt(digest, OAEP_SHA256)).decode()
    media_xml = "".join(f"<media><file>{n}.enc</file></media>" for n in media)
    version_attr = f' version="{version}"' if version else ""
    envelope = (
        f"<?xml version='1.0' ?><data xmlns=\"http://opendatakit.org/submissions\" "
        f'encrypted="yes" id="{form_id}"{version_attr}>'
        f"<base64EncryptedKey>{wrapped}</base64EncryptedKey>"
        f"<encryptedXmlFile>submission.xml.enc</encryptedXmlFile>{media_xml}"
        f"<base64EncryptedElementSignature>{signature}</base64EncryptedElementSignature>"
        f'<meta xmlns="http://openrosa.org/xforms"><instanceID>{instance_id}</instanceID></meta>'
        f"</data>"
    )
    return envelope.encode(), files
