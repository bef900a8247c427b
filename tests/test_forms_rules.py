"""`forms check` rules on small forms written as markdown tables (no ODK Validate: fast)."""

from __future__ import annotations

import pytest

from forms.build import build_forms, check_forms
from forms.rules import identifier_kind
from tests.formtables import form_md, write_xlsx

HEAD = (
    "| survey |\n"
    "| | type | name | label::English (en) | label::Urdu (ur) | required "
    "| required_message::English (en) | required_message::Urdu (ur) | constraint "
    "| constraint_message::English (en) | constraint_message::Urdu (ur) "
    "| bind::nigraan:sensitivity |\n"
)
CODE_ROW = (
    "| | text | survivor_code | Survivor code | متاثرہ کا کوڈ | yes | Enter the code "
    "| کوڈ درج کریں | regex(., '^[A-Z]{3}-[0-9]{4}$') | Like LHR-0001 "
    "| جیسے LHR-0001 | pseudonym |\n"
)


def row(type_, name, en="Label", ur="لیبل", sensitivity="sensitive", **extra):
    req = extra.get("required", "")
    return (
        f"| | {type_} | {name} | {en} | {ur} | {req} | {extra.get('req_en', '')} "
        f"| {extra.get('req_ur', '')} | {extra.get('constraint', '')} "
        f"| {extra.get('con_en', '')} | {extra.get('con_ur', '')} | {sensitivity} |\n"
    )


@pytest.fixture
def check(small_forms, make_config):
    """Write a form and run `check_forms` on it; returns (report, messages)."""

    def run(form_id: str, md: str, **config):
        write_xlsx(md, small_forms / f"{form_id}.xlsx")
        cfg = make_config(
            forms__source_dir=str(small_forms),
            forms__reference_dir=str(small_forms.parent / "reference"),
            **config,
        )
        report = check_forms(cfg, [form_id])
        form = report.forms[0]
        return form, [str(p) for p in form.problems if p.level == "error"]

    return run


def test_a_clean_survivor_form_passes(check):
    form, errors = check("survivor_intake", form_md("survivor_intake", HEAD + CODE_ROW))
    assert errors == []
    assert form.ok and form.compiled is not None


def test_missing_urdu_label_names_file_sheet_row_and_column(check):
    md = form_md("service_contact", HEAD + CODE_ROW + row("integer", "session_no", ur=""))
    _, errors = check("service_contact", md)
    assert len(errors) == 1
    assert "service_contact.xlsx, sheet 'survey', row 3, column 'label::Urdu (ur)'" in errors[0]
    assert "no Urdu (ur) text for label of 'session_no'" in errors[0]
    assert "how to fix: Write the label in Urdu (ur)." in errors[0]


def test_bare_label_column_is_rejected(check):
    md = form_md("advocacy_event", "| survey |\n| | type | name | label |\n| | integer | n | N |\n")
    _, errors = check("advocacy_event", md)
    assert any("column 'label' has no language" in e for e in errors)
    assert any("Rename it 'label::English (en)'" in e for e in errors)


def test_required_and_constraint_need_messages_in_both_languages(check):
    md = form_md(
        "survivor_intake",
        HEAD
        + CODE_ROW
        + row(
            "integer",
            "age",
            required="yes",
            req_en="Enter the age",
            constraint=". <= 110",
            con_en="At most 110",
        ),
    )
    _, errors = check("survivor_intake", md)
    assert any("no Urdu (ur) text for required_message of 'age'" in e for e in errors)
    assert any("no Urdu (ur) text for constraint_message of 'age'" in e for e in errors)


def test_choice_labels_need_both_languages_and_snake_case_names(check):
    choices = (
        "| choices |\n| | list_name | name | label::English (en) | label::Urdu (ur) |\n"
        "| | yn | yes | Yes | ہاں |\n| | yn | No | No | |\n"
    )
    md = form_md("training_event", HEAD + row("select_one yn", "ok", sensitivity=""), choices)
    _, errors = check("training_event", md)
    assert any("choice name 'No' in list 'yn' is not ASCII snake_case" in e for e in errors)
    assert any("sheet 'choices', row 3, column 'label::Urdu (ur)'" in e for e in errors)


