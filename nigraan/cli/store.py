"""`nigraan store init | load | rebuild | status`: the reporting store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nigraan.cli.common import (
    FAILED,
    USAGE,
    Column,
    fail,
    log,
    open_store,
    print_table,
    store_line,
)
from nigraan.errors import NigraanError
from nigraan.private_files import warn_and_tighten

INIT_COLUMNS = (
    Column("form", 24),
    Column("version", 11),
    Column("status", 12),
    Column("tables", right=True),
    Column("new columns", right=True),
)
STATUS_COLUMNS = (
    Column("form", 24),
    Column("submissions", right=True),
    Column("versions", right=True),
    Column("problems", right=True),
    Column("deleted", right=True),
)


@click.group()
def store() -> None:
    """The reporting store: typed tables built from the forms, raw submissions, problems."""


@store.command("init")
@click.pass_obj
def store_init(config) -> None:
    """Create or upgrade the store and register every built form (forms.build_dir).

    Idempotent. A new form version adds its columns; old rows keep their values. Forms holding
    identities, and encrypted forms, are registered but never get plain typed tables. A form the
    store refuses is reported and the others are still registered; exit 1 if any was refused.
    """
    build_dir: Path = config["forms.build_dir"]
    xforms = sorted(build_dir.glob("*.xml")) if build_dir.is_dir() else []
    if not xforms:
        fail(
            NigraanError(
                f"No built forms in {build_dir}.", hint="Run `nigraan forms build` first."
            ),
            USAGE,
        )
    db = open_store(config, upgrade=True)
    warn_and_tighten(config["instance_dir"], config["database.url"], log)  # owner-only files
    click.echo(store_line(config))
    rows = []
    refused: list[tuple[Path, NigraanError]] = []
    try:
        for path in xforms:
            try:
                result = db.register_form(path.read_bytes())
            except NigraanError as exc:  # this form only: the others still get registered
                refused.append((path, exc))
                rows.append((path.stem, "", "refused", "-", "-"))
                continue
            tables = len(db.form_tables(result.form_id))
            rows.append(
                (result.form_id, result.version, result.status, tables or "raw", result.new_columns)
            )
    finally:
        db.close()
    print_table(INIT_COLUMNS, rows)
    for path, exc in refused:
        click.secho(f"Error: {path}: not registered. {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"  {exc.hint}", err=True)
    if refused:
        click.echo(
            f"{len(refused)} of {len(xforms)} forms refused; the others are registered.", err=True
        )
        sys.exit(FAILED)


@store.command("rebuild")
@click.option("--form", "form_id", help="Only this form (default: every form).")
@click.pass_obj
def store_rebuild(config, form_id) -> None:
    """Re-derive every typed table and problem from the raw submissions.

    The raw layer is never changed; the typed rows come out identical to before unless the
    forms registered since then type them differently.
    """
    import time

    db = open_store(config)
    started = time.perf_counter()
    try:
        count = db.rebuild(form_id)
    except NigraanError as exc:  # an unknown form
        fail(exc, USAGE)
    finally:
        db.close()
    click.echo(f"Re-derived {count} submissions in {time.perf_counter() - started:.1f} s.")


@store.command("load")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--form", "form_id", help="Form id of OData JSON files (they do not name it).")
@click.option(
    "--media",
    type=click.Path(exists=True, file_okay=False),
    help="Folder holding the attachments the instances name.",
)
@click.pass_obj
def store_load(config, files, form_id, media) -> None:
    """Load submissions from files: instance XML (as ODK Collect writes them) or Central
    OData JSON (a `$expand=*` response, or a list of its rows; needs --form)."""
    from store.instance_files import read_instance_files
    from store.store import REJECTED

    try:
        loaded = read_instance_files(files, form_id, Path(media) if media else None)
    except NigraanError as exc:  # OData JSON without --form, a file that is not JSON
        fail(exc, USAGE)
    db = open_store(config)
    try:
        results = db.ingest_many([item.incoming for item in loaded])
    finally:
        db.close()
    tally: dict[str, int] = {}
    for result in results:
        tally[result.status] = tally.get(result.status, 0) + 1
    problems = sum(len(r.problems) for r in results)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))
    click.echo(f"{len(results)} submissions: {summary}; {problems} problems recorded.")
    refused = [
        (item.name, r) for item, r in zip(loaded, results, strict=True) if r.status in REJECTED
    ]
    for name, result in refused:
        click.echo(f"not stored: {name}: {result.status}: {result.message}", err=True)
    if refused:
        sys.exit(FAILED)


@store.command("status")
@click.pass_obj
def store_status(config) -> None:
    """Where the store is, and per form: submissions, stored versions, problems, deleted."""
    db = open_store(config)
    try:
        counts = db.counts()
    finally:
        db.close()
    click.echo(store_line(config))
    rows = [
        (
            form_id,
            row.get("submissions", 0),
            row.get("versions", 0),
            row.get("problems", 0),
            row.get("deleted", 0),
        )
        for form_id, row in sorted(counts.items())
    ]
    print_table(STATUS_COLUMNS, rows)
