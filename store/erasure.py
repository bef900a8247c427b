"""Retention and erasure of identities: the register entry and the envelopes it came from go,
the pseudonymous records stay.

An identity is erased when the survivor's case closed more than `identity.retention_days` ago
(`run_retention`), or on her own request (`erase_identity`). In one transaction: her register
entry (`sealed_identities`, `sealed_values`), every stored version of the identity_register
submissions it was filed from (`sealed_sources`: envelope, `.enc` files, and their blobs when no
other file shares them), and what was derived from them (problems, decryption flags); the
`submissions` row stays, marked `erased`, so a sync's counts still match Central. A tombstone
(`erasures`: the HMAC of her code, the erased instanceIDs in `erased_submissions`, when, why, by
whom; never an identity) keeps it erased: ingest answers a resend or an edit of an erased
submission as a duplicate and stores nothing, the register refuses her code, and an envelope of
hers found later (`nigraan identity import`, a sync) is erased on sight. An audit row says what
was erased. Her survivor_registration, intake, service_contact and case_closure rows are not
touched, so every indicator stays the same.

On SQLite the erasing connection overwrites what it deletes (`secure_delete`) and the WAL is
checkpointed and truncated afterwards, so the bytes leave the files too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, column, delete, func, insert, or_, select, table, update
from sqlalchemy.engine import Connection

from nigraan.data_key import DataKey
from nigraan.errors import NigraanError
from store import tables as t
from store.bulk_insert import BATCH
from store.identity_register import IdentityRegister
from store.outcomes import ERASED

log = logging.getLogger(__name__)

CLOSURE_FORM = "case_closure"
CODE_FIELD, CLOSURE_DATE_FIELD = "survivor_code", "closure_date"
RETENTION = "retention"  # the actor and reason of scheduled erasures


class UnknownSurvivor(NigraanError):
    """No identity is filed under the code given."""

    code = "identity.not_found"
    status = 404


@dataclass(frozen=True)
class Erasure:
    """One survivor's identity erased (or, in a dry run, to be erased)."""

    code: str  # the pseudonymous survivor code (as in her A1-A4 records)
    closed_on: date | None  # her case's closure (None: erased on request)
    instance_ids: tuple[str, ...] = ()  # the identity_register versions erased
    erased: bool = False  # False in a dry run
    erasure_id: int | None = None
    already: bool = False  # erased before: nothing left to do


@dataclass
class RetentionRun:
    days: int
    today: date
    erasures: list[Erasure] = field(default_factory=list)


def _chunks(items: list, size: int = BATCH) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ------------------------------------------------------------------ who is due


# (form, survivor code field, date field): the closure, and the records that show she came back
CLOSURE = (CLOSURE_FORM, CODE_FIELD, CLOSURE_DATE_FIELD)
SEEN_AGAIN = (
    ("survivor_registration", "survivor_code", "date_first_contact"),
    ("survivor_intake", "admin/survivor_code", "admin/date_interview"),
    ("service_contact", "survivor_code", "service_date"),
)


def _latest_days(conn: Connection, form_id: str, code_path: str, day_path: str) -> dict[str, date]:
    """{survivor code: her latest day in the form} from the form's typed table (by the fields'
    paths, as `form_columns` records them); {} when the form or a field is not there."""
    ft, fc = t.form_tables, t.form_columns
    table_name = conn.execute(
        select(ft.c.table_name).where(ft.c.form_id == form_id, ft.c.repeat_path == "")
    ).scalar()
    if table_name is None:
        return {}
    columns = dict(
        conn.execute(
            select(fc.c.field_path, fc.c.column_name).where(
                fc.c.table_name == table_name, fc.c.part == ""
            )
        ).all()
    )
    code_col, date_col = columns.get(code_path), columns.get(day_path)
    if not code_col or not date_col:
        return {}
    rows_of = table(table_name, column(code_col), column(date_col))
    code, day = rows_of.c[code_col], rows_of.c[date_col]
    rows = conn.execute(
        select(code, func.max(day)).where(code.is_not(None), day.is_not(None)).group_by(code)
    ).all()
    out: dict[str, date] = {}
    for value, latest in rows:
        if isinstance(latest, str):  # SQLite hands back the stored ISO text
            latest = date.fromisoformat(latest[:10])
        elif isinstance(latest, datetime):
            latest = latest.date()
        key = value.strip()
        out[key] = max(latest, out.get(key, latest))
    return out


def _closures(conn: Connection) -> dict[str, date]:
    """{survivor code: her latest case closure} for cases still closed: a registration, intake
    or service dated after it means she came back, and her identity is kept."""
    closures = _latest_days(conn, *CLOSURE)
    for source in SEEN_AGAIN:
        for code, day in _latest_days(conn, *source).items():
            if code in closures and day > closures[code]:
                del closures[code]
    return closures


