"""The queue at / and a submission's page, in process: what each role sees, the filters, the
audit row of a survivor-form view, and where a decision goes. The submissions are the built
programme forms' instances, sent through the OpenRosa path by a Collect-like client."""

from __future__ import annotations

import re

import pytest

from tests.test_report_indicators import instance_xml, registration, visit

# The Central stand-in with the recorded rec_visit rows, and a pyodk client of it (fixtures).
from tests.test_sync import FORM, V06, central, recorded_rows, standin  # noqa: F401
from tests.web_client import add_person, audit_rows, csrf_token, sign_in

DEVICE = "tablet-pages"  # the device account's name; the monitor person has the same name


@pytest.fixture(scope="module")
def pages(tmp_path_factory, built_programme_forms):
    from tests.conftest import CENTRAL
    from tests.openrosa_client import InProcessServer

    config, _ = built_programme_forms
    build_dir = config["forms.build_dir"]
    tmp = tmp_path_factory.mktemp("web-pages")
    server = InProcessServer(
        tmp / "app", CENTRAL, f"sqlite:///{tmp / 'store.sqlite3'}", build_dir=build_dir
    )
    server.add_account(DEVICE, ["survivor_registration", "custody_visit"])
    device = server.collect(server.token_url)
    sent = {}
    for key, (form_id, answers) in {
        "lahore": registration("LHR-0101", "ssu_lahore", "2026-07-05", "jail"),
        "rawalpindi": registration("RWP-0101", "ssu_rawalpindi", "2026-07-06", "jail"),
        "visit": visit("police_station", "lahore", "2026-07-07", "PS-LHR-01", 2, 0, "yes"),
    }.items():
        xml = instance_xml(build_dir / f"{form_id}.xml", answers)
        assert device.send(xml).status_code == 201
        sent[key] = (form_id, re.search(rb"<instanceID>([^<]+)<", xml).group(1).decode())
    people = {
        "admin": add_person(server.app, "p-admin", "admin"),
        "supervisor": add_person(server.app, "p-super", "supervisor"),
        "caseworker": add_person(server.app, "p-case", "caseworker", "ssu_lahore"),
        "monitor": add_person(server.app, DEVICE, "monitor"),
        "viewer": add_person(server.app, "p-view", "viewer"),
    }
    names = {
        "admin": "p-admin",
        "supervisor": "p-super",
        "caseworker": "p-case",
        "monitor": DEVICE,
        "viewer": "p-view",
    }

    def client(role):
        c = server.app.test_client()
        assert sign_in(c, names[role], people[role]).status_code == 302
        return c

    yield server, sent, client
    server.close()


def url(submission: tuple[str, str]) -> str:
    return "/submissions/{}/{}".format(*submission)


def roots(page: str) -> set[str]:
    return set(re.findall(r'<tr data-root="([^"]+)"', page))


def test_each_role_sees_in_the_queue_only_what_it_may(pages):
    _, sent, client = pages
    every = {root for _, root in sent.values()}
    assert roots(client("supervisor").get("/").get_data(as_text=True)) == every
    assert roots(client("admin").get("/").get_data(as_text=True)) == every
    assert roots(client("caseworker").get("/").get_data(as_text=True)) == {sent["lahore"][1]}
    assert roots(client("monitor").get("/").get_data(as_text=True)) == {sent["visit"][1]}
    viewer = client("viewer").get("/")
    assert viewer.status_code == 200
    assert roots(viewer.get_data(as_text=True)) == set()
    assert 'id="viewer-note"' in viewer.get_data(as_text=True)


def test_the_queue_filters_from_the_query_string_and_says_what_it_ignored(pages):
    _, sent, client = pages
    c = client("supervisor")
    assert roots(c.get("/?form=custody_visit").get_data(as_text=True)) == {sent["visit"][1]}
    assert roots(c.get("/?text=rwp-0101").get_data(as_text=True)) == {sent["rawalpindi"][1]}
    assert roots(c.get("/?unit=ssu_lahore").get_data(as_text=True)) == {sent["lahore"][1]}
    assert roots(c.get("/?state=approved&form=custody_visit").get_data(as_text=True)) == set()
    assert roots(c.get("/?until=2000-01-01").get_data(as_text=True)) == set()
    bad = c.get("/?since=yesterday").get_data(as_text=True)
    assert "is not a date" in bad and len(roots(bad)) == 3  # the bad filter is left out


