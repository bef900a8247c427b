"""Reading the recorded Central data in tests/data/central (see its README)."""

from __future__ import annotations

import json
from pathlib import Path

# Posts Central refused (409/404): their instanceIDs belong to other, accepted XML.
REFUSED = {"v01-conflict.xml", "v05-edit-stale.xml", "edit-unknown-deprecated.xml"}
# The final state of rec_visit ($expand=*, after edits, reviews and a deletion), in pages.
FINAL_PAGES = (
    "257-odata-final-expand-page1.json",
    "258-odata-final-expand-page2.json",
    "259-odata-final-expand-page3.json",
)


def odata_rows(central_dir: Path, *names: str) -> list[dict]:
    """The `value` rows of recorded OData responses, in order."""
    rows: list[dict] = []
    for name in names:
        exchange = json.loads((central_dir / "exchanges" / name).read_text(encoding="utf-8"))
        rows += exchange["response_body"]["value"]
    return rows
