"""Review decisions made in nigraan, pushed to Central exactly once.

`nigraan review` records the decision in the store (shown locally at once) and queues it in
`review_outbox`. Pushing applies each step through pyodk and marks it done only once Central
confirmed it: the review state (a PATCH; repeating it is harmless) and the comment (a POST, which
is not idempotent: before re-posting after an earlier attempt, Central's comments are read and an
identical one counts as done, so a lost answer never makes a second comment).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyodk.errors import PyODKError

from store.review_outbox import REVIEW_STATES  # noqa: F401  (kept importable from here)
from store.store import Store
from sync.central import Central, CentralError, CentralUnavailable, pyodk_failure


@dataclass
class PushResult:
    applied: int = 0
    pending: int = 0
    failures: list[str] = field(default_factory=list)
    unavailable: CentralUnavailable | None = None


def _push_one(central: Central, store: Store, entry: dict) -> None:
    submissions = central.client.submissions
    ids = {"form_id": entry["form_id"], "project_id": central.project_id}
    try:
        if entry["review_state"] and entry["state_pushed_at"] is None:
            submissions.review(entry["root_id"], entry["review_state"], **ids)
            store.review_progress(entry["id"], state_pushed=True)
        if entry["comment"] and entry["comment_pushed_at"] is None:
            posted = False
            if entry["attempts"] > 0:  # an earlier try may have posted it without our knowing
                comments = submissions.list_comments(entry["root_id"], **ids)
                posted = any(c.body == entry["comment"] for c in comments)
            if not posted:
                submissions.add_comment(entry["root_id"], entry["comment"], **ids)
            store.review_progress(entry["id"], comment_pushed=True)
    except PyODKError as exc:
        raise pyodk_failure(exc) from exc
    store.review_progress(entry["id"], done=True)


def push_reviews(central: Central, store: Store) -> PushResult:
    """Push every pending decision, oldest first; stops early when Central is down."""
    result = PushResult()
    pending = store.pending_reviews()
    for entry in pending:
        store.review_progress(entry["id"], attempt=True)  # counted before anything is sent
        try:
            _push_one(central, store, entry)
        except CentralUnavailable as exc:
            store.review_progress(entry["id"], error=exc.message)
            result.unavailable = exc
            break
        except CentralError as exc:
            store.review_progress(entry["id"], error=exc.message)
            result.failures.append(f"{entry['form_id']} {entry['root_id']}: {exc.message}")
            continue
        result.applied += 1
    result.pending = len(store.pending_reviews())
    return result
