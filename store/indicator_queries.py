"""The store's reads for the programme indicators (reports/): filtering, deduplication and counting
in SQL, so that a report reads a few hundred grouped rows rather than every submission.

Each read names the fields it needs by their path in the form (as `form_columns` records them),
so a renamed column or a field inside a group is found without code per store; a form that is not
registered (or a field it lacks) reads as an empty result or as NULLs. Every read is grouped by
period as well: `periods` lists (start, end) pairs and a record counts in each period it falls in,
so one pass reads a quarter, a year and the whole programme alike. Rows come back as plain tuples
with the alias names, the period's `period_key` first; shaping them (district names, quarter
labels, breakdowns) is reports/indicators.py's business. The counting rules: DOMAIN.md section 5.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

from sqlalchemy import (
    Date,
    Float,
    String,
    and_,
    case,
    cast,
    column,
    distinct,
    false,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    table,
    union_all,
)
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import (
    BindParameter,
    ClauseList,
    ColumnClause,
    Label,
    UnaryExpression,
)
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import Integer as IntegerType
from sqlalchemy.sql.sqltypes import Numeric as NumericType

from nigraan.config import BY_NAME
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
DATES = {"first_contact", "service_date", "interview_date", "visit_date", "start_date"}
DATES |= {"end_date", "recorded", "event_date"}
# Calculated fields are stored as text: read as numbers where they are numbers (else NULL).
NUMBERS = {"attendance_share", "pre_score", "post_score", "normalised_gain", "women_detained"}
NUMBERS |= {"women_held_over_24h", "direct_female", "direct_male", "indirect_reach"}

# The institution groups the trained_* rules of reports/definitions.toml name; reports passes
# the groups of the definitions it computes, this is what a bare read (tests, shell) gets.
TRAINED_GROUPS = (("police", "prisons", "darul_aman_social_welfare"), ("cso_ngo",))
PROVIDED_BY_UNIT = "provided_by_us"
TRAINING_READS = ("sid", "participant_code", "sex", "institution_type", "district")
TRAINING_READS += ("police_station", "attendance_share", "pre_taken", "post_taken", "post_score")
TRAINING_READS += ("normalised_gain",)
UNREGISTERED = "__unregistered"  # a service contact's consent when her code has no registration
SETTINGS = "__settings"  # the Rows entry saying which settings the training reads applied
# The two halves of `stations` (staff at courses, visits), read on connections of their own.
STATIONS_TRAINED, STATIONS_VISITED = "__stations_trained", "__stations_visited"


@dataclass(frozen=True)
class Rows:
    columns: list[str]
    rows: list[tuple]


def period_key(start: date | None, end: date | None) -> str:
    """The name a period's rows carry (the `period` column of every read)."""
    return f"{start or ''}..{end or ''}"


def trained_key(institutions: Iterable[str]) -> str:
    return "trained " + ",".join(sorted(institutions))


def passing_key(institutions: Iterable[str]) -> str:
    return "passing " + ",".join(sorted(institutions))


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


