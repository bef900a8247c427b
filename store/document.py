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

import binascii
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from nigraan.errors import NigraanError
from nigraan.safe_xml import XMLSyntaxError, declares_dtd, parse_submission
from nigraan.xform import version_of

# Central __system.status values of rows whose data Central holds only encrypted.
ENCRYPTED_STATUSES = frozenset({"notDecrypted", "missingEncryptedFormData"})


class SubmissionError(NigraanError):
    """A submission payload cannot be read as a submission at all."""

    code = "submission.unreadable"
    status = 400

    # Why, for callers that answer differently (the OpenRosa server):
    FORBIDDEN, NOT_WELL_FORMED, NO_FORM_ID = "forbidden_xml", "not_well_formed", "no_form_id"
    TOO_MANY_ELEMENTS, BAD_ENVELOPE = "too_many_elements", "bad_envelope"
    BAD_INSTANCE_ID = "bad_instance_id"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        reason: str | None = None,
        detail: str | None = None,
    ):
        super().__init__(message, hint=hint)
        self.reason = reason
        self.detail = detail  # what exactly is wrong, for a message of the caller's own


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
    key_size: int | None = None  # bytes of an envelope's RSA-wrapped key (base64 decoded)

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


def _element_data(element) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for child in element:
        name = _local(child.tag)
        value: Any = _element_data(child) if len(child) else (child.text or None)
        if name in data:  # repeated siblings: a repeat (a value itself is never a list)
            previous = data[name]
            if type(previous) is list:
                previous.append(value)  # in place: linear in the number of siblings
            else:
                data[name] = [previous, value]
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
        value = meta.pop(key)
        if value is not None and type(value) is not str:  # repeated, or holding elements
            what = (
                f"{len(value)} meta/{key} elements"
                if type(value) is list
                else f"a meta/{key} that holds elements"
            )
            raise SubmissionError(
                f"The submission has {what}; it must have one, holding only the id.",
                hint="Send the instance exactly as ODK Collect wrote it.",
                reason=SubmissionError.BAD_INSTANCE_ID,
            )
        return value
    return None


def _parse_root(xml: bytes):
    try:
        return parse_submission(xml)
    except XMLSyntaxError as exc:
        raise SubmissionError(
            f"The submission is not well-formed XML ({exc}).",
            hint="The file may be truncated; send the complete instance XML again.",
            reason=SubmissionError.NOT_WELL_FORMED,
        ) from exc


def _count_elements(root, limit: int) -> None:
    for n, _ in enumerate(root.iter(), 1):
        if n > limit:
            raise SubmissionError(
                f"The submission has more than {limit:,} XML elements, more than any form on this "
                "server produces; nothing was read.",
                hint="Send the instance exactly as ODK Collect wrote it; if a real form needs "
                "more, raise server.max_submission_elements.",
                reason=SubmissionError.TOO_MANY_ELEMENTS,
            )


def from_openrosa_xml(
    xml: bytes,
    repeats: Collection[str] = (),
    *,
    with_data: bool = True,
    max_elements: int | None = None,
) -> SubmissionDocument:
    """Instance XML as ODK Collect posts it (plain or the encrypted envelope) -> document.

    `repeats` are the form's repeat paths ("detainee", "detainee/injury"), so a repeat with one
    instance is still a list; without them only repeated siblings become lists. With
    `with_data=False` only the form, version, ids and encryption are read (the whole XML is
    still checked): what the OpenRosa server needs to accept or refuse an upload. With
    `max_elements`, XML with more elements than that is refused before anything is read.
    """
    root = _parse_root(xml)
    if declares_dtd(root):
        # Collect never sends a DTD; one here is an attack (entity expansion, external files).
        raise SubmissionError(
            "The submission XML declares a DTD or entities, which nigraan refuses.",
            hint="Send the instance exactly as ODK Collect wrote it.",
            reason=SubmissionError.FORBIDDEN,
        )
    if max_elements is not None:
        _count_elements(root, max_elements)
    form_id = root.get("id")
    if not form_id:
        raise SubmissionError(
            "The submission's root element has no form id attribute.",
            hint="Send the instance XML of a form from this server's form list.",
            reason=SubmissionError.NO_FORM_ID,
        )
    if root.get("encrypted") == "yes":
        return _envelope(root, form_id)
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


