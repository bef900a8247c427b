"""Write small XLSForms for tests as markdown tables, the way pyxform's own tests do.

    | survey |
    |        | type | name | label::English (en) | label::Urdu (ur) |
    |        | text | code | Code                | کوڈ              |

A line whose first cell is filled starts a sheet; the next line is its header row.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl


def parse_md(md: str) -> dict[str, list[list[str]]]:
    sheets: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in md.strip().splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0]:
            current = sheets.setdefault(cells[0], [])
            continue
        if current is not None:
            current.append(cells[1:])
    return sheets


def write_xlsx(md: str, path: Path) -> Path:
    """Write the markdown tables as an .xlsx workbook at `path`."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in parse_md(md).items():
        ws = book.create_sheet(name)
        for row in rows:
            ws.append([cell if cell != "" else None for cell in row])
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


SETTINGS = """
| settings |
|          | form_id | version | default_language | namespaces |
|          | {form_id} | {version} | English (en) | nigraan="urn:nigraan:xforms" |
"""


def form_md(form_id: str, survey: str, choices: str = "", version: str = "2026112801") -> str:
    """A complete small form: the given survey (and choices) tables plus standard settings."""
    return survey + choices + SETTINGS.format(form_id=form_id, version=version)