def _number(column, dialect: str):
    """A column as a number: numeric columns as they are, text only where it is a number."""
    if isinstance(column.type, IntegerType | NumericType):
        return column
    text = column  # as the normaliser wrote it (no padding)
    if dialect == "postgresql":
        looks = text.op("~")(r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")
    else:  # SQLite casts any text (to 0): only digits, sign, point and exponent pass
        looks = and_(text.op("GLOB")("*[0-9]*"), text.op("NOT GLOB")("*[^0-9.eE+-]*"))
    return case((looks, cast(text, Float(precision=53))), else_=null())


def _source(conn, store, form_id: str, dialect: str):
    """A form's submissions as a subquery of its aliases (and `sid`); empty when not registered."""
    table_name, by_path = _columns(conn, form_id)
    table = store.form_table(form_id) if table_name is not None else None
    columns = [
        table.c["__id"].label("sid") if table is not None else cast(null(), String).label("sid")
    ]
    for alias, path in FIELDS[form_id].items():
        name = by_path.get(path)
        if table is None or not name:
            kind = Date if alias in DATES else Float(precision=53) if alias in NUMBERS else String
            columns.append(cast(null(), kind).label(alias))
        elif alias in NUMBERS:
            columns.append(_number(table.c[name], dialect).label(alias))
        else:
            columns.append(table.c[name].label(alias))
    query = select(*columns)
    query = query.select_from(table) if table is not None else query.where(false())
    return query.subquery(form_id)


def _day(value: date | None, dialect: str):
    # SQLite keeps dates as ISO text (and CAST(... AS DATE) would make a number of one).
    if dialect == "sqlite":
        return literal(value.isoformat(), String) if value else null()
    return cast(literal(value, Date), Date) if value else cast(null(), Date)


def _windows(periods: Sequence[tuple[date | None, date | None]], dialect: str):
    parts = [
        select(
            literal(period_key(start, end), String).label("period"),
            _day(start, dialect).label("start"),
            _day(end, dialect).label("end"),
        )
        for start, end in periods
    ]
    return (union_all(*parts) if len(parts) > 1 else parts[0]).cte("windows")


def _within(day, w):
    return and_(or_(w.c.start.is_(None), day >= w.c.start), or_(w.c.end.is_(None), day <= w.c.end))


def _month_of(day, dialect: str):
    """A date's month as text, YYYY-MM (reports makes quarters of them): one key to group by."""
    if dialect == "sqlite":  # ISO text: its first seven characters (cheaper than strftime)
        return func.substr(day, 1, 7)
    return func.to_char(day, "YYYY-MM")


def _latest_first(day, sid):
    """The order that puts a record's "latest" first: undated records count as the newest (as
    the day-sorted frames of the former pandas rules had them, last), then by day, then id."""
    return [case((day.is_(None), 1), else_=0).desc(), day.desc(), sid.desc()]


def _newest(staging, name: str, rows, partition, day, sid, columns, where=(), first=False):
    """Per partition, the columns of its latest record (in _latest_first's order), and with
    `first` its earliest day as `first`: the partition's and these columns, from a temporary
    table `name` on SQLite, from a subquery elsewhere.

    PostgreSQL ranks with a window. SQLite runs windows slowly (a sort, then a pass buffering
    each partition): there each row is folded into its partition's row of a keyed table
    (_Staging._upsert), which keeps the row with the largest key that sorts as that order does
    (undated flag, ISO day, id; char(1) between them sorts below any character they hold)."""
    if staging.dialect == "sqlite":
        sep = func.char(1)
        key = (
            case((day.is_(None), "1"), else_="0")
            .concat(sep)
            .concat(func.coalesce(day, ""))
            .concat(sep)
            .concat(sid)
        )
        earliest = [func.min(day).label("first")] if first else []
        query = (
            select(*partition, func.max(key).label("newest"), *columns, *earliest)
            .select_from(rows)
            .where(*where)
            .group_by(*partition)
        )
        return staging.table(name, query, keyed=True)
    newest = _latest_first(day, sid)
    earliest = (
        # the same window as rn's (a whole-partition frame): one sort serves both
        [func.min(day).over(partition_by=partition, order_by=newest, rows=(None, None))]
        if first
        else []
    )
    ranked = (
        select(
            *partition,
            *columns,
            *(e.label("first") for e in earliest),
            func.row_number().over(partition_by=partition, order_by=newest).label("rn"),
        )
        .select_from(rows)
        .where(*where)
        .subquery()
    )
    names = [c.name for c in (*partition, *columns)] + (["first"] if first else [])
    return select(*(ranked.c[n] for n in names)).where(ranked.c.rn == 1).subquery()


def indicator_rows(
    store,
    start: date | None = None,
    end: date | None = None,
    *,
    periods: Sequence[tuple[date | None, date | None]] | None = None,
    attendance_threshold: float | None = None,
    pass_mark: int | None = None,
    trained_groups: Iterable[Iterable[str]] = TRAINED_GROUPS,
) -> dict[str, Rows]:
    """The grouped counts every indicator is shaped from, for [start, end] (inclusive) or for
    each of `periods` in one pass; keyed by read name, each row's first column its period_key.

    The attendance threshold and pass mark (default: the settings' defaults) and the institution
    groups of trained persons are applied here, where the deduplication is."""
    threshold = (
        BY_NAME["reports.attendance_threshold"].default
        if attendance_threshold is None
        else attendance_threshold
    )
    mark = BY_NAME["reports.pass_mark"].default if pass_mark is None else pass_mark
    groups = sorted({tuple(sorted(g)) for g in trained_groups})
    with store.engine.connect() as conn:
        dialect = conn.dialect.name
        src = {form_id: _source(conn, store, form_id, dialect) for form_id in FIELDS}
    w = _windows(periods if periods is not None else [(start, end)], dialect)
    families = (
        lambda staging: _survivor_queries(src, w, staging),
        lambda staging: _training_queries(src, w, threshold, mark, groups, staging),
        lambda staging: {
            **_visit_queries(src, w, staging),
            **_other_queries(src, w, dialect),
            **_allegation_queries(src, w),
        },
    )

    def read(family) -> dict[str, Rows]:
        with store.engine.connect() as conn:
            staging = _Staging(conn)
            try:
                return {name: staging.read(query) for name, query in family(staging).items()}
            finally:
                staging.drop()

    # The three families share nothing, so each reads on a connection of its own at the same
    # time (the database works on them in parallel; sqlite3 lets go of the GIL meanwhile).
    # An in-memory SQLite database lives in one connection: read it on that one.
    shared = dialect == "sqlite" and store.engine.url.database in (None, "", ":memory:")
    out: dict[str, Rows] = {}
    with ThreadPoolExecutor(max_workers=1 if shared else len(families)) as pool:
        for found in pool.map(read, families):
            out.update(found)
    trained, visited = out.pop(STATIONS_TRAINED), out.pop(STATIONS_VISITED)
    out["stations"] = Rows(trained.columns, trained.rows + visited.rows)
    out[SETTINGS] = Rows(
        ["attendance_threshold", "pass_mark", "trained_groups"], [(threshold, mark, groups)]
    )
    return out


def _unwrapped(element):
    """An expression without the labels and one-element lists SQLAlchemy wraps it in (a GROUP
    BY keeps a function as a list of one anonymous label)."""
    while True:
        if isinstance(element, Label):
            element = element.element
        elif isinstance(element, ClauseList) and len(element.clauses) == 1:
            element = element.clauses[0]
        else:
            return element


# How a group's running total takes in one more row's value (`excluded`), as its aggregate
# would: NULLs are skipped (a group of NULLs only stays NULL), counts add up.
_COMBINE = {
    "count": "{a} + excluded.{a}",
    "sum": "coalesce({a} + excluded.{a}, {a}, excluded.{a})",
    "min": "coalesce(min({a}, excluded.{a}), {a}, excluded.{a})",
    "max": "coalesce(max({a}, excluded.{a}), {a}, excluded.{a})",
}

# When a row's value would change its group's minimum or maximum (a NULL never does).
_BETTER = {
    "min": "coalesce(excluded.{a} < {a}, excluded.{a} IS NOT NULL)",
    "max": "coalesce(excluded.{a} > {a}, excluded.{a} IS NOT NULL)",
}


class _Staging:
    """Intermediate results several reads share (the consent register, the survivor records and
    training participations of the periods), kept in temporary tables of the connection: each is
    worked out once rather than once per read. Sorts get memory enough to stay off disk. On
    SQLite the groupings themselves are worked out in keyed temporary tables too (_upsert)."""

    def __init__(self, conn):
        self.conn, self.names = conn, []
        self.dialect = conn.dialect.name
        if self.dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            # ANALYZE of a staged table samples 300 rows per point: enough to plan by
            conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")
        else:
            conn.exec_driver_sql("PRAGMA temp_store = MEMORY")

    def table(self, name: str, query, index: str | None = None, keyed: bool = False):
        """The rows of `query` in a temporary table (`index`: a column to look rows up by). On
        SQLite a GROUP BY is worked out in a keyed table (_upsert), and must be (`keyed`) when
        it relies on _upsert's rule for bare columns."""
        qualified = f"pg_temp.{name}" if self.dialect == "postgresql" else f"temp.{name}"
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {qualified}")
        upsert = self._upsert(query) if self.dialect == "sqlite" else None
        if upsert is None and keyed:
            raise ValueError(f"{name}: not a grouping a keyed table can work out")
        if upsert is None:
            compiled = query.compile(self.conn, compile_kwargs={"literal_binds": True})
        else:  # grouped in a keyed table, copied out (with its NULLs back) to be read by name
            self._fill(upsert)
            compiled = upsert[2]
        self.conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} AS {compiled}")
        self.names.append(qualified)
        if index:  # a lookup table: without it a join may scan it once per row
            on = f"{name} ({index})"
            if self.dialect == "postgresql":
                self.conn.exec_driver_sql(f"CREATE INDEX ON {on}")
            else:
                self.conn.exec_driver_sql(f"CREATE INDEX temp.{name}_{index} ON {on}")
        if self.dialect == "postgresql":
            # Temporary tables get no statistics of their own: without them the planner guesses
            # few rows per group and sorts (slowly, by the collation) rather than hashes.
            self.conn.exec_driver_sql(f"ANALYZE {name}")
        return table(name, *(column(c.name, c.type) for c in query.selected_columns))

    def grouped(self, name: str, query):
        """A GROUP BY's rows to read from: on SQLite worked out once in a keyed table (see
        _upsert), elsewhere a subquery (the database's hash aggregation is quick enough)."""
        if self.dialect == "sqlite":
            return self.table(name, query, keyed=True)
        return query.subquery()

    def _fill(self, upsert) -> None:
        name, statements, _ = upsert
        for statement in statements:
            self.conn.exec_driver_sql(statement)
        self.names.append(f"temp.{name}")

    def read(self, query) -> Rows:
        """The rows of a read. On SQLite a GROUP BY of counts and sums (nearly every read: many
        rows into a few hundred groups) is worked out in a keyed temporary table, each row
        added to its group's running totals: SQLite has no hash aggregation and would sort
        every row first, which costs about twice as much."""
        upsert = self._upsert(query) if self.dialect == "sqlite" else None
        if upsert is None:
            result = self.conn.execute(query)
            return Rows(list(result.keys()), [tuple(r) for r in result])
        self._fill(upsert)
        result = self.conn.exec_driver_sql(upsert[2])
        return Rows([c.name for c in query.selected_columns], [tuple(r) for r in result])

    def _upsert(self, query):
        """(table name, statements that fill it, the read of it) for a GROUP BY query of group
        keys and count/sum/min/max aggregates; None for any other query. Other columns (bare
        columns) take the values of the row with the largest value of the query's one max():
        SQLite's own rule, which _newest relies on (alongside a min(), which SQLite's GROUP BY
        would leave undefined, so such a query must take this way)."""
        if not isinstance(query, Select) or not query._group_by_clauses:
            return None
        groups = [_unwrapped(g) for g in query._group_by_clauses]
        keys, totals, bare = [], [], []  # (position, expression), (position, kind, value)
        for i, selected in enumerate(query.selected_columns):
            element = _unwrapped(selected)
            if isinstance(element, BindParameter) or any(element.compare(g) for g in groups):
                keys.append((i, element))  # a constant column: one more key changes nothing
                continue
            kind = getattr(element, "name", None)
            if not isinstance(element, FunctionElement) or kind not in _COMBINE:
                bare.append((i, element))
                continue
            args = list(element.clauses)
            if len(args) != 1 or isinstance(args[0], UnaryExpression):
                return None  # e.g. count(DISTINCT ...): left to the database's GROUP BY
            star = isinstance(args[0], ColumnClause) and args[0].name == "*"
            if kind == "count":
                value = literal(1) if star else case((args[0].is_not(None), 1), else_=0)
            elif star:
                return None
            else:
                value = args[0]
            totals.append((i, kind, value))
        if sum(not isinstance(e, BindParameter) for _, e in keys) != len(groups):
            return None
        maxima = [i for i, kind, _ in totals if kind == "max"]
        if bare and len(maxima) != 1:
            return None
        name = f"indicator_group_{len(self.names)}"
        # Primary-key columns cannot hold NULL: a NULL key is kept as a blob no text equals.
        row = query.with_only_columns(
            *(func.coalesce(e, literal_column("X'00'")).label(f"k{i}") for i, e in keys),
            *(value.label(f"a{i}") for i, _, value in totals),
            *(element.label(f"a{i}") for i, element in bare),
            maintain_column_froms=True,
        ).group_by(None)
        compiled = row.compile(self.conn, compile_kwargs={"literal_binds": True})
        key_names = ", ".join(f"k{i}" for i, _ in keys)
        columns = [f"k{i}" for i, _ in keys] + [f"a{i}" for i, _, _ in totals]
        columns += [f"a{i}" for i, _ in bare]
        sets = [f"a{i} = {_COMBINE[kind].format(a=f'a{i}')}" for i, kind, _ in totals]
        # (every right-hand side sees the group's values before this row: the old maximum)
        newer = f"excluded.a{maxima[0]} > a{maxima[0]}" if bare else ""
        sets += [f"a{i} = CASE WHEN {newer} THEN excluded.a{i} ELSE a{i} END" for i, _ in bare]
        combine = ", ".join(sets)
        if all(kind in _BETTER for _, kind, _ in totals):
            # Only minima and maxima: most rows change nothing, and are not written back.
            better = " OR ".join(_BETTER[kind].format(a=f"a{i}") for i, kind, _ in totals)
            combine += f" WHERE {better}"
        statements = [
            f"DROP TABLE IF EXISTS temp.{name}",
            f"CREATE TEMPORARY TABLE {name} ({', '.join(columns)}, PRIMARY KEY ({key_names}))"
            " WITHOUT ROWID",
            # identifiers of our own making; the query compiled by SQLAlchemy
            f"INSERT INTO {name} SELECT * FROM ({compiled}) WHERE true"  # noqa: S608
            f" ON CONFLICT ({key_names}) DO UPDATE SET {combine}",
        ]
        names = [
            self.conn.dialect.identifier_preparer.quote(c.name) for c in query.selected_columns
        ]
        positions = {i: f"nullif(k{i}, X'00')" for i, _ in keys}
        positions.update({i: f"a{i}" for i, _, _ in totals})
        positions.update({i: f"a{i}" for i, _ in bare})
        listed = ", ".join(f"{positions[i]} AS {names[i]}" for i in sorted(positions))
        read = f"SELECT {listed} FROM {name}"  # noqa: S608 - our own identifiers
        return name, statements, read

    def drop(self) -> None:
        for qualified in self.names:
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {qualified}")
        if self.dialect == "sqlite":
            # The keyed tables' inserts began a transaction (sqlite3 opens one before DML): end
            # it with the drops kept (only temporary tables were written), then the pragma.
            self.conn.commit()
            self.conn.exec_driver_sql("PRAGMA temp_store = DEFAULT")
        self.conn.rollback()


