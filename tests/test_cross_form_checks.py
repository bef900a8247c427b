"""Cross-form checks and the review queue over small fixtures of the programme forms.

Submissions are instance XML of the built programme forms (tests/test_report_indicators.py's
instance_xml), stored through Store.ingest as the OpenRosa server and the sync do; each test
says which flags it expects and why.
"""

from __future__ import annotations

import pytest

from store.review_queue import QueueFilter
from tests.test_report_indicators import instance_xml

FORMS = [
    "survivor_registration",
    "survivor_intake",
    "service_contact",
    "case_closure",
    "custody_visit",
    "training_participant",
]


@pytest.fixture(scope="module")
def build_dir(built_programme_forms):
    """The programme's forms, built once for the whole run (conftest)."""
    config, _ = built_programme_forms
    return config["forms.build_dir"]


@pytest.fixture
def checks(store, build_dir):
    for form_id in FORMS:
        store.register_form((build_dir / f"{form_id}.xml").read_bytes())

    def send(form_id, answers, deprecated=None):
        xml = instance_xml(build_dir / f"{form_id}.xml", answers)
        result = store.ingest(xml)
        assert result.status == "created", result
        return result.root_id

    return store, send, build_dir


def rules_of(store):
    return sorted((f["form_id"], f["rule_id"]) for f in store.flags())


def test_unregistered_survivor_flag_clears_when_the_registration_arrives(checks):
    store, send, _ = checks
    service = send("service_contact", {"survivor_code": "LHR-0009", "service_date": "2026-07-02"})
    intake = send("survivor_intake", {"admin/survivor_code": "LHR-0009"})
    flags = store.flags()
    assert {(f["form_id"], f["root_id"], f["rule_id"]) for f in flags} == {
        ("service_contact", service, "unregistered_survivor"),
        ("survivor_intake", intake, "unregistered_survivor"),
    }
    assert all("LHR-0009" in f["reason_en"] and "LHR-0009" in f["reason_ur"] for f in flags)
    send("survivor_registration", {"survivor_code": "LHR-0009", "date_first_contact": "2026-07-01"})
    assert store.flags() == []


def test_service_before_registration_or_after_closure(checks):
    store, send, _ = checks
    send("survivor_registration", {"survivor_code": "A-1", "date_first_contact": "2026-07-10"})
    early = send("service_contact", {"survivor_code": "A-1", "service_date": "2026-07-01"})
    send("service_contact", {"survivor_code": "A-1", "service_date": "2026-07-15"})
    assert [(f["root_id"], f["rule_id"]) for f in store.flags()] == [
        (early, "service_outside_case")
    ]
    send("case_closure", {"survivor_code": "A-1", "closure_date": "2026-07-12"})
    flagged = {f["reason_en"] for f in store.flags()}
    assert flagged == {
        "Service on 2026-07-01 is before the registration on 2026-07-10.",
        "Service on 2026-07-15 is after the case was closed on 2026-07-12.",
    }


def test_custody_visit_over_24_hours_and_no_female_staff(checks):
    store, send, _ = checks
    over = send(
        "custody_visit",
        {
            "b0_visit/monitor_code": "M1",
            "b0_visit/visit_date": "2026-07-01",
            "b0_visit/facility_id": "ps-1",
            "b1_population/women_detained": "2",
            "b2_separation/female_staff_on_duty": "0",
            "b3_registers/longest_hours_without_order": "30",
        },
    )
    send(
        "custody_visit",
        {
            "b0_visit/monitor_code": "M1",
            "b0_visit/visit_date": "2026-07-01",
            "b0_visit/facility_id": "ps-2",
            "b1_population/women_detained": "2",
            "b2_separation/female_staff_on_duty": "1",
            "b3_registers/longest_hours_without_order": "20",
        },
    )
    assert rules_of(store) == [
        ("custody_visit", "held_over_24h"),
        ("custody_visit", "no_female_staff"),
    ]
    assert {f["root_id"] for f in store.flags()} == {over}


def test_two_visits_same_facility_day_and_monitor_are_a_possible_duplicate(checks):
    store, send, _ = checks
    visit = {
        "b0_visit/monitor_code": "M1",
        "b0_visit/visit_date": "2026-07-01",
        "b0_visit/facility_id": "ps-1",
    }
    send("custody_visit", visit)
    send("custody_visit", {**visit, "b0_visit/monitor_code": "M2"})
    assert store.flags() == []
    send("custody_visit", visit)
    assert rules_of(store) == [("custody_visit", "possible_duplicate_visit")] * 2


def test_participant_post_without_pre_and_conflicting_codes(checks):
    store, send, _ = checks
    send(
        "training_participant",
        {
            "event_id": "E1",
            "participant_code": "P1",
            "sex": "female",
            "institution_type": "police",
            "pre_taken": "no",
            "post_taken": "yes",
        },
    )
    assert rules_of(store) == [("training_participant", "post_test_without_pre_test")]
    send(
        "training_participant",
        {
            "event_id": "E2",
            "participant_code": "P1",
            "sex": "male",
            "institution_type": "police",
            "pre_taken": "yes",
            "post_taken": "yes",
        },
    )
    assert rules_of(store) == [
        ("training_participant", "participant_conflict"),
        ("training_participant", "participant_conflict"),
        ("training_participant", "post_test_without_pre_test"),
    ]


