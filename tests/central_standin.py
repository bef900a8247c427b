"""A stand-in for ODK Central v2026.2.2, served over real HTTP on 127.0.0.1, for sync tests.

Built from the exchanges recorded against a real Central (tests/data/central, README "facts"
10-31 and 37-40): sessions and 401.2, projects, forms with drafts, media, publish and 409.3/409.6,
app users and form assignments, the OData service document and `Submissions` feed (`$expand=*`,
`$top`, `$skip`, `$count`, `$select`, `$skiptoken` nextLinks built from the server's own base
URL, newest first, `$filter` on `__id` and `__system` fields only, deleted rows visible only when
the filter mentions deletedAt), single rows, repeat tables (repeats inside groups too [345-347]),
REST submissions (listing, one, delete, restore, review PATCH, comments, attachments, versions
and each version's XML [174-177, 201]: recorded XML given to `add_rows`, or XML the stand-in
writes from the row for versions it holds only as rows), a submission's `.xml` (an encrypted
one's envelope [213]), `/submissions/keys` [117, 211] and the managed-key decrypting export with
its wrong-passphrase 400.12 [122, 124]. It holds an in-memory data set that
tests change (add, edit, review, delete, restore) and faults they inject (5xx, slow answers,
expired tokens), and a pace as slow as a real Central's for benchmarks (`rows_per_second`,
`file_seconds`).

Not reproduced: `$metadata`, `$orderby`, filter functions (year() ...) (501 here), entities,
OpenRosa, other exports, audits.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

import orjson
from lxml import etree
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on the test output

ODATA_PARAMS = {
    "$format",
    "$count",
    "$skip",
    "$top",
    "$filter",
    "$wkt",
    "$expand",
    "$select",
    "$skiptoken",
    "$orderby",
    "$search",
}
FILTER_FIELDS = {  # Central's filterableFields: no __id, no form fields (fact 19)
    "__system/submissionDate": ("__system", "submissionDate"),
    "__system/updatedAt": ("__system", "updatedAt"),
    "__system/submitterId": ("__system", "submitterId"),
    "__system/reviewState": ("__system", "reviewState"),
    "__system/deletedAt": ("__system", "deletedAt"),
}
DATE_FIELDS = {"__system/submissionDate", "__system/updatedAt", "__system/deletedAt"}
REVIEW_STATES = {"hasIssues", "edited", "approved", "rejected", "received"}
JSON = "application/json; charset=utf-8"
NOT_FOUND = (404, 404.1, "Could not find the resource you were looking for.")
NO_AUTH = (401, 401.2, "Could not authenticate with the provided credentials.")


class Problem(Exception):
    def __init__(self, status: int, code: float, message: str, details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def problem(status, code, message, details=None) -> Problem:
    return Problem(status, code, message, details)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ------------------------------------------------------------------ $filter


_TOKEN = re.compile(
    r"\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<str>'(?:[^']|'')*')"
    r"|(?P<lit>[0-9][0-9T:.\-+Z]*)|(?P<word>[A-Za-z_$][\w$/-]*))"
)
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise problem(
                400,
                400.18,
                f"The OData filter expression you provided could not be "
                f"parsed: Unexpected character at {pos}",
                {"reason": f"Unexpected character at {pos}"},
            )
        kind = m.lastgroup
        out.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def compile_filter(text: str) -> Callable[[dict], bool]:
    """An OData $filter (Central's subset) as a predicate on a root row."""
    tokens = _tokens(text)
    i = 0

    def syntax(at: int):
        reason = f"Unexpected character at {at}"
        return problem(
            400,
            400.18,
            f"The OData filter expression you provided could not be parsed: {reason}",
            {"reason": reason},
        )

    def peek():
        return tokens[i] if i < len(tokens) else (None, None, len(text))

    def take():
        nonlocal i
        token = peek()
        if token[0] is None:
            raise syntax(len(text))
        i += 1
        return token

    def expr():
        left = conj()
        while peek()[1] == "or":
            take()
            right = conj()
            left = (lambda a, b: lambda row: a(row) or b(row))(left, right)
        return left

    def conj():
        left = unary()
        while peek()[1] == "and":
            take()
            right = unary()
            left = (lambda a, b: lambda row: a(row) and b(row))(left, right)
        return left

    def unary():
        if peek()[1] == "not":
            take()
            inner = unary()
            return lambda row: not inner(row)
        if peek()[0] == "lp":
            take()
            inner = expr()
            if take()[0] != "rp":
                raise syntax(peek()[2])
            return inner
        return comparison()

    def operand():
        kind, value, at = take()
        if kind == "str":
            return ("value", value[1:-1].replace("''", "'"))
        if kind == "lit":
            return ("value", value)
        if kind == "word":
            if value == "null":
                return ("value", None)
            if value in ("true", "false"):
                return ("value", value == "true")
            if value.endswith("()") or peek()[0] == "lp":
                raise problem(
                    501,
                    501.4,
                    f"The given OData filter expression uses features not "
                    f"supported by this stand-in: {value}",
                )
            name = value.removeprefix("$root/Submissions/")
            if name not in FILTER_FIELDS:
                raise problem(
                    501,
                    501.5,
                    "The given OData filter expression references fields "
                    f"not supported by this server: {value} at {at}",
                    {"at": at, "text": value},
                )
            return ("field", name)
        raise syntax(at)

    def comparison():
        left = operand()
        _kind, op, at = take()
        if op not in _OPS:
            raise syntax(at)
        right = operand()
        return _comparator(left, op, right)

    predicate = expr()
    if i != len(tokens):
        raise syntax(tokens[i][2])
    return predicate


def _comparator(left, op, right) -> Callable[[dict], bool]:
    if left[0] != "field" and right[0] == "field":
        flipped = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}.get(op, op)
        left, right, op = right, left, flipped
    if left[0] != "field":
        value = left[1] == right[1]
        return lambda row: value if op == "eq" else not value
    path = FILTER_FIELDS[left[1]]
    literal = right[1] if right[0] == "value" else None
    if left[1] in DATE_FIELDS and isinstance(literal, str):
        try:
            literal = iso(parse_iso(literal).astimezone(UTC))
        except ValueError:
            return lambda row: True  # Central does not reject a quoted non-date (fact 19, [303])
        convert = str  # stored as Central writes them (UTC, ms, Z): text order is time order
    else:
        convert = str if literal is not None and not isinstance(literal, bool) else (lambda v: v)
        literal = str(literal) if literal is not None and not isinstance(literal, bool) else literal

    def get(row):
        value = row
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return None if value is None else convert(value)

    def test(row):
        value = get(row)
        if op == "eq":
            return value == literal
        if op == "ne":
            return value != literal
        if value is None or literal is None:
            return False
        return {
            "gt": value > literal,
            "ge": value >= literal,
            "lt": value < literal,
            "le": value <= literal,
        }[op]

    return test


