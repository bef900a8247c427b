"""Typed tables and problems derived again from the raw layer: rebuild, and after registering.

The raw versions are never changed here; only the typed rows and problems of current, not
deleted, versions are rewritten.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.engine import Connection, Engine

from nigraan.errors import FormError
from store import cross_form_checks
from store import tables as t
from store.bulk_insert import BATCH
from store.derived_rows import DerivedRows
from store.form_tables import recreate
from store.gc_pause import collector_paused
from store.outcomes import UNKNOWN_FORM

if TYPE_CHECKING:
    from store.form_registry import FormRegistry


def rebuild(engine: Engine, forms: FormRegistry, form_id: str | None = None) -> int:
    """Re-derive typed tables and problems from the raw layer; returns submissions re-read."""
    with engine.begin() as conn:
        registered = forms.all(conn)
        form_ids = [form_id] if form_id else sorted(registered)
        total = 0
        for fid in form_ids:
            form = registered.get(fid)
            if form is None:
                raise FormError(
                    f"No form '{fid}' is registered.", hint="See `nigraan store status`."
                )
            if form.tables:
                recreate(conn, form.tables)
            total += derive_form(conn, forms, fid)
        if form_id is None:  # submissions of forms never registered, and unreadable ones
            known = list(registered)
            conn.execute(
                delete(t.problems).where(
                    or_(t.problems.c.form_id.is_(None), t.problems.c.form_id.not_in(known))
                )
            )
            total += rederive_where(
                conn,
                forms,
                or_(
                    t.submission_versions.c.form_id.is_(None),
                    t.submission_versions.c.form_id.not_in(known),
                ),
            )
        cross_form_checks.evaluate(conn)  # web-queue: every check over what was re-derived
    return total


def derive_form(
    conn: Connection, forms: FormRegistry, form_id: str, only_unsettled: bool = False
) -> int:
    """(Re)write typed rows and problems of a form's submissions from their raw versions."""
    where = t.submission_versions.c.form_id == form_id
    if only_unsettled:
        unsettled = select(t.submissions.c.root_id).where(
            t.submissions.c.form_id == form_id,
            or_(
                t.submissions.c.normalised == UNKNOWN_FORM,
                t.submissions.c.root_id.in_(
                    select(t.problems.c.root_id).where(
                        t.problems.c.form_id == form_id,
                        t.problems.c.code.in_(["unknown_version", "unknown_field"]),
                    )
                ),
            ),
        )
        where = and_(where, t.submission_versions.c.root_id.in_(unsettled))
    else:
        conn.execute(delete(t.problems).where(t.problems.c.form_id == form_id))
    return rederive_where(conn, forms, where)


def rederive_where(conn: Connection, forms: FormRegistry, where) -> int:
    """Typed rows and problems of every current, not deleted, version matching `where`."""
    sub, sv = t.submissions, t.submission_versions
    deleted = (
        select(sub.c.id)
        .where(
            sub.c.form_id == sv.c.form_id,
            sub.c.root_id == sv.c.root_id,
            sub.c.deleted_at.is_not(None),
        )
        .exists()
    )
    where = and_(where, ~deleted)
    writer = DerivedRows(forms, conn)
    count = 0
    for versions in _current_versions(conn, where):
        with collector_paused():  # per page of versions: garbage between pages is collected
            for version in versions:
                writer.rederive(version)
                count += 1
            writer.flush()
    return count


def _current_versions(conn: Connection, where) -> Iterator[list[Any]]:
    last = 0
    while True:
        rows = conn.execute(
            select(t.submission_versions)
            .where(where, t.submission_versions.c.current, t.submission_versions.c.id > last)
            .order_by(t.submission_versions.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id