# The encrypted submission manifest (ODK.md 1.9): these elements and nothing else, so no
# plaintext can travel in an "envelope". Element name -> (may repeat, what it may hold).
_ENVELOPE = {
    "base64EncryptedKey": (False, None),
    "encryptedXmlFile": (False, None),
    "media": (True, {"file"}),
    "base64EncryptedElementSignature": (False, None),
    "meta": (False, {"instanceID"}),
}
_ENVELOPE_ROOT_ATTRIBUTES = {"id", "version", "encrypted", "instanceID"}


def _bad_envelope(why: str) -> SubmissionError:
    return SubmissionError(
        f'The submission says it is encrypted (encrypted="yes") but is not an encrypted '
        f"submission as ODK Collect writes it: {why}. Nothing was saved.",
        hint="Get the blank form again so the tablet encrypts it, and send it from ODK Collect.",
        reason=SubmissionError.BAD_ENVELOPE,
        detail=why,
    )


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def _base64_size(text: str | None, name: str) -> int:
    try:
        return len(binascii.a2b_base64("".join((text or "").split()), strict_mode=True))
    except binascii.Error as exc:
        raise _bad_envelope(f"{name} is not base64 ({exc})") from exc


def _envelope(root, form_id: str) -> SubmissionDocument:
    """The envelope's ids and file names, once it is checked to be only an envelope."""
    strange = [a for a in root.attrib if _local(a) not in _ENVELOPE_ROOT_ATTRIBUTES]
    if strange:
        raise _bad_envelope(f"the root element has the attribute {_local(strange[0])!r}")
    seen: dict[str, list] = {}
    for element in [root, *root]:
        if not _blank(element.text if element is root else element.tail):
            raise _bad_envelope("it holds text outside the envelope's elements")
    for child in root:
        name = _local(child.tag)
        if name not in _ENVELOPE:
            raise _bad_envelope(f"it has an element <{name}>, which an envelope never has")
        repeats, inner = _ENVELOPE[name]
        if seen.get(name) and not repeats:
            raise _bad_envelope(f"it has more than one <{name}>")
        seen.setdefault(name, []).append(child)
        if child.attrib:
            raise _bad_envelope(f"<{name}> has attributes")
        if inner is None:
            if len(child):
                raise _bad_envelope(f"<{name}> holds elements")
            continue
        if not _blank(child.text):
            raise _bad_envelope(f"<{name}> holds text")
        for grandchild in child:
            inner_name = _local(grandchild.tag)
            if inner_name not in inner or len(grandchild) or grandchild.attrib:
                raise _bad_envelope(f"<{name}> holds <{inner_name}>, which an envelope never has")
            if not _blank(grandchild.tail):
                raise _bad_envelope(f"<{name}> holds text")
    for required in ("base64EncryptedKey", "encryptedXmlFile"):
        if not seen.get(required) or _blank(seen[required][0].text):
            raise _bad_envelope(f"it has no {required}")
    key_size = _base64_size(seen["base64EncryptedKey"][0].text, "base64EncryptedKey")
    if seen.get("base64EncryptedElementSignature"):
        signature = seen["base64EncryptedElementSignature"][0].text
        if _base64_size(signature, "base64EncryptedElementSignature") != key_size:
            raise _bad_envelope("its signature and its key are of different sizes")
    names = [f.text.strip() if f.text else "" for m in seen.get("media", []) for f in m]
    xml_file = seen["encryptedXmlFile"][0].text.strip()
    for name in [*names, xml_file]:
        if not name.endswith(".enc"):
            raise _bad_envelope(f"the file {name!r} it names is not an encrypted .enc file")
    ids = [e.text for m in seen.get("meta", []) for e in m]
    if len(ids) > 1:
        raise _bad_envelope("it has more than one meta/instanceID")
    instance_id = (ids[0].strip() if ids and ids[0] else None) or root.get("instanceID")
    return SubmissionDocument(
        form_id=form_id,
        form_version=version_of(root),
        instance_id=instance_id,
        encrypted=True,
        files=(*names, xml_file),
        key_size=key_size,
    )


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
        parts = [lat, lon, *rest[:1]]
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
