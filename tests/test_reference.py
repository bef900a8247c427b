"""Reference lists: the CSV checks and how lists are written into a form."""

from __future__ import annotations

import io

import openpyxl
from hypothesis import given
from hypothesis import strategies as st

from forms.reference import (
    OPEN_ENDED,
    check_reference_list,
    inject_lists,
    load_reference_lists,
    parse_reference_list,
)
from nigraan.config import PACKAGE_FORMS_DIR

HEADER = "name,label::English (en),label::Urdu (ur),district,valid_from,valid_to\n"


def problems_of(body: str) -> list[str]:
    ref = parse_reference_list("stations.csv", (HEADER + body).encode())
    return [f"{p.location}: {p.message}" for p in check_reference_list(ref)]


def test_the_programme_lists_are_clean():
    lists = load_reference_lists(PACKAGE_FORMS_DIR / "reference")
    assert {
        "districts.csv",
        "police_stations.csv",
        "jails.csv",
        "darul_amans.csv",
        "support_units.csv",
    } <= set(lists)
    assert [str(p) for ref in lists.values() for p in check_reference_list(ref)] == []


def test_project_stations_are_flagged():
    stations = load_reference_lists(PACKAGE_FORMS_DIR / "reference")["police_stations.csv"]
    flagged = [r for r in stations.rows if r["is_project_station"] == "yes"]
    assert len(flagged) == 30  # "staff of thirty police stations" (DOMAIN.md 0)
    assert {r["district"] for r in flagged} == {"lahore", "rawalpindi", "islamabad"}


def test_a_good_row_passes():
    assert problems_of("ps_a,PS A,تھانہ اے,lahore,2011-01-01,\n") == []


def test_bad_rows_are_named_by_line_and_column():
    found = problems_of(
        "PS A,PS A,تھانہ اے,lahore,2011-01-01,\n"
        "ps_b,PS B,,lahore,2011-01-01,\n"
        "ps_c,PS C,تھانہ سی,lahore,01/01/2011,\n"
        "ps_c,PS C2,تھانہ سی,lahore,2011-01-01,2010-01-01\n"
    )
    assert "stations.csv, row 2, column 'name': name 'PS A' is not ASCII snake_case" in found
    assert "stations.csv, row 3, column 'label::Urdu (ur)': empty label" in found
    assert (
        "stations.csv, row 4, column 'valid_from': valid_from '01/01/2011' is not a date" in found
    )
    assert (
        "stations.csv, row 5, column 'name': name 'ps_c' is used again (first on line 4)" in found
    )
    assert (
        "stations.csv, row 5, column 'valid_to': valid_to 2010-01-01 is before valid_from "
        "2011-01-01"
    ) in found


def test_missing_columns():
    ref = parse_reference_list("x.csv", b"name,label\na,b\n")
    [problem] = check_reference_list(ref)
    assert (
        "missing column(s) label::English (en), label::Urdu (ur), valid_from, valid_to"
        in problem.message
    )


def _workbook(type_: str) -> openpyxl.Workbook:
    book = openpyxl.Workbook()
    survey = book.active
    survey.title = "survey"
    survey.append(["type", "name", "label::English (en)"])
    survey.append([type_, "station", "Station"])
    return book


def test_injection_writes_translated_choices_with_open_ended_dates():
    ref = parse_reference_list(
        "stations.csv",
        (
            HEADER + "ps_a,PS A,تھانہ اے,lahore,2011-01-01,\n"
            "ps_b,PS B,تھانہ بی,lahore,2011-01-01,2013-12-31\n"
        ).encode(),
    )
    book = _workbook("select_one_from_file stations.csv")
    assert inject_lists(book, {"stations.csv": ref}) == ["stations.csv"]
    assert book["survey"]["A2"].value == "select_one stations"
    rows = list(book["choices"].iter_rows(values_only=True))
    header = rows[0]
    got = [dict(zip(header, r, strict=False)) for r in rows[1:]]
    assert got[0]["list_name"] == "stations" and got[0]["label::Urdu (ur)"] == "تھانہ اے"
    assert got[0]["valid_to"] == OPEN_ENDED
    assert got[1]["valid_to"] == "2013-12-31"


def test_lists_that_are_not_reference_lists_stay_media():
    book = _workbook("select_one_from_file logos.csv")
    assert inject_lists(book, {}) == []
    assert book["survey"]["A2"].value == "select_one_from_file logos.csv"


labels = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)


@given(st.lists(st.tuples(labels, labels), min_size=1, max_size=8))
def test_any_labels_survive_the_csv_round_trip(pairs):
    """Commas, quotes and Urdu in labels come through parsing unchanged."""
    import csv

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER.strip().split(","))
    for i, (en, ur) in enumerate(pairs):
        writer.writerow([f"e_{i}", en, ur, "lahore", "2011-01-01", ""])
    ref = parse_reference_list("x.csv", out.getvalue().encode())
    assert [(r["label::English (en)"], r["label::Urdu (ur)"]) for r in ref.rows] == pairs
    assert check_reference_list(ref) == []
