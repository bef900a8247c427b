"""Test helpers for the OpenRosa server: a real `nigraan serve` process, and a client that
speaks to it the way ODK Collect does (OkHttp's headers, HEAD before POST, multipart parts named
after their files, split uploads, Digest after a 401 challenge)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.auth import HTTPDigestAuth
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

USER_AGENT = (
    "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 7 Build/UQ1A.240205.004) "
    "org.odk.collect.android/v2025.2.3"
)
RECORDED_FORMS = ("rec_encrypted", "rec_entity", "rec_visit")


def publish_recorded_forms(build_dir: Path, central_dir: Path) -> Path:
    """Lay out the forms recorded against Central as `nigraan forms build` would leave them."""
    build_dir.mkdir(parents=True, exist_ok=True)
    index = {}
    for form_id in RECORDED_FORMS:
        xform = (central_dir / "forms" / f"{form_id}.xml").read_bytes()
        shutil.copyfile(central_dir / "forms" / f"{form_id}.xml", build_dir / f"{form_id}.xml")
        media = []
        if form_id == "rec_visit":
            (build_dir / "rec_visit-media").mkdir(exist_ok=True)
            logo = (central_dir / "forms" / "logo.png").read_bytes()
            (build_dir / "rec_visit-media" / "logo.png").write_bytes(logo)
            media.append({"file": "logo.png", "md5": hashlib.md5(logo).hexdigest()})
        title = xform.split(b"<h:title>", 1)[1].split(b"</h:title>", 1)[0].decode()
        index[form_id] = {
            "form_id": form_id,
            "version": "2026112801",
            "title": title,
            "file": f"{form_id}.xml",
            "md5": hashlib.md5(xform).hexdigest(),
            "encrypted": b"base64RsaPublicKey" in xform,
            "media": media,
        }
    (build_dir / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    return build_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`nigraan serve` in a child process on 127.0.0.1, with its own instance folder."""

    def __init__(self, env: dict[str, str], port: int | None = None):
        self.port = port or free_port()
        self.env = {
            **os.environ,
            **env,
            "NIGRAAN_SERVER_PORT": str(self.port),
            "NIGRAAN_SERVER_HOST": "127.0.0.1",
        }
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(env["NIGRAAN_INSTANCE_DIR"]) / f"serve-{self.port}.log"

    def start(self, timeout: float = 30) -> ServerProcess:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from nigraan.cli import main; main()", "serve"],
            env=self.env,
            stdin=subprocess.DEVNULL,  # no terminal, as under a service manager: nothing asked
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nigraan serve exited: {self.log_path.read_text()[-2000:]}")
            try:
                requests.head(self.base + "/submission", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"nigraan serve did not start: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a power cut."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()


class CollectClient:
    """What ODK Collect sends, over a real connection (requests keeps it alive like OkHttp)."""

    def __init__(
        self,
        server_url: str,
        *,
        username=None,
        password=None,
        device_id=None,
        session: requests.Session | None = None,
    ):
        self.server_url = server_url.rstrip("/")
        # A session of its own (Collect's connection); in_process_session(app) for test_client
        self.session = session or requests.Session()
        if username is not None:
            self.session.auth = HTTPDigestAuth(username, password)
        self.device_id = device_id or "collect:QZbvCvr5EeXgHx0F"

    def headers(self, openrosa: bool = True) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Date": formatdate(usegmt=True)}
        if openrosa:
            headers["X-OpenRosa-Version"] = "1.0"
        return headers

    def get(self, path: str, *, openrosa: bool = True, **params) -> requests.Response:
        url = path if path.startswith("http") else self.server_url + path
        params.setdefault("deviceID", self.device_id)
        return self.session.get(url, params=params, headers=self.headers(openrosa), timeout=60)

    def head_submission(self, *, openrosa: bool = True) -> requests.Response:
        return self.session.head(
            self.server_url + "/submission",
            params={"deviceID": self.device_id},
            headers=self.headers(openrosa),
            timeout=60,
        )

    def post_submission(
        self,
        xml: bytes,
        files=(),
        *,
        incomplete=False,
        openrosa=True,
        xml_name="submission.xml",
        extra_parts=(),
    ) -> requests.Response:
        """POST as Collect: `xml_submission_file` first, then one part per file named after it.

        `files` are (name, bytes, content_type); `extra_parts` are raw (part name, filename,
        bytes, content_type) for hostile shapes."""
        parts = [("xml_submission_file", (xml_name, xml, "text/xml"))]
        parts += [(name, (name, content, kind)) for name, content, kind in files]
        parts += [
            (part, (filename, content, kind)) for part, filename, content, kind in extra_parts
        ]
        data = {"*isIncomplete*": "yes"} if incomplete else None
        return self.session.post(
            self.server_url + "/submission",
            params={"deviceID": self.device_id},
            headers=self.headers(openrosa),
            files=parts,
            data=data,
            timeout=60,
        )

    def send(self, xml: bytes, files=()) -> requests.Response:
        """HEAD then POST, splitting like Collect when the files exceed the advertised limit."""
        head = self.head_submission()
        limit = 10_000_000
        if head.status_code == 204:
            limit = int(head.headers.get("X-OpenRosa-Accept-Content-Length", limit))
        batch, size, response = [], len(xml), None
        for item in files:
            if batch and size + len(item[1]) > limit:
                response = self.post_submission(xml, batch, incomplete=True)
                if response.status_code != 201:
                    return response
                batch, size = [], len(xml)
            batch.append(item)
            size += len(item[1])
        return self.post_submission(xml, batch) if batch or response is None else response


class TestClientAdapter(requests.adapters.BaseAdapter):
    """A requests transport into a Flask app's `test_client()`: CollectClient, Digest auth
    and plain requests calls run unchanged in this process, with no socket. The app sees what
    waitress would hand it, minus what only a connection has (chunked framing, the headers'
    arrival time, the local address)."""

    def __init__(self, app):
        super().__init__()
        self.client = app.test_client()

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        url = urlsplit(request.url)
        body = request.body
        if body is not None and not isinstance(body, bytes | str):
            body = b"".join(body)  # a generator: requests would send it chunked
        headers = {k: v for k, v in request.headers.items() if k.lower() != "transfer-encoding"}
        answer = self.client.open(
            url.path,
            base_url=f"{url.scheme}://{url.netloc}",
            query_string=url.query,
            method=request.method,
            headers=headers,
            data=body,
            environ_overrides={"REMOTE_ADDR": "127.0.0.1"},
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.status.partition(" ")[2]
        response.headers = CaseInsensitiveDict(answer.headers.items())
        response._content = answer.get_data()
        response._content_consumed = True
        response.raw = io.BytesIO(response._content)
        response.encoding = get_encoding_from_headers(response.headers)
        response.url = request.url
        response.request = request
        response.connection = self  # Digest auth answers a 401 through it
        answer.close()
        return response

    def close(self) -> None:
        pass


def in_process_session(app) -> requests.Session:
    """A requests session whose every http(s) URL goes to `app` in this process."""
    session = requests.Session()
    adapter = TestClientAdapter(app)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class InProcessServer:
    """create_app over a store with an InProcessWriter, the recorded forms published and a
    device account for all of them: what `serve_openrosa` gives, without `nigraan serve`.
    `.base` is the URL the app names in form lists; nothing listens there, requests to it go
    through `.http` or `.collect(...)`. `.advance(seconds)` moves the clocks of the device
    accounts (token cache, Digest nonces) forward instead of sleeping."""

    def __init__(
        self,
        instance: Path,
        central_dir: Path,
        database_url: str,
        build_dir: Path | None = None,
        port: int = 8080,
        **settings,
    ):
        from nigraan.config import load_config
        from server import create_app, store_process_options
        from server.store_process import InProcessWriter

        instance.mkdir(parents=True, exist_ok=True)
        self.build_dir = build_dir or publish_recorded_forms(instance / "forms", central_dir)
        self.central_dir, self.database_url, self.port = central_dir, database_url, port
        self.base = f"http://127.0.0.1:{port}"
        self.config = load_config(
            overrides={
                "instance_dir": str(instance),
                "forms.build_dir": str(self.build_dir),
                "database.url": database_url,
                "server.host": "127.0.0.1",
                "server.port": port,
                **{k.replace("__", "."): v for k, v in settings.items()},
            },
            environ={},
        )
        # The lines `nigraan serve` would log, in a file as ServerProcess keeps them.
        self.log_path = instance / f"serve-{port}.log"
        self._log = logging.FileHandler(self.log_path, encoding="utf-8")
        logging.getLogger().addHandler(self._log)
        writer = InProcessWriter(database_url, store_process_options(self.config))
        self.app = create_app(self.config, writer=writer)
        self.services = self.app.extensions["nigraan"]
        self._offset = 0.0
        self.services.token_accounts.clock = lambda: time.monotonic() + self._offset
        self.services.digest.clock = lambda: time.time() + self._offset
        self.http = in_process_session(self.app)

    def add_account(self, name: str, forms=RECORDED_FORMS) -> InProcessServer:
        """Make the device account the tests use (`.token_url`, `.username`, `.password`)."""
        from server.device_accounts import create_account

        self.account = create_account(self.services.store.app_users, name, list(forms))
        self.token_url = self.account.token_url(self.base)
        self.username, self.password = self.account.user.name, self.account.password
        return self

    def collect(self, server_url: str, **options) -> CollectClient:
        """A Collect-like client of its own (its own Digest state) talking to the app."""
        return CollectClient(server_url, session=in_process_session(self.app), **options)

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    def close(self) -> None:
        if self._log in logging.getLogger().handlers:  # once: tests may close it early
            self.services.close()
        logging.getLogger().removeHandler(self._log)
        self._log.close()
