"""Secure OLS (mpc/linear.py) against statsmodels' ``OLS(y, add_constant(X)).fit()``.

The program gets Shamir shares of the fixed-point encoded data; statsmodels gets the
decoded fixed-point values, so the only difference is the MPC arithmetic. Tolerance:
every number (params, bse, pvalues, conf_int, rsquared, rsquared_adj, scale) within
1e-6 relative of statsmodels' (the issue's target). The scaled system carries 52
fractional bits; the error is about ``d 2**-52`` times the condition number of the
correlation matrix (below 1e4 here), so the margin is wide.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from mpcactors.crypto import shamir
from mpcactors.crypto.fixedpoint import Params
from mpcactors.errors import AnalysisRefused, ConfigError
from mpcactors.mpc.engine import Engine, run_local
from mpcactors.mpc.linear import LinearLayout, LinearResult, inference, linear_fit, openings, t_cdf, t_quantile

from test_lasso import heart_failure_cohort

PARAMS = Params()
RTOL = 1e-6


def secure_linear(x, y, *, min_cell=5, seed=1, params=PARAMS, **options):
    """Share the encoded data, run linear_fit at the three parties; results, engines, decoded data."""
    m, d = x.shape
    xe = [params.encode(row) for row in x]
    ye = params.encode(y)
    flat = shamir.share([v for row in xe for v in row] + ye, random.Random(seed), params.prime)
    x_shares = {i: [flat[i][r * d : (r + 1) * d] for r in range(m)] for i in (1, 2, 3)}
    y_shares = {i: flat[i][m * d :] for i in (1, 2, 3)}
    engines = {i: Engine(i, params, b"linear test") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    results = run_local({
        i: linear_fit(engines[i], x_shares[i], y_shares[i], m=m, d=d, min_cell=min_cell, **options)
        for i in (1, 2, 3)
    })
    xd = np.array(xe, dtype=float) / 2**params.frac_bits
    yd = np.array(ye, dtype=float) / 2**params.frac_bits
    return results, engines, xd, yd


def assert_matches_statsmodels(results, xd, yd):
    assert results[1] == results[2] == results[3]
    result: LinearResult = results[1]
    fit = sm.OLS(yd, sm.add_constant(xd)).fit()
    ours = inference(result)
    estimate = [row[0] for row in ours]
    se = [row[1] for row in ours]
    pvalues = [row[3] for row in ours]
    ci = [(row[4], row[5]) for row in ours]
    order = list(range(1, xd.shape[1] + 1)) + [0]  # statsmodels puts the constant first
    np.testing.assert_allclose(estimate, fit.params[order], rtol=RTOL)
    np.testing.assert_allclose(se, fit.bse[order], rtol=RTOL)
    np.testing.assert_allclose(pvalues, fit.pvalues[order], rtol=RTOL)
    np.testing.assert_allclose(ci, fit.conf_int()[order], rtol=RTOL)
    np.testing.assert_allclose([result.r2, result.r2_adj, result.sigma2], [fit.rsquared, fit.rsquared_adj, fit.scale], rtol=RTOL)
    assert (result.n, result.df_resid) == (int(fit.nobs), int(fit.df_resid))
    return result, fit


def test_heart_failure_cohort_matches_statsmodels():
    x, y, _ = heart_failure_cohort(300)
    results, engines, xd, yd = secure_linear(x, y)
    assert_matches_statsmodels(results, xd, yd)
    assert engines[1].revealed == [(label, shape[0]) for _, shape, label, count in openings(x.shape[1]) if label]


@pytest.mark.slow
def test_diabetes_raw_features_match_statsmodels():
    """scikit-learn's bundled diabetes data (no download), raw units (ages, BMI, blood
    pressures and serum measurements on their own scales)."""
    x, y = load_diabetes(return_X_y=True, scaled=False)
    results, _, xd, yd = secure_linear(x, y)
    assert_matches_statsmodels(results, xd, yd)


def test_revealed_is_exactly_the_declared_openings():
    x, y, _ = heart_failure_cohort(60, seed=4)
    x = x[:, :4]
    _, engines, _, _ = secure_linear(x, y)
    declared = [(label, shape[0]) for _, shape, label, count in openings(4) for _ in range(count) if label]
    assert declared and all(count in (0, 1) for *_, count in openings(4))
    for engine in engines.values():
        assert engine.revealed == declared
        # everything else that was opened was masked inside a truncation or comparison
        assert {label for label, _ in engine.opened} <= {"normalise", "scale", "solve", "singular", "output"}


def test_rounds_and_bytes_do_not_depend_on_the_data():
    stats = []
    for seed in (1, 2):
        x, y, _ = heart_failure_cohort(80, seed=seed)
        _, engines, _, _ = secure_linear(x[:, :3] * (1 + 9 * seed), y)
        stats.append(engines[1].statistics())
    assert stats[0] == stats[1]


def test_too_few_rows_for_the_model_is_refused_before_any_round():
    engine = Engine(1, PARAMS, b"x")
    program = linear_fit(engine, [[0] * 3] * 14, [0] * 14, m=14, d=3, min_cell=11)
    with pytest.raises(AnalysisRefused, match="m - d - 1 = 10 .* fewer than min_cell = 11"):
        next(program)
    assert engine.revealed == [] and engine.opened == [] and engine.statistics() == {}


@pytest.mark.parametrize("case", ["collinear", "constant", "offset"])
def test_a_singular_design_opens_one_bit_and_is_refused(case):
    """Collinear columns, a constant column, and a column whose |mean| / SD exceeds
    2**NU_BITS (numerically collinear with the intercept) each open only the singular bit."""
    g = np.random.default_rng(9)
    x = g.normal(size=(40, 3)) * [10.0, 1.0, 300.0]
    if case == "collinear":
        x[:, 2] = 2 * x[:, 0] - 5 * x[:, 1]
    elif case == "constant":
        x[:, 1] = 7.25
    else:
        x[:, 1] = 5000.0 + g.uniform(-0.5, 0.5, 40)  # mean / SD about 17000
    y = x @ [0.5, 1.0, -0.01] + g.normal(size=40)
    with pytest.raises(AnalysisRefused, match="numerically singular"):
        secure_linear(x, y)


def test_a_singular_design_reveals_only_the_bit():
    g = np.random.default_rng(9)
    x = g.normal(size=(30, 2))
    x[:, 1] = -3 * x[:, 0]
    xe = [PARAMS.encode(row) for row in x]
    ye = PARAMS.encode(g.normal(size=30))
    flat = shamir.share([v for row in xe for v in row] + ye, random.Random(2), PARAMS.prime)
    engines = {i: Engine(i, PARAMS, b"linear test") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    with pytest.raises(AnalysisRefused):
        run_local({
            i: linear_fit(engines[i], [flat[i][r * 2 : r * 2 + 2] for r in range(30)], flat[i][60:], m=30, d=2, min_cell=5)
            for i in (1, 2, 3)
        })
    assert engines[1].revealed == [("singular", 1)]


def test_bad_arguments_are_refused_before_the_first_round():
    engine = Engine(1, PARAMS, b"x")
    for kwargs in (dict(min_cell=0), dict(d=0), dict(ridge=-1.0)):
        args = dict(m=20, d=2, min_cell=5) | kwargs
        with pytest.raises(ConfigError):
            next(linear_fit(engine, [[0] * args["d"]] * 20, [0] * 20, **args))
    with pytest.raises(ValueError):
        next(linear_fit(engine, [[0] * 3] * 20, [0] * 20, m=20, d=2, min_cell=5))
    assert engine.statistics() == {}


class Narrow:
    """Stand-in parameters with a chosen sigma, to push one budget at a time past the prime
    (``Params`` itself refuses such a sigma for the lasso's sake)."""

    def __init__(self, sigma: int):
        self.frac_bits, self.int_bits, self.max_rows = PARAMS.frac_bits, PARAMS.int_bits, PARAMS.max_rows
        self.sigma, self.field_bits = sigma, PARAMS.field_bits


@pytest.mark.parametrize("budget", list(LinearLayout(PARAMS, 5000, 30).widths()))
def test_each_budget_is_checked(budget):
    """With sigma one bit too large for this operation, the check names it, and names no
    operation that still fits."""
    widths = LinearLayout(PARAMS, 5000, 30).widths()
    sigma = PARAMS.field_bits - 3 - widths[budget] + 1
    with pytest.raises(ConfigError, match="sigma") as raised:
        LinearLayout(Narrow(sigma), 5000, 30).check()
    message = str(raised.value)
    assert f"{budget} needs a Shamir prime above 2**{PARAMS.field_bits + 1}" in message
    for other, bits in widths.items():
        assert (f"{other} needs" in message) == (bits >= widths[budget])
    try:  # one bit less: this operation fits (wider ones may not)
        LinearLayout(Narrow(sigma - 1), 5000, 30).check()
    except ConfigError as error:
        assert f"{budget} needs" not in str(error)


@pytest.mark.slow
def test_the_layout_fits_every_accepted_parameter_set_up_to_64_features():
    for f in range(1, 65):
        for i in range(1, 65):
            try:
                params = Params(frac_bits=f, int_bits=i)
            except ConfigError:
                continue
            LinearLayout(params, params.max_rows, 64).check()
    with pytest.raises(ConfigError, match="frac_bits = 52 is too few"):
        LinearLayout(PARAMS, 1000, 65).check()


@pytest.mark.parametrize("df", [1, 2, 3, 7.5, 30, 441, 10**5])
def test_student_t_matches_scipy(df):
    """Tolerance 1e-8 relative: the continued fraction converges to 1e-16, but the
    log-gamma differences lose up to 5e-9 at df = 1e5 (each lgamma near 5e5)."""
    for t in (-50.0, -3.1, -1.0, -1e-3, 0.0, 0.4, 1.96, 2.5, 8.0, 40.0):
        assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), rel=1e-8)
    for q in (0.5, 0.6, 0.9, 0.975, 0.995, 0.99999):
        assert t_quantile(q, df) == pytest.approx(stats.t.ppf(q, df), rel=1e-8, abs=1e-14)