def test_survivor_form_fields_need_a_known_sensitivity_class(check):
    md = form_md(
        "case_closure",
        HEAD
        + CODE_ROW
        + row("date", "closure_date", sensitivity="")
        + row("text", "why", sensitivity="secret"),
    )
    _, errors = check("case_closure", md)
    assert any("field 'closure_date' has no sensitivity class" in e for e in errors)
    assert any("unknown sensitivity class 'secret'" in e for e in errors)


def test_other_forms_may_leave_the_sensitivity_class_out(check):
    md = form_md("advocacy_event", HEAD + row("integer", "attended", sensitivity=""))
    _, errors = check("advocacy_event", md)
    assert errors == []


def test_identifying_fields_only_in_identity_register(check):
    md = form_md(
        "survivor_intake", HEAD + CODE_ROW + row("text", "survivor_name", sensitivity="identifying")
    )
    _, errors = check("survivor_intake", md)
    assert any("field 'survivor_name' is marked identifying" in e for e in errors)
    assert any("field 'survivor_name' looks like a direct identifier (name)" in e for e in errors)
    assert all("identity_register" in e for e in errors)


def test_cnic_constraint_outside_the_register_is_rejected(check):
    md = form_md(
        "custody_visit",
        HEAD
        + row(
            "text",
            "detainee_ref",
            sensitivity="",
            constraint="regex(., '^[0-9]{5}-[0-9]{7}-[0-9]$')",
            con_en="13 digits",
            con_ur="تیرہ ہندسے",
        ),
    )
    _, errors = check("custody_visit", md)
    assert len(errors) == 1
    assert "looks like a direct identifier (a CNIC pattern)" in errors[0]
    assert "column 'constraint'" in errors[0]


@pytest.mark.parametrize(
    ("name", "constraint", "kind"),
    [
        ("survivor_name", "", "name"),
        ("name", "", "name"),
        ("father_name", "", "name"),
        ("cnic", "", "CNIC"),
        ("mother_cnic_no", "", "CNIC"),
        ("mobile_number", "", "phone number"),
        ("contact", "regex(., '^03[0-9]{2}-?[0-9]{7}$')", "a phone number pattern"),
        ("home_address", "", "address"),
        ("facility_name", "", None),
        ("receiving_org_name", "", None),
        ("survivor_code", "regex(., '^(LHR|RWP|ISB)-[0-9]{4}$')", None),
        ("women_detained", ". >= 0", None),
    ],
)
def test_identifier_kind(name, constraint, kind):
    assert identifier_kind(name, constraint) == kind


def test_identity_register_must_be_encrypted(check):
    md = form_md(
        "identity_register", HEAD + CODE_ROW + row("text", "full_name", sensitivity="identifying")
    )
    _, errors = check("identity_register", md)
    assert any("holds identifying fields but is not encrypted" in e for e in errors)


def test_encrypted_form_without_a_key_is_not_compiled(check, tmp_path):
    md = (
        form_md("identity_register", HEAD + CODE_ROW)
        .replace("| namespaces |", "| namespaces | public_key |")
        .replace('xforms" |', 'xforms" | from-config |')
    )
    form, errors = check(
        "identity_register", md, forms__public_key_file=str(tmp_path / "nowhere.pem")
    )
    assert form.compiled is None
    assert any("must be encrypted and no public key is configured" in e for e in errors)
    assert any("nigraan keys create" in e for e in errors)


def test_encrypted_form_gets_the_configured_key(check, public_key_file):
    from nigraan.keys import public_key_for_form

    md = (
        form_md("identity_register", HEAD + CODE_ROW)
        .replace("| namespaces |", "| namespaces | public_key |")
        .replace('xforms" |', 'xforms" | from-config |')
    )
    form, errors = check("identity_register", md)
    assert errors == []
    submission = form.compiled.tree().find(".//{http://www.w3.org/2002/xforms}submission")
    assert submission.get("base64RsaPublicKey") == public_key_for_form(public_key_file)


def test_form_id_must_match_the_file_name(check):
    _, errors = check("service_contact", form_md("other_form", HEAD + CODE_ROW))
    assert any("form_id is 'other_form' but the file is service_contact.xlsx" in e for e in errors)


