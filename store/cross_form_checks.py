"""Cross-form checks: small named rules over the typed form tables, stored as flags.

Each rule reads a few fields (by their path in the form, as `form_columns` records them) of the
forms it concerns, groups the records by a key (a survivor code, a facility and day, one
submission) and says which submissions it flags and why, in English and Urdu. `evaluate` runs
every rule for the keys the submissions it is given carry (or for everything, after a rebuild)
and replaces those rules' flags in the same transaction, keeping `since` of a flag that stays.

Adding a rule: one function decorated with `@rule(...)` and one test.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import column, delete, select, table, update
from sqlalchemy.engine import Connection

from store import tables as t
from store.bulk_insert import BATCH, BulkInserts
from store.id_lists import among

if TYPE_CHECKING:
    from store.form_registry import FormRegistry

_inserts = BulkInserts()  # flags, keys and summaries: executemany (SQLite) or COPY (PostgreSQL)
SURVIVOR_FORMS = ("survivor_intake", "service_contact", "case_closure")


@dataclass(frozen=True)
class Record:
    form_id: str
    root_id: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Flag:
    form_id: str
    root_id: str
    rule_id: str
    reason_en: str
    reason_ur: str


@dataclass(frozen=True)
class Rule:
    id: str
    fields: dict[str, dict[str, str]]  # form id -> {alias: field path}
    key: tuple[str, ...]  # aliases that group records; () = each submission on its own
    judge: Callable[[list[Record]], Iterable[Flag]]  # one group's records -> flags


RULES: dict[str, Rule] = {}


def rule(rule_id: str, fields: dict[str, dict[str, str]], key: tuple[str, ...] = ()):
    """Register `judge(records) -> flags` as a rule over `fields`, grouped by `key`."""

    def register(judge):
        RULES[rule_id] = Rule(rule_id, fields, key, judge)
        return judge

    return register


def _flag(record: Record, rule_id: str, en: str, ur: str) -> Flag:
    return Flag(record.form_id, record.root_id, rule_id, en, ur)


def _text(value) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _number(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _day(value) -> str | None:
    return None if value is None else str(value)[:10]


# ------------------------------------------------------------------------- the rules

_CODE = {"survivor_code": "survivor_code"}


@rule(
    "unregistered_survivor",
    {
        "survivor_registration": _CODE,
        "survivor_intake": {"survivor_code": "admin/survivor_code"},
        "service_contact": _CODE,
        "case_closure": _CODE,
    },
    key=("survivor_code",),
)
def unregistered_survivor(records: list[Record]) -> Iterable[Flag]:
    """A survivor code in an intake, service or closure that no registration holds."""
    if any(r.form_id == "survivor_registration" for r in records):
        return
    for r in records:
        code = r.values["survivor_code"]
        yield _flag(
            r,
            "unregistered_survivor",
            f"Survivor code {code} has no registration (survivor_registration).",
            f"سروائیور کوڈ {code} کی کوئی رجسٹریشن (survivor_registration) نہیں ہے۔",
        )


@rule(
    "service_outside_case",
    {
        "survivor_registration": {"survivor_code": "survivor_code", "day": "date_first_contact"},
        "service_contact": {"survivor_code": "survivor_code", "day": "service_date"},
        "case_closure": {"survivor_code": "survivor_code", "day": "closure_date"},
    },
    key=("survivor_code",),
)
def service_outside_case(records: list[Record]) -> Iterable[Flag]:
    """A service dated before the survivor's registration or after her case was closed."""
    days = defaultdict(list)
    for r in records:
        if _day(r.values["day"]):
            days[r.form_id].append(_day(r.values["day"]))
    registered = min(days["survivor_registration"], default=None)
    closed = max(days["case_closure"], default=None)
    for r in records:
        day = _day(r.values["day"])
        if r.form_id != "service_contact" or day is None:
            continue
        if registered and day < registered:
            yield _flag(
                r,
                "service_outside_case",
                f"Service on {day} is before the registration on {registered}.",
                f"{day} کی سروس {registered} کی رجسٹریشن سے پہلے کی ہے۔",
            )
        elif closed and day > closed:
            yield _flag(
                r,
                "service_outside_case",
                f"Service on {day} is after the case was closed on {closed}.",
                f"{day} کی سروس {closed} کو کیس بند ہونے کے بعد کی ہے۔",
            )