@pytest.mark.parametrize("alpha", [0.5, pytest.param(300.0, marks=pytest.mark.slow)])
def test_ridge_matches_scikit_learn(alpha):
    """``Ridge(alpha)`` with an unpenalised intercept: coefficients, intercept and R^2
    within 1e-6 relative (the penalised system is better conditioned than the OLS one);
    no standard errors; the openings as declared."""
    x, y, _ = heart_failure_cohort(200, seed=11)
    results, engines, xd, yd = secure_linear(x, y, ridge=alpha)
    assert results[1] == results[2] == results[3]
    result = results[1]
    reference = Ridge(alpha=alpha, solver="cholesky").fit(xd, yd)
    np.testing.assert_allclose(result.coefficients, reference.coef_, rtol=RTOL)
    assert result.intercept == pytest.approx(reference.intercept_, rel=RTOL)
    assert result.r2 == pytest.approx(reference.score(xd, yd), rel=RTOL)
    residual = yd - reference.predict(xd)
    assert result.sigma2 == pytest.approx(residual @ residual / (len(yd) - x.shape[1] - 1), rel=RTOL)
    assert result.se == () and result.intercept_se is None
    assert engines[1].revealed == [(label, shape[0]) for _, shape, label, _ in openings(x.shape[1], ridge=True) if label]
    with pytest.raises(ValueError, match="ridge"):
        inference(result)