def _filed_hmacs(conn: Connection) -> set[str]:
    """Lookup keys with something to erase: a register entry or a recorded envelope."""
    filed = set(conn.execute(select(t.sealed_identities.c.code_hmac)).scalars())
    return filed | set(conn.execute(select(t.sealed_sources.c.code_hmac).distinct()).scalars())


def due(store, key: DataKey, days: int, today: date | None = None) -> list[Erasure]:
    """Survivors whose case closed more than `days` days before `today` and whose identity is
    still filed, oldest closure first. Closed exactly `days` days ago: kept one day more."""
    today = today or datetime.now(UTC).date()
    limit = today - timedelta(days=days)
    with store.engine.connect() as conn:
        filed = _filed_hmacs(conn)
        closures = _closures(conn)
        found = []
        for code, closed in closures.items():
            if closed < limit and code and key.code_hmac(code) in filed:
                found.append(Erasure(code, closed, _instances_of(conn, key.code_hmac(code))))
    return sorted(found, key=lambda e: (e.closed_on, e.code))


# ------------------------------------------------------------------ erasing


def _instances_of(conn: Connection, code_hmac: str) -> tuple[str, ...]:
    """The identity submissions' versions filed under a lookup key, with their edits."""
    src, sv = t.sealed_sources, t.submission_versions
    sources = conn.execute(
        select(src.c.form_id, src.c.instance_id).where(src.c.code_hmac == code_hmac)
    ).all()
    found: list[str] = []
    for form_id, instance_id in sources:
        roots = select(sv.c.root_id).where(
            sv.c.form_id == form_id,
            or_(sv.c.instance_id == instance_id, sv.c.root_id == instance_id),
        )
        versions = conn.execute(
            select(sv.c.instance_id)
            .where(sv.c.form_id == form_id, sv.c.root_id.in_(roots))
            .order_by(sv.c.id)
        ).scalars()
        found += [instance_id, *versions]
    return tuple(dict.fromkeys(found))


def _erase_raw(
    conn: Connection, erasure_id: int, sources: Iterable[tuple[str, str]]
) -> tuple[str, ...]:
    """Remove every stored version of the submissions `sources` ((form id, instanceID)) belong
    to, their files, and blobs no other file shares; tombstone their instanceIDs."""
    sv, sa, sub = t.submission_versions, t.submission_attachments, t.submissions
    by_form: dict[str, set[str]] = {}
    for form_id, instance_id in sources:
        by_form.setdefault(form_id, set()).add(instance_id)
    erased: list[str] = []
    for form_id, given in by_form.items():
        versions = conn.execute(
            select(sv.c.id, sv.c.instance_id, sv.c.root_id).where(
                sv.c.form_id == form_id,
                or_(
                    sv.c.instance_id.in_(given),
                    sv.c.root_id.in_(given),
                    sv.c.root_id.in_(
                        select(sv.c.root_id).where(
                            sv.c.form_id == form_id, sv.c.instance_id.in_(given)
                        )
                    ),
                ),
            )
        ).all()
        roots = {v.root_id for v in versions if v.root_id} | set(
            conn.execute(
                select(sub.c.root_id).where(
                    sub.c.form_id == form_id,
                    or_(sub.c.root_id.in_(given), sub.c.current_instance_id.in_(given)),
                )
            ).scalars()
        )
        instances = {v.instance_id for v in versions if v.instance_id} | given
        ids = sorted(instances)
        digests: set[str] = set()
        for chunk in _chunks(ids):
            files = and_(sa.c.form_id == form_id, sa.c.instance_id.in_(chunk))
            digests |= {d for d in conn.execute(select(sa.c.sha256).where(files)).scalars() if d}
            conn.execute(delete(sa).where(files))
            conn.execute(
                delete(t.decryption_flags).where(
                    t.decryption_flags.c.form_id == form_id,
                    t.decryption_flags.c.instance_id.in_(chunk),
                )
            )
        shared = set()
        for chunk in _chunks(sorted(digests)):
            shared |= set(
                conn.execute(select(sa.c.sha256).where(sa.c.sha256.in_(chunk)).distinct()).scalars()
            )
        for chunk in _chunks(sorted(digests - shared)):
            conn.execute(delete(t.blobs).where(t.blobs.c.sha256.in_(chunk)))
        for chunk in _chunks([v.id for v in versions]):
            conn.execute(delete(sv).where(sv.c.id.in_(chunk)))
        for chunk in _chunks(sorted(roots)):
            for derived in (t.problems, t.flags, t.check_keys, t.submission_summary):
                conn.execute(
                    delete(derived).where(
                        derived.c.form_id == form_id, derived.c.root_id.in_(chunk)
                    )
                )
            conn.execute(
                update(sub)
                .where(sub.c.form_id == form_id, sub.c.root_id.in_(chunk))
                .values(normalised=ERASED, updated_at=t.utcnow())
            )
        root_of = {v.instance_id: v.root_id for v in versions}
        known = set(
            conn.execute(
                select(t.erased_submissions.c.instance_id).where(
                    t.erased_submissions.c.form_id == form_id,
                    t.erased_submissions.c.instance_id.in_(ids),
                )
            ).scalars()
        )
        rows = [
            {
                "form_id": form_id,
                "instance_id": i,
                "root_id": root_of.get(i) or (i if i in roots else None),
                "erasure_id": erasure_id,
            }
            for i in ids
            if i not in known
        ]
        if rows:
            conn.execute(insert(t.erased_submissions), rows)
        erased += ids
    return tuple(erased)


