"""The baseline of bench/report.py: reports/indicators.py as it was before the indicators were
counted in SQL (main at fe988ab), kept unchanged so the bench can time the old way and check the
new figures against it. Not used by nigraan.

Programme indicators from the store's rows (pure shaping with pandas).

`compute(rows, definitions, ...)` takes what store.indicator_queries.indicator_rows read (already
filtered to the period in SQL) and returns one Result per indicator: its value, its breakdowns
(each a Series that adds up to the value, so a suppressed breakdown can be checked against it),
and the survivor records left out for want of consent. Counting rules: DOMAIN.md section 5.
"""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import pandas as pd

from nigraan.errors import ConfigError

UNITS = ("persons", "contacts", "units", "share")
POLICE_CUSTODY = ("police_station", "women_police_station", "court_lockup", "other")
NOT_REFERRED = ("none", "declined_by_survivor")
DISTRICT_ORDER = ("lahore", "rawalpindi", "islamabad")


@dataclass(frozen=True)
class Indicator:
    id: str
    label_en: str
    label_ur: str
    unit: str
    group: str
    forms: tuple[str, ...]
    rule: str
    rule_text: str
    disaggregations: tuple[str, ...]
    suppress: bool
    period: str
    counts: str = ""
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Period:
    label: str  # "2026-Q3", "2026", or "all"
    start: date | None
    end: date | None


@dataclass
class Result:
    indicator: Indicator
    value: float | int | None  # a share: numerator / denominator (None when no denominator)
    numerator: int | None = None
    denominator: int | None = None
    # disaggregation -> Series of counts (shares: of the numerator), adding up to the total.
    breakdowns: dict[str, pd.Series] = field(default_factory=dict)
    denominators: dict[str, pd.Series] = field(default_factory=dict)
    extra: dict[str, float | None] = field(default_factory=dict)  # e.g. mean normalised gain
    target: float | None = None
    targets_by_district: dict[str, float] = field(default_factory=dict)

    @property
    def count(self) -> int | None:
        """The count that suppression protects (a share's numerator)."""
        return self.numerator if self.indicator.unit == "share" else self.value


@dataclass(frozen=True)
class Exclusion:
    form_id: str
    reason: str
    records: int
    survivors: int


@dataclass
class Report:
    period: Period
    results: list[Result]
    exclusions: list[Exclusion]
    settings: dict[str, float]


# --------------------------------------------------------------------------- definitions


def definitions_path() -> Path:
    return Path(str(resources.files("reports") / "definitions.toml"))


def load_definitions(path: Path | None = None) -> list[Indicator]:
    """The indicator definitions (reports/definitions.toml unless given)."""
    path = path or definitions_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the indicator definitions {path}: {exc}") from exc
    known = set(Indicator.__dataclass_fields__) - {"params", "forms", "disaggregations"}
    out = []
    for n, entry in enumerate(data.get("indicator", []), 1):
        missing = [k for k in ("id", "label_en", "label_ur", "unit", "rule") if k not in entry]
        if missing or entry.get("unit") not in UNITS or entry.get("rule") not in RULES:
            raise ConfigError(
                f"{path}, indicator {n} ({entry.get('id', '?')}): missing {missing} or unknown "
                f"unit {entry.get('unit')!r} / rule {entry.get('rule')!r}",
                hint=f"units: {', '.join(UNITS)}; rules: {', '.join(sorted(RULES))}",
            )
        params = {k: v for k, v in entry.items() if k not in known | {"forms", "disaggregations"}}
        out.append(
            Indicator(
                id=entry["id"],
                label_en=entry["label_en"],
                label_ur=entry["label_ur"],
                unit=entry["unit"],
                group=entry.get("group", "output"),
                forms=tuple(entry.get("forms", ())),
                rule=entry["rule"],
                rule_text=entry.get("rule_text", ""),
                disaggregations=tuple(entry.get("disaggregations", ())),
                suppress=bool(entry.get("suppress", True)),
                period=entry.get("period", ""),
                counts=entry.get("counts", ""),
                params=params,
            )
        )
    return out


