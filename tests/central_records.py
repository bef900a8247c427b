"""Reading the recorded Central data in tests/data/central (see its README)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
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


def numbered_rows(
    central_dir: Path, n: int, first: datetime, photos: bool = False, prefix: str = "bench"
) -> list[dict]:
    """`n` rec_visit rows ($expand=* shape) cycled from the recorded final data, one a minute
    from `first`, unedited and unreviewed; with `photos`, each names its own photo
    (`photo-<i>.jpg`) and says Central has it (attachmentsPresent = attachmentsExpected = 1)."""
    templates = odata_rows(central_dir, *FINAL_PAGES)
    rows = []
    for i in range(n):
        row = copy.deepcopy(templates[i % len(templates)])
        instance = f"uuid:{prefix}-{i:08d}"
        row["__id"] = instance
        row["meta"]["instanceID"] = instance
        row["photo"] = f"photo-{i}.jpg" if photos else None
        files = 1 if photos else 0
        row["__system"].update(
            attachmentsExpected=files,
            attachmentsPresent=files,
            edits=0,
            reviewState=None,
            updatedAt=None,
            submissionDate=iso(first + timedelta(minutes=i)),
        )
        rows.append(row)
    return rows


def iso(moment: datetime) -> str:
    """As Central writes timestamps: UTC, milliseconds, Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
