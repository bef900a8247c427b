"""Review decisions made in nigraan: shown locally at once, queued until Central confirms them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from nigraan.errors import NigraanError
from store import tables as t

# The decisions a reviewer can make, as Central names them (PATCH .../submissions/:id reviewState).
REVIEW_STATES = ("approved", "hasIssues", "rejected")


class DecisionError(NigraanError):
    """A review decision that cannot be recorded: unknown submission, state, or nothing to say."""

    code = "review.refused"
    status = 400


def record_review(
    engine: Engine,
    form_id: str,
    root_id: str,
    review_state: str | None,
    comment: str | None,
    *,
    for_central: bool = True,
) -> int:
    """A review decision made here: shown locally at once, queued for Central; its id.

    A submission that never came from Central (received by nigraan's own server) has no
    Central to tell: the decision is kept (comment included) but never pushed.
    """
    now = t.utcnow()
    with engine.begin() as conn:
        if review_state:
            conn.execute(
                update(t.submissions)
                .where(t.submissions.c.form_id == form_id, t.submissions.c.root_id == root_id)
                .values(review_state=review_state)
            )
        local = {} if for_central else {"done_at": now, "last_error": "not from Central"}
        return conn.execute(
            insert(t.review_outbox).values(
                form_id=form_id,
                root_id=root_id,
                review_state=review_state,
                comment=comment,
                created_at=now,
                attempts=0,
                **local,
            )
        ).inserted_primary_key[0]


def record_decision(
    engine: Engine, form_id: str, root_id: str, state: str | None, comment: str | None
) -> int:
    """A reviewer's decision on a stored submission; its outbox id.

    One that came from Central (it has Central's submissionDate) is queued for Central, which
    `sync.review_outbox.push_reviews` reaches exactly once; one received by nigraan's own server
    stays local. The submission's review state changes at once either way.
    """
    comment = (comment or "").strip() or None
    if state is not None and state not in REVIEW_STATES:
        raise DecisionError(
            f"'{state}' is not a review state.", hint=f"Choose one of: {', '.join(REVIEW_STATES)}."
        )
    if state is None and comment is None:
        raise DecisionError(
            "A decision needs a review state, a comment, or both.",
            hint="Choose a state or write a comment, then send it again.",
        )
    sub = t.submissions
    with engine.connect() as conn:
        row = conn.execute(
            select(sub.c.central_submission_date, sub.c.deleted_at).where(
                sub.c.form_id == form_id, sub.c.root_id == root_id
            )
        ).first()
    if row is None:
        raise DecisionError(
            f"No submission {root_id} of form {form_id} is stored.",
            hint="Open the submission from the review queue.",
        )
    if row.deleted_at is not None:
        raise DecisionError(
            f"Submission {root_id} was deleted in Central ({row.deleted_at}).",
            hint="Restore it in Central before reviewing it.",
        )
    for_central = row.central_submission_date is not None
    return record_review(engine, form_id, root_id, state, comment, for_central=for_central)


def pending_reviews(engine: Engine) -> list[dict[str, Any]]:
    ro = t.review_outbox
    with engine.connect() as conn:
        rows = conn.execute(select(ro).where(ro.c.done_at.is_(None)).order_by(ro.c.id))
        return [dict(r._mapping) for r in rows]


def reviews(
    engine: Engine, form_id: str | None = None, root_id: str | None = None
) -> list[dict[str, Any]]:
    """Decisions made here, oldest first; only one form's, or one submission's, when given."""
    ro = t.review_outbox
    query = select(ro).order_by(ro.c.id)
    if form_id is not None:
        query = query.where(ro.c.form_id == form_id)
    if root_id is not None:
        query = query.where(ro.c.root_id == root_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def review_progress(
    engine: Engine,
    outbox_id: int,
    *,
    attempt: bool = False,
    state_pushed: bool = False,
    comment_pushed: bool = False,
    done: bool = False,
    error: str | None = None,
) -> None:
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
