"""The `nigraan` command line: the top group, composed of one module per command group.

`nigraan.cli.common` holds what the command modules share (exit codes, opening the store, the
table printer); each command module imports only it and the libraries, never this package's
top, so every module imports on its own.
"""

from __future__ import annotations

import sys

import click

from nigraan.cli.central import central, review_command, sync_command
from nigraan.cli.common import FAILED, USAGE, fail, log
from nigraan.cli.config import show_config
from nigraan.cli.export import export_command
from nigraan.cli.forms import forms
from nigraan.cli.identity import identity
from nigraan.cli.keys import keys
from nigraan.cli.retention import retention, survivors
from nigraan.cli.serve import app_users, serve_command
from nigraan.cli.status import status_command
from nigraan.cli.store import store
from nigraan.cli.users import audit_command, users
from nigraan.config import Config, load_config
from nigraan.errors import NigraanError
from nigraan.logs import setup_from_config, setup_logging
from reports.cli import report


class _Commands(click.Group):
    """The `nigraan` group: a full disk, a failing disk or a database that went away stops any
    command with one line saying so and what to do, not a traceback."""

    def invoke(self, ctx: click.Context):
        from sqlalchemy.exc import SQLAlchemyError

        from nigraan.logs import OTHER, StoreLocation, classify, explain

        try:
            return super().invoke(ctx)
        except (SQLAlchemyError, OSError) as exc:
            cause = classify(exc)
            if cause.kind == OTHER or not isinstance(ctx.obj, Config):
                raise
            location = StoreLocation.from_url(ctx.obj["database.url"])
            after = (
                "; the next `nigraan sync` carries on where this one stopped"
                if ctx.invoked_subcommand == "sync"
                else ""
            )
            log.error(
                "%s",
                explain(cause, location, "cannot use the store", after),
                extra={"cause": cause.kind},
            )
            sys.exit(FAILED)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML config file (also NIGRAAN_CONFIG). Settings: `nigraan config`.",
)
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """nigraan: ODK forms backend for custody monitoring and survivor support."""
    setup_logging()  # until the settings are read
    try:
        ctx.obj = load_config(config_file)
    except NigraanError as exc:  # an unknown or wrong-typed setting
        fail(exc, USAGE)
    setup_from_config(ctx.obj)


for _command in (
    show_config,
    forms,
    keys,
    store,
    status_command,
    serve_command,
    app_users,
    central,
    sync_command,
    review_command,
    report,
    export_command,
    identity,
    retention,
    survivors,
    users,
    audit_command,
):
    main.add_command(_command)
