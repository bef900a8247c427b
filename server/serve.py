"""Run the app under waitress, a production WSGI server (threads, request buffering, limits)."""

from __future__ import annotations

import logging
import signal

import waitress
from waitress.server import BaseWSGIServer

from nigraan.config import Config
from nigraan.identity_keys import load_identity_keys
from nigraan.logs import setup_from_config
from nigraan.private_files import warn_and_tighten
from server import create_app, server_url
from server.channel import guarded_channel


def serve(config: Config, echo=print, prompt=None) -> None:
    """Serve until interrupted. Waitress reads each request whole before the app sees it, so an
    upload cut off half-way never reaches the store.

    `prompt` asks for the private key's passphrase (the CLI passes click.prompt with hidden
    input when stdin is a terminal); without the keys, identity submissions stay encrypted."""
    setup_from_config(config)  # the same lines as every command (nigraan/logs.py)
    identity_keys = load_identity_keys(config, prompt, logging.getLogger("nigraan.identity"))
    app = create_app(config, identity_keys=identity_keys)
    # Survivor data: the store, its WAL and the keys readable by their owner only.
    warn_and_tighten(config["instance_dir"], config["database.url"], logging.getLogger("nigraan"))
    services = app.extensions["nigraan"]
    # web-queue: the scheduled Central sync; the queue page's button calls run_now() on it.
    from sync.schedule import scheduler_from_config

    scheduler = scheduler_from_config(config, services.store, identity_keys)
    app.extensions["nigraan_sync"] = scheduler
    from server.retention_schedule import retention_scheduler_from_config

    retention = retention_scheduler_from_config(config, services.store)
    forms = services.forms.refresh()
    accounts = [u for u in services.store.app_users.all() if u.active]
    echo(f"nigraan OpenRosa server for ODK Collect on {server_url(config)}")
    echo(
        f"  forms offered: {len(forms)} "
        f"({', '.join(sorted(forms)) or 'none: run `nigraan forms build`'})"
    )
    echo(
        f"  active device accounts: {len(accounts)}"
        + ("" if accounts else " (make one: `nigraan app-users create NAME --all-forms`)")
    )
    if config["server.host"] in ("0.0.0.0", "::") and not config["server.public_url"]:  # noqa: S104 - a check of the configured address, not a bind
        echo(
            "  note: set server.public_url to the address tablets use (e.g. http://192.168.1.10:"
            f"{config['server.port']}), so QR codes carry a reachable URL."
        )
    if (
        config["server.public_url"].startswith("https://")
        and config["server.connections_per_address"] < config["server.connection_limit"]
    ):
        echo(
            "  note: behind an https proxy every device has the proxy's address: set "
            "server.connections_per_address to server.connection_limit "
            f"({config['server.connection_limit']})."
        )
    echo(
        "  identity submissions: decrypted here and filed in the identity register"
        if identity_keys is not None and identity_keys.decrypts_here
        else "  identity submissions: kept encrypted here (no private key); those under a "
        "Central-managed key are filed by the sync"
        if identity_keys is not None
        else "  identity submissions: kept encrypted (no key loaded; see the warning above)"
    )
    echo(f"  health for monitoring: {server_url(config)}/health (JSON; 503 when failing)")
    if scheduler is not None:
        minutes = config["sync.interval_minutes"]
        echo(
            f"  syncing with ODK Central every {minutes} minutes"
            if minutes
            else "  syncing with ODK Central only when asked (sync.interval_minutes = 0)"
        )
        scheduler.start()
    if retention is not None:
        echo(
            f"  erasing identities {config['identity.retention_days']} days after case "
            f"closure, checked every {config['identity.retention_check_hours']:g} hours"
        )
        retention.start()
    echo("  Ctrl-C stops it.")
    # A service manager stops servers with SIGTERM: shut down as on Ctrl-C, so the store
    # process finishes its batch and stops cleanly.
    signal.signal(signal.SIGTERM, _stop)
    try:
        server = waitress.create_server(
            app,
            host=config["server.host"],
            port=config["server.port"],
            threads=config["server.threads"],
            # Headroom over the app's own limit so oversized uploads get the app's OpenRosa 413.
            max_request_body_size=config["server.max_submission_bytes"] + 1_000_000,
            ident="nigraan",
            # Read uploads in large pieces: fewer trips through waitress's Python loop.
            recv_bytes=262_144,
            channel_timeout=120,
            connection_limit=config["server.connection_limit"],
            clear_untrusted_proxy_headers=True,
        )
        # Header deadline, per-address cap, OpenRosa errors: see server/channel.py.
        channel = guarded_channel(config)
        for listener in _listeners(server):
            listener.channel_class = channel
        server.run()  # returns on Ctrl-C or SIGTERM (waitress catches the KeyboardInterrupt)
        echo("Stopping: the submissions in hand are stored first.")
    finally:
        if scheduler is not None:
            scheduler.stop()
        if retention is not None:
            retention.stop()
        services.close()


def _listeners(server) -> list[BaseWSGIServer]:
    """The listening sockets' servers: create_server returns one, or a MultiSocketServer when
    the host name resolves to several addresses."""
    if isinstance(server, BaseWSGIServer):
        return [server]
    return [d for d in server.map.values() if isinstance(d, BaseWSGIServer)]


def _stop(_signum, _frame) -> None:
    raise KeyboardInterrupt
