"""People's accounts of the web app and the audit log: the store's SQL for them.

Only password hashes are kept; making and checking them, and the sign-in policy, are the web
app's business (server/web/accounts.py). The audit log is append-only: this module can add a
row and read rows, nothing else (and the database's triggers refuse UPDATE and DELETE).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from nigraan.errors import NigraanError
from store import tables as t

ROLES = ("admin", "supervisor", "caseworker", "monitor", "viewer")


class PersonError(NigraanError):
    """A person's account cannot be created or changed as asked."""

    code = "user.invalid"
    status = 400


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    password_hash: str
    role: str
    unit: str | None
    language: str | None
    created_at: datetime
    disabled_at: datetime | None
    failures: int
    failed_at: datetime | None
    locked_until: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


class People:
    """Create, find, list, disable people's accounts; keep their sign-in throttle."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, name: str, password_hash: str, role: str, unit: str | None = None) -> Person:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t.users).values(
                        name=name,
                        password_hash=password_hash,
                        role=role,
                        unit=unit,
                        created_at=t.utcnow(),
                    )
                )
        except IntegrityError as exc:
            raise PersonError(
                f"A user named {name!r} already exists.",
                hint="Choose another name; a disabled user's name stays taken for the record.",
            ) from exc
        return self.by_name(name)

    def by_name(self, name: str) -> Person | None:
        return self._one(t.users.c.name == name)

    def by_id(self, user_id: int) -> Person | None:
        return self._one(t.users.c.id == user_id)

    def _one(self, where) -> Person | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.users).where(where)).first()
        return None if row is None else Person(**row._mapping)

    def all(self) -> list[Person]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.users).order_by(t.users.c.name)).all()
        return [Person(**row._mapping) for row in rows]

    def _set(self, name: str, **values) -> Person:
        with self.engine.begin() as conn:
            done = conn.execute(update(t.users).where(t.users.c.name == name).values(**values))
        if done.rowcount != 1:
            raise PersonError(f"No user named {name!r}.", hint="`nigraan users list` shows them.")
        return self.by_name(name)

    def disable(self, name: str) -> Person:
        return self._set(name, disabled_at=t.utcnow())

    def set_password(self, name: str, password_hash: str) -> Person:
        """A new password; it also lifts a lock and clears the failures."""
        return self._set(
            name, password_hash=password_hash, failures=0, failed_at=None, locked_until=None
        )

    def set_language(self, name: str, language: str) -> Person:
        return self._set(name, language=language)

    def set_throttle(
        self, name: str, failures: int, failed_at: datetime | None, locked_until: datetime | None
    ) -> None:
        self._set(name, failures=failures, failed_at=failed_at, locked_until=locked_until)


class Audit:
    """The audit log: `record` adds a row; `entries` reads them. Nothing changes a row."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def record(
        self,
        action: str,
        *,
        actor: str,
        actor_kind: str = "person",
        role: str | None = None,
        form_id: str | None = None,
        record: str | None = None,
        address: str | None = None,
        detail: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """One row, committed before this returns (call it before the response is sent)."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.audit_log).values(
                    at=at or t.utcnow(),
                    actor=actor[:100],
                    actor_kind=actor_kind,
                    role=role,
                    action=action,
                    form_id=form_id,
                    record=record,
                    address=address,
                    detail=detail,
                )
            )

    def entries(
        self, *, actor: str | None = None, since: datetime | None = None, limit: int = 500
    ) -> list[dict]:
        """Newest first: every row, or a person's, or those at or after `since`."""
        query = select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(limit)
        if actor is not None:
            query = query.where(t.audit_log.c.actor == actor)
        if since is not None:
            query = query.where(t.audit_log.c.at >= since)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
