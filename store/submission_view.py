"""What a submission's page shows: its data under the form's labels, files, edits and reviews.

`build_submission_view` is pure: the form's schemas, the stored versions, the current version's
attachments, the review decisions and the viewer's rights in; plain frozen dataclasses a
template renders out. `read_submission_view` gathers those from a Store.

What the page may show is decided here, once: `identifying` fields never appear (whatever the
role, in any version, in the history too); `restricted` ones only when `may_see_restricted`;
an encrypted submission, a submission of the identity register, or one of a form that was never
registered shows no data at all, only a note saying why.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from store.document import SubmissionDocument, SubmissionError, from_odata, from_openrosa_xml
from store.review_outbox import REVIEW_STATES
from store.schema import (
    ATTACHMENT,
    DEPRECATED_ID,
    IDENTIFYING,
    INSTANCE_ID,
    NOTE,
    RESTRICTED,
    SELECT_MULTIPLE,
    SELECT_ONE,
    Field,
    FormSchema,
)

if TYPE_CHECKING:
    from store.store import Store

IDENTITY_REGISTER = "identity_register"
LANGUAGES = ("en", "ur")
# The endpoint the page links a file to, with form_id, instance_id and name as its arguments.
ATTACHMENT_ENDPOINT = "submissions.attachment"
MISSING_TRANSLATION = "-"
NOT_SHOWN = (NOTE, INSTANCE_ID, DEPRECATED_ID)

# Central's review states, as central-frontend names them, in both languages.
STATE_LABELS = {
    "received": {"en": "Received", "ur": "موصول"},
    "hasIssues": {"en": "Has issues", "ur": "مسائل ہیں"},
    "edited": {"en": "Edited", "ur": "ترمیم شدہ"},
    "approved": {"en": "Approved", "ur": "منظور"},
    "rejected": {"en": "Rejected", "ur": "مسترد"},
}

NOTES = {
    "encrypted": {
        "en": "This submission is encrypted; its data can only be read with the form's "
        "private key, outside this app.",
        "ur": "یہ اندراج خفیہ (encrypted) ہے؛ اس کا مواد صرف فارم کی نجی کلید سے، اس ایپ سے "
        "باہر، پڑھا جا سکتا ہے۔",
    },
    "identity_register": {
        "en": "This is a record of the identity register; its data is not shown here.",
        "ur": "یہ شناختی رجسٹر کا ریکارڈ ہے؛ اس کا مواد یہاں نہیں دکھایا جاتا۔",
    },
    "unknown_form": {
        "en": "The form of this submission is not registered, so its data cannot be shown. "
        "Register the form (nigraan store register) and open the page again.",
        "ur": "اس اندراج کا فارم رجسٹر نہیں ہے، اس لیے مواد نہیں دکھایا جا سکتا۔ فارم رجسٹر کریں "
        "(nigraan store register) اور صفحہ دوبارہ کھولیں۔",
    },
    "unreadable": {
        "en": "This version could not be read.",
        "ur": "یہ ورژن پڑھا نہیں جا سکا۔",
    },
}


def label_in(labels: Mapping[str, str], lang: str, fallback: str = "") -> str:
    """The label in `lang`, else in the other of English/Urdu, else the form's default.

    pyxform writes "-" for a translation the XLSForm leaves empty: that counts as missing."""
    other = [x for x in LANGUAGES if x != lang]
    for key in (lang, *other, "default"):
        if labels.get(key) not in (None, "", MISSING_TRANSLATION):
            return labels[key]
    return next((v for v in labels.values() if v not in ("", MISSING_TRANSLATION)), fallback)


# ------------------------------------------------------------------ the view


@dataclass(frozen=True)
class AttachmentView:
    form_id: str
    instance_id: str
    name: str
    content_type: str | None
    size: int | None
    arrived: bool
    is_image: bool
    endpoint: str  # the download route's name, for url_for(endpoint, **url_args)

    @property
    def url_args(self) -> dict[str, str]:
        return {"form_id": self.form_id, "instance_id": self.instance_id, "name": self.name}


@dataclass(frozen=True)
class FieldView:
    item_type: ClassVar[str] = "field"
    path: str
    name: str
    label: str
    kind: str
    value: str | None  # as shown: a choice's label, the selected labels joined, the file name
    values: tuple[str, ...] = ()  # select_multiple: each selected choice's label
    restricted: bool = False
    attachment: AttachmentView | None = None


@dataclass(frozen=True)
class RepeatView:
    """A repeat as a table: a column per field (through groups), a row per instance."""

    item_type: ClassVar[str] = "repeat"
    path: str
    label: str
    columns: tuple[str, ...]
    rows: tuple[tuple[FieldView | RepeatView | None, ...], ...]


@dataclass(frozen=True)
class SectionView:
    """A group, holding fields, nested groups and repeats in the form's order."""

    item_type: ClassVar[str] = "group"
    path: str
    label: str
    items: tuple[FieldView | SectionView | RepeatView, ...]


