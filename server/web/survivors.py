"""A survivor's page (her pseudonymous records) and the reveal of her identity, under audit.

The page lists her submissions of the survivor forms, found by her code; admins and
supervisors see it as the queue lets them see every form, a caseworker only for a survivor of
her own support unit (her registration's). Each opening writes an audit row.

Revealing her identity (the identity register, decrypted with the data key) is a POST with a
reason, allowed only to a caseworker of her unit or an admin. Every reveal writes one audit row
holding the reason, never a value of the identity; every refused attempt writes one too. The
answer is never cached (no-store), carries no inline script (its CSP says so), and removes the
identity from the screen after `web.reveal_seconds` (static/reveal.js; without JavaScript the
page goes back to her pseudonymous page). A GET of the reveal address reveals nothing: it goes
back to her page. The identity is never put in the URL, the session, a flash message or a log.
"""

from __future__ import annotations

import re

from flask import abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from nigraan.data_key import data_key_from_config
from nigraan.errors import KeyFileError
from nigraan.xform import IDENTITY_FORM, SELECT_MULTIPLE, SELECT_ONE
from server.web import current_language, web_blueprint
from server.web.access import allow
from server.web.auth import audit
from server.web.queue import state_label, store
from store.identity_register import (
    IdentityNotFound,
    IdentityRegister,
    IdentityRegisterError,
    WrongDataKey,
)

bp = web_blueprint("survivors", __name__)

