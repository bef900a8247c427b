"""The forms page (`/forms`) and the data exports it links to (`/forms/FORM/export`).

Who may export what (one function, `profiles_for`): admins and supervisors every form, in the
`full` and `funder` profiles; a viewer the forms that are not about survivors in the `funder`
profile only (a row of a survivor form is one woman's case even without her code: viewers read
survivors only as the suppressed indicators); a caseworker
the survivor forms she reviews, only her own support unit's submissions, in both profiles; a
monitor none (403). The identity register is never exported. An export is built in a
temporary file (bounded memory, reports/exports.py), written to the audit log, then sent;
survivor-form exports with `Cache-Control: no-store`.
"""

from __future__ import annotations

import tempfile

from flask import abort, render_template, request, send_file
from flask_babel import gettext as _
from flask_login import current_user

from nigraan.xform import SURVIVOR_FORMS
from reports.export_shape import CHOICES, FORMATS, FULL, FUNDER, NAMES
from reports.exports import export_form, exportable_forms, latest_schema
from server.web import current_language, web_blueprint
from server.web.access import allow
from server.web.auth import audit
from server.web.queue import CASEWORKER_FORMS, store

bp = web_blueprint("exports", __name__)
EXPORTERS = ("admin", "supervisor", "caseworker", "viewer")
MIME = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def profiles_for(person, form_id: str) -> tuple[str, ...]:
    """The export profiles `person` may take of `form_id` (empty: none)."""
    if person.role in ("admin", "supervisor"):
        return (FULL, FUNDER)
    if person.role == "viewer":
        return () if form_id in SURVIVOR_FORMS else (FUNDER,)
    if person.role == "caseworker" and person.unit and form_id in CASEWORKER_FORMS:
        return (FULL, FUNDER)
    return ()


def _unit(person) -> str | None:
    """A caseworker exports only her own unit's submissions."""
    return person.unit if person.role == "caseworker" else None


@bp.get("/forms")
@allow(*EXPORTERS)
def index():
    choices = request.args.get("choices", NAMES)
    choices = choices if choices in CHOICES else NAMES
    rows = []
    for form_id in exportable_forms(store()):
        profiles = profiles_for(current_user, form_id)
        if not profiles:
            continue
        schema = latest_schema(store(), form_id)
        rows.append(
            {
                "form_id": form_id,
                "title": schema.title if schema else form_id,
                "count": store().export_count(form_id, _unit(current_user)),
                "profiles": profiles,
            }
        )
    return render_template(
        "forms.html", rows=rows, choices=choices, formats=FORMATS, switch_url=None
    )


@bp.get("/forms/<form_id>/export")
@allow(*EXPORTERS)
def export(form_id: str):
    if form_id not in exportable_forms(store()):
        abort(404)
    fmt = request.args.get("format", "xlsx")
    profile = request.args.get("profile", FULL)
    choices = request.args.get("choices", NAMES)
    if fmt not in FORMATS or choices not in CHOICES or profile not in (FULL, FUNDER):
        abort(400)
    if profile not in profiles_for(current_user, form_id):
        abort(403)
    out = tempfile.TemporaryFile()  # noqa: SIM115 - send_file closes it after the response
    try:
        result = export_form(
            store(),
            form_id,
            out,
            fmt=fmt,
            profile=profile,
            choices=choices,
            language=current_language(),
            support_unit=_unit(current_user),
        )
    except BaseException:
        out.close()
        raise
    audit(
        "export",
        form_id=form_id,
        record=result.file_name,
        detail=f"format {fmt}, profile {profile}, choices {choices}, "
        f"{result.submissions} submissions",
    )
    out.seek(0)
    answer = send_file(
        out,
        mimetype=MIME.get(fmt, "application/zip"),
        as_attachment=True,
        download_name=result.file_name,
    )
    answer.headers["X-Content-Type-Options"] = "nosniff"
    if form_id in SURVIVOR_FORMS:
        answer.headers["Cache-Control"] = "no-store"
    return answer


def profile_label(profile: str) -> str:
    return {FULL: _("full"), FUNDER: _("for funders")}.get(profile, profile)


def format_label(fmt: str) -> str:
    return {"xlsx": _("Excel"), "csv": _("CSV (zip)")}.get(fmt, fmt)


@bp.app_context_processor
def _labels():
    return {"profile_label": profile_label, "format_label": format_label}
