"""Canonical document -> typed rows for a form's tables, plus the problems found on the way.

The one normaliser: OpenRosa and Central submissions both pass through here. A value that does
not parse as its type leaves its column empty and yields a problem naming the field and the
value; the raw submission keeps the original. Pure: no SQL here.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from store import layout as lay
from store import schema as s
from store.document import SubmissionDocument

_INT = re.compile(r"^[+-]?\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Problem:
    code: str
    path: str | None
    value: str | None
    message: str


@dataclass
class Rows:
    tables: dict[str, list[dict[str, Any]]]
    problems: list[Problem]


def repeat_row_id(root_id: str, chain: list[tuple[str, int]]) -> str:
    """Central's repeat row __id: sha1 of 'Submissions#<root>%%<repeat>#<i>...' (0-based i)."""
    key = f"Submissions#{root_id}" + "".join(f"%%{name}#{i}" for name, i in chain)
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def parse_instant(text: str) -> tuple[datetime, int | None]:
    """ISO 8601 dateTime -> (UTC instant, offset in minutes or None when the text had none)."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC), None
    offset = value.utcoffset()
    try:
        instant = value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+05:00 is before year 1 in UTC
        raise ValueError(f"{text!r} is out of range") from exc
    return instant, int(offset.total_seconds() // 60) if offset is not None else None


def _parse_number(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


class _Bad(Exception):
    pass


def typed(text: str, storage: str) -> Any:
    """A lexical value -> the Python value its column stores; _Bad when it does not parse."""
    if storage == lay.TEXT:
        return text
    stripped = text.strip()
    try:
        if storage == lay.INTEGER:
            if not _INT.match(stripped):
                raise ValueError
            return int(stripped)
        if storage == lay.DECIMAL:
            return _parse_number(stripped)
        if storage == lay.DATE:
            if not _DATE.match(stripped):
                raise ValueError
            return date.fromisoformat(stripped)
        if storage == lay.INSTANT:
            return parse_instant(stripped)[0]
    except ValueError as exc:
        raise _Bad from exc
    raise _Bad


_KIND_WORD = {
    s.INTEGER: "a whole number",
    s.DECIMAL: "a number",
    s.DATE: "a date (YYYY-MM-DD)",
    s.DATETIME: "a date and time (ISO 8601)",
    s.GEOPOINT: "a location (latitude longitude [altitude [accuracy]])",
}


@dataclass
class _Node:
    """How to read one table's part of the document."""

    repeat: str
    table: str
    name: str  # repeat element name (for row ids)
    fields: list[tuple[s.Field, tuple[str, ...], list[lay.Column]]]
    children: list[tuple[_Node, tuple[str, ...]]]
    columns: list[str]
    expected: dict  # nested dict of expected names (None = leaf, dict = group, "repeat")


class RowPlan:
    """A compiled reading plan for one form schema against the form's current layout."""

    def __init__(self, schema: s.FormSchema, layout: lay.FormLayout):
        self.schema = schema
        self.layout = layout
        nodes: dict[str, _Node] = {}
        for repeat in [""] + [r.path for r in schema.repeats]:
            table = layout.tables[repeat]
            system = lay.REPEAT_SYSTEM_COLUMNS if repeat else lay.SYSTEM_COLUMNS
            columns = list(system) + [c.name for c in layout.table_columns(repeat)]
            nodes[repeat] = _Node(repeat, table, repeat.rsplit("/", 1)[-1], [], [], columns, {})
        for f in schema.fields:
            node = nodes[f.repeat]
            parts = tuple(f.local_path.split("/"))
            cols = [layout.columns[c.repeat, c.path, c.part] for c in lay.field_columns(f)]
            node.fields.append((f, parts, cols))
            _expect(node.expected, parts, None)
        for r in schema.repeats:
            parent = nodes[r.parent]
            local = r.path[len(r.parent) + 1 :] if r.parent else r.path
            parts = tuple(local.split("/"))
            parent.children.append((nodes[r.path], parts))
            _expect(parent.expected, parts, "repeat")
        self.root = nodes[""]


def _expect(tree: dict, parts: tuple[str, ...], leaf: Any) -> None:
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            return
    tree.setdefault(parts[-1], leaf)


def _get(data: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if isinstance(data, list):  # a group that came as repeated siblings: take the first
            data = data[0] if data else None
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _unknown(data: dict, expected: dict, prefix: str, out: list[Problem]) -> None:
    for key, value in data.items():
        want = expected.get(key, KeyError)
        path = prefix + key
        if want is KeyError:
            shown = value if isinstance(value, str) or value is None else "(a group)"
            out.append(
                Problem(
                    "unknown_field",
                    path,
                    shown,
                    f"'{path}' is not a field of this form version; the value is kept in the raw "
                    "submission only.",
                )
            )
        elif isinstance(want, dict):
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict):
                    _unknown(item, want, path + "/", out)


