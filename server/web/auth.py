"""Signing in and out, and the interface language (remembered per person, and in the session
before sign-in). Every sign-in and failed sign-in is written to the audit log."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from flask import current_app, redirect, render_template, request, session, url_for
from flask_login import UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from server.web import web_blueprint
from server.web.access import EVERYONE, PUBLIC, allow
from server.web.accounts import Policy, check_sign_in
from store.people import Person

bp = web_blueprint("auth", __name__)


class WebUser(UserMixin):
    """The signed-in person as Flask-Login sees them. The id carries a keyed digest of the
    password hash (never the hash itself: the session cookie is signed, not encrypted), so
    resetting a password signs out every session that knew the old one."""

    def __init__(self, person: Person):
        self.person = person
        self.name, self.role, self.unit = person.name, person.role, person.unit
        self.language = person.language

    def get_id(self) -> str:
        key = current_app.secret_key.encode()
        stamp = hmac.new(key, self.person.password_hash.encode(), "sha256").hexdigest()[:16]
        return f"{self.person.id}:{stamp}"


class SignInForm(FlaskForm):
    name = StringField("name", validators=[DataRequired(), Length(max=100)])
    password = PasswordField("password", validators=[DataRequired(), Length(max=1000)])
    next = HiddenField()


class LanguageForm(FlaskForm):
    lang = HiddenField(validators=[DataRequired()])
    next = HiddenField()


class PlainForm(FlaskForm):
    """A button that only needs its CSRF token (sign out, disable, reset)."""


def services():
    return current_app.extensions["nigraan"]


def audit(action: str, *, actor: str | None = None, role: str | None = None, **what) -> None:
    """One audit row for this request: the signed-in person (or `actor`), their address."""
    if actor is None and current_user.is_authenticated:
        actor, role = current_user.name, current_user.role
    services().store.audit.record(
        action, actor=actor or "-", role=role, address=request.remote_addr, **what
    )


def safe_next(target: str | None) -> str:
    """Only a path on this site (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("queue.index")


@bp.route("/sign-in", methods=["GET", "POST"])
@allow(PUBLIC)
def sign_in():
    form = SignInForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        if current_user.is_authenticated:
            return redirect(safe_next(form.next.data))
        idle = request.args.get("idle") == "1"
        return render_template("sign_in.html", form=form, idle=idle, failed=False)
    failed = True
    if form.validate():
        store = services().store
        clock = current_app.extensions["nigraan_web"].clock
        outcome = check_sign_in(
            store.people,
            Policy.from_config(services().config),
            form.name.data,
            form.password.data,
            now=lambda: datetime.fromtimestamp(clock(), UTC),
        )
        if outcome.person is not None:
            chosen = session.get("lang")  # picked on the sign-in page: becomes theirs
            session.clear()  # a fresh session: nothing else carried over from before sign-in
            if chosen and chosen != outcome.person.language:
                store.people.set_language(outcome.person.name, chosen)
            user = WebUser(outcome.person)
            login_user(user)
            session["seen"] = clock()
            audit("sign-in", actor=user.name, role=user.role)
            return redirect(safe_next(form.next.data))
        audit("failed sign-in", actor=form.name.data, detail=outcome.reason)
    return render_template("sign_in.html", form=form, idle=False, failed=failed), 401


@bp.post("/sign-out")
@allow(*EVERYONE)
def sign_out():
    if PlainForm().validate():
        audit("sign-out")
        from server.web import current_language

        language = current_language()  # the sign-in page keeps speaking their language
        logout_user()
        session.clear()
        session["lang"] = language
    return redirect(url_for("auth.sign_in"))


@bp.post("/language")
@allow(PUBLIC)
def language():
    from server.web import LANGUAGES

    form = LanguageForm()
    if form.validate() and form.lang.data in LANGUAGES:
        session["lang"] = form.lang.data
        if current_user.is_authenticated:
            services().store.people.set_language(current_user.name, form.lang.data)
    target = form.next.data
    if target and target.startswith("/") and not target.startswith("//"):
        return redirect(target)
    return redirect(url_for("queue.index"))
