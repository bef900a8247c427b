"""A submission as received (Incoming), what ingest answers (IngestResult), and its reading.

Reading turns the payload (instance XML bytes or an OData row) into a SubmissionDocument, or
says why it cannot: nothing here touches the database, the registered form is asked for.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from store.document import SubmissionDocument, SubmissionError, from_odata, from_openrosa_xml
from store.outcomes import OPENROSA
from store.rows import Problem

if TYPE_CHECKING:
    from store.form_registry import RegisteredForm

MAX_ID = 255  # form ids, versions, instanceIDs, file names: longer ones are not stored as such


@dataclass
class Incoming:
    """A submission as received: instance XML bytes (OpenRosa) or an OData row (Central)."""

    payload: bytes | Mapping[str, Any]
    source: str = OPENROSA
    form_id: str | None = None  # required for OData rows, which do not name their form
    attachments: Mapping[str, tuple[bytes, str | None]] = field(default_factory=dict)
    received_at: datetime | None = None
    submitter: str | None = None  # the device account that sent it (OpenRosa server)
    device_id: str | None = None  # Collect's deviceID query parameter
    # The sender keeps its copy (a device): refuse what cannot be stored whole (REFUSED) instead
    # of keeping it raw and unread, as a file load or a sync must.
    all_or_nothing: bool = False


@dataclass
class IngestResult:
    status: str  # an Outcome
    form_id: str | None = None
    instance_id: str | None = None
    root_id: str | None = None
    normalised: str | None = None  # a Normalised
    problems: list[Problem] = field(default_factory=list)
    message: str = ""


@dataclass
class ParsedSubmission:
    """An Incoming read: its document (None when unreadable), payload bytes and digest."""

    item: Incoming
    doc: SubmissionDocument | None
    payload: bytes
    kind: str  # "xml" or "json"
    digest: str
    error: str | None = None  # why the payload could not be read
    generated_id: bool = False


FormLookup = Callable[[str | None], "RegisteredForm | None"]


def parse_incoming(item: Incoming, form_of: FormLookup) -> ParsedSubmission:
    """Read a submission; `form_of(form_id)` is its registered form (or None)."""
    parsed = _parse(item, form_of)
    doc = parsed.doc
    if doc is not None:
        ids = (doc.form_id, doc.form_version, doc.instance_id, doc.deprecated_id, doc.root_id)
        if any(value is not None and len(value) > MAX_ID for value in ids):
            parsed.doc = None
            parsed.error = (
                f"The submission's form id, version, instanceID or deprecatedID is longer "
                f"than {MAX_ID} characters"
                + ("." if item.all_or_nothing else "; it is kept raw, unread.")
            )
        elif item.all_or_nothing and any(len(name) > MAX_ID for name in _named(doc, form_of)):
            parsed.doc = None
            parsed.error = f"The submission names a file whose name is longer than {MAX_ID} "
            parsed.error += "characters."
    if parsed.doc is not None and not parsed.doc.instance_id:
        # Collect always sends one; Central makes a random one. Derived from the bytes, an
        # identical resend is recognised (before the batch looks up what is stored) and a
        # rebuild gives the same id.
        parsed.doc.instance_id = derived_id(parsed.digest)
        parsed.generated_id = True
    return parsed


def _named(doc: SubmissionDocument, form_of: FormLookup) -> list[str]:
    """Every file name the document names in its form's attachment fields (any length)."""
    form = form_of(doc.form_id)
    if doc.encrypted or form is None or not form.schemas:
        return list(doc.files)
    parts_list = form.schema_for(doc.form_version).attachment_paths
    return [v for parts in parts_list for v in values_at(doc.data, parts) if isinstance(v, str)]


def _parse(item: Incoming, form_of: FormLookup) -> ParsedSubmission:
    if isinstance(item.payload, (bytes, bytearray)):
        payload = bytes(item.payload)
        digest = sha256(payload)
        try:
            doc = from_openrosa_xml(payload)
        except SubmissionError as exc:
            return ParsedSubmission(item, None, payload, "xml", digest, error=exc.message)
        form = form_of(doc.form_id)
        if form is not None and form.schemas and not doc.encrypted:
            doc.conform_repeats(form.schema_for(doc.form_version).repeat_paths)
        return ParsedSubmission(item, doc, payload, "xml", digest)
    if not item.form_id:
        raise ValueError("An OData row needs the form id it was read from (Incoming.form_id).")
    payload = json_bytes(item.payload)
    try:
        doc = from_odata(item.payload, item.form_id)
    except SubmissionError as exc:
        return ParsedSubmission(item, None, payload, "json", sha256(payload), error=exc.message)
    return ParsedSubmission(item, doc, payload, "json", sha256(payload))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def json_bytes(row: Mapping[str, Any], sort_keys: bool = False) -> bytes:
    try:
        return orjson.dumps(row, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:  # an integer beyond 64 bits, which orjson cannot write: kept as sent
        text = json.dumps(row, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
        return text.encode("utf-8")


def data_digest(row: Mapping[str, Any]) -> str:
    """Digest of an OData row without __system: equal when only review state etc. changed."""
    data = {k: v for k, v in row.items() if k != "__system"}
    return sha256(json_bytes(data, sort_keys=True))


def fitting_content_type(value: str | None) -> str | None:
    """A part's content type, if it fits its column (a longer one is no content type at all)."""
    return value if value is None or len(value) <= 255 else None


def derived_id(digest: str) -> str:
    return f"uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'nigraan:' + digest)}"


def missing_id_problem(instance_id: str) -> Problem:
    return Problem(
        "missing_instance_id",
        "meta/instanceID",
        None,
        f"The submission had no meta/instanceID; nigraan gave it {instance_id}, derived from its "
        "content.",
    )


def values_at(data: Any, parts: tuple[str, ...]) -> Iterator[Any]:
    """Every value at `parts`, through repeats (lists) on the way."""
    if isinstance(data, list):
        for item in data:
            yield from values_at(item, parts)
        return
    if not isinstance(data, dict):
        return
    if len(parts) == 1:
        value = data.get(parts[0])
        if isinstance(value, list):
            yield from value
        else:
            yield value
        return
    yield from values_at(data.get(parts[0]), parts[1:])