def test_rebuild_and_delete_reevaluate_the_flags(checks):
    store, send, _ = checks
    send("service_contact", {"survivor_code": "Z-1", "service_date": "2026-07-02"})
    registration = send("survivor_registration", {"survivor_code": "Z-1"})
    assert store.flags() == []
    store.mark_deleted("survivor_registration", {registration: "2026-07-03T00:00:00Z"})
    assert rules_of(store) == [("service_contact", "unregistered_survivor")]
    store.mark_restored("survivor_registration", [registration])
    assert store.flags() == []
    store.rebuild()
    assert store.flags() == []


def test_review_queue_page_filters_counts_and_flags(checks):
    store, send, _ = checks
    a = send(
        "service_contact",
        {"survivor_code": "LHR-0001", "service_date": "2026-07-02", "ssu_site": "ssu_lahore"},
    )
    b = send("survivor_registration", {"survivor_code": "LHR-0002", "ssu_site": "ssu_multan"})
    c = send(
        "custody_visit",
        {
            "b0_visit/monitor_code": "M1",
            "b0_visit/facility_id": "ps-1",
            "b0_visit/district": "lahore",
        },
    )
    store.record_review("survivor_registration", b, "approved", "ok", for_central=False)
    everything = QueueFilter(form_ids=tuple(FORMS))
    page = store.review_queue(everything)
    assert [r["root_id"] for r in page.rows] == [c, b, a]  # newest first
    assert page.total == 3
    assert page.counts == {"received": 2, "hasIssues": 0, "edited": 0, "approved": 1, "rejected": 0}
    flagged = {r["root_id"]: [f["rule_id"] for f in r["flags"]] for r in page.rows}
    assert flagged == {a: ["unregistered_survivor"], b: [], c: []}
    assert page.rows[2]["support_unit"] == "ssu_lahore"
    assert page.rows[0]["district"] == "lahore" and page.rows[0]["facility"] == "ps-1"

    def roots(**kw):
        return [
            r["root_id"]
            for r in store.review_queue(everything.__class__(form_ids=tuple(FORMS), **kw)).rows
        ]

    assert roots(state="approved") == [b]
    assert roots(state="received") == [c, a]
    assert roots(text="lhr-000") == [b, a]
    assert roots(text="0002") == [b]
    assert roots(rule_id="unregistered_survivor") == [a]
    assert roots(flagged=False) == [c, b]
    assert roots(support_unit="ssu_multan") == [b]
    assert roots(form_id="custody_visit") == [c]
    only_visits = store.review_queue(QueueFilter(form_ids=("custody_visit",)))
    assert [r["root_id"] for r in only_visits.rows] == [c]
    assert only_visits.counts["approved"] == 0
    second = store.review_queue(everything, page=2, per_page=2)
    assert [r["root_id"] for r in second.rows] == [a] and second.total == 3
    oldest = store.review_queue(everything, sort="received", descending=False)
    assert [r["root_id"] for r in oldest.rows] == [a, b, c]
    with pytest.raises(ValueError, match="Cannot sort"):
        store.review_queue(everything, sort="payload; drop table")
    assert store.review_queue(QueueFilter(form_ids=())).rows == []


def _edit(xml: bytes, changes: dict[str, str]) -> bytes:
    """The edit Collect would send: new instanceID, deprecatedID the old one, values changed."""
    from lxml import etree

    root = etree.fromstring(xml)
    ns = {"x": root.nsmap[None]} if None in root.nsmap else {}
    step = "x:" if ns else ""

    def find(path):
        return root.find("/".join(f"{step}{p}" for p in path.split("/")), ns)

    meta = find("meta")
    old = find("meta/instanceID").text
    deprecated = etree.SubElement(meta, f"{{{ns['x']}}}deprecatedID" if ns else "deprecatedID")
    deprecated.text = old
    find("meta/instanceID").text = old + "-edit"
    for path, value in changes.items():
        find(path).text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_an_edit_that_changes_a_code_rechecks_the_old_code_s_group(checks):
    store, send, build_dir = checks
    send("service_contact", {"survivor_code": "K-1", "service_date": "2026-07-02"})
    xml = instance_xml(build_dir / "survivor_registration.xml", {"survivor_code": "K-1"})
    assert store.ingest(xml).status == "created"
    assert store.flags() == []
    edited = store.ingest(_edit(xml, {"survivor_code": "K-2"}))
    assert edited.status == "edited"
    assert rules_of(store) == [("service_contact", "unregistered_survivor")]  # K-1 lost it
    assert store.submission("survivor_registration", edited.root_id)["review_state"] == "edited"


def test_the_registry_s_layouts_name_the_columns_the_tables_record(checks):
    """A batch's checks take the columns from the layout its rows were typed with; they must be
    the ones form_tables and form_columns record, for every source a rule or the summary
    reads (and None for a form or repeat that has no table)."""
    from store import cross_form_checks as cfc

    store, _, _ = checks
    sources = {src for r in cfc.RULES.values() for src in r.fields} | set(cfc.SUMMARY)
    sources |= {"no_such_form", "custody_visit/no_such_repeat"}
    with store.engine.connect() as conn:
        from_layout = cfc._Tables(conn, store.forms)
        from_tables = cfc._Tables(conn)
        compared = {src: from_layout.columns(src) for src in sorted(sources)}
        assert compared == {src: from_tables.columns(src) for src in sorted(sources)}
    assert compared["custody_visit"] is not None and compared["no_such_form"] is None
    assert len(compared["custody_visit"][1]) > 100
