"""The lasso loop's round schedule (docs/lasso.md, "Cost"; docs/benchmarks.md, step 8's rounds).

Each convergence check runs in lockstep with the next iteration, which is dropped when the
check reveals 1. What users rely on: that speculation changes nothing they see (the
result is the one a run stopped at that check returns, with the same openings), and the
round counts the latency model in docs/benchmarks.md multiplies.
"""

from __future__ import annotations

import pytest
from test_lasso import HOSPITAL_COLUMNS, heart_failure_cohort, secure_fit


def rounds_of(engines) -> int:
    return sum(s["rounds"] for label, s in engines[1].statistics().items() if label != "setup")


@pytest.mark.slow
def test_a_speculative_iteration_changes_nothing_revealed():
    """A fit that converges at check K (the iteration after it ran alongside the check and
    was dropped) returns exactly the fit stopped by ``max_iter = K``: the same coefficients,
    intercept, R^2 and iteration count, the same revealed openings, and the same rounds (the
    dropped iteration's rounds hide under the check's)."""
    x, y, _ = heart_failure_cohort(300)
    owners = [1] * HOSPITAL_COLUMNS + [2] * (x.shape[1] - HOSPITAL_COLUMNS)
    free, free_engines, _, _ = secure_fit(x, y, owners, 3.0)
    k = free[1].iterations
    assert free[1].converged and k % 5 == 0 and k >= 10
    capped, capped_engines, _, _ = secure_fit(x, y, owners, 3.0, max_iter=k)
    assert capped[1] == free[1]
    assert capped_engines[1].revealed == free_engines[1].revealed
    assert rounds_of(capped_engines) == rounds_of(free_engines)
    # the loop: 7 rounds per iteration (one opening for the inner products' truncation and the
    # soft threshold's comparison, its 5-level tree, the reshare), each check 2 more next to
    # the following iteration, the last one 9 on its own (fused dot and comparison, 7 tree
    # levels, the reveal)
    shorter, shorter_engines, _, _ = secure_fit(x, y, owners, 3.0, max_iter=k - 5)
    assert not shorter[1].converged and shorter[1].iterations == k - 5
    assert rounds_of(capped_engines) - rounds_of(shorter_engines) == 5 * 7 + 2
