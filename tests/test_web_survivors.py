"""A survivor's page and the reveal of her identity, in process: every role against her own
unit's survivor and another unit's, the audit rows (a reason on each reveal, each refusal, never
an identity value), the no-store answer, a GET that reveals nothing, and the pages for a server
without a data key, a survivor with no identity filed, a register under another key.

Survivor forms are the built programme forms' instances sent through the OpenRosa path by a
Collect-like client; identities are filed with IdentityRegister.put (decrypting is tested
elsewhere)."""

from __future__ import annotations

import logging
import re
import secrets

import pytest

from nigraan.data_key import DataKey, encode
from store.identity_register import IdentityRegister
from tests.test_report_indicators import instance_xml, intake, registration, service
from tests.web_client import add_person, audit_rows, csrf_token, sign_in

SURVIVOR_FORMS = ["survivor_registration", "survivor_intake", "service_contact", "case_closure"]
OWN, OTHER, UNFILED = "LHR-0101", "RWP-0101", "LHR-0102"
# Her identity, as the register holds it (field paths of identity_register).
IDENTITY = {
    "caseworker_code": "CW-01",
    "person/full_name": "Shazia Bibi Qureshi",
    "person/relation_kind": "wife_of",
    "person/father_husband_name": "Tariq Mehmood Qureshi",
    "person/cnic_needed": "yes",
    "person/cnic": "35202-1234567-1",
    "contact/has_mobile": "yes",
    "contact/mobile": "0300-1234567",
    "contact/safe_to_call": "yes",
    "address_group/address_district": "lahore",
    "address_group/address": "House 12, Street 4, Gulberg III",
}
OTHER_IDENTITY = {"person/full_name": "Rubina Akhtar Jatoi", "contact/mobile": "0333-7654321"}
SECRETS = [
    "Shazia Bibi Qureshi",
    "Tariq Mehmood",
    "35202-1234567-1",
    "0300-1234567",
    "Gulberg III",
    "Rubina Akhtar",
    "0333-7654321",
]
REASON = "To call her back about her court date on Monday"
NAMES = {
    "admin": ("s-admin", "admin", None),
    "supervisor": ("s-super", "supervisor", None),
    "caseworker": ("s-case", "caseworker", "ssu_lahore"),
    "other caseworker": ("s-case-rwp", "caseworker", "ssu_rawalpindi"),
    "caseworker without unit": ("s-case-none", "caseworker", None),
    "monitor": ("s-mon", "monitor", None),
    "viewer": ("s-view", "viewer", None),
}


def closure(code, day):
    return "case_closure", {"survivor_code": code, "caseworker_code": "CW-01", "closure_date": day}


@pytest.fixture(scope="module")
def survivors(tmp_path_factory, built_programme_forms):
    """An app over the programme forms with a data key; OWN's four records (Lahore), OTHER's
    registration (Rawalpindi), UNFILED's registration (no identity); one person per role."""
    from tests.conftest import CENTRAL
    from tests.openrosa_client import InProcessServer

    config, _ = built_programme_forms
    build_dir = config["forms.build_dir"]
    tmp = tmp_path_factory.mktemp("web-survivors")
    secret = encode(secrets.token_bytes(32))  # the data key, given as NIGRAAN_IDENTITY_KEY is
    key = DataKey.from_text(secret, "the test's data key")
    database = f"sqlite:///{tmp / 'store.sqlite3'}"
    server = InProcessServer(
        tmp / "app", CENTRAL, database, build_dir=build_dir, identity__key=secret
    )
    server.add_account("tablet-sv", SURVIVOR_FORMS)
    device = server.collect(server.token_url)
    sent = {}
    for name, (form_id, answers) in {
        "registration": registration(OWN, "ssu_lahore", "2026-07-05", "jail"),
        "intake": intake(OWN, "ssu_lahore", "2026-07-06", "yes", "police", "rape", "home", "x"),
        "service": service(OWN, "ssu_lahore", "2026-07-07", "counselling"),
        "closure": closure(OWN, "2026-07-20"),
        "other": registration(OTHER, "ssu_rawalpindi", "2026-07-05", "jail"),
        "unfiled": registration(UNFILED, "ssu_lahore", "2026-07-08", "jail"),
    }.items():
        xml = instance_xml(build_dir / f"{form_id}.xml", answers)
        assert device.send(xml).status_code == 201
        sent[name] = (form_id, re.search(rb"<instanceID>([^<]+)<", xml).group(1).decode())
    store = server.app.extensions["nigraan"].store
    register = IdentityRegister(store.engine, key)
    register.put(OWN, IDENTITY)
    register.put(OTHER, OTHER_IDENTITY)
    passwords = {
        role: add_person(server.app, name, r, unit) for role, (name, r, unit) in NAMES.items()
    }

    def client(role, app=None):
        c = (app or server.app).test_client()
        assert sign_in(c, NAMES[role][0], passwords[role]).status_code == 302
        return c

    server.sent, server.client, server.key_text = sent, client, secret
    yield server
    server.close()


