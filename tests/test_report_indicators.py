"""The programme indicators over a fixture dataset submitted through the real OpenRosa path.

The submissions are instance XML as ODK Collect writes it for the built programme forms (the
primary instance of each XForm, its version, the answers, meta/instanceID; calculated fields
carry the values the form computes), POSTed by the Collect-like client to a running `nigraan
serve`, which stores them in SQLite or PostgreSQL. Every expected value below is worked out by
hand from the dataset (period 2026-Q3 = 1 July to 30 September 2026) in the comments.
"""

from __future__ import annotations

import copy
import csv
import io
import uuid

import pytest
from lxml import etree

from nigraan.config import load_config
from reports.cli import report as report_group
from reports.indicators import (
    compute,
    compute_periods,
    load_definitions,
    parse_period,
    support_unit_districts,
)
from reports.publish import TOTAL, report_rows
from store.indicator_queries import indicator_rows
from store.store import Store

XF = "http://www.w3.org/2002/xforms"
JR = "http://openrosa.org/javarosa"
FORMS = [
    "survivor_registration",
    "service_contact",
    "survivor_intake",
    "custody_visit",
    "training_event",
    "training_participant",
    "advocacy_event",
]


def instance_xml(xform_path, answers: dict[str, str | None]) -> bytes:
    """The instance Collect would send: the form's primary instance, answers filled in."""
    model = etree.parse(str(xform_path)).find(f".//{{{XF}}}model")
    root = copy.deepcopy(model.find(f"{{{XF}}}instance")[0])
    for template in [e for e in root.iter() if e.get(f"{{{JR}}}template") is not None]:
        template.getparent().remove(template)
    answers = {**answers, "meta/instanceID": f"uuid:{uuid.uuid4()}"}
    for path, value in answers.items():
        found = root.find("/".join(f"{{{XF}}}{step}" for step in path.split("/")))
        assert found is not None, f"{path} is not in {xform_path.name}"
        found.text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def registration(code, ssu, day, setting, consent_reporting="yes", consent_services="yes"):
    return "survivor_registration", {
        "survivor_code": code,
        "caseworker_code": "CW-01",
        "date_first_contact": day,
        "ssu_site": ssu,
        "contact_setting": setting,
        "consent_services": consent_services,
        "consented/referred_by": "self_referral" if consent_services == "yes" else None,
        "consented/consent_reporting": consent_reporting if consent_services == "yes" else None,
        "consented/consent_by": "survivor" if consent_services == "yes" else None,
        "consented/age": "30" if consent_services == "yes" else None,
    }


def service(code, ssu, day, service_type, how="provided_by_us"):
    by_us = how == "provided_by_us"
    return "service_contact", {
        "survivor_code": code,
        "staff_code": "ST-01",
        "service_date": day,
        "ssu_site": ssu,
        "service_type": service_type,
        "provided_how": how,
        "session_no": "1" if by_us else None,
        "duration_min": "60" if by_us else None,
    }


def intake(code, ssu, day, consent_reporting, custodial, gbv, place, referrals):
    return "survivor_intake", {
        "admin/caseworker_code": "CW-01",
        "admin/date_interview": day,
        "admin/ssu_site": ssu,
        "admin/consent_confirmed": "yes",
        "admin/consent_reporting": consent_reporting,
        "admin/survivor_code": code,
        "admin/survivor_code_check": code,
        "incident/custodial_context": custodial,
        "incident/gbv_type": gbv,
        "incident/place_type": place,
        "assessment/referrals_made": referrals,
    }


def visit(facility_type, district, day, facility, detained, over_24h, meets, station=None):
    return "custody_visit", {
        "b0_visit/monitor_code": "MON-01",
        "b0_visit/visit_date": day,
        "b0_visit/facility_type": facility_type,
        "b0_visit/district": district,
        "b0_visit/police_station": station,
        "b0_visit/facility_id": facility,
        "b0_visit/access_granted": "full",
        "b1_population/total_detained": str(detained + 10),
        "b1_population/women_detained": str(detained),
        "b1_population/women_held_over_24h": None if over_24h is None else str(over_24h),
        "meets_minimum_standards": meets,
    }


