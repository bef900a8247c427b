"""A survivor's pseudonymous records: her submissions of the survivor forms, found by her code.

Her code sits in each form's own field (`admin/survivor_code` in the intake); the column behind
it is looked up in `form_columns`, so a store whose column got another name still finds it. Her
support unit is the `ssu_site` of her first registration: the case closure has no unit of its
own, and a service or intake elsewhere does not move her case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import column, select, table
from sqlalchemy.engine import Connection, Engine

from store import tables as t

REGISTRATION = "survivor_registration"
# form id -> the path of the survivor code in it; the order the page lists them in.
CODE_FIELDS = {
    REGISTRATION: "survivor_code",
    "survivor_intake": "admin/survivor_code",
    "service_contact": "survivor_code",
    "case_closure": "survivor_code",
}
UNIT_FIELD = "ssu_site"


@dataclass(frozen=True)
class SurvivorRecord:
    form_id: str
    root_id: str
    received_at: datetime
    review_state: str | None


@dataclass(frozen=True)
class Survivor:
    code: str
    support_unit: str | None  # None: no registration names one
    records: tuple[SurvivorRecord, ...]  # oldest first


def _column(conn: Connection, form_id: str, path: str) -> tuple[str, str] | None:
    """(table, column) holding a field of a form's submission table; None if not stored."""
    ft, fc = t.form_tables, t.form_columns
    found = conn.execute(
        select(fc.c.table_name, fc.c.column_name)
        .join(ft, ft.c.table_name == fc.c.table_name)
        .where(
            ft.c.form_id == form_id,
            ft.c.repeat_path == "",
            fc.c.field_path == path,
            fc.c.part == "",
        )
    ).first()
    return None if found is None else (found[0], found[1])


def _live(conn: Connection, form_id: str, where_column: tuple[str, str], value: str, *extra):
    """Live submissions of `form_id` whose field (table, column) equals `value`, oldest first,
    with the `extra` columns of the form table."""
    name, col = where_column
    tab = table(name, column("__id"), column(col), *[column(c) for c in extra])
    sub = t.submissions
    return conn.execute(
        select(
            sub.c.root_id, sub.c.first_received_at, sub.c.review_state, *[tab.c[c] for c in extra]
        )
        .join(tab, tab.c["__id"] == sub.c.root_id)
        .where(sub.c.form_id == form_id, sub.c.deleted_at.is_(None), tab.c[col] == value)
        .order_by(sub.c.first_received_at, sub.c.id)
    ).all()


def _registered_unit(conn: Connection, code: str) -> str | None:
    code_column = _column(conn, REGISTRATION, CODE_FIELDS[REGISTRATION])
    unit_column = _column(conn, REGISTRATION, UNIT_FIELD)
    if code_column is None or unit_column is None:
        return None
    rows = _live(conn, REGISTRATION, code_column, code, unit_column[1])
    return next((row[3] for row in rows if row[3]), None)


def survivor(engine: Engine, code: str) -> Survivor | None:
    """Her records and support unit; None when no live survivor-form submission has her code."""
    records = []
    with engine.connect() as conn:
        for form_id, path in CODE_FIELDS.items():
            found = _column(conn, form_id, path)
            if found is None:
                continue  # the form is not registered in this store
            records += [
                SurvivorRecord(form_id, root, received, state)
                for root, received, state in _live(conn, form_id, found, code)
            ]
        if not records:
            return None
        unit = _registered_unit(conn, code)
    records.sort(key=lambda r: r.received_at)
    return Survivor(code, unit, tuple(records))


def survivor_code(engine: Engine, form_id: str, root_id: str) -> str | None:
    """The survivor code a survivor-form submission carries; None for another form or none."""
    path = CODE_FIELDS.get(form_id)
    if path is None:
        return None
    with engine.connect() as conn:
        found = _column(conn, form_id, path)
        if found is None:
            return None
        name, col = found
        tab = table(name, column("__id"), column(col))
        value = conn.execute(select(tab.c[col]).where(tab.c["__id"] == root_id)).scalar()
    return value or None


def support_unit(engine: Engine, form_id: str, root_id: str) -> str | None:
    """The support unit a submission belongs to: the queue's summary of it, or, for a survivor
    form that names none (the case closure), the unit of her registration."""
    ss = t.submission_summary
    with engine.connect() as conn:
        unit = conn.execute(
            select(ss.c.support_unit).where(ss.c.form_id == form_id, ss.c.root_id == root_id)
        ).scalar()
    if unit or form_id not in CODE_FIELDS:
        return unit
    code = survivor_code(engine, form_id, root_id)
    if code is None:
        return None
    with engine.connect() as conn:
        return _registered_unit(conn, code)
