"""Data exports (reports/exports.py) on a real store, SQLite and PostgreSQL: the CSV zip against
the one ODK Central exported of the same submissions, the XLSX read back with openpyxl, the
profiles' omissions, bounded memory, and the `nigraan export` command."""

from __future__ import annotations

import csv
import io
import stat
import tracemalloc
import uuid
import zipfile

import openpyxl
import pytest

from nigraan.cli import main
from reports.exports import ExportError, export_form
from store.store import Incoming
from tests.central_records import FINAL_PAGES, odata_rows
from tests.test_report_indicators import instance_xml, registration, service

FORM = "rec_visit"
# Central's CSV zip of the final state (exchange 263: submissions.csv.zip?attachments=false).
RECORDED = "263-export-final-csvzip.zip"
# What differs from Central's CSV, and why (asserted below: a new difference fails the test).
# - Geopoint parts: the store keeps numbers, so 33.969900 comes out as 33.9699.
# - AttachmentsPresent: the OData rows name the photos; the files were not loaded here.
# - meta-instanceID of the row Central accepted without an instanceID: Central leaves it empty,
#   the store shows the id Central gave it (the same id as its KEY).
KNOWN = {"location-Latitude", "location-Longitude", "AttachmentsPresent", "meta-instanceID"}


@pytest.fixture
def recorded(store, central_dir):
    """The store holding what Central held at the end of the recording (257-259)."""
    store.register_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    store.ingest_many([Incoming(r, "central", FORM) for r in odata_rows(central_dir, *FINAL_PAGES)])
    return store


def unzip(data: bytes) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {
            name: list(csv.reader(io.StringIO(archive.read(name).decode("utf-8"))))
            for name in archive.namelist()
        }


def export_bytes(store, form_id=FORM, **options) -> bytes:
    out = io.BytesIO()
    export_form(store, form_id, out, **options)
    return out.getvalue()


def test_the_csv_zip_has_the_shape_and_values_of_centrals_export(recorded, central_dir):
    ours = unzip(export_bytes(recorded, fmt="csv"))
    theirs = unzip((central_dir / "binaries" / RECORDED).read_bytes())
    assert (
        sorted(ours)
        == sorted(theirs)
        == [
            "rec_visit-detainee.csv",
            "rec_visit-injury.csv",
            "rec_visit.csv",
        ]
    )
    differing = set()
    for name, rows in theirs.items():
        assert ours[name][0] == rows[0], name  # the same columns in the same order
        assert len(ours[name]) == len(rows), name
        header = rows[0]
        keys = [i for i, h in enumerate(header) if h in ("KEY", "PARENT_KEY")]
        # The same rows in the same order (newest submission first, document order inside).
        assert [[r[i] for i in keys] for r in ours[name]] == [[r[i] for i in keys] for r in rows]
        for mine, central in zip(ours[name][1:], rows[1:], strict=True):
            differing |= {h for h, a, b in zip(header, mine, central, strict=True) if a != b}
    assert differing == KNOWN
    ours_root = {r[-10]: r for r in ours["rec_visit.csv"][1:]}
    assert ours_root["uuid:d4211011-26dc-4d6b-8a33-323d31658545"][-3:] == ["", "1", "2026112801"]


def test_the_xlsx_has_a_sheet_per_table_three_header_rows_and_a_dictionary(recorded):
    book = openpyxl.load_workbook(io.BytesIO(export_bytes(recorded, fmt="xlsx")))
    assert book.sheetnames == ["rec_visit", "rec_visit-detainee", "rec_visit-injury", "dictionary"]
    root = list(book["rec_visit"].iter_rows(values_only=True))
    names, english, urdu = root[0], root[1], root[2]
    assert names[0] == "SubmissionDate" and names[-1] == "FormVersion"
    assert "intro_note" not in names  # notes hold nothing: left out of the workbook
    column = names.index("visitor_name")
    assert (english[column], urdu[column]) == ("Visitor name", "ملاقاتی کا نام")
    assert len(root) == 3 + 30
    by_key = {r[names.index("KEY")]: r for r in root[3:]}
    zainab = by_key["uuid:53ffa034-e430-4c07-8512-f18392b07d9f"]
    assert zainab[names.index("household_size")] == 4  # a number, not text
    assert zainab[names.index("distance_km")] == 65.49
    assert zainab[names.index("visit_date")].date().isoformat() == "2026-11-28"
    assert zainab[names.index("start")].isoformat() == "2026-11-28T12:09:05.123000"  # as submitted
    assert zainab[names.index("services")] == "food shelter legal"  # names by default
    injuries = list(book["rec_visit-injury"].iter_rows(values_only=True))
    assert injuries[0][-2:] == ("PARENT_KEY", "KEY")
    assert len(injuries) == 3 + 34
    dictionary = list(book["dictionary"].iter_rows(values_only=True))
    assert dictionary[0] == (
        "sheet",
        "column",
        "field",
        "label (English)",
        "label (Urdu)",
        "type",
        "choices",
        "sensitivity",
    )
    services = next(r for r in dictionary if r[1] == "services")
    assert services[0] == "rec_visit" and services[5] == "select_multiple"
    assert "food = Food" in services[6] and services[7] == "general"


