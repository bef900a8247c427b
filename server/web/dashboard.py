"""The programme's indicators at /reports: targets against achieved by quarter and district, the
outcome indicators, the survivor records left out for want of consent, and the XLSX report.

Admins and supervisors read exact figures, for any quarter; a viewer reads what a funder does,
for the whole programme: the page is built only from reports.publish's suppressed rows (the
funder export's path), so a hidden count never reaches the template or a chart. Caseworkers and monitors get 403: the page adds up every
support unit's survivors and every monitor's visits, beyond a caseworker's own unit and a
monitor's own submissions. The XLSX download is the suppressed workbook for every role (the
rule of `nigraan report indicators`: files that leave nigraan are always suppressed). Every
view and download is in the audit log.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flask import abort, current_app, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user

from nigraan.errors import ConfigError
from reports.charts import Bar, bar_chart, column_chart, progress_bar
from reports.indicators import (
    Report,
    load_definitions,
    report_from_store,
)
from reports.publish import TOTAL, Row, report_rows
from reports.suppression import HIDDEN, SMALL
from server.web import RTL, current_language, web_blueprint
from server.web.access import allow
from server.web.auth import audit
from server.web.words import N_
from store.submission_view import label_in

bp = web_blueprint("dashboard", __name__)
READERS = ("admin", "supervisor", "viewer")
EXACT = ("admin", "supervisor")  # every other reader gets the suppressed figures
QUARTER = re.compile(r"\d{4}-Q[1-4]")
REUSE_SECONDS = 60

# Where a breakdown's categories get their English and Urdu labels: a form's choices.
CHOICES = {
    "contact_setting": ("survivor_registration", "contact_setting"),
    "service_type": ("service_contact", "service_type"),
    "institution": ("training_participant", "institution_type"),
    "sex": ("training_participant", "sex"),
    "event_type": ("advocacy_event", "event_type"),
    "facility_type": ("custody_visit", "b0_visit/facility_type"),
    "gbv_type": ("survivor_intake", "incident/gbv_type"),
    "place_type": ("survivor_intake", "incident/place_type"),
}
BREAKDOWNS = {
    "district": N_("by district"),
    "quarter": N_("by quarter"),
    "contact_setting": N_("by contact setting"),
    "service_type": N_("by service"),
    "institution": N_("by institution"),
    "sex": N_("by sex"),
    "event_type": N_("by event type"),
    "facility_type": N_("by facility type"),
    "gbv_type": N_("by type of violence"),
    "place_type": N_("by place"),
}
UNITS = {
    "persons": N_("persons"),
    "contacts": N_("contacts"),
    "units": N_("units"),
    "share": N_("share"),
}
REASONS = {
    "consent_reporting = no": N_("no consent to reporting"),
    "consent_reporting not answered": N_("consent to reporting never asked or answered"),
    "no registration with this survivor code (no consent on record)": N_(
        "no registration with this survivor code (no consent on record)"
    ),
}
FORMS = {
    "survivor_registration": N_("survivor registration"),
    "service_contact": N_("service contact"),
    "survivor_intake": N_("survivor intake"),
}


def services():
    return current_app.extensions["nigraan"]


def build_report(period_text: str | None) -> Report:
    """Every indicator for the period, from the app's store (as `nigraan report` computes it)."""
    return report_from_store(services().store, services().config, period_text)


def quarters_in(report: Report) -> list[str]:
    """The quarters the data has (any indicator's quarter breakdown over the whole programme)."""
    found = set()
    for result in report.results:
        series = result.breakdowns.get("quarter")
        if series is not None:
            found |= {q for q in series.index if QUARTER.fullmatch(str(q))}
    return sorted(found)


def chosen_period() -> str:
    """`?period=` as a quarter (`2026-Q3`) or `all`; anything else is not a page (404).

    A viewer reads the whole programme only (403 for a quarter): each period's figures are
    suppressed on their own, so two periods side by side could give a hidden count away (the
    programme's 8 sessions less a quarter's 7 shown leaves the other quarter's 1). The whole
    programme's quarter breakdown, suppressed with its total, shows her the quarters."""
    text = request.args.get("period") or "all"
    if text != "all" and not QUARTER.fullmatch(text):
        abort(404)
    if text != "all" and current_user.role not in EXACT:
        abort(403)
    return text


# ------------------------------------------------------------------------- words, figures


def category_labels(lang: str) -> dict[str, dict[str, str]]:
    """breakdown -> category name -> its label in `lang` (district names from the reference
    list, the others from the latest version of the form whose choice they are)."""
    out: dict[str, dict[str, str]] = {"district": {}}
    path = Path(services().config["forms.reference_dir"]) / "districts.csv"
    column = "label::Urdu (ur)" if lang == "ur" else "label::English (en)"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            out["district"] = {r["name"]: r.get(column) or r["name"] for r in csv.DictReader(f)}
    except OSError:  # a missing list: the names themselves
        pass
    store = services().store
    for breakdown, (form_id, path) in CHOICES.items():
        labels: dict[str, str] = {}
        schemas = store.form_schemas(form_id)
        if schemas:
            latest = schemas[max(schemas)]
            for f in latest.fields:
                if f.path == path:
                    labels = {c.name: label_in(c.labels, lang, c.name) for c in f.choices}
        out[breakdown] = labels
    return out


