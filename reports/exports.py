"""Data exports of one form: an XLSX workbook or a CSV zip in ODK Central's shape, by profile.

`export_form` reads the store page by page (store/export_rows.py), turns each page into the
rows of every exported table (keys, meta columns, values spelled for the format) and hands
them to the writer (export_xlsx.py, export_csv.py), which streams them to the file: memory
stays bounded by one page however many submissions the form has.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from nigraan.xform import SURVIVOR_FORMS
from reports import export_shape as sh
from reports.export_shape import ExportError, ExportTable

__all__ = ["ExportError", "ExportResult", "export_form", "exportable_forms"]

CONSENT, CODE, REGISTRATION = "consent_reporting", "survivor_code", "survivor_registration"


@dataclass(frozen=True)
class ExportResult:
    form_id: str
    fmt: str
    profile: str
    submissions: int
    rows: dict[str, int]  # per table name

    @property
    def file_name(self) -> str:
        """Central's download name: `<form>.csv.zip`; `<form>.xlsx`."""
        suffix = ".csv.zip" if self.fmt == "csv" else ".xlsx"
        if self.profile == sh.FUNDER:
            return f"{self.form_id}-funder{suffix}"
        return f"{self.form_id}{suffix}"


def exportable_forms(store) -> list[str]:
    """The forms that have typed tables (never the identity register or an encrypted form)."""
    return sorted(
        form_id
        for form_id, schemas in ((f, store.form_schemas(f)) for f in store.export_form_ids())
        if schemas and not list(schemas.values())[-1].raw_only and form_id != sh.IDENTITY_FORM
    )


def latest_schema(store, form_id: str):
    schemas = store.form_schemas(form_id)
    return list(schemas.values())[-1] if schemas else None


def export_form(
    store,
    form_id: str,
    out: BinaryIO,
    *,
    fmt: str,
    profile: str = sh.FULL,
    choices: str = sh.NAMES,
    language: str = "en",
    support_unit: str | None = None,
    page_size: int | None = None,
) -> ExportResult:
    """Write the export of `form_id` to `out` (a binary file open for writing; seekable for
    XLSX). `support_unit`: only the submissions of that unit (a caseworker's export)."""
    schema = latest_schema(store, form_id) if form_id in store.export_form_ids() else None
    sh.check_exportable(form_id, schema, profile, fmt)
    if choices not in sh.CHOICES:
        raise ExportError(
            f"No choice spelling {choices!r}.", hint=f"Use one of: {', '.join(sh.CHOICES)}."
        )
    earlier = tuple(store.form_schemas(form_id).values())[:-1]
    shape = sh.build_shape(
        schema, store.export_columns(form_id), profile, notes=fmt == "csv", earlier=earlier
    )
    labels = sh.ChoiceLabels(schema, language) if choices == sh.LABELS else None
    consent = _consent(store, schema) if profile == sh.FUNDER else None
    pages = store.export_pages(
        form_id, support_unit=support_unit, consent=consent, page_size=page_size
    )
    tables = _table_rows(schema, shape, pages, labels, text=fmt == "csv")
    if fmt == "csv":
        from reports.export_csv import write_csv_zip

        counts = write_csv_zip(out, shape, tables)
    else:
        from reports.export_xlsx import write_workbook

        catalogue = store.field_catalogue(form_id)
        counts = write_workbook(out, schema, shape, tables, catalogue, profile)
    return ExportResult(form_id, fmt, profile, counts.get(shape[0].name, 0), counts)


def _consent(store, schema):
    """A funder's export of a survivor form holds only the records that may enter a statistic
    (README, Programme indicators: Consent): the form's own `consent_reporting = yes`, or else
    the latest registration of her survivor code saying so. None for other forms."""
    from store.export_rows import ConsentFilter

    if schema.form_id not in SURVIVOR_FORMS:
        return None
    columns = store.export_columns(schema.form_id)

    def column(s, columns, name):
        found = [f for f in s.fields if f.repeat == "" and f.name == name]
        return columns.get(("", found[0].path, "")) if found else None

    own = column(schema, columns, CONSENT)
    if own:
        return ConsentFilter(own=own)
    registration = latest_schema(store, REGISTRATION)
    code = column(schema, columns, CODE)
    if registration is None or code is None:
        return ConsentFilter()  # no way to tell: nothing leaves
    reg_columns = store.export_columns(REGISTRATION)
    return ConsentFilter(
        code=code,
        registration=store.form_table(REGISTRATION),
        registration_code=column(registration, reg_columns, CODE) or "",
        registration_consent=column(registration, reg_columns, CONSENT) or "",
    )


def _table_rows(
    schema, shape: list[ExportTable], pages, labels, *, text: bool
) -> Iterator[tuple[int, list[list[Any]]]]:
    """(table index, rows) per table per page, in each table's order."""
    parents = {r.path: r.parent for r in schema.repeats}
    cell = sh.csv_text if text else sh.cell_value
    for page in pages:
        keys: dict[str, str] = {}
        place: dict[str, tuple] = {}  # row id -> its position in document order
        for row in page.submissions:
            keys[row["__id"]] = row["__id"]
            place[row["__id"]] = (page.order[row["__id"]],)
        for index, table in enumerate(shape):
            if not table.repeat:
                found = page.submissions
            else:
                parent = parents[table.repeat]
                step = sh.repeat_step(schema, table.repeat, parent)
                found = []
                for row in page.repeats.get(table.repeat, []):
                    parent_key = keys.get(row["__parent_id"])
                    if parent_key is None:
                        continue  # its parent row is not exported (a deleted submission)
                    row["__parent_key"] = parent_key
                    keys[row["__id"]] = f"{parent_key}/{step}[{row['__position']}]"
                    place[row["__id"]] = (*place[row["__parent_id"]], row["__position"])
                    found.append(row)
                found.sort(key=lambda r: place[r["__id"]])
            rows = [_cells(table, row, keys, page.attachments, cell, labels, text) for row in found]
            yield index, rows


def _cells(table, row, keys, attachments, cell, labels, text: bool) -> list[Any]:
    out = []
    meta = None
    for column in table.columns:
        kind = column.kind
        if kind == "field":
            out.append(cell(column, row, labels))
        elif kind == "key":
            out.append(keys[row["__id"]])
        elif kind == "parent_key":
            out.append(row["__parent_key"])
        elif kind == "instance":
            out.append(row.get("__instance_id") or "")
        elif kind == "meta":
            if meta is None:
                meta = {k[len("__meta_") :]: v for k, v in row.items() if k.startswith("__meta_")}
            out.append(_meta(column.name, meta, row, attachments, text))
        else:  # a note: always empty
            out.append("" if text else None)
    return out


def _meta(name: str, meta: dict[str, Any], row: dict[str, Any], attachments, text: bool):
    if name == "SubmissionDate":
        return sh.submission_date(meta)
    if name in ("AttachmentsPresent", "AttachmentsExpected"):
        present, expected = attachments.get(row["__instance_id"], (0, 0))
        value = present if name == "AttachmentsPresent" else expected
        return str(value) if text else value
    value = {
        "SubmitterID": meta.get("submitter_id"),
        "SubmitterName": meta.get("submitter_name"),
        "Status": meta.get("status"),
        "ReviewState": meta.get("review_state"),
        "DeviceID": meta.get("device_id"),
        "Edits": meta.get("edits") or 0,
        "FormVersion": meta.get("form_version") or row.get("__form_version"),
    }[name]
    if text:
        return "" if value is None else str(value)
    return value
