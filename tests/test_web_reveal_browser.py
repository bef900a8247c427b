"""Revealing a survivor's identity in a real Chromium at a phone's 360x640, against a real
`nigraan serve` on 127.0.0.1 over the programme's forms: a caseworker opens her survivor from a
submission, reveals her identity with a reason, sees it, and after web.reveal_seconds it is
gone from the screen and from the page's HTML; in Urdu too; and without JavaScript the page goes
back to her pseudonymous page. Screenshots as tests/test_web_browser.py keeps them."""

from __future__ import annotations

import re
import secrets

from nigraan.data_key import DataKey, encode
from server.web.accounts import hash_password
from store.identity_register import IdentityRegister
from store.store import Store
from tests.openrosa_client import CollectClient
from tests.test_report_indicators import instance_xml, registration, service
from tests.test_web_browser import PHONE, keep, sign_in

CODE = "LHR-0101"
NAME, CNIC, PHONE_NO = "Shazia Bibi Qureshi", "35202-1234567-1", "0300-1234567"
SECONDS = 2


def wide(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_a_caseworker_reveals_an_identity_on_a_phone_and_it_leaves_the_screen(
    chromium,
    serve_openrosa,
    built_programme_forms,
    tmp_path,
):
    from server.device_accounts import create_account

    build_dir = built_programme_forms[0]["forms.build_dir"]
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    key_text = encode(secrets.token_bytes(32))
    server = serve_openrosa(
        url,
        forms__build_dir=build_dir,
        identity__key=key_text,
        web__reveal_seconds=SECONDS,
    )
    store = Store.open(url)
    device = create_account(
        store.app_users, "tablet-ssu", ["survivor_registration", "service_contact"]
    )
    collect = CollectClient(device.token_url(server.base))
    roots = {}
    for form_id, answers in (
        registration(CODE, "ssu_lahore", "2026-07-05", "jail"),
        service(CODE, "ssu_lahore", "2026-07-07", "counselling"),
    ):
        xml = instance_xml(build_dir / f"{form_id}.xml", answers)
        assert collect.send(xml).status_code == 201
        roots[form_id] = re.search(rb"<instanceID>([^<]+)<", xml).group(1).decode()
    IdentityRegister(store.engine, DataKey.from_text(key_text, "test key")).put(
        CODE,
        {
            "person/full_name": NAME,
            "person/cnic": CNIC,
            "contact/mobile": PHONE_NO,
            "contact/safe_to_call": "yes",
        },
    )
    store.people.create("hina", hash_password("hina-password-123"), "caseworker", "ssu_lahore")
    context = chromium.new_context(viewport=PHONE, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(15_000)
    survivor_page = f"{server.base}/survivors/{CODE}"
    try:
        sign_in(page, server.base, "hina", "hina-password-123")
        page.click(f'tr[data-root="{roots["survivor_registration"]}"] a')
        page.wait_for_selector("article.submission")
        page.click("#survivor-link")
        page.wait_for_url(survivor_page)
        assert page.locator("table.records tbody tr").count() == 2
        assert wide(page) <= PHONE["width"]
        keep(page, tmp_path, "reveal-0-survivor-en")

        # no reason: the browser's own check, then the server's clear message
        page.click("#reveal")
        assert page.url == survivor_page  # `required` kept the form from going
        page.evaluate("document.getElementById('reason').removeAttribute('required')")
        page.evaluate("document.getElementById('reason').removeAttribute('minlength')")
        page.fill("#reason", "soon")
        page.click("#reveal")
        page.wait_for_selector("#reason-problem")
        assert "at least 10 characters" in page.inner_text("#reason-problem")
        assert NAME not in page.content()

        page.fill("#reason", "To call her back about her court date")
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.click("#reveal")
        answer = posted.value
        assert answer.headers["cache-control"].startswith("no-store")
        assert answer.headers["pragma"] == "no-cache" and answer.headers["expires"] == "0"
        page.wait_for_selector("#identity")
        shown = page.inner_text("#identity")
        assert NAME in shown and CNIC in shown and PHONE_NO in shown and "Full name" in shown
        assert wide(page) <= PHONE["width"]
        keep(page, tmp_path, "reveal-1-shown-en")
        page.wait_for_selector("#identity", state="detached", timeout=(SECONDS + 8) * 1000)
        html = page.content()
        assert NAME not in html and CNIC not in html and PHONE_NO not in html
        assert page.is_visible("#identity-gone")
        keep(page, tmp_path, "reveal-2-gone-en")

        # In Urdu: the language switch goes back to her page (a GET reveals nothing).
        page.click("button[data-lang=ur]")
        page.wait_for_selector("html[dir=rtl]")
        assert page.url == survivor_page
        assert NAME not in page.content()
        assert page.inner_text("h2 >> nth=0") == "اس کے ریکارڈ"
        assert wide(page) <= PHONE["width"]
        keep(page, tmp_path, "reveal-2b-survivor-ur")
        page.fill("#reason", "عدالت کی تاریخ کے بارے میں فون کرنا ہے")
        page.click("#reveal")
        page.wait_for_selector("#identity")
        assert NAME in page.inner_text("#identity") and "پورا نام" in page.inner_text("#identity")
        assert page.inner_text("#identity h2") == "اس کی شناخت"
        assert wide(page) <= PHONE["width"]
        keep(page, tmp_path, "reveal-3-shown-ur")
        page.wait_for_selector("#identity", state="detached", timeout=(SECONDS + 8) * 1000)
        assert NAME not in page.content()
        assert page.inner_text("#identity-gone").startswith("اس کی شناخت اس اسکرین سے ہٹا دی گئی")
        keep(page, tmp_path, "reveal-4-gone-ur")
    finally:
        context.close()

    # Without JavaScript the page goes back to her pseudonymous page on its own.
    context = chromium.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, server.base, "hina", "hina-password-123")
        page.goto(survivor_page)
        page.fill("#reason", "To arrange her legal aid visit")
        page.click("#reveal")
        page.wait_for_selector("#identity")
        assert NAME in page.inner_text("#identity")
        page.wait_for_url(survivor_page, timeout=(SECONDS + 8) * 1000)
        assert NAME not in page.content()
    finally:
        context.close()

    reveals = [
        (r["actor"], r["record"], r["detail"])
        for r in store.audit.entries()
        if r["action"] == "reveal"
    ]
    every_row = repr(store.audit.entries())
    store.close()
    assert reveals == [
        ("hina", CODE, "To arrange her legal aid visit"),
        ("hina", CODE, "عدالت کی تاریخ کے بارے میں فون کرنا ہے"),
        ("hina", CODE, "To call her back about her court date"),
    ]
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    for secret in (NAME, CNIC, PHONE_NO):
        assert secret not in every_row and secret not in log
