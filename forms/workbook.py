"""Read an XLSForm workbook into rows that remember their sheet, row number and column."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from openpyxl.utils import get_column_letter

from forms.problems import Location

# Settings cells that may change without the form's content changing.
VOLATILE_SETTINGS = {"version", "public_key"}


def cell_text(value: object) -> str:
    """A cell as the text pyxform would see (Excel stores 2026112801 as a number)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


@dataclass
class Row:
    number: int  # the spreadsheet row number (header is row 1)
    cells: dict[str, str]

    def get(self, header: str) -> str:
        return self.cells.get(header, "")


@dataclass
class Sheet:
    name: str
    headers: list[str]
    letters: dict[str, str] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)

    def columns(self, base: str) -> list[str]:
        """Headers for `base` (e.g. 'label') in any language: 'label', 'label::Urdu (ur)'."""
        return [h for h in self.headers if h == base or h.startswith(base + "::")]


@dataclass
class Workbook:
    path: Path
    sheets: dict[str, Sheet]

    @property
    def file(self) -> str:
        return self.path.name

    def sheet(self, name: str) -> Sheet | None:
        return self.sheets.get(name)

    @property
    def settings(self) -> dict[str, str]:
        sheet = self.sheet("settings")
        return dict(sheet.rows[0].cells) if sheet and sheet.rows else {}

    def where(self, sheet: str, row: Row | None = None, column: str | None = None) -> Location:
        letters = self.sheets[sheet].letters if sheet in self.sheets else {}
        return Location(
            self.file,
            sheet,
            row.number if row else None,
            column,
            letters.get(column) if column else None,
        )


def read_workbook(path: Path, data: bytes | None = None) -> Workbook:
    """Load every sheet; sheet names are matched case-insensitively as pyxform does."""
    source = io.BytesIO(data) if data is not None else path
    book = openpyxl.load_workbook(source, read_only=True, data_only=True)
    sheets: dict[str, Sheet] = {}
    try:
        for ws in book.worksheets:
            rows = ws.iter_rows(values_only=True)
            header_row = next(rows, None) or ()
            headers = [cell_text(v) for v in header_row]
            sheet = Sheet(ws.title.strip().lower(), [h for h in headers if h])
            sheet.letters = {h: get_column_letter(i + 1) for i, h in enumerate(headers) if h}
            for number, values in enumerate(rows, start=2):
                cells = {
                    headers[i]: cell_text(v)
                    for i, v in enumerate(values)
                    if i < len(headers) and headers[i] and cell_text(v)
                }
                if cells:
                    sheet.rows.append(Row(number, cells))
            sheets[sheet.name] = sheet
    finally:
        book.close()
    return Workbook(path, sheets)


def fingerprint(workbook: Workbook, extra: dict[str, bytes]) -> str:
    """A hash of the form's content: every cell except version/public_key, plus used lists."""
    content: dict[str, object] = {}
    for name, sheet in sorted(workbook.sheets.items()):
        rows = []
        for row in sheet.rows:
            cells = dict(row.cells)
            if name == "settings":
                for key in VOLATILE_SETTINGS:
                    cells.pop(key, None)
            rows.append(sorted(cells.items()))
        content[name] = rows
    digest = hashlib.sha256(json.dumps(content, ensure_ascii=False, sort_keys=True).encode())
    for name in sorted(extra):
        digest.update(name.encode() + b"\0" + hashlib.sha256(extra[name]).digest())
    return digest.hexdigest()
