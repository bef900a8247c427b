"""The OpenRosa server: device accounts (token URLs and Digest), split uploads, hostile input,
form access and rebuilt forms. Most tests talk to the app in this process (`server`: create_app
with an in-process writer, through test_client, on SQLite and PostgreSQL); the Digest login,
chunked framing and a client stopping half-way go over real HTTP to `nigraan serve`
(`wire_server`). The recorded exchanges are replayed in test_openrosa_replay.py; the crash
test is in test_openrosa_crash.py; slow clients and Digest replays in test_openrosa_network.py."""

from __future__ import annotations

import html
import re
import socket
import uuid

import pytest
import requests

from tests.openrosa_client import CollectClient

VERSION = "2026112801"


def visit_xml(
    instance_id: str,
    photo: str | None = None,
    *,
    deprecated: str | None = None,
    version: str = VERSION,
    note: str = "",
) -> bytes:
    """A small rec_visit instance, shaped like the recorded ones."""
    photo_el = f"<photo>{photo}</photo>" if photo else "<photo/>"
    dep = f"<deprecatedID>{deprecated}</deprecatedID>" if deprecated else ""
    return (
        f'<?xml version="1.0"?><data xmlns:jr="http://openrosa.org/javarosa" '
        f'xmlns:orx="http://openrosa.org/xforms" id="rec_visit" version="{version}">'
        f"<visit_date>2026-11-20</visit_date><station>Lahore {note}</station>{photo_el}"
        f"<meta><instanceID>{instance_id}</instanceID>{dep}</meta></data>"
    ).encode()


def new_id() -> str:
    return f"uuid:{uuid.uuid4()}"


def message(response: requests.Response) -> str:
    found = re.search(r"<message nature=\"(error)?\">(.*)</message>", response.text, re.S)
    assert found, response.text
    return html.unescape(found.group(2))


@pytest.fixture
def server(serve_in_process):
    """The app in this process (create_app with an in-process writer), SQLite and PostgreSQL."""
    return serve_in_process()


@pytest.fixture
def wire_server(serve_openrosa, tmp_path):
    """A real `nigraan serve`, for what only a connection shows (Digest login, chunked
    framing, a client stopping half-way)."""
    return serve_openrosa(f"sqlite:///{tmp_path / 'store.sqlite3'}")


# ------------------------------------------------------------------------- device accounts


def test_digest_is_challenged_then_accepted(wire_server):
    server = wire_server
    bare = requests.get(server.base + "/formList", headers={"X-OpenRosa-Version": "1.0"})
    assert bare.status_code == 401
    challenge = bare.headers["WWW-Authenticate"]
    assert challenge.startswith("Digest ")
    for part in (
        'realm="nigraan"',
        'qop="auth"',
        'algorithm="MD5"',
        'domain="/"',
        "nonce=",
        "opaque=",
    ):
        assert part in challenge
    assert "X-OpenRosa-Version" not in bare.headers  # like Central's auth failures

    device = CollectClient(server.base, username=server.username, password=server.password)
    listed = device.get("/formList")
    assert listed.status_code == 200
    assert re.findall(r"<formID>(.*?)</formID>", listed.text) == [
        "rec_encrypted",
        "rec_entity",
        "rec_visit",
    ]
    # Central's URL shape with Digest works too, and so does a submission
    assert device.get("/v1/projects/1/formList").status_code == 200
    assert device.send(visit_xml(new_id())).status_code == 201


def test_wrong_password_and_unknown_user_are_refused(server):
    for username, password in ((server.username, "not-the-password"), ("nobody", "x")):
        device = server.collect(server.base, username=username, password=password)
        assert device.get("/formList").status_code == 401
        assert device.head_submission().status_code == 401


def test_a_forged_nonce_is_refused(server):
    device = server.collect(server.base, username=server.username, password=server.password)
    assert device.get("/formList").status_code == 200
    header = device.session.auth._thread_local.chal  # the challenge requests answered
    header["nonce"] = "0" * 40
    forged = server.http.get(
        server.base + "/formList",
        headers={
            "X-OpenRosa-Version": "1.0",
            "Authorization": device.session.auth.build_digest_header(
                "GET", server.base + "/formList"
            ),
        },
    )
    assert forged.status_code == 401


