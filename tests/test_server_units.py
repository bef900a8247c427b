"""Fast tests of the server's pure parts: the OpenRosa documents, file names, Digest nonces,
Collect QR codes and the server settings."""

from __future__ import annotations

import json
import stat
import time

import pytest

from nigraan.collect_qr import collect_settings, decode_settings, encode_settings, write_qr
from nigraan.config import load_config
from nigraan.errors import ConfigError
from server.device_accounts import TOKEN_PATTERN, DeviceDigestAuth, digest_ha1
from server.openrosa import safe_file_name
from server.openrosa_xml import FormListEntry, MediaFile, form_list, manifest, openrosa_response


def recorded(central_dir, name):
    return json.loads((central_dir / "exchanges" / name).read_text(encoding="utf-8"))


def test_success_response_is_centrals_167_bytes(central_dir):
    body = recorded(central_dir, "050-openrosa-submit-v01-with-photo.json")["response_body"]
    assert openrosa_response("full submission upload was successful!", error=False) == body
    assert len(body.encode()) == 167


def test_error_message_escapes_like_central(central_dir):
    body = recorded(central_dir, "054-openrosa-wrong-version.json")["response_body"]
    ours = openrosa_response(
        "The form version specified in this submission '1999' does not exist.", error=True
    )
    assert ours == body
    assert openrosa_response('<a & "b">', error=True).count("&lt;a &amp; &quot;b&quot;&gt;") == 1


def test_form_list_and_manifest_layout(central_dir):
    listed = recorded(central_dir, "042-openrosa-formlist-formid.json")["response_body"]
    base = "http://127.0.0.1:8383/v1/key/<app-user-key>/projects/1/forms"
    entry = FormListEntry(
        "rec_visit",
        "Recording visit form",
        "2026112801",
        "1b633da9bde0dc361c8b960c68de8dc2",
        f"{base}/rec_visit.xml",
        f"{base}/rec_visit/manifest",
    )
    assert form_list([entry]).replace("&lt;", "<").replace("&gt;", ">") == listed
    empty = recorded(central_dir, "279-err-appuser-other-form-403.json")["response_body"]
    assert form_list([]) == empty
    media = recorded(central_dir, "044-openrosa-manifest-rec_visit.json")["response_body"]
    ours = manifest(
        [
            MediaFile(
                "logo.png",
                "24513b302514539f18f023152818efed",
                f"{base}/rec_visit/attachments/logo.png",
            )
        ]
    )
    assert ours.replace("&lt;", "<").replace("&gt;", ">") == media


@pytest.mark.parametrize(
    "name", ["1764300000001.jpg", "photo (1).jpg", "صورة.jpg", "a.b.c", "ص" * 251 + ".jpg"]
)
def test_safe_file_names(name):
    assert safe_file_name(name)


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x.jpg", "a/b.jpg", "a\\b.jpg", "x\x00.jpg", "x\n.jpg", "a" * 256]
)
def test_unsafe_file_names(name):
    assert not safe_file_name(name)


def test_digest_nonces_are_signed_and_expire():
    now = [time.time()]
    auth = DeviceDigestAuth(lambda: None, clock=lambda: now[0])
    nonce = auth._new_nonce()
    assert auth._nonce_ok(nonce)
    assert not auth._nonce_ok(nonce[:-1] + ("0" if nonce[-1] != "0" else "1"))
    assert not auth._nonce_ok("deadbeef" + "0" * 32)
    assert not auth._nonce_ok(DeviceDigestAuth(lambda: None)._new_nonce())  # another process
    now[0] += 3601
    assert not auth._nonce_ok(nonce)


def test_digest_ha1_is_rfc2617():
    # RFC 2617 section 3.5's example user, realm and password
    assert digest_ha1("Mufasa", "Circle Of Life", realm="testrealm@host.com") == (
        "939e7578ed9e3c518a452acee763bce9"
    )


def test_token_shape_is_centrals():
    assert TOKEN_PATTERN.fullmatch("a" * 64)
    assert TOKEN_PATTERN.fullmatch("A1!$" * 16)
    assert not TOKEN_PATTERN.fullmatch("a" * 63)
    assert not TOKEN_PATTERN.fullmatch("a" * 63 + "/")


def test_collect_settings_are_centrals_shape():
    settings = collect_settings("http://10.0.0.2:8080/v1/key/abc/projects/1", "nigraan")
    assert settings == {
        "general": {
            "server_url": "http://10.0.0.2:8080/v1/key/abc/projects/1",
            "form_update_mode": "match_exactly",
            "autosend": "wifi_and_cellular",
        },
        "project": {"name": "nigraan"},
        "admin": {"automatic_update": True},
    }
    digest = collect_settings("http://10.0.0.2:8080", "نگران", username="tab", password="pw")
    assert decode_settings(encode_settings(digest)) == digest


