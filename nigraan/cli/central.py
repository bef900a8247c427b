"""Commands for ODK Central: `central publish`, `central app-users`, `sync`, `review`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from nigraan.cli.common import FAILED, USAGE, Column, fail, format_table, open_store
from nigraan.errors import NigraanError

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = (
    Column("form", 24),
    Column("new", 6, right=True),
    Column("changed", right=True),
    Column("deleted", right=True),
    Column("restored", right=True),
    Column("files", 6, right=True),
    Column("waiting", right=True),
    Column("problems", right=True),
)


def _central(config):
    from sync.central import Central

    try:
        return Central.from_config(config)
    except NigraanError as exc:  # settings missing or wrong
        fail(exc, USAGE)


@click.group()
def central() -> None:
    """Publish forms to ODK Central and give collectors access."""


@central.command("publish")
@click.argument("form_ids", nargs=-1)
@click.pass_obj
def central_publish(config, form_ids) -> None:
    """Create or update the built forms (all, or FORM_IDS) in Central.

    Each form is uploaded as a draft with its media and reference CSVs and published with its
    version; forms Central already has at the same version are skipped. Exit 1 if one failed.
    """
    from sync.publish import FAILED, publish

    central_ = _central(config)
    try:
        results = publish(central_, Path(config["forms.build_dir"]), list(form_ids) or None)
    except NigraanError as exc:
        fail(exc, FAILED)
    for r in results:
        line = f"{r.form_id:24} {r.version:11} {r.status}"
        click.echo(line if not r.message else f"{line}: {r.message}")
    failed = sum(r.status == FAILED for r in results)
    click.echo(f"\n{len(results) - failed} of {len(results)} forms published or up to date.")
    sys.exit(FAILED if failed else 0)


@central.command("app-users")
@click.argument("names", nargs=-1, required=True)
@click.option(
    "--form",
    "form_ids",
    multiple=True,
    help="Give access to this form (repeatable; default: every built form).",
)
@click.option(
    "--qr-dir",
    type=click.Path(file_okay=False),
    help="Write each user's Collect QR code here as <name>.png (default: the current folder).",
)
@click.pass_obj
def central_app_users(config, names, form_ids, qr_dir) -> None:
    """Create app users NAMES (existing ones are kept), grant form access, print their QR codes.

    The QR code carries the user's server URL with its access key: treat it like a password.
    """
    from sync.publish import built_forms, create_app_users

    central_ = _central(config)
    try:
        forms = list(form_ids) or sorted(built_forms(Path(config["forms.build_dir"])))
        users = create_app_users(central_, list(names), forms)
        project = central_.get_json(central_.path("projects/{project_id}"))["name"]
    except NigraanError as exc:
        fail(exc, FAILED)
    for name in names:
        user = next((u for u in users if u["displayName"] == name and u.get("token")), None)
        if user is None:
            click.echo(f"{name}: no active app user (revoked?)")
            continue
        url = f"{central_.settings.shown_url}/v1/key/{user['token']}/projects/{central_.project_id}"
        click.echo(f"{name} (app user {user['id']}): forms {', '.join(forms)}")
        _print_qr(url, project, qr_file_name(name, user["id"]), qr_dir)


def qr_file_name(name: str, user_id: int) -> str:
    """The PNG file name for app user `name`: `<name>.png` when the name is a plain file name.

    Central's display names can be anything; one with a path separator, a control character
    or a leading dot (`../x`, `a/b`, `.hidden`) gets those replaced by `_` and its app user id
    added (`_._x-7.png`), so the file stays in the QR folder and `a/b` does not take `a_b`'s.
    """
    safe = "".join("_" if ch in "/\\" or not ch.isprintable() else ch for ch in name)
    if safe == name and name.strip() and not name.startswith("."):
        return f"{name}.png"
    safe = "_" + safe[1:] if safe.startswith(".") else safe
    return f"{safe.strip() or 'app-user'}-{user_id}.png"


def _print_qr(server_url: str, project: str, file_name: str, qr_dir: str | None) -> None:
    """The user's Collect QR code (as Central makes it), on the terminal and as a 0600 PNG."""
    from nigraan.collect_qr import collect_settings, write_qr

    settings = collect_settings(server_url, project)
    target = Path(qr_dir or ".") / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    click.echo(write_qr(settings, str(target)))
    click.echo(f"  QR code written to {target}")


