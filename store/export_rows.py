"""The reads behind data exports: a form's live submissions in pages, with their repeat rows.

One query over the submissions (newest first, as Central lists them) is streamed with a
server-side cursor (PostgreSQL) or SQLite's lazy cursor, `page_size` rows at a time; for each
page the rows of every repeat table of those submissions and their attachment counts are read
by their ids. Memory is bounded by one page, whatever the number of submissions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, and_, case, false, func, select

from store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PAGE_SIZE = 1000
# What each submission row carries besides its form table's columns (Central's meta columns).
META = (
    "central_submission_date",
    "first_received_at",
    "submitter_id",
    "submitter_name",
    "device_id",
    "review_state",
    "status",
    "edits",
    "form_version",
)


@dataclass(frozen=True)
class ConsentFilter:
    """Only submissions of survivors who agreed to reporting: the form's own
    `consent_reporting` column, or else her survivor code's latest live registration saying
    yes (`registration`: its table, code column and consent column). Neither: no rows."""

    own: str | None = None
    code: str | None = None
    registration: Table | None = None
    registration_code: str = ""
    registration_consent: str = ""

    def where(self, main: Table):
        if self.own:
            return main.c[self.own] == "yes"
        if (
            self.code
            and self.registration is not None
            and self.registration_code
            and self.registration_consent
        ):
            reg = self.registration
            # Aliases: the export's own query joins `submissions` too, and must not correlate.
            reg_sub = t.submissions.alias("reg_sub")
            later_reg = reg.alias("later_reg")
            later_sub = t.submissions.alias("later_sub")
            later = (
                select(later_reg.c["__id"])
                .join(later_sub, later_sub.c.root_id == later_reg.c["__id"])
                .where(
                    later_sub.c.form_id == reg_sub.c.form_id,
                    later_sub.c.deleted_at.is_(None),
                    later_reg.c[self.registration_code] == reg.c[self.registration_code],
                    later_sub.c.id > reg_sub.c.id,
                )
            )
            agreed = (
                select(reg.c[self.registration_code])
                .join(reg_sub, reg_sub.c.root_id == reg.c["__id"])
                .where(
                    reg_sub.c.deleted_at.is_(None),
                    reg.c[self.registration_consent] == "yes",
                    ~later.exists(),
                )
            )
            return main.c[self.code].in_(agreed)
        return false()


@dataclass
class ExportPage:
    """One page: submission rows (meta under `__meta_<name>`), and per repeat path its rows
    of these submissions in document order; attachments as {instanceID: (present, expected)}."""

    submissions: list[dict[str, Any]]
    repeats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    attachments: dict[str, tuple[int, int]] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)  # root id -> its place in the page


def export_pages(
    engine: Engine,
    form_id: str,
    tables: dict[str, Table],
    *,
    support_unit: str | None = None,
    consent: ConsentFilter | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[ExportPage]:
    """The live typed submissions of `form_id` (of one support unit when given), newest first.

    `tables` is the form's {repeat path: Table} (store.form_tables), parents before children.
    """
    sub = t.submissions
    main = tables[""]
    meta = [sub.c[name].label(f"__meta_{name}") for name in META]
    query = (
        select(main, *meta)
        .join(sub, and_(sub.c.form_id == form_id, sub.c.root_id == main.c["__id"]))
        .where(sub.c.deleted_at.is_(None))
        # Central's order: newest submissionDate first; rows received here by arrival.
        .order_by(
            case((sub.c.central_submission_date.is_(None), 1), else_=0),
            sub.c.central_submission_date.desc(),
            sub.c.first_received_at.desc(),
            sub.c.id.desc(),
        )
    )
    if support_unit is not None:
        ss = t.submission_summary
        query = query.join(ss, and_(ss.c.form_id == form_id, ss.c.root_id == main.c["__id"])).where(
            ss.c.support_unit == support_unit
        )
    if consent is not None:
        query = query.where(consent.where(main))
    repeats = [(path, table) for path, table in tables.items() if path]
    with engine.connect() as conn:
        result = conn.execute(query.execution_options(stream_results=True, yield_per=page_size))
        for part in result.partitions(page_size):
            rows = [dict(r._mapping) for r in part]
            ids = [r["__id"] for r in rows]
            page = ExportPage(rows, order={root: i for i, root in enumerate(ids)})
            for path, table in repeats:
                found = conn.execute(select(table).where(table.c["__submission_id"].in_(ids))).all()
                page.repeats[path] = [dict(r._mapping) for r in found]
            page.attachments = _attachment_counts(conn, form_id, rows)
            yield page


def _attachment_counts(conn, form_id: str, rows: list[dict]) -> dict[str, tuple[int, int]]:
    sa = t.submission_attachments
    current = [r["__instance_id"] for r in rows]
    found = conn.execute(
        select(sa.c.instance_id, func.count(sa.c.sha256), func.count())
        .where(sa.c.form_id == form_id, sa.c.instance_id.in_(current))
        .group_by(sa.c.instance_id)
    ).all()
    return {instance: (int(present), int(expected)) for instance, present, expected in found}


def live_typed_count(
    engine: Engine, form_id: str, main: Table, support_unit: str | None = None
) -> int:
    """How many submissions an export of the form would hold."""
    sub = t.submissions
    query = (
        select(func.count())
        .select_from(main)
        .join(sub, and_(sub.c.form_id == form_id, sub.c.root_id == main.c["__id"]))
        .where(sub.c.deleted_at.is_(None))
    )
    if support_unit is not None:
        ss = t.submission_summary
        query = query.join(ss, and_(ss.c.form_id == form_id, ss.c.root_id == main.c["__id"])).where(
            ss.c.support_unit == support_unit
        )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def field_catalogue(engine: Engine, form_id: str) -> dict[str, dict[str, Any]]:
    """{field path: its form_fields row, with `choices`: [form_choices rows in order]}."""
    ff, fc = t.form_fields, t.form_choices
    with engine.connect() as conn:
        fields = {
            r.field_path: dict(r._mapping)
            for r in conn.execute(
                select(ff).where(ff.c.form_id == form_id).order_by(ff.c.position)
            ).all()
        }
        for r in conn.execute(
            select(fc).where(fc.c.form_id == form_id).order_by(fc.c.field_path, fc.c.position)
        ).all():
            if r.field_path in fields:
                fields[r.field_path].setdefault("choices", []).append(dict(r._mapping))
    return fields


def column_map(engine: Engine, form_id: str) -> dict[tuple[str, str, str], str]:
    """The store's column of each (repeat path, field path, part) of a form."""
    fc = t.form_columns
    with engine.connect() as conn:
        found = conn.execute(
            select(fc.c.repeat_path, fc.c.field_path, fc.c.part, fc.c.column_name).where(
                fc.c.form_id == form_id
            )
        ).all()
    return {(r.repeat_path, r.field_path, r.part): r.column_name for r in found}


def form_ids(engine: Engine) -> list[str]:
    """Every registered form, by id."""
    with engine.connect() as conn:
        return list(conn.execute(select(t.forms.c.form_id).order_by(t.forms.c.form_id)).scalars())
