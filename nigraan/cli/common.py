"""What every command module shares: failing with an exit code, opening the store, the table.

Exit codes: 0 done; 1 (`FAILED`) the command could not do its work (the database or Central did
not answer, a form or submission was refused); 2 (`USAGE`) it was asked wrongly (click's own
usage errors, a bad setting, an unknown name, a step to run first). This module imports only
nigraan's settings and errors, so every command module imports on its own.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import click

from nigraan.config import BY_NAME
from nigraan.errors import NigraanError

log = logging.getLogger("nigraan")

FAILED = 1  # the work could not be done: the database, Central, the disk, a refusal
USAGE = 2  # the command was asked wrongly: arguments, settings, a step to run first


def fail(exc: NigraanError, code: int) -> NoReturn:
    """Log the error and what to do, and exit with `code` (`FAILED` or `USAGE`)."""
    log.error("%s", f"{exc.message} — {exc.hint}" if exc.hint else exc.message)
    sys.exit(code)


def open_store(config, *, upgrade: bool = False):
    """The store of `database.url`; a database that does not answer exits 1, a bad URL 2.

    `upgrade`: run the migrations (`store init` only); passed on to `Store.from_config`.
    """
    from sqlalchemy.exc import OperationalError

    from store.store import Store

    try:
        return Store.from_config(config, upgrade=upgrade)
    except NigraanError as exc:
        fail(exc, FAILED if isinstance(exc.__cause__, OperationalError) else USAGE)


def store_line(config) -> str:
    """`Store: <database.url>` with the password hidden."""
    return f"Store: {BY_NAME['database.url'].display(config['database.url'])}"


@dataclass(frozen=True)
class Column:
    """A table column: its title, the width it takes at least, right-aligned or not."""

    title: str
    width: int = 0
    right: bool = False


def format_table(
    columns: Sequence[Column], rows: Iterable[Sequence], *, gap: int = 2, header: bool = True
) -> list[str]:
    """The lines of a table: a header and a rule as long as it (unless `header` is false), then
    one line per row. Columns are `gap` spaces apart and as wide as their widest value (at
    least `width`, and the title's when there is a header)."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [
        max([column.width, len(column.title) if header else 0] + [len(row[i]) for row in cells])
        for i, column in enumerate(columns)
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if column.right else value.ljust(width)
            for value, width, column in zip(values, widths, columns, strict=True)
        ]
        return (" " * gap).join(parts).rstrip()

    lines = [line(row) for row in cells]
    if not header:
        return lines
    titles = line([column.title for column in columns])
    return [titles, "-" * len(titles), *lines]


def print_table(
    columns: Sequence[Column], rows: Iterable[Sequence], *, gap: int = 2, header: bool = True
) -> None:
    """Print `format_table(...)` on stdout."""
    for text in format_table(columns, rows, gap=gap, header=header):
        click.echo(text)
