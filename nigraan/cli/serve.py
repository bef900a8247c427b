"""`nigraan serve` and `nigraan app-users`: the embedded OpenRosa server and its device accounts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from nigraan.cli.common import USAGE, Column, fail, open_store, print_table
from nigraan.collect_qr import collect_settings, write_qr
from nigraan.errors import NigraanError
from nigraan.private_files import write_private


def _built_forms(config) -> list[str]:
    from server.published_forms import PublishedForms

    return sorted(PublishedForms(config["forms.build_dir"]).refresh())


def qr_path(config, name: str) -> Path:
    return Path(config["instance_dir"]) / "app-users" / f"{name}.png"


def card_path(config, name: str) -> Path:
    """What `create` printed (URL, password, QR drawing), kept beside the PNG, owner-only, so
    `create --if-missing` (the run script) can show it again: nigraan keeps no secret itself."""
    return qr_path(config, name).with_suffix(".txt")


@click.command("serve")
@click.option("--host", help="Listen on this address (default: server.host).")
@click.option("--port", type=click.IntRange(1, 65535), help="Listen on this port (server.port).")
@click.pass_obj
def serve_command(config, host, port) -> None:
    """Run the OpenRosa server ODK Collect submits to (waitress; Ctrl-C stops it).

    Offers the built forms (forms.build_dir; a rebuild is picked up without a restart) to the
    device accounts made with `nigraan app-users create`, and stores every submission in the
    reporting store before answering 201.
    """
    from nigraan.config import Config
    from server.serve import serve

    overrides = {k: v for k, v in (("server.host", host), ("server.port", port)) if v}
    if overrides:
        config = Config(
            {**config, **overrides}, {**config.sources, **dict.fromkeys(overrides, "command line")}
        )
    # The private key's passphrase: NIGRAAN_IDENTITY_PASSPHRASE, else asked for here, hidden,
    # when there is a terminal to ask at (a service manager has none: it warns and serves).
    prompt = (lambda text: click.prompt(text, hide_input=True)) if sys.stdin.isatty() else None
    try:
        serve(config, echo=click.echo, prompt=prompt)
    except NigraanError as exc:  # a setting (public URL, keys, the store's URL) to fix
        fail(exc, USAGE)
    except OSError as exc:  # the port is taken, or the address is not this machine's: a setting
        fail(
            NigraanError(
                f"Cannot listen on {config['server.host']}:{config['server.port']}: {exc.strerror}.",
                hint="Choose another port (--port or server.port) or stop what uses it.",
            ),
            USAGE,
        )


@click.group("app-users")
def app_users() -> None:
    """Device accounts (ODK Central calls them app users) for tablets running ODK Collect."""


@app_users.command("create")
@click.argument("name")
@click.option("--form", "forms", multiple=True, help="A form the device may fill (repeatable).")
@click.option("--all-forms", is_flag=True, help="Every built form.")
@click.option("--if-missing", is_flag=True, help="Do nothing if an account of that name exists.")
@click.pass_obj
def app_users_create(config, name, forms, all_forms, if_missing) -> None:
    """Make a device account and its Collect QR code.

    Prints the server URL with the account's token (scan the QR code, or type the URL in
    Collect's server settings) and a username and password for HTTP Digest. The QR code is
    written to <instance_dir>/app-users/NAME.png and all of it to NAME.txt (both readable only
    by you). The store keeps only hashes of the secrets; `--if-missing` prints NAME.txt again.
    """
    from server import server_url
    from server.device_accounts import create_account

    built = _built_forms(config)
    if all_forms:
        forms = tuple(built)
    if not forms:
        fail(
            NigraanError(
                "Say which forms the device may fill.",
                hint=f"Use --form FORM_ID (repeatable) or --all-forms; built forms: "
                f"{', '.join(built) or 'none (run `nigraan forms build`)'}.",
            ),
            USAGE,
        )
    unknown = sorted(set(forms) - set(built))
    if unknown:
        fail(
            NigraanError(
                f"No built form {', '.join(map(repr, unknown))}.",
                hint=f"Built forms: {', '.join(built) or 'none (run `nigraan forms build`)'}.",
            ),
            USAGE,
        )
    store = open_store(config)
    try:
        if if_missing and store.app_users.by_name(name) is not None:
            card = card_path(config, name)
            if card.is_file():
                click.echo(card.read_text(encoding="utf-8"))
            else:
                click.echo(
                    f"Device account {name!r} exists; its QR code and URL were shown when it "
                    "was made (revoke it and make a new one if they are lost)."
                )
            return
        account = create_account(store.app_users, name, forms)
    except NigraanError as exc:  # the name is taken or cannot name an account
        fail(exc, USAGE)
    finally:
        store.close()
    url = server_url(config)
    token_url = account.token_url(url)
    png = qr_path(config, name)
    os.makedirs(png.parent, mode=0o700, exist_ok=True)
    drawing = write_qr(collect_settings(token_url, config["server.project_name"]), png)
    card = "\n".join(
        [
            f"Device account {name!r} for {len(forms)} form(s): {', '.join(sorted(forms))}",
            f"  server URL (ODK Collect > Settings > Project > Server): {token_url}",
            f"  or with Digest: server {url}  username {name}  password {account.password}",
            f"  QR code (ODK Collect > Configure with QR code): {png}",
            drawing,
            "Keep the URL, password and QR code private: they let a tablet send forms. "
            "`nigraan app-users revoke` cuts them off.",
        ]
    )
    write_private(card_path(config, name), card.encode("utf-8"))
    click.echo(card)
    if config["server.host"] in ("0.0.0.0", "::") and not config["server.public_url"]:  # noqa: S104 - a check of the configured address, not a bind
        click.echo(
            "Note: set server.public_url to the address tablets reach; this URL says "
            f"{config['server.host']}."
        )


@app_users.command("list")
@click.pass_obj
def app_users_list(config) -> None:
    """The device accounts, their forms, and whether they are revoked."""
    store = open_store(config)
    try:
        users = store.app_users.all()
    finally:
        store.close()
    if not users:
        click.echo("No device accounts. Make one: nigraan app-users create NAME --all-forms")
        return
    rows = [
        (
            user.name,
            "active" if user.active else "revoked",
            user.created_at.strftime("%Y-%m-%d %H:%M"),
            ", ".join(sorted(user.forms)),
        )
        for user in users
    ]
    print_table(
        (Column("name", 24), Column("state", 8), Column("created (UTC)", 17), Column("forms")), rows
    )


@app_users.command("revoke")
@click.argument("name")
@click.pass_obj
def app_users_revoke(config, name) -> None:
    """Revoke a device account at once (a lost or stolen tablet). Its QR code files are deleted."""
    store = open_store(config)
    try:
        store.app_users.revoke(name)
    except NigraanError as exc:  # no such account, or revoked already
        fail(exc, USAGE)
    finally:
        store.close()
    qr_path(config, name).unlink(missing_ok=True)
    card_path(config, name).unlink(missing_ok=True)
    click.echo(
        f"Revoked {name!r}: its URL and password no longer work. Submissions it sent are kept."
    )
