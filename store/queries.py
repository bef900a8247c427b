"""The read side: submissions, their versions and problems, typed rows, counts.

What review screens, reports, exports and the sync read; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select

from nigraan.errors import FormError
from store import tables as t
from store.bulk_insert import BATCH

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from store.form_registry import FormRegistry


def rows(engine: Engine, forms: FormRegistry, table_name: str) -> list[dict[str, Any]]:
    """Every row of a form table, ordered by __id (for checks and exports)."""
    table = forms.table_named(table_name)
    if table is None:
        raise FormError(f"No form table named '{table_name}'.")
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c["__id"]))]


def problems(engine: Engine, form_id: str | None = None) -> list[dict[str, Any]]:
    query = select(t.problems).order_by(t.problems.c.id)
    if form_id:
        query = query.where(t.problems.c.form_id == form_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def submission(engine: Engine, form_id: str, root_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(t.submissions).where(
                t.submissions.c.form_id == form_id, t.submissions.c.root_id == root_id
            )
        ).first()
    return dict(row._mapping) if row else None


def version_ids(engine: Engine, form_id: str, root_ids: Iterable[str]) -> dict[str, list[str]]:
    """{root id: instanceIDs of its stored versions, oldest first} for stored submissions."""
    sv, sub = t.submission_versions, t.submissions
    wanted = list(dict.fromkeys(root_ids))
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for i in range(0, len(wanted), BATCH):
            chunk = wanted[i : i + BATCH]
            stored = select(sub.c.root_id).where(sub.c.form_id == form_id, sub.c.root_id.in_(chunk))
            out.update((root, []) for root in conn.execute(stored).scalars())
            for root, instance_id in conn.execute(
                select(sv.c.root_id, sv.c.instance_id)
                .where(sv.c.form_id == form_id, sv.c.root_id.in_(chunk))
                .order_by(sv.c.id)
            ):
                out.setdefault(root, []).append(instance_id)
    return out


def versions(engine: Engine, form_id: str, root_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.submission_versions)
            .where(
                t.submission_versions.c.form_id == form_id,
                t.submission_versions.c.root_id == root_id,
            )
            .order_by(t.submission_versions.c.id)
        )
        return [dict(r._mapping) for r in rows]


def counts(engine: Engine) -> dict[str, dict[str, int]]:
    """Per form: submissions (live), deleted ones, raw versions, problems."""
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        sub = t.submissions
        for form_id, n in conn.execute(
            select(sub.c.form_id, func.count())
            .where(sub.c.deleted_at.is_not(None))
            .group_by(sub.c.form_id)
        ):
            out.setdefault(form_id, {})["deleted"] = n
        live = select(sub).where(sub.c.deleted_at.is_(None)).subquery()
        for table, key in (
            (live, "submissions"),
            (t.submission_versions, "versions"),
            (t.problems, "problems"),
        ):
            for form_id, n in conn.execute(
                select(table.c.form_id, func.count()).group_by(table.c.form_id)
            ):
                out.setdefault(form_id or "(unreadable)", {})[key] = n
    return out


def root_ids(engine: Engine, form_id: str, *, deleted: bool = False) -> set[str]:
    """Root ids of a form's live submissions read from Central (or of its deleted ones)."""
    sub = t.submissions
    flag = sub.c.deleted_at.is_not(None) if deleted else sub.c.deleted_at.is_(None)
    query = select(sub.c.root_id).where(
        sub.c.form_id == form_id, flag, sub.c.central_submission_date.is_not(None)
    )
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


def live_count(engine: Engine, form_id: str) -> int:
    """Live submissions of a form that were read from Central."""
    sub = t.submissions
    query = select(func.count()).where(
        sub.c.form_id == form_id,
        sub.c.deleted_at.is_(None),
        sub.c.central_submission_date.is_not(None),
    )
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def find_submissions(engine: Engine, instance_id: str, form_id: str | None = None) -> list[dict]:
    """Submissions whose root id or current instanceID is `instance_id`."""
    sub = t.submissions
    query = select(sub).where(
        or_(sub.c.root_id == instance_id, sub.c.current_instance_id == instance_id)
    )
    if form_id:
        query = query.where(sub.c.form_id == form_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def missing_attachments(engine: Engine, form_id: str) -> dict[str, list[tuple[str, str]]]:
    """Files the current versions of live submissions name but that are not here yet.

    {root id: [(instanceID, file name)]}.
    """
    sub, sa = t.submissions, t.submission_attachments
    query = (
        select(sub.c.root_id, sa.c.instance_id, sa.c.name)
        .join(
            sa, and_(sa.c.form_id == sub.c.form_id, sa.c.instance_id == sub.c.current_instance_id)
        )
        .where(sub.c.form_id == form_id, sub.c.deleted_at.is_(None), sa.c.sha256.is_(None))
        .order_by(sub.c.root_id, sa.c.name)
    )
    missing: dict[str, list[tuple[str, str]]] = {}
    with engine.connect() as conn:
        for root_id, instance_id, name in conn.execute(query):
            missing.setdefault(root_id, []).append((instance_id, name))
    return missing
