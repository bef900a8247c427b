"""A computed Report as published rows: suppression applied, one row per figure (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from reports.indicators import Report, Result
from reports.suppression import HIDDEN, Shown, suppress_series

TOTAL = "total"


@dataclass(frozen=True)
class Row:
    indicator: str
    label_en: str
    label_ur: str
    unit: str
    disaggregation: str  # "total" for the headline figure
    category: str
    value: Shown | float | None  # a count, <5, x, or a share (0..1)
    numerator: Shown | None = None
    denominator: Shown | None = None
    target: float | None = None


def _share(numerator: Shown, denominator: Shown) -> float | str | None:
    if isinstance(numerator, int) and isinstance(denominator, int):
        return round(numerator / denominator, 4) if denominator else None
    return HIDDEN


def _series(series, total: int, protect: bool) -> tuple[list[Shown], Shown]:
    values = [int(v) for v in series.values]
    if not protect:
        return values, total
    if sum(values) != total:  # not a partition of the total: publish nothing of it
        return [HIDDEN] * len(values), suppress_series([total]).total
    published = suppress_series(values)
    return [row[0] for row in published.cells], published.total


def result_rows(result: Result, *, suppressed: bool) -> list[Row]:
    ind = result.indicator
    protect = suppressed and ind.suppress
    base = {
        "indicator": ind.id,
        "label_en": ind.label_en,
        "label_ur": ind.label_ur,
        "unit": ind.unit,
    }
    rows = []
    if ind.unit == "share":
        num_total = suppress_series([result.numerator or 0]).total if protect else result.numerator
        den_total = (
            suppress_series([result.denominator or 0]).total if protect else result.denominator
        )
        share = _share(num_total, den_total)
        rows.append(
            Row(
                **base,
                disaggregation=TOTAL,
                category="",
                value=share,
                numerator=num_total,
                denominator=den_total,
                target=result.target,
            )
        )
        for name, numerators in result.breakdowns.items():
            denominators = result.denominators[name]
            numerators = numerators.reindex(denominators.index, fill_value=0)
            nums, _ = _series(numerators, result.numerator or 0, protect)
            dens, _ = _series(denominators, result.denominator or 0, protect)
            for category, n, d in zip(denominators.index, nums, dens, strict=True):
                rows.append(
                    Row(
                        **base,
                        disaggregation=name,
                        category=str(category),
                        value=_share(n, d),
                        numerator=n,
                        denominator=d,
                    )
                )
        for key, value in result.extra.items():
            rows.append(Row(**base, disaggregation=key, category="", value=value))
        return rows
    total = int(result.value or 0)
    shown_total = suppress_series([total]).total if protect else total
    rows.append(
        Row(**base, disaggregation=TOTAL, category="", value=shown_total, target=result.target)
    )
    for name, series in result.breakdowns.items():
        values, _ = _series(series, total, protect)
        for category, value in zip(series.index, values, strict=True):
            target = result.targets_by_district.get(str(category)) if name == "district" else None
            rows.append(
                Row(**base, disaggregation=name, category=str(category), value=value, target=target)
            )
    return rows


def report_rows(report: Report, *, suppressed: bool = True) -> list[Row]:
    return [row for r in report.results for row in result_rows(r, suppressed=suppressed)]