def event(event_id, start, end, district, days):
    return "training_event", {
        "event_id": event_id,
        "training_type": "police_uncat_gender",
        "start_date": start,
        "end_date": end,
        "number_of_days": str(days),
        "district": district,
        "test_version": "uncat_gender_v1",
        "pass_mark": "7",
    }


def participant(
    event_id,
    code,
    sex,
    institution,
    district,
    days,
    attended,
    pre=None,
    post=None,
    station=None,
    recorded="2026-09-30",
):
    gain = (
        str(round((post - pre) / (10 - pre), 3)) if pre is not None and post is not None else None
    )
    return "training_participant", {
        "event_id": event_id,
        "participant_code": code,
        "sex": sex,
        "age_band": "25_34",
        "institution_type": institution,
        "district": district,
        "police_station": station,
        "course_days": str(days),
        "today": recorded,
        "attendance": " ".join(f"day_{i}" for i in range(1, attended + 1)),
        "days_attended": str(attended),
        "attendance_share": str(round(attended / days, 2)),
        "pre_taken": "yes" if pre is not None else "no",
        "post_taken": "yes" if post is not None else "no",
        "pre_score": None if pre is None else str(pre),
        "post_score": None if post is None else str(post),
        "normalised_gain": gain,
    }


def advocacy(event_id, day, district, event_type, female, male, indirect):
    return "advocacy_event", {
        "event_id": event_id,
        "event_type": event_type,
        "event_date": day,
        "district": district,
        "direct/direct_count_method": "sign_in",
        "direct/direct_participants_female": str(female),
        "direct/direct_participants_male": str(male),
        "direct/direct_participants_total": str(female + male),
        "indirect/estimated_indirect_reach": str(indirect),
    }


