"""The indicator definitions and targets files, and the period names (pure)."""

from __future__ import annotations

import re
from datetime import date

import pytest

from nigraan.config import load_config
from nigraan.errors import ConfigError
from reports.indicators import UNITS, load_definitions, load_targets, parse_period

URDU = re.compile("[\u0600-\u06ff]")


def test_every_definition_is_complete_and_in_both_languages():
    definitions = load_definitions()
    ids = [d.id for d in definitions]
    assert len(ids) == len(set(ids))
    for d in definitions:
        assert d.unit in UNITS and d.rule_text and d.forms, d.id
        assert URDU.search(d.label_ur), d.id
        assert d.unit != "share" or d.counts in ("persons", "contacts", "units"), d.id
    # The ten reported targets all have an indicator.
    assert {
        "women_reached",
        "legal_counselling",
        "legal_aid",
        "stress_management",
        "life_skills",
        "officials_trained",
        "cso_trained",
        "advocacy_participants",
        "ssus_functional",
        "police_stations_participating",
    } <= set(ids)


def test_the_default_targets_name_known_indicators_and_are_the_reported_ones():
    targets = load_targets(load_config(environ={})["reports.targets_file"])
    assert set(targets["indicator"]) <= {d.id for d in load_definitions()}
    overall = targets[(targets["period"] == "programme") & (targets["district"] == "")]
    assert dict(zip(overall["indicator"], overall["target"], strict=True)) == {
        "women_reached": 370,
        "legal_counselling": 240,
        "legal_aid": 30,
        "stress_management": 36,
        "life_skills": 200,
        "officials_trained": 1500,
        "cso_trained": 300,
        "advocacy_participants": 100000,
        "ssus_functional": 3,
        "police_stations_participating": 30,
    }


def test_a_definition_with_an_unknown_unit_is_refused_by_name(tmp_path):
    path = tmp_path / "definitions.toml"
    path.write_text(
        '[[indicator]]\nid = "x"\nlabel_en = "X"\nlabel_ur = "ایکس"\nunit = "people"\n'
        'rule = "service_sessions"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"indicator 1 \(x\).*'people'") as caught:
        load_definitions(path)
    assert "persons" in caught.value.hint


def test_a_target_that_is_not_a_number_is_refused(tmp_path):
    path = tmp_path / "targets.csv"
    path.write_text("indicator,period,district,target\nlegal_aid,programme,,thirty\n")
    with pytest.raises(ConfigError, match="not a number"):
        load_targets(path)
    with pytest.raises(ConfigError, match=r"reports\.targets_file"):
        load_targets(tmp_path / "missing.csv")


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        ("2026-Q3", date(2026, 7, 1), date(2026, 9, 30)),
        ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
        ("2026", date(2026, 1, 1), date(2026, 12, 31)),
        (None, None, None),
    ],
)
def test_periods(text, start, end):
    period = parse_period(text)
    assert (period.start, period.end) == (start, end)


def test_an_unknown_period_says_how_to_write_one():
    with pytest.raises(ConfigError, match="2026-Q5") as caught:
        parse_period("2026-Q5")
    assert "2026-Q3" in caught.value.hint


def test_the_report_commands_load_without_pandas():
    """`nigraan` starts for every command; pandas and scipy load only when a report runs."""
    import subprocess
    import sys

    import reports.cli
    import reports.publish

    assert reports.cli.TOTAL == reports.publish.TOTAL
    code = "import sys, reports.cli; print('pandas' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
