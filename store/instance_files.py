"""Submissions read from files, as `nigraan store load` takes them.

Instance XML (as ODK Collect writes it, with the media files it names) or Central OData JSON
(a `$expand=*` response, or a list of its rows). `read_instance_files` returns them in the
order to ingest them: an edit after the version it edits, whatever the order of the files.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from nigraan.errors import NigraanError
from store.document import SubmissionError, from_openrosa_xml
from store.store import Incoming


class InstanceFileError(NigraanError):
    """A file given to load cannot be read as submissions."""

    code = "store.instance_file"
    status = 400


class InstanceFile(NamedTuple):
    """One submission read from a file: what names it in messages, and what to ingest."""

    name: str  # the file's path, with "(row N)" for a row of OData JSON
    incoming: Incoming


def media_files(folder: Path | None) -> dict[str, Path]:
    """The files of a media folder by name (none without a folder)."""
    return {p.name: p for p in Path(folder).iterdir() if p.is_file()} if folder else {}


def read_instance_files(
    paths: Iterable[Path], form_id: str | None = None, media: Path | None = None
) -> list[InstanceFile]:
    """The submissions in `paths`, originals before their edits.

    `form_id` names the form of OData JSON files (they do not name it); `media` is a folder
    of the attachments instance XML files name. XML the store cannot read is passed on as it
    is (the store records it as unreadable).
    """
    files = media_files(media)
    found: list[InstanceFile] = []
    ids: list[tuple] = []
    for path in map(Path, paths):
        data = path.read_bytes()
        if path.suffix.lower() == ".json":
            rows = _odata_rows(path, data, form_id)
            found += [
                InstanceFile(f"{path} (row {i + 1})", Incoming(row, "central", form_id))
                for i, row in enumerate(rows)
            ]
            ids += [(None, None)] * len(rows)  # OData rows name their root: any order works
            continue
        try:
            doc = from_openrosa_xml(data)
        except SubmissionError:
            doc = None
        attachments = attachments_named(doc, files) if doc is not None else {}
        found.append(InstanceFile(str(path), Incoming(data, "file", attachments=attachments)))
        key = (doc.form_id, doc.instance_id) if doc is not None and doc.instance_id else None
        ids.append((key, (doc.form_id, doc.deprecated_id) if key and doc.deprecated_id else None))
    return [found[i] for i in originals_first(ids)]


def _odata_rows(path: Path, data: bytes, form_id: str | None) -> list[dict[str, Any]]:
    if not form_id:
        raise InstanceFileError(
            f"{path} is OData JSON, which does not name its form.",
            hint="Give the form id with --form.",
        )
    try:
        rows = json.loads(data)
    except ValueError as exc:
        raise InstanceFileError(
            f"{path} is not JSON ({exc}); nothing was loaded.",
            hint="Give Central OData JSON (a `$expand=*` response or a list of its rows), "
            "or instance XML files not ending in .json.",
        ) from exc
    rows = rows.get("value", []) if isinstance(rows, dict) else rows
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise InstanceFileError(
            f"{path} holds no OData rows (a `value` list of objects); nothing was loaded.",
            hint="Give a Central OData `$expand=*` response or a list of its rows.",
        )
    return rows


def attachments_named(doc, files: dict[str, Path]) -> dict[str, tuple[bytes, str]]:
    """The media files an instance names (an envelope: its .enc files), with their types.

    All are offered; the store keeps those its form's attachment fields name (all when the
    form is unknown).
    """
    values = doc.files if doc.encrypted else leaf_values(doc.data)
    attachments = {}
    for file_name in dict.fromkeys(v for v in values if isinstance(v, str) and v in files):
        kind = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        attachments[file_name] = (files[file_name].read_bytes(), kind)
    return attachments


def originals_first(ids: list[tuple[Hashable | None, Hashable | None]]) -> list[int]:
    """The order to load submissions in so an edit comes after the version it edits.

    `ids[i]` is (its key, the key of the version it edits or None); keys are any hashable.
    Edits of versions not in the list keep their place; otherwise the input order is kept.
    """
    position = {key: i for i, (key, _) in enumerate(ids) if key is not None}
    order: list[int] = []
    placed: set[int] = set()
    for start in range(len(ids)):
        chain = []
        i: int | None = start
        while i is not None and i not in placed and i not in chain:  # the originals first
            chain.append(i)
            edits = ids[i][1]
            i = position.get(edits) if edits is not None else None
        for j in reversed(chain):
            placed.add(j)
            order.append(j)
    return order


def leaf_values(data) -> list:
    """Every leaf value of a document, through groups and repeats."""
    found: list = []
    values = data.values() if isinstance(data, dict) else data if isinstance(data, list) else []
    for value in values:
        found += leaf_values(value) if isinstance(value, (dict, list)) else [value]
    return found