# One submission a line, as the hand-worked figures below read them: kept as written.
# fmt: off
DATASET = [
    # Survivors. LHR-0003 said no to reporting; ISB-0002 refused services (so the reporting
    # question was never asked); RWP-0002 was registered in Q2 and served in Q3.
    registration("LHR-0001", "ssu_lahore", "2026-07-05", "jail"),
    registration("LHR-0002", "ssu_lahore", "2026-07-10", "darul_aman"),
    registration("LHR-0003", "ssu_lahore", "2026-08-01", "jail", consent_reporting="no"),
    registration("RWP-0001", "ssu_rawalpindi", "2026-07-15", "jail"),
    registration("RWP-0002", "ssu_rawalpindi", "2026-04-20", "darul_aman"),
    registration("ISB-0001", "ssu_islamabad", "2026-09-01", "ssu_office"),
    registration("ISB-0002", "ssu_islamabad", "2026-09-02", "ssu_office", consent_services="no"),
    # Services. LHR-0001 had legal counselling twice; RWP-0009 was never registered.
    service("LHR-0001", "ssu_lahore", "2026-07-06", "legal_counselling"),
    service("LHR-0001", "ssu_lahore", "2026-08-06", "legal_counselling"),
    service("LHR-0001", "ssu_lahore", "2026-08-07", "stress_management_session"),
    service("LHR-0002", "ssu_lahore", "2026-07-11", "legal_counselling"),
    service("LHR-0002", "ssu_lahore", "2026-05-05", "legal_counselling"),  # Q2
    service("LHR-0003", "ssu_lahore", "2026-08-02", "legal_counselling"),  # no consent
    service("RWP-0001", "ssu_rawalpindi", "2026-07-16", "legal_aid_representation"),
    service("RWP-0002", "ssu_rawalpindi", "2026-07-20", "life_skills_training"),
    service("RWP-0002", "ssu_rawalpindi", "2026-07-21", "legal_counselling", how="referred"),
    service("RWP-0009", "ssu_rawalpindi", "2026-07-22", "legal_counselling"),  # unregistered
    service("ISB-0001", "ssu_islamabad", "2026-09-03", "legal_counselling"),
    # Intakes.
    intake("LHR-0001", "ssu_lahore", "2026-07-07", "yes", "yes", "physical_assault",
           "police_lockup", "legal_aid psychosocial"),
    intake("RWP-0001", "ssu_rawalpindi", "2026-07-17", "yes", "yes", "sexual_assault",
           "police_lockup", "none"),
    intake("LHR-0003", "ssu_lahore", "2026-08-03", "no", "yes", "physical_assault",
           "police_lockup", "legal_aid"),
    intake("ISB-0001", "ssu_islamabad", "2026-09-04", "yes", "no", "psych_emotional", "home",
           "psychosocial"),
    # Custody visits: Tibbi City twice (the later visit meets the standards), one woman held
    # over 24 hours at the first; Civil Lines fails; Adiala jail meets them; one visit in Q2.
    visit("police_station", "lahore", "2026-07-20", "lhr_tibbi_city", 3, 1, "no",
          station="lhr_tibbi_city"),
    visit("police_station", "rawalpindi", "2026-08-05", "rwp_civil_lines", 2, 0, "no",
          station="rwp_civil_lines"),
    visit("jail_female_ward", "rawalpindi", "2026-08-15", "rwp_central_jail_adiala", 40, None,
          "yes"),
    visit("police_station", "lahore", "2026-09-10", "lhr_tibbi_city", 1, 0, "yes",
          station="lhr_tibbi_city"),
    visit("police_station", "islamabad", "2026-06-01", "isb_ramna", 5, 2, "no",
          station="isb_ramna"),
    # Training: two Q3 courses and one in Q2.
    event("TRN-LHR-001", "2026-07-01", "2026-07-05", "lahore", 5),
    event("TRN-RWP-001", "2026-08-10", "2026-08-12", "rawalpindi", 3),
    event("TRN-ISB-001", "2026-05-01", "2026-05-02", "islamabad", 2),
    # LHR-POL-0001 took two courses (trained once, two participations).
    participant("TRN-LHR-001", "LHR-POL-0001", "female", "police", "lahore", 5, 5, 4, 8,
                station="lhr_tibbi_city"),
    participant("TRN-RWP-001", "LHR-POL-0001", "female", "police", "lahore", 3, 3, 6, 9,
                station="lhr_tibbi_city"),
    # 3 of 5 days: below the 0.8 threshold, not trained; his station still takes part.
    participant("TRN-LHR-001", "LHR-POL-0002", "male", "police", "lahore", 5, 3,
                station="lhr_shahdara"),
    participant("TRN-RWP-001", "RWP-JAIL-0001", "female", "prisons", "rawalpindi", 3, 3, 5, 6),
    participant("TRN-RWP-001", "RWP-DA-0001", "female", "darul_aman_social_welfare",
                "rawalpindi", 3, 3, 5),  # no post-test
    participant("TRN-LHR-001", "LHR-CSO-0001", "female", "cso_ngo", "lahore", 5, 4),  # 0.8
    participant("TRN-ISB-001", "ISB-POL-0001", "male", "police", "islamabad", 2, 2, 3, 9,
                station="isb_ramna"),  # Q2
    # Advocacy.
    advocacy("ADV-LHR-001", "2026-07-25", "lahore", "seminar", 30, 20, 1000),
    advocacy("ADV-RWP-001", "2026-08-26", "rawalpindi", "walk_rally", 3, 2, 0),
    advocacy("ADV-ISB-001", "2026-04-01", "islamabad", "seminar", 10, 10, 500),  # Q2
]
# fmt: on


@pytest.fixture
def programme_store(built_programme_forms, new_database, tmp_path):
    """A store holding DATASET, received by a real `nigraan serve` from a Collect-like client."""
    from server.device_accounts import create_account
    from tests.openrosa_client import CollectClient, ServerProcess

    config, _ = built_programme_forms
    build_dir = config["forms.build_dir"]
    url = new_database()
    (tmp_path / "instance").mkdir()
    server = ServerProcess(
        {
            "NIGRAAN_INSTANCE_DIR": str(tmp_path / "instance"),
            "NIGRAAN_FORMS_BUILD_DIR": str(build_dir),
            "NIGRAAN_DATABASE_URL": url,
        }
    ).start()
    try:
        store = Store.open(url)
        try:
            account = create_account(store.app_users, "report-tablet", FORMS)
        finally:
            store.close()
        client = CollectClient(server.base, username=account.user.name, password=account.password)
        for form_id, answers in DATASET:
            response = client.send(instance_xml(build_dir / f"{form_id}.xml", answers))
            assert response.status_code == 201, (form_id, response.text)
    finally:
        server.stop()
    store = Store.open(url)
    yield store, config, url
    store.close()


