"""Review decisions made in nigraan: shown locally at once, queued until Central confirms them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from store import tables as t


def record_review(engine: Engine, form_id: str, root_id: str, review_state: str | None,
                  comment: str | None, *, for_central: bool = True) -> int:  # fmt: skip
    """A review decision made here: shown locally at once, queued for Central; its id.

    A submission that never came from Central (received by nigraan's own server) has no
    Central to tell: the decision is kept (comment included) but never pushed.
    """
    now = t.utcnow()
    with engine.begin() as conn:
        if review_state:
            conn.execute(
                update(t.submissions)
                .where(t.submissions.c.form_id == form_id,
                       t.submissions.c.root_id == root_id)
                .values(review_state=review_state)
            )  # fmt: skip
        local = {} if for_central else {"done_at": now, "last_error": "not from Central"}
        return conn.execute(
            insert(t.review_outbox).values(
                form_id=form_id, root_id=root_id, review_state=review_state,
                comment=comment, created_at=now, attempts=0, **local,
            )
        ).inserted_primary_key[0]  # fmt: skip


def pending_reviews(engine: Engine) -> list[dict[str, Any]]:
    ro = t.review_outbox
    with engine.connect() as conn:
        rows = conn.execute(select(ro).where(ro.c.done_at.is_(None)).order_by(ro.c.id))
        return [dict(r._mapping) for r in rows]


def reviews(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(t.review_outbox).order_by(t.review_outbox.c.id))
        return [dict(r._mapping) for r in rows]


def review_progress(engine: Engine, outbox_id: int, *, attempt: bool = False,
                    state_pushed: bool = False, comment_pushed: bool = False,
                    done: bool = False, error: str | None = None) -> None:  # fmt: skip
    """Record an attempt at an outbox entry, what Central confirmed, or why it failed."""
    ro = t.review_outbox
    now = t.utcnow()
    values: dict[str, Any] = {"attempts": ro.c.attempts + 1} if attempt else {}
    if error:
        values["last_error"] = error
    if state_pushed:
        values["state_pushed_at"] = now
    if comment_pushed:
        values["comment_pushed_at"] = now
    if done:
        values["done_at"] = now
        values["last_error"] = None
    with engine.begin() as conn:
        conn.execute(update(ro).where(ro.c.id == outbox_id).values(**values))
