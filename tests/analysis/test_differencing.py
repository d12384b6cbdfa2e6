"""The differencing attack on two describe analyses of one column, run on what describe_fit
really opens (Shamir shares, three local engines), against the plaintext counts.

Counts are integers opened exactly, so every recovered count must equal the truth exactly."""

from __future__ import annotations

from collections import Counter

import pytest

from mpcactors.analysis.attacks.differencing import differencing_attack, run_describe_pair
from mpcactors.plan import Analysis, Describe, Plan

MIN_CELL = 10


def plan_of(first, second):
    return Plan("two descriptions", (
        Analysis("cohort", Describe((), (("nyha", tuple(first)),)), ("hospital",)),
        Analysis("cohort-b", Describe((), (("nyha", tuple(second)),)), ("hospital",)),
    ), MIN_CELL)


def codes_with(counts):
    """Integer codes, ``counts[level]`` rows per level, in a shuffled-looking order."""
    codes = [level for level, n in counts.items() for _ in range(n)]
    return codes[::2] + codes[1::2]


def test_an_empty_other_no_longer_gives_away_a_suppressed_count():
    """Level 3 has 4 persons (< min_cell) and nothing lies outside 1..3. Before describe's
    residual rule, [1, 2, 3] showed level 1, so [1, 2]'s suppressed 'other' (level 3) came out
    as m minus the shown counts. Now the empty 'other' is shown as 0 and does not hide level
    3: level 1 is its complement in both analyses, and nothing is recovered. The plan still
    warns (the two level sets differ), and what was attacked is what the manifest lists."""
    truth = {1: 40, 2: 30, 3: 4}
    codes = codes_with(truth)
    first, second, revealed = run_describe_pair(codes, [1, 2, 3], [1, 2], min_cell=MIN_CELL, column="nyha")
    a, b = first.categorical["nyha"], second.categorical["nyha"]
    assert [c.count for c in a] == [None, 30, None, 0] and [c.count for c in b] == [None, 30, None]
    found = differencing_attack(first.m, "nyha", a, b, closed=True)
    assert 3 not in found.levels and 1 not in found.levels  # only the assumed-empty 'other' is "known"

    plan = plan_of([1, 2, 3], [1, 2])
    assert any("differencing" in w and "'nyha'" in w for w in plan.warnings)
    for analysis, opened in zip(("cohort", "cohort-b"), revealed, strict=True):
        declared = [(o.label, o.size) for o in plan.manifest() if o.analysis == analysis]
        assert opened == declared


def test_a_level_inside_the_other_cell_is_isolated():
    """The differencing attack, shown: [1, 2, 3] vs [1, 3] with level 2 small. The second's
    'other' is level 2 plus the rows outside both, and the first opens those outside rows as
    its own 'other': their difference is level 2's count, which each analysis suppresses."""
    truth = {1: 40, 2: 6, 3: 30, 7: 12}  # 7 is outside both level sets
    codes = codes_with(truth)
    first, second, _ = run_describe_pair(codes, [1, 2, 3], [1, 3], min_cell=MIN_CELL, column="nyha")
    found = differencing_attack(first.m, "nyha", first.categorical["nyha"], second.categorical["nyha"])
    assert first.categorical["nyha"][1].count is None  # level 2 suppressed where it is declared
    assert found.levels[2] == truth[2]
    assert found.recovered[(0, 2)] == truth[2]


def test_the_same_level_sets_leave_suppressed_counts_hidden():
    """The control: counted over the same levels twice, nothing suppressed is determined,
    and the plan does not warn."""
    codes = codes_with({1: 40, 2: 30, 3: 4})
    first, second, _ = run_describe_pair(codes, [1, 2, 3], [1, 2, 3], min_cell=MIN_CELL, column="nyha")
    found = differencing_attack(first.m, "nyha", first.categorical["nyha"], second.categorical["nyha"])
    assert found.recovered == {} and 3 not in found.levels
    assert {level for _, level in found.hidden} == {1, 3}  # level 1: the complement; 'other' is an opened 0
    assert not plan_of([1, 2, 3], [1, 2, 3]).warnings


def test_declared_levels_covering_every_value_still_hide_a_lone_small_level():
    """Declared levels that cover every value leave 'other' at 0, shown as 0 (not small): a
    lone small level would be m minus the opened counts, so it gets a complement, a declared
    level (docs/describe.md). The attack on the opened cells then recovers nothing."""
    codes = codes_with({1: 40, 2: 30, 3: 4})
    first, _, _ = run_describe_pair(codes, [1, 2, 3], [1, 2, 3], min_cell=MIN_CELL, column="nyha")
    cells = first.categorical["nyha"]
    assert [c.suppressed for c in cells] == ["complement", None, "small", None] and cells[-1].count == 0
    assert 3 not in differencing_attack(first.m, "nyha", cells, cells, closed=True).levels