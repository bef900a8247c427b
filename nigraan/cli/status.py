"""`nigraan status`: the health checks of `/health`, from the command line."""

from __future__ import annotations

import sys

import click

from nigraan.cli.common import FAILED, Column, print_table, store_line


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="The checks as JSON (as /health has them).")
@click.pass_obj
def status_command(config, as_json) -> None:
    """Health: database reachable, free space on the disk holding the store, the WAL and its
    checkpoints (SQLite), the last sync with Central, and the running server's /health.

    Exit 1 if a check fails; warnings (little free space, a large WAL) exit 0.
    """
    import json

    from server.health import status_report

    report = status_report(config)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        click.echo(store_line(config))
        rows = [
            (name, check["status"], check_details(name, check))
            for name, check in report["checks"].items()
        ]
        # One line per check, as before the table printer: no header, one space apart.
        print_table(
            (Column("check", 14), Column("state", 5), Column("details")), rows, gap=1, header=False
        )
        for name, check in report["checks"].items():
            if check["status"] != "ok" and check.get("message"):
                click.echo(f"  {name}: {check['message']}")
        click.echo(f"Overall: {report['status']}")
    sys.exit(FAILED if report["status"] == "fail" else 0)


def check_details(name: str, check: dict) -> str:
    """One check's figures in words."""
    if name == "database":
        return f"{check.get('backend', '')} answered in {check.get('answered_ms', '?')} ms"
    if "free_mb" in check:
        return f"{check['free_mb']} MB free"
    if name == "wal":
        if not check.get("applies", True):
            return "not SQLite: no WAL to watch"
        return (
            f"{check.get('wal_mb', 0)} MB, {check.get('failed_checkpoints_in_a_row', 0)} "
            f"failed checkpoints in a row, last {check.get('last_checkpoint_at')}"
        )
    if name == "sync":
        forms = check.get("forms", [])
        if not forms:
            return "never synced with ODK Central"
        return f"last sync {check.get('last_sync')} ({len(forms)} forms)"
    if name == "server":
        if not check.get("running"):
            return f"not running ({check.get('url')})"
        return f"{check.get('url')}: {check['status']}"
    return ""
