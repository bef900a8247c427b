"""People's passwords and the sign-in policy: argon2id hashes, slowing down and locking out.

The throttle lives in the store (store/people.py), so it holds across threads, processes and
restarts. An unknown name costs the same hash check as a wrong password and gets the same
answer, so the sign-in page does not tell who has an account.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from store import tables as t
from store.people import People, Person

HASHER = PasswordHasher()  # argon2id with argon2-cffi's current recommended parameters
# Checked against when the name is unknown, so that answer takes as long as a wrong password.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def new_password() -> str:
    """A password to show once: 16 characters from the URL-safe alphabet (96 bits)."""
    return secrets.token_urlsafe(12)


def _matches(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Policy:
    slow_after: int  # failures in a row after which each try must wait, doubling
    lock_after: int  # failures in a row that lock the account
    lock_minutes: int

    @classmethod
    def from_config(cls, config) -> Policy:
        return cls(config["web.slow_after"], config["web.lock_after"], config["web.lock_minutes"])

    def wait(self, failures: int) -> timedelta:
        """How long after the last failure the next try is heard (0 below slow_after)."""
        if failures < self.slow_after:
            return timedelta(0)
        return timedelta(seconds=min(2 ** (failures - self.slow_after), 60))


@dataclass(frozen=True)
class Outcome:
    person: Person | None  # signed in; None: refused (one message for every reason)
    reason: str  # "ok" | "unknown" | "wrong" | "disabled" | "locked" | "too_soon" (the log's)


def check_sign_in(
    people: People, policy: Policy, name: str, password: str, now: Callable[[], datetime] = t.utcnow
) -> Outcome:
    """Whether `name` may sign in with `password` now, the throttle updated either way."""
    person = people.by_name(name)
    if person is None:
        _matches(_DUMMY_HASH, password)
        return Outcome(None, "unknown")
    moment = now()
    if person.locked_until is not None and moment < person.locked_until:
        _matches(_DUMMY_HASH, password)
        return Outcome(None, "locked")
    failures = person.failures
    if person.locked_until is not None:  # the lock ran out: a fresh start
        failures = 0
    if failures and person.failed_at and moment < person.failed_at + policy.wait(failures):
        _matches(_DUMMY_HASH, password)
        return Outcome(None, "too_soon")  # not counted: waiting is the price
    if not _matches(person.password_hash, password):
        failures += 1
        locked = moment + timedelta(minutes=policy.lock_minutes)
        people.set_throttle(
            name, failures, moment, locked if failures >= policy.lock_after else None
        )
        return Outcome(None, "wrong")
    if not person.active:
        return Outcome(None, "disabled")
    if person.failures or person.locked_until:
        people.set_throttle(name, 0, None, None)
    return Outcome(person, "ok")


def support_units(config) -> list[str]:
    """The support unit codes a caseworker may belong to (forms/reference/support_units.csv)."""
    import csv
    from pathlib import Path

    path = Path(config["forms.reference_dir"]) / "support_units.csv"
    with open(path, newline="", encoding="utf-8") as f:
        return [row["name"] for row in csv.DictReader(f) if row.get("name")]
