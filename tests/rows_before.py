"""The row reader as it was before rows were compiled (store/rows.py): the reference that
tests/test_rows_compiled.py compares the compiled readers with. Not used by nigraan.

Canonical document -> typed rows for a form's tables, plus the problems found on the way.

The one normaliser: OpenRosa and Central submissions both pass through here. A value that does
not parse as its type leaves its column empty and yields a problem naming the field and the
value; the raw submission keeps the original. Pure: no SQL here.

A RowPlan is compiled once per form version and layout: each field gets a small function that
writes its columns into a positional row, and each group is fetched once per row. This is the
hot path of every import, so it avoids per-field dispatch on kinds.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from store import layout as lay
from store import schema as s
from store.document import SubmissionDocument, is_data_name, lexical

_INT = re.compile(r"^\s*[+-]?\d+\s*$")
# An integer column is a 64-bit BIGINT (PostgreSQL; SQLite's INTEGER): a value beyond it is a
# bad value, not an error that would roll the whole batch back.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Problem:
    code: str
    path: str | None
    value: str | None
    message: str


@dataclass
class Rows:
    """Positional rows per table (columns in `columns[table]` order) and the problems found."""

    tables: dict[str, list[list[Any]]]
    columns: dict[str, list[str]]
    problems: list[Problem] = field(default_factory=list)

    def dicts(self) -> dict[str, list[dict[str, Any]]]:
        return {
            name: [dict(zip(self.columns[name], row, strict=True)) for row in rows]
            for name, rows in self.tables.items()
        }


def repeat_row_id(root_id: str, chain: list[tuple[str, int | None]]) -> str:
    """Central's repeat row __id: sha1 of the row's path from the submission.

    Every step from the submission down to the row is in `chain`: an enclosing group as
    (name, None), written `name#`, a repeat as (name, i), written `name#i` with i its 0-based
    position in its parent; steps are joined with `%%` after `Submissions#<root id>`. The first
    `person` of a repeat inside group `people` is `Submissions#<root>%%people#%%person#0`
    (central-backend lib/data/odata.js hashId; recorded exchanges 345-347).
    """
    key = f"Submissions#{root_id}" + "".join(
        f"%%{name}#" if i is None else f"%%{name}#{i}" for name, i in chain
    )
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


def _in_range(number: int) -> int:
    if not _INT_MIN <= number <= _INT_MAX:
        raise ValueError(f"{number} does not fit a 64-bit integer")
    return number


def _integer(text: str) -> int:
    if not _INT.match(text):
        raise ValueError(text)
    return _in_range(int(text))


def _decimal(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _date(text: str) -> date:
    stripped = text.strip()
    if not _DATE.match(stripped):
        raise ValueError(text)
    return date.fromisoformat(stripped)


def _from_json(value: Any, storage: str) -> Any:
    """An OData JSON number -> the column's value; ValueError when it does not fit."""
    kind = type(value)
    if storage == lay.INTEGER and kind is int:
        return _in_range(value)
    if storage == lay.INTEGER and kind is float and value.is_integer():
        return _in_range(int(value))
    if storage == lay.DECIMAL and kind in (int, float):
        try:
            number = float(value)
        except OverflowError as exc:  # an int beyond any double
            raise ValueError(value) from exc
        if math.isfinite(number):
            return number
    raise ValueError(value)


_PARSERS: dict[str, Callable[[str], Any]] = {
    lay.INTEGER: _integer,
    lay.DECIMAL: _decimal,
    lay.DATE: _date,
    lay.INSTANT: lambda text: parse_instant(text)[0],
}
_KIND_WORD = {
    s.INTEGER: "a whole number",
    s.DECIMAL: "a number",
    s.DATE: "a date (YYYY-MM-DD)",
    s.DATETIME: "a date and time (ISO 8601)",
    s.GEOPOINT: "a location (latitude longitude [altitude [accuracy]])",
}

Filler = Callable[[str, list, list], None]  # (value, row, problems)


def _bad(f: s.Field, value: str) -> Problem:
    word = _KIND_WORD.get(f.kind, f"a {f.kind}")
    return Problem(
        "bad_value",
        f.path,
        value,
        f"'{f.path}' should be {word} but is {value!r}; its column is left empty and the raw "
        "submission keeps the value.",
    )


def _unknown_choice(f: s.Field, value: str, strange: list[str]) -> Problem:
    return Problem(
        "unknown_choice",
        f.path,
        value,
        f"'{f.path}' has {' '.join(strange)!r}, which is not a choice of this form version; the "
        "value is kept as text.",
    )


