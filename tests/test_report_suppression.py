"""Small-cell suppression: no published table lets a reader work out a hidden count.

The attacker here is written from the published table alone: it rebuilds the equations a reader
sees (cells add up to the row and column totals shown, those to the grand total), knows what each
marker means (`<5`: 1 to 4; `x`: 5 or more, or anything non-negative when everything is hidden),
and asks a linear program for the smallest and largest value of every hidden cell."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from reports.suppression import HIDDEN, SMALL, Published, suppress, suppress_series


def attacker_ranges(published: Published) -> dict[tuple, tuple[float, float]]:
    """Every hidden value's feasible range, from what is published only."""
    rows, cols = len(published.cells), len(published.cells[0])
    names: list[tuple] = [("cell", r, c) for r in range(rows) for c in range(cols)]
    shown = [published.cells[r][c] for r in range(rows) for c in range(cols)]
    if published.row_totals is not None:
        names += [("row", r) for r in range(rows)]
        shown += published.row_totals
    names += [("col", c) for c in range(cols)] + [("total",)]
    shown += [*published.column_totals, published.total]
    index = {name: i for i, name in enumerate(names)}
    equations = []
    for r in range(rows):
        if published.row_totals is not None:
            equations.append(([index["cell", r, c] for c in range(cols)], index["row", r]))
    for c in range(cols):
        equations.append(([index["cell", r, c] for r in range(rows)], index["col", c]))
    equations.append(([index["col", c] for c in range(cols)], index["total",]))
    a = np.zeros((len(equations), len(names)))
    for i, (parts, total) in enumerate(equations):
        a[i, parts] = 1
        a[i, total] = -1

    def bounds(value):
        if isinstance(value, int):
            return (value, value)
        if published.everything_hidden:
            return (0, None)
        return (1, 4) if value == SMALL else (5, None)

    bnds = [bounds(v) for v in shown]
    ranges = {}
    for i, value in enumerate(shown):
        if isinstance(value, str):
            ends = []
            for sign in (1, -1):
                objective = np.zeros(len(names))
                objective[i] = sign
                result = linprog(objective, A_eq=a, b_eq=np.zeros(len(equations)), bounds=bnds)
                assert result.status in (0, 3), result.message
                ends.append(np.inf if result.status == 3 else sign * result.fun)
            ranges[names[i]] = (ends[0], ends[1])
    return ranges


def check(table, published: Published):
    rows, cols = len(table), len(table[0])
    for r in range(rows):
        for c in range(cols):
            shown, true = published.cells[r][c], table[r][c]
            if isinstance(shown, int):
                assert shown == true and not 0 < true < 5
            elif not published.everything_hidden:
                assert (shown == SMALL) == (0 < true < 5)
    for name, (low, high) in attacker_ranges(published).items():
        assert high - low >= 1, (name, low, high, published)


counts = st.one_of(st.integers(0, 6), st.integers(0, 60))
tables = st.integers(1, 5).flatmap(
    lambda cols: st.lists(st.lists(counts, min_size=cols, max_size=cols), min_size=1, max_size=5)
)


@settings(max_examples=150, deadline=None)
@given(tables)
def test_no_hidden_cell_of_a_two_way_table_can_be_worked_out(table):
    check(table, suppress(table))


@settings(max_examples=150, deadline=None)
@given(st.lists(counts, min_size=1, max_size=8))
def test_no_hidden_count_of_a_series_can_be_worked_out(series):
    published = suppress_series(series)
    check([[v] for v in series], published)


def test_a_lone_small_cell_takes_a_complementary_cell_with_it():
    published = suppress_series([3, 10, 20])
    assert published.cells == [[SMALL], [HIDDEN], [20]] and published.total == 33


def test_two_small_cells_that_add_up_to_eight_are_both_four_so_more_is_hidden():
    # 4 + 4 = 8 with each at most 4: the `<5` alone would give both away.
    published = suppress([[4, 4], [10, 10]])
    assert attacker_ranges(published)  # something is hidden
    check([[4, 4], [10, 10]], published)
    assert published.cells[1] != [10, 10]


def test_large_tables_are_left_alone():
    assert suppress([[5, 6], [7, 8]]).cells == [[5, 6], [7, 8]]


def test_negative_counts_are_refused():
    with pytest.raises(ValueError, match="negative"):
        suppress([[-1, 3]])
