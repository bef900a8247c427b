"""`nigraan keys create`: the key pair encrypted forms are built with."""

from __future__ import annotations

import os
from pathlib import Path

import click

from nigraan.cli.common import USAGE, fail, log
from nigraan.errors import NigraanError


@click.group()
def keys() -> None:
    """Encryption keys for encrypted forms."""


@keys.command("create")
@click.option(
    "--passphrase-env",
    metavar="VAR",
    help="Protect the private key with the passphrase in this environment variable.",
)
@click.option(
    "--no-passphrase",
    is_flag=True,
    help="Write the private key unprotected (development only).",
)
@click.option("--if-missing", is_flag=True, help="Do nothing when the public key exists.")
@click.pass_obj
def keys_create(config, passphrase_env, no_passphrase, if_missing) -> None:
    """Create the RSA key pair whose public key encrypted forms are built with.

    The public key goes to forms.public_key_file; the private key beside it (mode 0600).
    Move the private key off this machine to wherever identities may be read.
    """
    from nigraan.keys import create_key_pair

    public_path: Path = config["forms.public_key_file"]
    if if_missing and public_path.exists():
        click.echo(f"Public key already at {public_path}; nothing to do.")
        return
    if passphrase_env:
        passphrase = os.environ.get(passphrase_env, "").encode()
        if not passphrase:
            fail(
                NigraanError(f"The environment variable {passphrase_env} is empty or unset."), USAGE
            )
    elif no_passphrase:
        passphrase = None
    else:
        passphrase = click.prompt(
            "Passphrase for the private key", hide_input=True, confirmation_prompt=True
        ).encode()
    try:
        private_path = create_key_pair(public_path, passphrase)
    except NigraanError as exc:  # a key is there already: never overwritten
        fail(exc, USAGE)
    click.echo(f"Public key:  {public_path}")
    click.echo(f"Private key: {private_path} (mode 0600)")
    if passphrase is None:
        log.warning(
            "the private key is not protected by a passphrase: anyone who can read it can read "
            "every identity_register submission — move it off this machine, or make a new pair "
            "with --passphrase-env"
        )