@rule(
    "held_over_24h",
    {
        "custody_visit": {
            "longest_hours": "b3_registers/longest_hours_without_order",
            "held_over_24h": "b1_population/women_held_over_24h",
        },
        "custody_visit/b11_interviews/interview": {
            "hours": "b11_interviews/interview/hours_since_arrest",
            "magistrate": "b11_interviews/interview/produced_before_magistrate",
        },
    },
)
def held_over_24h(records: list[Record]) -> Iterable[Flag]:
    """A custody visit that finds a woman held over 24 hours without a magistrate."""
    visit = next((r for r in records if r.form_id == "custody_visit"), None)
    if visit is None:
        return
    longest = _number(visit.values["longest_hours"])
    over = _number(visit.values["held_over_24h"])
    interviews = [
        _number(r.values["hours"])
        for r in records
        if r.form_id != "custody_visit"
        and r.values["magistrate"] == "no"
        and (_number(r.values["hours"]) or 0) > 24
    ]
    if (longest or 0) > 24 or (over or 0) > 0 or interviews:
        hours = max([h for h in [longest, *interviews] if h is not None] or [24])
        yield _flag(
            visit,
            "held_over_24h",
            f"A woman was held over 24 hours ({hours:g} h) without production before a magistrate.",
            "ایک خاتون کو مجسٹریٹ کے سامنے پیش کیے بغیر 24 گھنٹے سے زیادہ "
            f"({hours:g} گھنٹے) رکھا گیا۔",
        )


@rule(
    "no_female_staff",
    {
        "custody_visit": {
            "women": "b1_population/women_detained",
            "female_staff": "b2_separation/female_staff_on_duty",
        }
    },
)
def no_female_staff(records: list[Record]) -> Iterable[Flag]:
    """Women held where no female staff member is on duty."""
    for r in records:
        women, staff = _number(r.values["women"]), _number(r.values["female_staff"])
        if (women or 0) > 0 and staff == 0:
            yield _flag(
                r,
                "no_female_staff",
                f"{women:g} women held and no female staff member on duty.",
                f"{women:g} خواتین زیرِ حراست اور کوئی خاتون اہلکار ڈیوٹی پر نہیں۔",
            )


_PARTICIPANT = {
    "participant_code": "participant_code",
    "event_id": "event_id",
    "sex": "sex",
    "institution": "institution_type",
    "pre": "pre_taken",
    "post": "post_taken",
}


@rule(
    "post_test_without_pre_test",
    {"training_participant": _PARTICIPANT},
    key=("participant_code", "event_id"),
)
def post_test_without_pre_test(records: list[Record]) -> Iterable[Flag]:
    """A participant of a course with a post-test and no pre-test."""
    if any(r.values["pre"] == "yes" for r in records):
        return
    for r in records:
        if r.values["post"] == "yes":
            code = r.values["participant_code"]
            yield _flag(
                r,
                "post_test_without_pre_test",
                f"Participant {code} has a post-test and no pre-test.",
                f"شریک {code} کا پوسٹ ٹیسٹ ہے مگر پری ٹیسٹ نہیں۔",
            )


@rule("participant_conflict", {"training_participant": _PARTICIPANT}, key=("participant_code",))
def participant_conflict(records: list[Record]) -> Iterable[Flag]:
    """One participant code used with different sex or institution."""
    sexes = {r.values["sex"] for r in records if r.values["sex"]}
    institutions = {r.values["institution"] for r in records if r.values["institution"]}
    if len(sexes) < 2 and len(institutions) < 2:
        return
    what = ", ".join(
        name for name, found in (("sex", sexes), ("institution", institutions)) if len(found) > 1
    )
    what_ur = "، ".join(
        name for name, found in (("جنس", sexes), ("ادارہ", institutions)) if len(found) > 1
    )
    for r in records:
        code = r.values["participant_code"]
        yield _flag(
            r,
            "participant_conflict",
            f"Participant code {code} is used with different {what}.",
            f"شریک کوڈ {code} مختلف ({what_ur}) کے ساتھ استعمال ہوا ہے۔",
        )