def test_a_digest_answer_for_one_url_does_not_open_another(server):
    device = server.collect(server.base, username=server.username, password=server.password)
    assert device.get("/formList").status_code == 200
    answer = device.session.auth.build_digest_header("GET", server.base + "/formList")
    replayed = server.http.get(
        server.base + "/forms/rec_visit.xml",
        headers={
            "X-OpenRosa-Version": "1.0",
            "Authorization": answer,
        },
    )
    assert replayed.status_code == 401


def test_an_expired_nonce_gets_a_stale_challenge_and_collect_goes_on(server):
    """A nonce older than NONCE_LIFETIME is refused with stale=TRUE (no password prompt); the
    device answers the fresh challenge at once. The app's clock is moved, not waited out."""
    from server.device_accounts import NONCE_LIFETIME

    device = server.collect(server.base, username=server.username, password=server.password)
    assert device.get("/formList").status_code == 200
    server.advance(NONCE_LIFETIME + 1)
    answer = device.session.auth.build_digest_header("GET", server.base + "/formList")
    expired = server.http.get(
        server.base + "/formList",
        headers={
            "X-OpenRosa-Version": "1.0",
            "Authorization": answer,
        },
    )
    assert expired.status_code == 401
    assert "stale=TRUE" in expired.headers["WWW-Authenticate"]
    again = device.get("/formList")
    assert again.status_code == 200
    assert [r.status_code for r in again.history] == [401]  # one more challenge, answered


def test_revoked_account_is_cut_off(server, store_of, runner):
    token_device = server.collect(server.token_url)
    digest_device = server.collect(server.base, username=server.username, password=server.password)
    assert token_device.get("/formList").status_code == 200
    assert digest_device.get("/formList").status_code == 200
    store_of(server).app_users.revoke(server.username)
    server.advance(2.1)  # token lookups are remembered for 2 seconds
    refused = token_device.get("/formList")
    assert refused.status_code == 403
    assert message(refused).startswith("The authentication you provided does not have rights")
    assert digest_device.get("/formList").status_code == 401
    assert token_device.send(visit_xml(new_id())).status_code == 403


def test_malformed_and_unknown_tokens(server):
    headers = {"X-OpenRosa-Version": "1.0"}
    malformed = server.http.get(server.base + "/v1/key/short/projects/1/formList", headers=headers)
    assert malformed.status_code == 401
    assert "WWW-Authenticate" not in malformed.headers  # a token URL never asks for a password
    unknown = server.http.get(
        f"{server.base}/v1/key/{'A' * 64}/projects/1/formList", headers=headers
    )
    assert unknown.status_code == 403


def test_an_account_sees_and_sends_only_its_forms(server, store_of):
    from server.device_accounts import create_account

    account = create_account(store_of(server).app_users, "visits-only", ["rec_visit"])
    device = server.collect(account.token_url(server.base))
    listed = device.get("/formList")
    assert re.findall(r"<formID>(.*?)</formID>", listed.text) == ["rec_visit"]
    assert device.get("/forms/rec_encrypted.xml").status_code == 403
    envelope = (server.central_dir / "submissions/encrypted/e02.manifest.xml").read_bytes()
    refused = device.post_submission(
        envelope, [("submission.xml.enc", b"x" * 64, "application/octet-stream")]
    )
    assert refused.status_code == 403
    assert "may not send or download the form 'rec_encrypted'" in message(refused)
    assert device.send(visit_xml(new_id())).status_code == 201


def test_short_token_prefix_and_form_id_filter(server):
    token = server.account.token
    device = server.collect(f"{server.base}/key/{token}")
    listed = device.get("/formList", formID="rec_visit")
    assert listed.status_code == 200
    assert re.findall(r"<formID>(.*?)</formID>", listed.text) == ["rec_visit"]
    assert f"{server.base}/key/{token}/forms/rec_visit.xml" in listed.text
    assert (
        device.get("/forms/rec_visit.xml").content
        == (server.central_dir / "forms/rec_visit.xml").read_bytes()
    )


