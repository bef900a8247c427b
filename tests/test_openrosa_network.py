"""The OpenRosa server facing a hostile network, over real HTTP on loopback: clients that trickle
bytes to hold connections, replayed Digest answers, a forged Host header, and the requests
waitress refuses by itself."""

from __future__ import annotations

import errno
import hashlib
import re
import socket
import threading
import time

import pytest
import requests

from tests.openrosa_client import CollectClient
from tests.test_openrosa_server import message, new_id, visit_xml

# The attackers connect from other loopback addresses than the tablets (127.0.0.1), as they
# would from other machines; Linux routes all of 127.0.0.0/8 to the loopback interface.
ATTACKER_ADDRESSES = ("127.0.0.2", "127.0.0.3")


@pytest.fixture
def server(serve_openrosa, tmp_path):
    return serve_openrosa(f"sqlite:///{tmp_path / 'store.sqlite3'}")


@pytest.fixture
def in_process(serve_in_process):
    """The app in this process, for what needs no connection (SQLite and PostgreSQL)."""
    return serve_in_process()


HEAD_START = b"GET /formList HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
BODY_START = (
    b"POST /submission HTTP/1.1\r\nHost: 127.0.0.1\r\nX-OpenRosa-Version: 1.0\r\n"
    b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n--b"
)


class Trickler:
    """`count` connections that each send the start of a request (`start`: a request line, or
    a whole head and the first bytes of its body) and then one byte a second, reconnecting
    whenever the server closes one; runs in a thread while in its `with` block."""

    def __init__(
        self, port: int, count: int, start: bytes = HEAD_START, sources=ATTACKER_ADDRESSES
    ):
        self.port, self.count, self.sources, self.start = port, count, sources, start
        self.closed_by_server = 0
        self.connected = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Trickler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _open(self, i: int) -> socket.socket | None:
        s = socket.socket()
        try:
            s.bind((self.sources[i % len(self.sources)], 0))
            s.setblocking(False)
            if s.connect_ex(("127.0.0.1", self.port)) not in (0, errno.EINPROGRESS):
                s.close()
                return None
            self.connected += 1
            return s
        except OSError:
            s.close()
            return None

    def _run(self) -> None:
        socks: list[socket.socket | None] = [None] * self.count
        sent: list[int] = [0] * self.count
        try:
            while not self._stop.is_set():
                for i in range(self.count):
                    s = socks[i]
                    if s is not None:
                        try:
                            if s.recv(4096) == b"":
                                raise ConnectionResetError  # the server closed it
                        except BlockingIOError:
                            pass  # alive, nothing to read
                        except OSError:
                            s.close()
                            socks[i] = s = None
                            self.closed_by_server += 1
                    if s is None:
                        socks[i], sent[i] = self._open(i), 0
                        continue
                    data = self.start if sent[i] == 0 else b"a"
                    try:
                        s.send(data)
                        sent[i] += 1
                    except BlockingIOError:
                        pass  # still connecting
                    except OSError:
                        s.close()
                        socks[i] = None
                        self.closed_by_server += 1
                self._stop.wait(1.0)
        finally:
            for s in socks:
                if s is not None:
                    s.close()


def probe_latencies(server, seconds: float) -> list[float | None]:
    """A new device connection every second: HEAD and POST a submission as Collect does."""
    latencies: list[float | None] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        device = CollectClient(server.token_url)
        started = time.monotonic()
        try:
            answered = device.send(visit_xml(new_id())).status_code == 201
        except requests.RequestException:
            answered = False
        finally:
            device.session.close()
        latencies.append(time.monotonic() - started if answered else None)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    return latencies


@pytest.mark.parametrize(
    "start, settings, bound",
    [
        # Every slot can be taken from one address: the header deadline, shortened while the
        # server is nearly full, frees them (as many attacking addresses would need).
        (HEAD_START, {"server__connections_per_address": 900}, 6.0),
        # Whole heads, then bodies at a byte a second: while nearly full, crawling uploads go.
        (BODY_START, {"server__connections_per_address": 900}, 6.0),
        # The per-address cap keeps one address from taking more than its share.
        (HEAD_START, {"server__connections_per_address": 20, "server__header_timeout": 60}, 2.0),
    ],
    ids=["header-deadline", "crawling-bodies", "per-address-cap"],
)
def test_clients_trickling_requests_do_not_lock_tablets_out(
    serve_openrosa, tmp_path, start, settings, bound
):
    """120 connections trickling a byte a second against 100 connection slots (the limit the
    outside test campaign exhausted): tablets are still answered within `bound`."""
    server = serve_openrosa(
        f"sqlite:///{tmp_path / 's.sqlite3'}", server__connection_limit=100, **settings
    )
    with Trickler(server.port, 120, start) as attack:
        time.sleep(3)  # let the attack take the slots
        latencies = probe_latencies(server, seconds=10)
    print(f"probe latencies (s): {[None if x is None else round(x, 2) for x in latencies]}")
    assert attack.connected >= 120
    assert attack.closed_by_server > 0  # the server did cut the trickling connections
    assert latencies and None not in latencies
    assert max(latencies) < bound


