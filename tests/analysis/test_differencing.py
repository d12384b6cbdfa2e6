"""The differencing attack on two describe analyses of one column, run on what describe_fit
really opens (Shamir shares, three local engines), against the plaintext counts.

Counts are integers opened exactly, so every recovered count must equal the truth exactly."""

from __future__ import annotations

from collections import Counter

import pytest

from mpcactors.analysis.attacks.differencing import differencing_attack, run_describe_pair
from mpcactors.plan import OTHER, Analysis, Describe, Plan

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


def test_two_level_sets_give_away_a_suppressed_count():
    """Level 3 has 4 persons (< min_cell): each analysis alone suppresses it, and the plan
    warns; together, [1, 2] opens 'other' (= level 3 plus nothing outside) because its
    complement, level 1, is opened by [1, 2, 3]."""
    truth = {1: 40, 2: 30, 3: 4}
    codes = codes_with(truth)
    first, second, revealed = run_describe_pair(codes, [1, 2, 3], [1, 2], min_cell=MIN_CELL, column="nyha")
    a, b = first.categorical["nyha"], second.categorical["nyha"]
    assert [c.count for c in a] == [40, 30, None, None] and [c.count for c in b] == [None, 30, None]

    # alone, each output keeps level 3 hidden (the suppression works per analysis)
    alone = differencing_attack(first.m, "nyha", a, a)
    assert 3 not in alone.levels and alone.recovered == {}
    # together: the suppressed 'other' of [1, 2] is exactly the persons in level 3 (and outside)
    found = differencing_attack(first.m, "nyha", a, b)
    assert found.recovered[(1, OTHER)] == Counter(codes)[3] == 4
    # with the public code list (nothing outside 1..3), level 3's own count
    assert differencing_attack(first.m, "nyha", a, b, closed=True).levels[3] == truth[3]

    plan = plan_of([1, 2, 3], [1, 2])
    assert any("differencing" in w and "'nyha'" in w for w in plan.warnings)
    # what was attacked is exactly what the plan's manifest declares for each analysis
    for analysis, opened in zip(("cohort", "cohort-b"), revealed, strict=True):
        declared = [(o.label, o.size) for o in plan.manifest() if o.analysis == analysis]
        assert opened == declared


def test_a_level_inside_the_other_cell_is_isolated():
    """[1, 2, 3] vs [1, 3] with level 2 small: the second's 'other' is level 2 plus the rows
    outside both, and the first opens those outside rows as its own 'other'."""
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
    assert {level for _, level in found.hidden} == {3, OTHER}
    assert not plan_of([1, 2, 3], [1, 2, 3]).warnings


def test_one_analysis_covering_every_value_gives_its_lone_small_level_to_who_knows_the_code_list():
    """A finding, measured (docs/threat-model.md): declared levels that cover every value leave
    'other' at 0, itself small, so a lone small level gets no complement and m minus the opened
    counts is its count for an attacker who knows no value lies outside the levels. When
    mpc/describe.py's complement rule handles an empty 'other', this test should change."""
    codes = codes_with({1: 40, 2: 30, 3: 4})
    first, _, _ = run_describe_pair(codes, [1, 2, 3], [1, 2, 3], min_cell=MIN_CELL, column="nyha")
    cells = first.categorical["nyha"]
    assert cells[2].count is None and cells[3].count is None  # both suppressed as small
    assert differencing_attack(first.m, "nyha", cells, cells, closed=True).levels[3] == 4
