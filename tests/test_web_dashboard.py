"""The indicators page (/reports) and its XLSX download over the hand-counted fixture dataset of
tests/test_report_indicators.py, sent through the real OpenRosa path into the app's store.

Admins and supervisors read exact figures; a viewer only what the funder export publishes
(counts 1 to 4 as <5, complementary cells hidden), in the numbers, the tables and the charts.
"""

from __future__ import annotations

import io
import re

import pytest
from lxml import etree, html

from reports.indicators import load_definitions
from tests.test_report_indicators import DATASET, FORMS, instance_xml
from tests.web_client import add_person, audit_rows, sign_in

PROTECTED = {d.id for d in load_definitions() if d.suppress}
SVG = re.compile(r"<svg\b.*?</svg>", re.S)
SVG_NS = "{http://www.w3.org/2000/svg}"
# A count from 1 to 4 standing alone: not part of 24, 0.475, 50%, Q3 or 2026-Q3.
SMALL_COUNT = re.compile(r"(?<![\d.,<Q])[1-4](?![\d.,%])")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, built_programme_forms):
    """The app over a SQLite store holding DATASET, and a person of every role."""
    from tests.conftest import CENTRAL
    from tests.openrosa_client import InProcessServer

    config, _ = built_programme_forms
    tmp = tmp_path_factory.mktemp("dashboard")
    server = InProcessServer(
        tmp / "app",
        CENTRAL,
        f"sqlite:///{tmp / 'store.sqlite3'}",
        build_dir=config["forms.build_dir"],
    )
    server.add_account("report-tablet", FORMS)
    collect = server.collect(server.token_url)
    for form_id, answers in DATASET:
        sent = collect.send(instance_xml(config["forms.build_dir"] / f"{form_id}.xml", answers))
        assert sent.status_code == 201, (form_id, sent.text)
    people = {}
    for role in ("admin", "supervisor", "caseworker", "monitor", "viewer"):
        unit = "ssu_lahore" if role == "caseworker" else None
        people[role] = (f"d-{role}", add_person(server.app, f"d-{role}", role, unit))
    yield server.app, people
    server.close()


def signed_in(dashboard, role: str, language: str = "en"):
    app, people = dashboard
    client = app.test_client()
    name, password = people[role]
    assert sign_in(client, name, password).status_code == 302
    if language != "en":
        from tests.web_client import csrf_token

        token = csrf_token(client, "/")
        client.post("/language", data={"lang": language, "next": "/", "csrf_token": token})
    return client


def page(client, query: str = "") -> str:
    answer = client.get("/reports" + query)
    assert answer.status_code == 200, answer.status_code
    return answer.get_data(as_text=True)


def panel_of(text: str, indicator: str) -> str:
    found = re.search(rf'<article [^>]*data-indicator="{indicator}".*?</article>', text, re.S)
    assert found, indicator
    return found.group(0)


def charts_of(text: str) -> list[etree._Element]:
    """Each inline SVG, parsed as XML (an HTML parser would move its <title> away)."""
    return [etree.fromstring(svg.encode()) for svg in SVG.findall(text)]


def figures_of(text: str, indicator: str) -> str:
    """Everything one indicator's panel says but its label: figures, tables, charts' texts."""
    article = panel_of(text, indicator)
    words = [t for svg in charts_of(article) for t in svg.itertext()]
    tree = html.fromstring(SVG.sub("", article))
    for heading in tree.xpath(".//h3"):
        heading.getparent().remove(heading)
    return " ".join([*tree.itertext(), *words])


def test_a_supervisor_reads_the_exact_figures_against_targets(dashboard):
    text = page(signed_in(dashboard, "supervisor"), "?period=2026-Q3")
    tree = html.fromstring(text)
    figure = {
        e.get("data-figure"): e.text_content().strip() for e in tree.xpath("//*[@data-figure]")
    }
    # The hand-worked Q3 values of test_report_indicators.
    assert figure["women_reached"] == "5"
    assert figure["legal_counselling"] == "3"
    assert figure["officials_trained"] == "3"
    assert figure["facilities_meeting_standards"] == "67% (2 of 3)"
    assert figure["women_held_over_24h"] == "17% (1 of 6)"
    assert figure["trained_officials_passing"] == "50% (1 of 2)"
    assert (figure["allegations_documented"], figure["allegations_referred"]) == ("2", "1")
    # Two survivor-form records of each of three reasons...: 5 records left out in Q3.
    assert "5 survivor records left out: no consent to reporting." in text
    assert "survivor intake: no consent to reporting — 1 record, 1 survivor" in text
    assert "0.475" in figures_of(text, "trained_officials_passing")  # mean normalised gain
    # The whole programme: women reached against the programme's target of 370.
    everything = page(signed_in(dashboard, "supervisor"))
    assert "5 of 370 (1%)" in figures_of(everything, "women_reached")
    options = html.fromstring(everything).xpath("//select[@name='period']/option/@value")
    assert options == ["all", "2026-Q2", "2026-Q3"]  # the quarters the data has


def test_a_viewer_page_shows_no_count_from_1_to_4(dashboard):
    viewer = page(signed_in(dashboard, "viewer"))
    exact = page(signed_in(dashboard, "supervisor"))
    small_in_exact = 0
    for indicator in PROTECTED:
        seen = figures_of(viewer, indicator)
        assert not SMALL_COUNT.findall(seen), (indicator, seen)
        small_in_exact += len(SMALL_COUNT.findall(figures_of(exact, indicator)))
    assert small_in_exact > 0  # the same check finds them on the exact page
    assert "<5" in viewer and "Counts from 1 to 4 are shown as" in viewer


