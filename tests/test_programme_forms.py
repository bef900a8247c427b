"""The programme's nine forms: they build, pass ODK Validate, speak English and Urdu, and their
logic does what the domain asks (consent gate, 24-hour check, facility filters, scores)."""

from __future__ import annotations

import re

import pytest

from forms.compile import NS
from forms.rules import SURVIVOR_FORMS

PROGRAMME_FORMS = {
    "identity_register",
    "survivor_registration",
    "survivor_intake",
    "service_contact",
    "case_closure",
    "custody_visit",
    "training_event",
    "training_participant",
    "advocacy_event",
}
URDU = re.compile("[\u0600-\u06ff]")
NIGRAAN_SENSITIVITY = "{urn:nigraan:xforms}sensitivity"


@pytest.fixture(scope="module")
def built(built_programme_forms):
    config, report = built_programme_forms
    return {form.form_id: form for form in report.forms}, config


def xform(built, form_id):
    forms, _ = built
    return forms[form_id].compiled


@pytest.fixture
def fill(built, javarosa):
    """Start filling a form in JavaRosa, as a monitor would on a tablet."""
    _, config = built

    def start(form_id: str):
        return javarosa.fill(config["forms.build_dir"] / f"{form_id}.xml")

    return start


def test_every_programme_form_builds_and_passes_odk_validate(built):
    forms, config = built
    assert set(forms) == PROGRAMME_FORMS
    for form_id, form in forms.items():
        assert [str(p) for p in form.problems] == [], form_id  # no errors, no warnings
        assert form.written
        xml = (config["forms.build_dir"] / f"{form_id}.xml").read_bytes()
        assert xml == form.compiled.xform


def test_every_itext_has_english_and_urdu(built):
    for form_id in PROGRAMME_FORMS:
        tree = xform(built, form_id).tree()
        translations = {
            t.get("lang"): {
                text.get("id"): "".join(text.itertext()).strip()
                for text in t.findall("xf:text", NS)
            }
            for t in tree.findall(".//xf:itext/xf:translation", NS)
        }
        assert set(translations) == {"English (en)", "Urdu (ur)"}, form_id
        english, urdu = translations["English (en)"], translations["Urdu (ur)"]
        assert set(english) == set(urdu), form_id
        for text_id, text in english.items():
            assert text, (form_id, text_id)
            assert URDU.search(urdu[text_id]), (form_id, text_id, urdu[text_id])


def test_every_label_hint_and_choice_is_translated(built):
    """No inline text: labels, hints and every itemset (reference lists too) go through itext."""
    for form_id in PROGRAMME_FORMS:
        body = xform(built, form_id).tree().find("h:body", NS)
        for element in body.iter(f"{{{NS['xf']}}}label", f"{{{NS['xf']}}}hint"):
            assert element.get("ref", "").startswith("jr:itext("), (form_id, element.get("ref"))
            assert not (element.text or "").strip()
        for item in body.iter(f"{{{NS['xf']}}}item"):
            pytest.fail(f"{form_id} has an inline choice {item.findtext('xf:value', '', NS)}")


def test_reference_lists_become_translated_choices(built):
    tree = xform(built, "custody_visit").tree()
    assert b"jr://file-csv" not in xform(built, "custody_visit").xform
    stations = tree.find(".//xf:instance[@id='police_stations']/xf:root", NS)
    items = stations.findall("xf:item", NS)
    assert len(items) >= 60
    first = items[0]
    assert first.findtext("xf:valid_to", namespaces=NS) == "9999-12-31"
    urdu = tree.find(".//xf:translation[@lang='Urdu (ur)']", NS)
    label = urdu.find(f"xf:text[@id='{first.findtext('xf:itextId', namespaces=NS)}']", NS)
    assert URDU.search("".join(label.itertext()))


def test_only_the_identity_register_is_encrypted_and_holds_identifiers(built, public_key_file):
    from nigraan.keys import public_key_for_form

    for form_id in PROGRAMME_FORMS:
        tree = xform(built, form_id).tree()
        classes = {b.get(NIGRAAN_SENSITIVITY) for b in tree.iter(f"{{{NS['xf']}}}bind")}
        submission = tree.find(".//xf:submission", NS)
        if form_id == "identity_register":
            assert "identifying" in classes
            assert submission.get("base64RsaPublicKey") == public_key_for_form(public_key_file)
        else:
            assert "identifying" not in classes, form_id
            assert submission is None, form_id


