"""The Central sync's lease (one sync at a time across processes) and its run log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from store import tables as t

LEASE = "central"


def take_lease(engine: Engine, holder: str, seconds: float, now: datetime | None = None) -> bool:
    """Take (or renew, for the same holder) the sync lease for `seconds`; False if another
    holder's lease has not run out."""
    now = now or t.utcnow()
    sl = t.sync_lease
    free = or_(sl.c.holder.is_(None), sl.c.until.is_(None), sl.c.until < now, sl.c.holder == holder)
    for _ in range(2):
        with engine.begin() as conn:
            taken = conn.execute(
                update(sl)
                .where(and_(sl.c.name == LEASE, free))
                .values(holder=holder, until=now + timedelta(seconds=seconds))
            ).rowcount
            if taken:
                return True
            if conn.execute(select(sl.c.name).where(sl.c.name == LEASE)).first():
                return False
        try:  # the first sync ever: the row is created, then taken as any other time
            with engine.begin() as conn:
                conn.execute(insert(sl).values(name=LEASE, holder=None, until=None))
        except IntegrityError:
            pass  # another process created it first
    return False


def release_lease(engine: Engine, holder: str) -> None:
    sl = t.sync_lease
    with engine.begin() as conn:
        conn.execute(
            update(sl)
            .where(sl.c.name == LEASE, sl.c.holder == holder)
            .values(holder=None, until=None)
        )


def start_run(engine: Engine, trigger: str, now: datetime | None = None) -> int:
    with engine.begin() as conn:
        return conn.execute(
            insert(t.sync_runs).values(trigger=trigger, started_at=now or t.utcnow())
        ).inserted_primary_key[0]


def finish_run(
    engine: Engine, run_id: int, *, ok: bool, now: datetime | None = None, **values: Any
) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(t.sync_runs)
            .where(t.sync_runs.c.id == run_id)
            .values(ok=ok, finished_at=now or t.utcnow(), **values)
        )


def sync_status(engine: Engine, now: datetime | None = None) -> dict[str, Any]:
    """For the queue page: the last run, the last successful one, and whether one runs now."""
    sr, sl = t.sync_runs, t.sync_lease
    now = now or t.utcnow()
    with engine.connect() as conn:
        last = conn.execute(select(sr).order_by(sr.c.id.desc()).limit(1)).first()
        good = conn.execute(
            select(sr).where(sr.c.ok.is_(True)).order_by(sr.c.id.desc()).limit(1)
        ).first()
        lease = conn.execute(select(sl).where(sl.c.name == LEASE)).first()
    running = bool(lease and lease.holder and lease.until and lease.until >= now)
    return {
        "running": running,
        "last_run": dict(last._mapping) if last else None,
        "last_success": dict(good._mapping) if good else None,
    }