@dataclass(frozen=True)
class ChangeView:
    label: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class VersionView:
    number: int  # 1 = as first submitted
    instance_id: str | None
    received_at: Any
    source: str
    submitter_name: str | None
    device_id: str | None
    current: bool
    changes: tuple[ChangeView, ...]  # what this version changed from the one before it
    note: str | None = None


@dataclass(frozen=True)
class ReviewView:
    at: Any
    state: str | None
    state_label: str | None
    comment: str | None
    status: str  # local | sent | waiting | failed


@dataclass(frozen=True)
class DecisionView:
    current: str
    current_label: str
    choices: tuple[tuple[str, str], ...]  # (state, label): approved, hasIssues, rejected
    to_central: bool  # a decision goes on to Central (the submission came from there)


@dataclass(frozen=True)
class SubmissionView:
    form_id: str
    form_title: str
    form_version: str | None
    root_id: str
    instance_id: str
    source: str
    received_at: Any
    updated_at: Any
    submitter: str | None
    device_id: str | None
    lang: str
    note: str | None  # why no data is shown, when none is
    items: tuple[FieldView | SectionView | RepeatView, ...]
    downloads: tuple[AttachmentView, ...]  # files of shown fields that are not images
    photos: tuple[AttachmentView, ...]  # images of shown fields (also inline in their field)
    hidden_restricted: int  # restricted fields left out for this viewer
    versions: tuple[VersionView, ...]
    reviews: tuple[ReviewView, ...]
    decision: DecisionView


# ---------------------------------------------------------------- building


class _Context:
    def __init__(
        self,
        schemas: Mapping[str, FormSchema],
        lang: str,
        may_see_restricted: bool,
        files: Mapping[str, AttachmentView],
    ):
        self.lang = lang
        self.files = files
        identifying = {
            f.path for s in schemas.values() for f in s.fields if f.sensitivity == IDENTIFYING
        }
        restricted = {
            f.path for s in schemas.values() for f in s.fields if f.sensitivity == RESTRICTED
        }
        self.restricted = restricted
        # A field that is identifying (or restricted) in any version is treated so in all.
        self.hidden = identifying | (set() if may_see_restricted else restricted)

    def shown(self, f: Field) -> bool:
        return f.kind not in NOT_SHOWN and f.path not in self.hidden


def _tree(schema: FormSchema) -> dict[str, list]:
    """{container path ("" = the submission): its children in form order}; a child is a Field
    or the path of a group or repeat."""
    children: dict[str, list] = {"": []}
    containers = schema.groups | schema.repeat_paths
    for f in schema.fields:
        parts = f.path.split("/")
        for i in range(1, len(parts)):
            parent, path = "/".join(parts[: i - 1]), "/".join(parts[:i])
            if path in containers and path not in children:
                children[path] = []
                children.setdefault(parent, []).append(path)
        children.setdefault("/".join(parts[:-1]), []).append(f)
    return children