def test_ridge_refuses_a_column_nearly_constant_next_to_the_intercept():
    """Ridge fits collinear columns, but a column with |mean| / SD beyond 2**12 would overflow
    the intercept's budget: refused after the scales and the singular bit."""
    g = np.random.default_rng(3)
    x = g.normal(size=(40, 2))
    x[:, 1] = 5000.0 + g.uniform(-0.5, 0.5, 40)
    y = x[:, 0] + g.normal(size=40)
    with pytest.raises(AnalysisRefused, match="nearly constant"):
        secure_linear(x, y, ridge=1.0)


def test_ridge_fits_exactly_collinear_columns():
    """The penalty makes the system definite: where OLS refuses, Ridge(alpha) is matched
    within 1e-6 relative."""
    g = np.random.default_rng(12)
    x = g.normal(size=(60, 3)) * [1.0, 50.0, 0.01]
    x[:, 2] = x[:, 0] - 0.02 * x[:, 1]
    y = x @ [1.0, 0.05, 3.0] + g.normal(size=60)
    with pytest.raises(AnalysisRefused, match="singular"):
        secure_linear(x, y)
    results, _, xd, yd = secure_linear(x, y, ridge=2.0)
    reference = Ridge(alpha=2.0, solver="cholesky").fit(xd, yd)
    np.testing.assert_allclose(results[1].coefficients, reference.coef_, rtol=RTOL)
    assert results[1].intercept == pytest.approx(reference.intercept_, rel=RTOL)