def _survivor_queries(src, w, staging: _Staging) -> dict:
    dialect = staging.dialect
    reg, svc, intake = src["survivor_registration"], src["service_contact"], src["survivor_intake"]
    # The consent and support-unit register: each code's latest registration (by first contact).
    newest = _newest(
        staging,
        "indicator_newest_registration",
        reg,
        [reg.c.survivor_code],
        reg.c.first_contact,
        reg.c.sid,
        [reg.c.consent_reporting, reg.c.ssu_site, reg.c.contact_setting],
    )
    latest = staging.table(
        "indicator_latest",
        select(
            newest.c.survivor_code,
            newest.c.consent_reporting,
            newest.c.ssu_site,
            newest.c.contact_setting,
        ),
        index="survivor_code",
    )
    registrations = staging.table(
        "indicator_registrations",
        select(
            w.c.period,
            reg.c.survivor_code,
            reg.c.first_contact.label("day"),
            latest.c.consent_reporting.label("consent"),
        ).select_from(
            reg.join(
                w, and_(reg.c.first_contact.is_not(None), _within(reg.c.first_contact, w))
            ).join(latest, latest.c.survivor_code == reg.c.survivor_code)
        ),
    )
    services = staging.table(
        "indicator_services",
        select(
            w.c.period,
            svc.c.survivor_code,
            svc.c.service_date.label("day"),
            svc.c.ssu_site,
            svc.c.service_type,
            svc.c.provided_how,
            case(
                (latest.c.survivor_code.is_(None), UNREGISTERED),
                else_=latest.c.consent_reporting,
            ).label("consent"),
            latest.c.ssu_site.label("unit_site"),  # her support unit (the register's)
        ).select_from(
            svc.join(w, _within(svc.c.service_date, w)).outerjoin(
                latest, latest.c.survivor_code == svc.c.survivor_code
            )
        ),
    )
    intakes = (
        select(w.c.period, intake)
        .select_from(intake.join(w, _within(intake.c.interview_date, w)))
        .cte("intakes_in")
    )

    def left_out(form_id, rows, consent):
        """Records without consent to reporting, per consent answer (the rest are counted)."""
        return (
            select(
                rows.c.period,
                literal(form_id, String).label("form_id"),
                consent.label("consent"),
                func.count().label("records"),
                func.count(distinct(rows.c.survivor_code)).label("survivors"),
            )
            .where(or_(consent.is_(None), consent != "yes"))
            .group_by(rows.c.period, consent)
        )

    exclusions = union_all(
        left_out("survivor_registration", registrations, registrations.c.consent),
        left_out("service_contact", services, services.c.consent),
        left_out("survivor_intake", intakes, intakes.c.consent_reporting),
    )
    consented = services.c.consent == "yes"
    dated = union_all(
        select(registrations.c.period, registrations.c.survivor_code, registrations.c.day).where(
            registrations.c.consent == "yes"
        ),
        select(services.c.period, services.c.survivor_code, services.c.day).where(consented),
    ).subquery()
    first = staging.grouped(
        "indicator_first_day",
        select(dated.c.period, dated.c.survivor_code, func.min(dated.c.day).label("day")).group_by(
            dated.c.period, dated.c.survivor_code
        ),
    )
    reached = (
        select(
            first.c.period,
            latest.c.ssu_site,
            latest.c.contact_setting,
            (ym := _month_of(first.c.day, dialect)).label("month"),
            func.count().label("n"),
        )
        .select_from(first.join(latest, latest.c.survivor_code == first.c.survivor_code))
        .group_by(first.c.period, latest.c.ssu_site, latest.c.contact_setting, ym)
    )
    provided = and_(consented, services.c.provided_how == PROVIDED_BY_UNIT)
    per_person = staging.grouped(
        "indicator_recipients",
        select(
            services.c.period,
            services.c.service_type,
            services.c.survivor_code,
            services.c.unit_site,
            func.min(services.c.day).label("day"),
        )
        .where(provided)
        .group_by(
            services.c.period,
            services.c.service_type,
            services.c.survivor_code,
            services.c.unit_site,
        ),
    )
    recipients = select(
        per_person.c.period,
        per_person.c.service_type,
        per_person.c.unit_site.label("ssu_site"),
        (ym := _month_of(per_person.c.day, dialect)).label("month"),
        func.count().label("n"),
    ).group_by(per_person.c.period, per_person.c.service_type, per_person.c.unit_site, ym)
    sessions = (
        select(
            services.c.period,
            services.c.service_type,
            services.c.unit_site.label("ssu_site"),
            (ym := _month_of(services.c.day, dialect)).label("month"),
            func.count().label("n"),
        )
        .where(provided)
        .group_by(services.c.period, services.c.service_type, services.c.unit_site, ym)
    )
    units = (
        select(services.c.period, services.c.ssu_site)
        .where(consented, services.c.ssu_site.is_not(None))
        .distinct()
    )
    return {
        "exclusions": exclusions,
        "reached": reached,
        "recipients": recipients,
        "sessions": sessions,
        "units": units,
    }