def isolated(figure: str) -> str:
    """A figure kept left to right inside an Urdu phrase ("<5" would turn into "5>")."""
    return f"\u2066{figure}\u2069" if current_language() in RTL else figure


def shown(value) -> str:
    """A published figure as the page writes it."""
    if value is None:
        return "–"
    if value == HIDDEN:
        return _("hidden")
    if value == SMALL:
        return isolated(SMALL)
    if isinstance(value, float) and not value.is_integer():
        return isolated(f"{value:,.3g}")
    return isolated(f"{int(value):,}")


def percent(share) -> str:
    if share is None:
        return "–"
    if share == HIDDEN:
        return _("hidden")
    return isolated(f"{float(share):.0%}")


def length(value) -> float | None:
    """How long a bar may be drawn: only for a figure that is shown."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def of_target(value, target) -> str:
    if target is None:
        return shown(value)
    text = _("%(achieved)s of %(target)s", achieved=shown(value), target=shown(target))
    if length(value) is not None and target:
        text += f" ({isolated(f'{value / target:.0%}')})"
    return text


def share_text(row: Row) -> str:
    return _(
        "%(share)s (%(numerator)s of %(denominator)s)",
        share=percent(row.value),
        numerator=shown(row.numerator),
        denominator=shown(row.denominator),
    )


# ------------------------------------------------------------------------------- panels


@dataclass
class Chart:
    svg: str
    heading: str  # shown above the drawing: "by district"
    caption: str  # the table's: the indicator and the breakdown
    head: tuple[str, ...]
    table: list[tuple[str, ...]]


@dataclass
class Panel:
    id: str
    label: str
    unit: str
    unit_name: str
    figure: str
    target: float | None = None
    programme_target: float | None = None  # when the period has none of its own
    progress: str = ""
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _label(ind_row: Row, lang: str) -> str:
    return ind_row.label_ur if lang == "ur" else ind_row.label_en


def _category(labels: dict, breakdown: str, name: str) -> str:
    if name == "(not recorded)":
        return _("not recorded")
    return labels.get(breakdown, {}).get(name, name)


def _breakdown_chart(
    panel_id: str, title: str, breakdown: str, rows: list[Row], labels, rtl: bool
) -> Chart:
    heading = (
        _("by quarter (whole programme)")
        if breakdown == "quarter"
        else _(BREAKDOWNS.get(breakdown, breakdown))
    )
    caption = f"{title}, {heading}"
    share = rows[0].unit == "share"
    bars = []
    table = []
    for r in rows:
        name = _category(labels, breakdown, r.category)
        if share:
            text = share_text(r)
            bars.append(Bar(name, length(r.value), text))
            table.append((name, percent(r.value), shown(r.numerator), shown(r.denominator)))
        else:
            text = of_target(r.value, r.target) if r.target is not None else shown(r.value)
            bars.append(Bar(name, length(r.value), text, r.target))
            table.append((name, shown(r.value), shown(r.target)))
    chart_id = f"{panel_id}-{breakdown}"
    if breakdown == "quarter" and not share:
        svg = column_chart(chart_id, caption, _describe(bars), bars, rtl=rtl)
    else:
        svg = bar_chart(
            chart_id,
            caption,
            _describe(bars),
            bars,
            rtl=rtl,
            scale_max=1.0 if share else None,
            track=share,
        )
    head = (
        (_("category"), _("share"), _("numerator"), _("denominator"))
        if share
        else (_("category"), _("achieved"), _("target"))
    )
    if not share and all(r.target is None for r in rows):
        head, table = head[:2], [t[:2] for t in table]
    return Chart(svg, heading, caption, head, table)


def _describe(bars: list[Bar]) -> str:
    return "; ".join(f"{b.label}: {b.text}" for b in bars)


def panels(
    rows: list[Row],
    quarter_rows: list[Row],
    lang: str,
    labels,
    group: str,
    programme_targets: dict[str, float] | None = None,
) -> list[Panel]:
    """One panel per indicator of the group: its headline figure against its target, a chart
    per breakdown (districts and, from the whole programme, quarters; an outcome's every
    breakdown)."""
    rtl = lang == "ur"
    groups = {d.id: d.group for d in load_definitions()}
    by_indicator: dict[str, list[Row]] = {}
    for r in rows:
        if groups.get(r.indicator) == group:
            by_indicator.setdefault(r.indicator, []).append(r)
    quarters: dict[str, list[Row]] = {}
    for r in quarter_rows:
        if r.disaggregation == "quarter":
            quarters.setdefault(r.indicator, []).append(r)
    out = []
    for indicator, mine in by_indicator.items():
        total = next(r for r in mine if r.disaggregation == TOTAL)
        label = _label(total, lang)
        panel = Panel(
            id=indicator,
            label=label,
            unit=total.unit,
            unit_name=_(UNITS.get(total.unit, total.unit)),
            figure=share_text(total) if total.unit == "share" else shown(total.value),
            target=total.target,
            programme_target=(programme_targets or {}).get(indicator),
        )
        if total.unit != "share" and total.target is not None:
            panel.progress = progress_bar(
                f"{indicator}-progress",
                _("%(indicator)s: achieved against target", indicator=label),
                of_target(total.value, total.target),
                length(total.value),
                float(total.target),
                of_target(total.value, total.target),
                rtl=rtl,
            )
        for key in ("mean_normalised_gain",):
            extra = next((r for r in mine if r.disaggregation == key), None)
            if extra is not None:
                panel.notes.append(_("mean normalised gain: %(gain)s", gain=shown(extra.value)))
        wanted = ("district",) if group == "output" else None
        names = dict.fromkeys(
            r.disaggregation
            for r in mine
            if r.disaggregation not in (TOTAL, "quarter", "mean_normalised_gain")
        )
        for name in names:
            if wanted is not None and name not in wanted:
                continue
            part = [r for r in mine if r.disaggregation == name]
            panel.charts.append(_breakdown_chart(indicator, label, name, part, labels, rtl))
        if group == "output" and quarters.get(indicator):
            panel.charts.append(
                _breakdown_chart(indicator, label, "quarter", quarters[indicator], labels, rtl)
            )
        out.append(panel)
    return out


def left_out(report: Report) -> tuple[int, list[tuple[str, str, int, int]]]:
    records = sum(e.records for e in report.exclusions)
    lines = [
        (
            _(FORMS.get(e.form_id, e.form_id)),
            _(REASONS.get(e.reason, e.reason)),
            e.records,
            e.survivors,
        )
        for e in report.exclusions
    ]
    return records, lines


# ------------------------------------------------------------------------------- routes


def _computed(period: str) -> Report:
    """The report, or 500 with the cause in the server log (a targets file that does not read
    is the administrator's to fix, not the reader's).

    Kept for REUSE_SECONDS per period: a page for a quarter needs the whole programme's report
    too, and the page, its download and the next reader would each compute it again; figures
    a minute old are fine for a report."""
    reports = current_app.extensions.setdefault("nigraan_reports", ({}, threading.Lock()))
    kept, lock = reports
    moment = time.monotonic()
    with lock:
        hit = kept.get(period)
    if hit is not None and moment - hit[0] < REUSE_SECONDS:
        return hit[1]
    try:
        report = build_report(None if period == "all" else period)
    except ConfigError:
        current_app.logger.exception("the indicator report could not be made")
        abort(500)
    with lock:
        for stale in [p for p, (at, _) in kept.items() if moment - at >= REUSE_SECONDS]:
            del kept[stale]  # any quarter may be asked for: keep only the last minute's
        kept[period] = (moment, report)
    return report


@bp.get("/reports")
@allow(*READERS)
def index():
    period = chosen_period()
    everything = _computed("all")
    report = everything if period == "all" else _computed(period)
    exact = current_user.role in EXACT
    rows = report_rows(report, suppressed=not exact)
    quarter_rows = report_rows(everything, suppressed=not exact)
    lang = current_language()
    labels = category_labels(lang)
    quarters = quarters_in(everything)
    if period != "all" and period not in quarters:
        quarters = sorted([*quarters, period])
    records, lines = left_out(report)
    targets = {r.indicator.id: r.target for r in everything.results if r.target is not None}
    audit(
        "view",
        record="indicators",
        detail=f"period={period}; figures={'exact' if exact else 'suppressed'}",
    )
    answer = current_app.make_response(
        render_template(
            "reports.html",
            period=period,
            quarters=quarters,
            exact=exact,
            outputs=panels(rows, quarter_rows, lang, labels, "output", targets),
            outcomes=panels(rows, quarter_rows, lang, labels, "outcome", targets),
            left_out=records,
            left_out_lines=lines,
            download=url_for("dashboard.workbook", period=period),
        )
    )
    answer.headers["Cache-Control"] = "no-store"
    return answer


@bp.get("/reports/indicators.xlsx")
@allow(*READERS)
def workbook():
    from reports.workbook import write_workbook

    period = chosen_period()
    report = _computed(period)
    out = io.BytesIO()
    write_workbook(report, report_rows(report, suppressed=True), out)
    audit("export", record="indicators", detail=f"xlsx; period={period}; profile=funder")
    out.seek(0)
    answer = send_file(
        out,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"nigraan-indicators-{period}.xlsx",
    )
    answer.headers["Cache-Control"] = "no-store"
    return answer
