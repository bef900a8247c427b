"""The XLSX export: one sheet per form and per repeat, three header rows, a data dictionary.

Written with XlsxWriter in constant_memory mode: each row goes to its sheet's temporary file as
it comes (strings inline, no shared-string table held in memory), so a form of 100,000
submissions is written in bounded memory. Rows of one sheet arrive in order, sheets interleaved,
which constant_memory allows (one temporary file per sheet).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, BinaryIO

import xlsxwriter

from reports import export_shape as sh

HEADER_ROWS = 3  # field names, English labels, Urdu labels
MAX_SHEET_NAME = 31  # Excel's limit
MAX_CELL_TEXT = 32767  # Excel's limit on one cell's text
DICTIONARY = "dictionary"
DICTIONARY_COLUMNS = (
    "sheet",
    "column",
    "field",
    "label (English)",
    "label (Urdu)",
    "type",
    "choices",
    "sensitivity",
)


def sheet_names(names: Iterable[str]) -> list[str]:
    """Excel sheet names (31 characters at most, unique, no []:*?/\\)."""
    out: list[str] = []
    for name in names:
        clean = "".join("_" if c in "[]:*?/\\" else c for c in name)[:MAX_SHEET_NAME]
        candidate, n = clean, 1
        while candidate.lower() in {o.lower() for o in out} or candidate.lower() == DICTIONARY:
            n += 1
            suffix = f"~{n}"
            candidate = clean[: MAX_SHEET_NAME - len(suffix)] + suffix
        out.append(candidate)
    return out


def write_workbook(
    out: BinaryIO,
    schema,
    shape: list[sh.ExportTable],
    tables: Iterable[tuple[int, list[list[Any]]]],
    catalogue: dict[str, dict[str, Any]],
    profile: str,
) -> dict[str, int]:
    """Write the workbook to `out`; returns the rows written per table name."""
    book = xlsxwriter.Workbook(
        out,
        {
            "constant_memory": True,
            "strings_to_urls": False,  # a value is data, never a link Excel follows
            "strings_to_formulas": False,
            "nan_inf_to_errors": True,  # a decimal beyond a double is kept, as #NUM!
            "in_memory": False,
        },
    )
    bold = book.add_format({"bold": True})
    date_format = book.add_format({"num_format": "yyyy-mm-dd"})
    time_format = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    names = sheet_names(t.name for t in shape)
    sheets, next_row = [], []
    for table, name in zip(shape, names, strict=True):
        sheet = book.add_worksheet(name)
        # constant_memory flushes a row once the next one is begun: write row by row.
        labels = [column.labels() for column in table.columns]
        for c, column in enumerate(table.columns):
            sheet.write_string(0, c, column.name, bold)
        for r in (1, 2):
            for c, pair in enumerate(labels):
                sheet.write_string(r, c, pair[r - 1])
        sheet.freeze_panes(HEADER_ROWS, 0)
        sheets.append(sheet)
        next_row.append(HEADER_ROWS)
    counts = {t.name: 0 for t in shape}
    for index, rows in tables:
        sheet, r = sheets[index], next_row[index]
        write_string, write_number = sheet.write_string, sheet.write_number
        for values in rows:
            for c, v in enumerate(values):
                if v is None:
                    continue
                if isinstance(v, str):
                    write_string(r, c, v[:MAX_CELL_TEXT])
                elif isinstance(v, bool):
                    write_number(r, c, int(v))
                elif isinstance(v, int | float):
                    write_number(r, c, v)
                elif isinstance(v, datetime):
                    sheet.write_datetime(r, c, v, time_format)
                elif isinstance(v, date):
                    sheet.write_datetime(r, c, datetime(v.year, v.month, v.day), date_format)
                else:
                    write_string(r, c, str(v)[:MAX_CELL_TEXT])
            r += 1
        next_row[index] = r
        counts[shape[index].name] += len(rows)
    _dictionary(book, bold, shape, names, catalogue, profile)
    book.close()
    return counts


def _dictionary(book, bold, shape, names, catalogue, profile: str) -> None:
    """Every exported column: its field, labels, type, choices and sensitivity class."""
    sheet = book.add_worksheet(DICTIONARY)
    for c, title in enumerate(DICTIONARY_COLUMNS):
        sheet.write_string(0, c, title, bold)
    sheet.freeze_panes(1, 0)
    r = 1
    for table, name in zip(shape, names, strict=True):
        for column in table.columns:
            en, ur = column.labels()
            f = column.field
            if f is None:
                kind, path, choices, sensitivity = "meta", "", "", ""
            else:
                entry = catalogue.get(f.path, {})
                kind = entry.get("kind") or f.kind
                path, choices = f.path, sh.choices_text(f)
                sensitivity = f.sensitivity or "general"
            for c, value in enumerate(
                (name, column.name, path, en, ur, kind, choices, sensitivity)
            ):
                sheet.write_string(r, c, value[:MAX_CELL_TEXT])
            r += 1
    sheet.write_string(r + 1, 0, f"profile: {profile}")
    left_out = ", ".join(sorted(sh.LEFT_OUT[profile]))
    sheet.write_string(r + 2, 0, f"left out: fields of class {left_out}")
