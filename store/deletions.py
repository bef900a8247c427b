"""Submissions deleted in Central stop counting (raw versions kept); restored ones count again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from sqlalchemy import and_, update
from sqlalchemy.engine import Engine

from store import cross_form_checks
from store import tables as t
from store.bulk_insert import BATCH
from store.derive import rederive_where
from store.derived_rows import DerivedRows
from store.outcomes import DELETED

if TYPE_CHECKING:
    from store.form_registry import FormRegistry


def mark_deleted(
    engine: Engine, forms: FormRegistry, form_id: str, deleted: Mapping[str, str]
) -> int:
    """Submissions deleted in Central ({root id: deletedAt}) stop counting; returns how many.

    The raw versions stay, so a restore (or a rebuild) brings the typed rows back.
    """
    sub = t.submissions
    changed = 0
    with engine.begin() as conn:
        derived = DerivedRows(forms, conn)
        for root_id, deleted_at in deleted.items():
            done = conn.execute(
                update(sub)
                .where(
                    sub.c.form_id == form_id, sub.c.root_id == root_id, sub.c.deleted_at.is_(None)
                )
                .values(deleted_at=deleted_at or t.utcnow().isoformat(), normalised=DELETED)
            ).rowcount
            if done:
                derived.clear_derived(form_id, root_id)
                changed += 1
        cross_form_checks.evaluate(conn, {form_id: set(deleted)})  # web-queue
    return changed


def mark_restored(
    engine: Engine, forms: FormRegistry, form_id: str, root_ids: Iterable[str]
) -> int:
    """Submissions restored in Central count again: typed rows re-derived from the raw layer."""
    sub, sv = t.submissions, t.submission_versions
    restored: list[str] = []
    with engine.begin() as conn:
        for root_id in root_ids:
            done = conn.execute(
                update(sub)
                .where(
                    sub.c.form_id == form_id,
                    sub.c.root_id == root_id,
                    sub.c.deleted_at.is_not(None),
                )
                .values(deleted_at=None)
            ).rowcount
            if done:
                restored.append(root_id)
        for i in range(0, len(restored), BATCH):
            chunk = restored[i : i + BATCH]
            rederive_where(conn, forms, and_(sv.c.form_id == form_id, sv.c.root_id.in_(chunk)))
        cross_form_checks.evaluate(conn, {form_id: set(restored)})  # web-queue
    return len(restored)
