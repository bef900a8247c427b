"""`nigraan users ...` (people's accounts of the web app) and `nigraan audit` (the audit log)."""

from __future__ import annotations

import getpass
import socket
from datetime import UTC, datetime

import click

from nigraan.cli.common import USAGE, Column, fail, format_table, open_store
from nigraan.errors import NigraanError

ROLES = ("admin", "supervisor", "caseworker", "monitor", "viewer")


def _audit(store, name: str, detail: str) -> None:
    """A user change made at the command line: who ran it, from this machine."""
    store.audit.record(
        "user change",
        actor=f"cli:{getpass.getuser()}",
        role="admin",
        record=name,
        address=socket.gethostname(),
        detail=detail,
    )


@click.group("users")
def users() -> None:
    """People's accounts for the web app (sign-in at the server's address)."""


@users.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What they may see and do.")
@click.option("--unit", help="A caseworker's support unit (forms/reference/support_units.csv).")
@click.option("--if-missing", is_flag=True, help="Do nothing if a user of that name exists.")
@click.pass_obj
def users_create(config, name, role, unit, if_missing) -> None:
    """Make a person's account; its password is printed once (only a hash is kept)."""
    from server import server_url
    from server.web.accounts import hash_password, new_password, support_units
    from server.web.admin import check_unit
    from store.people import PersonError

    if unit is not None and unit not in support_units(config):
        fail(
            NigraanError(
                f"No support unit {unit!r}.", hint=f"Units: {', '.join(support_units(config))}."
            ),
            USAGE,
        )
    store = open_store(config)
    try:
        if if_missing and store.people.by_name(name) is not None:
            click.echo(
                f"User {name!r} exists; its password was shown when it was made "
                f"(`nigraan users reset-password {name}` makes a new one)."
            )
            click.echo(f"Sign in at {server_url(config)}/")
            return
        check_unit(role, unit)
        password = new_password()
        store.people.create(name, hash_password(password), role, unit)
        _audit(store, name, f"created, role {role}" + (f", unit {unit}" if unit else ""))
    except PersonError as exc:
        fail(exc, USAGE)
    finally:
        store.close()
    click.echo(f"User {name!r} ({role}{', ' + unit if unit else ''}) made.")
    click.echo(f"  password (shown once, give it privately): {password}")
    click.echo(f"Sign in at {server_url(config)}/")


@users.command("list")
@click.pass_obj
def users_list(config) -> None:
    """The people, their roles and units, active, disabled or locked (no secrets)."""
    store = open_store(config)
    try:
        people = store.people.all()
    finally:
        store.close()
    now = datetime.now(UTC)
    rows = [
        (
            p.name,
            p.role,
            p.unit or "",
            "disabled"
            if not p.active
            else "locked"
            if p.locked_until and p.locked_until > now
            else "active",
            p.created_at.strftime("%Y-%m-%d"),
        )
        for p in people
    ]
    columns = [Column("name"), Column("role"), Column("unit"), Column("state"), Column("created")]
    for line in format_table(columns, rows):
        click.echo(line)


@users.command("disable")
@click.argument("name")
@click.pass_obj
def users_disable(config, name) -> None:
    """Refuse a person's sign-ins and end their sessions; the account stays for the record."""
    from store.people import PersonError

    store = open_store(config)
    try:
        store.people.disable(name)
        _audit(store, name, "disabled")
    except PersonError as exc:
        fail(exc, USAGE)
    finally:
        store.close()
    click.echo(f"User {name!r} disabled.")


@users.command("reset-password")
@click.argument("name")
@click.pass_obj
def users_reset_password(config, name) -> None:
    """A new password, printed once; lifts a lock and ends the old sessions."""
    from server.web.accounts import hash_password, new_password
    from store.people import PersonError

    store = open_store(config)
    password = new_password()
    try:
        store.people.set_password(name, hash_password(password))
        _audit(store, name, "password reset")
    except PersonError as exc:
        fail(exc, USAGE)
    finally:
        store.close()
    click.echo(f"New password for {name!r} (shown once, give it privately): {password}")


@click.command("audit")
@click.option("--user", "actor", help="Only what this person (or device account) did.")
@click.option("--since", help="Only from this day (YYYY-MM-DD) or instant (ISO 8601, UTC).")
@click.pass_obj
def audit_command(config, actor, since) -> None:
    """The audit log, newest first: sign-ins, user changes, views, downloads, decisions."""
    moment = None
    if since:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            fail(
                NigraanError(
                    f"--since {since!r} is not a date.",
                    hint="Write it as YYYY-MM-DD, e.g. 2026-12-01.",
                ),
                USAGE,
            )
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    store = open_store(config)
    try:
        rows = store.audit.entries(actor=actor, since=moment, limit=100_000)
    finally:
        store.close()
    columns = [
        Column("when (UTC)"),
        Column("who"),
        Column("role"),
        Column("what"),
        Column("record"),
        Column("address"),
    ]
    lines = format_table(
        columns,
        [
            (
                r["at"].strftime("%Y-%m-%d %H:%M:%S"),
                r["actor"],
                r["role"] or "",
                r["action"] + (f" ({r['detail']})" if r["detail"] else ""),
                "/".join(x for x in (r["form_id"], r["record"]) if x),
                r["address"] or "",
            )
            for r in rows
        ],
    )
    for line in lines:
        click.echo(line)