def load_targets(path: Path) -> pd.DataFrame:
    """Targets: indicator, period, district (empty: all districts), target."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise ConfigError(
            f"cannot read the targets file {path}: {exc}",
            hint="Set reports.targets_file (NIGRAAN_REPORTS_TARGETS_FILE) to a CSV with the "
            "columns indicator, period, district, target.",
        ) from exc
    frame = pd.DataFrame(rows, columns=["indicator", "period", "district", "target"]).fillna("")
    try:
        frame["target"] = pd.to_numeric(frame["target"], errors="raise")
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: a target is not a number ({exc})") from exc
    return frame


def parse_period(text: str | None) -> Period:
    """`2026-Q3` (a quarter), `2026` (a year) or None (everything)."""
    if not text or text == "all":
        return Period("all", None, None)
    if m := re.fullmatch(r"(\d{4})-Q([1-4])", text):
        year, q = int(m[1]), int(m[2])
        start = date(year, 3 * q - 2, 1)
        end = date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1) - timedelta(days=1)
        return Period(text, start, end)
    if re.fullmatch(r"\d{4}", text):
        return Period(text, date(int(text), 1, 1), date(int(text), 12, 31))
    raise ConfigError(
        f"unknown period {text!r}", hint="Write a quarter like 2026-Q3, a year like 2026, or all."
    )


def support_unit_districts(reference_dir: Path) -> dict[str, str]:
    """Support unit -> district, from the reference list the forms use."""
    with open(Path(reference_dir) / "support_units.csv", newline="", encoding="utf-8") as f:
        return {row["name"]: row["district"] for row in csv.DictReader(f)}


# ----------------------------------------------------------------------------- frames


DATES = (
    "first_contact",
    "service_date",
    "interview_date",
    "visit_date",
    "event_date",
    "course_end",
    "recorded",
)


def frames(rows) -> dict[str, pd.DataFrame]:
    """store.indicator_queries.Rows per form -> DataFrames, dates parsed once, in bulk."""
    out = {}
    for form_id, r in rows.items():
        frame = pd.DataFrame.from_records(r.rows, columns=r.columns)
        for column in DATES:
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], errors="coerce")
        out[form_id] = frame
    return out


def _quarter(dates: pd.Series) -> pd.Series:
    d = pd.to_datetime(dates, errors="coerce")
    key = d.dt.year * 10 + d.dt.quarter
    labels = {k: f"{int(k) // 10}-Q{int(k) % 10}" for k in key.dropna().unique()}
    return key.map(labels)


def _counts(values: pd.Series, order=()) -> pd.Series:
    """Counts per category, `(not recorded)` for missing, known categories first."""
    counts = values.fillna("(not recorded)").astype(str).value_counts()
    ordered = [c for c in order if c in counts.index]
    rest = sorted(c for c in counts.index if c not in ordered)
    return counts.reindex(ordered + rest).astype(int)


@dataclass
class _Survivors:
    """The consent and support-unit register, and survivor records split by consent."""

    register: pd.DataFrame  # one row per survivor code: consent_reporting, district, setting
    exclusions: list[Exclusion]
    services: pd.DataFrame  # consented service contacts
    registrations: pd.DataFrame  # consented registrations dated in the period
    intakes: pd.DataFrame  # consented intakes
    provided: pd.DataFrame | None = None  # consented services provided by a unit (cached)


def _survivors(f: dict[str, pd.DataFrame], ssu_district: dict[str, str], period: Period):
    reg = f["survivor_registration"].copy()
    reg["first_contact"] = pd.to_datetime(reg["first_contact"], errors="coerce")
    reg = reg.sort_values("first_contact", na_position="first", kind="stable")
    latest = reg.drop_duplicates("survivor_code", keep="last").set_index("survivor_code")
    latest["district"] = latest["ssu_site"].map(ssu_district)
    exclusions: list[Exclusion] = []

    def split(form_id: str, frame: pd.DataFrame, own_consent: bool) -> pd.DataFrame:
        if own_consent:
            consent = frame["consent_reporting"]
        else:
            consent = frame["survivor_code"].map(latest["consent_reporting"])
            unregistered = ~frame["survivor_code"].isin(latest.index)
            consent = consent.where(~unregistered, "__unregistered")
        keep = consent == "yes"
        reasons = {
            "consent_reporting = no": consent == "no",
            "consent_reporting not answered": consent.isna(),
            "no registration with this survivor code (no consent on record)": (
                consent == "__unregistered"
            ),
        }
        for reason, mask in reasons.items():
            if mask.any():
                left = frame[mask]
                exclusions.append(
                    Exclusion(form_id, reason, len(left), left["survivor_code"].nunique())
                )
        return frame[keep].copy()

    in_period = reg["first_contact"].notna()
    if period.start is not None:
        in_period &= reg["first_contact"] >= pd.Timestamp(period.start)
    if period.end is not None:
        in_period &= reg["first_contact"] <= pd.Timestamp(period.end)
    registrations = split("survivor_registration", reg[in_period], own_consent=False)
    services = split("service_contact", f["service_contact"], own_consent=False)
    intakes = split("survivor_intake", f["survivor_intake"], own_consent=True)
    register = latest[latest["consent_reporting"] == "yes"]
    return _Survivors(register, exclusions, services, registrations, intakes)


def _by(frame: pd.DataFrame, disaggregations, columns: dict[str, str]) -> dict[str, pd.Series]:
    out = {}
    for d in disaggregations:
        if d in columns:
            out[d] = _counts(frame[columns[d]], DISTRICT_ORDER if d == "district" else ())
    return out


# ------------------------------------------------------------------------------ rules


def _survivors_reached(ind, f, s: _Survivors, settings):
    dated = pd.concat(
        [
            s.registrations[["survivor_code"]].assign(day=s.registrations["first_contact"]),
            s.services[["survivor_code"]].assign(
                day=pd.to_datetime(s.services["service_date"], errors="coerce")
            ),
        ]
    )
    first = dated.sort_values("day").drop_duplicates("survivor_code").set_index("survivor_code")
    people = first.join(s.register[["district", "contact_setting"]], how="left")
    people["quarter"] = _quarter(people["day"])
    cols = {"district": "district", "quarter": "quarter", "contact_setting": "contact_setting"}
    return Result(ind, len(people), breakdowns=_by(people, ind.disaggregations, cols))


def _provided(s: _Survivors, service_type: str | None = None) -> pd.DataFrame:
    if s.provided is None:
        rows = s.services[s.services["provided_how"] == "provided_by_us"]
        rows = rows.assign(day=rows["service_date"])
        s.provided = rows.join(s.register["district"], on="survivor_code")
    rows = s.provided
    return rows[rows["service_type"] == service_type] if service_type else rows


def _service_recipients(ind, f, s, settings):
    rows = _provided(s, ind.params["service_type"])
    people = rows.sort_values("day").drop_duplicates("survivor_code")
    people = people.assign(quarter=_quarter(people["day"]))
    cols = {"district": "district", "quarter": "quarter"}
    return Result(ind, len(people), breakdowns=_by(people, ind.disaggregations, cols))


def _service_sessions(ind, f, s, settings):
    rows = _provided(s)
    rows = rows.assign(quarter=_quarter(rows["day"]))
    cols = {"district": "district", "quarter": "quarter", "service_type": "service_type"}
    return Result(ind, len(rows), breakdowns=_by(rows, ind.disaggregations, cols))


def _qualifying(f, settings, institutions=None) -> pd.DataFrame:
    """Participations at or above the attendance threshold, in course order (cached)."""
    if "__qualifying" not in f:
        p = f["training_participant"].drop_duplicates("submission_id")
        share = pd.to_numeric(p["attendance_share"], errors="coerce")
        p = p[share >= settings["attendance_threshold"] - 1e-9]
        day = pd.to_datetime(p["course_end"], errors="coerce").fillna(p["recorded"])
        p = p.assign(day=day, quarter=_quarter(day))
        f["__qualifying"] = p.sort_values(["day", "submission_id"])
    p = f["__qualifying"]
    return p[p["institution_type"].isin(institutions)] if institutions is not None else p


TRAINING_COLUMNS = {"institution": "institution_type", "sex": "sex", "district": "district"}


def _trained_persons(ind, f, s, settings):
    rows = _qualifying(f, settings, ind.params["institutions"])
    latest = rows.drop_duplicates("participant_code", keep="last")
    first = rows.drop_duplicates("participant_code", keep="first").set_index("participant_code")
    latest = latest.assign(quarter=latest["participant_code"].map(first["quarter"]))
    cols = {**TRAINING_COLUMNS, "quarter": "quarter"}
    return Result(ind, len(latest), breakdowns=_by(latest, ind.disaggregations, cols))


def _trained_participations(ind, f, s, settings):
    rows = _qualifying(f, settings)
    cols = {**TRAINING_COLUMNS, "quarter": "quarter"}
    return Result(ind, len(rows), breakdowns=_by(rows, ind.disaggregations, cols))


def _trained_passing(ind, f, s, settings):
    rows = _qualifying(f, settings, ind.params["institutions"])
    tested = rows[(rows["pre_taken"] == "yes") & (rows["post_taken"] == "yes")]
    tested = tested.drop_duplicates("participant_code", keep="last")
    passed = tested[pd.to_numeric(tested["post_score"], errors="coerce") >= settings["pass_mark"]]
    gain = pd.to_numeric(tested["normalised_gain"], errors="coerce").dropna()
    return Result(
        ind,
        len(passed) / len(tested) if len(tested) else None,
        len(passed),
        len(tested),
        breakdowns=_by(passed, ind.disaggregations, TRAINING_COLUMNS),
        denominators=_by(tested, ind.disaggregations, TRAINING_COLUMNS),
        extra={"mean_normalised_gain": round(float(gain.mean()), 3) if len(gain) else None},
    )


def _advocacy(f) -> pd.DataFrame:
    a = f["advocacy_event"].drop_duplicates("submission_id")
    return a.assign(quarter=_quarter(a["event_date"]))


def _sum_by(frame: pd.DataFrame, value: pd.Series, column: str, order=()) -> pd.Series:
    sums = value.groupby(frame[column].fillna("(not recorded)").astype(str)).sum()
    ordered = [c for c in order if c in sums.index] + sorted(
        c for c in sums.index if c not in order
    )
    return sums.reindex(ordered).astype(int)


def _advocacy_direct(ind, f, s, settings):
    a = _advocacy(f)
    female = pd.to_numeric(a["direct_female"], errors="coerce").fillna(0)
    male = pd.to_numeric(a["direct_male"], errors="coerce").fillna(0)
    total = female + male
    out = {}
    for d in ind.disaggregations:
        if d == "sex":
            out[d] = pd.Series({"female": int(female.sum()), "male": int(male.sum())})
        elif d in ("district", "event_type", "quarter"):
            out[d] = _sum_by(a, total, d, DISTRICT_ORDER if d == "district" else ())
    return Result(ind, int(total.sum()), breakdowns=out)


def _advocacy_indirect(ind, f, s, settings):
    a = _advocacy(f)
    reach = pd.to_numeric(a["indirect_reach"], errors="coerce").fillna(0)
    out = {
        d: _sum_by(a, reach, d, DISTRICT_ORDER if d == "district" else ())
        for d in ind.disaggregations
    }
    return Result(ind, int(reach.sum()), breakdowns=out)


def _ssus_functional(ind, f, s, ssu_district):
    units = s.services.dropna(subset=["ssu_site"]).drop_duplicates("ssu_site")
    units = units.assign(district=units["ssu_site"].map(ssu_district))
    cols = {"district": "district"}
    return Result(ind, len(units), breakdowns=_by(units, ind.disaggregations, cols))


def _stations_participating(ind, f, s, settings):
    trained = f["training_participant"]
    trained = trained[trained["institution_type"] == "police"][["police_station", "district"]]
    visits = f["custody_visit"][["police_station", "district"]]
    stations = pd.concat([trained, visits]).dropna(subset=["police_station"])
    stations = stations.drop_duplicates("police_station")
    cols = {"district": "district"}
    return Result(ind, len(stations), breakdowns=_by(stations, ind.disaggregations, cols))


def _facilities_meeting_standards(ind, f, s, settings):
    v = f["custody_visit"].dropna(subset=["facility_id"])
    v = v.assign(day=pd.to_datetime(v["visit_date"], errors="coerce"))
    latest = v.sort_values(["day", "submission_id"]).drop_duplicates("facility_id", keep="last")
    meets = latest[latest["meets_minimum_standards"] == "yes"]
    cols = {"facility_type": "facility_type", "district": "district"}
    return Result(
        ind,
        len(meets) / len(latest) if len(latest) else None,
        len(meets),
        len(latest),
        breakdowns=_by(meets, ind.disaggregations, cols),
        denominators=_by(latest, ind.disaggregations, cols),
    )


def _women_over_24h(ind, f, s, settings):
    v = f["custody_visit"].drop_duplicates("submission_id")
    v = v[v["facility_type"].isin(POLICE_CUSTODY)]
    over = pd.to_numeric(v["women_held_over_24h"], errors="coerce")
    v, over = v[over.notna()], over[over.notna()]
    held = pd.to_numeric(v["women_detained"], errors="coerce").fillna(0)
    out, den = {}, {}
    for d in ind.disaggregations:
        order = DISTRICT_ORDER if d == "district" else ()
        out[d], den[d] = _sum_by(v, over, d, order), _sum_by(v, held, d, order)
    n, total = int(over.sum()), int(held.sum())
    return Result(ind, n / total if total else None, n, total, out, den)


def _allegations(ind, f, s: _Survivors, ssu_district):
    rows = s.intakes[s.intakes["custodial_context"] == "yes"]
    if ind.params.get("referred_only"):
        others = (
            rows["referrals_made"]
            .fillna("")
            .str.replace(r"\b(?:" + "|".join(NOT_REFERRED) + r")\b", "", regex=True)
        )
        rows = rows[others.str.strip() != ""]
    rows = rows.assign(district=rows["ssu_site"].map(ssu_district))
    cols = {"district": "district", "gbv_type": "gbv_type", "place_type": "place_type"}
    return Result(ind, len(rows), breakdowns=_by(rows, ind.disaggregations, cols))


RULES = {
    "survivors_reached": _survivors_reached,
    "service_recipients": _service_recipients,
    "service_sessions": _service_sessions,
    "trained_persons": _trained_persons,
    "trained_participations": _trained_participations,
    "trained_passing": _trained_passing,
    "advocacy_direct": _advocacy_direct,
    "advocacy_indirect": _advocacy_indirect,
    "ssus_functional": _ssus_functional,
    "stations_participating": _stations_participating,
    "facilities_meeting_standards": _facilities_meeting_standards,
    "women_over_24h": _women_over_24h,
    "allegations": _allegations,
}
NEEDS_DISTRICTS = {"ssus_functional", "allegations"}


def compute(
    rows,
    definitions: list[Indicator],
    *,
    period: Period,
    ssu_district: dict[str, str],
    attendance_threshold: float,
    pass_mark: int,
    targets: pd.DataFrame | None = None,
) -> Report:
    """Every indicator for the period from the rows the store read for it."""
    f = frames(rows)
    settings = {"attendance_threshold": attendance_threshold, "pass_mark": pass_mark}
    survivors = _survivors(f, ssu_district, period)
    results = []
    for ind in definitions:
        extra = ssu_district if ind.rule in NEEDS_DISTRICTS else settings
        result = RULES[ind.rule](ind, f, survivors, extra)
        if targets is not None:
            _attach_targets(result, targets, period)
        results.append(result)
    return Report(period, results, survivors.exclusions, settings)


def _attach_targets(result: Result, targets: pd.DataFrame, period: Period) -> None:
    ind = result.indicator
    wanted = {period.label, ind.period} if period.label == "all" else {period.label}
    mine = targets[(targets["indicator"] == ind.id) & targets["period"].isin(wanted)]
    overall = mine[mine["district"] == ""]
    if len(overall):
        result.target = float(overall["target"].iloc[0])
    result.targets_by_district = {
        r.district: float(r.target) for r in mine[mine["district"] != ""].itertuples()
    }