def test_indicators_of_the_fixture_dataset_match_the_hand_worked_values(programme_store):
    store, config, _ = programme_store
    period = parse_period("2026-Q3")
    rows = indicator_rows(store, period.start, period.end)
    report = compute(
        rows,
        load_definitions(),
        period=period,
        ssu_district=support_unit_districts(config["forms.reference_dir"]),
        attendance_threshold=0.8,
        pass_mark=7,
    )
    r = {x.indicator.id: x for x in report.results}

    def by(ind, name):
        return dict(r[ind].breakdowns[name].items())

    # Consented survivors with a registration or a service in Q3: LHR-0001, LHR-0002,
    # RWP-0001, RWP-0002 (registered in Q2, life skills in July), ISB-0001. Not LHR-0003 (no),
    # ISB-0002 (not asked), RWP-0009 (not registered).
    assert r["women_reached"].value == 5
    assert by("women_reached", "district") == {"lahore": 2, "rawalpindi": 2, "islamabad": 1}
    assert by("women_reached", "quarter") == {"2026-Q3": 5}
    assert by("women_reached", "contact_setting") == {"jail": 2, "darul_aman": 2, "ssu_office": 1}
    # Legal counselling provided by the unit: LHR-0001 (twice, counted once), LHR-0002,
    # ISB-0001; RWP-0002's was a referral; LHR-0002's May session is outside the quarter.
    assert r["legal_counselling"].value == 3
    assert by("legal_counselling", "district") == {"lahore": 2, "islamabad": 1}
    assert (r["legal_aid"].value, r["stress_management"].value, r["life_skills"].value) == (
        1,
        1,
        1,
    )
    # Sessions (contacts): LHR-0001 x3, LHR-0002, RWP-0001, RWP-0002 (life skills), ISB-0001.
    assert r["service_sessions"].value == 7
    assert by("service_sessions", "service_type") == {
        "legal_counselling": 4,
        "legal_aid_representation": 1,
        "life_skills_training": 1,
        "stress_management_session": 1,
    }
    # Officials with >= 80 % attendance in a Q3 course: LHR-POL-0001 (two courses, once),
    # RWP-JAIL-0001, RWP-DA-0001; LHR-POL-0002 attended 60 %; ISB-POL-0001's course was in May.
    assert r["officials_trained"].value == 3
    assert by("officials_trained", "institution") == {
        "darul_aman_social_welfare": 1,
        "police": 1,
        "prisons": 1,
    }
    assert by("officials_trained", "district") == {"lahore": 1, "rawalpindi": 2}
    assert by("officials_trained", "sex") == {"female": 3}
    assert r["cso_trained"].value == 1  # LHR-CSO-0001 at exactly 4/5 = 0.8
    assert r["training_participations"].value == 5  # LHR-POL-0001 twice, + 3 others
    # Both tests, latest course: LHR-POL-0001 post 9 (passes 7), RWP-JAIL-0001 post 6.
    passing = r["trained_officials_passing"]
    assert (passing.numerator, passing.denominator, passing.value) == (1, 2, 0.5)
    # normalised gains (9-6)/(10-6) = 0.75 and (6-5)/(10-5) = 0.2.
    assert passing.extra["mean_normalised_gain"] == pytest.approx(0.475)
    # Advocacy in Q3: 30+20 in Lahore, 3+2 in Rawalpindi; the Q2 event and the media reach apart.
    assert r["advocacy_participants"].value == 55
    assert by("advocacy_participants", "sex") == {"female": 33, "male": 22}
    assert by("advocacy_participants", "district") == {"lahore": 50, "rawalpindi": 5}
    assert r["advocacy_indirect_reach"].value == 1000
    assert r["ssus_functional"].value == 3
    # Stations: Tibbi City (trained, visited), Shahdara (staff at a course), Civil Lines.
    assert r["police_stations_participating"].value == 3
    assert by("police_stations_participating", "district") == {"lahore": 2, "rawalpindi": 1}
    # Facilities on their latest Q3 visit: Tibbi City yes (September), Civil Lines no,
    # Adiala yes.
    standards = r["facilities_meeting_standards"]
    assert (standards.numerator, standards.denominator) == (2, 3)
    # Police-custody visits in Q3: 1 + 0 + 0 women over 24 h of 3 + 2 + 1 held.
    over = r["women_held_over_24h"]
    assert (over.numerator, over.denominator) == (1, 6)
    assert dict(over.denominators["district"].items()) == {"lahore": 4, "rawalpindi": 2}
    # Custodial allegations with consent: LHR-0001 (referred), RWP-0001 (no referral).
    assert r["allegations_documented"].value == 2
    assert r["allegations_referred"].value == 1
    left_out = {(e.form_id, e.reason): (e.records, e.survivors) for e in report.exclusions}
    assert left_out == {
        ("survivor_registration", "consent_reporting = no"): (1, 1),
        ("survivor_registration", "consent_reporting not answered"): (1, 1),
        ("service_contact", "consent_reporting = no"): (1, 1),
        ("service_contact", "no registration with this survivor code (no consent on record)"): (
            1,
            1,
        ),
        ("survivor_intake", "consent_reporting = no"): (1, 1),
    }

    # The whole programme: LHR-0002's May session counts as a session, not as a new woman.
    everything = compute(
        indicator_rows(store),
        load_definitions(),
        period=parse_period(None),
        ssu_district=support_unit_districts(config["forms.reference_dir"]),
        attendance_threshold=0.8,
        pass_mark=7,
    )
    r_all = {x.indicator.id: x for x in everything.results}
    assert (r_all["women_reached"].value, r_all["service_sessions"].value) == (5, 8)
    assert r_all["officials_trained"].value == 4  # + ISB-POL-0001