def test_other_project_and_unknown_paths(server):
    device = server.collect(server.token_url.replace("/projects/1", "/projects/2"))
    listed = device.get("/formList")
    assert listed.status_code == 200 and "<xform>" not in listed.text
    assert device.head_submission().status_code == 404
    unknown = server.collect(server.token_url).get("/no/such/thing")
    assert unknown.status_code == 404
    assert "<OpenRosaResponse" in unknown.text


# ------------------------------------------------------------------------- submissions


def test_split_upload_fills_in_the_attachments(serve_in_process, store_of):
    server = serve_in_process(server__max_submission_bytes=20_000)
    device = server.collect(server.token_url)
    head = device.head_submission()
    assert head.status_code == 204
    assert head.headers["X-OpenRosa-Accept-Content-Length"] == "20000"
    instance = new_id()
    photo = bytes(range(256)) * 50  # 12.8 kB: the XML and the photo fit, a second one would not
    xml = visit_xml(instance, "a.jpg")
    first = device.post_submission(xml, incomplete=True)
    assert first.status_code == 201
    store = store_of(server)
    assert [(a["name"], a["exists"]) for a in store.attachments("rec_visit", instance)] == [
        ("a.jpg", False)
    ]
    second = device.post_submission(xml, [("a.jpg", photo, "image/jpeg")])
    assert second.status_code == 201
    assert store.attachment("rec_visit", instance, "a.jpg") == photo
    # the whole thing through the Collect-like client, which splits by the advertised size
    other = new_id()
    assert (
        device.send(visit_xml(other, "b.jpg"), [("b.jpg", photo, "image/jpeg")]).status_code == 201
    )
    assert store.attachment("rec_visit", other, "b.jpg") == photo


def test_too_large_is_413_with_a_message_and_the_server_goes_on(serve_in_process):
    server = serve_in_process(server__max_submission_bytes=20_000)
    device = server.collect(server.token_url)
    refused = device.post_submission(
        visit_xml(new_id(), "big.jpg"), [("big.jpg", b"x" * 30_000, "image/jpeg")]
    )
    assert refused.status_code == 413
    assert "larger than the server accepts" in message(refused)
    assert device.head_submission().status_code == 204
    assert device.send(visit_xml(new_id())).status_code == 201


def test_device_and_account_are_recorded(server, store_of):
    device = server.collect(server.token_url, device_id="collect:AbCdEfGhIjKlMnOp")
    instance = new_id()
    assert device.send(visit_xml(instance)).status_code == 201
    row = store_of(server).submission("rec_visit", instance)
    assert row["device_id"] == "collect:AbCdEfGhIjKlMnOp"
    assert row["submitter_name"] == server.username
    assert row["source"] == "openrosa"


def test_each_version_records_who_sent_it(server, store_of):
    """An edit sent by another device account names its editor; the first sender stays."""
    from server.device_accounts import create_account

    editor = create_account(store_of(server).app_users, "editor-tab", ["rec_visit"])
    first, edit = new_id(), new_id()
    author_device = server.collect(server.token_url, device_id="collect:AuthorAuthorAuth")
    assert author_device.send(visit_xml(first)).status_code == 201
    editor_device = server.collect(editor.token_url(server.base), device_id="collect:Editor0Editor")
    assert editor_device.send(visit_xml(edit, deprecated=first, note="edited")).status_code == 201
    store = store_of(server)
    versions = store.versions("rec_visit", first)
    assert [(v["instance_id"], v["submitter_name"], v["device_id"]) for v in versions] == [
        (first, server.username, "collect:AuthorAuthorAuth"),
        (edit, "editor-tab", "collect:Editor0Editor"),
    ]
    assert store.submission("rec_visit", first)["submitter_name"] == server.username


