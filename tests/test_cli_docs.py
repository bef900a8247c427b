"""The README's commands table documents every command and every option of its `--help`."""

from __future__ import annotations

import re
from pathlib import Path

import click
from click.testing import CliRunner

from nigraan.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def commands(command: click.Command, path: tuple[str, ...] = ("nigraan",)):
    """(path, command) for `nigraan` and every command and group under it."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from commands(sub, (*path, name))


def options(command: click.Command) -> list[str]:
    """Every option spelling the command's `--help` lists, but `-h/--help` itself."""
    spelled = [
        o
        for p in command.params
        if isinstance(p, click.Option)
        for o in (*p.opts, *p.secondary_opts)
    ]
    return [o for o in spelled if o not in ("-h", "--help")]


def table_rows() -> list[str]:
    """The first cells of the rows of the README's commands table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return [line.split(" | ", 1)[0] for line in section.splitlines() if line.startswith("| `")]


def rows_naming(rows: list[str], path: tuple[str, ...]) -> list[str]:
    """The rows whose first cell names the command `path` (`nigraan store load ...`)."""
    words = path[1:]
    pattern = re.compile(
        r"`nigraan(?: \[[^]]*\])?" + "".join(f" {re.escape(w)}" for w in words) + r"(?:[ `]|$)"
    )
    return [row for row in rows if pattern.search(row)]


def test_every_command_and_option_is_in_the_readme():
    rows = table_rows()
    missing = []
    for path, command in commands(main):
        named = rows_naming(rows, path)
        if not named:
            missing.append(f"{' '.join(path)}: no row of the commands table")
            continue
        for option in options(command):
            spelled = re.compile(rf"(?<![\w-]){re.escape(option)}(?![\w-])")
            if not any(spelled.search(row) for row in named):
                missing.append(f"{' '.join(path)}: {option}")
    assert not missing, "undocumented in README.md's Commands:\n" + "\n".join(missing)


def test_the_options_walked_are_those_help_shows():
    """The walk above sees what `--help` prints (so the README test cannot pass vacuously)."""
    runner = CliRunner()
    for path, command in commands(main):
        shown = runner.invoke(main, [*path[1:], "--help"]).output
        for option in options(command):
            assert option in shown, (path, option)
    assert "--qr-dir" in options(main.commands["central"].commands["app-users"])
