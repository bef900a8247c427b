"""Which tables and typed columns a form gets, and how they change when the form changes.

A form gets one table for the submission and one per repeat. Each field becomes one or more
columns (a geopoint four, a select_multiple one plus one 0/1 column per choice, a dateTime its
UTC instant plus its offset). Names are SQL-safe, at most 63 characters (PostgreSQL's limit),
and stable: once a (field, part) has a column it keeps it in every later version, so the
mapping is recorded and handed back in. Pure: no SQL here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from nigraan.errors import FormError
from store import schema as s

MAX_NAME = 63  # bytes: PostgreSQL's identifier limit (SQLite has none); names here are ASCII
# Columns in one table: PostgreSQL allows 1,600 (SQLite 2,000 by default). A form whose
# submission (or one repeat) needs more is refused rather than half-created.
MAX_COLUMNS = 1600
# Bytes a PostgreSQL row may take (MaxHeapTupleSize, 8 kB pages). Text is moved out of the row
# when it is long, but fixed-width values are not: a table whose numbers, dates and times filled
# in together take more than this refuses every full submission ("row is too big"), so such a
# form is refused at registration instead. Left some room for the row header and null bitmap.
MAX_FIXED_ROW_BYTES = 8000
# Columns nigraan adds to every form table; field columns never take these names.
SYSTEM_COLUMNS = ("__id", "__instance_id", "__form_version")
REPEAT_SYSTEM_COLUMNS = ("__id", "__submission_id", "__parent_id", "__position")
# Storage classes. A column's class only widens (integer -> decimal -> text, anything -> text).
INTEGER, DECIMAL, DATE, INSTANT, TEXT, FLAG = (
    "integer",
    "decimal",
    "date",
    "instant",
    "text",
    "flag",
)
GEO_PARTS = ("latitude", "longitude", "altitude", "accuracy")
OFFSET_PART = "utc_offset"
CHOICE_PREFIX = "choice:"
# A select_multiple with more choices than this keeps only its text column (no 0/1 columns).
MAX_CHOICE_COLUMNS = 200

KIND_STORAGE = {  # field kind -> storage class of its value column
    s.INTEGER: INTEGER,
    s.DECIMAL: DECIMAL,
    s.DATE: DATE,
    s.DATETIME: INSTANT,
}


def widen(old: str, new: str) -> str:
    if old == new:
        return old
    if {old, new} <= {INTEGER, DECIMAL}:
        return DECIMAL
    return TEXT


@dataclass(frozen=True)
class ColumnSpec:
    """A column a field needs: `part` is "" for the value itself, else which piece of it."""

    repeat: str
    path: str
    part: str
    storage: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.part)


def field_columns(f: s.Field) -> list[ColumnSpec]:
    """The columns one field needs in its table (none for notes and instance ids)."""
    if f.kind in (s.NOTE, s.INSTANCE_ID, s.DEPRECATED_ID):
        return []
    if f.kind == s.GEOPOINT:
        return [ColumnSpec(f.repeat, f.path, part, DECIMAL) for part in GEO_PARTS]
    if f.kind == s.DATETIME:
        return [
            ColumnSpec(f.repeat, f.path, "", INSTANT),
            ColumnSpec(f.repeat, f.path, OFFSET_PART, INTEGER),
        ]
    columns = [ColumnSpec(f.repeat, f.path, "", KIND_STORAGE.get(f.kind, TEXT))]
    if f.kind == s.SELECT_MULTIPLE and len(f.choices) <= MAX_CHOICE_COLUMNS:
        columns += [ColumnSpec(f.repeat, f.path, CHOICE_PREFIX + c.name, FLAG) for c in f.choices]
    return columns


def sql_name(text: str, taken: set[str]) -> str:
    """A lowercase [a-z0-9_] name of at most 63 characters not in `taken`."""
    name = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "field"
    if name[0].isdigit():
        name = "f_" + name
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]  # noqa: S324 - protocol hash (OpenRosa md5 / Central ids / ODK encryption), not for secrecy
        name = f"{name[: MAX_NAME - 9]}_{digest}"
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = name[: MAX_NAME - len(suffix)] + suffix
    return candidate


def bounded_name(text: str) -> str:
    """`text` if it fits in 63 characters, else its start and a digest of the whole: distinct
    texts stay distinct after shortening (index names, which PostgreSQL would cut silently)."""
    if len(text) <= MAX_NAME:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]  # noqa: S324 - protocol hash (OpenRosa md5 / Central ids / ODK encryption), not for secrecy
    return f"{text[: MAX_NAME - 9]}_{digest}"


def index_name(table: str) -> str:
    """The name of the index on a repeat table's __submission_id."""
    return bounded_name(f"ix_{table}_sub")