def _filler(
    f: s.Field, columns: list[lay.Column], index: dict[str, int]
) -> tuple[Filler, bool] | None:
    """The function that writes one field's value into its columns of a positional row, and
    whether it reads OData's JSON values itself (the others get them spelled as XML text)."""
    if not columns:
        return None
    at = [index[c.name] for c in columns]
    main, i = columns[0], at[0]

    if f.kind == s.GEOPOINT:
        as_text = [c.storage != lay.DECIMAL for c in columns]

        def geopoint(value: Any, row: list, problems: list) -> None:
            if type(value) is not str:
                value = lexical(value)  # GeoJSON point from OData
            try:
                numbers = [_decimal(p) for p in value.split()]
            except (ValueError, AttributeError):
                numbers = []
            if not 2 <= len(numbers) <= 4 or not (
                -90 <= numbers[0] <= 90 and -180 <= numbers[1] <= 180
            ):
                problems.append(_bad(f, value))
                return
            for j, number, text in zip(at, numbers, as_text, strict=False):
                row[j] = str(number) if text else number

        return geopoint, True

    if f.kind == s.DATETIME:
        offset_at = at[1] if len(at) > 1 else None
        keep_text = main.storage == lay.TEXT

        def date_time(value: Any, row: list, problems: list) -> None:
            try:
                instant, offset = parse_instant(value)
            except (ValueError, TypeError, AttributeError, OverflowError):
                problems.append(_bad(f, value))
                if keep_text:
                    row[i] = value
                return
            row[i] = value if keep_text else instant
            if offset_at is not None:
                row[offset_at] = offset

        return date_time, False

    kind_storage = lay.KIND_STORAGE.get(f.kind, lay.TEXT)
    if main.storage != lay.TEXT or kind_storage != lay.TEXT:
        # Parse by the column's storage, or by the field's own kind when the column was widened
        # to text (so a bad value is still reported, and kept as text).
        keep_text = main.storage == lay.TEXT
        storage = kind_storage if keep_text else main.storage
        parse = _PARSERS[storage]

        def typed(value: Any, row: list, problems: list) -> None:
            try:
                parsed = parse(value) if type(value) is str else _from_json(value, storage)
            except (ValueError, TypeError, OverflowError):
                value = value if type(value) is str else lexical(value)
                problems.append(_bad(f, value))
                if keep_text:
                    row[i] = value
                return
            if keep_text:
                row[i] = value if type(value) is str else lexical(value)
            else:
                row[i] = parsed

        return typed, True

    names = frozenset(c.name for c in f.choices)
    if f.kind == s.SELECT_ONE and names:

        def select_one(value: str, row: list, problems: list) -> None:
            row[i] = value
            if value not in names:
                problems.append(_unknown_choice(f, value, [value]))

        return select_one, False

    if f.kind == s.SELECT_MULTIPLE and names:
        flags = {
            c.part[len(lay.CHOICE_PREFIX) :]: j for c, j in zip(columns[1:], at[1:], strict=True)
        }

        def select_multiple(value: str, row: list, problems: list) -> None:
            row[i] = value
            for j in flags.values():
                row[j] = 0
            strange = []
            for choice in value.split():
                j = flags.get(choice)
                if j is not None:
                    row[j] = 1
                elif choice not in names:
                    strange.append(choice)
            if strange:
                problems.append(_unknown_choice(f, value, strange))

        return select_multiple, False

    def text(value: str, row: list, problems: list) -> None:
        row[i] = value

    return text, False


@dataclass
class _Group:
    parts: tuple[str, ...]  # path of the group inside its table's element ("" parts = itself)
    leaves: list[tuple[str, str, bool, bool, Filler]]
    # (element name, path, blank text counts, takes OData JSON values as they are, filler)


@dataclass
class _Node:
    """How to read one table's part of the document."""

    repeat: str
    table: str
    name: str  # repeat element name (for row ids)
    columns: list[str]
    groups: list[_Group] = field(default_factory=list)
    children: list[tuple[_Node, tuple[str, ...]]] = field(default_factory=list)
    expected: dict = field(default_factory=dict)  # name -> None (leaf), dict (group), "repeat"
    names: Any = None  # _Names compiled from `expected`


