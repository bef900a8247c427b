"""Device accounts ("app users") of the embedded OpenRosa server: the store's SQL for them.

Only hashes are kept (see tables.app_users); making and checking the secrets is the server's
business (server/device_accounts.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from nigraan.errors import NigraanError
from store import tables as t


class AppUserError(NigraanError):
    """A device account cannot be created or changed as asked."""

    code = "app_user.invalid"
    status = 400


@dataclass(frozen=True)
class AppUser:
    id: int
    name: str
    digest_ha1: str
    forms: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class AppUsers:
    """Create, find, list and revoke device accounts."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, name: str, token_sha256: str, digest_ha1: str, forms) -> AppUser:
        now = t.utcnow()
        try:
            with self.engine.begin() as conn:
                user_id = conn.execute(
                    insert(t.app_users).values(
                        name=name,
                        token_sha256=token_sha256,
                        digest_ha1=digest_ha1,
                        created_at=now,
                    )
                ).inserted_primary_key[0]
                rows = [{"app_user_id": user_id, "form_id": f} for f in sorted(set(forms))]
                if rows:
                    conn.execute(insert(t.app_user_forms), rows)
        except IntegrityError as exc:
            raise AppUserError(
                f"A device account named {name!r} already exists.",
                hint="Choose another name, or revoke the old account first "
                "(`nigraan app-users revoke NAME`); a revoked name stays taken for the record.",
            ) from exc
        return AppUser(user_id, name, digest_ha1, frozenset(forms), now, None)

    def _find(self, where) -> AppUser | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.app_users).where(where)).first()
            if row is None:
                return None
            forms = conn.execute(
                select(t.app_user_forms.c.form_id).where(t.app_user_forms.c.app_user_id == row.id)
            ).scalars()
            return AppUser(
                row.id, row.name, row.digest_ha1, frozenset(forms), row.created_at, row.revoked_at
            )

    def by_token(self, token_sha256: str) -> AppUser | None:
        return self._find(t.app_users.c.token_sha256 == token_sha256)

    def by_name(self, name: str) -> AppUser | None:
        return self._find(t.app_users.c.name == name)

    def all(self) -> list[AppUser]:
        with self.engine.connect() as conn:
            forms: dict[int, set[str]] = {}
            for user_id, form_id in conn.execute(select(t.app_user_forms)):
                forms.setdefault(user_id, set()).add(form_id)
            return [
                AppUser(
                    r.id,
                    r.name,
                    r.digest_ha1,
                    frozenset(forms.get(r.id, ())),
                    r.created_at,
                    r.revoked_at,
                )
                for r in conn.execute(select(t.app_users).order_by(t.app_users.c.name))
            ]

    def revoke(self, name: str) -> AppUser:
        """Revoke at once: its token URL and password stop working on the next request."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.app_users)
                .where(t.app_users.c.name == name, t.app_users.c.revoked_at.is_(None))
                .values(revoked_at=t.utcnow())
            ).rowcount
        user = self.by_name(name)
        if user is None:
            raise AppUserError(
                f"No device account is named {name!r}.",
                hint="`nigraan app-users list` shows the accounts.",
            )
        if not done:
            raise AppUserError(f"The device account {name!r} was already revoked.")
        return user
