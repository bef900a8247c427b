"""`nigraan forms build` and `nigraan forms check`."""

from __future__ import annotations

import sys

import click

from nigraan.cli.common import USAGE, Column, fail, print_table
from nigraan.errors import NigraanError

REPORT_COLUMNS = (
    Column("form", 24),
    Column("version", 11),
    Column("fields", right=True),
    Column("encrypted"),
    Column("warnings", right=True),
    Column("status"),
)


@click.group()
def forms() -> None:
    """Build and check the XLSForms."""


def print_report(report, action: str, verbose: bool) -> None:
    """The problems worth showing, then one line per form and the count that passed."""
    for problem in report.list_problems:
        click.echo(str(problem))
    for form in report.forms:
        for problem in form.problems:
            if verbose or problem.level == "error" or problem.source != "nigraan":
                click.echo(str(problem))
    click.echo("")
    rows = []
    for form in report.forms:
        errors = sum(p.level == "error" for p in form.problems)
        warnings = sum(p.level == "warning" for p in form.problems)
        status = action if form.ok else f"FAILED ({errors} error{'s' if errors != 1 else ''})"
        encrypted = "yes" if form.compiled and form.compiled.encrypted else "no"
        rows.append((form.form_id, form.version, form.field_count, encrypted, warnings, status))
    print_table(REPORT_COLUMNS, rows)
    good = sum(f.ok for f in report.forms)
    click.echo(f"\n{good} of {len(report.forms)} forms {action}.")


def _run_forms(config, action: str, form_ids, no_validate: bool, verbose: bool) -> None:
    """Shared body of `forms build` and `forms check`: run, print, exit 0 or 1."""
    from forms.build import build_forms, check_forms

    run = build_forms if action == "built" else check_forms
    try:
        report = run(config, list(form_ids) or None, False if no_validate else None)
    except NigraanError as exc:  # an unknown form id, a missing key: asked wrongly
        fail(exc, USAGE)
    print_report(report, action, verbose)
    if action == "built":
        click.echo(f"Build folder: {config['forms.build_dir']}")
    sys.exit(0 if report.ok else 1)


def _form_options(command):
    command = click.pass_obj(command)
    command = click.option("-v", "--verbose", is_flag=True, help="Show warnings too.")(command)
    command = click.option(
        "--no-validate", is_flag=True, help="Skip ODK Validate (faster; not for release)."
    )(command)
    return click.argument("form_ids", nargs=-1)(command)


@forms.command("build")
@_form_options
def forms_build(config, form_ids, no_validate, verbose) -> None:
    """Check and compile forms (all, or FORM_IDS) into the build folder.

    Each form that passes the project rules, pyxform and ODK Validate is written as
    <build_dir>/<form_id>.xml with its media, and its version is recorded in
    forms/built-versions.json. A form with errors is not written; the command exits 1.
    """
    _run_forms(config, "built", form_ids, no_validate, verbose)


@forms.command("check")
@_form_options
def forms_check(config, form_ids, no_validate, verbose) -> None:
    """Check forms (all, or FORM_IDS) against pyxform, ODK Validate and the project rules.

    Writes nothing. Rules: English and Urdu everywhere; identifiers only in identity_register;
    a sensitivity class on every survivor-form field; a new version for changed content.
    """
    _run_forms(config, "passed", form_ids, no_validate, verbose)
