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

The same client and load can be sent to any other OpenRosa server in the same run, one `--url`
each (its submission URL): an ODK Central app user's
`https://central.example.org/v1/key/<token>/projects/<id>/submission` (or that URL with
`{token}` in place of the token and `--token`), or a server with HTTP Digest accounts
(`--user`/`--password`, answered after its 401 as Collect does). The form must be published
there first: `--write-form PATH` writes the bench's XForm (form id custody_visit) and exits.
Such a server's CPU is not measured (it may be anywhere); the 201s it answered are counted.
`--skip-nigraan` measures only the `--url` servers.

    .venv/bin/python bench/ingest.py --url 'https://central.example.org/v1/key/{token}/projects/3/submission' --token "$APP_USER_TOKEN"
    .venv/bin/python bench/ingest.py --skip-baseline --url http://127.0.0.1:8080/submission --user tablet-1 --password "$PW"
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this folder would come first on the path and bench/queue.py would shadow
# the standard library's queue (urllib3 needs it): the repository's root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import http.client  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import ssl  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402
from urllib.request import parse_http_list, parse_keqv_list  # noqa: E402
from xml.sax.saxutils import escape, quoteattr  # noqa: E402

import requests  # noqa: E402 - only to wait for the baseline server
from sqlalchemy import func, select  # noqa: E402

from bench.normalise import FORM_ID, build_xform, odata_rows  # noqa: E402
from server.device_accounts import create_account  # noqa: E402
from store import schema as s  # noqa: E402
from store import tables as t  # noqa: E402
from store.document import is_data_name, lexical  # noqa: E402
from store.store import Store  # noqa: E402
from tests.openrosa_client import USER_AGENT, ServerProcess, free_port  # noqa: E402

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


def encode_uploads(items, rng: random.Random):
    """Each submission's multipart body, encoded before the clock starts, so the client
    spends its time on the wire and not in Python (Collect's OkHttp streams files).

    Every photo has its own bytes (random, as a JPEG's do not compress), as every photo a
    tablet takes does: with one photo for all, a server that keeps files by their hash (both
    nigraan and Central do) would write it once.
    """
    from urllib3 import encode_multipart_formdata

    uploads = []
    for instance_id, xml, photos in items:
        fields = [("xml_submission_file", ("submission.xml", xml, "text/xml"))]
        fields += [(name, (name, rng.randbytes(PHOTO_BYTES), "image/jpeg")) for name in photos]
        body, content_type = encode_multipart_formdata(fields)
        uploads.append((instance_id, body, content_type))
    return uploads


class Digest:
    """HTTP Digest (RFC 2617, MD5, qop=auth) as Collect speaks it: the first request goes
    without, the 401's challenge is answered and kept for the next requests (nc counting up)
    until the server asks again (a new or stale nonce)."""

    def __init__(self, username: str, password: str):
        self.username, self.password = username, password
        self.challenge: dict[str, str] | None = None
        self.nc = 0

    def read_challenge(self, header: str | None) -> bool:
        if not header or not header.lower().startswith("digest "):
            return False
        self.challenge = parse_keqv_list(parse_http_list(header[len("Digest ") :]))
        self.nc = 0
        return True

    def header(self, method: str, uri: str) -> str | None:
        if self.challenge is None:
            return None
        c = self.challenge
        self.nc += 1
        nc, cnonce = f"{self.nc:08x}", os.urandom(8).hex()

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()  # Digest is MD5 (RFC 2617)

        ha1 = md5(f"{self.username}:{c['realm']}:{self.password}")
        ha2 = md5(f"{method}:{uri}")
        answer = md5(f"{ha1}:{c['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        parts = {
            "username": self.username,
            "realm": c["realm"],
            "nonce": c["nonce"],
            "uri": uri,
            "response": answer,
            "qop": "auth",
            "nc": nc,
            "cnonce": cnonce,
            "algorithm": "MD5",
        }
        if "opaque" in c:
            parts["opaque"] = c["opaque"]
        quoted = {"nc", "qop", "algorithm"}
        return "Digest " + ", ".join(
            f"{k}={v}" if k in quoted else f'{k}="{v}"' for k, v in parts.items()
        )


def shown(url: str) -> str:
    """A submission URL without its app-user token (never printed)."""
    return re.sub(r"/key/[^/]+", "/key/…", url)


