"""The secure SPD inverse (mpc/linalg.py) against numpy.linalg.inv.

The input is the Jacobi-scaled matrix the contract asks for, encoded with ``F = 52``
fractional bits; numpy inverts the same decoded fixed-point matrix. Tolerance: every
entry of the inverse within ``1e-9 * max|inv|`` (the contract's error is about
``d 2**-F / lambda_min``: below 1e-10 for the condition numbers used here), and the
singular bit exact.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from mpcactors.crypto import shamir
from mpcactors.crypto.fixedpoint import Params
from mpcactors.errors import ConfigError
from mpcactors.mpc.engine import Engine, run_local
from mpcactors.mpc.linalg import SpdLayout, newton_schulz, spd_inverse

PARAMS = Params()


def jacobi_scaled(cov: np.ndarray) -> np.ndarray:
    """``D C D`` with secret-like powers of two putting the diagonal in ``[1/4, 1)``."""
    t = np.floor(np.log2(np.diag(cov)) / 2) + 1
    s = 2.0**-t
    return cov * np.outer(s, s)


def secure_inverse(a: np.ndarray, layout: SpdLayout, seed: int = 3):
    d = a.shape[0]
    F = layout.frac_bits
    encoded = [int(round(v * 2**F)) for v in a.ravel()]
    flat = shamir.share(encoded, random.Random(seed), PARAMS.prime)
    shares = {i: [flat[i][r * d : (r + 1) * d] for r in range(d)] for i in (1, 2, 3)}
    engines = {i: Engine(i, PARAMS, b"linalg test") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    out = run_local({i: _opened(engines[i], shares[i], layout) for i in (1, 2, 3)})
    assert out[1] == out[2] == out[3]
    inverse, singular = out[1]
    decoded = np.array(encoded, dtype=float).reshape(d, d) / 2**F
    return np.array(inverse, dtype=float) / 2**F, singular, decoded, engines


def _opened(engine, share, layout):
    x, bit = yield from spd_inverse(engine, share, layout)
    values = yield from engine.reveal([v for row in x for v in row] + [bit], "test")
    d = layout.d
    return [values[r * d : (r + 1) * d] for r in range(d)], values[-1]


@pytest.mark.parametrize("seed", [1, 2])
def test_inverse_of_a_correlated_matrix_matches_numpy(seed):
    g = np.random.default_rng(seed)
    z = g.normal(size=(200, 5)) * [1.0, 1e3, 1e-2, 5.0, 70.0]
    z[:, 3] += 0.9 * z[:, 0]  # correlated columns
    a = jacobi_scaled(np.cov(z.T))
    layout = SpdLayout(PARAMS, 5)
    layout.check()
    inverse, singular, decoded, _ = secure_inverse(a, layout, seed)
    reference = np.linalg.inv(decoded)
    assert singular == 0
    assert np.abs(inverse - reference).max() < 1e-9 * np.abs(reference).max()


@pytest.mark.parametrize("noise,low,high", [(1e-2, 1e4, 1e6), (7e-4, 1e7, 3e7)])
def test_an_ill_conditioned_matrix_within_the_bound_is_inverted(noise, low, high):
    """Condition numbers about 1e5 and 2e7 (lambda_min 7e-8, just above 2**-24:
    cond_bits = 24): bit 0 and the inverse within ``cond * 2**-40`` of numpy's, relative
    to its largest entry (the contract's ``d 2**-F / lambda_min`` with room)."""
    g = np.random.default_rng(5)
    z = g.normal(size=(300, 4))
    z[:, 2] = z[:, 0] + z[:, 1] + noise * z[:, 2]
    a = jacobi_scaled(np.cov(z.T))
    cond = np.linalg.cond(a)
    assert low < cond < high
    inverse, singular, decoded, _ = secure_inverse(a, SpdLayout(PARAMS, 4))
    reference = np.linalg.inv(decoded)
    assert singular == 0
    assert np.abs(inverse - reference).max() < cond * 2.0**-40 * np.abs(reference).max()


def test_collinear_columns_raise_the_singular_bit():
    g = np.random.default_rng(6)
    z = g.normal(size=(100, 4))
    z[:, 3] = 2 * z[:, 0] - z[:, 1]  # exactly collinear
    a = jacobi_scaled(np.cov(z.T))
    _, singular, _, _ = secure_inverse(a, SpdLayout(PARAMS, 4))
    assert singular == 1


def test_rounds_and_bytes_do_not_depend_on_the_data():
    g = np.random.default_rng(8)
    stats = []
    for z in (g.normal(size=(50, 3)), np.column_stack([np.ones(50), np.arange(50.0), np.arange(50.0) ** 2])):
        z = z + g.normal(size=z.shape) * 1e-3
        _, _, _, engines = secure_inverse(jacobi_scaled(np.cov(z.T)), SpdLayout(PARAMS, 3))
        stats.append(engines[1].statistics())
    assert stats[0] == stats[1]
    # two rounds per Newton-Schulz step (each product fused with its truncation, as
    # docs/linear.md counts them), plus the singular bit's comparison
    # (an opening and at most 7 tree levels)
    steps = SpdLayout(PARAMS, 3).iterations
    assert 2 * steps < stats[0]["solve"]["rounds"] <= 2 * steps + 8, stats[0]


def test_too_few_fractional_bits_for_the_condition_bound_are_refused():
    with pytest.raises(ConfigError, match="frac_bits = 40 is too few for cond_bits = 24"):
        SpdLayout(PARAMS, 10, frac_bits=40).check()


def test_widths_beyond_the_field_are_refused():
    with pytest.raises(ConfigError, match="need a Shamir prime above"):
        SpdLayout(PARAMS, 10, frac_bits=60, cond_bits=24).check()
    with pytest.raises(ConfigError, match="sigma = 60"):
        SpdLayout(Params(sigma=60), 10).check()


def test_bad_sizes_are_refused():
    with pytest.raises(ConfigError, match="d must be at least 1"):
        SpdLayout(PARAMS, 0).check()
    with pytest.raises(ConfigError, match="cond_bits"):
        SpdLayout(PARAMS, 3, cond_bits=0).check()


def test_a_tighter_trace_bound_starts_closer_and_still_converges():
    """``newton_schulz`` alone with ``max_trace`` (logistic regression's Hessian over m: trace
    at most d/4, 44 fractional bits, cond_bits 20): fewer steps than the Jacobi default and
    the inverse within ``cond * 2**-34`` of numpy's relative to its largest entry (the
    contract's ``d 2**-F / lambda_min`` with room, at F = 44)."""
    g = np.random.default_rng(9)
    z = g.normal(size=(200, 5))
    z[:, 4] += 0.8 * z[:, 0]
    a = jacobi_scaled(np.cov(z.T)) / 4  # diagonal in [1/16, 1/4): trace below 5/4
    tight = SpdLayout(PARAMS, 5, frac_bits=44, cond_bits=20, max_trace=5 / 4, singular_bit=False)
    tight.check()
    assert tight.start_exp == 1 and tight.iterations < SpdLayout(PARAMS, 5, frac_bits=44, cond_bits=20, singular_bit=False).iterations
    F = tight.frac_bits
    encoded = [int(round(v * 2**F)) for v in a.ravel()]
    flat = shamir.share(encoded, random.Random(4), PARAMS.prime)
    engines = {i: Engine(i, PARAMS, b"linalg test") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})

    def program(engine, share):
        x, _ = yield from newton_schulz(engine, [share[r * 5 : (r + 1) * 5] for r in range(5)], tight)
        return (yield from engine.reveal([v for row in x for v in row], "test"))

    out = run_local({i: program(engines[i], flat[i]) for i in (1, 2, 3)})
    inverse = np.array(out[1], dtype=float).reshape(5, 5) / 2**F
    decoded = np.array(encoded, dtype=float).reshape(5, 5) / 2**F
    reference = np.linalg.inv(decoded)
    assert np.abs(inverse - reference).max() < np.linalg.cond(decoded) * 2.0**-34 * np.abs(reference).max()
    assert all(label == "test" for label, _ in engines[1].revealed)  # the schedule opens nothing


def test_a_layout_without_the_singular_rule_cannot_run_spd_inverse():
    """singular_bit=False drops the bit's precision rule, so spd_inverse refuses it; a
    max_trace that is not a positive number is refused by name."""
    layout = SpdLayout(PARAMS, 11, frac_bits=44, cond_bits=20, singular_bit=False)  # logistic's, d = 10
    layout.check()
    with pytest.raises(ConfigError, match="too few for cond_bits"):
        SpdLayout(PARAMS, 11, frac_bits=44, cond_bits=20).check()
    engine = Engine(1, PARAMS, b"x")
    with pytest.raises(ValueError, match="singular bit"):
        next(spd_inverse(engine, [[0] * 11] * 11, layout))
    with pytest.raises(ConfigError, match="max_trace"):
        SpdLayout(PARAMS, 3, max_trace=0.0).check()
