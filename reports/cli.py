"""`nigraan report ...`: the programme's indicators from the reporting store."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, fields
from pathlib import Path

import click

from nigraan.config import Config, load_config
from nigraan.errors import NigraanError
from reports.export_shape import formula_safe

# pandas and scipy are imported only when a report runs, not with every `nigraan` command.
TOTAL = "total"  # reports.publish.TOTAL


def build_report(config: Config, period_text: str | None):
    """Read the store and compute every indicator for the period."""
    from reports.indicators import report_from_store
    from store.store import Store

    store = Store.from_config(config)
    try:
        return report_from_store(store, config, period_text)
    finally:
        store.close()


def _show(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:g}"
    return str(value)


def render_table(report, rows, suppressed: bool) -> str:
    out = io.StringIO()
    title = "all periods" if report.period.label == "all" else report.period.label
    out.write(f"Programme indicators, {title}")
    out.write(
        " (counts 1 to 4 shown as <5; x: hidden so they cannot be worked out)\n"
        if suppressed
        else " (not suppressed: for programme staff only)\n"
    )
    for row in rows:
        if row.disaggregation == TOTAL:
            target = f"  target {row.target:g}" if row.target is not None else ""
            if row.target and isinstance(row.value, int):
                target += f" ({row.value / row.target:.0%})"
            figure = _show(row.value)
            if row.unit == "share":
                figure += f"  ({_show(row.numerator)} of {_show(row.denominator)})"
            out.write(f"\n{row.indicator} [{row.unit}]: {figure}{target}\n  {row.label_en}\n")
        else:
            figure = _show(row.value)
            if row.unit == "share" and row.denominator is not None:
                figure += f"  ({_show(row.numerator)} of {_show(row.denominator)})"
            label = f"{row.disaggregation}: {row.category}" if row.category else row.disaggregation
            out.write(f"    {label:<40} {figure}\n")
    out.write("\nLeft out of every statistic (no consent to reporting):\n")
    if not report.exclusions:
        out.write("  none\n")
    for e in report.exclusions:
        out.write(
            f"  {e.form_id}: {e.records} record(s) of {e.survivors} survivor(s): {e.reason}\n"
        )
    return out.getvalue()


def render_csv(report, rows) -> str:
    from reports.publish import Row

    out = io.StringIO()
    names = ["period"] + [f.name for f in fields(Row)]
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:  # (labels and categories come from forms: never as formulas)
        values = {"period": report.period.label, **asdict(row)}
        writer.writerow({k: formula_safe(v) for k, v in values.items()})
    for e in report.exclusions:
        writer.writerow(
            {
                "period": report.period.label,
                "indicator": "left_out",
                "unit": "records",
                "disaggregation": e.form_id,
                "category": formula_safe(e.reason),
                "value": e.records,
            }
        )
    return out.getvalue()


@click.group("report")
@click.pass_context
def report(ctx: click.Context) -> None:
    """The programme's indicators against their targets."""
    if not isinstance(ctx.obj, Config):
        try:
            ctx.obj = load_config()
        except NigraanError as exc:
            raise click.ClickException(str(exc)) from exc


@report.command("indicators")
@click.option(
    "--period",
    "period_text",
    metavar="PERIOD",
    help="A quarter (2026-Q3), a year (2026) or all (default).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "xlsx"]),
    default="table",
    show_default=True,
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (required for xlsx).",
)
@click.option(
    "--unsuppressed",
    is_flag=True,
    help="Show counts from 1 to 4 (table only, for programme staff; never in exports).",
)
@click.pass_obj
def indicators(config, period_text, fmt, output, unsuppressed) -> None:
    """Every indicator for a period, with targets and breakdowns; survivor records without
    consent to reporting are left out and counted. Exports (csv, xlsx) are always suppressed."""
    if unsuppressed and fmt != "table":
        raise click.UsageError("--unsuppressed is for the table; exports are always suppressed.")
    try:
        built = build_report(config, period_text)
    except NigraanError as exc:
        raise click.ClickException(str(exc)) from exc
    from reports.publish import report_rows

    suppressed = not unsuppressed
    rows = report_rows(built, suppressed=suppressed)
    if fmt == "xlsx":
        if output is None:
            raise click.UsageError("--format xlsx needs --output FILE.xlsx")
        from reports.workbook import write_workbook

        write_workbook(built, rows, output)
        click.echo(f"wrote {output}")
        return
    text = render_table(built, rows, suppressed) if fmt == "table" else render_csv(built, rows)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)