# -------------------------------------------------------------------- state


@dataclass
class Version:
    """One version of a submission as Central keeps it: its instance XML, served verbatim."""

    instance_id: str
    created: str  # createdAt, as Central writes it
    xml: bytes | None  # None: written from the row when first asked for (`_row_xml`)


@dataclass
class Submission:
    seq: int
    row: dict[str, Any]  # the OData row with $expand=* shape, __system included
    created: datetime
    versions: list[Version] = field(default_factory=list)  # oldest first; the last is current
    attachments: dict[str, tuple[bytes, str] | None] = field(default_factory=dict)
    comments: list[dict] = field(default_factory=list)
    submitter_id: int = 7
    device_id: str | None = None
    user_agent: str = "org.odk.collect.android/v2025.2.3"

    @property
    def root_id(self) -> str:
        return self.row["__id"]

    @property
    def xml_versions(self) -> list[str]:
        """instanceIDs of every version, oldest first."""
        return [v.instance_id for v in self.versions]

    @property
    def deleted(self) -> bool:
        return self.row["__system"].get("deletedAt") is not None


@dataclass
class Form:
    project_id: int
    form_id: str
    name: str
    created: str
    versions: list[tuple[str, bytes, str]] = field(default_factory=list)  # (version, xml, at)
    draft: tuple[str, bytes] | None = None
    draft_attachments: dict[str, bytes | None] = field(default_factory=dict)
    attachments: dict[str, bytes] = field(default_factory=dict)
    repeats: list[str] = field(default_factory=list)
    subs: dict[str, Submission] = field(default_factory=dict)  # root id -> submission
    order: list[str] = field(default_factory=list)  # root ids, oldest first
    position: dict[str, int] = field(default_factory=dict)
    revision: int = 0  # bumped on every data change (count cache)


@dataclass
class Fault:
    match: str
    status: int | None
    delay: float
    count: int
    method: str | None = None
    retry_after: str | None = None  # the Retry-After header of the failure, if any


def _form_meta(xml: bytes) -> tuple[str, str, str, list[str]]:
    """form id, version, title and repeat table names (Submissions.a.b) of an XForm."""
    root = etree.fromstring(xml)
    ns = {"h": "http://www.w3.org/1999/xhtml", "x": "http://www.w3.org/2002/xforms"}
    instance = root.find(".//x:model/x:instance", ns)
    data = next(iter(instance))
    title = root.findtext(".//h:title", default="", namespaces=ns)
    repeats = []
    for repeat in root.iter("{http://www.w3.org/2002/xforms}repeat"):
        nodeset = repeat.get("nodeset", "")
        parts = [p for p in nodeset.split("/") if p][1:]
        repeats.append("Submissions." + ".".join(parts))
    return data.get("id"), data.get("version") or "", title, repeats


ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "pw-not-real"


def admin_settings(base_url: str, **values):
    """CentralSettings that sign in to the stand-in (or a closed port) as its admin, project 1."""
    from sync.central import CentralSettings

    return CentralSettings(base_url, ADMIN_EMAIL, ADMIN_PASSWORD, 1, **values)


