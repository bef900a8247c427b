"""The blank forms the server offers to tablets: the build folder, as `nigraan forms build`
left it, re-read when its index changes so a rebuilt form reaches devices without a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import threading
from dataclasses import dataclass, field
from pathlib import Path

from nigraan.errors import NigraanError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaFile:
    name: str
    content: bytes
    md5: str
    content_type: str


@dataclass(frozen=True)
class PublishedForm:
    form_id: str
    version: str
    title: str
    xform: bytes  # served byte-for-byte; the form list's hash is the md5 of exactly these bytes
    md5: str
    encrypted: bool
    media: dict[str, MediaFile] = field(default_factory=dict)
    # Whether the form refers to media at all (Central lists a manifest URL only then).
    has_media: bool = False


class PublishedForms:
    """Thread-safe view of the build folder; `register` is called for every form (re)loaded."""

    def __init__(self, build_dir: Path, register=None):
        self.build_dir = Path(build_dir)
        self._register = register
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._forms: dict[str, PublishedForm] = {}

    def _index_stamp(self) -> tuple[int, int] | None:
        try:
            stat = (self.build_dir / "index.json").stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def refresh(self) -> dict[str, PublishedForm]:
        """The forms, re-read if the build index changed since the last call.

        The first reading raises what goes wrong with the build folder itself (the server must
        not start half-blind). A form the store refuses (too wide, or changed without a new
        version) is logged with the reason and left out, or keeps the copy served so far; the
        other forms are served. Later, a build folder that cannot be read is logged and the
        forms served so far stay, until the build index changes again.
        """
        stamp = self._index_stamp()
        if stamp == self._stamp:
            return self._forms
        with self._lock:
            if stamp != self._stamp:
                first = self._stamp is None and not self._forms
                try:
                    forms = self._registered(self._read())
                except Exception as exc:
                    if first:
                        raise
                    # The reason is the message; a traceback would bury it.
                    log.error("the rebuilt forms in %s are not served: %s", self.build_dir, exc)  # noqa: TRY400
                    self._stamp = stamp
                    return self._forms
                self._forms, self._stamp = forms, stamp
        return self._forms

    def _registered(self, forms: dict[str, PublishedForm]) -> dict[str, PublishedForm]:
        """The forms the store took; a refused one is logged and replaced by what was served."""
        if self._register is None:
            return forms
        served = {}
        for form_id, form in forms.items():
            try:
                self._register(form)
            except NigraanError as exc:
                previous = self._forms.get(form_id)
                kept = f"version {previous.version} stays served" if previous else "not served"
                log.error(  # noqa: TRY400 - the store's reason is the message, no traceback
                    "form %s (in %s) version %s refused by the store, %s: %s %s",
                    form_id,
                    self.build_dir,
                    form.version,
                    kept,
                    exc.message,
                    exc.hint or "",
                )
                if previous is not None:
                    served[form_id] = previous
                continue
            served[form_id] = form
        return served

    def _read(self) -> dict[str, PublishedForm]:
        index_path = self.build_dir / "index.json"
        if not index_path.is_file():
            return {}
        try:
            index = json.loads(index_path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise NigraanError(
                f"The form build index {index_path} cannot be read: {exc}.",
                hint="Run `nigraan forms build` again.",
            ) from exc
        forms = {}
        for form_id, entry in sorted(index.items()):
            xform_path = self.build_dir / entry.get("file", f"{form_id}.xml")
            if not xform_path.is_file():
                continue  # listed but not built here: nothing a tablet could download
            xform = xform_path.read_bytes()
            media = {}
            media_dir = self.build_dir / f"{form_id}-media"
            for item in entry.get("media", []):
                path = media_dir / item["file"]
                if path.is_file():
                    content = path.read_bytes()
                    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                    media[path.name] = MediaFile(
                        path.name,
                        content,
                        # OpenRosa's manifest hash is md5: a checksum, not for secrecy.
                        hashlib.md5(content).hexdigest(),  # noqa: S324
                        kind,
                    )
            forms[form_id] = PublishedForm(
                form_id=form_id,
                version=str(entry.get("version", "")),
                title=entry.get("title") or form_id,
                xform=xform,
                md5=hashlib.md5(xform).hexdigest(),  # noqa: S324 - protocol hash (OpenRosa md5 / Central ids / ODK encryption), not for secrecy
                encrypted=bool(entry.get("encrypted")),
                media=media,
                has_media=bool(entry.get("media")),
            )
        return forms
