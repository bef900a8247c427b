"""Every web route x every role (and anonymous): the expected answer.

A new route is one line in ROUTES: method, path, the roles that may open it (PUBLIC: anyone)
and the status they get. Everyone else gets 403, and anonymous visitors of a non-public route
are redirected to the sign-in page. `test_every_web_route_is_in_the_table` fails until the line
is there.
"""

from __future__ import annotations

import pytest

from server.web import blueprints
from server.web.access import EVERYONE, PUBLIC
from store.people import ROLES
from tests.web_client import add_person, csrf_token, sign_in

ADMIN = ("admin",)
REVIEW = ("admin", "supervisor")  # a recorded-form submission: not a caseworker's or monitor's
SURVIVOR_PAGE = ("admin", "supervisor", "caseworker")
REVEAL = ("admin", "caseworker")  # of her unit: tests/test_web_survivors.py has the survivors
CODE = "LHR-0001"  # no survivor of that code here: those who may look find nothing (404)
# The indicators add up every unit's survivors and every monitor's visits: beyond a caseworker's
# unit and a monitor's own submissions. A viewer reads them suppressed.
READERS = ("admin", "supervisor", "viewer")
EXPORTERS = ("admin", "supervisor", "caseworker", "viewer")  # a monitor exports nothing
ROOT = "uuid:00000000-0000-4000-8000-00000000a11c"
SUBMISSION = f"/submissions/rec_visit/{ROOT}"
PHOTO = b"\xff\xd8\xff\xe0 a photo"

# (method, path, who may, their status). "target" is a viewer made for the admin's actions.
ROUTES = [
    ("GET", "/", EVERYONE, 200),
    ("GET", "/sign-in", PUBLIC, 200),  # a signed-in person is sent on to the queue (302)
    ("POST", "/sign-in", PUBLIC, 401),  # no name and password: refused, with the page
    ("POST", "/language", PUBLIC, 302),
    ("POST", "/sign-out", EVERYONE, 302),
    ("GET", "/static/style.css", PUBLIC, 200),
    ("GET", "/admin/users", ADMIN, 200),
    ("POST", "/admin/users", ADMIN, 400),  # the empty form is refused, with the page
    ("POST", "/admin/users/target/disable", ADMIN, 302),
    ("POST", "/admin/users/target/reset-password", ADMIN, 200),
    ("GET", "/admin/audit", ADMIN, 200),
    ("POST", "/sync", REVIEW, 302),  # Central not configured: said so, back to the queue
    ("GET", SUBMISSION, REVIEW, 200),
    ("GET", f"{SUBMISSION}/files/p.jpg", REVIEW, 200),
    ("POST", f"{SUBMISSION}/decision", REVIEW, 302),  # nothing chosen: refused in a flash
    ("GET", f"/survivors/{CODE}", SURVIVOR_PAGE, 404),
    ("GET", f"/survivors/{CODE}/reveal", SURVIVOR_PAGE, 302),  # a GET reveals nothing
    ("POST", f"/survivors/{CODE}/reveal", REVEAL, 404),
    ("GET", "/reports", READERS, 200),  # no programme forms in this store: every figure 0
    ("GET", "/reports/indicators.xlsx", READERS, 200),
    ("GET", "/forms", EXPORTERS, 200),
    # rec_visit is no survivor form: a caseworker exports only her unit's survivor forms.
    ("GET", "/forms/rec_visit/export", REVIEW, 200),  # the full profile
    ("GET", "/forms/rec_visit/export?profile=funder&format=csv", (*REVIEW, "viewer"), 200),
    ("GET", "/forms/identity_register/export?profile=funder", EXPORTERS, 404),  # never
]
WHO = ("anonymous", *ROLES)


def expected(who: str, method: str, path: str, may, status: int) -> int:
    if may == PUBLIC:
        signed_in_there = who != "anonymous" and (method, path) == ("GET", "/sign-in")
        return 302 if signed_in_there else status
    if who == "anonymous":
        return 302
    return status if who in may else 403


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """One app for the whole table (SQLite), a person of every role, and the target."""
    from tests.conftest import CENTRAL
    from tests.openrosa_client import InProcessServer

    tmp = tmp_path_factory.mktemp("web-access")
    server = InProcessServer(tmp / "app", CENTRAL, f"sqlite:///{tmp / 'store.sqlite3'}")
    passwords = {
        role: add_person(
            server.app, f"a-{role}", role, "ssu_lahore" if role == "caseworker" else None
        )
        for role in ROLES
    }
    add_person(server.app, "target", "viewer")
    from tests.test_openrosa_server import visit_xml

    server.add_account("tablet-access")
    sent = server.collect(server.token_url).send(
        visit_xml(ROOT, "p.jpg"), [("p.jpg", PHOTO, "image/jpeg")]
    )
    assert sent.status_code == 201, sent.text
    yield server.app, passwords
    server.close()


@pytest.mark.parametrize("who", WHO)
def test_every_route_answers_every_role_as_the_table_says(web, who):
    app, passwords = web
    got, want = {}, {}
    client = None
    for method, path, may, status in ROUTES:
        if client is None:  # a fresh session at first and after a sign-out
            client = app.test_client()
            if who != "anonymous":
                assert sign_in(client, f"a-{who}", passwords[who]).status_code == 302
        page = "/sign-in" if who == "anonymous" else "/"
        data = {"csrf_token": csrf_token(client, page)} if method == "POST" else None
        if path == "/language":
            data["lang"] = "en"
        answer = client.open(path, method=method, data=data)
        got[(method, path)] = answer.status_code
        if path == "/sign-out":
            client = None
        want[(method, path)] = expected(who, method, path, may, status)
        if who == "anonymous" and may != PUBLIC:
            assert answer.headers["Location"].startswith("/sign-in"), (method, path)
    assert got == want


def test_every_web_route_is_in_the_table(web):
    app, _ = web
    names = {bp.name for bp in blueprints()}
    in_table = {(m, p) for m, p, _, _ in ROUTES}
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in names:
            continue
        path = rule.rule.replace("/files/<name>", "/files/p.jpg").replace("<name>", "target")
        path = path.replace("<form_id>", "rec_visit").replace("<root_id>", ROOT)
        path = path.replace("<instance_id>", ROOT).replace("<path:filename>", "style.css")
        path = path.replace("<code>", CODE)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if (method, path) not in in_table:
                missing.append(f"{method} {rule.rule}")
    assert not missing, "web routes missing from ROUTES: " + ", ".join(missing)


def test_collects_urls_still_answer_beside_the_web_app(web):
    """The OpenRosa blueprint shares the root: /formList and /submission are still Collect's."""
    app, _ = web
    client = app.test_client()
    assert client.get("/formList").status_code == 401  # a Digest challenge, not a sign-in page
    assert "WWW-Authenticate" in client.get("/formList").headers
    assert client.head("/submission").status_code == 401
    # A POST from Collect carries no CSRF token: it gets Collect's Digest challenge, not a
    # CSRF refusal.
    answer = client.post("/submission")
    assert answer.status_code == 401 and "WWW-Authenticate" in answer.headers