def _column_hint(spec: ColumnSpec) -> str:
    local = spec.path[len(spec.repeat) + 1 :] if spec.repeat else spec.path
    base = local.replace("/", "_")
    if spec.part.startswith(CHOICE_PREFIX):
        return f"{base}_{spec.part[len(CHOICE_PREFIX) :]}"
    return f"{base}_{spec.part}" if spec.part else base


@dataclass
class Column:
    table: str
    name: str
    repeat: str
    path: str
    part: str
    storage: str


@dataclass
class FormLayout:
    """Tables and columns of one form, across all its versions."""

    form_id: str
    tables: dict[str, str] = field(default_factory=dict)  # repeat path ("" = submission) -> name
    parents: dict[str, str] = field(default_factory=dict)  # repeat path -> parent repeat path
    columns: dict[tuple[str, str, str], Column] = field(
        default_factory=dict
    )  # (repeat, path, part)

    def table_columns(self, repeat: str) -> list[Column]:
        return [c for c in self.columns.values() if c.repeat == repeat]


@dataclass
class LayoutChange:
    layout: FormLayout
    new_tables: list[str]
    new_columns: list[Column]
    widened: list[Column]  # columns whose storage class widened: their table is re-derived


def table_name(form_id: str, repeat: str, taken: set[str]) -> str:
    base = f"form_{form_id}" if not repeat else f"form_{form_id}__{repeat.replace('/', '_')}"
    return sql_name(base, taken)


def plan_layout(
    schema: s.FormSchema, current: FormLayout | None, taken_tables: set[str]
) -> LayoutChange:
    """Extend `current` (or start) so that every field of `schema` has its columns."""
    layout = current or FormLayout(schema.form_id)
    new_tables: list[str] = []
    new_columns: list[Column] = []
    widened: list[Column] = []
    taken = set(taken_tables) | set(layout.tables.values())
    for repeat in [""] + [r.path for r in schema.repeats]:
        if repeat not in layout.tables:
            name = table_name(schema.form_id, repeat, taken)
            taken.add(name)
            layout.tables[repeat] = name
            new_tables.append(name)
    for r in schema.repeats:
        layout.parents[r.path] = r.parent
    names: dict[str, set[str]] = {}
    for column in layout.columns.values():
        names.setdefault(column.table, set()).add(column.name)
    for f in schema.fields:
        for spec in field_columns(f):
            key = (spec.repeat, spec.path, spec.part)
            existing = layout.columns.get(key)
            if existing is not None:
                storage = widen(existing.storage, spec.storage)
                if storage != existing.storage:
                    existing.storage = storage
                    widened.append(existing)
                continue
            table = layout.tables[spec.repeat]
            reserved = set(REPEAT_SYSTEM_COLUMNS if spec.repeat else SYSTEM_COLUMNS)
            used = names.setdefault(table, set())
            name = sql_name(_column_hint(spec), used | reserved)
            used.add(name)
            column = Column(table, name, spec.repeat, spec.path, spec.part, spec.storage)
            layout.columns[key] = column
            new_columns.append(column)
    _check_width(schema, layout)
    return LayoutChange(layout, new_tables, new_columns, widened)


# Bytes a filled value of each storage class takes in a PostgreSQL row (text: its 1-byte header
# at the least, as long text is moved out).
FIXED_BYTES = {INTEGER: 8, DECIMAL: 8, INSTANT: 8, DATE: 4, FLAG: 2, TEXT: 1}


def _check_width(schema: s.FormSchema, layout: FormLayout) -> None:
    for repeat, table in layout.tables.items():
        system = REPEAT_SYSTEM_COLUMNS if repeat else SYSTEM_COLUMNS
        columns = layout.table_columns(repeat)
        width = len(system) + len(columns)
        fixed = sum(FIXED_BYTES[c.storage] for c in columns)
        if fixed > MAX_FIXED_ROW_BYTES:
            where = f"repeat '{repeat}'" if repeat else "its submission table"
            raise FormError(
                f"Form '{schema.form_id}' version '{schema.version}' has so many number, date "
                f"and time questions in {where} ({table}) that a filled-in submission takes "
                f"{fixed} bytes, more than the {MAX_FIXED_ROW_BYTES} a PostgreSQL row holds. "
                "The form was not registered.",
                hint="Move some questions into a repeat (each repeat gets its own table), or "
                "split the form in two.",
            )
        if width > MAX_COLUMNS:
            where = f"repeat '{repeat}'" if repeat else "its submission table"
            raise FormError(
                f"Form '{schema.form_id}' version '{schema.version}' needs {width} columns in "
                f"{where} ({table}); a store table holds at most {MAX_COLUMNS} (PostgreSQL's "
                "limit). The form was not registered.",
                hint="Move some questions into a repeat (each repeat gets its own table), or "
                "split the form in two; a select_multiple with many choices takes a column per "
                "choice.",
            )