class CentralStandin:
    """The stand-in's state and WSGI app. `serve()` starts it on 127.0.0.1."""

    def __init__(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD):
        self.users = {email: password}
        self.tokens: dict[str, str] = {}
        self.logged_out: set[str] = set()
        self.projects = {1: "nigraan test project"}
        self.forms: dict[tuple[int, str], Form] = {}
        self.app_users: list[dict] = []
        self.assignments: dict[int, set[tuple[str, str]]] = {}  # actor id -> (form id, role)
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, int]] = []  # (method, path?query, status)
        self.lock = threading.RLock()
        self.base_url = "http://127.0.0.1:0"
        self.domain: str | None = None  # Central's DOMAIN, for links; default: base_url
        self._seq = itertools.count(1)
        self._actor = itertools.count(20)
        self._last = datetime.now(UTC) - timedelta(days=1)
        self._count_cache: dict[tuple, int] = {}
        self.logins = 0
        self.server = None
        self._in_flight: list[str] = []  # requests held by a slow fault right now
        # As slow as a real Central (bench/sync.py): `Submissions?$expand=*` pages take
        # len(rows) / rows_per_second to answer (a real one gives about 2,500 rows a second),
        # and each attachment download file_seconds (a network's round trip and more).
        self.rows_per_second: float | None = None
        self.file_seconds = 0.0
        self.files_now = 0  # attachment downloads being answered right now
        self.files_at_once = 0  # the most there were at one time
        # Encryption [117, 122, 124, 211]: per (project, form) the keys `/submissions/keys`
        # lists, and for a managed key the passphrase and the decrypted export Central answers
        # `POST …/submissions.csv.zip` with when given `<keyId>=<passphrase>`.
        self.encryption_keys: dict[tuple[int, str], list[dict]] = {}
        self.managed_exports: dict[tuple[int, str], tuple[int, str, bytes]] = {}

    # -- serving

    def serve(self) -> CentralStandin:
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.base_url = f"http://127.0.0.1:{self.server.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- test controls

    def now(self) -> datetime:
        """A clock that never repeats a millisecond (Central orders by createdAt, id)."""
        with self.lock:
            moment = datetime.now(UTC).replace(
                microsecond=datetime.now(UTC).microsecond // 1000 * 1000
            )
            if moment <= self._last:
                moment = self._last + timedelta(milliseconds=1)
            self._last = moment
            return moment

    def fail(
        self,
        status: int = 500,
        count: int = 1,
        match: str = "",
        method=None,
        retry_after: str | None = None,
    ) -> None:
        """The next `count` requests whose path contains `match` answer `status` (with a
        Retry-After header when `retry_after` is given)."""
        self.faults.append(Fault(match, status, 0.0, count, method, retry_after))

    def slow(self, seconds: float, count: int = 1, match: str = "", method=None) -> None:
        """The next `count` matching requests wait `seconds` before answering."""
        self.faults.append(Fault(match, None, seconds, count, method))

    def expire_tokens(self) -> None:
        """Every session ends (as after 24 h): the next request gets 401.2."""
        with self.lock:
            self.logged_out |= set(self.tokens)
            self.tokens.clear()

    def add_form(self, xml: bytes, project_id: int = 1, attachments=None) -> Form:
        """A published form (as if created and published earlier)."""
        form_id, version, title, repeats = _form_meta(xml)
        at = iso(self.now())
        form = Form(project_id, form_id, title, at, [(version, xml, at)], repeats=repeats)
        form.attachments = dict(attachments or {})
        self.forms[(project_id, form_id)] = form
        return form

    def form(self, form_id: str, project_id: int = 1) -> Form:
        return self.forms[(project_id, form_id)]

    def add_rows(
        self,
        form_id: str,
        rows: list[dict],
        *,
        keep_dates: bool = False,
        attachments: dict[str, dict[str, tuple[bytes, str] | None]] | None = None,
        versions: dict[str, list[bytes]] | None = None,
        project_id: int = 1,
    ) -> None:
        """Submissions as OData rows ($expand=* shape); oldest first unless keep_dates.

        `versions` gives, per root id, the instance XML of every version oldest first (the
        last is the row's); an edited row (`__system.edits` > 0) needs them. Without them a
        row's one version is its XML written from the row (`_row_xml`).
        """
        form = self.form(form_id, project_id)
        with self.lock:
            ordered = rows
            if keep_dates:
                ordered = sorted(rows, key=lambda r: r["__system"]["submissionDate"])
            for row in ordered:
                row = copy.deepcopy(row)
                if keep_dates:
                    created = parse_iso(row["__system"]["submissionDate"])
                    self._last = max(self._last, created)
                else:
                    created = self.now()
                    row["__system"]["submissionDate"] = iso(created)
                    row["__system"].setdefault("updatedAt", None)
                sub = Submission(next(self._seq), row, created)
                sub.versions = self._row_versions(form, row, (versions or {}).get(row["__id"]))
                names = (attachments or {}).get(row["__id"])
                if names:
                    sub.attachments = dict(names)
                form.subs[sub.root_id] = sub
                form.position[sub.root_id] = len(form.order)
                form.order.append(sub.root_id)
            form.revision += 1

    def _row_versions(self, form: Form, row: dict, xmls: list[bytes] | None) -> list[Version]:
        system = row["__system"]
        current = (row.get("meta") or {}).get("instanceID") or row["__id"]
        if xmls is None:
            if system.get("edits"):
                raise ValueError(
                    f"{row['__id']} has {system['edits']} edits: give the XML of "
                    "every version (add_rows(versions=...))."
                )
            return [Version(current, system["submissionDate"], None)]
        out = []
        for n, xml in enumerate(xmls):
            meta = etree.fromstring(xml).find("meta")
            instance_id = meta.findtext("instanceID") if meta is not None else None
            created = system["submissionDate"] if n == 0 else system.get("updatedAt")
            out.append(Version(instance_id or row["__id"], created, xml))
        if out[-1].instance_id != current or len(out) != (system.get("edits") or 0) + 1:
            raise ValueError(
                f"The versions given for {row['__id']} do not end with its current "
                f"version {current} or do not number edits + 1."
            )
        return out

    def edit(self, form_id: str, root_id: str, change: Callable[[dict], None]) -> str:
        """A new version: `change` edits the row's data; a new meta/instanceID; edited."""
        form = self.form(form_id)
        with self.lock:
            sub = form.subs[root_id]
            previous = sub.versions[-1]
            if previous.xml is None:  # the version being replaced, before its data changes
                previous.xml = _row_xml(form, sub.row, None)
            change(sub.row)
            new_id = f"uuid:{secrets.token_hex(4)}-edit-{len(sub.versions)}"
            sub.row["meta"]["instanceID"] = new_id
            system = sub.row["__system"]
            system["edits"] = len(sub.versions)
            system["reviewState"] = "edited"
            system["updatedAt"] = iso(self.now())
            xml = _row_xml(form, sub.row, previous.instance_id)
            sub.versions.append(Version(new_id, system["updatedAt"], xml))
            form.revision += 1
            return new_id

    def review(self, form_id: str, root_id: str, state: str) -> None:
        form = self.form(form_id)
        with self.lock:
            system = form.subs[root_id].row["__system"]
            system["reviewState"] = state
            system["updatedAt"] = iso(self.now())
            form.revision += 1

    def delete(self, form_id: str, root_id: str) -> None:
        """Soft delete: deletedAt set, updatedAt untouched (fact 22)."""
        form = self.form(form_id)
        with self.lock:
            form.subs[root_id].row["__system"]["deletedAt"] = iso(self.now())
            form.revision += 1

    def restore(self, form_id: str, root_id: str) -> None:
        form = self.form(form_id)
        with self.lock:
            form.subs[root_id].row["__system"]["deletedAt"] = None
            form.revision += 1

    def purge(self, form_id: str, root_id: str) -> None:
        form = self.form(form_id)
        with self.lock:
            del form.subs[root_id]
            form.revision += 1

    def in_flight(self, contains: str = "") -> bool:
        """Is a request whose path contains `contains` being held by a slow fault now?"""
        with self.lock:
            return any(contains in path for path in self._in_flight)

    def requests(self, contains: str = "") -> list[tuple[str, str, int]]:
        return [entry for entry in self.log if contains in entry[1]]

    # -- WSGI

    def wsgi(self, environ, start_response):
        request = Request(environ)
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
        response = self._fault_or_none(request)
        if response is None:
            try:
                response = self._dispatch(request)
            except Problem as p:
                body = {"message": p.message, "code": p.code}
                if p.details is not None:
                    body["details"] = p.details
                response = self._json(body, p.status)
                if "/forms/" in request.path and ".svc" in request.path:
                    response.headers["OData-Version"] = "4.0"
        self.log.append((request.method, raw_path, response.status_code))
        return response(environ, start_response)

    def _fault_or_none(self, request: Request) -> Response | None:
        with self.lock:
            fault = next(
                (
                    f
                    for f in self.faults
                    if f.count > 0
                    and f.match in request.full_path
                    and (f.method is None or f.method == request.method)
                ),
                None,
            )
            if fault is None:
                return None
            fault.count -= 1
            self.faults = [f for f in self.faults if f.count > 0]
        if fault.delay:
            with self.lock:
                self._in_flight.append(request.full_path)
            time.sleep(fault.delay)
            with self.lock:
                self._in_flight.remove(request.full_path)
        if fault.status:
            body = {"message": "Injected failure.", "code": fault.status}
            if fault.retry_after is not None:
                return self._json(body, fault.status, Retry_After=fault.retry_after)
            return self._json(body, fault.status)
        return None

    @staticmethod
    def _json(body: Any, status: int = 200, **headers) -> Response:
        response = Response(orjson.dumps(body), status=status, content_type=JSON)
        response.headers["Cache-Control"] = "no-store"
        for key, value in headers.items():
            response.headers[key.replace("_", "-")] = value
        return response

    def _auth(self, request: Request) -> str:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            raise problem(401, 401.3, "This authentication method is only available over HTTPS")
        token = header.removeprefix("Bearer ").strip()
        with self.lock:
            email = self.tokens.get(token)
        if not header.startswith("Bearer ") or email is None:
            raise problem(*NO_AUTH)
        return email

    def _dispatch(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/v1/sessions" and method == "POST":
            return self._login(request)
        if not path.startswith("/v1/"):
            raise problem(
                404, 404.2, "Expected an API version (eg /v1) at the start of the request URL."
            )
        self._auth(request)
        for verb, pattern, handler in self.ROUTES:
            if verb == method:
                m = re.fullmatch(pattern, path)
                if m:
                    return handler(self, request, **m.groupdict())
        raise problem(*NOT_FOUND)

    # -- sessions, projects

    def _login(self, request: Request) -> Response:
        try:
            body = orjson.loads(request.get_data())
        except orjson.JSONDecodeError as exc:
            raise problem(
                400,
                400.1,
                "Could not parse the given data (0 chars) as json.",
                {"format": "json", "rawLength": 0},
            ) from exc
        if self.users.get(body.get("email")) != body.get("password"):
            raise problem(*NO_AUTH)
        token = secrets.token_urlsafe(48)
        created = self.now()
        with self.lock:
            self.tokens[token] = body["email"]
            self.logins += 1
        expires = created + timedelta(days=1)
        response = self._json(
            {
                "token": token,
                "csrf": secrets.token_urlsafe(48),
                "expiresAt": iso(expires),
                "createdAt": iso(created),
            }
        )
        response.headers["Vary"] = "*"
        return response

    def _logout(self, request: Request) -> Response:
        token = request.headers["Authorization"].removeprefix("Bearer ").strip()
        with self.lock:
            self.tokens.pop(token, None)
            self.logged_out.add(token)
        return self._json({"success": True})

    def _user(self, request: Request) -> Response:
        email = self._auth(request)
        return self._json(
            {
                "id": 5,
                "type": "user",
                "displayName": email,
                "createdAt": iso(self._last),
                "updatedAt": None,
                "deletedAt": None,
                "email": email,
            }
        )

    def _project_json(self, pid: int) -> dict:
        return {
            "id": pid,
            "name": self.projects[pid],
            "description": None,
            "archived": False,
            "keyId": None,
            "createdAt": "2026-11-28T19:14:38.000Z",
            "updatedAt": None,
            "deletedAt": None,
        }

    def _projects(self, request: Request) -> Response:
        return self._json([self._project_json(pid) for pid in sorted(self.projects)])

    def _project(self, request: Request, pid: str) -> Response:
        if int(pid) not in self.projects:
            raise problem(*NOT_FOUND)
        return self._json(self._project_json(int(pid)))

    # -- forms

    def _get_form(self, pid: str, fid: str) -> Form:
        if int(pid) not in self.projects:
            raise problem(*NOT_FOUND)
        form = self.forms.get((int(pid), fid))
        if form is None:
            raise problem(*NOT_FOUND)
        return form

    def _form_json(self, form: Form, draft: bool = False) -> dict:
        if draft and form.draft:
            version, xml = form.draft
            published_at = None
        elif form.versions:
            version, xml, published_at = form.versions[-1]
        else:
            version, xml = form.draft
            published_at = None
        body = {
            "projectId": form.project_id,
            "xmlFormId": form.form_id,
            "state": "open",
            "enketoId": None,
            "enketoOnceId": None,
            "createdAt": form.created,
            "updatedAt": None,
            "webformsEnabled": True,
            "keyId": None,
            "version": version,
            "hash": hashlib.md5(xml).hexdigest(),
            "sha": hashlib.sha1(xml).hexdigest(),
            "sha256": hashlib.sha256(xml).hexdigest(),
        }
        if draft or not form.versions:
            body["draftToken"] = "draft" + form.form_id
        body["publishedAt"] = published_at
        body["name"] = form.name
        return body

    def _forms(self, request: Request, pid: str) -> Response:
        if int(pid) not in self.projects:
            raise problem(*NOT_FOUND)
        forms = [f for (p, _), f in sorted(self.forms.items()) if p == int(pid)]
        return self._json([self._form_json(f) for f in forms])

    def _form(self, request: Request, pid: str, fid: str) -> Response:
        return self._json(self._form_json(self._get_form(pid, fid)))

    def _form_xml(self, request: Request, pid: str, fid: str) -> Response:
        form = self._get_form(pid, fid)
        if not form.versions:
            raise problem(*NOT_FOUND)
        return Response(form.versions[-1][1], content_type="application/xml")

    def _versions(self, request: Request, pid: str, fid: str) -> Response:
        form = self._get_form(pid, fid)
        out = []
        for version, xml, at in reversed(form.versions):
            out.append(
                {
                    "projectId": form.project_id,
                    "xmlFormId": form.form_id,
                    "version": version,
                    "hash": hashlib.md5(xml).hexdigest(),
                    "publishedAt": at,
                    "name": form.name,
                }
            )
        return self._json(out)

    def _version_xml(self, request: Request, pid: str, fid: str, version: str) -> Response:
        form = self._get_form(pid, fid)
        for v, xml, _ in form.versions:
            if v == version:
                return Response(xml, content_type="application/xml")
        raise problem(*NOT_FOUND)

    def _create_form(self, request: Request, pid: str) -> Response:
        if int(pid) not in self.projects:
            raise problem(*NOT_FOUND)
        xml = request.get_data()
        try:
            form_id, version, title, repeats = _form_meta(xml)
        except Exception as exc:
            raise problem(400, 400.2, "A problem occurred parsing the XForm.") from exc
        if (int(pid), form_id) in self.forms:
            raise problem(
                409,
                409.3,
                f"A resource already exists with projectId,xmlFormId value(s) of {pid},{form_id}.",
                {"fields": ["projectId", "xmlFormId"], "values": [pid, form_id], "table": "forms"},
            )
        form = Form(int(pid), form_id, title, iso(self.now()), repeats=repeats)
        form.draft = (version, xml)
        form.draft_attachments = dict.fromkeys(_media_names(xml))
        self.forms[(int(pid), form_id)] = form
        if request.args.get("publish", "").lower() == "true":
            self._publish_draft(form, None)
        return self._json(self._form_json(form, draft=form.draft is not None))

    def _create_draft(self, request: Request, pid: str, fid: str) -> Response:
        form = self._get_form(pid, fid)
        xml = request.get_data() or form.versions[-1][1]
        _, version, _, _ = _form_meta(xml)
        form.draft = (version, xml)
        names = _media_names(xml)
        form.draft_attachments = {n: form.attachments.get(n) for n in names}
        return self._json({"success": True})

    def _draft(self, request: Request, pid: str, fid: str) -> Response:
        form = self._get_form(pid, fid)
        if form.draft is None:
            raise problem(*NOT_FOUND)
        return self._json(self._form_json(form, draft=True))

    def _delete_draft(self, request: Request, pid: str, fid: str) -> Response:
        form = self._get_form(pid, fid)
        if form.draft is None:
            raise problem(*NOT_FOUND)
        form.draft = None
        return self._json({"success": True})

    def _draft_attachments(self, request: Request, pid: str, fid: str) -> Response:
        form = self._get_form(pid, fid)
        if form.draft is None:
            raise problem(*NOT_FOUND)
        return self._json(
            [
                {
                    "name": n,
                    "type": _media_type(n),
                    "exists": c is not None,
                    "blobExists": c is not None,
                    "datasetExists": False,
                    "hash": hashlib.md5(c).hexdigest() if c is not None else None,
                    "updatedAt": None,
                }
                for n, c in form.draft_attachments.items()
            ]
        )

    def _upload_draft_attachment(self, request: Request, pid: str, fid: str, name: str):
        form = self._get_form(pid, fid)
        if form.draft is None or name not in form.draft_attachments:
            raise problem(*NOT_FOUND)
        content = request.get_data()
        form.draft_attachments[name] = content
        return self._json(
            {
                "name": name,
                "type": _media_type(name),
                "hash": hashlib.md5(content).hexdigest(),
                "exists": True,
                "blobExists": True,
                "datasetExists": False,
                "updatedAt": iso(self.now()),
            }
        )

    def _publish(self, request: Request, pid: str, fid: str) -> Response:
        form = self._get_form(pid, fid)
        if form.draft is None:
            raise problem(*NOT_FOUND)
        self._publish_draft(form, request.args.get("version"))
        return self._json({"success": True})

    def _publish_draft(self, form: Form, new_version: str | None) -> None:
        version, xml = form.draft
        version = new_version or version
        if any(v == version for v, _, _ in form.versions):
            raise problem(
                409,
                409.6,
                f"You tried to publish the form '{form.form_id}' with "
                f"version '{version}', but a published form has already existed in "
                "this project with those identifiers.",
                {"xmlFormId": form.form_id, "version": version},
            )
        form.versions.append((version, xml, iso(self.now())))
        form.attachments = {n: c for n, c in form.draft_attachments.items() if c is not None}
        form.repeats = _form_meta(xml)[3]
        form.draft = None

    # -- app users

    def _app_users(self, request: Request, pid: str) -> Response:
        return self._json([u for u in self.app_users if u["projectId"] == int(pid)])

    def _create_app_user(self, request: Request, pid: str) -> Response:
        body = orjson.loads(request.get_data())
        user = {
            "projectId": int(pid),
            "id": next(self._actor),
            "displayName": body["displayName"],
            "createdAt": iso(self.now()),
            "type": "field_key",
            "token": secrets.token_urlsafe(48)[:64],
            "updatedAt": None,
            "deletedAt": None,
        }
        self.app_users.append(user)
        return self._json(user)

    def _assign(self, request: Request, pid: str, fid: str, role: str, actor: str):
        self._get_form(pid, fid)
        user = next((u for u in self.app_users if u["id"] == int(actor)), None)
        if user is None:
            raise problem(*NOT_FOUND)
        self.assignments.setdefault(user["id"], set()).add((fid, role))
        return self._json({"success": True})

    # -- REST submissions

    def _sub(self, pid: str, fid: str, iid: str, deleted_ok: bool = False) -> Submission:
        form = self._get_form(pid, fid)
        sub = form.subs.get(iid)
        if sub is None or (sub.deleted and not deleted_ok):
            raise problem(*NOT_FOUND)
        return sub

    def _sub_meta(self, sub: Submission, current_version: bool = True) -> dict:
        system = sub.row["__system"]
        body = {
            "instanceId": sub.root_id,
            "submitterId": sub.submitter_id,
            "deviceId": sub.device_id,
            "createdAt": system["submissionDate"],
            "updatedAt": system.get("updatedAt"),
            "reviewState": system.get("reviewState"),
            "userAgent": sub.user_agent,
            "deletedAt": system.get("deletedAt"),
        }
        if not current_version:  # the bare submission a review PATCH answers [186]
            del body["userAgent"]
            return body
        body["currentVersion"] = {
            "submitterId": sub.submitter_id,
            "createdAt": system["submissionDate"],
            "instanceName": (sub.row.get("meta") or {}).get("instanceName"),
            "instanceId": sub.xml_versions[-1],
            "current": True,
            "deviceId": sub.device_id,
            "userAgent": sub.user_agent,
        }
        return body

    def _list_submissions(self, request: Request, pid: str, fid: str) -> Response:
        form = self._get_form(pid, fid)
        deleted = request.args.get("deleted", "").lower() == "true"
        with self.lock:
            subs = [form.subs[r] for r in reversed(form.order) if r in form.subs]
            subs = [s for s in subs if s.deleted == deleted]
            offset = int(request.args.get("offset", 0))
            limit = request.args.get("limit")
            subs = subs[offset : offset + int(limit)] if limit else subs[offset:]
            body = [self._sub_meta(s) for s in subs]
        return self._json(body)

    def _get_submission(self, request: Request, pid: str, fid: str, iid: str) -> Response:
        return self._json(self._sub_meta(self._sub(pid, fid, iid)))

    def _delete_submission(self, request: Request, pid: str, fid: str, iid: str):
        self._sub(pid, fid, iid)
        self.delete(fid, iid)
        return self._json({"success": True})

    def _restore_submission(self, request: Request, pid: str, fid: str, iid: str):
        sub = self._sub(pid, fid, iid, deleted_ok=True)
        if not sub.deleted:
            raise problem(*NOT_FOUND)
        self.restore(fid, iid)
        return self._json({"success": True})

    def _patch_submission(self, request: Request, pid: str, fid: str, iid: str):
        sub = self._sub(pid, fid, iid)
        state = orjson.loads(request.get_data()).get("reviewState")
        if state not in REVIEW_STATES:  # [192]
            raise problem(
                400,
                400.8,
                f"Unexpected state value {state}; not a recognized state name",
                {"field": "state", "value": state, "reason": "not a recognized state name"},
            )
        self.review(fid, iid, state)
        return self._json(self._sub_meta(sub, current_version=False))

    def _submission_versions(self, request: Request, pid: str, fid: str, iid: str) -> Response:
        """Every version, newest first, `current` on the newest [174, 201]."""
        sub = self._sub(pid, fid, iid)
        form = self._get_form(pid, fid)
        with self.lock:
            body = [
                {
                    "submitterId": sub.submitter_id,
                    "createdAt": v.created,
                    "instanceName": _instance_name(self._version_xml_bytes(form, sub, v)),
                    "instanceId": v.instance_id,
                    "current": n == len(sub.versions) - 1,
                    "deviceId": sub.device_id,
                    "userAgent": sub.user_agent,
                }
                for n, v in reversed(list(enumerate(sub.versions)))
            ]
        return self._json(body)

    def _submission_version_xml(
        self, request: Request, pid: str, fid: str, iid: str, vid: str
    ) -> Response:
        """One version's XML, byte for byte [176, 177]."""
        sub = self._sub(pid, fid, iid)
        version = next((v for v in sub.versions if v.instance_id == vid), None)
        if version is None:
            raise problem(*NOT_FOUND)
        xml = self._version_xml_bytes(self._get_form(pid, fid), sub, version)
        return Response(xml, content_type="application/xml; charset=utf-8")

    def _version_xml_bytes(self, form: Form, sub: Submission, version: Version) -> bytes:
        with self.lock:
            if version.xml is None:  # only ever the current version (edit() writes the others)
                version.xml = _row_xml(form, sub.row, None)
            return version.xml

    def _comments(self, request: Request, pid: str, fid: str, iid: str) -> Response:
        sub = self._sub(pid, fid, iid)
        return self._json(list(reversed(sub.comments)))

    def _add_comment(self, request: Request, pid: str, fid: str, iid: str) -> Response:
        sub = self._sub(pid, fid, iid)
        comment = {
            "body": orjson.loads(request.get_data())["body"],
            "actorId": 5,
            "createdAt": iso(self.now()),
        }
        sub.comments.append(comment)
        return self._json(comment)

    def _submission_xml(self, request: Request, pid: str, fid: str, iid: str) -> Response:
        """The current version's XML; for an encrypted submission, its envelope [121, 213]."""
        sub = self._sub(pid, fid, iid)
        xml = self._version_xml_bytes(self._get_form(pid, fid), sub, sub.versions[-1])
        return Response(xml, content_type="application/xml; charset=utf-8")

    def _submission_keys(self, request: Request, pid: str, fid: str) -> Response:
        """[117, 211]: `[{id, public, managed, hint, createdAt}]`, empty for a plain form."""
        self._get_form(pid, fid)
        return self._json(self.encryption_keys.get((int(pid), fid), []))

    def _export_csvzip(self, request: Request, pid: str, fid: str) -> Response:
        """Only the managed-key decrypting export [122] and its wrong passphrase (400.12) [124]."""
        form = self._get_form(pid, fid)
        managed = self.managed_exports.get((int(pid), fid))
        if managed is None or str(managed[0]) not in request.form:
            raise problem(501, 501.1, "The stand-in only answers the managed-key export.")
        key_id, passphrase, body = managed
        if request.form[str(key_id)] != passphrase:
            raise problem(
                400,
                400.12,
                "Could not perform decryption. Double check your "
                "passphrase and your data and try again.",
            )
        response = Response(body, content_type="application/zip")
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{form.form_id}.zip"; '
            f"filename*=UTF-8''{quote(form.form_id)}.zip"
        )
        return response

    def _attachments(self, request: Request, pid: str, fid: str, iid: str) -> Response:
        sub = self._sub(pid, fid, iid)
        listing = [{"name": n, "exists": c is not None} for n, c in sub.attachments.items()]
        return self._json(listing)

    def _attachment(self, request: Request, pid: str, fid: str, iid: str, name: str):
        sub = self._sub(pid, fid, iid)
        found = sub.attachments.get(name)
        if found is None:
            raise problem(*NOT_FOUND)
        with self.lock:
            self.files_now += 1
            self.files_at_once = max(self.files_at_once, self.files_now)
        try:
            time.sleep(self.file_seconds)
        finally:
            with self.lock:
                self.files_now -= 1
        content, content_type = found
        response = Response(content, content_type=content_type)
        response.headers["ETag"] = f'"{hashlib.md5(content).hexdigest()}"'
        disposition = "inline" if content_type.startswith("image/") else "attachment"
        response.headers["Content-Disposition"] = (
            f"{disposition}; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"
        )
        return response

    # -- OData

    def _svc(self, pid, fid) -> str:
        """The service root as Central writes it in links: its DOMAIN, then the path."""
        return f"{self.domain or self.base_url}/v1/projects/{pid}/forms/{fid}.svc"

    def _odata_headers(self, response: Response) -> Response:
        response.headers["OData-Version"] = "4.0"
        response.headers["Cache-Control"] = "private, no-cache"
        return response

    def _service(self, request: Request, pid: str, fid: str) -> Response:
        form = self._get_form(pid, fid)
        svc = self._svc(pid, fid)
        tables = ["Submissions", *form.repeats]
        body = {
            "@odata.context": f"{svc}/$metadata",
            "value": [{"name": t, "kind": "EntitySet", "url": t} for t in tables],
        }
        response = self._json(body)
        response.headers["Content-Type"] = JSON + "; odata.metadata=minimal"
        return self._odata_headers(response)

    def _odata(self, request: Request, pid: str, fid: str, table: str) -> Response:
        form = self._get_form(pid, fid)
        args = request.args
        for key in args:
            if key not in ODATA_PARAMS:
                raise problem(
                    501, 501.1, f"The requested feature {key} is not supported by this server."
                )
        if args.get("$format", "json") != "json":  # [310]
            raise problem(
                406,
                406.1,
                "Requested format not acceptable; this resource allows: application/json,json.",
                {"allowed": ["application/json", "json"], "got": args["$format"]},
            )
        if "$expand" in args and args["$expand"] != "*":  # [305]
            text = args["$expand"]
            raise problem(
                501,
                501.6,
                "The given OData expand expression is not supported by "
                f'this server: "{text}". Currently, only "$expand=*" is supported.',
                {"text": text},
            )
        if "$expand" in args and "$select" in args:
            raise problem(
                501,
                501.11,
                "The requested feature $select with $expand is not supported by this server.",
            )
        if "$orderby" in args:
            raise problem(501, 501.1, "$orderby is not supported by this stand-in.")
        top = _int_arg(args, "$top")
        skip = _int_arg(args, "$skip") or 0
        single = re.fullmatch(r"Submissions\('([^']*)'\)(?:/(.*))?", table)
        if single:
            return self._single(request, form, single.group(1), single.group(2))
        if table != "Submissions":
            if table not in form.repeats:
                raise problem(*NOT_FOUND)
            return self._repeat_table(request, form, table, top, skip)
        text = args.get("$filter")
        predicate = compile_filter(text) if text else None
        with_deleted = text is not None and "deletedAt" in text
        expand = args.get("$expand") == "*"
        select = _selector(args.get("$select")) if "$select" in args else None
        token = args.get("$skiptoken")
        with self.lock:
            start = len(form.order) - 1
            if token is not None:
                cursor = _read_skiptoken(token).get("instanceId")
                start = form.position[cursor] - 1 if cursor in form.position else -1
                if cursor in form.position and cursor not in form.subs:
                    start = -1  # purged: silently empty (fact, CB joinOnSkiptoken)
            rows, last, more = [], None, False
            skipped = 0
            for position in range(start, -1, -1):
                sub = form.subs.get(form.order[position])
                if sub is None or (sub.deleted and not with_deleted):
                    continue
                if predicate is not None and not predicate(sub.row):
                    continue
                if skipped < skip:
                    skipped += 1
                    continue
                if top is not None and len(rows) >= top:
                    more = True
                    break
                rows.append(_shape(sub.row, expand, select))
                last = sub.root_id
            if top == 0:
                more = False
            if top is None and skip and last is not None:
                more = True  # $skip without $top: a nextLink to an empty page [320, 321]
            count = None
            if args.get("$count", "").lower() == "true":
                key = (form.form_id, form.revision, text, with_deleted)
                count = self._count_cache.get(key)
                if count is None:
                    count = sum(
                        1
                        for s in form.subs.values()
                        if (with_deleted or not s.deleted)
                        and (predicate is None or predicate(s.row))
                    )
                    self._count_cache = {key: count}
            svc = self._svc(pid, fid)
            body: dict[str, Any] = {"value": rows, "@odata.context": f"{svc}/$metadata#Submissions"}
            if more and last is not None:
                body["@odata.nextLink"] = _next_link(
                    f"{svc}/Submissions", args, {"instanceId": last}
                )
            if count is not None:
                body["@odata.count"] = count
            payload = orjson.dumps(body)
        if self.rows_per_second and expand:
            time.sleep(len(rows) / self.rows_per_second)
        response = Response(payload, content_type=JSON)
        response.headers["ETag"] = f'W/"eventhash:{hashlib.md5(payload).hexdigest()}"'
        return self._odata_headers(response)

    def _single(self, request, form: Form, root_id: str, rest: str | None) -> Response:
        with self.lock:
            sub = form.subs.get(root_id)
            if sub is None or sub.deleted:
                raise problem(*NOT_FOUND)
            svc = self._svc(form.project_id, form.form_id)
            if rest:  # e.g. people/person('<id>')/details/visits, as in navigation links
                rows, table = _navigate(sub.row, rest, root_id)
                context = f"{svc}/$metadata#{table}"
            else:
                rows = [_shape(sub.row, request.args.get("$expand") == "*", None)]
                context = f"{svc}/$metadata#Submissions"
            payload = orjson.dumps({"value": rows, "@odata.context": context})
        return self._odata_headers(Response(payload, content_type=JSON))

    def _repeat_table(self, request, form: Form, table: str, top, skip) -> Response:
        parts = table.split(".")[1:]
        with self.lock:
            rows: list[dict] = []
            for root in reversed(form.order):
                sub = form.subs.get(root)
                if sub is None or sub.deleted:
                    continue
                rows += _walk_repeat(sub.row, parts, "__Submissions-id", root)
            svc = self._svc(form.project_id, form.form_id)
            page = rows[skip:]
            body: dict[str, Any] = {
                "value": page[:top] if top is not None else page,
                "@odata.context": f"{svc}/$metadata#{table}",
            }
            if request.args.get("$count", "").lower() == "true":
                body["@odata.count"] = len(rows)
            payload = orjson.dumps(body)
        return self._odata_headers(Response(payload, content_type=JSON))

    ROUTES: ClassVar[list[tuple[str, str, Callable]]] = []