def test_chunked_upload(wire_server):
    """The OpenRosa spec says servers must take chunked transfer encoding."""
    server = wire_server
    boundary = "nigraanboundary"
    xml = visit_xml(new_id())
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="xml_submission_file"; '
            f'filename="s.xml"\r\nContent-Type: text/xml\r\n\r\n'
        ).encode()
        + xml
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks():
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    response = requests.post(
        server.token_url + "/submission",
        data=chunks(),
        headers={
            "X-OpenRosa-Version": "1.0",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    assert response.status_code == 201, response.text


# ------------------------------------------------------------------------- hostile input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE data [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<data id="rec_visit" version="2026112801"><station>&d;</station>
<meta><instanceID>uuid:6b3c2f4e-0000-4000-8000-000000000001</instanceID></meta></data>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE data [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<data id="rec_visit" version="2026112801"><station>&secret;</station>
<meta><instanceID>uuid:6b3c2f4e-0000-4000-8000-000000000002</instanceID></meta></data>"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["entities", "external"])
def test_dtd_and_entities_are_refused(server, store_of, xml):
    device = server.collect(server.token_url)
    refused = device.post_submission(xml)
    assert refused.status_code == 400
    assert "DTD or entities" in message(refused)
    assert "root:" not in refused.text
    assert store_of(server).counts().get("rec_visit", {}).get("submissions", 0) == 0
    assert device.head_submission().status_code == 204


def test_truncated_xml_is_refused_and_nothing_is_stored(server, store_of):
    device = server.collect(server.token_url)
    xml = visit_xml(new_id())
    refused = device.post_submission(xml[: len(xml) // 2])
    assert refused.status_code == 400
    assert "not well formed" in message(refused)
    assert store_of(server).counts().get("rec_visit", {}).get("submissions", 0) == 0
    assert device.send(xml).status_code == 201  # the whole one, sent again, is taken


def test_attachment_names_cannot_climb_out(server, store_of):
    device = server.collect(server.token_url)
    instance = new_id()
    xml = visit_xml(instance, "../../evil.jpg")
    sent = device.post_submission(
        xml,
        extra_parts=[
            ("../../evil.jpg", "../../evil.jpg", b"evil", "image/jpeg"),
            ("sub/dir.jpg", "dir.jpg", b"x", "image/jpeg"),
            ("nul\x01.jpg", "nul.jpg", b"x", "image/jpeg"),
        ],
    )
    assert sent.status_code == 201
    listed = store_of(server).attachments("rec_visit", instance)
    assert [(a["name"], a["exists"]) for a in listed] == [("../../evil.jpg", False)]


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data; boundary=zzz", b"--zzz\r\nnot a part at all"),
        ("multipart/form-data", b"no boundary"),
        ("text/xml", b"<data/>"),
        ("application/x-www-form-urlencoded", b"xml_submission_file=%3Cdata%2F%3E"),
    ],
)
def test_broken_bodies_get_400_and_the_server_goes_on(server, content_type, body):
    response = server.http.post(
        server.token_url + "/submission",
        data=body,
        headers={
            "X-OpenRosa-Version": "1.0",
            "Content-Type": content_type,
        },
    )
    assert response.status_code == 400
    assert "<OpenRosaResponse" in response.text
    assert server.collect(server.token_url).head_submission().status_code == 204


def test_too_many_parts_is_refused(server):
    device = server.collect(server.token_url)
    extra = [(f"f{i}.jpg", f"f{i}.jpg", b"x", "image/jpeg") for i in range(1_100)]
    refused = device.post_submission(visit_xml(new_id()), extra_parts=extra)
    assert refused.status_code == 413
    assert device.head_submission().status_code == 204


def test_a_client_that_stops_half_way_loses_nothing_and_blocks_nothing(wire_server, store_of):
    """Headers and half a body, then silence: other devices go on, nothing is stored."""
    server = wire_server
    instance = new_id()
    xml = visit_xml(instance)
    with socket.create_connection(("127.0.0.1", server.port)) as slow:
        path = server.token_url.split(str(server.port), 1)[1] + "/submission"
        slow.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-OpenRosa-Version: 1.0\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(xml) + 500}"
            "\r\n\r\n--b\r\n".encode()
            + xml[:100]
        )
        assert CollectClient(server.token_url).send(visit_xml(new_id())).status_code == 201
    assert store_of(server).submission("rec_visit", instance) is None


# ------------------------------------------------------------------------- forms


def test_a_rebuilt_form_reaches_devices_without_a_restart(server, store_of):
    import json

    build = server.build_dir
    device = server.collect(server.token_url)
    before = re.search(r"<hash>(md5:\w+)</hash>", device.get("/formList", formID="rec_visit").text)
    xform = (
        (build / "rec_visit.xml")
        .read_bytes()
        .replace(b'version="2026112801"', b'version="2026112802"')
    )
    (build / "rec_visit.xml").write_bytes(xform)
    index = json.loads((build / "index.json").read_text())
    index["rec_visit"]["version"] = "2026112802"
    (build / "index.json").write_text(json.dumps(index))

    listed = device.get("/formList", formID="rec_visit").text
    assert "<version>2026112802</version>" in listed
    assert re.search(r"<hash>(md5:\w+)</hash>", listed).group(1) != before.group(1)
    # both versions are taken: tablets finish what they started on the old one
    assert device.send(visit_xml(new_id(), version="2026112802")).status_code == 201
    assert device.send(visit_xml(new_id(), version="2026112801")).status_code == 201
    wrong = device.send(visit_xml(new_id(), version="1999"))
    assert wrong.status_code == 404
    assert message(wrong) == "The form version specified in this submission '1999' does not exist."
    assert store_of(server).form_versions("rec_visit").versions == {"2026112801", "2026112802"}


def test_a_changed_form_that_kept_its_version_is_not_served(server):
    """The store refuses it (tablets cache forms by version); the old one stays on offer."""
    import json

    device = server.collect(server.token_url)
    before = device.get("/formList", formID="rec_visit").text
    xform = (server.build_dir / "rec_visit.xml").read_bytes()
    (server.build_dir / "rec_visit.xml").write_bytes(xform.replace(b"Recording visit", b"Changed"))
    index = json.loads((server.build_dir / "index.json").read_text())
    index["rec_visit"]["title"] = "Changed"
    (server.build_dir / "index.json").write_text(json.dumps(index))
    assert device.get("/formList", formID="rec_visit").text == before
    assert device.get("/forms/rec_visit.xml").content == xform
    assert device.send(visit_xml(new_id())).status_code == 201
    assert "Give the changed form a new version" in server.log_path.read_text()


def test_the_server_starts_without_a_form_the_store_refuses(serve_in_process):
    """The other forms are served; the refused one is not offered and the log says why."""
    server = serve_in_process()
    server.close()
    xform = (server.build_dir / "rec_visit.xml").read_bytes()
    (server.build_dir / "rec_visit.xml").write_bytes(xform.replace(b"Recording visit", b"Changed"))
    again = serve_in_process(server.database_url, build_dir=server.build_dir)
    listed = again.collect(server.token_url).get("/formList").text
    assert "<formID>rec_entity</formID>" in listed and "rec_visit" not in listed
    log = again.log_path.read_text()
    assert "form rec_visit" in log and "Give the changed form a new version" in log


def test_an_envelope_in_collects_namespace_is_stored_encrypted(server, store_of):
    """Collect writes http://www.opendatakit.org/xforms/encrypted, not the spec's namespace."""
    manifest = (server.central_dir / "submissions/encrypted/e02.manifest.xml").read_bytes()
    collect_style = manifest.replace(
        b'xmlns="http://opendatakit.org/submissions"',
        b'xmlns="http://www.opendatakit.org/xforms/encrypted"',
    )
    assert collect_style != manifest
    encrypted_xml = (
        server.central_dir / "submissions/encrypted/e02.submission.xml.enc"
    ).read_bytes()
    device = server.collect(server.token_url)
    sent = device.send(
        collect_style, [("submission.xml.enc", encrypted_xml, "application/octet-stream")]
    )
    assert sent.status_code == 201, sent.text
    store = store_of(server)
    row = store.submission("rec_encrypted", "uuid:607247a4-b2ea-4e9c-a887-ea3b425b5121")
    assert row is not None
    assert row["encrypted"] and row["normalised"] == "raw_only"
    assert (
        store.attachment("rec_encrypted", row["current_instance_id"], "submission.xml.enc")
        == encrypted_xml
    )


# ------------------------------------------------------------------------- hardening


def test_a_flood_of_elements_is_refused_at_once_and_holds_up_no_one(server, store_of):
    """480,000 sibling elements (3.8 MB) took the store's writer minutes; now the server
    process refuses them before they reach it, and the next device is served at once."""
    instance = new_id()
    flood = (
        f'<data id="rec_visit" version="{VERSION}"><meta><instanceID>{instance}</instanceID>'
        "</meta>" + "<x>1</x>" * 480_000 + "</data>"
    ).encode()
    device = server.collect(server.token_url)
    refused = device.session.post(
        server.token_url + "/submission",
        headers=device.headers(),
        files=[("xml_submission_file", ("s.xml", flood, "text/xml"))],
        timeout=30,
    )
    assert refused.status_code == 400
    assert "more than 100,000 elements" in message(refused)
    after = device.session.post(
        server.token_url + "/submission",
        headers=device.headers(),
        files=[("xml_submission_file", ("s.xml", visit_xml(new_id()), "text/xml"))],
        timeout=10,
    )
    assert after.status_code == 201
    assert store_of(server).submission("rec_visit", instance) is None


def test_the_element_bound_is_a_setting(serve_in_process):
    server = serve_in_process(server__max_submission_elements=1_000)
    device = server.collect(server.token_url)
    many = visit_xml(new_id()).replace(b"</data>", b"<x/>" * 1_000 + b"</data>")
    refused = device.post_submission(many)
    assert refused.status_code == 400 and "more than 1,000 elements" in message(refused)
    assert device.send(visit_xml(new_id())).status_code == 201


PLAINTEXT_IDENTITY = (
    b'<data id="rec_encrypted" version="2026112801" encrypted="yes">'
    b"<base64EncryptedKey>QUJD</base64EncryptedKey>"
    b"<secret_name>Ayesha Bibi</secret_name><cnic>35202-1234567-8</cnic>"
    b"<phone>03001234567</phone>"
    b"<meta><instanceID>uuid:0d1e5a1e-0000-4000-8000-00000000f00d</instanceID></meta></data>"
)


def _envelope(server, name: str = "e02") -> bytes:
    return (server.central_dir / f"submissions/encrypted/{name}.manifest.xml").read_bytes()


@pytest.mark.parametrize(
    "case",
    ["plaintext fields", "short key", "no encrypted xml part", "a file that is not .enc"],
)
def test_a_fake_envelope_is_refused_and_nothing_is_stored(server, store_of, case):
    enc = (server.central_dir / "submissions/encrypted/e02.submission.xml.enc").read_bytes()
    files = [("submission.xml.enc", enc, "application/octet-stream")]
    real = _envelope(server)
    key = re.search(rb"<base64EncryptedKey>(.*?)</base64EncryptedKey>", real).group(1)
    signature = re.search(rb"Signature>(.*?)</base64", real).group(1)
    xml, said = {
        "plaintext fields": (PLAINTEXT_IDENTITY, "an element <secret_name>"),
        "short key": (real.replace(key, b"QUJD").replace(signature, b"QUJD"), "holds 3 bytes"),
        "no encrypted xml part": (real, "submission.xml.enc, is not in the upload"),
        "a file that is not .enc": (
            real.replace(
                b"<encryptedXmlFile>", b"<media><file>photo.jpg</file></media><encryptedXmlFile>"
            ),
            "'photo.jpg' it names is not an encrypted .enc file",
        ),
    }[case]
    if case == "no encrypted xml part":
        files = []
    refused = server.collect(server.token_url).post_submission(xml, files)
    assert refused.status_code == 400, refused.text
    assert "claims to be encrypted" in message(refused) and said in message(refused)
    assert store_of(server).counts().get("rec_encrypted") is None


def test_a_real_envelope_sent_in_two_parts_is_taken(server, store_of):
    """Collect may split an upload: the encrypted XML can come with the last part or an
    earlier one, and an identical resend later need not carry it again."""
    xml = _envelope(server, "e01")
    folder = server.central_dir / "submissions/encrypted"
    photo = (folder / "e01.1764300100001.jpg.enc").read_bytes()
    enc = (folder / "e01.submission.xml.enc").read_bytes()
    device = server.collect(server.token_url)
    first = device.post_submission(
        xml, [("submission.xml.enc", enc, "application/octet-stream")], incomplete=True
    )
    assert first.status_code == 201, first.text
    second = device.post_submission(xml, [("1764300100001.jpg.enc", photo, "image/jpeg")])
    assert second.status_code == 201, second.text
    instance = "uuid:5a3dab5c-b138-4238-9d0e-3eb674652917"
    listed = store_of(server).attachments("rec_encrypted", instance)
    assert [(a["name"], a["exists"]) for a in listed] == [
        ("1764300100001.jpg.enc", True),
        ("submission.xml.enc", True),
    ]


@pytest.mark.parametrize("which", ["instanceID", "deprecatedID", "file name"])
def test_values_too_long_to_store_whole_are_refused(server, store_of, which):
    device = server.collect(server.token_url)
    original = new_id()
    assert device.send(visit_xml(original)).status_code == 201
    long = "uuid:" + "x" * 300
    photo = b"\xff\xd8 a photo"
    xml, files = {
        "instanceID": (visit_xml(long, "a.jpg"), [("a.jpg", photo, "image/jpeg")]),
        "deprecatedID": (visit_xml(new_id(), deprecated=long), []),
        "file name": (visit_xml(new_id(), "p" * 300 + ".jpg"), []),
    }[which]
    for _ in range(2):  # a resend is refused the same way and adds nothing
        refused = device.post_submission(xml, files)
        assert refused.status_code == 400, refused.text
        assert "longer than 255 characters" in message(refused)
    store = store_of(server)
    counts = store.counts()
    assert list(counts) == ["rec_visit"]  # no raw row without a form, nothing else
    assert (counts["rec_visit"]["submissions"], counts["rec_visit"]["versions"]) == (1, 1)
    assert store.submission("rec_visit", original)["edits"] == 0


def test_a_submission_without_instance_id_can_be_sent_again(server, store_of, central_dir):
    """Central takes it and makes up an id; resends are idempotent, not 500s (exchange 056)."""
    xml = (central_dir / "submissions/no-instanceid.xml").read_bytes()
    device = server.collect(server.token_url)
    assert [device.post_submission(xml).status_code for _ in range(3)] == [201, 201, 201]
    assert store_of(server).counts()["rec_visit"] == {
        "submissions": 1,
        "versions": 1,
        "problems": 1,
    }


def test_two_instance_ids_get_a_clear_400(server, store_of):
    xml = visit_xml(new_id()).replace(
        b"</meta>", f"<instanceID>{new_id()}</instanceID></meta>".encode()
    )
    refused = server.collect(server.token_url).post_submission(xml)
    assert refused.status_code == 400
    assert "2 meta/instanceID elements" in message(refused)
    assert store_of(server).counts() == {}


def test_a_number_beyond_64_bits_is_stored_and_flagged(server, store_of):
    instance = new_id()
    xml = visit_xml(instance).replace(
        b"<photo/>", b"<photo/><household_size>99999999999999999999999</household_size>"
    )
    sent = server.collect(server.token_url).post_submission(xml)
    assert sent.status_code == 201, sent.text
    store = store_of(server)
    assert store.rows("form_rec_visit")[0]["household_size"] is None
    found = {(p["code"], p["field_path"]) for p in store.problems("rec_visit")}
    assert ("bad_value", "household_size") in found


def test_undeclared_odk_prefixes_are_read_as_central_does(server, store_of):
    instance = new_id()
    xml = (
        f'<data id="rec_visit" version="{VERSION}"><station>Lahore</station>'
        f"<orx:meta><orx:instanceID>{instance}</orx:instanceID></orx:meta></data>"
    ).encode()
    device = server.collect(server.token_url)
    assert device.post_submission(xml).status_code == 201
    assert store_of(server).submission("rec_visit", instance) is not None
    other = xml.replace(b"orx:", b"foo:").replace(instance.encode(), new_id().encode())
    refused = device.post_submission(other)
    assert refused.status_code == 400 and "not well formed" in message(refused)


def test_an_edit_that_does_not_resend_the_photo_keeps_it(server, store_of):
    """Collect sends only changed files with an edit; Central carries the others forward."""
    device = server.collect(server.token_url)
    original, edit = new_id(), new_id()
    photo = b"\xff\xd8 the photo"
    assert device.send(visit_xml(original, "a.jpg"), [("a.jpg", photo, "image/jpeg")]).ok
    sent = device.send(visit_xml(edit, "a.jpg", deprecated=original, note="edited"))
    assert sent.status_code == 201
    store = store_of(server)
    assert [(a["name"], a["exists"]) for a in store.attachments("rec_visit", edit)] == [
        ("a.jpg", True)
    ]
    assert store.attachment("rec_visit", edit, "a.jpg") == photo