def test_every_survivor_form_field_carries_a_sensitivity_class(built):
    for form_id in SURVIVOR_FORMS:
        tree = xform(built, form_id).tree()
        binds = {b.get("nodeset"): b for b in tree.iter(f"{{{NS['xf']}}}bind")}
        controls = [
            c.get("ref")
            for c in tree.find("h:body", NS).iter()
            if c.get("ref") and c.tag.split("}")[1] in {"input", "select1", "select", "upload"}
        ]
        calculates = [n for n, b in binds.items() if b.get("calculate") and "/meta/" not in n]
        for ref in controls + calculates:
            bind = binds.get(ref)
            is_note = (
                bind is not None and bind.get("readonly") == "true()" and not bind.get("calculate")
            )
            if bind is None or is_note:
                continue
            assert bind.get(NIGRAAN_SENSITIVITY), (form_id, ref)


def test_consent_gate_ends_the_registration(built, fill):
    tree = xform(built, "survivor_registration").tree()
    instance = tree.find(".//xf:instance/xf:data", NS)
    fields = [e.tag.split("}")[1] for e in instance]
    gate = fields.index("consent_services")
    after = [f for f in fields[gate + 1 :] if f not in {"meta", "end"}]
    # Everything after the consent question sits in the `consented` group, or is a note.
    assert "consented" in after
    for name in after:
        if name != "consented":
            bind = tree.find(f".//xf:bind[@nodeset='/data/{name}']", NS)
            assert bind is not None and bind.get("readonly") == "true()", name
    form = fill("survivor_registration")
    assert not form.relevant("consented")
    assert form.answer("consent_reporting", "yes") == "not-shown"
    form.set(consent_services="no")
    assert not form.relevant("consented")
    assert form.relevant("no_consent_note")
    assert form.answer("referred_by", "self_referral") == "not-shown"
    form.set(consent_services="yes")
    assert form.relevant("consented")
    assert form.answer("consent_reporting", "yes") == "ok"


def intake(fill, **custody):
    """survivor_intake with consent given and a custodial incident."""
    return fill("survivor_intake").set(
        consent_confirmed="yes",
        date_interview="2026-11-20",
        custodial_context="yes",
        arrest_time_known="exact",
        **custody,
    )


@pytest.mark.parametrize(
    ("produced", "hours", "over"),
    [
        ("2026-11-02T16:00:00.000+05:00", 30, "yes"),
        ("2026-11-02T08:00:00.000+05:00", 22, "no"),
        ("2026-11-02T10:00:00.000+05:00", 24, "no"),
    ],
)
def test_24_hour_check(fill, produced, hours, over):
    form = intake(
        fill,
        arrest_datetime="2026-11-01T10:00:00.000+05:00",
        produced_before_magistrate="yes",
        produced_magistrate_datetime=produced,
    )
    assert form.relevant("custody")
    assert float(form.get("hours_to_magistrate")) == hours
    assert form.get("over_24h") == over
    assert form.relevant("over_24h_note") == (over == "yes")


@pytest.mark.parametrize(
    ("answers", "hours", "over"),
    [
        ({"release_datetime": "2026-11-03T10:00:00.000+05:00"}, 48, "yes"),
        ({"current_status": "home_released"}, None, ""),
    ],
    ids=["released-after-48h", "released-at-an-unknown-time"],
)
def test_24_hour_check_when_never_produced(fill, answers, hours, over):
    form = intake(
        fill,
        arrest_datetime="2026-11-01T10:00:00.000+05:00",
        produced_before_magistrate="no",
        **answers,
    )
    if hours is not None:
        assert float(form.get("hours_to_magistrate")) == hours
    assert form.get("over_24h") == over


def test_24_hour_check_is_blank_when_the_arrest_time_is_unknown(fill):
    form = fill("survivor_intake").set(
        consent_confirmed="yes",
        custodial_context="yes",
        arrest_time_known="unknown",
        produced_before_magistrate="yes",
        produced_magistrate_datetime="2026-11-02T16:00:00.000+05:00",
    )
    assert form.get("over_24h") == ""  # unknown is not counted as compliant


def test_intake_constraints_reject_bad_answers(fill):
    form = intake(
        fill, arrest_datetime="2026-11-01T10:00:00.000+05:00", produced_before_magistrate="yes"
    )
    assert form.answer("survivor_code", "LHR-0001") == "ok"
    assert form.answer("survivor_code", "Ayesha Bibi") == "constraint"
    assert form.answer("age", 111) == "constraint"
    assert form.answer("age", 34) == "ok"
    assert form.answer("date_interview", "2999-01-01") == "constraint"
    produced_before_arrest = "2026-10-31T10:00:00.000+05:00"
    assert form.answer("produced_magistrate_datetime", produced_before_arrest) == "constraint"


