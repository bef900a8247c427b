"""An upload's multipart body, read once with `multipart` (Bottle's parser) instead of werkzeug.

Werkzeug's form parser compiles regular expressions for each request's boundary and walks the
body in Python: 1.9 ms of the server's CPU for a custody visit with two photos (67 kB), against
72 µs here (store/README.md). What werkzeug gave is kept: a part with a file name (even empty)
is a file, one without is a text field (UTF-8), the first part of a name counts, a file's type
is its media type without parameters, and the limits are the app's `MAX_FORM_PARTS` parts and
`MAX_FORM_MEMORY_SIZE` bytes a text field (413, named), the body's own size being werkzeug's
`MAX_CONTENT_LENGTH` on the request stream as before. A body that is not multipart as sent
reads as no parts, so the upload is refused for its missing XML part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import multipart
from flask import current_app, g, request

from server import problems

CHUNK = 64 * 1024


@dataclass
class UploadParts:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str | None]] = field(default_factory=dict)  # content, type


def upload_parts() -> UploadParts:
    """This request's parts, read on first use (the view asks several times)."""
    parts = g.get("upload_parts")
    if parts is None:
        parts = g.upload_parts = _read()
    return parts


def _read() -> UploadParts:
    mimetype, options = multipart.parse_options_header(request.content_type or "")
    boundary = options.get("boundary")
    if not mimetype.startswith("multipart/") or not boundary:
        return UploadParts()
    max_parts = current_app.config["MAX_FORM_PARTS"]
    max_field = current_app.config["MAX_FORM_MEMORY_SIZE"]
    stream = request.stream  # limited to the request's length; over MAX_CONTENT_LENGTH: 413
    out = UploadParts()
    count = 0
    segment, chunks, size = None, [], 0
    try:
        with multipart.PushMultipartParser(boundary, content_length=-1) as parser:
            for event in parser.parse_blocking(stream.read, CHUNK):
                if isinstance(event, multipart.MultipartSegment):
                    count += 1
                    if count > max_parts:
                        raise problems.too_many_parts(max_parts, max_field)
                    segment, chunks, size = event, [], 0
                elif event:
                    size += len(event)
                    if segment.filename is None and size > max_field:
                        raise problems.too_many_parts(max_parts, max_field)
                    chunks.append(event)
                else:
                    _keep(out, segment, b"".join(chunks))
                    segment, chunks = None, []
    except multipart.MultipartError:
        return UploadParts()  # not multipart as sent: no parts, so no XML part
    return out


def _keep(out: UploadParts, segment: multipart.MultipartSegment, data: bytes) -> None:
    name = segment.name
    if name is None:  # no name to file it under
        return
    if segment.filename is None:
        out.fields.setdefault(name, data.decode("utf-8", "replace"))
        return
    media_type = (segment.content_type or "").lower() or None  # parameters already cut off
    out.files.setdefault(name, (data, media_type))
