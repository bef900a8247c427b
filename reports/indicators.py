"""Programme indicators from the store's rows (pure shaping with pandas).

`compute(rows, definitions, ...)` takes what store.indicator_queries.indicator_rows read (filtered,
deduplicated and counted per period in SQL: a few hundred grouped rows) and returns one Result
per indicator: its value, its breakdowns (each a Series that adds up to the value, so a
suppressed breakdown can be checked against it), and the survivor records left out for want of
consent. `compute_periods` does the same for several periods read in one pass. Counting rules:
DOMAIN.md section 5.
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
from store.indicator_queries import SETTINGS, passing_key, period_key, trained_key
from store.indicator_queries import UNREGISTERED as UNREG

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


NOT_RECORDED = "(not recorded)"
NUMERIC = ("n", "records", "survivors", "source", "female", "male", "indirect")
NUMERIC += ("tested", "passed", "gain_sum", "gain_n", "meets", "over", "held")


def frames(rows, key: str | None = None) -> dict[str, pd.DataFrame]:
    """store.indicator_queries' grouped Rows -> DataFrames, those of one period (its
    period_key) when given, numbers as numbers and a `quarter` from each month (YYYY-MM)."""
    out = {}
    for name, r in rows.items():
        if name == SETTINGS:
            continue
        frame = pd.DataFrame.from_records(r.rows, columns=r.columns)
        if key is not None:
            frame = frame[frame["period"] == key]
        for column in NUMERIC:
            if column in frame:
                frame[column] = pd.to_numeric(frame[column])
        if "month" in frame:  # YYYY-MM
            frame["quarter"] = [
                f"{m[:4]}-Q{(int(m[5:7]) + 2) // 3}" if isinstance(m, str) else None
                for m in frame["month"]
            ]
        out[name] = frame.reset_index(drop=True)
    return out


def _order(index, order) -> list:
    """Known categories first (in their order), the rest sorted."""
    ordered = [c for c in order if c in index]
    return ordered + sorted(c for c in index if c not in ordered)


def _counts(frame: pd.DataFrame, column: str, weight: str = "n", order=()) -> pd.Series:
    """How many per category (`(not recorded)` for missing): only categories that occur."""
    sums = _sums(frame, column, weight, order)
    return sums[sums > 0]


def _sums(frame: pd.DataFrame, column: str, weight: str, order=()) -> pd.Series:
    """The weight summed per category of the rows present (a sum may be 0)."""
    # A few hundred grouped rows: a loop is quicker than a pandas groupby on so few.
    sums: dict[str, float] = {}
    for category, value in zip(frame[column].tolist(), frame[weight].tolist(), strict=True):
        key = NOT_RECORDED if pd.isna(category) else str(category)
        sums[key] = sums.get(key, 0) + value
    index = _order(sums, order)
    return pd.Series([int(sums[k]) for k in index], index=index, dtype="int64")


def _by(
    frame: pd.DataFrame, disaggregations, columns: dict[str, str], weight: str = "n"
) -> dict[str, pd.Series]:
    out = {}
    for d in disaggregations:
        if d in columns:
            order = DISTRICT_ORDER if d == "district" else ()
            out[d] = _counts(frame, columns[d], weight, order)
    return out


def _total(frame: pd.DataFrame, column: str = "n") -> int:
    return int(frame[column].sum()) if len(frame) else 0


def _exclusions(frame: pd.DataFrame) -> list[Exclusion]:
    """Survivor records left out of every statistic, per form and reason (consent)."""
    reasons = (
        ("consent_reporting = no", lambda c: c == "no"),
        ("consent_reporting not answered", lambda c: c.isna()),
        ("no registration with this survivor code (no consent on record)", lambda c: c == UNREG),
    )
    out = []
    for form_id in ("survivor_registration", "service_contact", "survivor_intake"):
        mine = frame[frame["form_id"] == form_id]
        for reason, test in reasons:
            left = mine[test(mine["consent"])]
            if len(left):
                out.append(
                    Exclusion(form_id, reason, _total(left, "records"), _total(left, "survivors"))
                )
    return out


# ------------------------------------------------------------------------------ rules


def _survivors_reached(ind, f, ssu_district, settings):
    people = f["reached"].assign(district=f["reached"]["ssu_site"].map(ssu_district))
    cols = {"district": "district", "quarter": "quarter", "contact_setting": "contact_setting"}
    return Result(ind, _total(people), breakdowns=_by(people, ind.disaggregations, cols))


def _service_recipients(ind, f, ssu_district, settings):
    people = f["recipients"][f["recipients"]["service_type"] == ind.params["service_type"]]
    people = people.assign(district=people["ssu_site"].map(ssu_district))
    cols = {"district": "district", "quarter": "quarter"}
    return Result(ind, _total(people), breakdowns=_by(people, ind.disaggregations, cols))


def _service_sessions(ind, f, ssu_district, settings):
    rows = f["sessions"].assign(district=f["sessions"]["ssu_site"].map(ssu_district))
    cols = {"district": "district", "quarter": "quarter", "service_type": "service_type"}
    return Result(ind, _total(rows), breakdowns=_by(rows, ind.disaggregations, cols))


TRAINING_COLUMNS = {"institution": "institution_type", "sex": "sex", "district": "district"}


def _training(f, name: str) -> pd.DataFrame:
    if name not in f:
        raise ValueError(
            f"the store's rows have no {name!r}: read them with indicator_rows(..., "
            "trained_groups=training_groups(definitions))"
        )
    return f[name]


def _trained_persons(ind, f, ssu_district, settings):
    people = _training(f, trained_key(ind.params["institutions"]))
    cols = {**TRAINING_COLUMNS, "quarter": "quarter"}
    return Result(ind, _total(people), breakdowns=_by(people, ind.disaggregations, cols))


def _trained_participations(ind, f, ssu_district, settings):
    rows = f["participations"]
    cols = {**TRAINING_COLUMNS, "quarter": "quarter"}
    return Result(ind, _total(rows), breakdowns=_by(rows, ind.disaggregations, cols))


def _trained_passing(ind, f, ssu_district, settings):
    tested = _training(f, passing_key(ind.params["institutions"]))
    passed, total, gains = (
        _total(tested, "passed"),
        _total(tested, "tested"),
        _total(tested, "gain_n"),
    )
    gain = float(tested["gain_sum"].sum()) / gains if gains else None
    return Result(
        ind,
        passed / total if total else None,
        passed,
        total,
        breakdowns=_by(tested, ind.disaggregations, TRAINING_COLUMNS, "passed"),
        denominators=_by(tested, ind.disaggregations, TRAINING_COLUMNS, "tested"),
        extra={"mean_normalised_gain": round(gain, 3) if gain is not None else None},
    )


def _advocacy_direct(ind, f, ssu_district, settings):
    a = f["advocacy"].assign(total=f["advocacy"]["female"] + f["advocacy"]["male"])
    out = {}
    for d in ind.disaggregations:
        if d == "sex":
            out[d] = pd.Series({"female": _total(a, "female"), "male": _total(a, "male")})
        elif d in ("district", "event_type", "quarter"):
            out[d] = _sums(a, d, "total", DISTRICT_ORDER if d == "district" else ())
    return Result(ind, _total(a, "total"), breakdowns=out)


def _advocacy_indirect(ind, f, ssu_district, settings):
    a = f["advocacy"]
    out = {
        d: _sums(a, d, "indirect", DISTRICT_ORDER if d == "district" else ())
        for d in ind.disaggregations
    }
    return Result(ind, _total(a, "indirect"), breakdowns=out)


def _ssus_functional(ind, f, ssu_district, settings):
    units = f["units"].assign(district=f["units"]["ssu_site"].map(ssu_district), n=1)
    cols = {"district": "district"}
    return Result(ind, len(units), breakdowns=_by(units, ind.disaggregations, cols))


def _stations_participating(ind, f, ssu_district, settings):
    # A station in the district its staff at courses give most often (else its visits').
    s = f["stations"].assign(district=f["stations"]["district"].fillna(NOT_RECORDED))
    s = s.sort_values(["police_station", "source", "n", "district"], ascending=[1, 1, 0, 1])
    stations = s.drop_duplicates("police_station").assign(n=1)
    cols = {"district": "district"}
    return Result(ind, len(stations), breakdowns=_by(stations, ind.disaggregations, cols))


def _facilities_meeting_standards(ind, f, ssu_district, settings):
    latest = f["facilities"]
    meets, total = _total(latest, "meets"), _total(latest)
    cols = {"facility_type": "facility_type", "district": "district"}
    return Result(
        ind,
        meets / total if total else None,
        meets,
        total,
        breakdowns=_by(latest, ind.disaggregations, cols, "meets"),
        denominators=_by(latest, ind.disaggregations, cols),
    )


def _women_over_24h(ind, f, ssu_district, settings):
    v = f["held_over_24h"]
    v = v[v["facility_type"].isin(POLICE_CUSTODY)]
    out, den = {}, {}
    for d in ind.disaggregations:
        order = DISTRICT_ORDER if d == "district" else ()
        out[d], den[d] = _sums(v, d, "over", order), _sums(v, d, "held", order)
    n, total = _total(v, "over"), _total(v, "held")
    return Result(ind, n / total if total else None, n, total, out, den)


def _allegations(ind, f, ssu_district, settings):
    rows = f["allegations"]
    if ind.params.get("referred_only"):
        others = (
            rows["referrals_made"]
            .fillna("")
            .str.replace(r"\b(?:" + "|".join(NOT_REFERRED) + r")\b", "", regex=True)
        )
        rows = rows[others.str.strip() != ""]
    rows = rows.assign(district=rows["ssu_site"].map(ssu_district))
    cols = {"district": "district", "gbv_type": "gbv_type", "place_type": "place_type"}
    return Result(ind, _total(rows), breakdowns=_by(rows, ind.disaggregations, cols))


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


def training_groups(definitions: list[Indicator]) -> list[tuple[str, ...]]:
    """The institution groups the definitions' trained_* rules count (for indicator_rows)."""
    rules = ("trained_persons", "trained_passing")
    return sorted({tuple(sorted(i.params["institutions"])) for i in definitions if i.rule in rules})


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
    """Every indicator for the period from the rows the store read for it (or for several
    periods at once, this one among them)."""
    read = dict(zip(rows[SETTINGS].columns, rows[SETTINGS].rows[0], strict=True))
    if (read["attendance_threshold"], read["pass_mark"]) != (attendance_threshold, pass_mark):
        raise ValueError(
            f"the store's rows were read with attendance threshold {read['attendance_threshold']}"
            f" and pass mark {read['pass_mark']}, not {attendance_threshold} and {pass_mark}: "
            "pass the same settings to indicator_rows"
        )
    f = frames(rows, period_key(period.start, period.end))
    settings = {"attendance_threshold": attendance_threshold, "pass_mark": pass_mark}
    results = []
    for ind in definitions:
        result = RULES[ind.rule](ind, f, ssu_district, settings)
        if targets is not None:
            _attach_targets(result, targets, period)
        results.append(result)
    return Report(period, results, _exclusions(f["exclusions"]), settings)