def test_choices_as_labels_in_english_or_urdu(recorded):
    def services(language):
        data = export_bytes(recorded, fmt="xlsx", choices="labels", language=language)
        rows = list(
            openpyxl.load_workbook(io.BytesIO(data))["rec_visit"].iter_rows(values_only=True)
        )
        names = rows[0]
        by_key = {r[names.index("KEY")]: r for r in rows[3:]}
        return by_key["uuid:53ffa034-e430-4c07-8512-f18392b07d9f"][names.index("services")]

    assert services("en") == "Food; Shelter; Legal aid"
    assert services("ur") != services("en") and ";" in services("ur")


@pytest.fixture
def survivors(store, built_programme_forms):
    """Registrations of the programme's form (Lahore and Rawalpindi units), one survivor who
    said no to reporting, and a service contact of each survivor."""
    config, _ = built_programme_forms
    build_dir = config["forms.build_dir"]
    for form_id in ("survivor_registration", "service_contact", "identity_register"):
        store.register_form((build_dir / f"{form_id}.xml").read_bytes())
    sent = [
        registration("LHR-0777", "ssu_lahore", "2026-07-05", "jail"),
        registration("RWP-0778", "ssu_rawalpindi", "2026-07-05", "jail"),
        registration("LHR-0779", "ssu_lahore", "2026-07-06", "jail", consent_reporting="no"),
        *(
            service(code, "ssu_lahore", "2026-07-08", "legal_counselling")
            for code in ("LHR-0777", "LHR-0779")
        ),
    ]
    for form_id, answers in sent:
        assert store.ingest(instance_xml(build_dir / f"{form_id}.xml", answers)).status == "created"
    return store


def test_the_funder_profile_leaves_out_pseudonyms_restricted_fields_and_submitters(survivors):
    schema = list(survivors.form_schemas("survivor_registration").values())[-1]
    pseudonyms = {
        f.local_path.replace("/", "-") for f in schema.fields if f.sensitivity == "pseudonym"
    }
    restricted = {
        f.local_path.replace("/", "-") for f in schema.fields if f.sensitivity == "restricted"
    }
    assert "survivor_code" in pseudonyms and restricted
    full = unzip(export_bytes(survivors, "survivor_registration", fmt="csv"))
    funder_bytes = export_bytes(survivors, "survivor_registration", fmt="csv", profile="funder")
    funder = unzip(funder_bytes)
    full_header = full["survivor_registration.csv"][0]
    funder_header = funder["survivor_registration.csv"][0]
    assert pseudonyms <= set(full_header) and restricted <= set(full_header)
    assert not (pseudonyms | restricted) & set(funder_header)
    assert not {"SubmitterID", "SubmitterName", "DeviceID"} & set(funder_header)
    assert "LHR-0777" in str(full) and "LHR-0777" not in str(funder)
    # The survivor who said no to reporting is in the full export only.
    assert len(full["survivor_registration.csv"]) == 1 + 3
    assert len(funder["survivor_registration.csv"]) == 1 + 2
    book = openpyxl.load_workbook(
        io.BytesIO(export_bytes(survivors, "survivor_registration", fmt="xlsx", profile="funder"))
    )
    cells = [str(v) for sheet in book for row in sheet.iter_rows(values_only=True) for v in row]
    assert "survivor_code" not in cells and "LHR-0777" not in cells and "RWP-0778" not in cells
    sensitivity = {r[1]: r[7] for r in book["dictionary"].iter_rows(min_row=2, values_only=True)}
    assert "pseudonym" not in sensitivity.values() and "restricted" not in sensitivity.values()
    assert sensitivity.get("consented-consent_reporting") == "general"


