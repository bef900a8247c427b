"""The web app in a real Chromium (Debian's /usr/bin/chromium driven by Playwright) against a
real `nigraan serve` on 127.0.0.1, at a phone's 360x640 viewport.

Screenshots are kept under the test's tmp folder; with TEST_SCREENS_DIR set, the last ones are
copied there too (for a person to look at).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from server.web.accounts import hash_password
from store.store import Store

SCREENS = os.environ.get("TEST_SCREENS_DIR", "")  # read before the hermetic fixture runs
PHONE = {"width": 360, "height": 640}


def keep(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if SCREENS:
        Path(SCREENS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SCREENS) / path.name)
    return path


def sign_in(page, base: str, name: str, password: str) -> None:
    page.goto(base + "/")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button.primary")
    page.wait_for_url(base + "/")


def test_an_admin_makes_a_supervisor_who_signs_in_on_a_phone_in_urdu_and_out(
    chromium, serve_openrosa, tmp_path
):
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    server = serve_openrosa(url)
    store = Store.open(url)
    store.people.create("amna", hash_password("amna-password-123"), "admin")
    context = chromium.new_context(viewport=PHONE, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, server.base, "amna", "amna-password-123")
        page.click("text=Users")
        page.fill("#name", "sara")
        page.select_option("#role", "supervisor")
        page.click("button.primary")
        password = page.inner_text("#new-password code")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        keep(page, tmp_path, "web-auth-0-admin-users")
        page.click("#sign-out")
        page.wait_for_url(server.base + "/sign-in")

        page.goto(server.base + "/")
        assert page.url == server.base + "/sign-in?next=/"
        keep(page, tmp_path, "web-auth-1-sign-in")
        page.fill("#name", "sara")
        page.fill("#password", "wrong password")
        page.click("button.primary")
        assert "Sign-in failed" in page.inner_text("main")
        page.fill("#password", password)
        page.click("button.primary")
        page.wait_for_url(server.base + "/")
        assert page.inner_text("h1") == "Review queue"
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        keep(page, tmp_path, "web-auth-2-queue-en")

        page.click("button[data-lang=ur]")
        page.wait_for_selector("html[dir=rtl]")
        assert page.get_attribute("html", "lang") == "ur"
        assert page.inner_text("h1") == "جائزے کی فہرست"
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        keep(page, tmp_path, "web-auth-3-queue-ur")

        page.click("#sign-out")
        page.wait_for_url(server.base + "/sign-in")
        assert page.get_attribute("html", "dir") == "rtl"  # the sign-in page keeps their language
        keep(page, tmp_path, "web-auth-4-signed-out-ur")
        page.goto(server.base + "/")
        assert "/sign-in" in page.url
    finally:
        context.close()
    actions = [(r["actor"], r["action"]) for r in store.audit.entries()]
    store.close()
    assert actions == [
        ("sara", "sign-out"),
        ("sara", "sign-in"),
        ("sara", "failed sign-in"),
        ("amna", "sign-out"),
        ("amna", "user change"),
        ("amna", "sign-in"),
    ]


def test_a_supervisor_on_a_phone_approves_in_urdu_a_visit_sent_by_collect(
    chromium, serve_openrosa, tmp_path
):
    from tests.conftest import CENTRAL
    from tests.openrosa_client import CollectClient
    from tests.test_openrosa_server import visit_xml

    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    server = serve_openrosa(url)
    root = "uuid:00000000-0000-4000-8000-0000000b0b01"
    photo = (CENTRAL / "forms" / "logo.png").read_bytes()
    detainees = "".join(
        f"<detainee><detainee_name>{name}</detainee_name><detainee_info><detainee_age>{age}"
        "</detainee_age><detainee_gender>female</detainee_gender></detainee_info>"
        "<released>no</released></detainee>"
        for name, age in (("Detainee A", 30), ("Detainee B", 41))
    )
    xml = visit_xml(root, "p.png").replace(b"<meta>", detainees.encode() + b"<meta>")
    sent = CollectClient(server.token_url).send(xml, [("p.png", photo, "image/png")])
    assert sent.status_code == 201, sent.text
    store = Store.open(url)
    store.people.create("sara", hash_password("sara-password-123"), "supervisor")
    context = chromium.new_context(viewport=PHONE, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, server.base, "sara", "sara-password-123")
        assert page.locator(f'tr[data-root="{root}"]').count() == 1
        page.click("#show-filters")  # folded away until a filter is set
        page.select_option("select[name=form]", "rec_visit")
        page.select_option("select[name=state]", "received")
        page.click("#apply-filters")
        page.wait_for_url("**/?form=rec_visit*")
        row = page.locator(f'tr[data-root="{root}"]')
        assert page.locator("details.filter-box[open]").count() == 1
        assert row.locator("td.state").inner_text() == "received"
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        keep(page, tmp_path, "web-wire-0-queue-filtered")

        row.locator("a").first.click()
        page.wait_for_selector("article.submission")
        assert page.evaluate("document.querySelector('img.photo').naturalWidth") > 0
        page.click("button[data-lang=ur]")
        page.wait_for_selector("html[dir=rtl]")
        assert page.inner_text("h2 >> nth=0") == "معلومات"
        detainees = page.locator('section.repeat-section[data-path="detainee"] table.repeat').first
        assert detainees.locator(":scope > tbody > tr").count() == 2  # injuries nest inside
        assert "عورت" in detainees.inner_text()  # the choice by its Urdu label
        page.check("input[name=state][value=approved]")
        page.fill("#comment", "تصویر واضح ہے")
        page.click("form.decision button[type=submit]")
        page.wait_for_selector(".flash")
        assert page.inner_text(".flash") == "فیصلہ محفوظ ہو گیا۔"
        assert page.get_attribute("dd.state", "data-state") == "approved"
        assert page.inner_text("dd.state") == "منظور"
        assert "تصویر واضح ہے" in page.inner_text("ol.reviews")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        keep(page, tmp_path, "web-wire-1-approved-ur")
        page.goto(server.base + "/?state=approved")
        assert page.locator(f'tr[data-root="{root}"] td.state').inner_text() == "منظور"
        keep(page, tmp_path, "web-wire-2-queue-ur")
    finally:
        context.close()
    rows = [(r["actor"], r["action"], r["record"]) for r in store.audit.entries()]
    store.close()
    assert ("sara", "review", root) in rows
    assert ("sara", "download", root) in rows  # the photo shown inline


@pytest.fixture(scope="module")
def programme_server(built_programme_forms, tmp_path_factory):
    """`nigraan serve` over the programme's forms, holding the hand-counted indicator dataset
    of test_report_indicators (sent by a Collect-like client), a supervisor and a viewer."""
    from server.device_accounts import create_account
    from tests.openrosa_client import CollectClient, ServerProcess
    from tests.test_report_indicators import DATASET, FORMS, instance_xml

    config, _ = built_programme_forms
    build_dir = config["forms.build_dir"]
    tmp_path = tmp_path_factory.mktemp("dashboard-browser")
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    (tmp_path / "instance").mkdir()
    server = ServerProcess(
        {
            "NIGRAAN_INSTANCE_DIR": str(tmp_path / "instance"),
            "NIGRAAN_FORMS_BUILD_DIR": str(build_dir),
            "NIGRAAN_DATABASE_URL": url,
        }
    ).start()
    store = Store.open(url)
    try:
        account = create_account(store.app_users, "report-tablet", FORMS)
        client = CollectClient(server.base, username=account.user.name, password=account.password)
        for form_id, answers in DATASET:
            sent = client.send(instance_xml(build_dir / f"{form_id}.xml", answers))
            assert sent.status_code == 201, (form_id, sent.text)
        store.people.create("sara", hash_password("sara-password-123"), "supervisor")
        store.people.create("funder", hash_password("funder-password-123"), "viewer")
        yield server, store
    finally:
        store.close()
        server.stop()


@pytest.mark.parametrize("who", ["sara", "funder"])
def test_the_indicators_page_on_a_phone_in_english_and_urdu(
    chromium, programme_server, tmp_path, who
):
    server, store = programme_server
    context = chromium.new_context(viewport=PHONE, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, server.base, who, f"{who}-password-123")
        page.click("#nav-reports")
        page.wait_for_selector("#outputs")
        period = "all"
        if who == "sara":  # a viewer reads the whole programme only: no period to choose
            period = "2026-Q3"
            page.select_option("#period", period)
            page.click("#show-period")
            page.wait_for_url("**/reports?period=2026-Q3")
        lahore = page.locator(
            '#ind-women_reached table.figures tr:has(bdi:text-is("Lahore")) td'
        ).first
        assert lahore.text_content() == ("2" if who == "sara" else "<5")
        for language in ("en", "ur"):
            if language == "ur":
                page.click("button[data-lang=ur]")
                page.wait_for_selector("html[dir=rtl]")
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            # Every chart is drawn inside the phone's width.
            boxes = page.evaluate(
                "[...document.querySelectorAll('svg.chart')].map(s => {"
                " const r = s.getBoundingClientRect(); return [r.left, r.right, r.height]; })"
            )
            assert len(boxes) > 20
            assert all(left >= 0 and right <= PHONE["width"] and h > 0 for left, right, h in boxes)
            keep(page, tmp_path, f"dashboard-{who}-{language}")
        assert page.inner_text("h1") == "پروگرام کے اشاریے"
        page.locator("#ind-women_reached details summary").first.click()
        keep(page, tmp_path, f"dashboard-{who}-ur-table")
        with page.expect_download() as download:
            page.click("#download")
        assert download.value.suggested_filename == f"nigraan-indicators-{period}.xlsx"
        if who == "sara":
            page.select_option("#period", "all")  # the whole programme: against its targets
            page.click("#show-period")
            page.wait_for_url("**/reports?period=all")
        assert page.locator("#ind-women_reached svg.progress").count() == 1
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        keep(page, tmp_path, f"dashboard-{who}-ur-all")
    finally:
        context.close()
    rows = [(r["action"], r["detail"]) for r in store.audit.entries(actor=who)]
    period = "2026-Q3" if who == "sara" else "all"
    assert ("export", f"xlsx; period={period}; profile=funder") in rows