def test_unknown_reference_list(check):
    md = form_md(
        "custody_visit", HEAD + row("select_one_from_file prisons.csv", "p", sensitivity="")
    )
    _, errors = check("custody_visit", md)
    assert any("reference list 'prisons.csv' does not exist" in e for e in errors)


def test_pyxform_errors_are_reported_not_raised(check):
    choices = (
        "| choices |\n| | list_name | name | label::English (en) | label::Urdu (ur) |\n"
        "| | yn | yes | Yes | ہاں |\n"
    )
    md = form_md("custody_visit", HEAD + row("select_one nolist", "p", sensitivity=""), choices)
    form, errors = check("custody_visit", md)
    assert form.compiled is None
    assert any("[pyxform]" in e and "nolist" in e for e in errors)


def test_changed_form_needs_a_new_version(small_forms, make_config):
    cfg = make_config(
        forms__source_dir=str(small_forms),
        forms__reference_dir=str(small_forms.parent / "reference"),
    )
    path = small_forms / "survivor_intake.xlsx"
    write_xlsx(form_md("survivor_intake", HEAD + CODE_ROW), path)
    assert build_forms(cfg).ok

    changed = HEAD + CODE_ROW.replace("Survivor code", "Survivor's code")
    write_xlsx(form_md("survivor_intake", changed), path)
    report = build_forms(cfg)
    assert not report.ok
    [problem] = [p for p in report.forms[0].problems if p.level == "error"]
    assert "changed since version 2026112801 was built, but its version did not" in problem.message
    assert problem.location.sheet == "settings" and problem.location.column == "version"

    write_xlsx(form_md("survivor_intake", changed, version="2026112802"), path)
    assert build_forms(cfg).ok


def test_unchanged_form_rebuilds_without_a_new_version(small_forms, make_config):
    cfg = make_config(
        forms__source_dir=str(small_forms),
        forms__reference_dir=str(small_forms.parent / "reference"),
    )
    write_xlsx(form_md("survivor_intake", HEAD + CODE_ROW), small_forms / "survivor_intake.xlsx")
    assert build_forms(cfg).ok
    assert build_forms(cfg).ok


def test_failed_form_keeps_its_previous_build(small_forms, make_config):
    cfg = make_config(
        forms__source_dir=str(small_forms),
        forms__reference_dir=str(small_forms.parent / "reference"),
    )
    path = small_forms / "service_contact.xlsx"
    write_xlsx(form_md("service_contact", HEAD + CODE_ROW), path)
    build_forms(cfg)
    built = (cfg["forms.build_dir"] / "service_contact.xml").read_bytes()
    write_xlsx(
        form_md(
            "service_contact", HEAD + CODE_ROW + row("integer", "n", ur=""), version="2026112802"
        ),
        path,
    )
    assert not build_forms(cfg).ok
    assert (cfg["forms.build_dir"] / "service_contact.xml").read_bytes() == built


@pytest.mark.slow
def test_odk_validate_errors_are_reported(check):
    md = form_md(
        "advocacy_event",
        (
            "| survey |\n| | type | name | label::English (en) | label::Urdu (ur) | relevant |\n"
            "| | integer | a | A | الف | |\n| | integer | b | B | ب | foo(${a}) > 1 |\n"
        ),
    )
    _form, errors = check("advocacy_event", md, forms__validate=True)
    assert any("[odk-validate]" in e and "cannot handle function 'foo'" in e for e in errors)


def test_a_broken_reference_list_stops_the_forms_that_use_it(check, small_forms):
    stations = small_forms.parent / "reference" / "court_lockups.csv"
    stations.write_text(
        stations.read_text(encoding="utf-8") + "Bad Name,X,,lahore,2011,\n", encoding="utf-8"
    )
    md = form_md(
        "custody_visit",
        HEAD + row("select_one_from_file court_lockups.csv", "lockup", sensitivity=""),
    )
    form, errors = check("custody_visit", md)
    assert any("uses the reference list court_lockups.csv, which has errors" in e for e in errors)
    assert not form.ok
    other, errors = check(
        "advocacy_event", form_md("advocacy_event", HEAD + row("integer", "n", sensitivity=""))
    )
    assert errors == [] and other.ok