def _display(f: Field, raw: Any, lang: str) -> tuple[str | None, tuple[str, ...]]:
    if raw is None or raw == "":
        return None, ()
    text = raw if isinstance(raw, str) else str(raw)
    if f.kind in (SELECT_ONE, SELECT_MULTIPLE):
        by_name = {c.name: c for c in f.choices}
        names = text.split() if f.kind == SELECT_MULTIPLE else [text]
        labels = tuple(label_in(by_name[n].labels, lang, n) if n in by_name else n for n in names)
        if f.kind == SELECT_MULTIPLE:
            return ", ".join(labels), labels
        return labels[0], ()
    return text, ()


def _field_view(f: Field, data: Mapping, ctx: _Context) -> FieldView:
    value, values = _display(f, data.get(f.name), ctx.lang)
    attachment = ctx.files.get(value) if f.kind == ATTACHMENT and value else None
    return FieldView(
        f.path,
        f.name,
        label_in(f.labels, ctx.lang, f.name),
        f.kind,
        value,
        values,
        f.path in ctx.restricted,
        attachment,
    )


def _container_label(schema: FormSchema, path: str, lang: str) -> str:
    name = path.rsplit("/", 1)[-1]
    repeat = next((r for r in schema.repeats if r.path == path), None)
    labels = repeat.labels if repeat else schema.group_labels.get(path, {})
    return label_in(labels, lang, name)


def _items(schema, tree, path: str, data: Any, ctx: _Context) -> tuple:
    data = data if isinstance(data, Mapping) else {}
    out: list = []
    for child in tree.get(path, []):
        if isinstance(child, Field):
            if ctx.shown(child):
                out.append(_field_view(child, data, ctx))
            continue
        name = child.rsplit("/", 1)[-1]
        if child in schema.repeat_paths:
            table = _repeat(schema, tree, child, data.get(name), ctx)
            if table.columns:
                out.append(table)
        else:
            items = _items(schema, tree, child, data.get(name), ctx)
            if items:
                out.append(SectionView(child, _container_label(schema, child, ctx.lang), items))
    return tuple(out)


def _columns(schema, tree, path: str, ctx: _Context) -> list[tuple[str, Any]]:
    """A repeat's columns: (label, Field or nested repeat path), groups flattened in."""
    out: list[tuple[str, Any]] = []
    for child in tree.get(path, []):
        if isinstance(child, Field):
            if ctx.shown(child):
                out.append((label_in(child.labels, ctx.lang, child.name), child))
        elif child in schema.repeat_paths:
            if _columns(schema, tree, child, ctx):
                out.append((_container_label(schema, child, ctx.lang), child))
        else:
            group = _container_label(schema, child, ctx.lang)
            out += [(f"{group} › {label}", c) for label, c in _columns(schema, tree, child, ctx)]
    return out


def _lookup(data: Any, relative: list[str]) -> Any:
    for part in relative:
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def _repeat(schema, tree, path: str, instances: Any, ctx: _Context) -> RepeatView:
    columns = _columns(schema, tree, path, ctx)
    rows = []
    for instance in instances if isinstance(instances, list) else []:
        cells: list = []
        for _, column in columns:
            if isinstance(column, Field):
                holder = _lookup(instance, column.path[len(path) + 1 :].split("/")[:-1])
                cells.append(
                    _field_view(column, holder if isinstance(holder, Mapping) else {}, ctx)
                )
            else:
                nested = _lookup(instance, column[len(path) + 1 :].split("/"))
                cells.append(_repeat(schema, tree, column, nested, ctx))
        rows.append(tuple(cells))
    label = _container_label(schema, path, ctx.lang)
    return RepeatView(path, label, tuple(c[0] for c in columns), tuple(rows))