class RowPlan:
    """A compiled reading plan for one form version against the form's current layout."""

    def __init__(self, schema: s.FormSchema, layout: lay.FormLayout):
        self.schema = schema
        self.layout = layout
        nodes: dict[str, _Node] = {}
        for repeat in [""] + [r.path for r in schema.repeats]:
            system = lay.REPEAT_SYSTEM_COLUMNS if repeat else lay.SYSTEM_COLUMNS
            columns = list(system) + [c.name for c in layout.table_columns(repeat)]
            nodes[repeat] = _Node(repeat, layout.tables[repeat], repeat.rsplit("/", 1)[-1], columns)
        groups: dict[tuple[str, tuple[str, ...]], _Group] = {}
        for f in schema.fields:
            node = nodes[f.repeat]
            parts = tuple(f.local_path.split("/"))
            _expect(node.expected, parts, None)
            index = {name: k for k, name in enumerate(node.columns)}
            columns = [layout.columns[c.repeat, c.path, c.part] for c in lay.field_columns(f)]
            made = _filler(f, columns, index)
            if made is None:
                continue
            filler, takes_json = made
            key = (f.repeat, parts[:-1])
            if key not in groups:
                groups[key] = _Group(parts[:-1], [])
                node.groups.append(groups[key])
            groups[key].leaves.append((parts[-1], f.path, f.kind == s.TEXT, takes_json, filler))
        for r in schema.repeats:
            parent = nodes[r.parent]
            local = r.path[len(r.parent) + 1 :] if r.parent else r.path
            parts = tuple(local.split("/"))
            parent.children.append((nodes[r.path], parts))
            _expect(parent.expected, parts, "repeat")
        for node in nodes.values():
            node.names = _names(node.expected)
        self.root = nodes[""]
        self.columns = {node.table: node.columns for node in nodes.values()}


def _expect(tree: dict, parts: tuple[str, ...], leaf: Any) -> None:
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            return
    tree.setdefault(parts[-1], leaf)


def _get(data: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if type(data) is list:  # a group that came as repeated siblings: take the first
            data = data[0] if data else None
        if type(data) is not dict:
            return None
        data = data.get(part)
    return data


@dataclass
class _Names:
    """The names a group may hold, and its subgroups (repeats are checked by their own table)."""

    names: dict[str, Any]
    groups: list[tuple[str, _Names]]


def _names(expected: dict) -> _Names:
    groups = [(k, _names(v)) for k, v in expected.items() if type(v) is dict]
    return _Names(expected, groups)


def _unknown(data: dict, expected: _Names, prefix: str, out: list[Problem]) -> None:
    """Problems for names in the document that the form version does not have."""
    if not data.keys() <= expected.names.keys():  # in document order: the same every time
        for key in [k for k in data if k not in expected.names and is_data_name(k)]:
            value = data[key]
            path = prefix + key
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
    for key, want in expected.groups:
        value = data.get(key)
        for item in value if type(value) is list else [value]:
            if type(item) is dict:
                _unknown(item, want, prefix + key + "/", out)


def document_rows(doc: SubmissionDocument, plan: RowPlan, root_id: str) -> Rows:
    """Every typed row of one submission, keyed so the same submission gives the same rows."""
    tables: dict[str, list[list[Any]]] = {}
    problems: list[Problem] = []
    row = _row(plan.root, doc.data, problems)
    row[0], row[1], row[2] = root_id, doc.instance_id, doc.form_version  # lay.SYSTEM_COLUMNS
    tables[plan.root.table] = [row]
    _children(plan.root, doc.data, root_id, root_id, [], "", tables, problems)
    _unknown(doc.data, plan.root.names, "", problems)
    return Rows(tables, plan.columns, problems)


def _children(node, data, root_id, parent_id, chain, prefix, tables, problems) -> None:
    for child, parts in node.children:
        items = _get(data, parts)
        if items is None:
            continue
        if type(items) is not list:
            items = [items]
        rows = tables.setdefault(child.table, [])
        path = prefix + "/".join(parts) + "/"
        groups = [(name, None) for name in parts[:-1]]  # groups between parent and repeat
        for i, item in enumerate(items):
            item = item if type(item) is dict else {}
            link = chain + groups + [(child.name, i)]
            row_id = repeat_row_id(root_id, link)
            row = _row(child, item, problems)
            row[0], row[1], row[2], row[3] = row_id, root_id, parent_id, i + 1
            rows.append(row)
            _unknown(item, child.names, path, problems)
            _children(child, item, root_id, row_id, link, path, tables, problems)


def _row(node: _Node, data: dict, problems: list[Problem]) -> list[Any]:
    row: list[Any] = [None] * len(node.columns)
    for group in node.groups:
        values = _get(data, group.parts) if group.parts else data
        if type(values) is list and values:  # a group that came as repeated siblings
            values = values[0]
        if type(values) is not dict:
            if values is not None and group.parts:
                path = "/".join(group.parts)
                problems.append(Problem("bad_value", path, None, f"'{path}' is not a group."))
            continue
        for name, path, keep_blank, takes_json, fill in group.leaves:
            value = values.get(name)
            if value is None:
                continue
            if type(value) is str:
                if keep_blank or value.strip():
                    fill(value, row, problems)
            elif type(value) is list or (type(value) is dict and value.get("type") != "Point"):
                problems.append(
                    Problem("bad_value", path, None, f"'{path}' holds a group, not a value.")
                )
            else:  # an OData JSON value
                fill(value if takes_json else lexical(value), row, problems)
    return row