def test_a_caseworkers_export_holds_only_her_units_submissions(survivors):
    rows = unzip(
        export_bytes(survivors, "survivor_registration", fmt="csv", support_unit="ssu_lahore")
    )["survivor_registration.csv"]
    assert len(rows) == 3 and "RWP-0778" not in str(rows)


def test_a_funders_export_of_service_contacts_holds_only_consenting_survivors(survivors):
    def contacts(profile):
        data = export_bytes(survivors, "service_contact", fmt="csv", profile=profile)
        return unzip(data)["service_contact.csv"]

    assert len(contacts("full")) == 1 + 2
    assert len(contacts("funder")) == 1 + 1  # LHR-0779's latest registration says no


def test_the_identity_register_is_never_exported(survivors):
    with pytest.raises(ExportError, match="never exported"):
        export_bytes(survivors, "identity_register", fmt="xlsx")
    with pytest.raises(ExportError, match="profile"):
        export_bytes(survivors, "survivor_registration", fmt="csv", profile="everything")


def _fill(store, central_dir, n: int) -> None:
    """n rec_visit submissions with a detainee and an injury each (v01.xml, new ids)."""
    xml = (central_dir / "submissions" / "v01.xml").read_bytes()
    original = xml.split(b"<instanceID>")[1].split(b"</instanceID>")[0]
    store.ingest_many(
        Incoming(xml.replace(original, f"uuid:{uuid.uuid4()}".encode())) for _ in range(n)
    )


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_exports_read_in_pages_and_memory_does_not_grow_with_the_rows(store, central_dir, fmt):
    store.register_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    _fill(store, central_dir, 400)
    pages = list(store.export_pages(FORM, page_size=100))
    assert [len(p.submissions) for p in pages] == [100, 100, 100, 100]
    assert all(len(p.repeats["detainee"]) == 100 for p in pages)

    def peak() -> int:
        tracemalloc.start()
        try:
            export_bytes(store, fmt=fmt, page_size=100)
        finally:
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        return top

    small = peak()
    _fill(store, central_dir, 2000)  # six times the rows
    large = peak()
    # Holding every row would take about 6x; a page at a time, the same. (The written file is
    # in memory here, a BytesIO, and grows with the rows: it is compressed, so it stays small.)
    assert large < small * 1.6, (small, large)


def test_the_command_writes_an_owner_only_file_and_audits_the_os_user(
    recorded, runner, make_config, tmp_path, monkeypatch
):
    monkeypatch.setenv("NIGRAAN_DATABASE_URL", recorded.engine.url.render_as_string(False))
    monkeypatch.setenv("NIGRAAN_INSTANCE_DIR", str(tmp_path / "instance"))
    target = tmp_path / "out.zip"
    done = runner.invoke(
        main, ["export", FORM, "--format", "csv", "--profile", "funder", "-o", str(target)]
    )
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "rec_visit: 30" in done.output
    assert "SubmitterName" not in unzip(target.read_bytes())["rec_visit.csv"][0]
    [row] = recorded.audit.entries()
    assert row["action"] == "export" and row["form_id"] == FORM
    assert row["actor"].startswith("cli:") and "profile funder" in row["detail"]
    assert "format csv" in row["detail"]


def test_the_command_names_the_known_forms_for_an_unknown_one(recorded, runner, monkeypatch):
    monkeypatch.setenv("NIGRAAN_DATABASE_URL", recorded.engine.url.render_as_string(False))
    done = runner.invoke(main, ["export", "no_such_form"])
    assert done.exit_code == 2
    assert "No form 'no_such_form'" in done.output and "rec_visit" in done.output
    assert recorded.audit.entries() == []


def test_a_field_restricted_in_an_earlier_version_stays_out_of_a_funders_export():
    from reports.export_shape import build_shape
    from store.schema import Field, FormSchema

    def version(number: str, sensitivity: str) -> FormSchema:
        field = Field("notes", "text", "string", "", sensitivity=sensitivity)
        return FormSchema("f", number, "F", "data", False, (field,), ())

    def names(**options) -> list[str]:
        tables = build_shape(
            version("2", "general"), {("", "notes", ""): "notes"}, "funder", notes=False, **options
        )
        return [c.name for c in tables[0].columns]

    assert "notes" in names()
    assert "notes" not in names(earlier=(version("1", "restricted"),))
