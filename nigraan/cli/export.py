"""`nigraan export FORM`: a form's data as an XLSX workbook or a CSV zip in Central's shape."""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path

import click

from nigraan.cli.common import FAILED, USAGE, fail, open_store
from nigraan.errors import NigraanError

FORMATS = ("xlsx", "csv")
PROFILES = ("full", "funder")


@click.command("export")
@click.argument("form_id", metavar="FORM")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="xlsx", show_default=True)
@click.option(
    "--profile",
    type=click.Choice(PROFILES),
    default="full",
    show_default=True,
    help="full: all but identifying fields; funder: also without pseudonyms (survivor codes), "
    "restricted free text and who submitted.",
)
@click.option(
    "--choices",
    type=click.Choice(("names", "labels")),
    default="names",
    show_default=True,
    help="Choices as their names or their labels (in --language).",
)
@click.option("--language", type=click.Choice(("en", "ur")), default="en", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (owner-only, 0600); default <FORM>.xlsx or <FORM>.csv.zip here.",
)
@click.pass_obj
def export_command(config, form_id, fmt, profile, choices, language, output) -> None:
    """Export a form's submissions and repeats (written to the audit log)."""
    from reports.exports import ExportError, ExportResult, export_form, exportable_forms

    store = open_store(config)
    try:
        known = exportable_forms(store)
        if form_id not in known:
            problem = ExportError(
                f"No form {form_id!r} to export.",
                hint=f"Forms that can be exported: {', '.join(known) or 'none yet'}"
                " (`nigraan store init` registers the built forms).",
            )
            if form_id in store.export_form_ids():  # registered, but never leaves the store
                from reports.export_shape import check_exportable
                from reports.exports import latest_schema

                try:
                    check_exportable(form_id, latest_schema(store, form_id), profile, fmt)
                except ExportError as refused:
                    problem = refused
            fail(problem, USAGE)
        target = output or Path(ExportResult(form_id, fmt, profile, 0, {}).file_name)
        partial = target.with_name(target.name + ".partial")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            fail(
                NigraanError(
                    f"Cannot write {partial}: {exc.strerror}.",
                    hint="Give -o a file in a folder you may write to.",
                ),
                FAILED,
            )
        os.chmod(partial, 0o600)  # os.open's mode applies only to a file it creates
        try:
            with os.fdopen(fd, "wb") as out:
                result = export_form(
                    store,
                    form_id,
                    out,
                    fmt=fmt,
                    profile=profile,
                    choices=choices,
                    language=language,
                )
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        store.audit.record(
            "export",
            actor=f"cli:{getpass.getuser()}",
            form_id=form_id,
            record=target.name,
            address=socket.gethostname(),
            detail=f"format {fmt}, profile {profile}, choices {choices}, "
            f"{result.submissions} submissions",
        )
    except ExportError as exc:
        fail(exc, USAGE)
    finally:
        store.close()
    rows = ", ".join(f"{name}: {n}" for name, n in result.rows.items())
    click.echo(f"Wrote {target} ({fmt}, profile {profile}; rows {rows}).")