def _flatten(items, key: str = "", label: str = "") -> Iterator[tuple[str, str, str | None]]:
    """(key, label, value) of every shown field, repeats by position, for comparing versions.
    The key is made of paths and positions only, so a relabelled form compares the same."""
    for item in items:
        if isinstance(item, FieldView):
            yield f"{key}{item.path}", f"{label}{item.label}", item.value
        elif isinstance(item, SectionView):
            yield from _flatten(item.items, key, f"{label}{item.label} › ")
        else:
            for n, row in enumerate(item.rows, 1):
                row_key, row_label = f"{key}{item.path}[{n}]/", f"{label}{item.label} {n} › "
                for column, cell in zip(item.columns, row, strict=True):
                    if isinstance(cell, FieldView):
                        yield f"{row_key}{cell.path}", f"{row_label}{column}", cell.value
                    elif cell is not None:
                        yield from _flatten([cell], row_key, row_label)


def _document(version: Mapping, schema: FormSchema) -> SubmissionDocument:
    payload = bytes(version["payload"])
    if version["payload_kind"] == "json":
        doc = from_odata(orjson.loads(payload), version["form_id"])
        doc.data = doc.lexical()
        doc.conform_repeats(schema.repeat_paths)
        return doc
    return from_openrosa_xml(payload, schema.repeat_paths)


def _changes(old: dict, new: dict) -> tuple[ChangeView, ...]:
    changes = [
        ChangeView(label, old[key][1] if key in old else None, value)
        for key, (label, value) in new.items()
        if (old[key][1] if key in old else None) != value
    ]
    changes += [
        ChangeView(label, value, None)
        for key, (label, value) in old.items()
        if key not in new and value is not None
    ]
    return tuple(changes)


def _review_view(entry: Mapping, lang: str) -> ReviewView:
    state = entry.get("review_state")
    if entry.get("done_at") is not None:
        status = "local" if entry.get("last_error") == "not from Central" else "sent"
    else:
        status = "failed" if entry.get("last_error") else "waiting"
    label = STATE_LABELS.get(state, {}).get(lang, state) if state else None
    return ReviewView(entry.get("created_at"), state, label, entry.get("comment"), status)


def _attachment_views(
    form_id: str, instance_id: str, attachments: Sequence[Mapping], endpoint: str
) -> dict[str, AttachmentView]:
    out = {}
    for a in attachments:
        kind = a.get("content_type") or mimetypes.guess_type(a["name"])[0] or ""
        out[a["name"]] = AttachmentView(
            form_id,
            instance_id,
            a["name"],
            a.get("content_type"),
            a.get("size"),
            bool(a.get("exists", a.get("sha256"))),
            kind.startswith("image/"),
            endpoint,
        )
    return out


def _files_of(items) -> Iterator[AttachmentView]:
    for item in items:
        if isinstance(item, FieldView):
            if item.attachment is not None:
                yield item.attachment
        elif isinstance(item, SectionView):
            yield from _files_of(item.items)
        else:
            for row in item.rows:
                yield from _files_of(c for c in row if c is not None)


