"""Step 8: the secure lasso against scikit-learn's ``Lasso`` (mpc/lasso.py).

The program gets Shamir shares of the fixed-point encoded data; scikit-learn gets the
decoded fixed-point values, so the only difference is the MPC arithmetic. Tolerance:
every coefficient and the intercept within 1e-3 of scikit-learn's, relative to the
largest coefficient, and R^2 within 1e-3 (the brief's accuracy target; the stopping
tolerance 2e-6 and 24 fractional bits give about 1e-5 on these data).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso

from mpcactors.crypto import shamir
from mpcactors.crypto.fixedpoint import Params
from mpcactors.errors import ConfigError
from mpcactors.mpc.engine import Engine, run_local
from mpcactors.mpc.lasso import LassoResult, lasso_fit, local_gram

PARAMS = Params()
F = PARAMS.frac_bits
TOLERANCE = 1e-3


def heart_failure_cohort(m: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Raw, badly scaled columns; hospital_days from a sparse linear model plus noise."""
    g = np.random.default_rng(seed)
    columns = {
        "age": g.uniform(40, 95, m),
        "ejection_fraction": g.uniform(10, 70, m),
        "nt_probnp": np.exp(g.uniform(math.log(100), math.log(35000), m)),
        "creatinine": g.uniform(40, 400, m),
        "systolic_bp": g.uniform(80, 200, m),
        "sex": g.integers(0, 2, m).astype(float),
        "gp_visits": g.integers(0, 31, m).astype(float),
        "medication_cost": g.uniform(0, 100000, m),
        "prior_admissions": g.integers(0, 11, m).astype(float),
        "chronic_conditions": g.integers(0, 9, m).astype(float),
    }
    x = np.column_stack(list(columns.values()))
    days = (
        1.0 + 0.04 * columns["age"] - 0.05 * columns["ejection_fraction"] + 0.0001 * columns["nt_probnp"]
        + 0.006 * columns["creatinine"] + 0.9 * columns["prior_admissions"]
        + 0.5 * columns["chronic_conditions"] + g.normal(0, 1.5, m)
    )
    return x, np.clip(days, 0, None), list(columns)


HOSPITAL_COLUMNS = 6  # the first six cohort columns are clinical, the rest are claims


def encode(x: np.ndarray, y: np.ndarray, params: Params = PARAMS) -> tuple[list[list[int]], list[int]]:
    return [params.encode(row) for row in x], params.encode(y)


def secure_fit(x, y, owners, alpha, *, target_owner=2, seed=1, params=PARAMS, **options):
    """Share the encoded data, run lasso_fit at the three parties, return results and engines."""
    return secure_run(
        x, y, owners, lambda engine, **shared: lasso_fit(engine, alpha=alpha, **shared, **options),
        target_owner=target_owner, seed=seed, params=params,
    )


