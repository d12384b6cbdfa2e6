"""Secure OLS (mpc/linear.py) against statsmodels' ``OLS(y, add_constant(X)).fit()``.

The program gets Shamir shares of the fixed-point encoded data; statsmodels gets the
decoded fixed-point values, so the only difference is the MPC arithmetic. Tolerance:
every number (params, bse, pvalues, conf_int, rsquared, rsquared_adj, scale) within
1e-6 relative of statsmodels' (the issue's target). The scaled system carries 52
fractional bits; the error is about ``d 2**-52`` times the condition number of the
correlation matrix (below 1e4 here), so the margin is wide.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.datasets import load_diabetes

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
