"""The secure cohort description (mpc/describe.py) against numpy, and its disclosure rules.

The program gets Shamir shares of the fixed-point encoded data; numpy gets the decoded
fixed-point values, so the only difference is the MPC arithmetic.

Tolerance: means, SDs and correlations within ``RTOL = 1e-6`` relative of numpy. Why that
holds with the chosen precision (``DescribeLayout``):

* a mean is opened as the exact column sum, so it is exact up to float64 rounding;
* ``M = m Z^T Z - s s^T`` is an exact integer matrix. After the secret power-of-two
  normalisation every value has ``F = 48`` fractional bits and magnitude about 1: each
  truncation adds at most 2 units of ``2**-48``, and five Newton steps from ``1.75 - x``
  leave a relative error of 2.3e-14 in ``1/sqrt``; the SD's granularity noise is below
  ``2**-45`` relative. So an SD is within about 1e-13
  relative whatever its scale (it is ``sqrt(M_jj)`` times a public constant, and the
  normalisation makes the error relative), and a correlation within about 1e-13
  absolute: 1e-6 relative for every ``|r| >= 1e-7``. Random data of a few hundred rows
  have ``|r|`` far above that. Measured: about 1e-14 relative for SDs, 1e-14 absolute
  for correlations (``test_precision_is_far_below_the_tolerance``).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from mpcactors.crypto import shamir
from mpcactors.crypto.fixedpoint import Params
from mpcactors.errors import ConfigError, IntersectionTooSmall
from mpcactors.mpc.describe import Description, DescribeLayout, describe_fit
from mpcactors.mpc.engine import Engine, run_local

PARAMS = Params()
F = PARAMS.frac_bits
RTOL = 1e-6
BIG = 2.0**PARAMS.int_bits - 1  # the largest magnitude the encoding accepts, about


def one_hot(codes: np.ndarray, levels: int, frac_bits: int) -> np.ndarray:
    return (codes[:, None] == np.arange(levels)[None, :]).astype(object) * (1 << frac_bits)


def secure_describe(x, categorical=None, *, min_cell=10, seed=1, indicator_frac_bits=None):
    """Share the encoded data and the one-hot indicators; run describe_fit at the three
    parties; return the (checked identical) description, the engines and numpy's view.

    ``categorical``: name -> (integer codes per row, list of levels).
    """
    m, d = x.shape
    xe = [PARAMS.encode(row) for row in x]
    categorical = categorical or {}
    b = F if indicator_frac_bits is None else indicator_frac_bits
    blocks = [one_hot(np.asarray(codes), len(levels), b) for codes, levels in categorical.values()]
    ind = np.hstack(blocks).tolist() if blocks else [[] for _ in range(m)]
    L = len(ind[0])
    rng = random.Random(seed)
    flat = shamir.share([v for row in xe for v in row] + [v for row in ind for v in row], rng, PARAMS.prime)
    x_sh = {i: [flat[i][r * d : (r + 1) * d] for r in range(m)] for i in (1, 2, 3)}
    off = m * d
    ind_sh = {i: [flat[i][off + r * L : off + (r + 1) * L] for r in range(m)] for i in (1, 2, 3)}
    engines = {i: Engine(i, PARAMS, b"describe test") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    results = run_local({
        i: describe_fit(
            engines[i], x_sh[i], m=m, columns=[f"x{j}" for j in range(d)], indicators=ind_sh[i] if L else (),
            categorical={name: levels for name, (_, levels) in categorical.items()}, min_cell=min_cell,
            indicator_frac_bits=indicator_frac_bits,
        )
        for i in (1, 2, 3)
    })
    assert results[1] == results[2] == results[3]
    return results[1], engines, np.array(xe, dtype=float) / 2**F


def mixed_columns(m: int, seed: int) -> np.ndarray:
    """Very different scales, negative values, a correlated pair, a skewed column."""
    g = np.random.default_rng(seed)
    z = g.normal(0, 1, m)
    return np.column_stack([
        z,
        g.uniform(40, 95, m) * 1000,  # large positive
        g.normal(-3, 1e-3, m),  # tiny spread around a negative mean
        np.minimum(g.exponential(1e4, m), 1e6),  # skewed
        -0.5 * z + 0.01 * g.normal(0, 1, m),  # strongly (negatively) correlated with column 0
        g.uniform(-BIG, BIG, m),  # the whole range
        g.integers(0, 31, m).astype(float),  # integer-valued
    ])


def reference(xd):
    return xd.mean(0), xd.std(0, ddof=1), np.corrcoef(xd.T)


def assert_matches_numpy(result: Description, xd: np.ndarray) -> None:
    mean, sd, corr = reference(xd)
    m, d = xd.shape
    assert [c.count for c in result.numeric] == [m] * d
    np.testing.assert_allclose([c.mean for c in result.numeric], mean, rtol=RTOL)
    np.testing.assert_allclose([c.sd for c in result.numeric], sd, rtol=RTOL)
    np.testing.assert_allclose(np.array(result.correlation, dtype=float), corr, rtol=RTOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy(seed):
    x = mixed_columns(200 + 50 * seed, seed)
    result, _, xd = secure_describe(x, seed=seed)
    assert_matches_numpy(result, xd)


def test_precision_is_far_below_the_tolerance():
    x = mixed_columns(400, 9)
    result, _, xd = secure_describe(x)
    mean, sd, corr = reference(xd)
    assert np.max(np.abs(np.array([c.mean for c in result.numeric]) - mean) / np.abs(mean)) < 1e-15
    assert np.max(np.abs(np.array([c.sd for c in result.numeric]) - sd) / sd) < 1e-12
    assert np.max(np.abs(np.array(result.correlation, dtype=float) - corr)) < 1e-12


def test_extreme_columns():
    """The layout's corners: the largest M_jj the encoding allows, the smallest non-zero one
    (one value one fixed-point unit away), and a perfectly (anti-)correlated pair."""
    m = 120
    alternating = np.where(np.arange(m) % 2 == 0, BIG, -BIG)
    one_unit = np.r_[np.full(m - 1, 7.0), 7.0 + 2.0**-F]
    g = np.random.default_rng(3)
    u = g.uniform(-1, 1, m)
    x = np.column_stack([alternating, one_unit, u, -2 * u])
    result, _, xd = secure_describe(x)
    assert_matches_numpy(result, xd)
    assert -1.0 <= result.correlation[2][3] < -1.0 + 1e-12  # clipped to [-1, 1], never beyond


def test_constant_column_has_sd_zero_and_undefined_correlations():
    g = np.random.default_rng(4)
    m = 80
    x = np.column_stack([g.normal(0, 1, m), np.full(m, 3.25), g.normal(10, 5, m), np.full(m, -1e5)])
    result, engines, xd = secure_describe(x)
    assert [c.sd for c in result.numeric][1::2] == [0.0, 0.0]
    assert [c.mean for c in result.numeric][1::2] == [3.25, -1e5]
    for j in (1, 3):
        assert all(result.correlation[j][k] is None and result.correlation[k][j] is None for k in range(4))
    sub = xd[:, [0, 2]]
    np.testing.assert_allclose(result.correlation[0][2], np.corrcoef(sub.T)[0, 1], rtol=RTOL)
    assert result.correlation[0][0] == result.correlation[2][2] == 1.0
    # every pair is opened (the rounds cannot depend on which columns are constant: a
    # compute party that is not a recipient never sees the SDs); undefined ones show as None
    assert engines[1].revealed == [("mean", 4), ("sd", 4), ("correlation", 6)]


def test_one_column_opens_no_correlation_and_constant_columns_show_none():
    g = np.random.default_rng(12)
    result, engines, xd = secure_describe(g.normal(2, 3, (40, 1)))
    assert result.correlation == ((1.0,),)
    assert engines[1].revealed == [("mean", 1), ("sd", 1)]
    np.testing.assert_allclose(result.numeric[0].sd, xd.std(ddof=1), rtol=RTOL)
    result, engines, _ = secure_describe(np.column_stack([np.full(40, 1.5), np.full(40, -2.0)]))
    assert result.correlation == ((None, None), (None, None))
    assert [c.sd for c in result.numeric] == [0.0, 0.0]
    assert engines[1].revealed == [("mean", 2), ("sd", 2), ("correlation", 1)]


def counts_of(result: Description, name: str) -> list[tuple[object, int | None, str | None]]:
    return [(lc.level, lc.count, lc.suppressed) for lc in result.categorical[name]]


def codes_for(counts: list[int], seed: int = 0) -> np.ndarray:
    codes = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(codes)


def test_small_cells_are_suppressed_exactly_at_the_boundary():
    counts = [9, 10, 11, 3, 40]  # two small levels: no complement needed
    m = sum(counts)
    x = np.random.default_rng(5).normal(0, 1, (m, 1))
    levels = ["a", "b", "c", "d", "e"]
    result, engines, _ = secure_describe(x, {"grade": (codes_for(counts), levels)}, min_cell=10)
    assert counts_of(result, "grade") == [
        ("a", None, "small"), ("b", 10, None), ("c", 11, None), ("d", None, "small"), ("e", 40, None),
    ]
    # every count is opened in one reveal, 0 where suppressed
    assert engines[1].revealed[-2:] == [("small_cell", 5), ("count", 5)]


def test_two_small_levels_open_only_their_bits():
    result, engines, _ = secure_describe(np.zeros((12, 0)), {"c": (codes_for([6, 6]), ["p", "q"])}, min_cell=10)
    assert counts_of(result, "c") == [("p", None, "small"), ("q", None, "small")]
    assert engines[1].revealed == [("small_cell", 2), ("count", 2)]


def test_one_small_level_suppresses_its_complement():
    columns = {
        # one small level (9): the next level (10) is suppressed too
        "grade": (codes_for([9, 10, 11, 50]), ["a", "b", "c", "d"]),
        # two levels, one small: the other is the complement
        "sex": (codes_for([4, 76], 1), [0, 1]),
        # the small level is the last: the complement wraps around to the first
        "region": (codes_for([20, 12, 12, 31, 5], 2), ["n", "e", "w", "c", "s"]),
        # nothing small: nothing suppressed
        "site": (codes_for([40, 40], 3), ["x", "y"]),
    }
    result, engines, _ = secure_describe(np.zeros((80, 0)), columns, min_cell=10)
    assert counts_of(result, "grade") == [("a", None, "small"), ("b", None, "complement"), ("c", 11, None), ("d", 50, None)]
    assert counts_of(result, "sex") == [(0, None, "small"), (1, None, "complement")]
    assert counts_of(result, "region") == [
        ("n", None, "complement"), ("e", 12, None), ("w", 12, None), ("c", 31, None), ("s", None, "small"),
    ]
    assert counts_of(result, "site") == [("x", 40, None), ("y", 40, None)]
    # the complement follows from the small-cell bits by a public rule: nothing more is opened
    assert engines[1].revealed == [("small_cell", 13), ("count", 13)]


def test_the_next_level_that_is_not_small_is_the_complement():
    """With one small level the complement skips nothing: the next level is not small
    (else there would be two small levels and no complement)."""
    result, _, _ = secure_describe(np.zeros((72, 0)), {"c": (codes_for([25, 5, 30, 12], 6), ["p", "q", "r", "s"])}, min_cell=10)
    assert counts_of(result, "c") == [("p", 25, None), ("q", None, "small"), ("r", None, "complement"), ("s", 12, None)]


def test_the_residual_level_is_shown_when_empty_and_is_the_complement_only_as_a_last_resort():
    """The last level counts the values outside the declared ones (the plan's ``other``).
    Empty, it is shown as 0 and hides nothing else: a complete code list loses no level
    (it used to count as small and cost the first level a complement). Small but not
    empty, it is suppressed as before. It is the complement only when no declared level
    can be, since its small-cell bit (0) does not tell large from empty."""
    columns = {
        "complete": (codes_for([30, 40, 0], 7), ["a", "b", "other"]),
        "before_residual": (codes_for([30, 5, 35], 8), ["a", "b", "other"]),
        "small_residual": (codes_for([30, 37, 3], 9), ["a", "b", "other"]),
        "alone": (codes_for([5, 65], 10), ["a", "other"]),
        "alone_empty": (codes_for([70, 0], 11), ["a", "other"]),
    }
    result, engines, _ = secure_describe(np.zeros((70, 0)), columns, min_cell=10)
    assert counts_of(result, "complete") == [("a", 30, None), ("b", 40, None), ("other", 0, None)]
    assert counts_of(result, "before_residual") == [("a", None, "complement"), ("b", None, "small"), ("other", 35, None)]
    assert counts_of(result, "small_residual") == [("a", None, "complement"), ("b", 37, None), ("other", None, "small")]
    assert counts_of(result, "alone") == [("a", None, "small"), ("other", None, "complement")]
    assert counts_of(result, "alone_empty") == [("a", 70, None), ("other", 0, None)]
    # one small-cell bit per level, as the plan's manifest declares: the emptiness test of
    # the residual is folded into its bit, not opened on its own
    assert engines[1].revealed == [("small_cell", 13), ("count", 13)]


def test_raw_indicators():
    counts = [15, 25, 40]
    result, _, _ = secure_describe(
        np.zeros((80, 0)), {"c": (codes_for(counts), ["p", "q", "r"])}, indicator_frac_bits=0
    )
    assert [lc.count for lc in result.categorical["c"]] == counts


def test_revealed_is_exactly_the_declared_list():
    x = mixed_columns(150, 6)
    x[:, 3] = 2.5  # a constant column: its correlations are opened (noise) and shown as None
    d = x.shape[1]
    cats = {"grade": (codes_for([100, 45, 5], 4), ["a", "b", "c"]), "site": (codes_for([75, 75], 5), ["x", "y"])}
    result, engines, xd = secure_describe(x, cats, min_cell=10)
    for engine in engines.values():
        assert engine.revealed == [
            ("mean", d), ("sd", d), ("correlation", d * (d - 1) // 2), ("small_cell", 5), ("count", 5),
        ]
        # everything else opened was masked inside a comparison or truncation
        assert {label for label, _ in engine.opened} <= {"normalise", "newton", "small_cell"}
    assert counts_of(result, "grade") == [("a", None, "complement"), ("b", 45, None), ("c", None, "small")]


class RecordingEngine(Engine):
    """An engine that also keeps the values it reveals (for tests of what an output shows)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.values: list[tuple[str, list[int]]] = []

    def reveal(self, a, label):
        values = yield from super().reveal(a, label)
        self.values.append((label, values))
        return values


def test_opened_sd_does_not_show_its_secret_power_of_two():
    """sqrt(M_jj) is computed as a multiple of 2**(t_j + 7) (t_j = log4 M_jj, rounded): its
    trailing zeros would show the normalisation. The noise fills them: over 8 columns the
    low 8 bits of every opened root are 0 with probability 2**-64."""
    x = mixed_columns(60, 11)
    x = np.column_stack([x, x[:, :1] * 3])
    m, d = x.shape
    flat = shamir.share([v for row in x for v in PARAMS.encode(row)], random.Random(2), PARAMS.prime)
    engines = {i: RecordingEngine(i, PARAMS, b"noise") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    run_local({
        i: describe_fit(e, [flat[i][r * d : (r + 1) * d] for r in range(m)], m=m, columns=list("abcdefgh"), min_cell=5)
        for i, e in engines.items()
    })
    roots = dict(engines[1].values)["sd"]
    assert any(r % 256 for r in roots), roots


def test_refused_before_anything_is_opened_when_m_is_below_min_cell():
    engine = Engine(1, PARAMS, b"x")
    program = describe_fit(engine, [[0]] * 9, m=9, columns=["a"], min_cell=10)
    with pytest.raises(IntersectionTooSmall, match="min_cell = 10"):
        next(program)
    assert engine.revealed == [] and engine.opened == [] and engine.statistics() == {}


def test_bad_arguments_are_refused_before_the_first_round():
    engine = Engine(1, PARAMS, b"x")
    bad = [
        dict(x=[[0]] * 10, m=10, columns=["a"], min_cell=0),
        dict(x=[[0]], m=1, columns=["a"], min_cell=1),
        dict(x=[[0]] * 10, m=10, columns=["a"], min_cell=5, indicator_frac_bits=F + 1),
    ]
    for kwargs in bad:
        with pytest.raises(ConfigError):
            next(describe_fit(engine, **kwargs))
    with pytest.raises(ValueError):  # indicators missing for declared levels
        next(describe_fit(engine, [[0]] * 10, m=10, columns=["a"], categorical={"c": [0, 1]}, min_cell=5))
    with pytest.raises(ValueError):  # x of the wrong width
        next(describe_fit(engine, [[0, 0]] * 10, m=10, columns=["a"], min_cell=5))


def test_layout_fits_every_accepted_parameter_set_and_refuses_beyond_the_field():
    for f in range(1, 65):
        for i in range(1, 65):
            try:
                params = Params(frac_bits=f, int_bits=i)
            except ConfigError:
                continue
            DescribeLayout(params, params.max_rows).check()
    with pytest.raises(ConfigError, match="Shamir prime"):
        DescribeLayout(PARAMS, 2**40).check()


def test_communication_does_not_depend_on_the_data():
    """Same shape, different values: identical rounds and elements (the correlations of a
    constant column are not opened, the one data-dependent difference, which follows from
    its opened SD of 0)."""
    stats = []
    for seed in (7, 8):
        x = mixed_columns(100, seed) * (1 + seed)
        _, engines, _ = secure_describe(np.clip(x, -BIG, BIG), seed=seed)
        stats.append(engines[1].statistics())
    assert stats[0] == stats[1]


def test_rounds_at_the_pilot_size():
    """5,000 rows x 13 columns: the rounds depend on m only through bitlen(m), so the pilot's
    description takes the same few rounds as a small one (58 since the fused truncations;
    docs/describe.md). Time is measured by benchmarks/describe.py, not here."""
    g = np.random.default_rng(10)
    x = np.column_stack([mixed_columns(5000, 10), g.normal(0, 1, (5000, 3))])
    m, d = x.shape
    xe = [PARAMS.encode(row) for row in x]
    flat = shamir.share([v for row in xe for v in row], random.Random(1), PARAMS.prime)
    shares = {i: [flat[i][r * d : (r + 1) * d] for r in range(m)] for i in (1, 2, 3)}
    engines = {i: Engine(i, PARAMS, b"cost") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    results = run_local({
        i: describe_fit(engines[i], shares[i], m=m, columns=[str(j) for j in range(d)], min_cell=10) for i in (1, 2, 3)
    })
    rounds = sum(s["rounds"] for label, s in engines[1].statistics().items() if label != "setup")
    assert_matches_numpy(results[1], np.array(xe, dtype=float) / 2**F)
    assert rounds <= 60
