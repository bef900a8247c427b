"""Small-cell suppression for published tables (pure).

A count from 1 to 4 is shown as `<5` (primary suppression). Row and column totals stay
published, so one hidden cell in a row could be worked out by subtraction; enough other cells are
hidden too (complementary suppression, shown as `x`) that no hidden value is uniquely determined
by what is published.

The check is an audit, not a rule of thumb: every published table is a linear system (cells sum
to their row and column totals, those to the grand total), and for each hidden value the smallest
and largest value consistent with everything published are found by linear programming
(scipy's HiGHS). The attacker is given everything a reader could infer: a `<5` lies in 1..4, an
`x` is at least 5 (complementary cells are only ever chosen among cells of 5 or more), all are
non-negative. The constraint matrix of a two-way table with margins is totally unimodular, so the
bounds are integer and reached by integer tables: min < max means two different consistent
tables exist. While some hidden value is pinned, the smallest published cell of 5 or more that
shares a row or column with it is hidden as well; if none helps, every cell and margin is hidden
and only the grand total stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

SMALL = "<5"
HIDDEN = "x"
MINIMUM = 5

Shown = int | str


@dataclass(frozen=True)
class Published:
    """A table as it may be shown: each cell and total an int, `<5` or `x`."""

    cells: list[list[Shown]]
    row_totals: list[Shown] | None  # None: not shown (a one-column series)
    column_totals: list[Shown]
    total: Shown
    everything_hidden: bool = False  # the fallback: only the grand total is shown

    @property
    def hidden_count(self) -> int:
        return sum(isinstance(v, str) for row in self.cells for v in row)


class _System:
    """Variables: the cells row by row, then row totals (if shown), column totals, the total."""

    def __init__(self, rows: int, cols: int, row_totals: bool):
        self.rows, self.cols, self.has_row_totals = rows, cols, row_totals
        n = rows * cols
        self.row_total = list(range(n, n + rows)) if row_totals else []
        n += len(self.row_total)
        self.col_total = list(range(n, n + cols))
        self.grand = n + cols
        self.size = self.grand + 1
        equations: list[list[int]] = []  # each: the variables that sum to the last one
        for r in range(rows):
            if row_totals:
                equations.append([self.cell(r, c) for c in range(cols)] + [self.row_total[r]])
        for c in range(cols):
            equations.append([self.cell(r, c) for r in range(rows)] + [self.col_total[c]])
        equations.append([*self.col_total, self.grand])
        self.equations = equations
        a = np.zeros((len(equations), self.size))
        for i, eq in enumerate(equations):
            a[i, eq[:-1]] = 1
            a[i, eq[-1]] = -1
        self.a_eq, self.b_eq = a, np.zeros(len(equations))

    def cell(self, r: int, c: int) -> int:
        return r * self.cols + c

    def is_cell(self, v: int) -> bool:
        return v < self.rows * self.cols


def bounds_for(shown: Shown, everything_hidden: bool = False) -> tuple[float, float | None]:
    """What a reader knows of a value from how it is shown."""
    if isinstance(shown, int):
        return (shown, shown)
    if everything_hidden:
        return (0, None)
    if shown == SMALL:
        return (1, MINIMUM - 1)
    return (MINIMUM, None)


def feasible_range(a_eq, b_eq, bounds, variable: int) -> tuple[float, float]:
    """Smallest and largest value of one variable over the polytope (inf when unbounded)."""
    out = []
    for sign in (1, -1):
        objective = np.zeros(a_eq.shape[1])
        objective[variable] = sign
        result = linprog(objective, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if result.status == 3:  # unbounded
            out.append(-sign * np.inf)
        elif result.status != 0:
            raise ValueError(f"the published table is inconsistent: {result.message}")
        else:
            out.append(sign * result.fun)
    return out[0], out[1]


def _values(table: Sequence[Sequence[int]], system: _System) -> list[int]:
    values = [int(v) for row in table for v in row]
    if system.has_row_totals:
        values += [sum(int(v) for v in row) for row in table]
    values += [sum(int(table[r][c]) for r in range(system.rows)) for c in range(system.cols)]
    values.append(sum(values[: system.rows * system.cols]))
    return values


def _pinned(system: _System, shown: list[Shown], everything_hidden: bool) -> int | None:
    """A hidden variable whose value the published ones determine, if any."""
    bounds = [bounds_for(v, everything_hidden) for v in shown]
    for v, value in enumerate(shown):
        if isinstance(value, str):
            low, high = feasible_range(system.a_eq, system.b_eq, bounds, v)
            if high - low < 0.5:
                return v
    return None


def suppress(table: Sequence[Sequence[int]], *, row_totals: bool = True) -> Published:
    """Suppress a two-way table of counts (rows x columns, non-negative integers)."""
    rows = len(table)
    cols = len(table[0]) if rows else 0
    if rows == 0 or cols == 0:
        return Published([[] for _ in range(rows)], [] if row_totals else None, [0] * cols, 0)
    system = _System(rows, cols, row_totals)
    values = _values(table, system)
    if any(v < 0 for v in values):
        raise ValueError("counts must not be negative")
    shown: list[Shown] = [SMALL if 0 < v < MINIMUM else v for v in values]
    for _ in range(system.size + 1):  # each pass hides one more cell, or gives up
        v = _pinned(system, shown, False)
        if v is None:
            return _published(system, shown, False)
        # An equation with one hidden value gives it away by subtraction: open it up first;
        # otherwise widen the pinned value's own equations.
        hidden = {u for u, value in enumerate(shown) if isinstance(value, str)}
        leaking = [eq for eq in system.equations if len(hidden.intersection(eq)) == 1]
        equations = leaking or [eq for eq in system.equations if v in eq]
        candidates = [
            u
            for eq in equations
            for u in eq
            if system.is_cell(u) and isinstance(shown[u], int) and shown[u] >= MINIMUM
        ]
        if not candidates:
            break
        shown[min(candidates, key=lambda u: (values[u], u))] = HIDDEN
    shown = [HIDDEN] * (system.size - 1) + [SMALL if 0 < values[-1] < MINIMUM else values[-1]]
    if _pinned(system, shown, True) is not None:  # a single cell: its value is the total
        shown[-1] = HIDDEN
    return _published(system, shown, True)


def suppress_series(counts: Sequence[int]) -> Published:
    """Suppress one column of counts with its total (e.g. per district)."""
    return suppress([[c] for c in counts], row_totals=False)


def _published(system: _System, shown: list[Shown], everything_hidden: bool) -> Published:
    cells = [[shown[system.cell(r, c)] for c in range(system.cols)] for r in range(system.rows)]
    row_totals = [shown[v] for v in system.row_total] if system.has_row_totals else None
    return Published(
        cells,
        row_totals,
        [shown[v] for v in system.col_total],
        shown[system.grand],
        everything_hidden,
    )