@rule(
    "possible_duplicate_visit",
    {
        "custody_visit": {
            "facility": "b0_visit/facility_id",
            "day": "b0_visit/visit_date",
            "monitor": "b0_visit/monitor_code",
        }
    },
    key=("facility", "day", "monitor"),
)
def possible_duplicate_visit(records: list[Record]) -> Iterable[Flag]:
    """Two visits to the same facility on the same day by the same monitor."""
    if len(records) < 2:
        return
    for r in records:
        v = r.values
        yield _flag(
            r,
            "possible_duplicate_visit",
            f"Possible duplicate: {len(records)} visits to {v['facility']} on {_day(v['day'])} "
            f"by monitor {v['monitor']}.",
            f"ممکنہ دہرا اندراج: مانیٹر {v['monitor']} کے {_day(v['day'])} کو {v['facility']} "
            f"کے {len(records)} دورے۔",
        )


# ------------------------------------------------------------------------- evaluation


class _Tables:
    """The typed tables and columns behind (form id[/repeat path], field path) in one connection.

    With the store's `forms`, they come from the layout the registry holds, the one the batch's
    typed rows were written with; without, from form_tables and form_columns (two queries a
    source, most of the checks' statements for a tablet's few uploads).
    """

    def __init__(self, conn: Connection, forms: FormRegistry | None = None):
        self.conn = conn
        self.forms = forms
        self._cache: dict[str, tuple[str, dict[str, str]] | None] = {}
        self._read: dict[tuple, tuple[dict[str, int], list[tuple]]] = {}
        self.wanted: dict[str, set[str]] = defaultdict(set)  # source -> every path read
        for r in RULES.values():
            for source, fields in r.fields.items():
                self.wanted[source] |= set(fields.values())
        for form_id, spec in SUMMARY.items():
            paths = [spec.get(k) for k in ("district", "facility", "unit")] + spec["codes"]
            self.wanted[form_id] |= {p for p in paths if p}

    def columns(self, source: str) -> tuple[str, dict[str, str]] | None:
        if source not in self._cache and self.forms is not None:
            self._cache[source] = self._layout_columns(source)
        if source not in self._cache:
            form_id, _, repeat = source.partition("/")
            ft, fc = t.form_tables, t.form_columns
            name = self.conn.execute(
                select(ft.c.table_name).where(ft.c.form_id == form_id, ft.c.repeat_path == repeat)
            ).scalar()
            found = (
                {}
                if name is None
                else dict(
                    self.conn.execute(
                        select(fc.c.field_path, fc.c.column_name).where(
                            fc.c.table_name == name, fc.c.part == ""
                        )
                    ).all()
                )
            )
            self._cache[source] = None if name is None else (name, found)
        return self._cache[source]

    def _layout_columns(self, source: str) -> tuple[str, dict[str, str]] | None:
        """As `columns` reads them, from the registered form's layout."""
        form_id, _, repeat = source.partition("/")
        form = self.forms.form(self.conn, form_id)
        layout = form.layout if form is not None else None
        name = layout.tables.get(repeat) if layout is not None else None
        if name is None:
            return None
        return name, {
            c.path: c.name for c in layout.columns.values() if c.table == name and not c.part
        }

    def records(self, source: str, fields: dict[str, str], where=None) -> list[Record]:
        """Records of a form (or repeat, as the submission's record) with the fields' values.

        `where`: (alias, values) keeps rows whose field is among the values, or ("__id", ids).
        The rows of a source are read once per set of submissions, with the columns every rule
        and the summary want (`wanted`), and shared by the rules that read them.
        """
        found = self.columns(source)
        if found is None:
            return []
        _, by_path = found
        form_id, _, repeat = source.partition("/")
        id_name = "__submission_id" if repeat else "__id"
        names = {alias: by_path.get(path) for alias, path in fields.items()}
        self.wanted[source] |= set(fields.values())
        if where is not None:
            alias, values = where
            target = id_name if alias == "__id" else names.get(alias)
            if target is None:
                return []
            where = (target, values)
        read, rows = self._rows(source, where, {c for c in names.values() if c})
        # (alias, the value's place in a row, or None for a field the form lacks, as text?)
        places = [(a, read.get(c) if c else None, a != "hours") for a, c in names.items()]
        out = []
        for row in rows:
            values = {}
            for alias, k, as_text in places:
                v = None if k is None else row[k]
                values[alias] = str(v) if as_text and v is not None else v
            out.append(Record(form_id, row[0], values))
        return out

    def _rows(self, source: str, where, need: set[str]) -> tuple[dict[str, int], list[tuple]]:
        """({column: its place in a row}, rows as (submission id, values...)) of a source's
        rows whose `where` (column, values) is among the values (all rows when None), read
        once per evaluate with every column any rule wants; `need`: the columns this caller
        reads."""
        values = None if where is None else tuple(sorted(set(where[1])))
        key = (source, None if where is None else where[0], values)
        cached = self._read.get(key)
        if cached is not None and need <= cached[0].keys():
            return cached
        name, by_path = self.columns(source)
        id_name = "__submission_id" if source.partition("/")[2] else "__id"
        wanted = {by_path[p] for p in self.wanted.get(source, ()) if p in by_path} | need
        wanted = sorted(wanted - {id_name})
        extra = [] if where is None or where[0] in (id_name, *wanted) else [where[0]]
        tab = table(name, column(id_name), *[column(c) for c in wanted + extra])
        selected = [tab.c[id_name]] + [tab.c[c] for c in wanted]
        chunks: list[Any] = [None]
        if where is not None:
            target = where[0]
            chunks = [(target, values[i : i + BATCH]) for i in range(0, len(values), BATCH)]
        out: list[tuple] = []
        for chunk in chunks:
            query = select(*selected)
            if chunk is not None:
                query = query.where(among(self.conn, tab.c[chunk[0]], chunk[1]))
            out += map(tuple, self.conn.execute(query))
        self._read[key] = read = ({c: i for i, c in enumerate(wanted, 1)}, out)
        return read


