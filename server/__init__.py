"""nigraan's web server: the embedded OpenRosa server ODK Collect talks to (more areas later).

`create_app` is the Flask app factory; `nigraan serve` runs it under waitress.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import HTTPException

from nigraan.config import Config, load_config
from nigraan.identity_keys import IdentityKeys
from server.device_accounts import DeviceDigestAuth, TokenAccounts
from server.health import ServerHealth
from server.openrosa_xml import openrosa_response
from server.published_forms import PublishedForms
from server.store_process import StoreProcess, StoreWriterClient
from store.store import Store

log = logging.getLogger(__name__)

# Where the OpenRosa blueprint is mounted: Central's app-user URLs (token in the path) and
# Digest-protected URLs for devices set up with a username and password.
TOKEN_PREFIXES = ("/v1/key/<token>/projects/<int:project_id>", "/key/<token>")
DIGEST_PREFIXES = ("", "/v1/projects/<int:project_id>")


@dataclass
class Services:
    """What the blueprints use, built once per app."""

    config: Config
    store: Store
    forms: PublishedForms
    writer: StoreWriterClient
    digest: DeviceDigestAuth
    token_accounts: TokenAccounts
    health: ServerHealth

    def close(self) -> None:
        self.writer.close()
        self.store.close()


def create_app(
    config: Config | None = None,
    writer: StoreWriterClient | None = None,
    test_config: dict[str, Any] | None = None,
    identity_keys: IdentityKeys | None = None,
) -> Flask:
    """The Flask app: settings checked, store migrated, built forms registered.

    Every write goes through `writer`: by default a store process started here
    (server/store_process.py); tests may pass an InProcessWriter, the same writer without the
    process boundary. The app closes it (Services.close) either way. With `identity_keys`
    (loaded by `nigraan serve`), the store process decrypts each complete encrypted envelope
    after it is stored and files identity_register submissions in the identity register.
    """
    config = config if config is not None else load_config(overrides=test_config)
    app = Flask(__name__, instance_path=str(config["instance_dir"].resolve()), static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config["server.max_submission_bytes"]
    # Text fields in a submission are tiny (*isIncomplete*); files go to temporary files.
    app.config["MAX_FORM_MEMORY_SIZE"] = 1_000_000
    app.config["MAX_FORM_PARTS"] = 1_000

    store = Store.from_config(config, upgrade=True)  # migrated here; writes in the store process
    try:
        if writer is None:
            writer = StoreProcess(
                config["database.url"], store_process_options(config), identity_keys
            )
    except Exception:
        store.close()
        raise
    forms = PublishedForms(
        config["forms.build_dir"], register=lambda form: writer.register_form(form.xform)
    )
    try:
        forms.refresh()  # an unreadable build folder stops the start; a refused form is logged
    except Exception:
        writer.close()
        store.close()
        raise
    services = Services(
        config=config,
        store=store,
        forms=forms,
        writer=writer,
        digest=DeviceDigestAuth(lambda: store.app_users),
        token_accounts=TokenAccounts(lambda: store.app_users),
        health=ServerHealth(config, writer, store.engine),
    )
    app.extensions["nigraan"] = services

    from server import health, openrosa

    app.register_blueprint(health.bp)
    for i, prefix in enumerate(TOKEN_PREFIXES + DIGEST_PREFIXES):
        app.register_blueprint(openrosa.bp, url_prefix=prefix, name=f"openrosa_{i}")
    from server.web import init_web

    init_web(app, config)  # people's pages at / (sign-in, queue, admin); Collect's URLs above
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    return app


def store_process_options(config: Config) -> dict[str, Any]:
    """The settings the store process needs (it starts from a clean interpreter)."""
    names = ("log.level", "log.format", "health.min_free_mb", "health.max_wal_mb")
    return {name: config[name] for name in names}


def server_url(config: Config) -> str:
    """The address devices use: server.public_url, else the bind address and port."""
    if config["server.public_url"]:
        return config["server.public_url"].rstrip("/")
    return f"http://{config['server.host']}:{config['server.port']}"


def _http_error(exc: HTTPException):
    """Unknown paths, wrong methods, oversized bodies: an OpenRosa body Collect can show."""
    from server import openrosa, problems

    if exc.code == 413:
        limit = openrosa.services().config["server.max_submission_bytes"]
        length = request.content_length
        if length is not None and length <= limit:
            # Within the byte limit: werkzeug refused the part count or a text field's size.
            return openrosa.problem_response(
                problems.too_many_parts(
                    current_app.config["MAX_FORM_PARTS"], current_app.config["MAX_FORM_MEMORY_SIZE"]
                )
            )
        return openrosa.problem_response(problems.too_large(limit))
    return openrosa.xml_response(
        openrosa_response(f"{exc.name}: {exc.description}", error=True), exc.code or 500, bare=True
    )


def _unexpected(exc: Exception):
    from server import openrosa, problems

    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if not openrosa.services().health.storage_failed(exc):  # a full disk needs no traceback
        log.exception("unexpected error")  # the traceback goes to the server log, not the device
    return openrosa.problem_response(problems.not_saved())
