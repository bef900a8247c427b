"""`nigraan identity …`: the data key, filing decrypted identities, key rotation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from nigraan.cli.common import FAILED, USAGE, fail, open_store
from nigraan.data_key import DEFAULT_ENV, DataKey, create_data_key_file, data_key_from_config
from nigraan.errors import KeyFileError, NigraanError
from nigraan.keys import load_private_key, passphrase_from, private_key_path_for


def default_key_file(config) -> Path:
    return Path(config["identity.key_file"])


def _data_key(config, key_file: str | None, key_env: str | None) -> tuple[DataKey, Path | None]:
    if key_env:
        return DataKey.from_env(key_env), None
    if config["identity.key"] and not key_file:
        return data_key_from_config(config), None
    path = Path(key_file) if key_file else default_key_file(config)
    return DataKey.from_file(path), path


key_file_option = click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    help="The identity data key file (default: the identity.key_file setting, mode 0600).",
)
key_env_option = click.option(
    "--key-env",
    metavar="VAR",
    help=f"Read the data key from this environment variable instead (e.g. {DEFAULT_ENV}).",
)


@click.group()
def identity() -> None:
    """The identity register: names, CNIC, phones, addresses, stored only encrypted."""


@identity.command("key-create")
@key_file_option
@click.option(
    "--if-missing",
    is_flag=True,
    help="Do nothing when the key file exists (or identity.key holds the key).",
)
@click.pass_obj
def key_create(config, key_file: str | None, if_missing: bool) -> None:
    """Make the register's data key (32 random bytes, a 0600 file); never overwrites one."""
    path = Path(key_file) if key_file else default_key_file(config)
    if if_missing and (path.exists() or (config["identity.key"] and not key_file)):
        click.echo(f"Data key kept ({'identity.key' if not path.exists() else path}).")
        return
    try:
        key = create_data_key_file(path)
    except NigraanError as exc:
        fail(exc, USAGE)
    click.echo(
        f"Data key {key.key_id} written to {path} (mode 0600). Keep a copy offline: "
        "without it the register cannot be read."
    )


@identity.command("import")
@click.option("--form", "form_id", default="identity_register", show_default=True)
@click.option(
    "--passphrase-env",
    metavar="VAR",
    help="Read the form's private key passphrase from this environment variable "
    "(default: asked for, when the key has one).",
)
@key_file_option
@key_env_option
@click.pass_obj
def import_command(config, form_id, passphrase_env, key_file, key_env) -> None:
    """Decrypt the stored identity submissions and file them in the register."""
    from store.encrypted_submissions import decryption_flags, import_identities
    from store.identity_register import IdentityRegister

    private_path = private_key_path_for(Path(config["forms.public_key_file"]))
    try:
        data_key, _ = _data_key(config, key_file, key_env)
        passphrase = passphrase_from(passphrase_env)
        try:
            private_key = load_private_key(private_path, passphrase)
        except KeyFileError:
            if passphrase is not None or passphrase_env:
                raise
            asked = passphrase_from(None, prompt=lambda text: click.prompt(text, hide_input=True))
            private_key = load_private_key(private_path, asked)
    except NigraanError as exc:
        fail(exc, USAGE)
    store = open_store(config)
    try:
        counts = import_identities(
            store, IdentityRegister(store.engine, data_key), private_key, form_id
        )
        flags = decryption_flags(store, form_id)
    finally:
        store.close()
    filed = counts.get("created", 0) + counts.get("updated", 0)
    click.echo(f"{filed} identities filed ({counts.get('created', 0)} new).")
    for flag in flags:
        click.echo(f"not decrypted: {flag['instance_id']} ({flag['reason']}): {flag['message']}")
    if flags:
        sys.exit(1)


@identity.command("rotate")
@key_file_option
@click.pass_obj
def rotate_command(config, key_file) -> None:
    """Re-encrypt the whole register under a new data key, then replace the key file with it.

    The new key is written beside the old one as `<file>.new` (0600) first; the register is
    re-encrypted in one transaction; then `<file>.new` replaces the key file, so the old key is
    gone from disk. Backups of the database made before still need the old key."""
    from store.identity_register import IdentityRegister

    path = Path(key_file) if key_file else default_key_file(config)
    pending = path.with_name(path.name + ".new")
    try:
        old = DataKey.from_file(path)
        if pending.exists():
            raise KeyFileError(
                f"{pending} exists: an earlier rotation stopped after writing its new key.",
                hint=f"Check which key opens the register (`--key-file {pending}`), keep that "
                "one as the key file, remove the other, and rotate again.",
            )
        new = create_data_key_file(pending)
    except NigraanError as exc:
        fail(exc, USAGE)
    store = open_store(config)
    try:
        count = IdentityRegister(store.engine, old).rotate(new)
    except NigraanError as exc:
        pending.unlink()  # nothing was re-encrypted: the old key stays the key
        fail(exc, FAILED)
    finally:
        store.close()
    os.replace(pending, path)
    click.echo(
        f"{count} identities re-encrypted under data key {new.key_id}; {path} now holds "
        f"it and the old key {old.key_id} opens nothing."
    )
