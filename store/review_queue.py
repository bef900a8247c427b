"""The review queue's read side: a page of submissions the caller may see, with their flags.

The caller (the web page) decides what a person may see and passes it: the form ids, for a
caseworker her support unit, for a monitor the submitter name her own submissions carry.
Review states are Central's: received (none recorded yet), hasIssues, edited (an edit after
the last review: the store sets it when a local edit arrives, Central's rows say it), approved,
rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, literal, or_, select
from sqlalchemy.engine import Engine

from store import tables as t

STATES = ("received", "hasIssues", "edited", "approved", "rejected")
SORTS = {
    "received": t.submissions.c.first_received_at,
    "form": t.submissions.c.form_id,
    "submitter": t.submissions.c.submitter_name,
    "state": t.submissions.c.review_state,
    "updated": t.submissions.c.updated_at,
}


@dataclass(frozen=True)
class QueueFilter:
    form_ids: tuple[str, ...]  # the forms the caller may see (required: none = nothing)
    support_unit: str | None = None  # a caseworker: only her unit's submissions
    own_submitter: str | None = None  # a monitor: only what she submitted
    form_id: str | None = None
    state: str | None = None
    submitter: str | None = None
    device: str | None = None
    district: str | None = None
    facility: str | None = None
    unit: str | None = None
    rule_id: str | None = None  # only submissions with this flag
    flagged: bool | None = None
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before
    text: str | None = None  # part of a code (survivor, participant, event, visit)


@dataclass
class QueuePage:
    rows: list[dict[str, Any]]
    total: int  # matching the filter
    counts: dict[str, int] = field(default_factory=dict)  # per state, for the caller's scope
    page: int = 1
    per_page: int = 50


def _state(column):
    return func.coalesce(column, "received")


def _scope(f: QueueFilter, sub, ss, *, for_order: bool = False):
    """Conditions of what the caller may see.

    `for_order`: the page's own query. Over several forms, SQLite would read every row of those
    forms through the form_id index and sort them all; with form_id wrapped (`|| ''`, the same
    test) it walks the received-time index newest first and stops at the page's end."""
    form_id = sub.c.form_id
    if for_order and len(f.form_ids) > 1 and not f.form_id:
        form_id = form_id + literal("")
    conds = [form_id.in_(list(f.form_ids)), sub.c.deleted_at.is_(None)]
    if f.support_unit is not None:
        conds.append(ss.c.support_unit == f.support_unit)
    if f.own_submitter is not None:
        conds.append(sub.c.submitter_name == f.own_submitter)
    return conds


def _filters(f: QueueFilter, sub, ss):
    fl = t.flags
    conds = []
    if f.form_id:
        conds.append(sub.c.form_id == f.form_id)
    if f.state:
        if f.state not in STATES:
            raise ValueError(f"Unknown review state '{f.state}': use one of {', '.join(STATES)}.")
        conds.append(
            or_(sub.c.review_state.is_(None), sub.c.review_state == "received")
            if f.state == "received"
            else sub.c.review_state == f.state
        )
    for value, col in (
        (f.submitter, sub.c.submitter_name),
        (f.device, sub.c.device_id),
        (f.district, ss.c.district),
        (f.facility, ss.c.facility),
        (f.unit, ss.c.support_unit),
    ):
        if value:
            conds.append(col == value)
    if f.since:
        conds.append(sub.c.first_received_at >= f.since)
    if f.until:
        conds.append(sub.c.first_received_at < f.until)
    if f.text:
        conds.append(ss.c.codes.contains(f.text.strip().lower(), autoescape=True))
    flagged = exists().where(fl.c.form_id == sub.c.form_id, fl.c.root_id == sub.c.root_id)
    if f.rule_id:
        conds.append(flagged.where(fl.c.rule_id == f.rule_id))
    elif f.flagged is not None:
        conds.append(flagged if f.flagged else ~flagged)
    return conds