def _allegation_queries(src, w) -> dict:
    """The allegations documented (read on the visits' connection: they share nothing with the
    other survivor reads, whose connection has the most to do)."""
    intake = src["survivor_intake"]
    intakes = (
        select(w.c.period, intake)
        .select_from(intake.join(w, _within(intake.c.interview_date, w)))
        .subquery("intakes_in")
    )
    allegations = (
        select(
            intakes.c.period,
            intakes.c.ssu_site,
            intakes.c.gbv_type,
            intakes.c.place_type,
            intakes.c.referrals_made,
            func.count().label("n"),
        )
        .where(intakes.c.consent_reporting == "yes", intakes.c.custodial_context == "yes")
        .group_by(
            intakes.c.period,
            intakes.c.ssu_site,
            intakes.c.gbv_type,
            intakes.c.place_type,
            intakes.c.referrals_made,
        )
    )
    return {"allegations": allegations}


def _training_queries(src, w, threshold: float, mark: int, groups, staging: _Staging) -> dict:
    dialect = staging.dialect
    events, p = src["training_event"], src["training_participant"]
    # A course by its id (a resent event form under another instanceID: its latest last day).
    courses = (
        select(events.c.event_id, func.max(events.c.end_date).label("end_date"))
        .where(events.c.event_id.is_not(None))
        .group_by(events.c.event_id)
        .subquery()
    )
    # Placed by the course's last day, or by the day the form was filled in without one.
    day = func.coalesce(courses.c.end_date, p.c.recorded)
    placed = staging.table(
        "indicator_training",
        select(
            w.c.period,
            *(p.c[name] for name in TRAINING_READS),
            day.label("day"),
        ).select_from(
            p.outerjoin(courses, courses.c.event_id == p.c.event_id).join(w, _within(day, w))
        ),
    )
    qualifying = placed.c.attendance_share >= threshold - 1e-9
    person = [placed.c.period, placed.c.participant_code]
    who = [placed.c.institution_type, placed.c.sex, placed.c.district]
    out = {
        "participations": select(
            placed.c.period,
            *who,
            (ym := _month_of(placed.c.day, dialect)).label("month"),
            func.count().label("n"),
        )
        .where(qualifying)
        .group_by(placed.c.period, *who, ym)
    }
    for group in groups:
        # Once per person: as in her latest course, in the quarter of her first.
        ranked = _newest(
            staging,
            f"indicator_trained_{len(out)}",
            placed,
            person,
            placed.c.day,
            placed.c.sid,
            who,
            where=[qualifying, placed.c.institution_type.in_(group)],
            first=True,
        )
        rwho = [ranked.c.institution_type, ranked.c.sex, ranked.c.district]
        out[trained_key(group)] = select(
            ranked.c.period,
            *rwho,
            (ym := _month_of(ranked.c.first, dialect)).label("month"),
            func.count().label("n"),
        ).group_by(ranked.c.period, *rwho, ym)
        tested = _newest(
            staging,
            f"indicator_tested_{len(out)}",
            placed,
            person,
            placed.c.day,
            placed.c.sid,
            [*who, placed.c.post_score, placed.c.normalised_gain],
            where=[
                qualifying,
                placed.c.institution_type.in_(group),
                placed.c.pre_taken == "yes",
                placed.c.post_taken == "yes",
            ],
        )
        twho = [tested.c.institution_type, tested.c.sex, tested.c.district]
        out[passing_key(group)] = select(
            tested.c.period,
            *twho,
            func.count().label("tested"),
            func.sum(case((tested.c.post_score >= mark, 1), else_=0)).label("passed"),
            func.sum(tested.c.normalised_gain).label("gain_sum"),
            func.count(tested.c.normalised_gain).label("gain_n"),
        ).group_by(tested.c.period, *twho)
    out[STATIONS_TRAINED] = _stations_trained(placed)
    return out


