"""The CSV zip writer (reports/export_csv.py): text that a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
import zipfile
from types import SimpleNamespace

from reports import export_shape as sh
from reports.cli import render_csv
from reports.export_csv import write_csv_zip
from reports.indicators import Exclusion, Period
from reports.publish import Row
from store.schema import Field


def field(path: str, kind: str) -> sh.OutColumn:
    return sh.OutColumn(path, "field", Field(path, kind, kind, ""), source=path)


def test_text_beginning_like_a_formula_is_quoted_and_numbers_are_not():
    columns = (
        field("remarks", "text"),
        field("women_detained", "integer"),
        field("share", "decimal"),
        sh.OutColumn("SubmitterName", "meta"),
        sh.OutColumn("location-Latitude", "field", Field("location", "geopoint", "", ""), part="x"),
    )
    table = sh.ExportTable("", "visit", columns)
    rows = [
        ['=HYPERLINK("http://x")', "-3", "-0.5", "@SUM(A1)", "-33.9"],
        ["+1", "4", "0.25", "-monitor", "33.9"],
        ["plain - text", "", "", "", ""],
    ]
    out = io.BytesIO()
    write_csv_zip(out, [table], [(0, rows)])
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as archive:
        read = list(csv.reader(io.StringIO(archive.read("visit.csv").decode("utf-8"))))
    assert read[1:] == [
        ['\'=HYPERLINK("http://x")', "-3", "-0.5", "'@SUM(A1)", "-33.9"],
        ["'+1", "4", "0.25", "'-monitor", "33.9"],
        ["plain - text", "", "", "", ""],
    ]


def test_the_indicator_csv_quotes_formula_text_but_not_negative_numbers():
    rows = [Row("reached", "=1+1", "ur", "persons", "district", "-lahore", -3)]
    report = SimpleNamespace(
        period=Period("2026-Q3", None, None),
        exclusions=[Exclusion("service_contact", "=cmd|' /C calc'!A0", 2, 1)],
    )
    read = list(csv.DictReader(io.StringIO(render_csv(report, rows))))
    assert (read[0]["label_en"], read[0]["category"], read[0]["value"]) == (
        "'=1+1",
        "'-lahore",
        "-3",
    )
    assert read[1]["category"] == "'=cmd|' /C calc'!A0"
