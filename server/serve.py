"""Run the app under waitress, a production WSGI server (threads, request buffering, limits)."""

from __future__ import annotations

import signal

import waitress

from nigraan.config import Config
from nigraan.logs import setup_from_config
from server import create_app, server_url


def serve(config: Config, echo=print) -> None:
    """Serve until interrupted. Waitress reads each request whole before the app sees it, so an
    upload cut off half-way never reaches the store."""
    setup_from_config(config)  # the same lines as every command (nigraan/logs.py)
    app = create_app(config)
    services = app.extensions["nigraan"]
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
    if config["server.host"] in ("0.0.0.0", "::") and not config["server.public_url"]:
        echo(
            "  note: set server.public_url to the address tablets use (e.g. http://192.168.1.10:"
            f"{config['server.port']}), so QR codes carry a reachable URL."
        )
    echo(f"  health for monitoring: {server_url(config)}/health (JSON; 503 when failing)")
    echo("  Ctrl-C stops it.")
    # A service manager stops servers with SIGTERM: shut down as on Ctrl-C, so the store
    # process finishes its batch and stops cleanly.
    signal.signal(signal.SIGTERM, _stop)
    try:
        waitress.serve(
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
            connection_limit=max(100, 4 * config["server.threads"]),
            clear_untrusted_proxy_headers=True,
            _quiet=True,
        )  # returns on Ctrl-C or SIGTERM (waitress catches the KeyboardInterrupt)
        echo("Stopping: the submissions in hand are stored first.")
    finally:
        services.close()


def _stop(_signum, _frame) -> None:
    raise KeyboardInterrupt