MAY_SEE = ("admin", "supervisor", "caseworker")  # the pseudonymous page
MAY_REVEAL = ("admin", "caseworker")  # a caseworker only for her own unit's survivors
REASON_MIN, REASON_MAX = 10, 500
# The register's fields that are not her identity: the form's metadata.
NOT_SHOWN = {"start", "end", "today", "deviceid", "username"}
CHOICES = (SELECT_ONE, SELECT_MULTIPLE)
NO_STORE = {
    "Cache-Control": "no-store, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Only nigraan's own files: no inline script or style, no frame, forms post back here.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}


def _of_her_unit(survivor) -> bool:
    """A caseworker's unit is the survivor's (a caseworker without a unit has no survivor)."""
    return bool(current_user.unit) and survivor.support_unit == current_user.unit


def _survivor(code: str):
    """The survivor, or 404 when no record has her code, 403 when this person may not."""
    survivor = store().survivor(code)
    if survivor is None:
        abort(404)
    if current_user.role == "caseworker" and not _of_her_unit(survivor):
        abort(403)
    return survivor


def _records(survivor) -> list[dict]:
    from server.web.submissions import may_open

    shown = []
    for r in survivor.records:
        row = store().submission(r.form_id, r.root_id)
        shown.append(
            {
                "form_id": r.form_id,
                "root_id": r.root_id,
                "received_at": r.received_at,
                "state": r.review_state or "received",
                "state_label": state_label(r.review_state or "received"),
                "url": url_for("submissions.show", form_id=r.form_id, root_id=r.root_id)
                if row is not None and may_open(current_user, r.form_id, row)
                else None,
            }
        )
    return shown


def _page(survivor, *, reason: str = "", problem: str | None = None, status: int = 200):
    """Her pseudonymous page (audited: it shows survivor data)."""
    audit("survivor view", record=survivor.code)
    body = render_template(
        "survivor.html",
        survivor=survivor,
        records=_records(survivor),
        may_reveal=current_user.role in MAY_REVEAL,
        reason=reason,
        problem=problem,
        reason_min=REASON_MIN,
        reason_max=REASON_MAX,
    )
    return body, status, {"Cache-Control": "no-store"}


@bp.get("/survivors/<code>")
@allow(*MAY_SEE)
def show(code: str):
    return _page(_survivor(code))


@bp.get("/survivors/<code>/reveal")
@allow(*MAY_SEE)
def reveal_by_get(code: str):
    """A reload, a bookmark, a language switch: nothing is revealed, back to her page."""
    return redirect(url_for("survivors.show", code=code))


@bp.post("/survivors/<code>/reveal")
@allow(*MAY_REVEAL)
def reveal(code: str):
    survivor = _survivor(code)
    reason = " ".join((request.form.get("reason") or "").split())
    if len(reason) < REASON_MIN:
        problem = _(
            "Write why you need her identity now (at least %(n)s characters): it is kept in "
            "the audit log.",
            n=REASON_MIN,
        )
        return _page(survivor, reason=reason, problem=problem, status=400)
    if len(reason) > REASON_MAX:
        problem = _("Keep the reason under %(n)s characters.", n=REASON_MAX)
        return _page(survivor, reason=reason[:REASON_MAX], problem=problem, status=400)
    try:
        register = _register()
        fields = register.reveal(code)
    except KeyFileError as exc:
        return _unavailable(survivor, "no data key", exc, 503)
    except IdentityNotFound as exc:
        # Under another key her code's lookup key differs too: "not found" would mislead.
        if register.key_ids() - {register.key.key_id}:
            return _unavailable(survivor, "wrong data key", exc, 503)
        return _unavailable(survivor, "not in the register", exc, 404)
    except WrongDataKey as exc:
        return _unavailable(survivor, "wrong data key", exc, 503)
    except IdentityRegisterError as exc:
        return _unavailable(survivor, "damaged", exc, 503)
    schema = _identity_schema()
    if _names_identity(reason, fields, schema):
        audit("refused reveal", form_id=IDENTITY_FORM, record=code, detail="reason held identity")
        problem = _(
            "The reason holds part of her identity. Write why you need it, not who she is: the "
            "reason is kept in the audit log."
        )
        return _page(survivor, problem=problem, status=400)
    audit("reveal", form_id=IDENTITY_FORM, record=code, detail=reason)
    seconds = current_app.extensions["nigraan"].config["web.reveal_seconds"]
    body = render_template(
        "reveal.html",
        survivor=survivor,
        identity=_shown(fields, schema),
        seconds=seconds,
        back=url_for("survivors.show", code=code),
    )
    return body, 200, NO_STORE


@bp.errorhandler(403)
def _refused(exc):
    """A refused reveal is audited too (its role, or another unit's survivor), then the usual
    403 page."""
    if request.endpoint == "survivors.reveal" and request.method == "POST":
        code = (request.view_args or {}).get("code")
        why = "role" if current_user.role not in MAY_REVEAL else "not her unit"
        audit("refused reveal", form_id=IDENTITY_FORM, record=code, detail=why)
    return render_template("error.html", code=403, name=exc.name), 403


def _register() -> IdentityRegister:
    config = current_app.extensions["nigraan"].config
    return IdentityRegister(store().engine, data_key_from_config(config))


def _unavailable(survivor, why: str, exc: Exception, status: int):
    """Nothing revealed: a page saying what happened and what to do (audited, not a 500)."""
    audit("reveal not possible", form_id=IDENTITY_FORM, record=survivor.code, detail=why)
    current_app.logger.warning(
        "reveal of survivor %s not possible (%s): %s", survivor.code, why, exc
    )
    body = render_template(
        "reveal_unavailable.html",
        survivor=survivor,
        why=why,
        technical=str(exc) if current_user.role == "admin" else None,
    )
    return body, status, NO_STORE


def _normalised(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def _identity_schema():
    """The registered identity_register form's latest schema (labels, choices, classes); None
    when this store has not registered it."""
    schemas = store().form_schemas(IDENTITY_FORM)
    return list(schemas.values())[-1] if schemas else None


def _names_identity(reason: str, fields: dict, schema) -> bool:
    """Whether the reason holds a value that identifies her (a name, CNIC, phone, address),
    ignoring case, spaces and punctuation. Choices (her district, a yes/no) and codes are not
    looked for: "her hearing in Lahore" is a reason, not her identity."""
    by_path = {f.path: f for f in schema.fields} if schema else {}
    said = _normalised(reason)
    for path, value in fields.items():
        field = by_path.get(path)
        if field is not None and (field.kind in CHOICES or field.sensitivity != "identifying"):
            continue
        if isinstance(value, str) and len(v := _normalised(value)) >= 4 and v in said:
            return True
    return False


def _shown(fields: dict, schema) -> list[dict]:
    """Her identity fields under their labels in the page's language (the registered
    identity_register form's; the field's path when the form is not registered)."""
    lang = current_language()
    by_path = {f.path: f for f in schema.fields} if schema else {}
    order = {path: n for n, path in enumerate(by_path)}  # the form's order, not the register's
    shown = []
    for path, value in sorted(fields.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        if value in (None, "") or path.split("/")[-1] in NOT_SHOWN:
            continue
        field = by_path.get(path)
        label = _label(field.labels, lang) if field else None
        if field is not None and not label:
            continue  # a metadata field of the form: not her identity
        shown.append({"path": path, "label": label or path, "value": _choice(field, value, lang)})
    return shown


def _label(labels: dict, lang: str) -> str | None:
    if not labels:
        return None
    for key in (lang, "Urdu" if lang == "ur" else "English", "en", "English", "default"):
        if labels.get(key):
            return labels[key]
    return next(iter(labels.values()), None)


def _choice(field, value: str, lang: str) -> str:
    """A chosen option by its label (`yes` -> Yes / ہاں); anything else as it is."""
    if field is None or not field.choices:
        return value
    labels = {c.name: _label(c.labels, lang) or c.name for c in field.choices}
    return " ".join(labels.get(v, v) for v in str(value).split())
