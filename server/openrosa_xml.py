"""The XML documents the OpenRosa server sends, byte-for-byte as ODK Central v2026.2.2 does.

Pure functions: text in, text out. Layout (leading newline, two-space indents, no trailing
newline, `&#39;` for apostrophes) follows the recorded exchanges, so a client that works with
Central reads these unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

RESPONSE_NS = "http://openrosa.org/http/response"
FORM_LIST_NS = "http://openrosa.org/xforms/xformsList"
MANIFEST_NS = "http://openrosa.org/xforms/xformsManifest"
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})


def escape(text: str) -> str:
    """Escape text for XML content and attributes as Central does (`'` → `&#39;`)."""
    return text.translate(_ESCAPES)


def openrosa_response(message: str, *, error: bool) -> str:
    """An OpenRosaResponse carrying one message; Collect shows the message to the monitor."""
    nature = "error" if error else ""
    return (
        f'\n  <OpenRosaResponse xmlns="{RESPONSE_NS}" items="0">'
        f'\n    <message nature="{nature}">{escape(message)}</message>'
        "\n  </OpenRosaResponse>"
    )


@dataclass(frozen=True)
class FormListEntry:
    form_id: str
    name: str
    version: str
    md5: str
    download_url: str
    manifest_url: str | None = None


def form_list(entries: Iterable[FormListEntry]) -> str:
    """The `formList` document; `manifestUrl` only for forms that have media."""
    parts = [f'{DECLARATION}\n  <xforms xmlns="{FORM_LIST_NS}">']
    for e in entries:
        parts.append(
            "\n    <xform>"
            f"\n      <formID>{escape(e.form_id)}</formID>"
            f"\n      <name>{escape(e.name)}</name>"
            f"\n      <version>{escape(e.version)}</version>"
            f"\n      <hash>md5:{e.md5}</hash>"
            f"\n      <downloadUrl>{escape(e.download_url)}</downloadUrl>"
        )
        if e.manifest_url:
            parts.append(f"\n      <manifestUrl>{escape(e.manifest_url)}</manifestUrl>")
        parts.append("\n    </xform>")
    parts.append("\n  </xforms>")
    return "".join(parts)


@dataclass(frozen=True)
class MediaFile:
    filename: str
    md5: str
    download_url: str


def manifest(files: Iterable[MediaFile]) -> str:
    """The manifest of a form's media files (empty for a form without media)."""
    parts = [f'{DECLARATION}\n  <manifest xmlns="{MANIFEST_NS}">']
    for f in files:
        parts.append(
            "\n    <mediaFile>"
            f"\n      <filename>{escape(f.filename)}</filename>"
            f"\n      <hash>md5:{f.md5}</hash>"
            f"\n      <downloadUrl>{escape(f.download_url)}</downloadUrl>"
            "\n    </mediaFile>"
        )
    parts.append("\n  </manifest>")
    return "".join(parts)
