"""One canonical submission document, whatever the source: OpenRosa instance XML or Central OData.

The document keeps the form's shape: a group is a dict, a repeat a list of dicts (in document
order), a leaf its value or None when empty. From XML a value is the submitted text. From OData it
is Central's JSON value, which Central derived from that text: a number for int and decimal, a
GeoJSON point for geopoint, a string for everything else. Typing happens once, in store.rows, by
the same rules for both; `lexical()` writes OData values back in the XML spelling.

For speed on large syncs an OData document shares the row's nested objects instead of copying
them; names that are not form data (`__id`, `...@odata.navigationLink`) are skipped by readers
(`is_data_name`). Pure functions: bytes or dicts in, SubmissionDocument out.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from nigraan.errors import NigraanError
from store.schema import version_of

ENCRYPTED_NS = "http://opendatakit.org/submissions"
# Central __system.status values of rows whose data Central holds only encrypted.
ENCRYPTED_STATUSES = frozenset({"notDecrypted", "missingEncryptedFormData"})


class SubmissionError(NigraanError):
    """A submission payload cannot be read as a submission at all."""

    code = "submission.unreadable"
    status = 400

    # Why, for callers that answer differently (the OpenRosa server):
    FORBIDDEN, NOT_WELL_FORMED, NO_FORM_ID = "forbidden_xml", "not_well_formed", "no_form_id"

    def __init__(self, message: str, *, hint: str | None = None, reason: str | None = None):
        super().__init__(message, hint=hint)
        self.reason = reason


@dataclass
class SubmissionDocument:
    form_id: str
    form_version: str | None
    instance_id: str | None  # meta/instanceID of this version
    deprecated_id: str | None = None  # meta/deprecatedID: the version this one replaces
    root_id: str | None = (
        None  # the logical submission's id when the source knows it (Central __id)
    )
    encrypted: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    system: dict[str, Any] = field(default_factory=dict)  # Central __system, as received
    files: tuple[str, ...] = ()  # attachments an encrypted submission names (media + xml)

    def conform_repeats(self, repeats: Collection[str]) -> None:
        """Make every repeat named in `repeats` ("detainee", "detainee/injury") a list of dicts.

        XML alone cannot tell a repeat with one instance from a group; the form can. Parents
        are conformed before their children, so nested repeats are found inside the lists.
        """
        for path in sorted(repeats, key=lambda p: p.count("/")):
            _conform(self.data, path.split("/"))

    def lexical(self) -> dict[str, Any]:
        """The data with every value in the spelling instance XML uses (OData's turned back)."""
        return _lexical_tree(self.data)


def is_data_name(name: str) -> bool:
    """False for the names OData adds to form data: __id, __system, navigation links."""
    return "@" not in name and not name.startswith("__")


def _lexical_tree(data: Any) -> Any:
    if type(data) is list:
        return [_lexical_tree(item) for item in data]
    if type(data) is dict and data.get("type") != "Point":
        return {k: _lexical_tree(v) for k, v in data.items() if is_data_name(k)}
    return lexical(data)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


_parsers = threading.local()


def _parser() -> etree.XMLParser:
    """libxml2 (C, fast on the upload path), hardened: no entity expansion, no DTD loading,
    no network, no huge trees; comments and processing instructions dropped. One per thread,
    as lxml parsers must not be shared between threads."""
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = etree.XMLParser(
            resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False,
            remove_comments=True, remove_pis=True,
        )  # fmt: skip
    return parser


def _element_data(element) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for child in element:
        name = _local(child.tag)
        value: Any = _element_data(child) if len(child) else (child.text or None)
        if name in data:  # repeated siblings: a repeat
            previous = data[name]
            data[name] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            data[name] = value
    return data


def _conform(data: Any, parts: list[str]) -> None:
    for item in data if type(data) is list else [data]:
        if type(item) is not dict or parts[0] not in item:
            continue
        if len(parts) > 1:
            _conform(item[parts[0]], parts[1:])
            continue
        value = item[parts[0]]
        items = value if type(value) is list else [value]
        item[parts[0]] = [v if type(v) is dict else {} for v in items]


def _pop_meta(data: dict[str, Any], key: str) -> str | None:
    meta = data.get("meta")
    if isinstance(meta, dict) and key in meta:
        return meta.pop(key)
    return None


def from_openrosa_xml(
    xml: bytes, repeats: Collection[str] = (), *, with_data: bool = True
) -> SubmissionDocument:
    """Instance XML as ODK Collect posts it (plain or the encrypted envelope) -> document.

    `repeats` are the form's repeat paths ("detainee", "detainee/injury"), so a repeat with one
    instance is still a list; without them only repeated siblings become lists. With
    `with_data=False` only the form, version, ids and encryption are read (the whole XML is
    still checked): what the OpenRosa server needs to accept or refuse an upload.
    """
    try:
        root = etree.fromstring(xml, _parser())
    except etree.XMLSyntaxError as exc:
        raise SubmissionError(
            f"The submission is not well-formed XML ({exc}).",
            hint="The file may be truncated; send the complete instance XML again.",
            reason=SubmissionError.NOT_WELL_FORMED,
        ) from exc
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        # Collect never sends a DTD; one here is an attack (entity expansion, external files).
        raise SubmissionError(
            "The submission XML declares a DTD or entities, which nigraan refuses.",
            hint="Send the instance exactly as ODK Collect wrote it.",
            reason=SubmissionError.FORBIDDEN,
        )
    form_id = root.get("id")
    if not form_id:
        raise SubmissionError(
            "The submission's root element has no form id attribute.",
            hint="Send the instance XML of a form from this server's form list.",
            reason=SubmissionError.NO_FORM_ID,
        )
    # By attribute and local names, not namespace: the spec says ENCRYPTED_NS, but ODK Collect
    # writes http://www.opendatakit.org/xforms/encrypted.
    encrypted = root.get("encrypted") == "yes" and any(
        _local(child.tag) == "base64EncryptedKey" for child in root
    )
    if encrypted:
        names = [e.text for e in root.iter() if _local(e.tag) == "file" and e.text]
        xml_file = next((e.text for e in root.iter() if _local(e.tag) == "encryptedXmlFile"), None)
        meta = next((e for e in root if _local(e.tag) == "meta"), None)
        instance_id = None
        if meta is not None:
            instance_id = next(
                (e.text for e in meta if _local(e.tag) == "instanceID" and e.text), None
            )
        return SubmissionDocument(
            form_id=form_id,
            form_version=version_of(root),
            instance_id=instance_id or root.get("instanceID"),
            encrypted=True,
            files=tuple(names + ([xml_file] if xml_file else [])),
        )
    if not with_data:
        meta = next((e for e in root if _local(e.tag) == "meta"), None)
        data = {"meta": _element_data(meta)} if meta is not None else {}
    else:
        data = _element_data(root)
    instance_id = _pop_meta(data, "instanceID") or root.get("instanceID")
    doc = SubmissionDocument(
        form_id=form_id,
        form_version=version_of(root),
        instance_id=instance_id,
        deprecated_id=_pop_meta(data, "deprecatedID"),
        data=data,
    )
    doc.conform_repeats(repeats)
    return doc


def lexical(value: Any) -> Any:
    """An OData JSON value -> the string the instance XML held (or a nested structure)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, Mapping) and value.get("type") == "Point":
        coordinates = list(value.get("coordinates") or [])
        if len(coordinates) < 2:
            return None
        lon, lat, *rest = coordinates
        parts = [lat, lon] + rest[:1]
        accuracy = (value.get("properties") or {}).get("accuracy")
        if accuracy is not None:
            parts += [accuracy] if rest else [0, accuracy]
        return " ".join(lexical(p) for p in parts)
    return value


def from_odata(row: Mapping[str, Any], form_id: str) -> SubmissionDocument:
    """One row of Central's OData `Submissions` feed read with `$expand=*` -> document.

    Central's row keeps the root instanceID as `__id` even after edits; `meta/instanceID` is the
    current version's. Encrypted rows carry only `__id` and `__system`.
    """
    if not isinstance(row, Mapping) or "__id" not in row:
        raise SubmissionError(
            "The OData row has no __id.",
            hint="Read Submissions from Central's OData feed with $expand=*.",
        )
    system = dict(row.get("__system") or {})
    data = {k: v for k, v in row.items() if is_data_name(k)}
    if type(data.get("meta")) is dict:
        data["meta"] = dict(data["meta"])  # copied: the instance ids move out of it
    instance_id = _pop_meta(data, "instanceID") or row["__id"]
    deprecated_id = _pop_meta(data, "deprecatedID")
    return SubmissionDocument(
        form_id=form_id,
        form_version=system.get("formVersion"),
        instance_id=instance_id,
        deprecated_id=deprecated_id,
        root_id=row["__id"],
        encrypted=system.get("status") in ENCRYPTED_STATUSES,
        data=data,
        system=system,
    )
