"""Edit history from Central: the past versions Central lists that the store lacks."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from store import tables as t
from store.document import SubmissionError, from_openrosa_xml
from store.incoming import sha256
from store.outcomes import CENTRAL


def add_history(
    engine: Engine,
    form_id: str,
    root_id: str,
    order: list[str],
    xml: Mapping[str, bytes],
    received_at: datetime | None = None,
) -> int:
    """Versions of a stored submission that Central holds and the store lacks.

    `order` is every instanceID Central lists for the submission, oldest first; `xml` the
    instance XML (as Central serves it) of the ones not stored. They are stored verbatim as
    past versions: the current version, its typed rows and problems stay as they are.
    Versions keep Central's order in the store (`Store.versions()` reads them by id): stored ones
    that Central lists after a missing one are written again after it, unchanged but for
    `deprecated_id`, which becomes the version before it in Central's order (for a Central
    row nigraan had only guessed it: the version it knew before). Returns how many were
    added.
    """
    sv = t.submission_versions
    received = received_at or t.utcnow()
    with engine.begin() as conn:
        exists = conn.execute(
            select(t.submissions.c.id).where(
                t.submissions.c.form_id == form_id, t.submissions.c.root_id == root_id
            )
        ).first()
        if exists is None:
            return 0
        stored = {
            r.instance_id: r
            for r in conn.execute(
                select(sv).where(sv.c.form_id == form_id, sv.c.root_id == root_id)
            )
        }
        taken = set(
            conn.execute(
                select(sv.c.instance_id).where(
                    sv.c.form_id == form_id, sv.c.instance_id.in_(list(xml) or [""])
                )
            ).scalars()
        )  # another submission's version: never moved here
        new = [i for i in order if i not in stored and i in xml and i not in taken]
        if not new:
            return 0
        first = order.index(new[0])
        rows: list[dict] = []
        moved: list[int] = []
        for position in range(first, len(order)):
            instance_id = order[position]
            previous = order[position - 1] if position else None
            if instance_id in stored:
                row = dict(stored[instance_id]._mapping)
                moved.append(row.pop("id"))
                row["deprecated_id"] = previous
                rows.append(row)
            elif instance_id in new:
                rows.append(
                    _history_row(
                        form_id, root_id, instance_id, previous, xml[instance_id], received
                    )
                )
        if moved:
            conn.execute(delete(sv).where(sv.c.id.in_(moved)))
        for row in rows:  # one by one: ids in this order
            conn.execute(insert(sv).values(**row))
    return len(new)


def _history_row(form_id, root_id, instance_id, previous, payload: bytes, received) -> dict:
    """A past version from Central's history: raw XML, not current, not typed."""
    try:
        doc = from_openrosa_xml(payload, with_data=False)
    except SubmissionError:
        doc = None  # kept all the same: the raw layer holds whatever Central held
    return {
        "form_id": form_id,
        "instance_id": instance_id,
        "root_id": root_id,
        "deprecated_id": (doc.deprecated_id if doc else None) or previous,
        "form_version": doc.form_version if doc else None,
        "source": CENTRAL,
        "payload_kind": "xml",
        "payload": payload,
        "payload_sha256": sha256(payload),
        "received_at": received,
        "current": False,
    }
