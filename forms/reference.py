"""Reference lists (CSV): load, check, and turn into translated choice lists inside a form.

ODK Collect shows a CSV list's single `label` column whatever the form language, so the build
writes each list a form uses into the form's choices with itext in both languages. The XLSForm
keeps the standard `select_one_from_file <list>.csv` spelling, so other tools still read it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

from forms.problems import Location, Problem, error
from forms.workbook import Workbook

LANGUAGES = ("English (en)", "Urdu (ur)")
LABEL_COLUMNS = tuple(f"label::{lang}" for lang in LANGUAGES)
REQUIRED_COLUMNS = ("name", *LABEL_COLUMNS, "valid_from", "valid_to")
OPEN_ENDED = (
    "9999-12-31"  # an empty valid_to, so choice filters compare dates without a special case
)
CHOICE_NAME = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")
FROM_FILE = re.compile(r"^(select_one|select_multiple)_from_file\s+(\S+)$")


@dataclass
class ReferenceList:
    file: str  # e.g. police_stations.csv
    headers: list[str]
    rows: list[dict[str, str]]  # with their CSV line numbers under "__line__"
    data: bytes

    @property
    def list_name(self) -> str:
        return Path(self.file).stem


def parse_reference_list(file: str, data: bytes) -> ReferenceList:
    text = data.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    headers = [h.strip() for h in (reader.fieldnames or [])]
    rows = []
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        row["__line__"] = str(line)
        rows.append(row)
    return ReferenceList(file, headers, rows, data)


def load_reference_lists(directory: Path) -> dict[str, ReferenceList]:
    """Every `*.csv` in the folder, by file name."""
    if not directory.is_dir():
        return {}
    return {
        p.name: parse_reference_list(p.name, p.read_bytes())
        for p in sorted(directory.glob("*.csv"))
    }


def _iso_date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def check_reference_list(ref: ReferenceList) -> list[Problem]:
    """Columns, unique snake_case names, both labels, and validity dates on every row."""
    problems: list[Problem] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in ref.headers]
    if missing:
        return [
            error(
                f"missing column(s) {', '.join(missing)}",
                Location(ref.file, row=1),
                "Add the column(s) to the header row; every list needs "
                f"{', '.join(REQUIRED_COLUMNS)}.",
            )
        ]
    seen: dict[str, str] = {}
    for row in ref.rows:
        line = int(row["__line__"])
        name = row.get("name", "")

        def at(column: str, line: int = line) -> Location:
            return Location(ref.file, row=line, column=column)

        if not CHOICE_NAME.match(name):
            problems.append(
                error(
                    f"name '{name}' is not ASCII snake_case",
                    at("name"),
                    "Use lower-case letters, digits and single underscores, e.g. ps_model_town.",
                )
            )
        elif name in seen:
            problems.append(
                error(
                    f"name '{name}' is used again (first on line {seen[name]})",
                    at("name"),
                    "Each entry needs its own name; exports and filters use it.",
                )
            )
        else:
            seen[name] = str(line)
        for column in LABEL_COLUMNS:
            if not row.get(column):
                problems.append(
                    error(
                        "empty label",
                        at(column),
                        "Give the entry its label in English and in Urdu.",
                    )
                )
        start, end = row.get("valid_from", ""), row.get("valid_to", "")
        if _iso_date(start) is None:
            problems.append(
                error(
                    f"valid_from '{start}' is not a date",
                    at("valid_from"),
                    "Write the first day the entry applies as YYYY-MM-DD.",
                )
            )
        if end and _iso_date(end) is None:
            problems.append(
                error(
                    f"valid_to '{end}' is not a date",
                    at("valid_to"),
                    "Write the last day as YYYY-MM-DD, or leave it empty while the entry "
                    "is current.",
                )
            )
        elif end and _iso_date(start) and _iso_date(end) < _iso_date(start):
            problems.append(
                error(
                    f"valid_to {end} is before valid_from {start}",
                    at("valid_to"),
                    "Swap or fix the dates.",
                )
            )
    return problems


def lists_used(workbook: Workbook) -> list[tuple[str, int]]:
    """(file, row number) of every `select_*_from_file <file>` question."""
    survey = workbook.sheet("survey")
    used = []
    for row in survey.rows if survey else ():
        match = FROM_FILE.match(row.get("type"))
        if match:
            used.append((match.group(2), row.number))
    return used


def inject_lists(book, lists: dict[str, ReferenceList]) -> list[str]:
    """Rewrite `select_*_from_file x.csv` on an openpyxl workbook into `select_* x` with choices.

    Returns the files it wrote in. Lists not in `lists` are left as they are (form media).
    """
    sheets = {ws.title.strip().lower(): ws for ws in book.worksheets}
    survey = sheets["survey"]
    headers = [str(c.value).strip() if c.value is not None else "" for c in survey[1]]
    type_col = headers.index("type") + 1
    wanted: dict[str, ReferenceList] = {}
    for (cell,) in survey.iter_rows(min_row=2, min_col=type_col, max_col=type_col):
        match = FROM_FILE.match(str(cell.value or "").strip())
        if match and match.group(2) in lists:
            ref = lists[match.group(2)]
            cell.value = f"{match.group(1)} {ref.list_name}"
            wanted[ref.file] = ref
    if not wanted:
        return []

    choices = sheets.get("choices") or book.create_sheet("choices")
    columns = [str(c.value).strip() if c.value is not None else "" for c in choices[1]]
    if not any(columns):
        columns = []

    def column_of(header: str) -> int:
        if header not in columns:
            columns.append(header)
            choices.cell(row=1, column=len(columns), value=header)
        return columns.index(header) + 1

    list_name_col = column_of("list_name")
    next_row = choices.max_row + 1
    for ref in wanted.values():
        for row in ref.rows:
            choices.cell(row=next_row, column=list_name_col, value=ref.list_name)
            for header in ref.headers:
                if (
                    header == "label"
                ):  # the single-language column other tools read; itext replaces it
                    continue
                value = row.get(header, "")
                if header == "valid_to" and not value:
                    value = OPEN_ENDED
                if value:
                    choices.cell(row=next_row, column=column_of(header), value=value)
            next_row += 1
    return sorted(wanted)