def _stations_trained(placed):
    """Police stations with staff at a course, each with the districts recorded (the visits'
    part: _visit_queries; indicator_rows puts the two together as `stations`)."""
    return (
        select(
            placed.c.period,
            literal(0).label("source"),
            placed.c.police_station,
            placed.c.district,
            func.count().label("n"),
        )
        .where(placed.c.institution_type == "police", placed.c.police_station.is_not(None))
        .group_by(placed.c.period, placed.c.police_station, placed.c.district)
    )


def _visit_queries(src, w, staging: _Staging) -> dict:
    v = src["custody_visit"]
    visits = (
        select(w.c.period, v).select_from(v.join(w, _within(v.c.visit_date, w))).cte("visits_in")
    )
    ranked = _newest(
        staging,
        "indicator_facilities",
        visits,
        [visits.c.period, visits.c.facility_id],
        visits.c.visit_date,
        visits.c.sid,
        [visits.c.facility_type, visits.c.district, visits.c.meets_minimum_standards],
        where=[visits.c.facility_id.is_not(None)],
    )
    where = [ranked.c.facility_type, ranked.c.district]
    facilities = select(
        ranked.c.period,
        *where,
        func.count().label("n"),
        func.sum(case((ranked.c.meets_minimum_standards == "yes", 1), else_=0)).label("meets"),
    ).group_by(ranked.c.period, *where)
    # The visits counted once per facility type, district and station: the reads of the women
    # held and of the stations visited both add these up (one grouping of the visits, not two).
    counted = visits.c.women_held_over_24h.is_not(None)
    keys = [visits.c.period, visits.c.facility_type, visits.c.district, visits.c.police_station]
    grouped = staging.table(
        "indicator_visits",
        select(
            *keys,
            func.count().label("n"),
            func.count(visits.c.women_held_over_24h).label("counted"),
            func.sum(visits.c.women_held_over_24h).label("over_24h"),
            func.sum(case((counted, func.coalesce(visits.c.women_detained, 0)))).label("women"),
        ).group_by(*keys),
    )
    vwhere = [grouped.c.facility_type, grouped.c.district]
    held = (
        select(
            grouped.c.period,
            *vwhere,
            func.sum(grouped.c.over_24h).label("over"),
            func.sum(grouped.c.women).label("held"),
        )
        .where(grouped.c.counted > 0)
        .group_by(grouped.c.period, *vwhere)
    )
    visited = (
        select(
            grouped.c.period,
            literal(1).label("source"),
            grouped.c.police_station,
            grouped.c.district,
            func.sum(grouped.c.n).label("n"),
        )
        .where(grouped.c.police_station.is_not(None))
        .group_by(grouped.c.period, grouped.c.police_station, grouped.c.district)
    )
    return {"facilities": facilities, "held_over_24h": held, STATIONS_VISITED: visited}


def _other_queries(src, w, dialect: str) -> dict:
    a = src["advocacy_event"]
    advocacy = (
        select(
            w.c.period,
            a.c.district,
            a.c.event_type,
            (ym := _month_of(a.c.event_date, dialect)).label("month"),
            func.sum(func.coalesce(a.c.direct_female, 0)).label("female"),
            func.sum(func.coalesce(a.c.direct_male, 0)).label("male"),
            func.sum(func.coalesce(a.c.indirect_reach, 0)).label("indirect"),
        )
        .select_from(a.join(w, _within(a.c.event_date, w)))
        .group_by(w.c.period, a.c.district, a.c.event_type, ym)
    )
    return {"advocacy": advocacy}
