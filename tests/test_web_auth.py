"""The web app's sign-in, sessions, CSRF, throttle, languages and audit rows, in process."""

from __future__ import annotations

import os
import re
import stat
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from server.web.accounts import Policy
from tests.web_client import add_person, audit_rows, csrf_token, sign_in

WRONG = "Sign-in failed"


@pytest.fixture
def web(serve_in_process):
    """The app over a fresh store (SQLite and PostgreSQL) with a supervisor, and a clock the
    tests move forward instead of sleeping."""
    server = serve_in_process(web__slow_after=3, web__lock_after=5, web__lock_minutes=15)
    app = server.app
    clock = [1_000_000.0]
    app.extensions["nigraan_web"].clock = lambda: clock[0]
    app.password = add_person(app, "sara", "supervisor")
    app.clock = clock
    return app


def test_sign_in_opens_the_queue_and_writes_an_audit_row(web):
    client = web.test_client()
    assert client.get("/").headers["Location"] == "/sign-in?next=/"
    answer = sign_in(client, "sara", web.password)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "Review queue" in page and "sara" in page
    (row,) = audit_rows(web, actor="sara")
    assert (row["action"], row["role"], row["actor_kind"], row["address"]) == (
        "sign-in",
        "supervisor",
        "person",
        "127.0.0.1",
    )
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_a_form_without_its_csrf_token_is_refused(web):
    client = web.test_client()
    answer = client.post("/sign-in", data={"name": "sara", "password": web.password})
    assert answer.status_code == 400 and "reload the page" in answer.get_data(as_text=True)
    assert audit_rows(web) == []  # not even tried
    sign_in(client, "sara", web.password)
    assert client.post("/sign-out").status_code == 400  # a forged sign-out does nothing
    assert client.post("/sign-out", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/").status_code == 200
    assert client.post("/language", data={"lang": "ur"}).status_code == 400


def test_unknown_name_and_wrong_password_get_the_same_answer_in_similar_time(web):
    def attempt(name):
        client = web.test_client()
        token = csrf_token(client)
        start = time.perf_counter()
        answer = client.post(
            "/sign-in", data={"name": name, "password": "nope-nope", "csrf_token": token}
        )
        return answer, time.perf_counter() - start

    timings = {"sara": [], "nobody": []}
    pages = {}
    for _ in range(2):  # below web.slow_after: each is checked
        for name in timings:
            answer, took = attempt(name)
            assert answer.status_code == 401
            pages[name] = re.sub(r'value="[^"]*"', "", answer.get_data(as_text=True))
            timings[name].append(took)
    assert pages["sara"].replace("sara", "X") == pages["nobody"].replace("nobody", "X")
    assert WRONG in pages["nobody"]
    # Both pay one argon2 check: neither is ten times the other.
    known, unknown = min(timings["sara"]), min(timings["nobody"])
    assert known < 10 * unknown and unknown < 10 * known, timings
    actions = [(r["actor"], r["action"], r["detail"]) for r in audit_rows(web)]
    assert ("nobody", "failed sign-in", "unknown") in actions
    assert ("sara", "failed sign-in", "wrong") in actions


def test_repeated_failures_slow_down_then_lock_the_account_and_reset_lifts_it(web):
    client = web.test_client()
    for _ in range(3):  # web.slow_after
        assert sign_in(client, "sara", "wrong").status_code == 401
    # The 4th try within 1 s is refused without checking, even with the right password.
    assert sign_in(client, "sara", web.password).status_code == 401
    assert audit_rows(web)[0]["detail"] == "too_soon"
    web.clock[0] += 1
    assert sign_in(client, "sara", "wrong").status_code == 401  # 4th counted failure
    web.clock[0] += 2
    assert sign_in(client, "sara", "wrong").status_code == 401  # 5th: locked for 15 minutes
    person = web.extensions["nigraan"].store.people.by_name("sara")
    assert person.failures == 5 and person.locked_until is not None
    web.clock[0] += 14 * 60
    answer = sign_in(client, "sara", web.password)
    assert answer.status_code == 401 and WRONG in answer.get_data(as_text=True)
    assert audit_rows(web)[0]["detail"] == "locked"
    web.clock[0] += 2 * 60  # the lock ran out
    assert sign_in(client, "sara", web.password).status_code == 302
    assert web.extensions["nigraan"].store.people.by_name("sara").failures == 0


def test_the_lock_is_in_the_store_so_another_app_sees_it(web, serve_in_process):
    client = web.test_client()
    for step in range(5):
        web.clock[0] += 60
        assert sign_in(client, "sara", f"wrong{step}").status_code == 401
    url = web.extensions["nigraan"].config["database.url"]
    other = serve_in_process(database_url=url, web__lock_after=5).app  # a restart, say
    other.extensions["nigraan_web"].clock = lambda: web.clock[0] + 60
    assert sign_in(other.test_client(), "sara", web.password).status_code == 401


def test_wait_doubles_and_is_bounded():
    policy = Policy(slow_after=3, lock_after=10, lock_minutes=15)
    assert [policy.wait(n).total_seconds() for n in (0, 2, 3, 4, 5, 20)] == [0, 0, 1, 2, 4, 60]


def test_idle_sign_out_after_the_setting(web):
    client = web.test_client()
    sign_in(client, "sara", web.password)
    web.clock[0] += 29 * 60
    assert client.get("/").status_code == 200  # the request renews the session
    web.clock[0] += 29 * 60
    assert client.get("/").status_code == 200
    web.clock[0] += 31 * 60  # web.idle_minutes is 30
    answer = client.get("/")
    assert answer.status_code == 302 and "idle=1" in answer.headers["Location"]
    assert "without activity" in client.get(answer.headers["Location"]).get_data(as_text=True)
    assert client.get("/").status_code == 302  # signed out for good


def test_disabling_or_resetting_ends_the_sessions(web):
    people = web.extensions["nigraan"].store.people
    client = web.test_client()
    sign_in(client, "sara", web.password)
    people.set_password("sara", people.by_name("sara").password_hash + "x")
    assert client.get("/").status_code == 302
    add_person(web, "omar", "monitor", password="omar-password-1")
    sign_in(client, "omar", "omar-password-1")
    assert client.get("/").status_code == 200
    people.disable("omar")
    assert client.get("/").status_code == 302
    assert sign_in(client, "omar", "omar-password-1").status_code == 401
    assert audit_rows(web)[0]["detail"] == "disabled"


def test_urdu_is_remembered_before_sign_in_and_per_person(web):
    client = web.test_client()
    assert '<html lang="en" dir="ltr">' in client.get("/sign-in").get_data(as_text=True)
    token = csrf_token(client)
    client.post("/language", data={"lang": "ur", "next": "/sign-in", "csrf_token": token})
    page = client.get("/sign-in").get_data(as_text=True)
    assert '<html lang="ur" dir="rtl">' in page and "سائن ان" in page
    sign_in(client, "sara", web.password)
    page = client.get("/").get_data(as_text=True)
    assert 'dir="rtl"' in page and "جائزے کی فہرست" in page
    assert web.extensions["nigraan"].store.people.by_name("sara").language == "ur"
    other = web.test_client()  # another browser: the person's choice follows them
    sign_in(other, "sara", web.password)
    assert 'lang="ur"' in other.get("/").get_data(as_text=True)


def test_the_sign_in_page_only_redirects_within_the_site(web):
    client = web.test_client()
    token = csrf_token(client)
    answer = client.post(
        "/sign-in",
        data={
            "name": "sara",
            "password": web.password,
            "next": "//evil.example/",
            "csrf_token": token,
        },
    )
    assert answer.headers["Location"] == "/"


def test_the_session_cookie_is_secure_behind_https(serve_in_process):
    app = serve_in_process(server__public_url="https://nigraan.example.org").app
    password = add_person(app, "sara", "supervisor")
    answer = sign_in(app.test_client(), "sara", password)
    assert "Secure" in answer.headers["Set-Cookie"]


def test_the_secret_key_is_made_once_owner_only(web, serve_in_process):
    path = web.extensions["nigraan"].config["instance_dir"] / "web-secret-key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert web.secret_key == path.read_text().strip() and len(web.secret_key) == 64


def test_the_admin_makes_disables_and_resets_users_and_every_change_is_audited(web):
    password = add_person(web, "amna", "admin")
    client = web.test_client()
    sign_in(client, "amna", password)
    token = csrf_token(client, "/admin/users")
    answer = client.post(
        "/admin/users", data={"name": "zara", "role": "caseworker", "unit": "", "csrf_token": token}
    )
    assert answer.status_code == 400 and "support unit" in answer.get_data(as_text=True)
    answer = client.post(
        "/admin/users",
        data={"name": "zara", "role": "caseworker", "unit": "ssu_lahore", "csrf_token": token},
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    new = re.search(r'id="new-password">.*?<code>([^<]+)</code>', page, re.S).group(1)
    assert sign_in(web.test_client(), "zara", new).status_code == 302
    client.post("/admin/users/zara/reset-password", data={"csrf_token": token})
    client.post("/admin/users/zara/disable", data={"csrf_token": token})
    changes = [r["detail"] for r in audit_rows(web, actor="amna") if r["action"] == "user change"]
    assert changes == ["disabled", "password reset", "created, role caseworker, unit ssu_lahore"]
    page = client.get("/admin/audit?user=zara").get_data(as_text=True)
    assert "sign-in" in page and "amna" not in page.split("<tbody>")[1]
    assert client.get("/admin/audit?since=not-a-date").status_code == 400


def test_the_audit_log_cannot_be_changed_or_emptied(web):
    web.extensions["nigraan"].store.audit.record("export", actor="sara", role="supervisor")
    engine = web.extensions["nigraan"].store.engine
    for statement in ("UPDATE audit_log SET actor = 'someone'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert [r["actor"] for r in audit_rows(web)] == ["sara"]
    assert not hasattr(web.extensions["nigraan"].store.audit, "delete")