@click.command("sync")
@click.option(
    "--form",
    "form_ids",
    multiple=True,
    help="Only this form (repeatable; default: every published form of the project).",
)
@click.option("--full", is_flag=True, help="Read every submission again, not only what changed.")
@click.pass_obj
def sync_command(config, form_ids, full) -> None:
    """Mirror the Central project into the store: new, edited, reviewed, deleted, attachments.

    Pending review decisions (`nigraan review`) are pushed first. Incremental after the first
    run; a sync that was stopped carries on where it stopped. Exit 1 if Central could not be
    reached after retries.
    """
    from nigraan.identity_keys import load_identity_keys
    from sync.pull import pull_forms
    from sync.review_outbox import push_reviews
    from sync.schedule import LEASE_SECONDS, holder_name  # web-queue: one sync at a time

    central_ = _central(config)
    # Encrypted submissions are decrypted and identities filed when the keys open (a
    # protected private key's passphrase from NIGRAAN_IDENTITY_PASSPHRASE, or asked for).
    prompt = (lambda text: click.prompt(text, hide_input=True)) if sys.stdin.isatty() else None
    identity_keys = load_identity_keys(config, prompt, log)
    store = open_store(config)
    holder = holder_name("shell")
    if not store.take_sync_lease(holder, LEASE_SECONDS):
        store.close()
        fail(
            NigraanError(
                "Another sync with ODK Central is running (the server's schedule or another shell).",
                hint="Wait for it to end and run `nigraan sync` again.",
            ),
            FAILED,
        )
    bars: dict[str, click.progressbar] = {}

    def progress(form_id: str, done: int, total: int | None) -> None:
        bar = bars.get(form_id)
        if bar is None:
            bar = bars[form_id] = click.progressbar(
                length=total or 0, label=f"{form_id:24}", file=sys.stderr
            )
            bar.__enter__()
        bar.update(done)

    results = []
    try:
        pushed = push_reviews(central_, store)
        if pushed.unavailable:
            raise pushed.unavailable
        for result in pull_forms(
            central_,
            store,
            list(form_ids) or None,
            full,
            progress,
            identity_keys=identity_keys,
            managed_passphrase=config["identity.passphrase"] or None,
        ):
            results.append(result)
            store.take_sync_lease(holder, LEASE_SECONDS)  # web-queue: renewed after each form
            if result.form_id in bars:
                bars[result.form_id].__exit__(None, None, None)
    except NigraanError as exc:
        for bar in bars.values():
            bar.__exit__(None, None, None)
        _print_summary(results)
        fail(exc, FAILED)
    finally:
        store.release_sync_lease(holder)  # web-queue
        store.close()
    if pushed.applied or pushed.failures:
        click.echo(f"Review decisions pushed: {pushed.applied}; still pending: {pushed.pending}")
        for failure in pushed.failures:
            log.warning("review decision not applied: %s", failure)
    _print_summary(results)
    if any(r.refused for r in results):
        sys.exit(FAILED)


def _print_summary(results) -> None:
    if not results:
        return
    rows = [
        (
            r.form_id,
            r.new,
            r.changed,
            r.deleted,
            r.restored,
            r.attachments,
            r.attachments_waiting,
            len(r.problems),
        )
        for r in results
    ]
    # One space apart and "  (resumed)" after the row: the summary as it always was.
    header, rule, *lines = format_table(SUMMARY_COLUMNS, rows, gap=1)
    click.echo(header)
    click.echo(rule)
    for line, r in zip(lines, results, strict=True):
        click.echo(line + ("  (resumed)" if r.resumed else ""))
    for r in results:
        if r.versions:
            click.echo(
                f"  {r.form_id}: {r.versions} earlier versions of edited submissions read "
                "from Central's edit history"
            )
        if r.encrypted:
            click.echo(
                f"  {r.form_id}: {r.encrypted} encrypted submissions read (stored encrypted, "
                f"with their .enc files); {r.decrypted} decrypted here"
                + ("" if r.decrypted or r.not_decrypted else " (no key loaded: see above)")
            )
        for line in r.problems[:20]:
            click.echo(f"  {r.form_id}: {line}")
        if len(r.problems) > 20:
            click.echo(f"  {r.form_id}: ... {len(r.problems) - 20} more (`nigraan store status`)")


@click.command("review")
@click.argument("submission", required=False)
@click.option(
    "--state",
    type=click.Choice(["approved", "hasIssues", "rejected"]),
    help="The review state to give the submission.",
)
@click.option("--comment", help="A comment for the submission's history in Central.")
@click.option("--form", "form_id", help="The form, when the instanceID is not enough.")
@click.option(
    "--push/--no-push",
    default=True,
    show_default=True,
    help="Push to Central now (otherwise the next `nigraan sync` does).",
)
@click.pass_obj
def review_command(config, submission, state, comment, form_id, push) -> None:
    """Record a review decision for SUBMISSION (its instanceID) and push it to Central.

    The decision is stored locally at once and queued; it reaches Central exactly once, now or
    on a later `nigraan sync` / `nigraan review --push` if Central is down. Without SUBMISSION,
    only pushes what is queued.
    """
    from sync.review_outbox import push_reviews

    store = open_store(config)
    try:
        if submission:
            if not state and not comment:
                raise click.UsageError("Give --state and/or --comment.")
            found = store.find_submissions(submission, form_id)
            if len(found) != 1:
                what = "No submission" if not found else "More than one submission"
                store.close()
                fail(
                    NigraanError(
                        f"{what} with instanceID {submission}.",
                        hint="Check the id (`nigraan store status`), or give --form.",
                    ),
                    FAILED,
                )
            sub = found[0]
            from_central = sub["central_submission_date"] is not None
            store.record_review(
                sub["form_id"], sub["root_id"], state, comment, for_central=from_central
            )
            if not from_central:
                click.echo(
                    f"Recorded for {sub['form_id']} {sub['root_id']} (received by this "
                    "server, not from Central: nothing to push)."
                )
                return
            click.echo(f"Recorded for {sub['form_id']} {sub['root_id']}.")
        if not push:
            return
        central_ = _central(config)
        result = push_reviews(central_, store)
    finally:
        store.close()
    click.echo(f"Pushed to Central: {result.applied}; pending: {result.pending}.")
    for failure in result.failures:
        log.warning("review decision not applied: %s", failure)
    if result.unavailable:
        log.error(
            "Central is not reachable; the decision stays queued for the next "
            "`nigraan sync` or `nigraan review --push`."
        )
        sys.exit(FAILED)
