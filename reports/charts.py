"""Charts of the indicator report as inline SVG, built by pure functions (no IO, no JavaScript).

Each function takes figures already published (reports.publish: a suppressed count arrives as
`<5` or `x`, never as its number) and returns one `<svg>` element as text: a title and a
description for screen readers, a viewBox so it scales down to a 360 px phone, and `rtl=True`
mirrors it for Urdu (bars grow from the right, time runs from right to left). A hidden figure
gets no bar, only its marker as text, so the drawing leaks nothing the numbers do not; scales
come from the shown figures and targets only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

WIDTH = 340  # viewBox units; CSS scales the drawing to the column (at most ~34rem)
FONT = 13
BAR = 18
GAP = 10
PAD = 4
LRI, PDI = "\u2066", "\u2069"  # isolates a number ("<5", "12%") from the Urdu around it


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its length (None: hidden, no bar is drawn) and the text beside it."""

    label: str
    value: float | None
    text: str
    target: float | None = None  # a marker on the bar's scale


def _attr(value) -> str:
    return quoteattr(str(value))


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _short(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def _ltr(text: str) -> str:
    """A figure ("<5", "12%", "5 of 370") kept left to right inside Urdu; a phrase in an
    right-to-left script is left to the caller, who isolates the numbers in it."""
    if any("\u0590" <= c <= "\u08ff" for c in text):
        return text
    return f"{LRI}{text}{PDI}"


class _Canvas:
    """Logical x (from the start side) to drawn x; mirrored for right-to-left."""

    def __init__(self, width: float, rtl: bool):
        self.width, self.rtl = width, rtl

    def x(self, logical: float, length: float = 0.0) -> float:
        return self.width - logical - length if self.rtl else logical

    def text(self, logical: float, body: str, y: float, anchor: str = "start", **attrs) -> str:
        """Text starting (anchor="start") or ending ("end") at `logical`, whichever the writing
        direction: the svg's `direction` makes "start" the right end in Urdu."""
        extra = "".join(f" {k.rstrip('_')}={_attr(v)}" for k, v in attrs.items())
        return (
            f'<text x="{_num(self.x(logical))}" y="{_num(y)}" text-anchor="{anchor}"{extra}>'
            f"{escape(body)}</text>"
        )


def _open(
    chart_id: str, title: str, desc: str, width: float, height: float, rtl: bool, kind: str
) -> list[str]:
    direction = ' direction="rtl"' if rtl else ""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}" role="img" '
        f'viewBox="0 0 {_num(width)} {_num(height)}" preserveAspectRatio="xMidYMin meet" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" font-size="{FONT}"{direction}>',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
    ]


