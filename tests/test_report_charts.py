"""reports/charts.py: the dashboard's SVG, built from published figures (pure, fast)."""

from __future__ import annotations

import pytest
from lxml import etree

from reports.charts import Bar, bar_chart, column_chart, progress_bar

NS = "{http://www.w3.org/2000/svg}"


def parsed(svg: str) -> etree._Element:
    root = etree.fromstring(svg.encode())  # well-formed XML, or this raises
    assert root.tag == f"{NS}svg"
    return root


def fills(root) -> list[etree._Element]:
    return root.findall(f".//{NS}rect[@class='fill']")


def test_a_bar_chart_has_a_title_a_description_and_scales_by_its_viewbox():
    root = parsed(
        bar_chart("w", "Women reached, by district", "Lahore: 12", [Bar("Lahore", 12, "12")])
    )
    assert root.findtext(f"{NS}title") == "Women reached, by district"
    assert root.findtext(f"{NS}desc") == "Lahore: 12"
    assert root.get("aria-labelledby") == "w-title w-desc" and root.get("role") == "img"
    assert root.get("viewBox").startswith("0 0 ") and root.get("width") is None


def test_a_hidden_figure_draws_no_bar_only_its_marker():
    root = parsed(
        bar_chart(
            "d",
            "t",
            "d",
            [Bar("Lahore", None, "<5"), Bar("Rawalpindi", 40, "40"), Bar("Islamabad", None, "x")],
        )
    )
    groups = root.findall(f"{NS}g")
    assert [g.get("class") for g in groups] == ["bar hidden", "bar", "bar hidden"]
    assert [len(fills(g)) for g in groups] == [0, 1, 0]
    assert groups[0].find(f"{NS}text[@class='value']").text == "\u2066<5\u2069"


def test_the_scale_comes_from_shown_figures_and_targets_only():
    """A hidden figure cannot stretch or shrink the other bars: it never reaches the chart."""
    one = parsed(bar_chart("a", "t", "d", [Bar("A", 10, "10"), Bar("B", 20, "20")]))
    two = parsed(
        bar_chart("a", "t", "d", [Bar("A", 10, "10"), Bar("B", 20, "20"), Bar("C", None, "<5")])
    )
    assert [r.get("width") for r in fills(one)] == [r.get("width") for r in fills(two)]
    widths = [float(r.get("width")) for r in fills(one)]
    assert widths[1] == pytest.approx(2 * widths[0])
    with_target = parsed(bar_chart("a", "t", "d", [Bar("A", 10, "10", target=40)]))
    (target,) = with_target.findall(f".//{NS}line[@class='target']")
    (bar,) = fills(with_target)
    start = float(bar.get("x"))
    assert float(target.get("x1")) - start == pytest.approx(4 * float(bar.get("width")))


def test_right_to_left_mirrors_the_bars_and_says_its_direction():
    bars = [Bar("لاہور", 30, "30")]
    ltr, rtl = (
        parsed(bar_chart("a", "t", "d", bars)),
        parsed(bar_chart("a", "t", "d", bars, rtl=True)),
    )
    assert ltr.get("direction") is None and rtl.get("direction") == "rtl"
    width = float(ltr.get("viewBox").split()[2])
    (a,), (b,) = fills(ltr), fills(rtl)
    assert float(b.get("x")) == pytest.approx(width - float(a.get("x")) - float(a.get("width")))
    label_ltr = ltr.find(f".//{NS}text[@class='label']")
    label_rtl = rtl.find(f".//{NS}text[@class='label']")
    assert float(label_ltr.get("x")) == 0 and float(label_rtl.get("x")) == width


def test_a_share_chart_draws_the_full_scale_behind_each_bar():
    root = parsed(bar_chart("s", "t", "d", [Bar("Lahore", 0.5, "50%")], scale_max=1.0, track=True))
    (track,) = root.findall(f".//{NS}rect[@class='track']")
    (bar,) = fills(root)
    assert float(bar.get("width")) == pytest.approx(float(track.get("width")) / 2)


def test_progress_against_a_target_and_beyond_it():
    half = parsed(progress_bar("p", "t", "d", 185, 370, "185 of 370 (50%)"))
    (track,), (bar,) = half.findall(f"{NS}rect[@class='track']"), fills(half)
    assert float(bar.get("width")) == pytest.approx(float(track.get("width")) / 2)
    over = parsed(progress_bar("p", "t", "d", 600, 300, "600 of 300 (200%)"))
    (target,) = over.findall(f"{NS}line[@class='target']")
    (track,) = over.findall(f"{NS}rect[@class='track']")
    middle = float(track.get("x")) + float(track.get("width")) / 2
    assert float(target.get("x1")) == pytest.approx(middle)
    hidden = parsed(progress_bar("p", "t", "d", None, 370, "<5 of 370"))
    assert fills(hidden) == [] and "<5 of 370" in "".join(hidden.itertext())


def test_quarters_run_from_the_start_side_with_the_year_under_the_quarter():
    columns = [Bar("2026-Q2", 10, "10"), Bar("2026-Q3", None, "<5"), Bar("2026-Q4", 20, "20")]
    ltr = parsed(column_chart("q", "t", "d", columns))
    rtl = parsed(column_chart("q", "t", "d", columns, rtl=True))

    def xs(root):
        return [float(g.find(f"{NS}text[@class='value']").get("x")) for g in root.findall(f"{NS}g")]

    assert xs(ltr) == sorted(xs(ltr)) and xs(rtl) == sorted(xs(rtl), reverse=True)
    first = ltr.findall(f"{NS}g")[0]
    assert [t.text for t in first.findall(f"{NS}text[@class='label']")] == ["Q2", "2026"]
    assert len(fills(ltr)) == 2  # none for the hidden quarter


def test_text_is_escaped():
    root = parsed(bar_chart("e", "a < b & c", "<script>", [Bar("<b>", 1, "1 & 2")]))
    assert root.findtext(f"{NS}desc") == "<script>"
    assert root.find(f".//{NS}script") is None


def test_a_label_too_long_for_its_place_goes_above_a_full_width_bar():
    short = parsed(bar_chart("a", "t", "d", [Bar("Lahore", 10, "10")]))
    long = parsed(bar_chart("a", "t", "d", [Bar("Islamabad Capital Territory", 10, "10")]))
    (beside,), (above,) = fills(short), fills(long)
    assert float(above.get("width")) > float(beside.get("width")) * 1.3
    label = long.find(f".//{NS}text[@class='label']")
    value = long.find(f".//{NS}text[@class='value']")
    assert label.text == "Islamabad Capital Territory"  # whole, not cut
    assert float(label.get("y")) < float(above.get("y"))  # on the line above its bar
    assert value.get("text-anchor") == "end" and value.get("y") == label.get("y")


def test_an_urdu_phrase_is_not_forced_left_to_right():
    root = parsed(bar_chart("u", "t", "d", [Bar("لاہور", 0.5, "50% (2 میں سے 1)")], rtl=True))
    assert root.find(f".//{NS}text[@class='value']").text == "50% (2 میں سے 1)"