def run_load(
    submission_url: str,
    uploads,
    devices: int,
    *,
    token: str | None = None,
    credentials: tuple[str, str] | None = None,
):
    """Send `uploads` to an OpenRosa submission URL from `devices` threads, each on its own
    keep-alive connection; returns (seconds, latencies of HEAD+POST, statuses, instanceIDs
    answered 201). `token` fills a `{token}` in the URL (or else goes as a Bearer header);
    `credentials` are a Digest user name and password."""
    if token is not None and "{token}" in submission_url:
        submission_url, token = submission_url.replace("{token}", token), None
    parsed = urlsplit(submission_url)
    shares = [uploads[i::devices] for i in range(devices)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    accepted: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(devices + 1)
    context = ssl.create_default_context() if parsed.scheme == "https" else None

    def connect():
        if context is not None:
            return http.client.HTTPSConnection(
                parsed.hostname, parsed.port, timeout=60, context=context
            )
        return http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)

    def device(share, n):
        conn = connect()
        query = f"{parsed.query}&" if parsed.query else ""
        path = f"{parsed.path}?{query}deviceID=collect:bench{n:011d}"
        headers = {"User-Agent": USER_AGENT, "X-OpenRosa-Version": "1.0"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        digest = Digest(*credentials) if credentials else None
        mine, codes, ok = [], [], []

        def send(method, body=None, extra=None):
            nonlocal conn
            for _ in range(2):  # once more after a Digest challenge
                sent = {**headers, **(extra or {})}
                answer = digest.header(method, path) if digest else None
                if answer:
                    sent["Authorization"] = answer
                conn.request(method, path, body=body, headers=sent)
                response = conn.getresponse()
                response.read()
                if response.will_close:
                    conn.close()
                    conn = connect()
                if not (
                    response.status == 401
                    and digest is not None
                    and digest.read_challenge(response.getheader("WWW-Authenticate"))
                ):
                    return response
            return response

        start_gate.wait()
        for instance_id, body, content_type in share:
            began = time.perf_counter()
            send("HEAD")
            response = send("POST", body, {"Content-Type": content_type})
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
        return measured_load(proc.pid, base + "/submission", uploads, devices)
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


def measured_load(pid: int | None, submission_url: str, uploads, devices: int, **auth):
    """run_load, plus the CPU seconds the server process (when it runs here: `pid`) and this
    client process spent."""
    server_before = cpu_split(pid) if pid is not None else None
    client_before = time.process_time()
    result = run_load(submission_url, uploads, devices, **auth)
    client = time.process_time() - client_before
    if server_before is None:
        return (*result, (None, client, None))
    after = cpu_split(pid)
    user, system = after[0] - server_before[0], after[1] - server_before[1]
    return (*result, (user + system, client, system))


def report(label: str, seconds: float, latencies, statuses, n: int, cpu) -> float:
    rate = n / seconds
    quantiles = statistics.quantiles(latencies, n=100)
    p50, p99 = quantiles[49] * 1000, quantiles[98] * 1000
    print(
        f"{label:28} {rate:8.1f} submissions/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    server = "server not measured (not this machine's process)"
    if cpu[0] is not None:
        server = (
            f"server {cpu[0] / n * 1000:.2f} ms ({cpu[0] / seconds:.2f} cores; "
            f"{cpu[2] / n * 1000:.2f} ms of it in the kernel)"
        )
    print(
        f"{'':28} CPU per submission: {server}, client {cpu[1] / n * 1000:.2f} ms "
        f"({cpu[1] / seconds:.2f} cores)"
    )
    return rate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8, help="server.threads of the server")
    parser.add_argument(
        "--seed",
        type=int,
        help="of the submissions (default: a new one each run, printed: a server that kept an "
        "earlier run's submissions must get new ones, not resends, which it answers faster)",
    )
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        help="another OpenRosa server's submission URL to send the same load to (repeatable)",
    )
    parser.add_argument("--token", help="app-user token: fills {token} in --url, else Bearer")
    parser.add_argument("--user", help="Digest user name for --url")
    parser.add_argument("--password", help="Digest password for --url")
    parser.add_argument(
        "--skip-nigraan", action="store_true", help="measure only the --url servers"
    )
    parser.add_argument("--write-form", type=Path, help="write the bench's XForm here and exit")
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    if (args.token or args.user) and not args.url:
        parser.error("--token, --user and --password are for a --url")
    auth = {
        "token": args.token,
        "credentials": (args.user, args.password) if args.user is not None else None,
    }

    with tempfile.TemporaryDirectory(prefix="nigraan-bench-ingest-") as tmp:
        work = Path(tmp)
        xform = build_xform(work)  # writes work/instance/forms with its index.json
        if args.write_form is not None:
            args.write_form.write_bytes(xform)
            print(f"wrote {args.write_form} (form id {FORM_ID}): publish it on the --url server")
            return 0
        schema = s.parse_xform(xform)
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
        rng = random.Random(seed)
        items = submissions(schema, args.count, seed)
        uploads = encode_uploads(items, rng)
        warmup = encode_uploads(submissions(schema, 40, seed + 1), rng)
        payload_kb = sum(len(x) for _, x, _ in items) / len(items) / 1000
        photos = sum(len(p) for _, _, p in items) / len(items)
        print(
            f"{args.count} custody_visit submissions, {payload_kb:.1f} kB XML and {photos:.2f} "
            f"photos ({PHOTO_BYTES // 1000} kB, each its own) each on average; {args.devices} devices, "
            f"server.threads={args.threads}, seed {seed}"
        )
        rates: dict[str, float] = {}
        missing: list[str] = []
        if not args.skip_nigraan:
            rates["nigraan"], missing = measure_nigraan(args, work, items, uploads, warmup)
        for number, url in enumerate(args.url, 1):
            label = f"--url {number}"
            print(f"{label}: {shown(url)}")
            run_load(url, warmup, args.devices, **auth)
            seconds, latencies, statuses, accepted, cpu = measured_load(
                None, url, uploads, args.devices, **auth
            )
            rates[label] = report(label, seconds, latencies, statuses, len(items), cpu)
            print(f"{'':28} 201s received {len(accepted)} of {len(items)}")
        if not args.skip_baseline and not args.skip_nigraan:
            b_seconds, b_lat, b_statuses, _, b_cpu = run_baseline(
                work, uploads, args.devices, args.threads
            )
            rates["baseline"] = report(
                "baseline (files + fsync)", b_seconds, b_lat, b_statuses, len(items), b_cpu
            )
            print(f"ratio nigraan / baseline: {rates['nigraan'] / rates['baseline']:.2f}x")
        if "nigraan" in rates:
            for number in range(1, len(args.url) + 1):
                other = rates[f"--url {number}"]
                print(f"ratio nigraan / --url {number}: {rates['nigraan'] / other:.2f}x")
        return 1 if missing else 0


def measure_nigraan(args, work: Path, items, uploads, warmup) -> tuple[float, list[str]]:
    """The load against a `nigraan serve` started here; (submissions/s, acknowledged ids the
    store does not hold)."""
    url = args.database_url or f"sqlite:///{work / 'nigraan.sqlite3'}"
    env = {
        "NIGRAAN_INSTANCE_DIR": str(work / "instance"),
        "NIGRAAN_DATABASE_URL": url,
        "NIGRAAN_SERVER_THREADS": str(args.threads),
        # Every simulated device connects from 127.0.0.1.
        "NIGRAAN_SERVER_CONNECTIONS_PER_ADDRESS": "900",
        "NIGRAAN_SERVER_CONNECTION_LIMIT": "900",
    }
    server = ServerProcess(env).start(timeout=120)
    store = Store.open(url)
    ids_before, typed_before = _held(store)  # a --database-url may hold earlier runs
    try:
        account = create_account(store.app_users, f"bench-{os.getpid()}", [FORM_ID])
        submission_url = account.token_url(server.base) + "/submission"
        run_load(submission_url, warmup, args.devices)
        seconds, latencies, statuses, accepted, cpu = measured_load(
            server.proc.pid, submission_url, uploads, args.devices
        )
    finally:
        server.stop()
    rate = report("nigraan serve", seconds, latencies, statuses, len(items), cpu)
    ids, typed = _held(store)
    store.close()
    missing = [i for i in accepted if i not in ids]
    print(
        f"{'':28} 201s received {len(accepted)}, stored submissions "
        f"{len(ids) - len(ids_before) - 40} (+40 warm-up), typed rows "
        f"{typed - typed_before - 40}, acknowledged but missing {len(missing)}"
    )
    return rate, missing


def _held(store: Store) -> tuple[set[str], int]:
    """The bench form's stored root ids and its typed rows."""
    with store.engine.connect() as conn:
        ids = set(
            conn.execute(
                select(t.submissions.c.root_id).where(t.submissions.c.form_id == FORM_ID)
            ).scalars()
        )
        typed = conn.execute(select(func.count()).select_from(store.form_table(FORM_ID))).scalar()
    return ids, typed


if __name__ == "__main__":
    sys.exit(main())
