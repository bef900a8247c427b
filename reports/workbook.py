"""The indicator report as an Excel workbook (openpyxl): a cover sheet, one sheet per indicator
group with native Excel bar charts, and the definitions. Always written from suppressed rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font

from reports.indicators import Report, load_definitions
from reports.publish import TOTAL, Row

HEADER = [
    "indicator",
    "label (English)",
    "label (Urdu)",
    "unit",
    "breakdown",
    "category",
    "value",
    "numerator",
    "denominator",
    "target",
]
GROUPS = {"output": "Outputs", "outcome": "Outcomes"}


def _cell(value):
    return "" if value is None else value


def write_workbook(report: Report, rows: list[Row], path: Path) -> None:
    definitions = load_definitions()
    group_of = {d.id: d.group for d in definitions}
    wb = Workbook()
    cover = wb.active
    cover.title = "Cover"
    period = "all periods" if report.period.label == "all" else report.period.label
    cover.append(["Programme indicators against targets"])
    cover["A1"].font = Font(bold=True, size=14)
    cover.append(["Period", period])
    cover.append(["Made", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")])
    cover.append(["Attendance threshold", report.settings["attendance_threshold"]])
    cover.append(["Pass mark (out of 10)", report.settings["pass_mark"]])
    cover.append([])
    cover.append(
        [
            "Counts from 1 to 4 are shown as <5; cells marked x are hidden as well, so that "
            "no hidden count can be worked out from the totals."
        ]
    )
    cover.append(["Survivor records left out (no consent to reporting)"])
    cover.append(["form", "reason", "records", "survivors"])
    for e in report.exclusions:
        cover.append([e.form_id, e.reason, e.records, e.survivors])
    if not report.exclusions:
        cover.append(["none"])

    for group, title in GROUPS.items():
        sheet = wb.create_sheet(title)
        sheet.append(HEADER)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        chart_row = 2
        for indicator_id in dict.fromkeys(r.indicator for r in rows):
            if group_of.get(indicator_id) != group:
                continue
            mine = [r for r in rows if r.indicator == indicator_id]
            first = sheet.max_row + 1
            for r in mine:
                sheet.append(
                    [
                        r.indicator,
                        r.label_en,
                        r.label_ur,
                        r.unit,
                        "" if r.disaggregation == TOTAL else r.disaggregation,
                        r.category,
                        _cell(r.value),
                        _cell(r.numerator),
                        _cell(r.denominator),
                        _cell(r.target),
                    ]
                )
            district = [i for i, r in enumerate(mine, first) if r.disaggregation == "district"]
            shown = all(isinstance(mine[i - first].value, int | float) for i in district)
            # A native chart of the district figures, only when none is hidden (a hidden cell
            # would be drawn as zero).
            if district and shown:
                chart = BarChart()
                chart.title = mine[0].label_en[:60]
                chart.y_axis.title = mine[0].unit
                data = Reference(sheet, min_col=7, min_row=district[0], max_row=district[-1])
                cats = Reference(sheet, min_col=6, min_row=district[0], max_row=district[-1])
                chart.add_data(data, titles_from_data=False)
                chart.set_categories(cats)
                chart.legend = None
                sheet.add_chart(chart, f"L{chart_row}")
                chart_row += 16
            sheet.append([])

    sheet = wb.create_sheet("Definitions")
    sheet.append(
        [
            "id",
            "label (English)",
            "label (Urdu)",
            "unit",
            "group",
            "forms",
            "rule",
            "disaggregations",
            "suppressed",
            "target period",
        ]
    )
    for d in definitions:
        sheet.append(
            [
                d.id,
                d.label_en,
                d.label_ur,
                d.unit,
                d.group,
                ", ".join(d.forms),
                d.rule_text,
                ", ".join(d.disaggregations),
                "yes" if d.suppress else "no",
                d.period,
            ]
        )
    wb.save(path)