def test_qr_png_scans_back_to_the_settings_and_is_private(tmp_path):
    import zxingcpp
    from PIL import Image

    settings = collect_settings("http://127.0.0.1:8080/v1/key/" + "k" * 64 + "/projects/1", "x")
    drawing = write_qr(settings, tmp_path / "qr" / "tab.png")
    path = tmp_path / "qr" / "tab.png"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [code] = zxingcpp.read_barcodes(Image.open(path))
    assert decode_settings(code.text) == settings
    lines = drawing.splitlines()
    assert len(lines) > 10 and len({len(line) for line in lines}) == 1
    assert set("".join(lines)) <= set(" ▀▄█")


def test_server_settings_are_checked_at_start():
    config = load_config(environ={"NIGRAAN_SERVER_PORT": "9000", "NIGRAAN_SERVER_HOST": "0.0.0.0"})
    assert config["server.port"] == 9000 and config["server.host"] == "0.0.0.0"
    for name, value, complaint in (
        ("NIGRAAN_SERVER_PORT", "70000", "from 1 to 65535"),
        ("NIGRAAN_SERVER_PORT", "http", "should be a int"),
        ("NIGRAAN_SERVER_THREADS", "0", "from 1 to 256"),
        ("NIGRAAN_SERVER_MAX_SUBMISSION_BYTES", "10", "from 10000"),
        ("NIGRAAN_SERVER_PUBLIC_URL", "192.168.1.10:8080", "http:// or https://"),
        ("NIGRAAN_SERVER_MAX_SUBMISSION_ELEMENTS", "10", "from 1000"),
    ):
        with pytest.raises(ConfigError, match=complaint):
            load_config(environ={name: value})


def test_reading_only_the_envelope_gives_the_same_ids(central_dir):
    from store.document import from_openrosa_xml

    for name in ("v01.xml", "v05-edit1.xml", "encrypted/e01.manifest.xml", "no-instanceid.xml"):
        xml = (central_dir / "submissions" / name).read_bytes()
        full, envelope = from_openrosa_xml(xml), from_openrosa_xml(xml, with_data=False)
        for attribute in ("form_id", "form_version", "instance_id", "deprecated_id", "encrypted"):
            assert getattr(envelope, attribute) == getattr(full, attribute), (name, attribute)
        assert set(envelope.data) <= {"meta"}  # the answers were not read
        assert name.startswith(("encrypted", "no-")) or len(full.data) > 1


def test_nonce_counts_take_each_count_once():
    from server.device_accounts import NonceCounts

    counts, now = NonceCounts(), time.time()
    issued = int(now)
    assert counts.use("n1", issued, 1, now)
    assert not counts.use("n1", issued, 1, now)  # a replay
    assert counts.use("n1", issued, 3, now)
    assert counts.use("n1", issued, 2, now)  # late, but never used: an upload finishing late
    assert not counts.use("n1", issued, 2, now)
    assert not counts.use("n1", issued, 0, now)
    assert counts.use("n1", issued, 4 + NonceCounts.WINDOW, now)
    assert not counts.use("n1", issued, 4, now)  # older than the window
    assert counts.use("n2", issued, 1, now)  # counts are per nonce


def test_nonce_counts_memory_is_bounded_and_forgotten_nonces_are_refused(monkeypatch):
    from server.device_accounts import NonceCounts

    monkeypatch.setattr(NonceCounts, "MAX_NONCES", 100)
    counts, now = NonceCounts(), time.time()
    for i in range(1_000):
        assert counts.use(f"n{i}", int(now) - 1_000 + i, 1, now)
        assert len(counts) <= 100
    assert not counts.use("n0", int(now) - 1_000, 2, now)  # forgotten: refused, not re-taken
    assert counts.use("n999", int(now) - 1, 2, now)  # a recent one is still tracked
    assert not counts.use("n999", int(now) - 1, 2, now)
    old = NonceCounts()
    assert old.use("x", int(now) - NonceCounts.FORGET_AFTER - 10, 1, now)
    for i in range(NonceCounts.MAX_NONCES - 1):
        assert old.use(f"y{i}", int(now) - i % 1_000, 1, now)
    assert old.use("z", int(now), 1, now)  # full: the expired one and the older half went
    assert len(old) <= NonceCounts.MAX_NONCES // 2 + 1
    assert not old.use("x", int(now) - NonceCounts.FORGET_AFTER - 10, 2, now)
    assert not old.use("y0", int(now), 1, now)  # a recent one is still tracked: a replay
    assert not old.use("y999", int(now) - 999, 2, now)  # an older one was forgotten: refused


def test_store_failures_come_back_as_over_the_pipe():
    """StoreProcess and InProcessWriter raise the same exceptions for the store's replies."""
    from nigraan.errors import NigraanError
    from nigraan.logs import STORE_PROCESS
    from server.store_process import StoreFailure, StoreProcessError, failure_from_reply

    refused = failure_from_reply(("Form x changed.", "Give it a new version."))
    assert type(refused) is NigraanError
    assert (refused.message, refused.hint) == ("Form x changed.", "Give it a new version.")
    failed = failure_from_reply({"cause": "disk_full", "message": "the disk is full"})
    assert isinstance(failed, StoreFailure)
    assert (failed.cause_kind, failed.message) == ("disk_full", "the disk is full")
    gone = failure_from_reply("the store process stopped")
    assert type(gone) is StoreProcessError and gone.cause_kind == STORE_PROCESS