def _tombstone(conn: Connection, register: IdentityRegister, code: str, reason, actor) -> int:
    key = register.key
    code_hmac = key.code_hmac(code)
    found = conn.execute(
        select(t.erasures.c.id).where(t.erasures.c.code_hmac == code_hmac).order_by(t.erasures.c.id)
    ).scalar()
    if found is not None:
        return found
    return conn.execute(
        insert(t.erasures)
        .values(
            code_hmac=code_hmac,
            code_sealed=register._seal(key, code_hmac, "", code),
            key_id=key.key_id,
            erased_at=t.utcnow(),
            reason=reason,
            actor=actor[:100],
        )
        .returning(t.erasures.c.id)
    ).scalar_one()


def _audit(conn: Connection, actor, role, code_hmac, instance_ids, reason, form_id) -> None:
    # The lookup key and the instanceIDs, never the code's identity: the row says what went.
    conn.execute(
        insert(t.audit_log).values(
            at=t.utcnow(),
            actor=actor[:100],
            actor_kind="person" if actor != RETENTION else "system",
            role=role,
            action="identity_erased",
            form_id=form_id,
            record=code_hmac[:64],
            detail=f"reason: {reason}; submissions erased: {', '.join(instance_ids) or 'none'}",
        )
    )


def _erase_in(
    conn: Connection, register: IdentityRegister, code: str, reason: str, actor: str, role
) -> tuple[int, tuple[str, ...]]:
    code_hmac = register.code_hmac(code)
    src = t.sealed_sources
    sources = conn.execute(
        select(src.c.form_id, src.c.instance_id).where(src.c.code_hmac == code_hmac)
    ).all()
    erasure_id = _tombstone(conn, register, code, reason, actor)
    erased = _erase_raw(conn, erasure_id, [tuple(s) for s in sources])
    conn.execute(delete(src).where(src.c.code_hmac == code_hmac))
    conn.execute(delete(t.sealed_values).where(t.sealed_values.c.code_hmac == code_hmac))
    conn.execute(delete(t.sealed_identities).where(t.sealed_identities.c.code_hmac == code_hmac))
    form_id = sources[0].form_id if sources else None
    _audit(conn, actor, role, code_hmac, erased, reason, form_id)
    return erasure_id, erased


@contextmanager
def _overwriting(conn: Connection):
    """On SQLite, the erasing connection overwrites what it deletes with zeros (many builds
    do by default, not all); the connection's own setting is restored afterwards."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA secure_delete").scalar()
    conn.exec_driver_sql("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA secure_delete={int(before or 0)}")


def _checkpoint(engine) -> None:
    """SQLite: copy the WAL into the database and truncate it, so erased pages leave the WAL
    file (a reader holding an old snapshot can delay it: retried a few times)."""
    if engine.dialect.name != "sqlite":
        return
    for attempt in range(5):
        with engine.connect() as conn:
            busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        if not busy:
            return
        time.sleep(0.2 * (attempt + 1))
    log.warning("the WAL could not be truncated after an erasure; the next checkpoint will")


def _erase_many(
    store, key: DataKey, codes: list[str], reason: str, actor: str, role=None
) -> list[tuple[int, tuple[str, ...]]]:
    register = IdentityRegister(store.engine, key)
    out = []
    with store.engine.begin() as conn, _overwriting(conn):
        for code in codes:
            out.append(_erase_in(conn, register, code, reason, actor, role))
    _checkpoint(store.engine)
    return out


def erased_at(store, key: DataKey, code: str) -> datetime | None:
    """When a survivor's identity was erased (None: it was not)."""
    with store.engine.connect() as conn:
        return conn.execute(
            select(func.min(t.erasures.c.erased_at)).where(
                t.erasures.c.code_hmac == key.code_hmac(code.strip())
            )
        ).scalar()