def test_published_figures_hide_every_count_from_1_to_4(programme_store):
    store, config, _ = programme_store
    period = parse_period("2026-Q3")
    report = compute(
        indicator_rows(store, period.start, period.end),
        load_definitions(),
        period=period,
        ssu_district=support_unit_districts(config["forms.reference_dir"]),
        attendance_threshold=0.8,
        pass_mark=7,
    )
    rows = report_rows(report, suppressed=True)
    protected = {i.id for i in load_definitions() if i.suppress}
    for row in rows:
        if row.indicator in protected:
            for value in (row.value, row.numerator, row.denominator):
                assert not (isinstance(value, int) and 0 < value < 5), row
    shown = {(x.indicator, x.disaggregation, x.category): x.value for x in rows}
    # Three districts of 2, 2 and 1 women: each <5, the total of 5 stays.
    assert shown["women_reached", TOTAL, ""] == 5
    districts = ("lahore", "rawalpindi", "islamabad")
    assert [shown["women_reached", "district", d] for d in districts] == ["<5"] * 3
    # Rawalpindi's 5 advocacy participants are shown; units are never suppressed.
    assert shown["advocacy_participants", "district", "rawalpindi"] == 5
    assert shown["ssus_functional", TOTAL, ""] == 3
    unsuppressed = {
        (x.indicator, x.disaggregation, x.category): x.value
        for x in report_rows(report, suppressed=False)
    }
    assert unsuppressed["legal_counselling", TOTAL, ""] == 3


def test_report_indicators_command_prints_the_table_and_csv(programme_store, runner):
    _, built_config, url = programme_store
    config = load_config(
        overrides={"database.url": url, "instance_dir": str(built_config["instance_dir"])},
        environ={},
    )
    result = runner.invoke(report_group, ["indicators", "--period", "2026-Q3"], obj=config)
    assert result.exit_code == 0, result.output
    assert "women_reached [persons]: 5  target 370 (1%)" not in result.output  # Q3 has no target
    assert "women_reached [persons]: 5" in result.output
    assert "legal_counselling [persons]: <5" in result.output
    assert "survivor_intake: 1 record(s) of 1 survivor(s): consent_reporting = no" in result.output
    csv_result = runner.invoke(
        report_group, ["indicators", "--period", "2026-Q3", "--format", "csv"], obj=config
    )
    assert csv_result.exit_code == 0, csv_result.output
    table = list(csv.DictReader(io.StringIO(csv_result.output)))
    total = next(
        x
        for x in table
        if x["indicator"] == "advocacy_participants" and x["disaggregation"] == TOTAL
    )
    assert (total["value"], total["unit"], total["period"]) == ("55", "contacts", "2026-Q3")
    all_time = runner.invoke(report_group, ["indicators"], obj=config)
    assert "women_reached [persons]: 5  target 370 (1%)" in all_time.output
    refused = runner.invoke(
        report_group, ["indicators", "--format", "csv", "--unsuppressed"], obj=config
    )
    assert refused.exit_code == 2 and "always suppressed" in refused.output
    bad = runner.invoke(report_group, ["indicators", "--period", "2026-Q5"], obj=config)
    assert bad.exit_code == 1 and "2026-Q3" in bad.output


