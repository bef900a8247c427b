"""`nigraan retention run` and `nigraan survivors erase`: identities erased on time or on request."""

from __future__ import annotations

import getpass

import click

from nigraan.cli.common import FAILED, USAGE, fail, open_store
from nigraan.cli.identity import _data_key, key_env_option, key_file_option
from nigraan.errors import NigraanError


def _shell_actor() -> str:
    try:
        return f"shell:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        return "shell"


def _key(config, key_file, key_env):
    try:
        return _data_key(config, key_file, key_env)[0]
    except NigraanError as exc:
        fail(exc, USAGE)


@click.group()
def retention() -> None:
    """Erasing survivors' identities once their case has been closed long enough."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Only list whose identity would be erased.")
@key_file_option
@key_env_option
@click.pass_obj
def run_command(config, dry_run: bool, key_file, key_env) -> None:
    """Erase the identities of survivors whose case closed more than identity.retention_days
    days ago: register entry, envelopes and .enc files; their pseudonymous records stay."""
    key = _key(config, key_file, key_env)
    days = config["identity.retention_days"]
    store = open_store(config)
    try:
        run = store.run_retention(key, days, dry_run=dry_run)
    except NigraanError as exc:
        fail(exc, FAILED)
    finally:
        store.close()
    if days == 0:
        click.echo("identity.retention_days is 0: identities are kept until erased by hand.")
        return
    verb = "would erase" if dry_run else "erased"
    for e in run.erasures:
        click.echo(
            f"{verb}: {e.code} (case closed {e.closed_on.isoformat()}; "
            f"{len(e.instance_ids)} submission version(s))"
        )
    click.echo(
        f"{len(run.erasures)} identities {verb}; kept: cases closed in the last {days} days "
        f"(up to {run.today.isoformat()})."
    )


@click.group()
def survivors() -> None:
    """Survivors' records: erasing an identity on her request."""


@survivors.command("erase")
@click.argument("code")
@click.option("--reason", required=True, help="Why (recorded in the audit log), e.g. her request.")
@key_file_option
@key_env_option
@click.pass_obj
def erase_command(config, code: str, reason: str, key_file, key_env) -> None:
    """Erase one survivor's identity now (her register entry, envelopes and .enc files) and
    keep it erased; her pseudonymous records stay."""
    from store.store import UnknownSurvivor

    key = _key(config, key_file, key_env)
    store = open_store(config)
    try:
        erasure = store.erase_identity(key, code, reason=reason, actor=_shell_actor())
    except UnknownSurvivor as exc:
        fail(exc, USAGE)
    except NigraanError as exc:
        fail(exc, USAGE if not reason.strip() else FAILED)
    finally:
        store.close()
    if erasure.already:
        click.echo(f"{erasure.code}: already erased; nothing is left to erase.")
        return
    click.echo(
        f"erased: {erasure.code} ({len(erasure.instance_ids)} submission version(s)); it "
        "cannot be filed again. Delete her identity_register submissions in ODK Central too."
    )