def bar_chart(
    chart_id: str,
    title: str,
    desc: str,
    bars: Sequence[Bar],
    *,
    rtl: bool = False,
    scale_max: float | None = None,
    track: bool = False,
    label_width: float = 112,
) -> str:
    """Horizontal bars, one per category: label at the start side, the bar, its text after it;
    a target as a dark tick across the bar. `track` draws the scale's full length faintly
    behind each bar (for shares, whose scale is 0 to 100%). When a label would not fit beside
    its bar, every label goes on its own line above its bar (a phone is narrow)."""
    canvas = _Canvas(WIDTH, rtl)
    text_room = 92
    chars = FONT * 0.55  # about the width of a character
    beside = (
        max((len(b.label) for b in bars), default=0) <= label_width / chars
        and max((len(b.text) for b in bars), default=0) <= (text_room - PAD) / chars
    )
    if not beside:  # the label, and the text at the far end, on a line above a full bar
        label_width, text_room = 0, PAD
    length = WIDTH - label_width - text_room
    shown = [b.value for b in bars if b.value is not None] + [
        b.target for b in bars if b.target is not None
    ]
    top = scale_max if scale_max is not None else max(shown, default=0)
    row = BAR + GAP + (0 if beside else FONT + PAD)
    height = len(bars) * row + GAP
    out = _open(chart_id, title, desc, WIDTH, height, rtl, "bars")
    for i, b in enumerate(bars):
        y = GAP + i * row + (0 if beside else FONT + PAD)
        middle = y + BAR / 2 + FONT * 0.35
        out.append(f"<g class={_attr('bar' if b.value is not None else 'bar hidden')}>")
        out.append(f"<title>{escape(b.label)}: {escape(b.text)}</title>")
        if beside:
            out.append(
                canvas.text(0, _short(b.label, int(label_width / chars)), middle, class_="label")
            )
        else:
            room = int((WIDTH - len(b.text) * chars - 2 * PAD) / chars)
            out.append(canvas.text(0, _short(b.label, room), y - PAD - 1, class_="label"))
        start = label_width
        if track and top > 0:
            out.append(
                f'<rect class="track" x="{_num(canvas.x(start, length))}" y="{_num(y)}" '
                f'width="{_num(length)}" height="{BAR}"/>'
            )
        drawn = 0.0
        if b.value is not None and top > 0:
            drawn = max(0.0, min(b.value / top, 1.0)) * length
            if drawn > 0:
                out.append(
                    f'<rect class="fill" x="{_num(canvas.x(start, drawn))}" y="{_num(y)}" '
                    f'width="{_num(drawn)}" height="{BAR}"/>'
                )
        if b.target is not None and top > 0:
            at = start + min(b.target / top, 1.0) * length
            out.append(
                f'<line class="target" x1="{_num(canvas.x(at))}" x2="{_num(canvas.x(at))}" '
                f'y1="{_num(y - 3)}" y2="{_num(y + BAR + 3)}"/>'
            )
        if beside:
            after = start + (length if track else drawn) + PAD
            out.append(canvas.text(after, _ltr(b.text), middle, class_="value"))
        else:
            out.append(canvas.text(WIDTH, _ltr(b.text), y - PAD - 1, anchor="end", class_="value"))
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def progress_bar(
    chart_id: str,
    title: str,
    desc: str,
    achieved: float | None,
    target: float,
    text: str,
    *,
    rtl: bool = False,
) -> str:
    """Achieved against its target: a track as long as the larger of the two, the achieved
    bar on it and a tick at the target. A hidden achievement draws no bar."""
    canvas = _Canvas(WIDTH, rtl)
    top = max(target, achieved or 0)
    length = WIDTH - 2 * PAD
    height = BAR + 2 * GAP + FONT + PAD
    out = _open(chart_id, title, desc, WIDTH, height, rtl, "progress")
    y = GAP
    out.append(
        f'<rect class="track" x="{_num(canvas.x(PAD, length))}" y="{y}" '
        f'width="{_num(length)}" height="{BAR}"/>'
    )
    if achieved is not None and top > 0 and achieved > 0:
        drawn = achieved / top * length
        out.append(
            f'<rect class="fill" x="{_num(canvas.x(PAD, drawn))}" y="{y}" '
            f'width="{_num(drawn)}" height="{BAR}"/>'
        )
    if top > 0:
        at = PAD + target / top * length
        out.append(
            f'<line class="target" x1="{_num(canvas.x(at))}" x2="{_num(canvas.x(at))}" '
            f'y1="{y - 4}" y2="{y + BAR + 4}"/>'
        )
    below = y + BAR + GAP + FONT * 0.8
    out.append(canvas.text(PAD, _ltr(text), below, class_="value"))
    out.append("</svg>")
    return "".join(out)


def column_chart(
    chart_id: str,
    title: str,
    desc: str,
    columns: Sequence[Bar],
    *,
    rtl: bool = False,
    width: float = 160,
) -> str:
    """Small multiple: a column per period, its figure above it and the period below (two
    lines, e.g. `Q3` and `2026`, when the label is `2026-Q3`). Time runs from the start side:
    left to right in English, right to left in Urdu."""
    canvas = _Canvas(width, rtl)
    top = max((c.value for c in columns if c.value is not None), default=0)
    room = 60.0 if top > 0 else 0.0  # every figure hidden: their markers only, no empty plot
    base = room + FONT + 2 * PAD
    height = base + 2 * FONT + PAD
    n = max(len(columns), 1)
    slot = (width - 2 * PAD) / n
    column = min(slot * 0.7, 28)
    out = _open(chart_id, title, desc, width, height, rtl, "columns")
    out.append(
        f'<line class="axis" x1="{PAD}" x2="{_num(width - PAD)}" y1="{_num(base)}" '
        f'y2="{_num(base)}"/>'
    )
    font = min(FONT, max(8.0, slot / 3))
    for i, c in enumerate(columns):
        middle = PAD + slot * i + slot / 2
        x = canvas.x(middle - column / 2, column)
        out.append(f"<g class={_attr('column' if c.value is not None else 'column hidden')}>")
        out.append(f"<title>{escape(c.label)}: {escape(c.text)}</title>")
        tall = 0.0
        if c.value is not None and top > 0:
            tall = c.value / top * room
            if tall > 0:
                out.append(
                    f'<rect class="fill" x="{_num(x)}" y="{_num(base - tall)}" '
                    f'width="{_num(column)}" height="{_num(tall)}"/>'
                )
        cx = _num(canvas.x(middle))
        out.append(
            f'<text class="value" x="{cx}" y="{_num(base - tall - PAD)}" text-anchor="middle" '
            f'font-size="{_num(font)}">{escape(_ltr(c.text))}</text>'
        )
        first, _, second = c.label.partition("-")
        lines = (second, first) if second else (first,)
        for k, line in enumerate(lines):
            out.append(
                f'<text class="label" x="{cx}" y="{_num(base + FONT * (k + 1))}" '
                f'text-anchor="middle" font-size="{_num(font)}">{escape(line)}</text>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)
