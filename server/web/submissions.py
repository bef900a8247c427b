"""A submission's page, its files and the reviewer's decision form.

Who may open a submission is the queue's scope (queue.scope) applied to that one submission:
a viewer never, a monitor only her own custody visits and trainings, a caseworker only the
survivor forms of her support unit. Every view of a survivor-form submission and every file
download writes an audit row before the answer goes out.
"""

from __future__ import annotations

import mimetypes

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from nigraan.xform import SURVIVOR_FORMS
from server.web import current_language, web_blueprint
from server.web.access import EVERYONE, allow
from server.web.auth import audit
from server.web.queue import scope, store
from store.review_outbox import DecisionError
from store.submission_view import read_submission_view

bp = web_blueprint("submissions", __name__)
REVIEWERS = ("admin", "supervisor", "caseworker")


def may_open(person, form_id: str, submission: dict) -> bool:
    """Whether `person` may see this stored submission (the queue's scope, for one row)."""
    allowed = scope(person)
    if allowed is None or form_id not in allowed.form_ids or submission.get("deleted_at"):
        return False
    if (
        allowed.own_submitter is not None
        and submission.get("submitter_name") != allowed.own_submitter
    ):
        return False
    if allowed.support_unit is not None:
        # A case closure names no unit: it is her registration's (store.survivors).
        return store().support_unit(form_id, submission["root_id"]) == allowed.support_unit
    return True


def opened(form_id: str, root_id: str) -> dict:
    """The stored submission, or 404 when there is none, 403 when the person may not see it."""
    submission = store().submission(form_id, root_id)
    if submission is None:
        abort(404)
    if not may_open(current_user, form_id, submission):
        abort(403)
    return submission


@bp.get("/submissions/<form_id>/<root_id>")
@allow(*EVERYONE)
def show(form_id: str, root_id: str):
    opened(form_id, root_id)
    lang = current_language()
    # A caseworker got here only for her own unit's survivor forms (may_open).
    view = read_submission_view(
        store(),
        form_id,
        root_id,
        lang=lang,
        may_see_restricted=current_user.role in REVIEWERS,
        attachment_endpoint="submissions.attachment",
    )
    if view is None:
        abort(404)
    if form_id in SURVIVOR_FORMS:
        audit("view", form_id=form_id, record=root_id)
    decision_url = (
        url_for("submissions.decision", form_id=form_id, root_id=root_id)
        if current_user.role in REVIEWERS
        else None
    )
    code = store().survivor_code(form_id, root_id)  # None but for the survivor forms
    survivor_url = url_for("survivors.show", code=code) if code else None
    return render_template(
        "submission.html",
        view=view,
        decision_url=decision_url,
        switch_url=None,
        survivor_code=code,
        survivor_url=survivor_url,
    )


@bp.get("/submissions/<form_id>/<instance_id>/files/<name>")
@allow(*EVERYONE)
def attachment(form_id: str, instance_id: str, name: str):
    found = [s for s in store().find_submissions(instance_id, form_id) if s["form_id"] == form_id]
    if not found:
        abort(404)
    submission = found[0]
    if not may_open(current_user, form_id, submission):
        abort(403)
    content = store().attachment(form_id, instance_id, name)
    if content is None:
        abort(404)
    audit("download", form_id=form_id, record=submission["root_id"])
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    answer = Response(content, mimetype=kind)
    if not kind.startswith("image/"):
        answer.headers["Content-Disposition"] = f'attachment; filename="{_safe(name)}"'
    answer.headers["X-Content-Type-Options"] = "nosniff"
    if form_id in SURVIVOR_FORMS:
        answer.headers["Cache-Control"] = "no-store"
    return answer


@bp.post("/submissions/<form_id>/<root_id>/decision")
@allow(*REVIEWERS)
def decision(form_id: str, root_id: str):
    opened(form_id, root_id)
    state = request.form.get("state") or None
    comment = request.form.get("comment")
    back = url_for("submissions.show", form_id=form_id, root_id=root_id)
    try:
        store().record_decision(form_id, root_id, state, comment)
    except DecisionError as exc:
        flash(_("The decision was not saved: %(why)s", why=str(exc)), "error")
        return redirect(back)
    audit("review", form_id=form_id, record=root_id)
    flash(_("Decision saved."), "note")
    return redirect(back)


def _safe(name: str) -> str:
    return "".join(c for c in name if c.isprintable() and c not in '"\\/') or "file"