def _route(method: str, pattern: str, handler: Callable) -> None:
    CentralStandin.ROUTES.append((method, pattern, handler))


P = r"/v1/projects/(?P<pid>\d+)"
F = P + r"/forms/(?P<fid>[^/]+?)"
S = F + r"/submissions/(?P<iid>[^/]+)"
for _method, _pattern, _handler in (
    ("DELETE", r"/v1/sessions/current", CentralStandin._logout),
    ("GET", r"/v1/users/current", CentralStandin._user),
    ("GET", r"/v1/projects", CentralStandin._projects),
    ("GET", P, CentralStandin._project),
    ("GET", P + r"/forms", CentralStandin._forms),
    ("POST", P + r"/forms", CentralStandin._create_form),
    ("GET", P + r"/app-users", CentralStandin._app_users),
    ("POST", P + r"/app-users", CentralStandin._create_app_user),
    ("GET", F + r"\.svc", CentralStandin._service),
    ("GET", F + r"\.svc/(?P<table>.+)", CentralStandin._odata),
    ("GET", F + r"\.xml", CentralStandin._form_xml),
    ("GET", F + r"/versions", CentralStandin._versions),
    ("GET", F + r"/versions/(?P<version>[^/]+)\.xml", CentralStandin._version_xml),
    ("POST", F + r"/draft", CentralStandin._create_draft),
    ("GET", F + r"/draft", CentralStandin._draft),
    ("DELETE", F + r"/draft", CentralStandin._delete_draft),
    ("GET", F + r"/draft/attachments", CentralStandin._draft_attachments),
    ("POST", F + r"/draft/attachments/(?P<name>[^/]+)", CentralStandin._upload_draft_attachment),
    ("POST", F + r"/draft/publish", CentralStandin._publish),
    ("POST", F + r"/assignments/(?P<role>[^/]+)/(?P<actor>\d+)", CentralStandin._assign),
    ("GET", F + r"/submissions", CentralStandin._list_submissions),
    ("GET", F + r"/submissions/keys", CentralStandin._submission_keys),
    ("POST", F + r"/submissions\.csv\.zip", CentralStandin._export_csvzip),
    ("GET", F + r"/submissions/(?P<iid>[^/]+)\.xml", CentralStandin._submission_xml),
    ("GET", S, CentralStandin._get_submission),
    ("DELETE", S, CentralStandin._delete_submission),
    ("PATCH", S, CentralStandin._patch_submission),
    ("POST", S + r"/restore", CentralStandin._restore_submission),
    ("GET", S + r"/versions", CentralStandin._submission_versions),
    ("GET", S + r"/versions/(?P<vid>[^/]+)\.xml", CentralStandin._submission_version_xml),
    ("GET", S + r"/comments", CentralStandin._comments),
    ("POST", S + r"/comments", CentralStandin._add_comment),
    ("GET", S + r"/attachments", CentralStandin._attachments),
    ("GET", S + r"/attachments/(?P<name>[^/]+)", CentralStandin._attachment),
    ("GET", F, CentralStandin._form),
):
    _route(_method, _pattern, _handler)