def compute_periods(
    rows,
    definitions: list[Indicator],
    *,
    periods: list[Period],
    ssu_district: dict[str, str],
    attendance_threshold: float,
    pass_mark: int,
    targets: pd.DataFrame | None = None,
) -> dict[str, Report]:
    """One Report per period (by label) from one read of them all:
    indicator_rows(store, periods=[(p.start, p.end) for p in periods], ...)."""
    return {
        p.label: compute(
            rows,
            definitions,
            period=p,
            ssu_district=ssu_district,
            attendance_threshold=attendance_threshold,
            pass_mark=pass_mark,
            targets=targets,
        )
        for p in periods
    }


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


def report_from_store(store, config, period_text: str | None) -> Report:
    """Every indicator for the period, read from `store` with the settings' attendance
    threshold, pass mark, targets and reference lists: what `nigraan report` and the dashboard
    both show."""
    from store.indicator_queries import indicator_rows

    period = parse_period(period_text)
    definitions = load_definitions()
    rows = indicator_rows(
        store,
        period.start,
        period.end,
        attendance_threshold=config["reports.attendance_threshold"],
        pass_mark=config["reports.pass_mark"],
        trained_groups=training_groups(definitions),
    )
    return compute(
        rows,
        definitions,
        period=period,
        ssu_district=support_unit_districts(config["forms.reference_dir"]),
        attendance_threshold=config["reports.attendance_threshold"],
        pass_mark=config["reports.pass_mark"],
        targets=load_targets(config["reports.targets_file"]),
    )
