"""What a data export of a form holds: its tables, their columns, and how values are spelled.

The shape is ODK Central's CSV export (`submissions.csv.zip?attachments=false`): one table per
form and one per repeat, columns named by their path inside the table with groups joined by `-`,
geopoints split into `-Latitude`, `-Longitude`, `-Altitude`, `-Accuracy`, `SubmissionDate` first
and Central's meta columns (`KEY`, `SubmitterID`, ... `FormVersion`) last; a repeat's rows end in
`PARENT_KEY` and `KEY` (`<root id>/detainee[1]/injury[2]`). Profiles leave fields out by their
sensitivity class (forms/README.md). Pure: a FormSchema and the store's column names in, the
shape out; rows in, cells out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nigraan.errors import NigraanError
from nigraan.xform import (
    CENTRAL_CSV_TRAILING_META,
    DATE,
    DATETIME,
    DECIMAL,
    GEOPOINT,
    GEOSHAPE,
    GEOTRACE,
    IDENTIFYING,
    IDENTITY_FORM,
    INSTANCE_ID,
    INTEGER,
    NOTE,
    PSEUDONYM,
    RESTRICTED,
    SELECT_MULTIPLE,
    SELECT_ONE,
    TIME,
)

FULL, FUNDER = "full", "funder"
# The sensitivity classes each profile leaves out. `identifying` is never exported: such fields
# live only in the encrypted identity register, which has no typed table to export from.
LEFT_OUT = {
    FULL: frozenset({IDENTIFYING}),
    FUNDER: frozenset({IDENTIFYING, RESTRICTED, PSEUDONYM}),
}
PROFILES = tuple(LEFT_OUT)
FORMATS = ("xlsx", "csv")
NAMES, LABELS = "names", "labels"
CHOICES = (NAMES, LABELS)
GEO_PARTS = ("latitude", "longitude", "altitude", "accuracy")
OFFSET_PART = "utc_offset"

# Central's meta columns (English and Urdu labels for the XLSX header rows and dictionary).
META_LABELS = {
    "SubmissionDate": ("Submission date", "جمع کرانے کی تاریخ"),
    "KEY": ("Key of the row", "قطار کی کلید"),
    "PARENT_KEY": ("Key of the parent row", "بالائی قطار کی کلید"),
    "SubmitterID": ("Submitter ID", "جمع کرانے والے کی شناخت"),
    "SubmitterName": ("Submitter", "جمع کرانے والا"),
    "AttachmentsPresent": ("Attachments present", "موجود منسلکات"),
    "AttachmentsExpected": ("Attachments expected", "متوقع منسلکات"),
    "Status": ("Status", "حالت"),
    "ReviewState": ("Review state", "جائزے کی حالت"),
    "DeviceID": ("Device ID", "آلے کی شناخت"),
    "Edits": ("Edits", "ترامیم"),
    "FormVersion": ("Form version", "فارم کا ورژن"),
}
TRAILING_META = CENTRAL_CSV_TRAILING_META
# Who sent a submission names a device account (a monitor's own name, as the programme sets
# them up) or a Central user: never in a funder's export.
FUNDER_LEFT_OUT_META = frozenset({"SubmitterID", "SubmitterName", "DeviceID"})


class ExportError(NigraanError):
    """A form cannot be exported as asked."""

    code = "export.invalid"
    status = 400


@dataclass(frozen=True)
class OutColumn:
    """One exported column: its header, and where its value comes from.

    `kind`: "field" (a stored column, `source`), "note" (always empty: Central lists notes),
    "instance" (the current instanceID), "meta" (Central's meta column `name`), "key",
    "parent_key".
    """

    name: str
    kind: str
    field: Any = None  # store.schema.Field for field, note and instance columns
    source: str | None = None  # the store's column name
    offset: str | None = None  # a dateTime's offset column
    part: str = ""  # a geopoint's part

    def labels(self) -> tuple[str, str]:
        """English and Urdu header labels."""
        if self.field is None or self.kind == "meta":
            return META_LABELS.get(self.name, (self.name, self.name))
        en = self.field.labels.get("en") or self.field.labels.get("default") or ""
        ur = self.field.labels.get("ur") or ""
        if self.kind == "instance" and not en:
            en, ur = "Instance ID", "اندراج کی شناخت"
        if self.part:
            en, ur = f"{en} ({self.part})", f"{ur} ({self.part})"
        return en, ur


@dataclass(frozen=True)
class ExportTable:
    repeat: str  # "" for the submissions, else the repeat's path
    name: str  # `<form>` or `<form>-<repeat name>` (Central's file names, without .csv)
    columns: tuple[OutColumn, ...]


def check_exportable(form_id: str, schema, profile: str, fmt: str) -> None:
    """Refuse what is never exported, or asked for wrongly."""
    if profile not in LEFT_OUT:
        raise ExportError(
            f"No export profile {profile!r}.", hint=f"Use one of: {', '.join(PROFILES)}."
        )
    if fmt not in FORMATS:
        raise ExportError(f"No export format {fmt!r}.", hint=f"Use one of: {', '.join(FORMATS)}.")
    if form_id == IDENTITY_FORM or schema is None or schema.raw_only:
        raise ExportError(
            f"Form '{form_id}' is never exported: it holds identities or is encrypted, and "
            "the store keeps no table of it.",
            hint="Export the survivor forms instead; they carry the survivor code only.",
        )


def build_shape(
    schema,
    columns: dict[tuple[str, str, str], str],
    profile: str,
    *,
    notes: bool,
    earlier: tuple = (),
) -> list[ExportTable]:
    """The tables of an export of `schema` (the form's latest version).

    `columns`: the store's {(repeat path, field path, part): column name}. `notes`: list note
    fields as empty columns, as Central's CSV does (the XLSX leaves them out). `earlier`: the
    form's other versions: a field left out by its class in any version is left out (as the
    submission page treats a field identifying in any version as identifying in all).
    """
    left_out = LEFT_OUT[profile]
    classes: dict[str, set[str]] = {}
    for version in (*earlier, schema):
        for f in version.fields:
            classes.setdefault(f.path, set()).add(f.sensitivity or "")
    tables = []
    for repeat in ("", *(r.path for r in schema.repeats)):
        out: list[OutColumn] = []
        if not repeat:
            out.append(OutColumn("SubmissionDate", "meta"))
        for f in schema.fields:
            if f.repeat != repeat or classes[f.path] & left_out:
                continue
            name = f.local_path.replace("/", "-")
            if f.kind == NOTE:
                if notes:
                    out.append(OutColumn(name, "note", f))
            elif f.kind == INSTANCE_ID:
                out.append(OutColumn(name, "instance", f))
            elif f.kind == GEOPOINT:
                for part in GEO_PARTS:
                    source = columns.get((repeat, f.path, part))
                    out.append(OutColumn(f"{name}-{part.title()}", "field", f, source, part=part))
            else:
                source = columns.get((repeat, f.path, ""))
                offset = columns.get((repeat, f.path, OFFSET_PART)) if f.kind == DATETIME else None
                out.append(OutColumn(name, "field" if source else "note", f, source, offset))
        if repeat:
            out += [OutColumn("PARENT_KEY", "parent_key"), OutColumn("KEY", "key")]
        else:
            out.append(OutColumn("KEY", "key"))
            out += [
                OutColumn(m, "meta")
                for m in TRAILING_META
                if not (profile == FUNDER and m in FUNDER_LEFT_OUT_META)
            ]
        name = schema.form_id if not repeat else f"{schema.form_id}-{repeat.rsplit('/', 1)[-1]}"
        tables.append(ExportTable(repeat, name, tuple(out)))
    return tables


def repeat_step(schema, repeat: str, parent: str) -> str:
    """The path step of a repeat inside its parent, groups included: `detainee` for
    `detainee` under the submission, `people/person` for a repeat inside group `people`."""
    return repeat[len(parent) + 1 :] if parent else repeat


def local_time(instant: datetime, offset_minutes: int | None) -> datetime:
    """The wall time as submitted (the store keeps the UTC instant and the offset apart)."""
    instant = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    if offset_minutes is None:
        return instant.astimezone(UTC)
    return instant.astimezone(UTC) + timedelta(minutes=offset_minutes)


def iso_as_submitted(instant: datetime, offset_minutes: int | None) -> str:
    """`2026-11-28T12:09:05.123+05:00`, as Collect sends it and Central's CSV repeats it."""
    wall = local_time(instant, offset_minutes)
    text = f"{wall:%Y-%m-%dT%H:%M:%S}.{wall.microsecond // 1000:03d}"
    if offset_minutes is None:
        return text + "Z"
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def submission_date(meta: dict[str, Any]) -> str:
    """Central's SubmissionDate (`2026-11-28T19:15:56.222Z`): as Central reported it, or when
    nigraan's own server received it."""
    if meta.get("central_submission_date"):
        return meta["central_submission_date"]
    received = meta.get("first_received_at")
    if received is None:
        return ""
    received = received.astimezone(UTC) if received.tzinfo else received
    return f"{received:%Y-%m-%dT%H:%M:%S}.{received.microsecond // 1000:03d}Z"


class ChoiceLabels:
    """Choice names to labels in one language (the name where a choice has no label)."""

    def __init__(self, schema, language: str):
        self.labels: dict[str, dict[str, str]] = {}
        for f in schema.fields:
            if f.kind in (SELECT_ONE, SELECT_MULTIPLE) and f.choices:
                self.labels[f.path] = {
                    c.name: c.labels.get(language)
                    or (c.labels.get("default") if language == "en" else None)
                    or c.name
                    for c in f.choices
                }

    def spell(self, f, value: str) -> str:
        names = self.labels.get(f.path)
        if not names:
            return value
        if f.kind == SELECT_MULTIPLE:
            return "; ".join(names.get(v, v) for v in value.split())
        return names.get(value, value)


def csv_text(column: OutColumn, row: dict[str, Any], labels: ChoiceLabels | None) -> str:
    """A field's value spelled as Central's CSV spells it."""
    value = row.get(column.source) if column.source else None
    if value is None:
        return ""
    f = column.field
    if f.kind == DATETIME and isinstance(value, datetime):
        return iso_as_submitted(value, row.get(column.offset) if column.offset else None)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "1" if value else "0"
    if labels is not None and f.kind in (SELECT_ONE, SELECT_MULTIPLE):
        return labels.spell(f, str(value))
    return str(value)


# A cell beginning with one of these is run as a formula by Excel and its kin (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@")


def formula_safe(value):
    """A text value a spreadsheet shows as text: one beginning like a formula gets a leading
    `'` (which the spreadsheet hides); anything else, numbers among them, as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


NOT_TEXT = (INTEGER, DECIMAL, DATE, DATETIME, TIME, GEOPOINT, GEOTRACE, GEOSHAPE)


def holds_text(column: OutColumn) -> bool:
    """Whether a column's CSV cells are text: not numbers, dates, times or coordinates (whose
    leading `-` is a sign)."""
    return not column.part and (column.field is None or column.field.kind not in NOT_TEXT)


def cell_value(column: OutColumn, row: dict[str, Any], labels: ChoiceLabels | None):
    """A field's value for a spreadsheet cell: numbers, dates and times as such."""
    value = row.get(column.source) if column.source else None
    if value is None:
        return None
    f = column.field
    if f.kind == DATETIME and isinstance(value, datetime):
        return local_time(value, row.get(column.offset) if column.offset else None).replace(
            tzinfo=None
        )
    if f.kind in (INTEGER, DECIMAL, DATE) or column.part:
        return value
    if labels is not None and f.kind in (SELECT_ONE, SELECT_MULTIPLE):
        return labels.spell(f, str(value))
    return value if isinstance(value, int | float) else str(value)


def choices_text(f) -> str:
    """A field's choices for the data dictionary: `name = English / Urdu; ...`."""
    parts = []
    for c in f.choices:
        en = c.labels.get("en") or c.labels.get("default") or ""
        ur = c.labels.get("ur") or ""
        parts.append(f"{c.name} = {en} / {ur}" if ur else f"{c.name} = {en}")
    return "; ".join(parts)
