"""The `nigraan` command line."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from nigraan.config import BY_NAME, SETTINGS, Config, load_config
from nigraan.errors import NigraanError
from nigraan.logs import setup_from_config, setup_logging

log = logging.getLogger("nigraan")


def _fail(exc: NigraanError, code: int = 2) -> None:
    """Log the error, what to do, and exit with `code`."""
    log.error("%s", f"{exc.message} — {exc.hint}" if exc.hint else exc.message)
    sys.exit(code)


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
            after = ("; the next `nigraan sync` carries on where this one stopped"
                     if ctx.invoked_subcommand == "sync" else "")  # fmt: skip
            log.error("%s", explain(cause, location, "cannot use the store", after),
                      extra={"cause": cause.kind})  # fmt: skip
            sys.exit(1)


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
    except NigraanError as exc:
        _fail(exc)
    setup_from_config(ctx.obj)


@main.command("config")
@click.pass_obj
def show_config(config) -> None:
    """List every setting, its value, where it came from and its environment variable."""
    for setting in SETTINGS:
        shown = setting.display(config[setting.name])
        click.echo(f"{setting.name} = {shown}  [{config.sources[setting.name]}]")
        click.echo(f"    {setting.help} (env {setting.env_name})")


@main.group()
def forms() -> None:
    """Build and check the XLSForms."""


def _print_report(report, action: str, verbose: bool) -> None:
    for problem in report.list_problems:
        click.echo(str(problem))
    for form in report.forms:
        for problem in form.problems:
            if verbose or problem.level == "error" or problem.source != "nigraan":
                click.echo(str(problem))
    click.echo("")
    header = f"{'form':24} {'version':11} {'fields':>6}  {'encrypted':9}  {'warnings':>8}  status"
    click.echo(header)
    click.echo("-" * len(header))
    for form in report.forms:
        errors = sum(p.level == "error" for p in form.problems)
        warnings = sum(p.level == "warning" for p in form.problems)
        status = action if form.ok else f"FAILED ({errors} error{'s' if errors != 1 else ''})"
        encrypted = "yes" if form.compiled and form.compiled.encrypted else "no"
        click.echo(
            f"{form.form_id:24} {form.version:11} {form.field_count:>6}  {encrypted:9}  "
            f"{warnings:>8}  {status}"
        )
    good = sum(f.ok for f in report.forms)
    click.echo(f"\n{good} of {len(report.forms)} forms {action}.")


def _run_forms(config, action: str, form_ids, no_validate: bool, verbose: bool) -> None:
    """Shared body of `forms build` and `forms check`: run, print, exit 0 or 1."""
    from forms.build import build_forms, check_forms

    run = build_forms if action == "built" else check_forms
    try:
        report = run(config, list(form_ids) or None, False if no_validate else None)
    except NigraanError as exc:
        _fail(exc)
    _print_report(report, action, verbose)
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


@main.group()
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
            _fail(NigraanError(f"The environment variable {passphrase_env} is empty or unset."))
    elif no_passphrase:
        passphrase = None
    else:
        passphrase = click.prompt(
            "Passphrase for the private key", hide_input=True, confirmation_prompt=True
        ).encode()
    try:
        private_path = create_key_pair(public_path, passphrase)
    except NigraanError as exc:
        _fail(exc)
    click.echo(f"Public key:  {public_path}")
    click.echo(f"Private key: {private_path} (mode 0600)")
    if passphrase is None:
        log.warning(
            "the private key is not protected by a passphrase: anyone who can read it can read "
            "every identity_register submission — move it off this machine, or make a new pair "
            "with --passphrase-env"
        )


@main.group()
def store() -> None:
    """The reporting store: typed tables built from the forms, raw submissions, problems."""


def _open_store(config, *, upgrade: bool = False):
    from store.store import Store

    try:
        return Store.from_config(config, upgrade=upgrade)
    except NigraanError as exc:
        _fail(exc)


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
        _fail(
            NigraanError(f"No built forms in {build_dir}.", hint="Run `nigraan forms build` first.")
        )
    db = _open_store(config, upgrade=True)
    click.echo(f"Store: {BY_NAME['database.url'].display(config['database.url'])}")
    header = f"{'form':24} {'version':11} {'status':12} {'tables':>6}  {'new columns':>11}"
    click.echo(header)
    click.echo("-" * len(header))
    refused: list[tuple[Path, NigraanError]] = []
    try:
        for path in xforms:
            try:
                result = db.register_form(path.read_bytes())
            except NigraanError as exc:  # this form only: the others still get registered
                refused.append((path, exc))
                click.echo(f"{path.stem:24} {'':11} {'refused':12} {'-':>6}  {'-':>11}")
                continue
            tables = len(db.form_tables(result.form_id))
            shown = tables if tables else "raw"
            click.echo(
                f"{result.form_id:24} {result.version:11} {result.status:12} {shown:>6}  "
                f"{result.new_columns:>11}"
            )
    finally:
        db.close()
    for path, exc in refused:
        click.secho(f"Error: {path}: not registered. {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"  {exc.hint}", err=True)
    if refused:
        click.echo(
            f"{len(refused)} of {len(xforms)} forms refused; the others are registered.", err=True
        )
        sys.exit(1)


@store.command("rebuild")
@click.option("--form", "form_id", help="Only this form (default: every form).")
@click.pass_obj
def store_rebuild(config, form_id) -> None:
    """Re-derive every typed table and problem from the raw submissions.

    The raw layer is never changed; the typed rows come out identical to before unless the
    forms registered since then type them differently.
    """
    import time

    db = _open_store(config)
    started = time.perf_counter()
    try:
        count = db.rebuild(form_id)
    except NigraanError as exc:
        _fail(exc)
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
    import json
    import mimetypes

    from store.document import SubmissionError, from_openrosa_xml
    from store.store import REJECTED, Incoming

    media_files = {p.name: p for p in Path(media).iterdir() if p.is_file()} if media else {}
    items, names, ids = [], [], []
    for name in files:
        path = Path(name)
        data = path.read_bytes()
        if path.suffix.lower() == ".json":
            if not form_id:
                _fail(NigraanError(f"{path} is OData JSON, which does not name its form.",
                                   hint="Give the form id with --form."))  # fmt: skip
            rows = json.loads(data)
            rows = rows.get("value", []) if isinstance(rows, dict) else rows
            items += [Incoming(row, "central", form_id) for row in rows]
            names += [f"{path} (row {i + 1})" for i in range(len(rows))]
            ids += [(None, None)] * len(rows)  # OData rows name their root: any order works
            continue
        try:
            doc = from_openrosa_xml(data)
        except SubmissionError:
            doc = None
        attachments = {}
        if media_files and doc is not None:
            # Offer every media file the instance names (an envelope: its .enc files); the
            # store keeps those its form's attachment fields name (all when the form is unknown).
            values = doc.files if doc.encrypted else _leaf_values(doc.data)
            for file_name in dict.fromkeys(v for v in values if v in media_files):
                kind = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
                attachments[file_name] = (media_files[file_name].read_bytes(), kind)
        items.append(Incoming(data, "file", attachments=attachments))
        names.append(str(path))
        key = (doc.form_id, doc.instance_id) if doc is not None and doc.instance_id else None
        ids.append((key, (doc.form_id, doc.deprecated_id) if key and doc.deprecated_id else None))
    order = originals_first(ids)
    db = _open_store(config)
    try:
        results = db.ingest_many([items[i] for i in order])
    finally:
        db.close()
    tally: dict[str, int] = {}
    for result in results:
        tally[result.status] = tally.get(result.status, 0) + 1
    problems = sum(len(r.problems) for r in results)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))
    click.echo(f"{len(results)} submissions: {summary}; {problems} problems recorded.")
    refused = [(names[i], r) for i, r in zip(order, results, strict=True) if r.status in REJECTED]
    for name, result in refused:
        click.echo(f"not stored: {name}: {result.status}: {result.message}", err=True)
    if refused:
        sys.exit(1)


def originals_first(ids: list[tuple]) -> list[int]:
    """The order to load submissions in so an edit comes after the version it edits.

    `ids[i]` is (its key, the key of the version it edits or None); keys are any hashable.
    Edits of versions not in the list keep their place; otherwise the input order is kept.
    """
    position = {key: i for i, (key, _) in enumerate(ids) if key is not None}
    order: list[int] = []
    placed: set[int] = set()
    for start in range(len(ids)):
        chain = []
        i: int | None = start
        while i is not None and i not in placed and i not in chain:  # the originals first
            chain.append(i)
            edits = ids[i][1]
            i = position.get(edits) if edits is not None else None
        for j in reversed(chain):
            placed.add(j)
            order.append(j)
    return order


def _leaf_values(data) -> list:
    """Every leaf value of a document, through groups and repeats."""
    found: list = []
    values = data.values() if isinstance(data, dict) else data if isinstance(data, list) else []
    for value in values:
        found += _leaf_values(value) if isinstance(value, (dict, list)) else [value]
    return found


@store.command("status")
@click.pass_obj
def store_status(config) -> None:
    """Where the store is, and per form: submissions, stored versions, problems, deleted."""
    db = _open_store(config)
    try:
        counts = db.counts()
    finally:
        db.close()
    click.echo(f"Store: {BY_NAME['database.url'].display(config['database.url'])}")
    header = f"{'form':24} {'submissions':>11} {'versions':>8} {'problems':>8} {'deleted':>7}"
    click.echo(header)
    click.echo("-" * len(header))
    for form_id, row in sorted(counts.items()):
        click.echo(
            f"{form_id:24} {row.get('submissions', 0):>11} {row.get('versions', 0):>8} "
            f"{row.get('problems', 0):>8} {row.get('deleted', 0):>7}"
        )


@main.command("status")
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
        click.echo(f"Store: {BY_NAME['database.url'].display(config['database.url'])}")
        for name, check in report["checks"].items():
            click.echo(f"{name:14} {check['status']:5} {_check_details(name, check)}")
        for name, check in report["checks"].items():
            if check["status"] != "ok" and check.get("message"):
                click.echo(f"  {name}: {check['message']}")
        click.echo(f"Overall: {report['status']}")
    sys.exit(1 if report["status"] == "fail" else 0)


def _check_details(name: str, check: dict) -> str:
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


def _add_server_commands() -> None:
    from server.cli import app_users, serve_command

    main.add_command(serve_command)
    main.add_command(app_users)


_add_server_commands()


# ODK Central: `central publish`, `central app-users`, `sync`, `review` (sync/cli.py).
from sync.cli import register as _register_sync  # noqa: E402

_register_sync(main)