def _int_arg(args, key: str) -> int | None:
    if key not in args:
        return None
    try:
        value = int(args[key])
    except ValueError as exc:  # [307]
        raise problem(
            400,
            400.11,
            'Invalid input data type: expected "NaN" to be (type bigint)',
            {"value": "NaN", "expected": "type bigint"},
        ) from exc
    if value < 0:
        raise problem(400, 400.11, f"The value of query parameter '{key}' must not be negative.")
    return value


def _read_skiptoken(token: str) -> dict:
    try:
        if not token.startswith("01"):
            raise ValueError
        return orjson.loads(base64.b64decode(token[2:], validate=True))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise problem(400, 400.35, "Invalid $skiptoken") from exc


def _next_link(base: str, args, cursor: dict) -> str:
    """As Central writes it: its own origin, `$` as %24, $skip dropped, $skiptoken last."""
    parts = [
        f"%24{key[1:]}={quote_plus(value, safe='*')}"  # fact 17: space as +, * kept
        for key, value in args.items(multi=True)
        if key not in ("$skip", "$skiptoken")
    ]
    token = "01" + base64.b64encode(orjson.dumps(cursor)).decode()
    parts.append(f"%24skiptoken={quote_plus(token, safe='*')}")
    return f"{base}?{'&'.join(parts)}"


