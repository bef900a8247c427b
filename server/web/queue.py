"""The review queue at `/`: the submissions the signed-in person may see, filters from the query
string, counts per state, paging and sorting, the Central sync's status and its button."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from server.web import current_language, web_blueprint
from server.web.access import EVERYONE, allow
from store.review_queue import SORTS, STATES, QueueFilter

bp = web_blueprint("queue", __name__)

# The forms a caseworker reviews (of her own support unit). The identity register is never in
# the queue: it gets its own guarded page.
CASEWORKER_FORMS = ("survivor_registration", "survivor_intake", "service_contact", "case_closure")
MONITOR_FORMS = ("custody_visit", "training_event", "training_participant")
HIDDEN_FORMS = ("identity_register",)
TEXT_FILTERS = ("form", "district", "facility", "unit", "submitter", "device", "text")
PER_PAGE = 25


def state_label(state: str) -> str:
    """Central's review states, in the page's language."""
    return {
        "received": _("received"),
        "hasIssues": _("has issues"),
        "edited": _("edited"),
        "approved": _("approved"),
        "rejected": _("rejected"),
    }.get(state, state)


def store():
    return current_app.extensions["nigraan"].store


def registered_forms() -> tuple[str, ...]:
    with store().engine.connect() as conn:
        return tuple(sorted(f for f in store().forms.all(conn) if f not in HIDDEN_FORMS))


def scope(person) -> QueueFilter | None:
    """What `person` may see, as the queue's scope; None for a viewer (never a record)."""
    forms = registered_forms()
    if person.role in ("admin", "supervisor"):
        return QueueFilter(form_ids=forms)
    if person.role == "caseworker":
        if not person.unit:  # a caseworker without a unit sees nothing rather than everything
            return QueueFilter(form_ids=())
        return QueueFilter(
            form_ids=tuple(f for f in forms if f in CASEWORKER_FORMS), support_unit=person.unit
        )
    if person.role == "monitor":
        # Her own submissions: those whose submitter name is her name. A device account's name
        # may differ from the person's; the programme gives a monitor's device account her name
        # (or the match finds nothing and she sees none, never someone else's).
        return QueueFilter(
            form_ids=tuple(f for f in forms if f in MONITOR_FORMS), own_submitter=person.name
        )
    return None


def _day(value: str, field: str, problems: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        problems.append(
            _(
                "%(field)s is not a date (use YYYY-MM-DD): %(value)s; it is ignored.",
                field=field,
                value=value,
            )
        )
        return None


def parse_filters(base: QueueFilter, args) -> tuple[QueueFilter, list[str]]:
    """The query string's filters on top of the person's scope, and what could not be used."""
    problems: list[str] = []
    values = {name: (args.get(name) or "").strip() or None for name in TEXT_FILTERS}
    state = args.get("state") or None
    if state and state not in STATES:
        problems.append(_("Unknown review state %(value)s; it is ignored.", value=state))
        state = None
    flagged = {"yes": True, "no": False}.get(args.get("flagged", ""))
    since = _day(args.get("since", ""), _("From"), problems)
    until = _day(args.get("until", ""), _("To"), problems)
    if until is not None:
        until += timedelta(days=1)  # the whole last day
    chosen = QueueFilter(
        form_ids=base.form_ids,
        support_unit=base.support_unit,
        own_submitter=base.own_submitter,
        form_id=values["form"],
        state=state,
        submitter=values["submitter"],
        device=values["device"],
        district=values["district"],
        facility=values["facility"],
        unit=values["unit"],
        flagged=flagged,
        since=since,
        until=until,
        text=values["text"],
    )
    return chosen, problems


def _int(value, default: int) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default


def sync_scheduler():
    return current_app.extensions.get("nigraan_sync")


@bp.get("/")
@allow(*EVERYONE)
def index():
    base = scope(current_user)
    if base is None:
        return render_template("queue.html", viewer=True)
    chosen, problems = parse_filters(base, request.args)
    sort = request.args.get("sort", "received")
    sort = sort if sort in SORTS else "received"
    descending = request.args.get("order", "desc") != "asc"
    page = store().review_queue(
        chosen,
        page=_int(request.args.get("page"), 1),
        per_page=PER_PAGE,
        sort=sort,
        descending=descending,
    )
    ur = current_language() == "ur"
    for row in page.rows:
        row["state_label"] = state_label(row["review_state"])
        row["reasons"] = [f["reason_ur"] if ur else f["reason_en"] for f in row["flags"]]
    args = {k: v for k, v in request.args.items() if v and k != "page"}

    def link(**changes) -> str:
        merged = {**args, **changes}
        return url_for("queue.index", **{k: v for k, v in merged.items() if v})

    scheduler = sync_scheduler()
    return render_template(
        "queue.html",
        viewer=False,
        page=page,
        problems=problems,
        args=args,
        link=link,
        states=[(s, state_label(s)) for s in STATES],
        forms=base.form_ids,
        sort=sort,
        descending=descending,
        pages=max(1, -(-page.total // page.per_page)),
        central=scheduler is not None,
        sync=store().sync_status() if scheduler is not None else None,
        may_sync=current_user.role in ("admin", "supervisor"),
    )


@bp.post("/sync")
@allow("admin", "supervisor")
def sync_now():
    scheduler = sync_scheduler()
    if scheduler is None:
        flash(_("ODK Central is not configured: there is nothing to sync with."), "error")
    else:
        scheduler.run_now()
        flash(_("A sync with ODK Central has started; reload the page in a minute."), "note")
    return redirect(url_for("queue.index"))
