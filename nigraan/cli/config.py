"""`nigraan config`: every setting and where its value came from."""

from __future__ import annotations

import click

from nigraan.config import SETTINGS


@click.command("config")
@click.pass_obj
def show_config(config) -> None:
    """List every setting, its value, where it came from and its environment variable."""
    for setting in SETTINGS:
        shown = setting.display(config[setting.name])
        click.echo(f"{setting.name} = {shown}  [{config.sources[setting.name]}]")
        click.echo(f"    {setting.help} (env {setting.env_name})")