def test_report_indicators_writes_an_xlsx_with_charts_and_definitions(
    programme_store, runner, tmp_path
):
    from openpyxl import load_workbook

    _, built_config, url = programme_store
    config = load_config(
        overrides={"database.url": url, "instance_dir": str(built_config["instance_dir"])},
        environ={},
    )
    out = tmp_path / "indicators.xlsx"
    result = runner.invoke(
        report_group,
        ["indicators", "--period", "2026-Q3", "--format", "xlsx", "-o", str(out)],
        obj=config,
    )
    assert result.exit_code == 0, result.output
    wb = load_workbook(out)
    assert wb.sheetnames == ["Cover", "Outputs", "Outcomes", "Definitions"]
    outputs = [list(r) for r in wb["Outputs"].iter_rows(values_only=True)]
    reached = next(r for r in outputs if r[0] == "women_reached" and r[4] is None)
    assert reached[6] == 5
    lahore = next(r for r in outputs if r[0] == "women_reached" and r[5] == "lahore")
    assert lahore[6] == "<5"
    # Advocacy's district figures (50 and 5) are all shown, so they get a native bar chart.
    assert len(wb["Outputs"]._charts) >= 1
    ids = [r[0] for r in wb["Definitions"].iter_rows(min_row=2, values_only=True)]
    assert "women_held_over_24h" in ids and len(ids) == len(load_definitions())
    cover = list(wb["Cover"].iter_rows(values_only=True))
    assert ("survivor_intake", "consent_reporting = no", 1, 1) in cover


def _figures(report) -> list:
    """Everything a report says, in order, as plain values."""
    out = [(e.form_id, e.reason, e.records, e.survivors) for e in report.exclusions]
    for x in report.results:
        out.append(
            (
                x.indicator.id,
                x.value,
                x.numerator,
                x.denominator,
                x.extra,
                {d: list(s.items()) for d, s in x.breakdowns.items()},
                {d: list(s.items()) for d, s in x.denominators.items()},
            )
        )
    return out


def test_every_period_in_one_pass_equals_each_period_read_alone(programme_store):
    store, config, _ = programme_store
    definitions = load_definitions()
    common = {
        "ssu_district": support_unit_districts(config["forms.reference_dir"]),
        "attendance_threshold": 0.8,
        "pass_mark": 7,
    }
    periods = [parse_period(x) for x in ("2026-Q2", "2026-Q3", "2026", None)]
    rows = indicator_rows(store, periods=[(p.start, p.end) for p in periods])
    together = compute_periods(rows, definitions, periods=periods, **common)
    assert list(together) == ["2026-Q2", "2026-Q3", "2026", "all"]
    for p in periods:
        alone = compute(indicator_rows(store, p.start, p.end), definitions, period=p, **common)
        assert _figures(together[p.label]) == _figures(alone), p.label
    # Q2 by hand: RWP-0002 registered in April, LHR-0002's May session; ISB-POL-0001's course.
    q2 = {x.indicator.id: x for x in together["2026-Q2"].results}
    assert (q2["women_reached"].value, q2["service_sessions"].value) == (2, 1)
    assert q2["officials_trained"].value == 1
    assert together["2026-Q2"].exclusions == []
    # The whole year holds Q2 and Q3: LHR-0002 once, in Q2, although she came in both.
    year = {x.indicator.id: x for x in together["2026"].results}
    assert (year["women_reached"].value, year["service_sessions"].value) == (5, 8)
    assert dict(year["women_reached"].breakdowns["quarter"].items()) == {
        "2026-Q2": 2,  # RWP-0002 (April), LHR-0002 (her May session came first)
        "2026-Q3": 3,
    }