def erase_identity(
    store, key: DataKey, code: str, *, reason: str, actor: str, role: str | None = None
) -> Erasure:
    """Erase one survivor's identity on her request; UnknownSurvivor when none is filed (and it
    was never erased); an identity erased before is `already` erased."""
    code = (code or "").strip()
    reason = (reason or "").strip()
    if not reason:
        raise NigraanError(
            "An erasure needs a reason.", hint="Say why, e.g. --reason 'survivor's request'."
        )
    code_hmac = key.code_hmac(code) if code else ""
    with store.engine.connect() as conn:
        filed = code_hmac in _filed_hmacs(conn) if code else False
        instances = _instances_of(conn, code_hmac) if filed else ()
    if not filed:
        when = erased_at(store, key, code) if code else None
        if when is not None:
            return Erasure(code, None, erased=True, already=True)
        raise UnknownSurvivor(
            "No identity is filed under this survivor code.",
            hint="Check the code. An identity_register submission not yet decrypted is filed "
            "by `nigraan identity import`; erase after that.",
        )
    [(erasure_id, erased)] = _erase_many(store, key, [code], reason, actor, role)
    return Erasure(code, None, erased or instances, erased=True, erasure_id=erasure_id)


def run_retention(
    store,
    key: DataKey,
    days: int,
    *,
    dry_run: bool = False,
    today: date | None = None,
    actor: str = RETENTION,
) -> RetentionRun:
    """Erase the identities of survivors whose case closed more than `days` days ago (0: keep
    until erased by hand, nothing is due); a dry run only lists them."""
    today = today or datetime.now(UTC).date()
    run = RetentionRun(days, today)
    if days <= 0:
        return run
    candidates = due(store, key, days, today)
    if dry_run or not candidates:
        run.erasures = candidates
        return run
    reason = f"retention: case closed more than {days} days ago"
    done = _erase_many(store, key, [c.code for c in candidates], reason, actor)
    run.erasures = [
        Erasure(c.code, c.closed_on, erased or c.instance_ids, erased=True, erasure_id=eid)
        for c, (eid, erased) in zip(candidates, done, strict=True)
    ]
    return run


# ------------------------------------------------------------------ keeping it erased


def is_erased_submission(conn: Connection, form_id: str, instance_id: str) -> bool:
    es = t.erased_submissions
    return (
        conn.execute(
            select(es.c.instance_id).where(
                es.c.form_id == form_id,
                or_(es.c.instance_id == instance_id, es.c.root_id == instance_id),
            )
        ).first()
        is not None
    )


def erased_ids(conn: Connection, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (form id, id) pairs name an erased submission (by instanceID or root id)."""
    es = t.erased_submissions
    by_form: dict[str, list[str]] = {}
    for form_id, some_id in pairs:
        if form_id and some_id:
            by_form.setdefault(form_id, []).append(some_id)
    found: set[tuple[str, str]] = set()
    for form_id, ids in by_form.items():
        unique = sorted(set(ids))
        for chunk in _chunks(unique):
            rows = conn.execute(
                select(es.c.instance_id, es.c.root_id).where(
                    es.c.form_id == form_id,
                    or_(es.c.instance_id.in_(chunk), es.c.root_id.in_(chunk)),
                )
            ).all()
            for instance_id, root_id in rows:
                found.add((form_id, instance_id))
                if root_id:
                    found.add((form_id, root_id))
    return found


def file_unless_erased(
    register: IdentityRegister, code: str, fields, source: tuple[str, str]
) -> str:
    """File a decrypted identity ('created'/'updated'), unless it is erased: a submission erased
    before, or one of an erased survivor found now (erased at once, envelope and all): 'erased'."""
    from store.identity_register import IdentityErased

    engine = register.engine
    with engine.begin() as conn:
        if is_erased_submission(conn, *source):
            return "erased"
        try:
            return register.put_in(conn, code, fields, source)
        except IdentityErased:
            pass
    # one more envelope of an erased survivor: erased too, under her tombstone
    with engine.begin() as conn, _overwriting(conn):
        code_hmac = register.code_hmac(code)
        erasure = conn.execute(
            select(t.erasures).where(t.erasures.c.code_hmac == code_hmac).order_by(t.erasures.c.id)
        ).first()
        erased = _erase_raw(conn, erasure.id, [source])
        _audit(conn, RETENTION, None, code_hmac, erased, erasure.reason, source[0])
    _checkpoint(engine)
    return "erased"
