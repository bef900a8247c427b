"""The forms page and its exports in the web app: what each role may download, the audit row of
every export, no-store on survivor forms; and the page in a real Chromium at 360 px.

Submissions are the built programme forms' instances sent through the OpenRosa path by a
Collect-like client (the route x role table itself is in tests/test_web_access.py)."""

from __future__ import annotations

import csv
import io
import zipfile

import openpyxl
import pytest

from store.store import Incoming, Store
from tests.central_records import FINAL_PAGES, odata_rows
from tests.test_report_indicators import instance_xml, registration, visit
from tests.test_web_browser import PHONE, keep
from tests.test_web_browser import sign_in as browser_sign_in
from tests.web_client import add_person, audit_rows, sign_in

DEVICE = "tablet-exports"
EXPORT = "/forms/survivor_registration/export"


@pytest.fixture(scope="module")
def site(tmp_path_factory, built_programme_forms):
    from tests.conftest import CENTRAL
    from tests.openrosa_client import InProcessServer

    config, _ = built_programme_forms
    build_dir = config["forms.build_dir"]
    tmp = tmp_path_factory.mktemp("web-exports")
    server = InProcessServer(
        tmp / "app", CENTRAL, f"sqlite:///{tmp / 'store.sqlite3'}", build_dir=build_dir
    )
    server.add_account(DEVICE, ["survivor_registration", "custody_visit"])
    device = server.collect(server.token_url)
    for form_id, answers in (
        registration("LHR-0201", "ssu_lahore", "2026-07-05", "jail"),
        registration("RWP-0202", "ssu_rawalpindi", "2026-07-06", "jail"),
        visit("police_station", "lahore", "2026-07-07", "PS-LHR-01", 2, 0, "yes"),
    ):
        assert device.send(instance_xml(build_dir / f"{form_id}.xml", answers)).status_code == 201
    people = {
        "admin": ("x-admin", add_person(server.app, "x-admin", "admin")),
        "supervisor": ("x-super", add_person(server.app, "x-super", "supervisor")),
        "caseworker": ("x-case", add_person(server.app, "x-case", "caseworker", "ssu_lahore")),
        "monitor": (DEVICE, add_person(server.app, DEVICE, "monitor")),
        "viewer": ("x-view", add_person(server.app, "x-view", "viewer")),
    }

    def client(role):
        c = server.app.test_client()
        name, password = people[role]
        assert sign_in(c, name, password).status_code == 302
        return c

    yield server.app, client
    server.close()


def rows_of(answer) -> list[list[str]]:
    with zipfile.ZipFile(io.BytesIO(answer.data)) as archive:
        text = archive.read("survivor_registration.csv").decode("utf-8")
    return list(csv.reader(io.StringIO(text)))


def test_an_admin_downloads_a_full_workbook_sent_no_store_and_audited(site):
    app, client = site
    answer = client("admin").get(EXPORT + "?format=xlsx&profile=full")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert "filename=survivor_registration.xlsx" in answer.headers["Content-Disposition"]
    book = openpyxl.load_workbook(io.BytesIO(answer.data))
    header = next(book["survivor_registration"].iter_rows(values_only=True))
    assert "survivor_code" in header and "identity_register" not in book.sheetnames
    [row] = audit_rows(app, actor="x-admin")[:1]
    assert (row["action"], row["form_id"], row["role"]) == (
        "export",
        "survivor_registration",
        "admin",
    )
    assert "format xlsx, profile full" in row["detail"] and "2 submissions" in row["detail"]


def test_a_viewer_gets_the_funder_profile_only_and_no_survivor_form(site):
    app, client = site
    viewer = client("viewer")
    visits = "/forms/custody_visit/export"
    assert viewer.get(visits + "?format=csv&profile=full").status_code == 403
    answer = viewer.get(visits + "?format=csv&profile=funder")
    assert answer.status_code == 200
    assert "filename=custody_visit-funder.csv.zip" in answer.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(answer.data)) as archive:
        rows = list(csv.reader(io.StringIO(archive.read("custody_visit.csv").decode("utf-8"))))
    assert len(rows) == 2
    [row] = audit_rows(app, actor="x-view")[:1]
    assert row["action"] == "export" and "profile funder" in row["detail"]
    # one row of a survivor form is one woman's case, code or not: the indicators only
    for profile in ("full", "funder"):
        assert viewer.get(EXPORT + f"?format=csv&profile={profile}").status_code == 403
    page = viewer.get("/forms").get_data(as_text=True)
    assert "profile=funder" in page and "profile=full" not in page
    assert "/forms/survivor_registration/export" not in page


def test_a_caseworker_exports_her_units_survivor_forms_only(site):
    _, client = site
    caseworker = client("caseworker")
    rows = rows_of(caseworker.get(EXPORT + "?format=csv"))
    assert len(rows) == 2 and "LHR-0201" in rows[1]  # not Rawalpindi's survivor
    assert caseworker.get("/forms/custody_visit/export").status_code == 403
    page = caseworker.get("/forms").get_data(as_text=True)
    assert 'data-form="survivor_registration"' in page and 'data-form="custody_visit"' not in page


def test_a_monitor_exports_nothing_and_a_custody_visit_is_cacheable(site):
    _, client = site
    assert client("monitor").get("/forms").status_code == 403
    answer = client("supervisor").get("/forms/custody_visit/export?format=csv&profile=funder")
    assert answer.status_code == 200 and answer.headers.get("Cache-Control") != "no-store"


def test_the_forms_page_on_a_phone_in_english_and_urdu(
    chromium, serve_openrosa, tmp_path, central_dir
):
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    server = serve_openrosa(url)
    store = Store.open(url)
    store.ingest_many(
        [Incoming(r, "central", "rec_visit") for r in odata_rows(central_dir, *FINAL_PAGES)]
    )
    from server.web.accounts import hash_password

    store.people.create("sana", hash_password("sana-password-123"), "supervisor")
    context = chromium.new_context(viewport=PHONE, device_scale_factor=2, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        browser_sign_in(page, server.base, "sana", "sana-password-123")
        page.click("#nav-forms")
        page.wait_for_selector("#forms")
        assert page.inner_text("h1") == "Forms and exports"
        assert "30" in page.inner_text("tr[data-form=rec_visit]")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        keep(page, tmp_path, "exports-0-forms-en")
        with page.expect_download() as download:
            page.click("tr[data-form=rec_visit] a[data-profile=funder][data-format=xlsx]")
        assert download.value.suggested_filename == "rec_visit-funder.xlsx"
        book = openpyxl.load_workbook(io.BytesIO(download.value.path().read_bytes()))
        assert "SubmitterName" not in next(book["rec_visit"].iter_rows(values_only=True))
        page.click("button[data-lang=ur]")
        page.wait_for_selector("html[dir=rtl]")
        assert page.inner_text("h1") == "فارم اور ایکسپورٹ"
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        keep(page, tmp_path, "exports-1-forms-ur")
    finally:
        context.close()
    [row] = [r for r in store.audit.entries() if r["action"] == "export"]
    store.close()
    assert (row["actor"], row["form_id"]) == ("sana", "rec_visit")
    assert "format xlsx, profile funder" in row["detail"]