def _group_key(r: Rule, record: Record):
    if not r.key:
        return record.root_id
    values = tuple(_text(record.values.get(k)) for k in r.key)
    return None if any(v is None for v in values) else values


@lru_cache(maxsize=1 << 16)  # a batch asks for each record's key text several times
def _key_text(key: tuple) -> str:
    return json.dumps(list(key), ensure_ascii=False)


def _by_form(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for form, root in pairs:
        out[form].append(root)
    return {form: sorted(set(roots)) for form, roots in out.items()}


def _not_by_rule(rule_id_column):
    """The rule id as an expression, so that SQLite (without statistics) finds a submission's
    keys by the (form_id, root_id) index instead of reading every key of the rule."""
    return rule_id_column.concat("")


def _chunks(values: list, size: int = BATCH):
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _run(r: Rule, tabs: _Tables, touched: dict[str, set[str]] | None):
    """(scope, flags, own records): the submissions this rule re-judged, the flags it gives
    them, and the records of the touched submissions (all, when touched is None)."""
    conn = tabs.conn
    ck = t.check_keys
    forms = {source.partition("/")[0] for source in r.fields}
    if touched is None:
        records = [x for source, f in r.fields.items() for x in tabs.records(source, f)]
        own = records
    else:
        own = [
            x
            for source, f in r.fields.items()
            for x in tabs.records(source, f, ("__id", touched.get(source.partition("/")[0], ())))
        ]
        records = own
        if r.key:
            own_keys = [(x, _group_key(r, x)) for x in own]
            keys = {_key_text(k) for _, k in own_keys if k is not None}
            for form, roots in touched.items():  # the keys they had before (edit, delete)
                for chunk in _chunks(sorted(roots)):
                    keys |= set(
                        conn.execute(
                            select(ck.c.key).where(
                                _not_by_rule(ck.c.rule_id) == r.id,
                                ck.c.form_id == form,
                                among(conn, ck.c.root_id, chunk),
                            )
                        ).scalars()
                    )
            members: set[tuple[str, str]] = set()
            for chunk in _chunks(sorted(keys)):
                members |= set(
                    conn.execute(
                        select(ck.c.form_id, ck.c.root_id).where(
                            ck.c.rule_id == r.id, among(conn, ck.c.key, chunk)
                        )
                    )
                )
            others = _by_form(m for m in members if m[1] not in touched.get(m[0], ()))
            keyed = own_keys + [
                (x, _group_key(r, x))
                for source, f in r.fields.items()
                if others.get(source)
                for x in tabs.records(source, f, ("__id", others[source]))
            ]
            keyed = [(x, k) for x, k in keyed if k is not None and _key_text(k) in keys]
            records = [x for x, _ in keyed]
    if not r.key or touched is None:
        keyed = [(x, _group_key(r, x)) for x in records]
    groups: dict[Any, list[Record]] = defaultdict(list)
    for x, k in keyed:
        if k is not None:
            groups[k].append(x)
    flags = {(f.form_id, f.root_id): f for g in groups.values() for f in r.judge(g)}
    scope = {(x.form_id, x.root_id) for x in records}
    if touched is not None:
        scope |= {(form, root) for form in forms for root in touched.get(form, ())}
    return scope, flags, own


def _keep_keys(conn: Connection, r: Rule, touched, own: list[Record]) -> None:
    """Record the keys the rule grouped the touched submissions by (all, when touched None)."""
    ck = t.check_keys
    if touched is None:
        conn.execute(delete(ck).where(ck.c.rule_id == r.id))
    else:
        for form, roots in touched.items():
            for chunk in _chunks(sorted(roots)):
                conn.execute(
                    delete(ck).where(
                        _not_by_rule(ck.c.rule_id) == r.id,
                        ck.c.form_id == form,
                        among(conn, ck.c.root_id, chunk),
                    )
                )
    rows = {
        (r.id, _key_text(k), x.form_id, x.root_id)
        for x in own
        if (k := _group_key(r, x)) is not None
    }
    if rows:
        _inserts(conn, ck, [list(row) for row in sorted(rows)])


def _standing_flags(conn: Connection, runs, touched) -> dict[str, dict]:
    """{rule: {(form, root): reason_en}} of the flags the rules run may change: every flag of
    theirs (touched None), else those of the submissions in any rule's scope (each rule keeps
    its own), read once per form for all rules rather than once per rule."""
    fl = t.flags
    wanted = {r.id for r, _, _ in runs}
    columns = (fl.c.rule_id, fl.c.form_id, fl.c.root_id, fl.c.reason_en)
    standing: dict[str, dict] = defaultdict(dict)
    if touched is None:
        queries = [select(*columns).where(fl.c.rule_id.in_(sorted(wanted)))]
    else:
        scope = {pair for _, rule_scope, _ in runs for pair in rule_scope}
        queries = [
            select(*columns).where(fl.c.form_id == form, among(conn, fl.c.root_id, chunk))
            for form, roots in _by_form(scope).items()
            for chunk in _chunks(roots)
        ]
    for query in queries:
        for rule, form, root, reason in conn.execute(query):
            if rule in wanted:
                standing[rule][(form, root)] = reason
    return standing


def evaluate(
    conn: Connection,
    touched: dict[str, set[str]] | None = None,
    forms: FormRegistry | None = None,
) -> None:
    """Re-run the checks for the submissions `touched` ({form id: root ids}) and those sharing
    a key with them, or every check over everything (touched None), in this transaction;
    `forms`: the registry whose layouts name the columns (else they are read)."""
    if touched is not None:
        touched = {f: set(ids) for f, ids in touched.items() if ids}
        if not touched:
            return
    tabs = _Tables(conn, forms)
    fl = t.flags
    now = t.utcnow()
    runs = []
    for r in RULES.values():
        forms = {source.partition("/")[0] for source in r.fields}
        if touched is not None and not forms & set(touched):
            continue
        scope, flags, own = _run(r, tabs, touched)
        if r.key:
            _keep_keys(conn, r, touched, own)
        runs.append((r, scope, flags))
    standing = _standing_flags(conn, runs, touched)
    for r, scope, flags in runs:
        existing = standing.get(r.id, {})
        if touched is not None:
            existing = {k: reason for k, reason in existing.items() if k in scope}
        for form, root in [k for k in existing if k not in flags]:
            conn.execute(
                delete(fl).where(fl.c.form_id == form, fl.c.root_id == root, fl.c.rule_id == r.id)
            )
        new = [f for k, f in flags.items() if k not in existing]
        if new:
            _inserts(
                conn,
                fl,
                [
                    {
                        "form_id": f.form_id,
                        "root_id": f.root_id,
                        "rule_id": f.rule_id,
                        "reason_en": f.reason_en,
                        "reason_ur": f.reason_ur,
                        "since": now,
                    }
                    for f in new
                ],
            )
        for k, f in flags.items():
            if k in existing and existing[k] != f.reason_en:
                conn.execute(
                    update(fl)
                    .where(
                        fl.c.form_id == f.form_id, fl.c.root_id == f.root_id, fl.c.rule_id == r.id
                    )
                    .values(reason_en=f.reason_en, reason_ur=f.reason_ur)
                )
    summarise(conn, tabs, touched)


# ---------------------------------------------------------------- the queue's summary

# Per form: the fields that place a submission and the codes the queue's free text searches.
SUMMARY: dict[str, dict[str, Any]] = {
    "survivor_registration": {"unit": "ssu_site", "codes": ["survivor_code", "caseworker_code"]},
    "survivor_intake": {
        "unit": "admin/ssu_site",
        "district": "survivor/residence_district",
        "codes": ["admin/survivor_code", "admin/caseworker_code"],
    },
    "service_contact": {"unit": "ssu_site", "codes": ["survivor_code", "staff_code"]},
    "case_closure": {"codes": ["survivor_code", "caseworker_code"]},
    "custody_visit": {
        "district": "b0_visit/district",
        "facility": "b0_visit/facility_id",
        "codes": ["b0_visit/visit_id", "b0_visit/monitor_code"],
    },
    "training_event": {"district": "district", "codes": ["event_id"]},
    "training_participant": {
        "district": "district",
        "facility": "police_station",
        "codes": ["participant_code", "event_id"],
    },
    "advocacy_event": {"district": "district", "codes": ["event_id"]},
}


def summarise(conn: Connection, tabs: _Tables, touched: dict[str, set[str]] | None) -> None:
    """Keep submission_summary for the touched submissions (all, when touched is None)."""
    ss = t.submission_summary
    for form_id, spec in SUMMARY.items():
        if touched is not None and form_id not in touched:
            continue
        fields = {
            "district": spec.get("district"),
            "facility": spec.get("facility"),
            "unit": spec.get("unit"),
        }
        fields = {a: p for a, p in fields.items() if p}
        fields.update({f"code{i}": p for i, p in enumerate(spec["codes"])})
        where = None if touched is None else ("__id", touched[form_id])
        records = tabs.records(form_id, fields, where)
        if touched is None:
            conn.execute(delete(ss).where(ss.c.form_id == form_id))
        else:
            ids = sorted(touched[form_id])
            for i in range(0, len(ids), BATCH):
                conn.execute(
                    delete(ss).where(
                        ss.c.form_id == form_id, among(conn, ss.c.root_id, ids[i : i + BATCH])
                    )
                )
        if records:
            _inserts(
                conn,
                ss,
                [
                    {
                        "form_id": form_id,
                        "root_id": x.root_id,
                        "district": x.values.get("district"),
                        "facility": x.values.get("facility"),
                        "support_unit": x.values.get("unit"),
                        "codes": " ".join(
                            str(v).lower()
                            for a, v in x.values.items()
                            if a.startswith("code") and v
                        ),
                    }
                    for x in records
                ],
            )