def reveal(c, code, reason=REASON):
    token = csrf_token(c, "/")
    return c.post(f"/survivors/{code}/reveal", data={"csrf_token": token, "reason": reason})


def rows(server, action=None, after=0):
    """Audit rows (newest first), of one action, written after the row numbered `after`."""
    return [
        r
        for r in audit_rows(server.app)
        if (action is None or r["action"] == action) and r["id"] > after
    ]


def last_row(server) -> int:
    return max((r["id"] for r in audit_rows(server.app)), default=0)


def assert_no_identity(text: str):
    found = [s for s in SECRETS if s.lower() in text.lower()]
    assert not found, f"identity in: {found}"


# role -> (her page, another unit's page, reveal hers, reveal another unit's)
EXPECTED = {
    "admin": (200, 200, 200, 200),
    "supervisor": (200, 200, 403, 403),
    "caseworker": (200, 403, 200, 403),
    "other caseworker": (403, 200, 403, 200),
    "caseworker without unit": (403, 403, 403, 403),
    "monitor": (403, 403, 403, 403),
    "viewer": (403, 403, 403, 403),
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_role_opens_and_reveals_only_what_it_may(survivors, role):
    c = survivors.client(role)
    token = csrf_token(c, "/")
    mark = last_row(survivors)
    got = (
        c.get(f"/survivors/{OWN}").status_code,
        c.get(f"/survivors/{OTHER}").status_code,
        c.post(f"/survivors/{OWN}/reveal", data={"csrf_token": token, "reason": REASON}),
        c.post(f"/survivors/{OTHER}/reveal", data={"csrf_token": token, "reason": REASON}),
    )
    statuses = got[:2] + tuple(answer.status_code for answer in got[2:])
    assert statuses == EXPECTED[role]
    for answer in got[2:]:
        if answer.status_code == 403:
            assert_no_identity(answer.get_data(as_text=True))
    # every reveal and every refused one is one audit row of this person, with her code
    name = NAMES[role][0]
    mine = [r for r in rows(survivors, after=mark) if r["actor"] == name]
    wanted = ["reveal" if s == 200 else "refused reveal" for s in statuses[2:]]
    assert [(r["action"], r["record"]) for r in mine if "reveal" in r["action"]][::-1] == list(
        zip(wanted, (OWN, OTHER), strict=True)
    )
    why = "not her unit" if NAMES[role][1] == "caseworker" else "role"
    assert {r["detail"] for r in mine if r["action"] == "refused reveal"} <= {why}
    views = [r["record"] for r in mine if r["action"] == "survivor view"]
    assert sorted(views) == sorted(
        code for code, s in zip((OWN, OTHER), statuses[:2], strict=True) if s == 200
    )


def test_anonymous_visitors_are_sent_to_sign_in_and_nothing_is_revealed(survivors):
    c = survivors.app.test_client()
    for answer in (
        c.get(f"/survivors/{OWN}"),
        c.post(f"/survivors/{OWN}/reveal", data={"reason": REASON}),
    ):
        assert answer.status_code == 302 and "/sign-in" in answer.headers["Location"]
    assert not [r for r in rows(survivors, "reveal") if r["actor"] == "-"]


def test_her_page_lists_her_records_with_links_and_is_reached_from_a_submission(survivors):
    c = survivors.client("caseworker")
    form_id, root = survivors.sent["registration"]
    submission = c.get(f"/submissions/{form_id}/{root}").get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)" id="survivor-link">', submission)
    assert link and link.group(1) == f"/survivors/{OWN}"
    page = c.get(link.group(1))
    assert page.status_code == 200 and "no-store" in page.headers["Cache-Control"]
    text = page.get_data(as_text=True)
    listed = re.findall(r'<tr data-form="([^"]+)" data-root="([^"]+)"', text)
    mine = ("registration", "intake", "service", "closure")
    assert sorted(listed) == sorted(survivors.sent[k] for k in mine)
    assert survivors.sent["other"][1] not in text and survivors.sent["unfiled"][1] not in text
    for form_id, root in listed:  # each links to its page, which she may open (the closure too)
        assert f'href="/submissions/{form_id}/{root}"' in text
        assert c.get(f"/submissions/{form_id}/{root}").status_code == 200
    assert 'id="reveal-form"' in text
    assert_no_identity(text)
    closure_page = c.get("/submissions/{}/{}".format(*survivors.sent["closure"]))
    assert f'href="/survivors/{OWN}"' in closure_page.get_data(as_text=True)
    # a supervisor sees the page, without the reveal form; an unknown code is 404
    s = survivors.client("supervisor")
    assert 'id="reveal-form"' not in s.get(f"/survivors/{OWN}").get_data(as_text=True)
    assert s.get("/survivors/LHR-9999").status_code == 404


