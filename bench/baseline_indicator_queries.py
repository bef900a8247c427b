"""The baseline of bench/report.py: store/indicator_queries.py as it was before the indicators were
counted in SQL (main at fe988ab), kept unchanged so the bench can time the old way and check the
new figures against it. Not used by nigraan.

The store's reads for the programme indicators (reports/): the heavy filtering in SQL.

Each read names the fields it needs by their path in the form (as `form_columns` records them),
so a renamed column or a field inside a group is found without code per store; a form that is not
registered (or a field it lacks) reads as an empty result or as NULLs. Rows come back as plain
tuples with the alias names; shaping them is reports/indicators.py's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Date, DateTime, String, and_, literal, or_, select, type_coerce
from sqlalchemy.engine import Engine

from store import tables as t

# alias -> field path in the form, per form: what the indicators read.
FIELDS: dict[str, dict[str, str]] = {
    "survivor_registration": {
        "survivor_code": "survivor_code",
        "first_contact": "date_first_contact",
        "ssu_site": "ssu_site",
        "contact_setting": "contact_setting",
        "consent_services": "consent_services",
        "consent_reporting": "consented/consent_reporting",
    },
    "service_contact": {
        "survivor_code": "survivor_code",
        "service_date": "service_date",
        "ssu_site": "ssu_site",
        "service_type": "service_type",
        "provided_how": "provided_how",
    },
    "survivor_intake": {
        "survivor_code": "admin/survivor_code",
        "interview_date": "admin/date_interview",
        "ssu_site": "admin/ssu_site",
        "consent_reporting": "admin/consent_reporting",
        "custodial_context": "incident/custodial_context",
        "gbv_type": "incident/gbv_type",
        "place_type": "incident/place_type",
        "referrals_made": "assessment/referrals_made",
    },
    "custody_visit": {
        "visit_date": "b0_visit/visit_date",
        "facility_type": "b0_visit/facility_type",
        "district": "b0_visit/district",
        "police_station": "b0_visit/police_station",
        "facility_id": "b0_visit/facility_id",
        "women_detained": "b1_population/women_detained",
        "women_held_over_24h": "b1_population/women_held_over_24h",
        "meets_minimum_standards": "meets_minimum_standards",
    },
    "training_event": {
        "event_id": "event_id",
        "start_date": "start_date",
        "end_date": "end_date",
        "training_district": "district",
    },
    "training_participant": {
        "event_id": "event_id",
        "participant_code": "participant_code",
        "sex": "sex",
        "institution_type": "institution_type",
        "district": "district",
        "police_station": "police_station",
        "attendance_share": "attendance_share",
        "pre_taken": "pre_taken",
        "post_taken": "post_taken",
        "pre_score": "pre_score",
        "post_score": "post_score",
        "normalised_gain": "normalised_gain",
        "recorded": "today",
    },
    "advocacy_event": {
        "event_date": "event_date",
        "event_type": "event_type",
        "district": "district",
        "direct_female": "direct/direct_participants_female",
        "direct_male": "direct/direct_participants_male",
        "indirect_reach": "indirect/estimated_indirect_reach",
    },
}

# The date that places a form's record in a period (survivor_registration: read whole, it is the
# consent and support-unit register every survivor statistic looks up).
PERIOD_DATE = {
    "service_contact": "service_date",
    "survivor_intake": "interview_date",
    "custody_visit": "visit_date",
    "advocacy_event": "event_date",
}


@dataclass(frozen=True)
class Rows:
    columns: list[str]
    rows: list[tuple]


def _columns(conn, form_id: str) -> tuple[str | None, dict[str, str]]:
    """The submission table of a form and its columns by field path."""
    ft, fc = t.form_tables, t.form_columns
    table = conn.execute(
        select(ft.c.table_name).where(ft.c.form_id == form_id, ft.c.repeat_path == "")
    ).scalar()
    if table is None:
        return None, {}
    found = conn.execute(
        select(fc.c.field_path, fc.c.column_name).where(fc.c.table_name == table, fc.c.part == "")
    ).all()
    return table, dict(found)


def _selection(conn, store, form_id: str):
    """(SQLAlchemy table, [labelled columns]) for a form, or (None, aliases) when absent."""
    table_name, by_path = _columns(conn, form_id)
    aliases = list(FIELDS[form_id])
    if table_name is None:
        return None, aliases
    table = store.form_table(form_id)
    columns = [table.c["__id"].label("submission_id")]
    for alias, path in FIELDS[form_id].items():
        name = by_path.get(path)
        if not name:
            columns.append(literal(None).label(alias))
            continue
        column = table.c[name]
        if isinstance(column.type, Date | DateTime):
            # As the driver gives it (SQLite: ISO text, parsed in bulk by pandas; psycopg: a
            # date): SQLAlchemy's per-row date parsing on SQLite is most of a large read.
            column = type_coerce(column, String)
        columns.append(column.label(alias))
    return table, columns


def _in_period(column, start: date | None, end: date | None):
    column = getattr(column, "clause", column)  # the stored date, not its text (type_coerce)
    conditions = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column <= end)
    return and_(*conditions) if conditions else literal(True)


def indicator_rows(store, start: date | None = None, end: date | None = None) -> dict[str, Rows]:
    """Per form, the records the indicators read, those dated in [start, end] (inclusive).

    Training participants are placed by their course's last day (training_event), or by the day
    the participant form was filled in when the course has no event form."""
    engine: Engine = store.engine
    out: dict[str, Rows] = {}
    with engine.connect() as conn:
        selections = {form_id: _selection(conn, store, form_id) for form_id in FIELDS}
        for form_id, (table, columns) in selections.items():
            if form_id in ("training_event", "training_participant"):
                continue
            if table is None:
                out[form_id] = Rows(["submission_id", *columns], [])
                continue
            query = select(*columns)
            if form_id in PERIOD_DATE:
                date_column = next(c for c in columns if c.name == PERIOD_DATE[form_id])
                query = query.where(_in_period(date_column.element, start, end))
            result = conn.execute(query)
            out[form_id] = Rows(list(result.keys()), [tuple(r) for r in result])
        out["training_participant"] = _participants(conn, selections, start, end)
    return out


def _participants(conn, selections, start, end) -> Rows:
    participants, p_columns = selections["training_participant"]
    events, e_columns = selections["training_event"]
    if participants is None:
        return Rows(["submission_id", *p_columns, "course_end", "training_district"], [])
    p = {c.name: c for c in p_columns}
    if events is None:
        course_end = p["recorded"].element.label("course_end")
        query = select(*p_columns, course_end, literal(None).label("training_district"))
        query = query.where(_in_period(p["recorded"].element, start, end))
    else:
        e = {c.name: getattr(c.element, "clause", c.element) for c in e_columns}
        # One row per course id (a resent event form with another instanceID: the latest end).
        courses = (
            select(
                e["event_id"].label("event_id"),
                e["end_date"].label("end_date"),
                e["training_district"].label("training_district"),
            )
            .where(e["event_id"].is_not(None))
            .subquery()
        )
        day = courses.c.end_date
        on = courses.c.event_id == p["event_id"].element
        placed = day.is_not(None)
        query = (
            select(
                *p_columns,
                type_coerce(day, String).label("course_end"),
                courses.c.training_district,
            )
            .select_from(participants.outerjoin(courses, on))
            .where(
                or_(
                    and_(placed, _in_period(day, start, end)),
                    and_(~placed, _in_period(p["recorded"].element, start, end)),
                )
            )
        )
    result = conn.execute(query)
    return Rows(list(result.keys()), [tuple(r) for r in result])