def _itemset(built, form_id, field):
    tree = xform(built, form_id).tree()
    control = tree.find(f".//h:body//*[@ref='{field}']", NS)
    return control.find("xf:itemset", NS).get("nodeset")


def test_district_and_type_choose_the_police_station(built, fill):
    choices = _itemset(built, "custody_visit", "/data/b0_visit/police_station") + "/name"
    form = fill("custody_visit").set(
        visit_date="2026-11-28", facility_type="police_station", district="islamabad"
    )
    isb = form.values(choices)
    assert "isb_kohsar" in isb and "isb_humak" in isb
    assert not any(n.startswith(("lhr_", "rwp_")) for n in isb)
    assert "isb_women_police_station" not in isb
    form.set(facility_type="women_police_station")
    assert form.values(choices) == ["isb_women_police_station"]
    # Humak opened in 2023: a 2012 visit cannot choose it.
    form.set(facility_type="police_station", visit_date="2012-05-01")
    old = form.values(choices)
    assert "isb_kohsar" in old and "isb_humak" not in old
    form.set(district="lahore", visit_date="2026-11-28")
    lahore = form.values(choices)
    assert lahore and all(n.startswith("lhr_") for n in lahore)


def test_project_station_flag_and_facility_id(fill):
    from forms.reference import load_reference_lists
    from nigraan.config import PACKAGE_FORMS_DIR

    stations = load_reference_lists(PACKAGE_FORMS_DIR / "reference")["police_stations.csv"]
    expected = {r["name"]: r["is_project_station"] for r in stations.rows}
    form = fill("custody_visit").set(
        visit_date="2026-11-28", facility_type="police_station", district="islamabad"
    )
    for station in ("isb_kohsar", "isb_noon", "isb_ramna", "isb_golra"):
        form.set(police_station=station)
        assert form.get("is_project_station") == expected[station]
        assert form.get("facility_id") == station


@pytest.mark.parametrize(
    ("facility_type", "shown"),
    [
        ("police_station", set()),
        ("jail_female_ward", {"b6_children", "b10_jail"}),
        ("darul_aman", {"b6_children", "b9_darul_aman"}),
    ],
)
def test_facility_type_sections(fill, facility_type, shown):
    form = fill("custody_visit").set(facility_type=facility_type, access_granted="full")
    sections = {"b6_children", "b9_darul_aman", "b10_jail"}
    assert {s for s in sections if form.relevant(s)} == shown
    assert form.relevant("b2_separation")
    form.set(access_granted="denied")
    assert not form.relevant("b2_separation")


def _scored_items(built):
    tree = xform(built, "custody_visit").tree()
    points = tree.find(".//xf:bind[@nodeset='/data/score_points']", NS).get("calculate")
    normal = re.findall(r"if\(\s*/data/\w+/(\w+)\s*=\s*'yes',\s*1", points)
    inverted = re.findall(r"if\(\s*/data/\w+/(\w+)\s*=\s*'no',\s*1", points)
    return normal, inverted


def _good_facility(built, fill):
    """A police station where every scored item that is asked has its good answer."""
    normal, inverted = _scored_items(built)
    form = fill("custody_visit").set(
        visit_date="2026-11-28",
        facility_type="police_station",
        district="lahore",
        police_station="lhr_model_town",
        access_granted="full",
        total_detained=9,
        women_detained=3,
        girls_under_18=0,
        female_staff_on_duty=2,
        longest_hours_without_order=10,
    )
    return form.set(**dict.fromkeys(normal, "yes"), **dict.fromkeys(inverted, "no"))


def test_compliance_score_items(built):
    normal, inverted = _scored_items(built)
    assert set(inverted) == {
        "male_staff_enter_unaccompanied",
        "girls_with_adult_women",
        "toilet_visible_to_male_staff",
        "pests",
    }
    assert len(normal) + len(inverted) >= 25
    for core in (
        "women_separated",
        "women_registered",
        "toilet_privacy",
        "drinking_water",
        "bedding",
        "family_contact",
    ):
        assert core in normal


def test_a_fully_compliant_facility_scores_1_and_meets_the_minimum(built, fill):
    form = _good_facility(built, fill)
    assert float(form.get("compliance_score")) == 1.0
    assert form.get("meets_minimum_standards") == "yes"