def test_a_reveal_shows_her_identity_never_cached_and_writes_one_audit_row_with_the_reason(
    survivors, caplog
):
    c = survivors.client("caseworker")
    mark = last_row(survivors)
    with caplog.at_level(logging.DEBUG):
        answer = reveal(c, OWN)
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert "Shazia Bibi Qureshi" in text and "35202-1234567-1" in text and "0300-1234567" in text
    assert "Full name" in text and "Wife of" in text  # labels and choices from the form
    shown = re.findall(r'<div data-path="([^"]+)">', text)
    assert shown[:3] == ["caseworker_code", "person/full_name", "person/relation_kind"]
    assert shown.index("person/cnic") < shown.index("contact/mobile")  # the form's order
    headers = answer.headers
    assert headers["Cache-Control"].startswith("no-store")
    assert (headers["Pragma"], headers["Expires"]) == ("no-cache", "0")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    # no inline script; the served one removes it; without JavaScript, back to her page
    assert re.findall(r"<script(?![^>]*\bsrc=)", text) == []
    assert '<script src="/static/reveal.js" defer></script>' in text
    assert (
        '<noscript><meta http-equiv="refresh" content="60;url=/survivors/LHR-0101"></noscript>'
        in text
    )
    assert 'data-seconds="60"' in text
    assert survivors.app.test_client().get("/static/reveal.js").status_code == 200
    # one row, with the reason and her code; the identity never in a row, a log or the session
    new = rows(survivors, "reveal", after=mark)
    assert [(r["actor"], r["form_id"], r["record"], r["detail"]) for r in new] == [
        ("s-case", "identity_register", OWN, REASON)
    ]
    assert_no_identity(repr(audit_rows(survivors.app)))
    assert_no_identity(caplog.text)
    assert_no_identity(survivors.log_path.read_text(encoding="utf-8"))
    with c.session_transaction() as session:
        assert_no_identity(repr(dict(session)))
    assert_no_identity(c.get(f"/survivors/{OWN}").get_data(as_text=True))  # no flash of it


def test_a_get_of_the_reveal_address_reveals_nothing(survivors):
    c = survivors.client("caseworker")
    mark = last_row(survivors)
    answer = c.get(f"/survivors/{OWN}/reveal")
    assert answer.status_code == 302 and answer.headers["Location"] == f"/survivors/{OWN}"
    assert_no_identity(answer.get_data(as_text=True))
    followed = c.get(f"/survivors/{OWN}/reveal", follow_redirects=True)
    assert followed.status_code == 200 and 'id="reveal-form"' in followed.get_data(as_text=True)
    assert_no_identity(followed.get_data(as_text=True))
    assert [r["action"] for r in rows(survivors, after=mark)] == ["survivor view"]


