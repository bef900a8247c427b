"""The admin's pages: people's accounts (as `nigraan users`) and the audit log (as
`nigraan audit`). Every change to an account is written to the audit log."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from server.web import web_blueprint
from server.web.access import allow
from server.web.accounts import hash_password, new_password, support_units
from server.web.auth import PlainForm, audit, services
from store.people import ROLES, PersonError

bp = web_blueprint("admin", __name__, url_prefix="/admin")


class UserForm(FlaskForm):
    name = StringField(
        "name",
        validators=[
            DataRequired(),
            Length(max=100),
            Regexp(r"^[\w.@-]+$", message="letters, digits, . @ - _"),
        ],
    )
    role = SelectField("role", choices=list(ROLES), default="viewer")  # the least to start
    unit = SelectField("unit", validators=[Optional()])


@bp.route("/users", methods=["GET", "POST"])
@allow("admin")
def users():
    people = services().store.people
    form = UserForm()
    form.unit.choices = ["", *support_units(services().config)]
    shown_password = error = None
    if request.method == "POST":
        if form.validate():
            unit = form.unit.data or None
            try:
                check_unit(form.role.data, unit)
                password = new_password()
                people.create(form.name.data, hash_password(password), form.role.data, unit)
            except PersonError as exc:
                error = exc.message
            else:
                detail = f"created, role {form.role.data}" + (f", unit {unit}" if unit else "")
                audit("user change", record=form.name.data, detail=detail)
                shown_password = (form.name.data, password)
                form = UserForm(formdata=None)  # an empty form for the next one
                form.unit.choices = ["", *support_units(services().config)]
        else:
            error = _("Check the name, role and unit.")
    page = render_template(
        "admin_users.html",
        form=form,
        people=people.all(),
        action=PlainForm(),
        shown_password=shown_password,
        error=error,
    )
    return page, (400 if error else 200)


def check_unit(role: str, unit: str | None) -> None:
    if role == "caseworker" and not unit:
        raise PersonError("A caseworker needs a support unit.", hint="Choose their unit.")
    if role != "caseworker" and unit:
        raise PersonError("Only a caseworker has a support unit.", hint="Leave the unit empty.")


@bp.post("/users/<name>/disable")
@allow("admin")
def disable(name: str):
    if not PlainForm().validate():
        abort(400)
    try:
        services().store.people.disable(name)
    except PersonError:
        abort(404)
    audit("user change", record=name, detail="disabled")
    return redirect(url_for("admin.users"))


@bp.post("/users/<name>/reset-password")
@allow("admin")
def reset_password(name: str):
    if not PlainForm().validate():
        abort(400)
    password = new_password()
    try:
        services().store.people.set_password(name, hash_password(password))
    except PersonError:
        abort(404)
    audit("user change", record=name, detail="password reset")
    people = services().store.people
    form = UserForm()
    form.unit.choices = ["", *support_units(services().config)]
    return render_template(
        "admin_users.html",
        form=form,
        people=people.all(),
        action=PlainForm(),
        shown_password=(name, password),
        error=None,
    )


@bp.get("/audit")
@allow("admin")
def audit_log():
    actor = request.args.get("user") or None
    since = None
    if request.args.get("since"):
        try:
            since = datetime.fromisoformat(request.args["since"]).replace(tzinfo=UTC)
        except ValueError:
            abort(400)
    rows = services().store.audit.entries(actor=actor, since=since)
    return render_template(
        "admin_audit.html", rows=rows, user=actor or "", since=request.args.get("since", "")
    )
