"""store/survivors.py on SQLite and PostgreSQL: a survivor's records of the four survivor forms by
her code (the intake's code inside its admin group), oldest first, deleted ones left out; her
support unit from her first registration, which a case closure (no unit of its own) takes."""

from __future__ import annotations

import pytest

from tests.test_report_indicators import instance_xml, intake, registration, service

FORMS = ["survivor_registration", "survivor_intake", "service_contact", "case_closure"]


@pytest.fixture
def send(store, built_programme_forms):
    build_dir = built_programme_forms[0]["forms.build_dir"]
    for form_id in FORMS:
        store.register_form((build_dir / f"{form_id}.xml").read_bytes())

    def send_(form_id, answers):
        result = store.ingest(instance_xml(build_dir / f"{form_id}.xml", answers))
        assert result.status == "created", result
        return result.root_id

    return send_


def test_her_records_across_the_forms_and_her_registrations_unit(store, send):
    first = send(*registration("LHR-0101", "ssu_lahore", "2026-07-05", "jail"))
    seen = send(
        *intake("LHR-0101", "ssu_rawalpindi", "2026-07-06", "yes", "police", "rape", "home", "x")
    )
    served = send(*service("LHR-0101", "ssu_rawalpindi", "2026-07-07", "counselling"))
    closed = send("case_closure", {"survivor_code": "LHR-0101", "closure_date": "2026-07-20"})
    again = send(*registration("LHR-0101", "ssu_islamabad", "2026-07-09", "jail"))
    send(*registration("LHR-0102", "ssu_lahore", "2026-07-05", "jail"))
    send(*service("LHR-01010", "ssu_lahore", "2026-07-07", "counselling"))  # a longer code

    her = store.survivor("LHR-0101")
    assert her.code == "LHR-0101"
    assert her.support_unit == "ssu_lahore"  # her first registration's, not a later one's
    assert [(r.form_id, r.root_id) for r in her.records] == [
        ("survivor_registration", first),
        ("survivor_intake", seen),
        ("service_contact", served),
        ("case_closure", closed),
        ("survivor_registration", again),
    ]
    assert all(r.review_state is None for r in her.records)
    assert store.survivor("lhr-0101") is None  # codes are exact, as the forms write them
    assert store.survivor("LHR-9999") is None

    assert store.survivor_code("survivor_intake", seen) == "LHR-0101"
    assert store.survivor_code("case_closure", closed) == "LHR-0101"
    assert store.survivor_code("custody_visit", closed) is None
    assert store.support_unit("service_contact", served) == "ssu_rawalpindi"  # its own
    assert store.support_unit("case_closure", closed) == "ssu_lahore"  # her registration's


def test_a_deleted_record_is_left_out_and_no_registration_means_no_unit(store, send):
    gone = send(*registration("ISB-0001", "ssu_islamabad", "2026-07-05", "jail"))
    kept = send(*service("ISB-0001", "ssu_islamabad", "2026-07-07", "counselling"))
    closed = send("case_closure", {"survivor_code": "ISB-0001", "closure_date": "2026-07-20"})
    assert store.mark_deleted("survivor_registration", {gone: "2026-07-30T00:00:00Z"}) == 1
    her = store.survivor("ISB-0001")
    assert [r.root_id for r in her.records] == [kept, closed]
    assert her.support_unit is None
    assert store.support_unit("case_closure", closed) is None


def test_a_store_without_the_survivor_forms_finds_no_one(store):
    assert store.survivor("LHR-0101") is None
    assert store.survivor_code("case_closure", "uuid:x") is None