def _selector(text: str | None) -> list[tuple[str, ...]]:
    paths = [tuple(p.strip().split("/")) for p in (text or "").split(",") if p.strip()]
    return paths


def _shape(row: dict, expand: bool, select) -> dict:
    """The row as the query asks: repeats inline only with $expand=*, or only $select paths."""
    if select is not None:  # in the row's own order, not the order asked for [248]
        wanted: dict[str, set[str] | None] = {}
        for path in select:
            if path[0] not in row:
                raise problem(400, 400.23, f"Could not find a property named '{'/'.join(path)}'")
            if len(path) == 1:
                wanted[path[0]] = None
            elif wanted.get(path[0], set()) is not None:
                wanted.setdefault(path[0], set()).add(path[1])
        out: dict[str, Any] = {}
        for key, value in row.items():
            if key not in wanted:
                continue
            children = wanted[key]
            if children is None or not isinstance(value, dict):
                out[key] = value
            else:
                out[key] = {k: v for k, v in value.items() if k in children}
        return out
    if expand:
        return row
    return _without_repeats(row)


def _without_repeats(data: dict) -> dict:
    """The data without inlined repeats, at any depth of groups; their navigation links stay
    (a repeat is the key beside `<name>@odata.navigationLink`) [346]."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if f"{key}@odata.navigationLink" in data:
            continue
        if isinstance(value, dict) and any(k.endswith("@odata.navigationLink") for k in value):
            value = _without_repeats(value)  # a group holding a repeat
        out[key] = value
    return out


def _repeat_row(item: dict, parent_key: str, parent_id: str) -> dict:
    """A repeat-table row: its fields, __id, the parent key, then navigation links [260, 346]."""
    out: dict[str, Any] = {}
    for key, value in _without_repeats(item).items():
        out[key] = value
        if key == "__id":
            out[parent_key] = parent_id
    return out


def _walk_repeat(
    node: dict, parts: list[str], parent_key: str, parent_id: str, trail: tuple[str, ...] = ()
) -> list[dict]:
    """Rows of the repeat at `parts` below `node`. The parent key names every step from the
    submission to the parent repeat, groups included: `__Submissions-people-person-id` [347]."""
    value = node.get(parts[0])
    trail = (*trail, parts[0])
    if isinstance(value, dict):  # a group
        if len(parts) == 1:
            return []
        return _walk_repeat(value, parts[1:], parent_key, parent_id, trail)
    if not isinstance(value, list):
        return []
    if len(parts) == 1:
        return [_repeat_row(item, parent_key, parent_id) for item in value]
    key = "__" + "-".join(("Submissions", *trail)) + "-id"
    rows = []
    for item in value:
        rows += _walk_repeat(item, parts[1:], key, item["__id"], trail)
    return rows


def _navigate(row: dict, rest: str, root_id: str) -> tuple[list[dict], str]:
    """The repeat rows a navigation link below `Submissions('<id>')` leads to, and the table."""
    node: Any = row
    key, parent_id, trail = "__Submissions-id", root_id, ["Submissions"]
    steps = rest.split("/")
    for n, step in enumerate(steps):
        m = re.fullmatch(r"([^(]+)(?:\('([^']*)'\))?", step)
        if m is None or not isinstance(node, dict):
            raise problem(*NOT_FOUND)
        name, wanted = m.groups()
        trail.append(name)
        node = node.get(name)
        if wanted is not None:  # one instance of a repeat, by its __id
            node = next((i for i in node or [] if i.get("__id") == wanted), None)
            if node is None:
                raise problem(*NOT_FOUND)
            key, parent_id = "__" + "-".join(trail) + "-id", wanted
        elif n == len(steps) - 1 and not isinstance(node, list | None):
            raise problem(*NOT_FOUND)
    return [_repeat_row(item, key, parent_id) for item in node or []], ".".join(trail)


def _instance_name(xml: bytes) -> str | None:
    meta = etree.fromstring(xml).find("meta")
    return meta.findtext("instanceName") if meta is not None else None


def _row_xml(form: Form, row: dict, deprecated_id: str | None) -> bytes:
    """Instance XML for a version the stand-in holds only as an OData row: Central's OData
    rules run backwards (numbers and GeoJSON points in their XML spelling, null as an empty
    element, a repeat as repeated elements) and `meta/deprecatedID` for an edit."""
    instance = etree.fromstring(form.versions[-1][1]).find(
        ".//{http://www.w3.org/2002/xforms}instance"
    )
    template = next(iter(instance))
    root = etree.Element(
        etree.QName(template).localname,
        id=form.form_id,
        version=row["__system"].get("formVersion") or "",
    )

    def text(value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, dict):  # GeoJSON point
            lon, lat, *alt = value["coordinates"]
            accuracy = (value.get("properties") or {}).get("accuracy")
            parts = [lat, lon, *(alt or [0])] + ([accuracy] if accuracy is not None else [])
            return " ".join(text(p) for p in parts)
        return str(value)

    def put(parent, data: dict) -> None:
        for key, value in data.items():
            if key.startswith("__") or "@" in key:
                continue
            if isinstance(value, list):
                for item in value:
                    put(etree.SubElement(parent, key), item)
            elif isinstance(value, dict) and value.get("type") != "Point":
                put(etree.SubElement(parent, key), value)
            else:
                etree.SubElement(parent, key).text = text(value)

    put(root, row)
    meta = root.find("meta")
    if deprecated_id and meta is not None:
        instance_id = meta.find("instanceID")
        deprecated = etree.Element("deprecatedID")
        deprecated.text = deprecated_id
        instance_id.addnext(deprecated)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _media_names(xml: bytes) -> list[str]:
    """Media files an XForm refers to (jr://images/..., jr://file-csv/... etc.)."""
    found = re.findall(rb"jr://(?:images|audio|video|file|file-csv)/([^\"'<\s]+)", xml)
    return sorted({name.decode() for name in found})


def _media_type(name: str) -> str:
    if name.endswith(".csv"):
        return "file"
    if name.rsplit(".", 1)[-1] in ("png", "jpg", "jpeg", "gif"):
        return "image"
    return "file"
