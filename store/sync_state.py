"""Per Central form synced: the watermark and, while a pass runs, its next-page link."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from store import tables as t


def sync_state(engine: Engine, scope: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(t.sync_state).where(t.sync_state.c.scope == scope)).first()
    return dict(row._mapping) if row else None


def save_sync_state(engine: Engine, scope: str, form_id: str, **values: Any) -> None:
    """Create or update a form's sync state (watermark, pass in progress)."""
    ss = t.sync_state
    values["updated_at"] = t.utcnow()
    with engine.begin() as conn:
        done = conn.execute(update(ss).where(ss.c.scope == scope).values(**values)).rowcount
        if not done:
            conn.execute(insert(ss).values(scope=scope, form_id=form_id, **values))
