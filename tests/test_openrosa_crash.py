"""Nothing acknowledged is lost: kill `nigraan serve` (SIGKILL, as a power cut) while devices
upload, restart it, and every submission that got a 201 is there, whole; nothing half-written
shows; the devices' resends then converge without duplicates."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import requests

from store.store import Store
from tests.openrosa_client import CollectClient
from tests.test_openrosa_server import visit_xml

DEVICES = 4
PER_DEVICE = 150  # bounded: the kill comes long before a device runs out
PHOTO = bytes(range(256)) * 80  # 20 kB


def _upload_until_refused(server, n, acked, tried, stop):
    device = CollectClient(server.token_url, device_id=f"collect:crash{n:011d}")
    for _ in range(PER_DEVICE):
        if stop.is_set():
            return
        instance = f"uuid:{uuid.uuid4()}"
        xml = visit_xml(instance, "p.jpg", note=str(n))
        tried.append((instance, xml))
        try:
            response = device.send(xml, [("p.jpg", PHOTO, "image/jpeg")])
        except requests.RequestException:
            return  # the server went away mid-request: no answer, so not acknowledged
        if response.status_code == 201:
            acked.append(instance)


def _half_upload(server, started):
    """A device whose upload is in flight when the power goes."""
    xml = visit_xml("uuid:00000000-0000-4000-8000-00000000dead")
    path = server.token_url.split(str(server.port), 1)[1] + "/submission"
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-OpenRosa-Version: 1.0\r\n"
                f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n"
                "\r\n--b\r\n".encode()
                + xml[:200]
            )
            started.set()
            conn.recv(1)  # until the server dies
    except OSError:
        pass


def test_kill_mid_upload_loses_nothing_acknowledged(serve_openrosa, new_database):
    server = serve_openrosa(new_database())
    acked: list[str] = []
    tried: list[tuple[str, bytes]] = []
    stop = threading.Event()
    half_started = threading.Event()
    threads = [
        threading.Thread(target=_upload_until_refused, args=(server, n, acked, tried, stop))
        for n in range(DEVICES)
    ]
    threads.append(threading.Thread(target=_half_upload, args=(server, half_started)))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert half_started.wait(5)
    server.kill()  # mid-upload: four devices are sending, one is half-way through a body
    stop.set()
    for thread in threads:
        thread.join(30)
    assert len(acked) >= 40

    server.start()  # same instance folder, same database
    store = Store.open(server.database_url)
    try:
        for instance in acked:
            row = store.submission("rec_visit", instance)
            assert row is not None, f"{instance} was acknowledged but is missing"
            versions = store.versions("rec_visit", instance)
            assert [v["current"] for v in versions] == [True]
            assert store.attachment("rec_visit", instance, "p.jpg") == PHOTO
        assert store.submission("rec_visit", "uuid:00000000-0000-4000-8000-00000000dead") is None
        # nothing half-written: every stored submission has its typed row and raw version
        stored = store.rows("form_rec_visit")
        counts = store.counts()["rec_visit"]
        assert len(stored) == counts["submissions"] == counts["versions"]

        # the devices send again everything they tried (Collect keeps unacknowledged ones)
        device = CollectClient(server.token_url)
        for _, xml in tried:
            assert device.send(xml, [("p.jpg", PHOTO, "image/jpeg")]).status_code == 201
        counts = store.counts()["rec_visit"]
        assert counts["submissions"] == len(tried) == len(store.rows("form_rec_visit"))
        for instance, _ in tried:
            assert store.attachment("rec_visit", instance, "p.jpg") == PHOTO
    finally:
        store.close()


def _children(pid: int) -> list[int]:
    return [
        int(c)
        for task in Path(f"/proc/{pid}/task").glob("*")
        for c in (task / "children").read_text().split()
    ]


def test_a_dead_store_process_is_replaced(serve_openrosa, tmp_path):
    """The store's writer process is killed: uploads in flight fail (500, so Collect keeps
    them), the next upload starts a new one, and the resend is stored once."""
    import os
    import signal

    server = serve_openrosa(f"sqlite:///{tmp_path / 's.sqlite3'}")
    device = CollectClient(server.token_url)
    first = f"uuid:{uuid.uuid4()}"
    assert device.send(visit_xml(first)).status_code == 201
    commands = {p: Path(f"/proc/{p}/cmdline").read_text() for p in _children(server.proc.pid)}
    store_processes = [
        p
        for p, command in commands.items()
        if "spawn_main" in command and "resource_tracker" not in command
    ]
    assert len(store_processes) == 1
    os.kill(store_processes[0], signal.SIGKILL)
    time.sleep(0.5)
    second = visit_xml(f"uuid:{uuid.uuid4()}")
    statuses = [device.send(second).status_code for _ in range(2)]
    assert statuses[-1] == 201 and set(statuses) <= {201, 500}
    store = Store.open(server.database_url)
    try:
        assert store.counts()["rec_visit"]["submissions"] == 2
        assert store.submission("rec_visit", first) is not None
    finally:
        store.close()


def test_sigterm_stops_server_and_store_process_cleanly(serve_openrosa, tmp_path):
    server = serve_openrosa(f"sqlite:///{tmp_path / 's.sqlite3'}")
    instance = f"uuid:{uuid.uuid4()}"
    assert CollectClient(server.token_url).send(visit_xml(instance)).status_code == 201
    children = _children(server.proc.pid)
    assert children
    server.proc.terminate()
    assert server.proc.wait(30) == 0
    assert "Stopping: the submissions in hand are stored first." in server.log_path.read_text()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{c}").exists() for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if Path(f"/proc/{c}").exists()]