def queue(
    engine: Engine,
    f: QueueFilter,
    *,
    page: int = 1,
    per_page: int = 50,
    sort: str = "received",
    descending: bool = True,
) -> QueuePage:
    """One page of the queue, newest first by default; `sort` is one of SORTS."""
    if sort not in SORTS:
        raise ValueError(f"Cannot sort the queue by '{sort}': use one of {', '.join(SORTS)}.")
    page, per_page = max(1, int(page)), min(max(1, int(per_page)), 500)
    if not f.form_ids:
        return QueuePage([], 0, dict.fromkeys(STATES, 0), page, per_page)
    sub, ss = t.submissions, t.submission_summary
    on = and_(ss.c.form_id == sub.c.form_id, ss.c.root_id == sub.c.root_id)
    # The summary is joined only when a condition reads it (a caseworker's unit, place, codes).
    needs = f.support_unit is not None or any((f.district, f.facility, f.unit, f.text))
    joined = sub.join(ss, on) if needs else sub
    scope_joined = sub.join(ss, on) if f.support_unit is not None else sub
    scope = _scope(f, sub, ss)
    conds = scope + _filters(f, sub, ss)
    order = SORTS[sort].desc() if descending else SORTS[sort].asc()
    tie = sub.c.id.desc() if descending else sub.c.id.asc()
    page_conds = _scope(f, sub, ss, for_order=True) + _filters(f, sub, ss)
    ids = (
        select(sub.c.id)
        .select_from(joined)
        .where(*page_conds)
        .order_by(order, tie)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    with engine.connect() as conn:
        page_ids = list(conn.execute(ids).scalars())
        found = (
            {
                r.id: dict(r._mapping)
                for r in conn.execute(
                    select(
                        sub.c.id,
                        sub.c.form_id,
                        sub.c.root_id,
                        sub.c.current_instance_id,
                        sub.c.source,
                        sub.c.submitter_name,
                        sub.c.device_id,
                        sub.c.first_received_at,
                        sub.c.updated_at,
                        sub.c.edits,
                        _state(sub.c.review_state).label("review_state"),
                        ss.c.district,
                        ss.c.facility,
                        ss.c.support_unit,
                    )
                    .select_from(sub.outerjoin(ss, on))
                    .where(sub.c.id.in_(page_ids))
                )
            }
            if page_ids
            else {}
        )
        rows = [found[i] for i in page_ids]
        counts = dict.fromkeys(STATES, 0)
        for state, n in conn.execute(
            # grouped in the covering index's order (form, state): no sort
            select(sub.c.review_state, func.count())
            .select_from(scope_joined)
            .where(*scope)
            .group_by(sub.c.form_id, sub.c.review_state)
        ):
            counts[state or "received"] = counts.get(state or "received", 0) + n
        if len(conds) == len(scope):  # no filter: the total is the counts' sum
            total = sum(counts.values())
        else:
            total = conn.execute(select(func.count()).select_from(joined).where(*conds)).scalar()
        flags = submission_flags(conn, [(r["form_id"], r["root_id"]) for r in rows])
    for r in rows:
        r["flags"] = flags.get((r["form_id"], r["root_id"]), [])
    return QueuePage(rows, total, counts, page, per_page)


def submission_flags(conn, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[dict]]:
    """{(form id, root id): [flag, ...]} for the given submissions."""
    fl = t.flags
    out: dict[tuple[str, str], list[dict]] = {}
    if not keys:
        return out
    roots = sorted({root for _, root in keys})
    for i in range(0, len(roots), 500):
        for row in conn.execute(
            select(fl).where(fl.c.root_id.in_(roots[i : i + 500])).order_by(fl.c.rule_id)
        ):
            if (row.form_id, row.root_id) in keys:
                out.setdefault((row.form_id, row.root_id), []).append(dict(row._mapping))
    return out


def flags(engine: Engine, form_id: str | None = None, root_id: str | None = None) -> list[dict]:
    """Flags of one submission, one form, or all, ordered by form, submission and rule."""
    fl = t.flags
    query = select(fl).order_by(fl.c.form_id, fl.c.root_id, fl.c.rule_id)
    if form_id:
        query = query.where(fl.c.form_id == form_id)
    if root_id:
        query = query.where(fl.c.root_id == root_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
