"""The CSV zip export, in the shape of ODK Central's `submissions.csv.zip?attachments=false`.

One CSV per form (`<form>.csv`) and per repeat (`<form>-<repeat>.csv`), UTF-8 without a byte
order mark, `\\n` line ends, quoted only where needed, as Central writes them; except that a
text cell beginning like a formula (`=`, `+`, `-`, `@`) gets a leading `'`, so a spreadsheet
shows it rather than runs it (CSV injection). The zip format lets one member be written at a
time, so each table is streamed to its own temporary file as pages come and the files are
copied into the zip at the end: memory stays bounded.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from typing import Any, BinaryIO

from reports import export_shape as sh

COPY_CHUNK = 1 << 20


def write_csv_zip(
    out: BinaryIO, shape: list[sh.ExportTable], tables: Iterable[tuple[int, list[list[Any]]]]
) -> dict[str, int]:
    """Write the zip to `out`; returns the rows written per table name."""
    with contextlib.ExitStack() as stack:
        texts = [
            stack.enter_context(
                io.TextIOWrapper(stack.enter_context(tempfile.TemporaryFile()), "utf-8", newline="")
            )
            for _ in shape
        ]
        writers = [csv.writer(t, lineterminator="\n") for t in texts]
        for table, writer in zip(shape, writers, strict=True):
            writer.writerow([c.name for c in table.columns])
        counts = {t.name: 0 for t in shape}
        text = [[i for i, c in enumerate(t.columns) if sh.holds_text(c)] for t in shape]
        for index, rows in tables:
            for row in rows:
                for i in text[index]:
                    row[i] = sh.formula_safe(row[i])
            writers[index].writerows(rows)
            counts[shape[index].name] += len(rows)
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for table, text in zip(shape, texts, strict=True):
                text.flush()
                raw = text.buffer
                raw.seek(0)
                with archive.open(f"{table.name}.csv", "w") as member:
                    shutil.copyfileobj(raw, member, COPY_CHUNK)
        return counts
