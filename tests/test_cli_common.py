"""nigraan/cli/common.py (the one table printer) and the CLI's pure helpers."""

from __future__ import annotations

import pytest

from nigraan.cli.central import qr_file_name
from nigraan.cli.common import Column, format_table


def test_a_table_has_a_header_a_rule_and_aligned_columns():
    lines = format_table(
        (Column("form", 6), Column("n", right=True), Column("status")),
        [("a", 1, "ok"), ("longer_form", 120, "")],
    )
    assert lines == [
        "form           n  status",
        "------------------------",
        "a              1  ok",
        "longer_form  120",
    ]


def test_a_table_without_header_keeps_the_minimum_widths():
    lines = format_table(
        (Column("check", 8), Column("state", 4), Column("x")),
        [("db", "ok", "fine")],
        gap=1,
        header=False,
    )
    assert lines == ["db       ok   fine"]


@pytest.mark.parametrize(
    "name, file_name",
    [
        ("collector-1", "collector-1.png"),
        ("Monitor Lahore 1", "Monitor Lahore 1.png"),
        ("نگران", "نگران.png"),
        ("../x", "_._x-7.png"),
        ("a/b", "a_b-7.png"),
        ("a\\b", "a_b-7.png"),
        (".hidden", "_hidden-7.png"),
        ("..", "_.-7.png"),
        ("tab\nname", "tab_name-7.png"),
        ("   ", "app-user-7.png"),
    ],
)
def test_qr_file_names_stay_in_their_folder(name, file_name):
    assert qr_file_name(name, 7) == file_name
    assert "/" not in file_name and "\\" not in file_name and not file_name.startswith(".")