CORE_ITEMS = {
    "women_separated",
    "women_registered",
    "toilet_privacy",
    "drinking_water",
    "bedding",
    "family_contact",
    "lawyer_access_allowed",
}


def test_partly_counts_half_and_not_applicable_drops_out(built, fill):
    form = _good_facility(built, fill)
    normal, _ = _scored_items(built)
    item = next(
        n
        for n in normal
        if n not in CORE_ITEMS and {"partly", "not_applicable"} <= form.choices[form.path(n)]
    )
    applicable = float(form.get("score_applicable"))
    form.set(**{item: "partly"})
    assert float(form.get("compliance_score")) == round((applicable - 0.5) / applicable, 2)
    form.set(**{item: "not_applicable"})
    assert float(form.get("score_applicable")) == applicable - 1
    assert float(form.get("compliance_score")) == 1.0
    assert form.get("meets_minimum_standards") == "yes"


@pytest.mark.parametrize(
    "failure",
    [
        {"women_separated": "partly"},
        {"female_staff_on_duty": 0},
        {"longest_hours_without_order": 30},
        {"toilet_privacy": "no"},
        {"bedding": "partly"},
        {"drinking_water": "no"},
        {"women_registered": "no"},
        {"family_contact": "no", "lawyer_access_allowed": "no"},
    ],
)
def test_any_failed_core_item_fails_the_minimum(built, fill, failure):
    form = _good_facility(built, fill).set(**failure)
    assert form.get("meets_minimum_standards") == "no"
    assert (
        float(form.get("compliance_score")) < 1.0
        or "female_staff_on_duty" in failure
        or "longest_hours_without_order" in failure
    )


def test_family_or_lawyer_access_is_enough(built, fill):
    form = _good_facility(built, fill).set(family_contact="no", lawyer_access_allowed="yes")
    assert form.get("meets_minimum_standards") == "yes"


def test_custody_counts_must_add_up(fill):
    form = fill("custody_visit").set(facility_type="police_station", access_granted="full")
    form.set(total_detained=5)
    assert form.answer("women_detained", 6) == "constraint"
    assert form.answer("women_detained", 2) == "ok"
    assert form.answer("visit_date", "2999-01-01") == "constraint"


ANSWER_KEY = {1: "b", 2: "d", 3: "a", 4: "c", 5: "b", 6: "a", 7: "d", 8: "c", 9: "a", 10: "b"}


def _answers(prefix: str, correct: int) -> dict[str, str]:
    return {f"{prefix}_q{i}": key if i <= correct else "dont_know" for i, key in ANSWER_KEY.items()}


def test_pre_and_post_tests_are_scored_in_the_form(fill):
    form = fill("training_participant").set(
        test_version="uncat_gender_v1", pre_taken="yes", post_taken="yes"
    )
    form.set(**_answers("pre", 4), **_answers("post", 8))
    assert float(form.get("pre_score")) == 4
    assert float(form.get("post_score")) == 8
    assert float(form.get("score_gain")) == 4
    assert float(form.get("normalised_gain")) == pytest.approx(0.667, abs=0.001)


def test_a_missed_post_test_is_not_no_gain(fill):
    form = fill("training_participant").set(
        test_version="uncat_gender_v1", pre_taken="yes", post_taken="no"
    )
    form.set(**_answers("pre", 6))
    assert float(form.get("pre_score")) == 6
    assert form.get("score_gain") == ""
    assert form.get("normalised_gain") == ""
    assert not form.relevant("post_test")


def test_advocacy_keeps_attendance_apart_from_reach(built, fill):
    form = fill("advocacy_event").set(
        direct_count_method="sign_in",
        direct_participants_female=40,
        direct_participants_male=25,
        estimated_indirect_reach=100000,
    )
    assert float(form.get("direct_participants_total")) == 65
    tree = xform(built, "advocacy_event").tree()
    total = tree.find(".//xf:bind[@nodeset='/data/direct/direct_participants_total']", NS)
    assert "indirect" not in total.get("calculate")
    assert form.relevant("reach_method")


def test_committed_versions_match_the_forms(make_config):
    """A form edited without raising its version fails here, before it reaches a device."""
    from forms.build import check_forms
    from nigraan.config import PACKAGE_FORMS_DIR

    config = make_config(forms__lock_file=str(PACKAGE_FORMS_DIR / "built-versions.json"))
    report = check_forms(config)
    errors = [str(p) for f in report.forms for p in f.problems if p.level == "error"]
    assert errors == []
    assert {f.form_id for f in report.forms} == PROGRAMME_FORMS