def document_rows(doc: SubmissionDocument, plan: RowPlan, root_id: str) -> Rows:
    """Every typed row of one submission, keyed so the same submission gives the same rows."""
    tables: dict[str, list[dict[str, Any]]] = {}
    problems: list[Problem] = []
    row = _row(plan.root, doc.data, problems, plan.schema)
    row["__id"] = root_id
    row["__instance_id"] = doc.instance_id
    row["__form_version"] = doc.form_version
    tables.setdefault(plan.root.table, []).append(row)
    _children(plan.root, doc.data, root_id, root_id, [], tables, problems, plan.schema)
    _unknown(doc.data, plan.root.expected, "", problems)
    return Rows(tables, problems)


def _children(node, data, root_id, parent_id, chain, tables, problems, schema) -> None:
    for child, parts in node.children:
        items = _get(data, parts)
        if items is None:
            continue
        if not isinstance(items, list):
            items = [items]
        rows = tables.setdefault(child.table, [])
        for i, item in enumerate(items):
            item = item if isinstance(item, dict) else {}
            link = chain + [(child.name, i)]
            row_id = repeat_row_id(root_id, link)
            row = _row(child, item, problems, schema)
            row["__id"] = row_id
            row["__submission_id"] = root_id
            row["__parent_id"] = parent_id
            row["__position"] = i + 1
            rows.append(row)
            _children(child, item, root_id, row_id, link, tables, problems, schema)


def _row(node: _Node, data: dict, problems: list[Problem], schema: s.FormSchema) -> dict:
    row: dict[str, Any] = dict.fromkeys(node.columns)
    for f, parts, columns in node.fields:
        if not columns:
            continue
        value = _get(data, parts)
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append(
                Problem("bad_value", f.path, None, f"'{f.path}' holds a group, not a value.")
            )
            continue
        if not value.strip() and f.kind != s.TEXT:
            continue
        _fill(row, f, value, columns, problems)
    return row


def _bad(f: s.Field, value: str) -> Problem:
    word = _KIND_WORD.get(f.kind, f"a {f.kind}")
    return Problem(
        "bad_value",
        f.path,
        value,
        f"'{f.path}' should be {word} but is {value!r}; its column is left empty and the raw "
        "submission keeps the value.",
    )


def _fill(row: dict, f: s.Field, value: str, columns: list[lay.Column], problems) -> None:
    if f.kind == s.GEOPOINT:
        pieces = value.split()
        try:
            numbers = [_parse_number(p) for p in pieces]
        except ValueError:
            numbers = []
        if not 2 <= len(numbers) <= 4 or not (
            -90 <= numbers[0] <= 90 and -180 <= numbers[1] <= 180
        ):
            problems.append(_bad(f, value))
            return
        for column, number in zip(columns, numbers, strict=False):
            row[column.name] = number if column.storage == lay.DECIMAL else str(number)
        return
    main = columns[0]
    if main.storage != lay.TEXT or f.kind in _KIND_WORD:
        # Parse by the column's storage, or by the field's own kind when the column was widened
        # to text (so a bad value is still reported, and kept as text).
        storage = main.storage if main.storage != lay.TEXT else _kind_storage(f)
        try:
            parsed = typed(value, storage)
        except _Bad:
            problems.append(_bad(f, value))
            parsed = None
        row[main.name] = value if main.storage == lay.TEXT else parsed
        if f.kind == s.DATETIME and parsed is not None and len(columns) > 1:
            row[columns[1].name] = parse_instant(value)[1]
        return
    row[main.name] = value
    if f.kind in (s.SELECT_ONE, s.SELECT_MULTIPLE) and f.choices:
        names = {c.name for c in f.choices}
        chosen = value.split() if f.kind == s.SELECT_MULTIPLE else [value]
        strange = [c for c in chosen if c not in names]
        if strange:
            problems.append(
                Problem(
                    "unknown_choice",
                    f.path,
                    value,
                    f"'{f.path}' has {' '.join(strange)!r}, which is not a choice of this form "
                    "version; the value is kept as text.",
                )
            )
        if f.kind == s.SELECT_MULTIPLE:
            picked = set(chosen)
            for column in columns[1:]:
                row[column.name] = int(column.part[len(lay.CHOICE_PREFIX) :] in picked)


def _kind_storage(f: s.Field) -> str:
    return lay._STORAGE.get(f.kind, lay.TEXT)