def test_a_role_outside_the_scope_gets_403_on_the_page(pages):
    _, sent, client = pages
    lahore, rawalpindi = (url(sent[k]) for k in ("lahore", "rawalpindi"))
    assert client("caseworker").get(rawalpindi).status_code == 403  # another unit
    assert client("monitor").get(lahore).status_code == 403
    assert client("viewer").get(lahore).status_code == 403
    assert client("monitor").get(url(sent["visit"])).status_code == 200


def test_a_view_of_a_survivor_submission_writes_one_audit_row(pages):
    server, sent, client = pages
    form_id, root = sent["lahore"]
    c = client("caseworker")
    before = [r for r in audit_rows(server.app) if r["action"] == "view"]
    assert c.get(f"/submissions/{form_id}/{root}").status_code == 200
    after = [r for r in audit_rows(server.app) if r["action"] == "view"]
    assert len(after) == len(before) + 1
    assert (after[0]["actor"], after[0]["form_id"], after[0]["record"]) == ("p-case", form_id, root)
    # a custody visit is not a survivor form: its view is not audited
    assert client("supervisor").get(url(sent["visit"])).status_code == 200
    assert len([r for r in audit_rows(server.app) if r["action"] == "view"]) == len(after)


def test_a_decision_on_a_local_submission_stays_local_and_shows_in_the_queue(pages):
    server, sent, client = pages
    form_id, root = sent["visit"]
    store = server.app.extensions["nigraan"].store
    c = client("supervisor")
    page = f"/submissions/{form_id}/{root}"
    answer = c.post(
        page + "/decision",
        data={"csrf_token": csrf_token(c, page), "state": "approved", "comment": "checked"},
    )
    assert answer.status_code == 302 and answer.headers["Location"] == page
    assert "Decision saved." in c.get(page).get_data(as_text=True)
    assert store.submission(form_id, root)["review_state"] == "approved"
    assert [r["comment"] for r in store.reviews(form_id, root)] == ["checked"]
    assert store.pending_reviews() == []  # not from Central: nothing waits to be sent
    assert any(r["action"] == "review" and r["record"] == root for r in audit_rows(server.app))
    listed = c.get("/?state=approved").get_data(as_text=True)
    assert roots(listed) == {root}
    # nothing chosen: refused with the hint, nothing recorded
    c.post(page + "/decision", data={"csrf_token": csrf_token(c, page)})
    assert "Choose a state or write a comment" in c.get(page).get_data(as_text=True)
    assert len(store.reviews(form_id, root)) == 1
    # a monitor may not decide
    m = client("monitor")
    refused = m.post(
        page + "/decision", data={"csrf_token": csrf_token(m, page), "state": "rejected"}
    )
    assert refused.status_code == 403