def secure_run(x, y, owners, program, *, target_owner=2, seed=1, params=PARAMS):
    """Share the encoded data and run ``program(engine, x=, y=, m=, d=, owners=, scales=,
    target_owner=)`` at the three parties; return results, engines and the decoded data."""
    m, d = x.shape
    xe, ye = encode(x, y, params)
    rng = random.Random(seed)
    flat = shamir.share([v for row in xe for v in row] + ye, rng, params.prime)
    x_shares = {i: [flat[i][r * d : (r + 1) * d] for r in range(m)] for i in (1, 2, 3)}
    y_shares = {i: flat[i][m * d :] for i in (1, 2, 3)}
    xd = np.array(xe, dtype=float) / 2**params.frac_bits
    yd = np.array(ye, dtype=float) / 2**params.frac_bits
    scales: dict[int, dict[int, float]] = {1: {}, 2: {}, 3: {}}
    for j in range(d):
        scales[owners[j]][j] = float(np.abs(xd[:, j]).max())  # each owner's own max-abs
    if target_owner is not None:
        scales[target_owner][d] = float(np.abs(yd).max())
    engines = {i: Engine(i, params, b"lasso test") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    results = run_local({
        i: program(engines[i], x=x_shares[i], y=y_shares[i], m=m, d=d, owners=owners, scales=scales[i],
                   target_owner=target_owner)
        for i in (1, 2, 3)
    })
    return results, engines, xd, yd


def assert_matches_sklearn(results, xd, yd, alpha):
    assert results[1] == results[2] == results[3]
    result: LassoResult = results[1]
    reference = Lasso(alpha=alpha, tol=1e-12, max_iter=10**6).fit(xd, yd)
    largest = np.abs(reference.coef_).max()
    assert largest > 0
    errors = np.abs(np.array(result.coefficients) - reference.coef_) / largest
    assert errors.max() < TOLERANCE, (errors, result, reference.coef_)
    assert abs(result.intercept - reference.intercept_) / largest < TOLERANCE
    assert abs(result.r2 - reference.score(xd, yd)) < TOLERANCE
    assert result.converged
    return result, reference


def alpha_max(x: np.ndarray, y: np.ndarray) -> float:
    """The smallest alpha for which scikit-learn's lasso returns all zeros."""
    return float(np.abs((x - x.mean(0)).T @ (y - y.mean())).max() / len(y))


@pytest.mark.parametrize("alpha", [0.1, 3.0, 20.0])
def test_heart_failure_cohort(alpha):
    x, y, _ = heart_failure_cohort(300)
    owners = [1] * HOSPITAL_COLUMNS + [2] * (x.shape[1] - HOSPITAL_COLUMNS)
    results, _, xd, yd = secure_fit(x, y, owners, alpha)
    result, reference = assert_matches_sklearn(results, xd, yd, alpha)
    if alpha == 20.0:
        assert np.count_nonzero(reference.coef_) <= 4  # this alpha zeroes most coefficients
        assert [c == 0 for c in result.coefficients] == [c == 0 for c in reference.coef_]


DIABETES_OWNERS = [1, 1, 1, 1, 2, 2, 2, 2, 2, 1]


@pytest.mark.parametrize(
    "alpha,target_owner",
    [pytest.param(3.0, 2, marks=pytest.mark.slow), pytest.param(30.0, None, marks=pytest.mark.slow), (300.0, 1)],
)
def test_diabetes_raw_features(alpha, target_owner):
    """scikit-learn's bundled diabetes data (no download), raw units, columns split 1/2."""
    x, y = load_diabetes(return_X_y=True, scaled=False)
    results, _, xd, yd = secure_fit(x, y, DIABETES_OWNERS, alpha, target_owner=target_owner)
    result, reference = assert_matches_sklearn(results, xd, yd, alpha)
    if alpha == 300.0:
        assert np.count_nonzero(reference.coef_) <= 3  # this alpha zeroes most coefficients
        assert [c == 0 for c in result.coefficients] == [c == 0 for c in reference.coef_]


def test_only_convergence_bits_and_results_are_revealed():
    x, y, _ = heart_failure_cohort(120, seed=3)
    owners = [1] * HOSPITAL_COLUMNS + [2] * (x.shape[1] - HOSPITAL_COLUMNS)
    d = x.shape[1]
    results, engines, _, _ = secure_fit(x, y, owners, 0.3 * alpha_max(x, y), check_every=5)
    result = results[1]
    checks = math.ceil(result.iterations / 5)
    for engine in engines.values():
        assert engine.revealed == [("converged", 1)] * checks + [("result", d + 2)]
        # everything else that was opened was masked inside a truncation or comparison
        assert {label for label, _ in engine.opened} <= {
            "centre", "scale", "jacobi", "step", "tau", "iterate", "soft", "check", "r2", "output",
        }


def test_communication_does_not_depend_on_m():
    """Same iteration count (a fixed max_iter and no early stop) -> identical rounds and bytes."""
    owners = [1] * HOSPITAL_COLUMNS + [2] * 4
    stats = []
    for m in (60, 700):
        x, y, _ = heart_failure_cohort(m, seed=5)
        _, engines, _, _ = secure_fit(x, y, owners, 5.0, max_iter=4, tol=1e-7)
        stats.append(engines[1].statistics())
    assert stats[0] == stats[1]


def test_local_gram_is_exact():
    rng = random.Random(4)
    p = PARAMS.prime
    rows = [[rng.randrange(p) for _ in range(3)] for _ in range(50)] + [[p - 1] * 3, [0] * 3]
    gram, sums = local_gram(rows, p)
    for j in range(3):
        assert sums[j] == sum(r[j] for r in rows) % p
        for k in range(3):
            assert gram[j][k] == sum(r[j] * r[k] for r in rows) % p


def test_bad_arguments():
    engine = Engine(1, PARAMS, b"x")
    with pytest.raises(ConfigError):
        next(lasso_fit(engine, [[0]] * 10, [0] * 10, m=10, d=1, owners=[1], scales={0: 1.0}, alpha=0.0))
    with pytest.raises(ConfigError):
        next(lasso_fit(engine, [[0]] * 10, [0] * 10, m=10, d=1, owners=[4], scales={0: 1.0}, alpha=1.0))
    with pytest.raises(ConfigError):
        next(lasso_fit(engine, [[0]] * 2, [0] * 2, m=2, d=1, owners=[1], scales={0: 1.0}, alpha=1.0))


def test_a_tolerance_beyond_the_budget_is_refused_before_the_first_round():
    """Not at the first convergence check, after the whole one-off phase has run."""
    engine = Engine(1, PARAMS, b"x")
    program = lasso_fit(engine, [[0]] * 10, [0] * 10, m=10, d=1, owners=[1], scales={0: 1.0}, alpha=1.0, tol=1e-12)
    with pytest.raises(ConfigError, match="tol"):
        next(program)


def accepted(**changes) -> bool:
    try:
        Params(**changes)
    except ConfigError:
        return False
    return True


def parameter_edges() -> list[dict[str, int]]:
    """The accepted (frac_bits, int_bits) pairs at the edges of the region Params accepts,
    found by asking Params, plus the largest accepted sigma at the defaults."""
    region = [(f, i) for f in range(1, 65) for i in range(1, 65) if accepted(frac_bits=f, int_bits=i)]
    edges = set()
    for axis in (0, 1):
        values = sorted({pair[axis] for pair in region})
        for value in (values[0], values[-1], (PARAMS.frac_bits, PARAMS.int_bits)[axis]):
            line = sorted(pair for pair in region if pair[axis] == value)
            edges.update((line[0], line[-1]))
    out = [{"frac_bits": f, "int_bits": i} for f, i in sorted(edges)]
    top_sigma = max(s for s in range(PARAMS.sigma, 100) if accepted(sigma=s))
    return out + [{"sigma": top_sigma}]


@pytest.mark.parametrize("changes", parameter_edges(), ids=str)
def test_parameters_at_the_edges_run_the_lasso(changes):
    """Every edge Params accepts runs step 8 at both ends of the alpha range, with and
    without a target scale. Five iterations (every operation runs in each) keep it short;
    m = 40 cannot reach max_rows, whose widths the layout check covers."""
    params = Params(**changes)
    bound = 2.0**params.int_bits
    g = np.random.default_rng(11)
    x = g.uniform(-0.9, 0.9, (40, 3)) * bound
    y = np.clip(x @ [0.3, -0.2, 0.1] + g.normal(0, 0.05 * bound, 40), -0.9 * bound, 0.9 * bound)
    for alpha in (2.0**-params.frac_bits, 0.999 * bound):
        for target_owner in (2, None):
            results, *_ = secure_fit(
                x, y, [1, 2, 1], alpha, target_owner=target_owner, params=params, max_iter=5
            )
            assert results[1] == results[2] == results[3]
            assert all(math.isfinite(c) for c in results[1].coefficients)