def test_a_viewer_chart_draws_no_bar_for_a_hidden_figure(dashboard):
    viewer = page(signed_in(dashboard, "viewer"))
    tree = html.fromstring(viewer)
    hidden = [
        g for svg in charts_of(viewer) for g in svg.iter(f"{SVG_NS}g") if "hidden" in g.get("class")
    ]
    assert hidden, "the fixture's Q3 districts are small cells"
    for group in hidden:
        assert group.find(f".//{SVG_NS}rect[@class='fill']") is None, etree.tostring(group)
        value = group.find(f"{SVG_NS}text[@class='value']").text
        value = value.strip("\u2066\u2069")
        assert value == "<5" or value.startswith("hidden"), value
        assert not SMALL_COUNT.findall(value)
    # Lahore's 2 women reached: shown to the supervisor as a bar, to the viewer as <5.
    (lahore,) = tree.xpath(
        '//*[@id="ind-women_reached"]//table//tr[th[normalize-space()="Lahore"]]/td'
    )
    assert lahore.text_content().strip() == "<5"


def test_every_chart_is_well_formed_svg_with_a_title_and_a_description(dashboard):
    for role, language, period in (("supervisor", "en", "?period=2026-Q3"), ("viewer", "ur", "")):
        text = page(signed_in(dashboard, role, language), period)
        charts = charts_of(text)
        assert len(charts) > 20
        for root in charts:
            assert root.get("viewBox") and root.get("role") == "img"
            title = root.find("{http://www.w3.org/2000/svg}title")
            desc = root.find("{http://www.w3.org/2000/svg}desc")
            assert title.text and desc.text
            assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
            assert (root.get("direction") == "rtl") == (language == "ur")
        ids = re.findall(r'<title id="([^"]+)"', text)
        assert len(ids) == len(set(ids))


def test_the_page_in_urdu_uses_the_definitions_urdu_labels(dashboard):
    text = page(signed_in(dashboard, "viewer", "ur"))
    tree = html.fromstring(text)
    assert tree.get("dir") == "rtl"
    heading = tree.xpath('string(//*[@id="ind-women_reached"]/h3)')
    assert "سروائیور سپورٹ یونٹس کے ذریعے پہنچی گئی خواتین" in heading
    assert "لاہور" in figures_of(text, "women_reached")  # the district's Urdu name
    for english in ("Programme indicators", "Outcomes", "by district", "The figures as a table"):
        assert english not in text  # the page's own words are in Urdu too


def test_opening_the_page_and_downloading_the_workbook_are_audited(dashboard):
    from openpyxl import load_workbook

    app, people = dashboard
    for role, period in (("viewer", "all"), ("supervisor", "2026-Q3")):
        client = signed_in(dashboard, role)
        page(client, f"?period={period}")
        answer = client.get(f"/reports/indicators.xlsx?period={period}")
        assert answer.status_code == 200
        assert answer.headers["Content-Disposition"].startswith("attachment")
        wb = load_workbook(io.BytesIO(answer.data))
        assert wb.sheetnames == ["Cover", "Outputs", "Outcomes", "Definitions"]
        outputs = list(wb["Outputs"].iter_rows(values_only=True))
        lahore = next(r for r in outputs if r[0] == "women_reached" and r[5] == "lahore")
        assert lahore[6] == "<5"  # the funder's workbook, whoever downloads it
        name = people[role][0]
        rows = [(r["action"], r["record"], r["detail"]) for r in audit_rows(app, actor=name)]
        exact = "exact" if role == "supervisor" else "suppressed"
        assert ("view", "indicators", f"period={period}; figures={exact}") in rows
        assert ("export", "indicators", f"xlsx; period={period}; profile=funder") in rows


@pytest.mark.parametrize("role", ["caseworker", "monitor"])
def test_caseworkers_and_monitors_are_refused(dashboard, role):
    client = signed_in(dashboard, role)
    assert client.get("/reports").status_code == 403
    assert client.get("/reports/indicators.xlsx").status_code == 403
    assert b'id="nav-reports"' not in client.get("/").data


def test_an_unknown_period_is_not_a_page(dashboard):
    client = signed_in(dashboard, "supervisor")
    assert client.get("/reports?period=2026-Q5").status_code == 404
    assert client.get("/reports?period=yesterday").status_code == 404
    assert b'id="nav-reports"' in client.get("/").data


def test_a_viewer_reads_the_whole_programme_only(dashboard):
    """Each period is suppressed on its own: two side by side could give a hidden count away.
    Sessions: 8 in the programme, 7 in Q3 (shown), so Q2's 1 would be 8 - 7."""
    viewer = signed_in(dashboard, "viewer")
    assert viewer.get("/reports?period=2026-Q3").status_code == 403
    assert viewer.get("/reports/indicators.xlsx?period=2026-Q2").status_code == 403
    text = page(viewer)
    assert 'id="period"' not in text
    sessions = html.fromstring(text).xpath('string(//*[@data-figure="service_sessions"])')
    assert sessions.strip("\u2066\u2069") == "8"  # (her page may be in Urdu: isolated)
    exact = page(signed_in(dashboard, "supervisor"), "?period=2026-Q3")
    assert 'id="period"' in exact
    assert html.fromstring(exact).xpath('string(//*[@data-figure="service_sessions"])') == "7"
