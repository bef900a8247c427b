"""The web app for the programme's people, in the same server Collect talks to.

One blueprint per area (auth.py: sign-in and language; admin.py: users and the audit log;
queue.py: the review queue, ...), all in WEB_BLUEPRINTS, all guarded by access.check_access.
Templates (templates/, every page extends base.html) and the stylesheet (static/) are served by
nigraan itself: no CDN. The interface's words are in English and Urdu (translations/, the
compiled .mo committed so a fresh clone needs no build step).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from flask import Blueprint, Flask, current_app, g, render_template, request, session
from flask_babel import Babel
from flask_login import LoginManager, current_user, logout_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

from server.web.access import check_access

HERE = Path(__file__).resolve().parent
LANGUAGES = {"en": "English", "ur": "اردو"}
RTL = {"ur"}
SECRET_KEY_FILE = "web-secret-key"  # noqa: S105 - a file name, not a secret


def web_blueprint(name: str, import_name: str, **options) -> Blueprint:
    """A blueprint of the web app: signed-in check, roles and CSRF (access.check_access), the
    idle sign-out and HTML error pages, attached once here. Every area makes its blueprint with
    this and adds it to `blueprints()`."""
    blueprint = Blueprint(name, import_name, **options)
    blueprint.before_request(_idle_sign_out)
    blueprint.before_request(check_access)
    blueprint.register_error_handler(HTTPException, _web_error)
    blueprint.register_error_handler(Exception, _web_error)
    return blueprint


def blueprints() -> list[Blueprint]:
    """Every web blueprint: add a new area's here (one line)."""
    from server.web import admin, auth, dashboard, exports, queue, submissions, survivors

    return [
        bp,
        auth.bp,
        admin.bp,
        queue.bp,
        submissions.bp,
        survivors.bp,
        dashboard.bp,
        exports.bp,
    ]


class WebState:
    """What the web app keeps per app: its clock (tests move it instead of sleeping)."""

    def __init__(self):
        self.clock = time.time


def init_web(app: Flask, config) -> None:
    """Sessions, sign-in, CSRF, languages and the web blueprints on `app`."""
    app.secret_key = config["web.secret_key"] or _instance_secret(Path(app.instance_path))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config["server.public_url"].lower().startswith("https://"),
        SESSION_COOKIE_NAME="nigraan_session",
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in access.check_access: not on Collect's POSTs
        WTF_CSRF_TIME_LIMIT=None,  # the session's idle limit bounds it instead
        BABEL_TRANSLATION_DIRECTORIES=str(HERE / "translations"),
        BABEL_DEFAULT_LOCALE="en",
    )
    app.extensions["nigraan_web"] = WebState()
    CSRFProtect(app)
    Babel(app, locale_selector=current_language)
    login = LoginManager(app)
    login.login_view = "auth.sign_in"
    login.login_message = None  # the sign-in page says why on its own
    login.user_loader(_load_person)

    @app.context_processor
    def _page_globals():
        language = current_language()
        return {
            "language": language,
            "languages": LANGUAGES,
            "direction": "rtl" if language in RTL else "ltr",
        }

    for blueprint in blueprints():
        app.register_blueprint(blueprint)


def current_language() -> str:
    """The signed-in person's choice, else the session's (before sign-in), else English."""
    if current_user and current_user.is_authenticated and current_user.language in LANGUAGES:
        return current_user.language
    chosen = session.get("lang")
    return chosen if chosen in LANGUAGES else "en"


def now() -> float:
    return current_app.extensions["nigraan_web"].clock()


def _idle_sign_out():
    """Sign out a person idle longer than web.idle_minutes; note the time of each request."""
    if not current_user.is_authenticated:
        return None
    config = current_app.extensions["nigraan"].config
    moment = now()
    seen = session.get("seen", moment)
    if moment - seen > config["web.idle_minutes"] * 60:
        logout_user()
        session.pop("seen", None)
        g.signed_out_idle = True
        return None  # check_access sends them to the sign-in page
    session["seen"] = moment
    return None


def _load_person(user_id: str):
    from server.web.auth import WebUser

    try:
        number, _ = user_id.split(":", 1)
        person = current_app.extensions["nigraan"].store.people.by_id(int(number))
    except ValueError:
        return None
    if person is None or not person.active or WebUser(person).get_id() != user_id:
        return None  # disabled, or the password was reset since: signed out
    return WebUser(person)


def _web_error(exc: Exception):
    from server import _unexpected

    if not isinstance(exc, HTTPException):
        current_app.logger.exception("unexpected error in the web app")
        code, name = 500, "Internal Server Error"
    else:
        code, name = exc.code or 500, exc.name
    if request.blueprint is None:
        return _unexpected(exc)
    return render_template("error.html", code=code, name=name), code


def _instance_secret(instance: Path) -> str:
    """The session key in <instance>/web-secret-key: made once, owner-only, never printed."""
    path = instance / SECRET_KEY_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    return key


# The base blueprint: templates and the stylesheet, no routes of its own.
bp = web_blueprint(
    "web", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
)