@pytest.mark.parametrize(
    "reason, says",
    [
        ("", "at least 10 characters"),
        ("   call   ", "at least 10 characters"),
        ("to call Shazia bibi qureshi back", "holds part of her identity"),
        ("her number is 0300 1234567, call", "holds part of her identity"),
        ("x" * 501, "under 500 characters"),
    ],
)
def test_a_reveal_without_a_fit_reason_is_refused_with_a_clear_message(survivors, reason, says):
    c = survivors.client("caseworker")
    mark = last_row(survivors)
    answer = reveal(c, OWN, reason)
    assert answer.status_code == 400
    text = answer.get_data(as_text=True)
    assert says in text and 'id="reason-problem"' in text
    assert_no_identity(text)  # the name typed in the reason is not echoed back either
    assert rows(survivors, "reveal", after=mark) == []
    assert_no_identity(repr(audit_rows(survivors.app)))


def test_a_reason_naming_her_district_or_a_code_is_still_a_reason(survivors):
    c = survivors.client("admin")
    mark = last_row(survivors)
    reason = "Her hearing in Lahore moved; CW-01 is away"
    assert reveal(c, OWN, reason).status_code == 200
    assert [r["detail"] for r in rows(survivors, "reveal", after=mark)] == [reason]


def test_a_reveal_without_the_csrf_token_is_refused(survivors):
    c = survivors.client("caseworker")
    mark = last_row(survivors)
    answer = c.post(f"/survivors/{OWN}/reveal", data={"reason": REASON})
    assert answer.status_code == 400
    assert_no_identity(answer.get_data(as_text=True))
    assert rows(survivors, "reveal", after=mark) == []


def test_a_survivor_with_no_identity_filed_gets_a_page_saying_what_to_do(survivors):
    c = survivors.client("caseworker")
    mark = last_row(survivors)
    answer = reveal(c, UNFILED)
    assert answer.status_code == 404
    text = answer.get_data(as_text=True)
    assert 'data-why="not in the register"' in text
    assert "nigraan identity import" in text and "erased" in text
    assert answer.headers["Cache-Control"].startswith("no-store")
    done = [(r["action"], r["record"], r["detail"]) for r in rows(survivors, after=mark)]
    assert ("reveal not possible", UNFILED, "not in the register") in done
    assert not [d for d in done if d[0] == "reveal"]


@pytest.mark.parametrize(
    "settings, status, why, says",
    [
        ({}, 503, "no data key", "no identity data key configured"),
        ({"identity__key": encode(b"k" * 32)}, 503, "wrong data key", "another data key"),
    ],
)
def test_a_server_without_the_right_data_key_says_so_and_reveals_nothing(
    survivors, tmp_path, settings, status, why, says
):
    from tests.conftest import CENTRAL
    from tests.openrosa_client import InProcessServer

    other = InProcessServer(
        tmp_path / "app",
        CENTRAL,
        survivors.database_url,
        build_dir=survivors.build_dir,
        port=8081,
        **settings,
    )
    mark = last_row(survivors)
    try:
        for role in ("caseworker", "admin"):
            c = survivors.client(role, other.app)
            answer = reveal(c, OWN)
            assert answer.status_code == status
            text = answer.get_data(as_text=True)
            assert f'data-why="{why}"' in text and says in text
            assert_no_identity(text)
        assert [r["detail"] for r in rows(survivors, "reveal not possible", after=mark)] == [
            why,
            why,
        ]
        assert rows(survivors, "reveal", after=mark) == []
    finally:
        other.close()


def test_the_reveal_stays_on_screen_for_web_reveal_seconds(survivors, tmp_path):
    from tests.conftest import CENTRAL
    from tests.openrosa_client import InProcessServer

    other = InProcessServer(
        tmp_path / "app",
        CENTRAL,
        survivors.database_url,
        build_dir=survivors.build_dir,
        port=8082,
        identity__key=survivors.key_text,
        web__reveal_seconds=7,
    )
    try:
        text = reveal(survivors.client("admin", other.app), OWN).get_data(as_text=True)
        assert "Shazia Bibi Qureshi" in text and 'data-seconds="7"' in text
        assert 'content="7;url=/survivors/LHR-0101"' in text
    finally:
        other.close()