def test_a_connection_trickling_its_headers_is_closed_at_the_header_timeout(
    serve_openrosa, tmp_path
):
    server = serve_openrosa(f"sqlite:///{tmp_path / 's.sqlite3'}", server__header_timeout=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as slow:
        started = time.monotonic()
        slow.sendall(b"GET /formList HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        closed_after = None
        while time.monotonic() - started < 6:
            try:
                slow.sendall(b"a")
                slow.settimeout(0.3)
                if slow.recv(4096) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
    print(f"closed after {closed_after} s")
    assert closed_after is not None and 0.9 < closed_after < 3.5
    # A kept-alive connection left idle after its answer is closed the same way.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as idle:
        idle.sendall(b"HEAD /submission HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 401")
        idle.settimeout(5)
        started = time.monotonic()
        assert idle.recv(4096) == b""
        assert time.monotonic() - started < 3.5


BIG_HEAD = b"GET /formList HTTP/1.1\r\nHost: x\r\nX-Big: "


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], str]:
    """Send bytes as they are, read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body.decode("utf-8")


@pytest.mark.parametrize(
    "request_bytes, status, says",
    [
        # Exactly waitress's max_request_header_size (256 KiB): it reads every byte sent before
        # it answers, so its closing the connection after the answer resets nothing.
        (BIG_HEAD + b"a" * (262_144 - len(BIG_HEAD)), 431, "request headers are larger"),
        (
            b"GET /formList HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "cannot read this request",
        ),
        (
            b"GET /formList HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
            "could not read this request",
        ),
        (
            b"POST /submission HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n",
            413,
            "larger than the server accepts",
        ),
    ],
    ids=["431", "501", "400", "413"],
)
def test_waitress_refusals_are_openrosa_messages(server, request_bytes, status, says):
    got, headers, body = raw_exchange(server.port, request_bytes)
    assert got == status
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    assert body.startswith('\n  <OpenRosaResponse xmlns="http://openrosa.org/http/response"')
    assert says in message(type("R", (), {"text": body})())
    assert "generated by" not in body  # waitress's own plain text is gone
    assert CollectClient(server.token_url).head_submission().status_code == 204


def test_too_many_parts_names_the_part_limit(in_process):
    server = in_process
    device = server.collect(server.token_url)
    extra = [(f"f{i}.jpg", f"f{i}.jpg", b"x", "image/jpeg") for i in range(1_001)]
    refused = device.post_submission(visit_xml(new_id()), extra_parts=extra)
    assert refused.status_code == 413
    said = message(refused)
    assert "at most 1,000 files and fields" in said
    assert "MB at once" not in said and "larger than" not in said


# ------------------------------------------------------------------------- Digest replays


def test_a_replayed_digest_answer_is_refused_with_a_fresh_challenge(server, store_of):
    """One captured Authorization header, posted again with other bodies: nothing stored."""
    device = CollectClient(server.base, username=server.username, password=server.password)
    first = new_id()
    sent = device.send(visit_xml(first))
    assert sent.status_code == 201
    captured = sent.request.headers["Authorization"]
    assert "nc=" in captured and "qop=" in captured
    for note in ("a", "b", "c"):
        replayed = requests.post(
            server.base + "/submission",
            headers={"X-OpenRosa-Version": "1.0", "Authorization": captured},
            files=[("xml_submission_file", ("s.xml", visit_xml(new_id(), note=note), "text/xml"))],
        )
        assert replayed.status_code == 401
        challenge = replayed.headers["WWW-Authenticate"]
        assert "stale=TRUE" in challenge  # the answer was right, only its nonce count is used up
        assert re.search(r'nonce="([^"]+)"', challenge).group(1) not in captured
    assert store_of(server).counts()["rec_visit"]["submissions"] == 1
    # The device itself goes on: its next nonce count is new.
    assert device.send(visit_xml(new_id())).status_code == 201


def test_digest_without_qop_is_refused(in_process):
    """An RFC 2069 answer (no qop, no nonce count) would be good for every request."""
    server = in_process
    challenge = server.http.get(server.base + "/formList", headers={"X-OpenRosa-Version": "1.0"})
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge.headers["WWW-Authenticate"]))
    ha1 = hashlib.md5(f"{server.username}:nigraan:{server.password}".encode()).hexdigest()
    ha2 = hashlib.md5(b"GET:/formList").hexdigest()
    response = hashlib.md5(f"{ha1}:{fields['nonce']}:{ha2}".encode()).hexdigest()
    legacy = (
        f'Digest username="{server.username}", realm="nigraan", nonce="{fields["nonce"]}", '
        f'uri="/formList", response="{response}", opaque="{fields["opaque"]}", algorithm=MD5'
    )
    refused = server.http.get(
        server.base + "/formList",
        headers={
            "X-OpenRosa-Version": "1.0",
            "Authorization": legacy,
        },
    )
    assert refused.status_code == 401
    assert "stale" not in refused.headers["WWW-Authenticate"]  # not "just retry": refused
    # The same credentials with qop=auth are taken.
    device = server.collect(server.base, username=server.username, password=server.password)
    assert device.get("/formList").status_code == 200


# ------------------------------------------------------------------------- forged Host


def test_a_forged_host_header_does_not_redirect_token_urls(server):
    """Without server.public_url, the form list's token-bearing URLs name the server's own
    address, whatever Host the request claims."""
    for path in ("/formList", "/forms/rec_visit/manifest"):
        listed = requests.get(
            server.token_url + path,
            headers={
                "X-OpenRosa-Version": "1.0",
                "Host": "attacker.example:8080",
            },
        )
        assert listed.status_code == 200
        urls = re.findall(r"<(?:downloadUrl|manifestUrl)>(.*?)</", listed.text)
        assert urls
        assert all(u.startswith(server.token_url + "/forms/") for u in urls), urls
        assert "attacker.example" not in listed.text


def test_listening_on_every_interface_urls_name_the_address_the_connection_reached(
    make_config, central_dir, tmp_path
):
    """With server.host 0.0.0.0 and no public URL: the local address the connection was
    accepted on (which waitress knows and no client can forge), not the Host header."""
    from server import create_app, store_process_options
    from server.channel import LOCAL_ADDRESS
    from server.device_accounts import create_account
    from server.store_process import InProcessWriter
    from tests.openrosa_client import publish_recorded_forms

    build = publish_recorded_forms(tmp_path / "forms", central_dir)
    config = make_config(forms__build_dir=str(build), server__host="0.0.0.0")
    writer = InProcessWriter(config["database.url"], store_process_options(config))
    app = create_app(config, writer=writer)
    try:
        account = create_account(app.extensions["nigraan"].store.app_users, "t", ["rec_visit"])
        path = account.token_url("") + "/formList"
        listed = app.test_client().get(
            path,
            headers={"X-OpenRosa-Version": "1.0", "Host": "attacker.example"},
            environ_base={LOCAL_ADDRESS: ("192.168.1.10", 8080)},
        )
        assert listed.status_code == 200
        urls = re.findall(r"<downloadUrl>(.*?)</", listed.text)
        assert urls == [f"http://192.168.1.10:8080{account.token_url('')}/forms/rec_visit.xml"]
    finally:
        app.extensions["nigraan"].close()


def test_collect_s_head_and_post_share_one_connection(server):
    """Collect asks HEAD /submission (204) before each POST on its kept-alive connection:
    the 204 must not end it, or every upload costs a new connection (and a TLS handshake on
    a phone network). A client asking to close still gets its connection closed."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(server.token_url + "/submission")
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"X-OpenRosa-Version": "1.0"}
    try:
        for n in range(3):
            conn.request("HEAD", url.path, headers=headers)
            head = conn.getresponse()
            head.read()
            assert head.status == 204 and not head.will_close, head.getheaders()
            if n == 0:
                first_socket = conn.sock.getsockname()
            body, content_type = _multipart(visit_xml(new_id()))
            conn.request(
                "POST", url.path, body=body, headers={**headers, "Content-Type": content_type}
            )
            posted = conn.getresponse()
            posted.read()
            assert posted.status == 201 and not posted.will_close
            assert conn.sock.getsockname() == first_socket  # the same connection throughout
        conn.request("HEAD", url.path, headers={**headers, "Connection": "close"})
        closing = conn.getresponse()
        closing.read()
        assert closing.status == 204 and closing.will_close
    finally:
        conn.close()


def _multipart(xml: bytes) -> tuple[bytes, str]:
    from urllib3 import encode_multipart_formdata

    return encode_multipart_formdata([("xml_submission_file", ("submission.xml", xml, "text/xml"))])