def test_a_decision_from_the_page_on_a_central_submission_goes_through_the_outbox_once(
    standin,  # noqa: F811 - the fixture imported above
    central,  # noqa: F811
    tmp_path,
):
    from sync.pull import sync
    from sync.review_outbox import push_reviews
    from tests.conftest import CENTRAL
    from tests.openrosa_client import InProcessServer

    server = InProcessServer(tmp_path / "app", CENTRAL, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        store = server.app.extensions["nigraan"].store
        sync(central, store, [FORM])
        password = add_person(server.app, "p-super", "supervisor")
        c = server.app.test_client()
        assert sign_in(c, "p-super", password).status_code == 302
        page = f"/submissions/{FORM}/{V06}"
        shown = c.get(page).get_data(as_text=True)
        assert "The decision is also sent to ODK Central." in shown
        answer = c.post(
            page + "/decision",
            data={"csrf_token": csrf_token(c, page), "state": "approved", "comment": "ok"},
        )
        assert answer.status_code == 302
        assert [p["root_id"] for p in store.pending_reviews()] == [V06]
        pushed = (push_reviews(central, store).applied, push_reviews(central, store).applied)
        assert pushed == (1, 0)
        assert standin.form(FORM).subs[V06].row["__system"]["reviewState"] == "approved"
        assert [x["body"] for x in standin.form(FORM).subs[V06].comments] == ["ok"]
    finally:
        server.close()


def test_the_queue_shows_the_sync_and_its_button_starts_one(standin, tmp_path):  # noqa: F811
    import time
    from dataclasses import replace

    from sync.central import Central
    from sync.schedule import SyncScheduler, run_sync
    from tests.conftest import CENTRAL
    from tests.openrosa_client import InProcessServer
    from tests.test_sync import _settings

    server = InProcessServer(tmp_path / "app", CENTRAL, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    store = server.app.extensions["nigraan"].store
    scheduler = SyncScheduler(store, lambda: Central(_settings(standin)), 0).start()
    server.app.extensions["nigraan_sync"] = scheduler
    try:
        c = server.app.test_client()
        assert (
            sign_in(c, "p-super", add_person(server.app, "p-super", "supervisor")).status_code
            == 302
        )
        assert "Not synced with ODK Central yet." in c.get("/").get_data(as_text=True)
        answer = c.post("/sync", data={"csrf_token": csrf_token(c, "/")})
        assert answer.status_code == 302
        deadline = time.monotonic() + 30
        while store.sync_status()["last_success"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
        page = c.get("/").get_data(as_text=True)
        assert "A sync with ODK Central has started" in page  # the flash, once
        assert "Last synced with ODK Central:" in page and "rec_visit: 30 new" in page
        assert len(roots(page)) == 25  # the first page of the 30 that came in
        assert 'rel="next"' in page

        # A failure is told in words: Central cannot be reached.
        gone = replace(_settings(standin), base_url="http://127.0.0.1:9", retries=1)
        assert run_sync(store, lambda: Central(gone), "shell").ok is False
        page = c.get("/").get_data(as_text=True)
        assert "The last sync failed:" in page and "could not be reached" in page
        assert "Sync now" in page
        cw = server.app.test_client()
        assert sign_in(cw, "p-mon", add_person(server.app, "p-mon", "monitor")).status_code == 302
        assert 'id="sync-now"' not in cw.get("/").get_data(as_text=True)
    finally:
        scheduler.stop()
        server.close()


def test_a_file_download_is_audited_and_a_non_image_comes_as_an_attachment(tmp_path):
    from tests.conftest import CENTRAL
    from tests.openrosa_client import InProcessServer
    from tests.test_openrosa_server import visit_xml

    server = InProcessServer(tmp_path / "app", CENTRAL, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        server.add_account("tablet-files")
        device = server.collect(server.token_url)
        note, photo = (
            "uuid:00000000-0000-4000-8000-00000000f001",
            "uuid:00000000-0000-4000-8000-00000000f002",
        )
        assert (
            device.send(visit_xml(note, "n.txt"), [("n.txt", b"a note", "text/plain")]).status_code
            == 201
        )
        png = (CENTRAL / "forms" / "logo.png").read_bytes()
        assert (
            device.send(visit_xml(photo, "p.png"), [("p.png", png, "image/png")]).status_code == 201
        )
        c = server.app.test_client()
        assert (
            sign_in(c, "p-super", add_person(server.app, "p-super", "supervisor")).status_code
            == 302
        )
        text = c.get(f"/submissions/rec_visit/{note}/files/n.txt")
        assert text.status_code == 200 and text.data == b"a note"
        assert text.headers["Content-Disposition"] == 'attachment; filename="n.txt"'
        assert text.headers["X-Content-Type-Options"] == "nosniff"
        image = c.get(f"/submissions/rec_visit/{photo}/files/p.png")
        assert image.status_code == 200 and image.mimetype == "image/png"
        assert "Content-Disposition" not in image.headers
        assert c.get(f"/submissions/rec_visit/{photo}/files/other.png").status_code == 404
        downloads = [
            (r["action"], r["record"]) for r in audit_rows(server.app) if r["action"] == "download"
        ]
        assert downloads == [("download", photo), ("download", note)]
        cw = server.app.test_client()
        assert (
            sign_in(
                cw, "p-cw", add_person(server.app, "p-cw", "caseworker", "ssu_lahore")
            ).status_code
            == 302
        )
        assert cw.get(f"/submissions/rec_visit/{note}/files/n.txt").status_code == 403
    finally:
        server.close()


def test_a_caseworker_decides_on_her_units_survivor_forms_only(pages):
    server, sent, client = pages
    store = server.app.extensions["nigraan"].store
    c = client("caseworker")
    mine, other = url(sent["lahore"]), url(sent["rawalpindi"])
    token = csrf_token(c, mine)
    answer = c.post(
        mine + "/decision",
        data={"csrf_token": token, "state": "hasIssues", "comment": "age missing"},
    )
    assert answer.status_code == 302
    assert store.submission(*sent["lahore"])["review_state"] == "hasIssues"
    refused = c.post(other + "/decision", data={"csrf_token": token, "state": "approved"})
    assert refused.status_code == 403
    assert store.reviews(*sent["rawalpindi"]) == []