def build_submission_view(
    *,
    submission: Mapping[str, Any],
    schemas: Mapping[str, FormSchema],
    versions: Sequence[Mapping[str, Any]],
    attachments: Sequence[Mapping[str, Any]],
    reviews: Sequence[Mapping[str, Any]],
    lang: str = "en",
    may_see_restricted: bool = False,
    attachment_endpoint: str = ATTACHMENT_ENDPOINT,
) -> SubmissionView:
    """What the page shows of `submission` (a `submissions` row) to this viewer, in `lang`.

    `schemas`: {version: FormSchema} of the form, latest last; `versions`: its stored versions,
    oldest first (Store.versions); `attachments`: the current version's files
    (Store.attachments); `reviews`: the decisions made here (Store.reviews).
    """
    lang = lang if lang in LANGUAGES else LANGUAGES[0]
    form_id, instance_id = submission["form_id"], submission["current_instance_id"]
    latest = list(schemas.values())[-1] if schemas else None
    schema = schemas.get(submission.get("form_version") or "") or latest
    note = None
    if submission.get("encrypted") or (schema is not None and schema.encrypted):
        note = "encrypted"
    elif form_id == IDENTITY_REGISTER:
        note = "identity_register"
    elif schema is None:
        note = "unknown_form"
    files = _attachment_views(form_id, instance_id, attachments, attachment_endpoint)
    ctx = _Context(schemas, lang, may_see_restricted, files)

    items: tuple = ()
    history: list[VersionView] = []
    if note is None:
        previous: dict | None = None
        for n, version in enumerate(versions, 1):
            version_schema = schemas.get(version.get("form_version") or "") or schema
            version_note, flat = None, {}
            try:
                doc = _document(version, version_schema)
                tree = _tree(version_schema)
                version_items = _items(version_schema, tree, "", doc.data, ctx)
                flat = {key: (label, value) for key, label, value in _flatten(version_items)}
                if version["current"]:
                    items = (
                        version_items
                        if version_schema is schema
                        else _items(schema, _tree(schema), "", doc.data, ctx)
                    )
            except SubmissionError:
                version_note = NOTES["unreadable"][lang]
            history.append(
                VersionView(
                    n,
                    version.get("instance_id"),
                    version.get("received_at"),
                    version["source"],
                    version.get("submitter_name"),
                    version.get("device_id"),
                    bool(version["current"]),
                    _changes(previous, flat) if previous is not None else (),
                    version_note,
                )
            )
            previous = flat if version_note is None else previous
    else:
        history = [
            VersionView(
                n,
                v.get("instance_id"),
                v.get("received_at"),
                v["source"],
                v.get("submitter_name"),
                v.get("device_id"),
                bool(v["current"]),
                (),
            )
            for n, v in enumerate(versions, 1)
        ]

    shown_files = list(dict.fromkeys(_files_of(items)))
    hidden = 0
    if note is None and not may_see_restricted:
        hidden = sum(
            1 for f in schema.fields if f.path in ctx.restricted and f.kind not in NOT_SHOWN
        )
    state = submission.get("review_state") or ("edited" if submission.get("edits") else "received")
    decision = DecisionView(
        state,
        STATE_LABELS.get(state, {}).get(lang, state),
        tuple((s, STATE_LABELS[s][lang]) for s in REVIEW_STATES),
        submission.get("central_submission_date") is not None,
    )
    return SubmissionView(
        form_id=form_id,
        form_title=schema.title if schema is not None else form_id,
        form_version=submission.get("form_version"),
        root_id=submission["root_id"],
        instance_id=instance_id,
        source=submission["source"],
        received_at=submission.get("first_received_at"),
        updated_at=submission.get("updated_at"),
        submitter=submission.get("submitter_name"),
        device_id=submission.get("device_id"),
        lang=lang,
        note=NOTES[note][lang] if note else None,
        items=items,
        downloads=tuple(a for a in shown_files if not a.is_image),
        photos=tuple(a for a in shown_files if a.is_image),
        hidden_restricted=hidden,
        versions=tuple(history),
        reviews=tuple(_review_view(r, lang) for r in reviews),
        decision=decision,
    )


def read_submission_view(
    store: Store,
    form_id: str,
    root_id: str,
    *,
    lang: str = "en",
    may_see_restricted: bool = False,
    attachment_endpoint: str = ATTACHMENT_ENDPOINT,
) -> SubmissionView | None:
    """The page of a stored submission for this viewer; None when no such submission is stored."""
    submission = store.submission(form_id, root_id)
    if submission is None:
        return None
    return build_submission_view(
        submission=submission,
        schemas=store.form_schemas(form_id),
        versions=store.versions(form_id, root_id),
        attachments=store.attachments(form_id, submission["current_instance_id"]),
        reviews=store.reviews(form_id, root_id),
        lang=lang,
        may_see_restricted=may_see_restricted,
        attachment_endpoint=attachment_endpoint,
    )
