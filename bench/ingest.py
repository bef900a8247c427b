"""Benchmark: ODK Collect uploads to `nigraan serve`, N devices at once.

Each emulated device (a thread with its own keep-alive connection, as OkHttp keeps one) sends
its share of `custody_visit` submissions the way Collect does: HEAD on /submission, then a
multipart POST with `xml_submission_file` and the photos the instance names. Prints
submissions per second, p50/p99 latency of HEAD+POST, and the rows the store holds against the
201s received (they must be equal: nothing acknowledged may be missing).

Baseline, measured in the same run with the same client and load: a bare waitress app with the
same thread count and socket read size that parses the multipart body and writes each upload
to its own files with fsync before answering 201 (durable, but no parsing, typing, SQL or
checks) - the cheapest server a careful person could write. CPU time per submission is
printed for both servers (the server process and the store process it starts, and this
client), read from /proc. The issue's reference is ODK Central v2026.2.2 at about
100 submissions/s with 8 devices on a 2-core machine of this kind; its target is >= 300/s at 8
devices, p99 < 200 ms.

Run from the repository root (the server runs in its own process, on 127.0.0.1):

    .venv/bin/python bench/ingest.py                       # 8 devices, 3,000 submissions
    .venv/bin/python bench/ingest.py --devices 1 --count 500
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

import requests  # only to wait for the baseline server
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.normalise import FORM_ID, build_xform, odata_rows
from server.device_accounts import create_account
from store import schema as s
from store import tables as t
from store.document import is_data_name, lexical
from store.store import Store
from tests.openrosa_client import USER_AGENT, ServerProcess, free_port

PHOTO_BYTES = 30_000  # a small, compressed phone photo


def instance_xml(row: dict, version: str) -> bytes:
    """An OData-shaped row written back as the instance XML Collect would post."""

    def element(name: str, value) -> str:
        if isinstance(value, list):
            return "".join(element(name, item) for item in value)
        if isinstance(value, dict) and value.get("type") != "Point":
            inner = "".join(element(k, v) for k, v in value.items() if is_data_name(k))
            return f"<{name}>{inner}</{name}>"
        text = lexical(value)
        return f"<{name}>{escape(text)}</{name}>" if text is not None else f"<{name}/>"

    body = "".join(element(k, v) for k, v in row.items() if is_data_name(k))
    head = f"<data id={quoteattr(FORM_ID)} version={quoteattr(version)}>"
    return (head + body + "</data>").encode("utf-8")


def _photo_names(value, photo_fields: set[str], names: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in photo_fields and isinstance(v, str):
                names.append(v)
            else:
                _photo_names(v, photo_fields, names)
    elif isinstance(value, list):
        for v in value:
            _photo_names(v, photo_fields, names)


def submissions(schema: s.FormSchema, count: int, seed: int):
    """(instanceID, xml, [photo names]) for `count` valid submissions."""
    photo_fields = {
        f.local_path.rsplit("/", 1)[-1] for f in schema.fields if f.kind == s.ATTACHMENT
    }
    out = []
    for row in odata_rows(schema, count, seed):
        names: list[str] = []
        _photo_names({k: v for k, v in row.items() if is_data_name(k)}, photo_fields, names)
        out.append((row["__id"], instance_xml(row, schema.version), sorted(set(names))))
    return out


def encode_uploads(items, photo: bytes):
    """Each submission's multipart body, encoded before the clock starts, so the client
    spends its time on the wire and not in Python (Collect's OkHttp streams files)."""
    from urllib3 import encode_multipart_formdata

    uploads = []
    for instance_id, xml, photos in items:
        fields = [("xml_submission_file", ("submission.xml", xml, "text/xml"))]
        fields += [(name, (name, photo, "image/jpeg")) for name in photos]
        body, content_type = encode_multipart_formdata(fields)
        uploads.append((instance_id, body, content_type))
    return uploads


def run_load(base_url: str, uploads, devices: int):
    """Send `uploads` from `devices` threads, each on its own keep-alive connection;
    returns (seconds, latencies of HEAD+POST, statuses, instanceIDs answered 201)."""
    parsed = urlsplit(base_url)
    shares = [uploads[i::devices] for i in range(devices)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    accepted: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(devices + 1)

    def device(share, n):
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        path = f"{parsed.path}/submission?deviceID=collect:bench{n:011d}"
        headers = {"User-Agent": USER_AGENT, "X-OpenRosa-Version": "1.0"}
        mine, codes, ok = [], [], []
        start_gate.wait()
        for instance_id, body, content_type in share:
            began = time.perf_counter()
            conn.request("HEAD", path, headers=headers)
            head = conn.getresponse()
            head.read()
            if head.will_close:
                conn.close()
            conn.request("POST", path, body=body, headers={**headers, "Content-Type": content_type})
            response = conn.getresponse()
            response.read()
            if response.will_close:
                conn.close()
            mine.append(time.perf_counter() - began)
            codes.append(response.status)
            if response.status == 201:
                ok.append(instance_id)
        conn.close()
        with lock:
            latencies.extend(mine)
            accepted.extend(ok)
            for code in codes:
                statuses[code] = statuses.get(code, 0) + 1

    threads = [threading.Thread(target=device, args=(share, n)) for n, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, latencies, statuses, accepted


BASELINE_APP = r"""
import os, sys, uuid, waitress
from werkzeug.wrappers import Request, Response
OUT = sys.argv[1]
OK = ('\n  <OpenRosaResponse xmlns="http://openrosa.org/http/response" items="0">\n'
      '    <message nature="">full submission upload was successful!</message>\n'
      '  </OpenRosaResponse>')
HEADERS = {"X-OpenRosa-Version": "1.0", "X-OpenRosa-Accept-Content-Length": "100000000"}
def write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data); os.fsync(fd)
    finally:
        os.close(fd)
@Request.application
def app(request):
    if request.method == "HEAD":
        return Response(status=204, headers=HEADERS)
    folder = os.path.join(OUT, uuid.uuid4().hex)
    os.mkdir(folder)
    for name, part in request.files.items():
        write(os.path.join(folder, "submission.xml" if name == "xml_submission_file"
                           else os.path.basename(name)), part.read())
    dir_fd = os.open(folder, os.O_RDONLY); os.fsync(dir_fd); os.close(dir_fd)
    return Response(OK, status=201, headers=HEADERS, content_type="text/xml; charset=utf-8")
import logging; logging.getLogger("waitress.queue").setLevel(logging.ERROR)
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[2]), threads=int(sys.argv[3]),
               recv_bytes=262_144, _quiet=True)
"""


def run_baseline(work: Path, uploads, devices: int, threads: int):
    import subprocess

    out = work / "baseline"
    out.mkdir()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BASELINE_APP, str(out), str(port), str(threads)])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.head(base + "/submission", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        return measured_load(proc.pid, base, uploads, devices)
    finally:
        proc.terminate()
        proc.wait(10)


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process and the processes it started (the store's)."""
    user = system = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for one in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        user += int(fields[11]) / tick
        system += int(fields[12]) / tick
    return user, system


def descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split()
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def measured_load(pid: int, base_url: str, uploads, devices: int):
    """run_load, plus the CPU seconds the server process and this client process spent."""
    server_before, client_before = cpu_split(pid), time.process_time()
    result = run_load(base_url, uploads, devices)
    after = cpu_split(pid)
    user, system = after[0] - server_before[0], after[1] - server_before[1]
    cpu = (user + system, time.process_time() - client_before, system)
    return (*result, cpu)


def report(label: str, seconds: float, latencies, statuses, n: int, cpu) -> float:
    rate = n / seconds
    quantiles = statistics.quantiles(latencies, n=100)
    p50, p99 = quantiles[49] * 1000, quantiles[98] * 1000
    print(
        f"{label:28} {rate:8.1f} submissions/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    print(
        f"{'':28} CPU per submission: server {cpu[0] / n * 1000:.2f} ms "
        f"({cpu[0] / seconds:.2f} cores; {cpu[2] / n * 1000:.2f} ms of it in the kernel), "
        f"client {cpu[1] / n * 1000:.2f} ms "
        f"({cpu[1] / seconds:.2f} cores)"
    )
    return rate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8, help="server.threads of the server")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="nigraan-bench-ingest-") as tmp:
        work = Path(tmp)
        xform = build_xform(work)  # writes work/instance/forms with its index.json
        schema = s.parse_xform(xform)
        rng = random.Random(args.seed)
        photo = bytes(rng.getrandbits(8) for _ in range(PHOTO_BYTES))
        items = submissions(schema, args.count, args.seed)
        uploads = encode_uploads(items, photo)
        warmup = encode_uploads(submissions(schema, 40, args.seed + 1), photo)
        payload_kb = sum(len(x) for _, x, _ in items) / len(items) / 1000
        photos = sum(len(p) for _, _, p in items) / len(items)
        print(
            f"{args.count} custody_visit submissions, {payload_kb:.1f} kB XML and {photos:.2f} "
            f"photos ({PHOTO_BYTES // 1000} kB) each on average; {args.devices} devices, "
            f"server.threads={args.threads}"
        )

        url = args.database_url or f"sqlite:///{work / 'nigraan.sqlite3'}"
        env = {
            "NIGRAAN_INSTANCE_DIR": str(work / "instance"),
            "NIGRAAN_DATABASE_URL": url,
            "NIGRAAN_SERVER_THREADS": str(args.threads),
            # Every simulated device connects from 127.0.0.1.
            "NIGRAAN_SERVER_CONNECTIONS_PER_ADDRESS": "900",
            "NIGRAAN_SERVER_CONNECTION_LIMIT": "900",
        }
        server = ServerProcess(env).start()
        store = Store.open(url)
        try:
            account = create_account(store.app_users, f"bench-{os.getpid()}", [FORM_ID])
            base = account.token_url(server.base)
            run_load(base, warmup, args.devices)
            seconds, latencies, statuses, accepted, cpu = measured_load(
                server.proc.pid, base, uploads, args.devices
            )
        finally:
            server.stop()
        ours = report("nigraan serve", seconds, latencies, statuses, len(items), cpu)
        with store.engine.connect() as conn:
            ids = set(
                conn.execute(
                    select(t.submissions.c.root_id).where(t.submissions.c.form_id == FORM_ID)
                ).scalars()
            )
            typed = conn.execute(
                select(func.count()).select_from(store.form_table(FORM_ID))
            ).scalar()
        store.close()
        missing = [i for i in accepted if i not in ids]
        print(
            f"{'':28} 201s received {len(accepted)}, stored submissions {len(ids) - 40} "
            f"(+40 warm-up), typed rows {typed - 40}, acknowledged but missing {len(missing)}"
        )
        if not args.skip_baseline:
            b_seconds, b_lat, b_statuses, _, b_cpu = run_baseline(
                work, uploads, args.devices, args.threads
            )
            base_rate = report(
                "baseline (files + fsync)", b_seconds, b_lat, b_statuses, len(items), b_cpu
            )
            print(f"ratio nigraan / baseline: {ours / base_rate:.2f}x")
        return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
