"""Ordinary least squares with standard errors on 3-party Shamir shares.

The model is statsmodels' ``OLS(y, add_constant(X)).fit()``; ``docs/linear.md`` has the
derivation, the fixed-point budget and the choice of solver.

Outline (every party runs the same program):

1. **Refusal on sizes.** ``m - d - 1 < min_cell`` raises :class:`AnalysisRefused` before
   the first round (public sizes).
2. **Centred Gram matrix, one reshare.** With ``Z = [X | y]`` each party forms
   ``m Z_i^T Z_i - s_i s_i^T`` of its own shares (``local_gram``); one reshare gives
   ``M = m Z^T Z - s s^T = m^2 cov 2**(2f)``, exact.
3. **Jacobi scaling** (``describe``'s secret normalisation): powers of two
   ``P_j = 2**(T - t_j)`` with ``M_jj P_j**2 / 4**T`` in ``[1/4, 1)``; then
   ``N = M_jk P_j P_k / 4**T`` with ``F = 52`` fractional bits, and the scaled means
   ``nu_j = s_j / 2**t_j`` (about mean / SD).
4. **Inverse** of the scaled feature block ``A`` by Newton-Schulz (``mpc/linalg.py``,
   a fixed schedule). One bit is opened (label ``"singular"``): the inverse did not
   converge (an eigenvalue below about ``2**-24``: collinear or constant columns) or a
   column's ``|mean| / SD`` reaches ``2**NU_BITS`` (collinear with the intercept). If it
   is 1 the program raises :class:`AnalysisRefused` and opens nothing else.
5. **Outputs** in the scaled units, each opened once: the scales ``P`` (label
   ``"scale"``: the power of two of every column's SD, see ``docs/linear.md``), the
   scaled coefficients ``gamma = A^-1 b`` (``"coefficients"``), the scaled intercept
   ``nu_y - gamma . nu`` (``"intercept"``), the diagonal of ``A^-1`` (``"se"``),
   ``1 + nu^T A^-1 nu`` (``"intercept_se"``), the scaled residual sum of squares
   (``"sigma2"``) and the scaled variance of ``y`` (``"r2"``). Everything a user reads
   (raw coefficients, standard errors, ``sigma2``, ``R^2``) follows from these and the
   public ``m``, ``d``, ``f`` in float arithmetic; t, p and confidence intervals follow
   in plaintext (:func:`inference`).

With ``ridge > 0`` (scikit-learn's ``Ridge``) the scales are opened before the singular
bit, the penalty becomes a public diagonal and no standard errors are computed
(:func:`openings` with ``ridge=True``; ``docs/linear.md`` says why).

Nothing else is opened except masked values inside truncations and comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..crypto.fixedpoint import Params
from ..errors import AnalysisRefused, ConfigError
from .describe import DescribeLayout, _normalise
from .engine import Engine, Program
from .lasso import local_gram
from .linalg import SpdLayout, spd_inverse

__all__ = ["CONTROL", "LinearLayout", "LinearResult", "inference", "linear_fit", "openings", "t_cdf", "t_quantile", "t_sf2"]


@dataclass(frozen=True)
class LinearResult:
    """The fitted model (identical at all three parties), in raw units."""

    coefficients: tuple[float, ...]
    se: tuple[float, ...]
    intercept: float
    intercept_se: float | None
    sigma2: float
    r2: float
    r2_adj: float
    n: int
    df_resid: int


#: The openings every compute party must see: the singular bit steers the program, and
#: the columns' powers of two fix the outputs' scales (with ridge, the penalty's too).
CONTROL = frozenset({"singular", "scale"})


def openings(d: int, *, ridge: bool = False) -> tuple[tuple[str, tuple[int, ...], str | None, int], ...]:
    """What :func:`linear_fit` opens, in order: ``(output, shape, reveal label, reveals)``.

    Entries with label ``None`` are derived in public from the opened ones. The list is
    exactly ``Engine.revealed`` of a run that is not refused; a run refused on the
    singular bit opens only the first entry, one refused on sizes opens nothing.
    """
    if ridge:
        return (
            ("scale", (d + 1,), "scale", 1),
            ("singular", (1,), "singular", 1),
            ("coefficients", (d,), "coefficients", 1),
            ("intercept", (1,), "intercept", 1),
            ("sigma2", (1,), "sigma2", 1),
            ("r2", (1,), "r2", 1),
            ("se", (0,), None, 0),
            ("intercept_se", (), None, 0),
            ("r2_adj", (), None, 0),
            ("n", (), None, 0),
            ("df_resid", (), None, 0),
        )
    return (
        ("singular", (1,), "singular", 1),
        ("scale", (d + 1,), "scale", 1),
        ("coefficients", (d,), "coefficients", 1),
        ("intercept", (1,), "intercept", 1),
        ("se", (d,), "se", 1),
        ("intercept_se", (1,), "intercept_se", 1),
        ("sigma2", (1,), "sigma2", 1),
        ("r2", (1,), "r2", 1),
        ("r2_adj", (), None, 0),
        ("n", (), None, 0),
        ("df_resid", (), None, 0),
    )


@dataclass(frozen=True)
class LinearLayout:
    """Every fixed-point width of :func:`linear_fit` for the public ``m`` and ``d``.

    The inputs have ``f = frac_bits`` fractional bits and ``|x| < 2**int_bits``, so
    ``|M_jk| < 4**T`` with ``T = bitlen(m) + int_bits + f`` (describe's layout). The scaled
    matrix and everything after it have ``F = 52`` fractional bits; the scaled means
    ``NU_FRAC`` (their quadratic form would not fit with more).
    """

    F = 52
    COND_BITS = 24
    #: ``||A^-1|| < 2**INV_BITS`` once the singular bit is 0 (eigenvalues below
    #: ``2**-(COND_BITS + 3)`` raise it)
    INV_BITS = COND_BITS + 4
    #: ``|mean_j| / SD_j`` (and the target's) must stay below ``2**NU_BITS``
    NU_BITS = 12
    #: fractional bits of the scaled means: for the intercept and for its variance
    NU_FRAC = 44
    NU_QUAD = 32
    #: with ridge, each scaled diagonal ``A_jj + rho_j`` is brought below 1.02 by a public
    #: ``4**-k_j``; ``k_j`` above this (a penalty beyond ``4**RIDGE_SHIFT`` times the
    #: column's scaled variance) is refused
    RIDGE_SHIFT = 24

    params: Params
    m: int
    d: int

    @property
    def describe(self) -> DescribeLayout:
        return DescribeLayout(self.params, self.m)

    @property
    def solver(self) -> SpdLayout:
        return SpdLayout(self.params, self.d, frac_bits=self.F, cond_bits=self.COND_BITS)

    @property
    def T(self) -> int:
        return self.describe.T

    @property
    def logd(self) -> int:
        """``d + 1 <= 2**logd``."""
        return max(1, math.ceil(math.log2(self.d + 1)))

    @property
    def scaled(self) -> tuple[int, int]:
        """``trunc_fast`` of ``M_jk P_j P_k`` (``|.| < 4**T``, with 1% slack) to ``F`` bits."""
        return 2 * self.T - self.F, 2 * self.T + 2

    def means(self, frac: int) -> tuple[int, int]:
        """``trunc_fast`` of ``s_j P_j`` to ``frac`` bits: ``|s_j| < m 2**(int_bits + f) <= 2**T``
        and ``P_j <= 2**(T + COARSE - 1)`` (a constant column)."""
        return self.T - frac, 2 * self.T + DescribeLayout.COARSE + 1

    @property
    def range_bits(self) -> int:
        """Comparisons of ``nu_j -+ 2**NU_BITS`` (``|nu_j| < 2**(T + COARSE)``, ``NU_FRAC`` bits)."""
        return self.NU_FRAC + self.T + DescribeLayout.COARSE + 2

    @property
    def solve(self) -> tuple[int, int]:
        """``gamma = A^-1 b`` to ``F`` bits: ``|gamma| <= ||A^-1|| ||b||``, ``||b|| < 1.02 sqrt(d)``."""
        return self.F, 2 * self.F + self.INV_BITS + self.logd + 2

    @property
    def rss(self) -> tuple[int, int]:
        """``b . gamma`` to ``F`` bits (``<= ||A^-1|| ||b||**2``)."""
        return self.F, 2 * self.F + self.INV_BITS + self.logd + 2

    @property
    def cross(self) -> tuple[int, int]:
        """``gamma . nu`` to ``F`` bits (``NU_FRAC`` times ``F`` bits, ``<= ||A^-1|| ||b|| ||nu||``)."""
        return self.NU_FRAC, self.F + self.NU_FRAC + self.INV_BITS + self.NU_BITS + self.logd + 2

    @property
    def spread(self) -> tuple[int, int]:
        """``A^-1 nu`` to ``F`` bits (``NU_QUAD`` times ``F`` bits)."""
        return self.NU_QUAD, self.F + self.NU_QUAD + self.INV_BITS + self.NU_BITS + self.logd + 2

    @property
    def quad(self) -> tuple[int, int]:
        """``nu . (A^-1 nu)`` to ``F`` bits (``NU_QUAD`` times ``F`` bits, ``<= ||A^-1|| ||nu||**2``)."""
        return self.NU_QUAD, self.NU_QUAD + self.F + self.INV_BITS + 2 * self.NU_BITS + self.logd + 2

    @property
    def any_bits(self) -> int:
        """The final ``[count of flags >= 1]`` (``count <= 2 (d + 1) + 1``)."""
        return (2 * self.d + 3).bit_length() + 2

    @property
    def ridge_scale(self) -> tuple[int, int]:
        """``A_jk 2**(2S - k_j - k_l)`` and ``b_j 2**(2S - k_j)`` (``S = RIDGE_SHIFT``) back to ``F`` bits."""
        return 2 * self.RIDGE_SHIFT, self.F + 2 * self.RIDGE_SHIFT + 3

    @property
    def ridge_gamma(self) -> tuple[int, int]:
        """``gamma''_j 2**(S - k_j)`` back to ``F`` bits (``|gamma''| < 2**(INV_BITS + logd)``)."""
        return self.RIDGE_SHIFT, self.F + self.INV_BITS + self.logd + self.RIDGE_SHIFT + 2

    def widths(self) -> dict[str, int]:
        """The widest value (bits) of every budgeted operation, by what it computes."""
        return {
            "the scaled Gram matrix": self.scaled[1] + 1,
            "the normalisation": max(self.describe.normalise_bits, self.describe.window[1] + 1),
            "the scaled means": max(self.means(self.NU_FRAC)[1] + 1, self.range_bits),
            "the solve": self.solve[1] + 1,
            "the intercept": self.cross[1] + 1,
            "the intercept's variance": max(self.spread[1], self.quad[1]) + 1,
            "the inverse": self.solver.product_bits + 1,
            "the ridge scaling": max(self.ridge_scale[1], self.ridge_gamma[1]) + 1,
        }

    def check(self) -> None:
        """Raise :class:`ConfigError` (naming the parameters and every operation that does
        not fit) unless every operation fits."""
        p = self.params
        if self.d < 1:
            raise ConfigError(f"linear: at least one feature is needed, got d = {self.d}")
        if self.scaled[0] <= 0 or self.means(self.NU_FRAC)[0] <= 0:
            raise ConfigError(
                f"linear: frac_bits = {p.frac_bits} and int_bits = {p.int_bits} leave the scaled "
                f"values fewer than {self.F} fractional bits"
            )
        widths = self.widths()
        failing = {what: bits + p.sigma + 3 for what, bits in widths.items() if bits + p.sigma + 3 > p.field_bits}
        if failing:
            listed = "; ".join(f"{what} needs a Shamir prime above 2**{need}" for what, need in failing.items())
            raise ConfigError(
                f"linear: with m = {self.m}, d = {self.d}, frac_bits = {p.frac_bits}, int_bits = "
                f"{p.int_bits} and sigma = {p.sigma}, {listed}; the prime has {p.field_bits} bits"
            )
        self.solver.check()  # its remaining rule: frac_bits against cond_bits and d


def linear_fit(
    engine: Engine,
    x: Sequence[Sequence[int]],
    y: Sequence[int],
    *,
    m: int,
    d: int,
    min_cell: int,
    ridge: float = 0.0,
) -> Program[LinearResult]:
    """Program: ``OLS(y, add_constant(X)).fit()`` on shared data; every party gets the result.

    Args:
        engine: this party's engine, after :meth:`Engine.setup`.
        x: this party's shares of the features, ``m`` rows of ``d`` field elements, encoded
            with ``params.frac_bits`` fractional bits, ``|x| < 2**int_bits``, raw units.
        y: this party's shares of the encoded target, length ``m``.
        m, d: the public sizes.
        min_cell: the residual degrees of freedom ``m - d - 1`` must reach it.
        ridge: scikit-learn's ``Ridge(alpha=ridge)`` penalty (public, ``0 <= ridge <
            2**int_bits``; the intercept is not penalised). With ``ridge > 0`` no standard
            errors are computed or opened (``se == ()``, ``intercept_se is None``), and
            the scales are opened first (the penalty's scaled size ``ridge m 4**f /
            4**t_j`` becomes a public diagonal; see ``docs/linear.md``).

    Raises:
        AnalysisRefused: ``m - d - 1 < min_cell`` (before any round), or the design is
            numerically singular (after the one opened bit, nothing else opened).
        ConfigError: bad sizes or parameters, before the first round.
    """
    params = engine.params
    p = engine.prime
    if not (isinstance(ridge, (int, float)) and math.isfinite(ridge) and 0 <= ridge < 2.0**params.int_bits):
        raise ConfigError(f"linear: ridge must be a number in [0, 2**{params.int_bits}), got {ridge!r}")
    if not isinstance(min_cell, int) or min_cell < 1:
        raise ConfigError(f"linear: min_cell must be a positive integer, got {min_cell!r}")
    if not isinstance(d, int) or d < 1:
        raise ConfigError(f"linear: at least one feature is needed, got d = {d!r}")
    df_resid = m - d - 1
    if df_resid < min_cell:
        raise AnalysisRefused(
            f"linear refused: {m} rows and {d} features leave m - d - 1 = {df_resid} residual "
            f"degrees of freedom, fewer than min_cell = {min_cell}; nothing is opened"
        )
    if not 2 <= m <= params.max_rows:
        raise ConfigError(f"linear: the number of rows must be in [2, max_rows={params.max_rows}]")
    if len(x) != m or len(y) != m or any(len(row) != d for row in x):
        raise ValueError(f"linear: x must be {m} rows of {d} shares and y must have {m} shares")
    layout = LinearLayout(params, m, d)
    layout.check()
    F, NF = layout.F, layout.NU_FRAC
    n = d + 1

    # ---- 2. centred Gram matrix: local degree 2, one reshare --------------------------
    gram_local, sums = local_gram([list(row) + [v] for row, v in zip(x, y)], p)
    tri = [(j, k) for j in range(n) for k in range(j, n)]
    centred = yield from engine.reshare([(m * gram_local[j][k] - sums[j] * sums[k]) % p for j, k in tri], "gram")
    del gram_local

    # ---- 3. Jacobi scaling by secret powers of two -------------------------------------
    diag = [centred[tri.index((j, j))] for j in range(n)]
    P, _ = yield from _normalise(engine, diag, layout.describe)
    half = yield from engine.mul(centred + sums, [P[j] for j, _ in tri] + P, "scale")
    full = yield from engine.mul(half[: len(tri)], [P[k] for _, k in tri], "scale")
    scaled = yield from engine.trunc_fast(full, *layout.scaled, "scale")
    nu = yield from engine.trunc_fast(half[len(tri) :], *layout.means(NF), "scale")
    nu_q = yield from engine.trunc_fast(half[len(tri) :], *layout.means(layout.NU_QUAD), "scale")
    entry = dict(zip(tri, scaled))

    def N(j: int, k: int) -> int:
        return entry[(j, k) if j <= k else (k, j)]

    a = [[N(j, k) for k in range(d)] for j in range(d)]
    b = [N(j, d) for j in range(d)]
    if ridge > 0:
        return (yield from _ridge(engine, layout, a, b, N(d, d), nu, P, ridge, df_resid))

    # ---- 4. inverse and the singular bit -----------------------------------------------
    inverse, not_converged = yield from spd_inverse(engine, a, layout.solver, "solve")
    opened = yield from _singular(engine, layout, nu, not_converged)
    if opened[0] != 0:
        raise AnalysisRefused(
            f"linear refused: the design is numerically singular (collinear or constant feature "
            f"columns, or a column nearly constant next to the intercept: |mean| / SD of "
            f"2**{layout.NU_BITS} or more) among the {d} features; only the singular bit was opened"
        )

    # ---- 5. the scaled outputs ----------------------------------------------------------
    gamma = yield from engine.dot_trunc([(inverse[j], b) for j in range(d)], *layout.solve, "solve", fast=True)
    products = yield from engine.dot(
        [(b, gamma), (gamma, nu[:d])] + [(inverse[j], nu_q[:d]) for j in range(d)], "output"
    )
    bg = yield from engine.trunc_fast(products[:1], *layout.rss, "output")
    cross = yield from engine.trunc_fast(products[1:2], *layout.cross, "output")  # F bits
    spread = yield from engine.trunc_fast(products[2:], *layout.spread, "output")  # F bits
    quad = yield from engine.dot_trunc([(nu_q[:d], spread)], *layout.quad, "output", fast=True)  # F bits
    rss = (N(d, d) - bg[0]) % p
    intercept = (nu[d] * (1 << (F - NF)) - cross[0]) % p
    q = (quad[0] + (1 << F)) % p

    scales = yield from engine.reveal(P, "scale")
    g_open = yield from engine.reveal(gamma, "coefficients")
    icpt_open = yield from engine.reveal([intercept], "intercept")
    inv_diag = yield from engine.reveal([inverse[j][j] for j in range(d)], "se")
    q_open = yield from engine.reveal([q], "intercept_se")
    rss_open = yield from engine.reveal([rss], "sigma2")
    yy_open = yield from engine.reveal([N(d, d)], "r2")

    return _raw_result(
        engine.params.frac_bits, layout, df_resid, scales, g_open, [0] * d, icpt_open[0], rss_open[0], yy_open[0],
        inv_diag, q_open[0],
    )


def _raw_result(
    f: int, layout: LinearLayout, df_resid: int, scales: list[int], gamma: list[int], shifts: list[int],
    intercept: int, rss: int, yy: int, inv_diag: list[int] | None = None, q: int | None = None,
) -> LinearResult:
    """The public arithmetic: raw units from the opened scaled values (``F`` fractional
    bits) and scales ``P_j = 2**(T - t_j)``; the centred cross products are
    ``S_jk = N_jk 2**(t_j + t_k) / (m 4**f)``. ``shifts`` are the ridge's public ``k_j``
    (coefficient ``j`` is ``gamma_j 2**(t_y - t_j - k_j)``); without ``inv_diag`` and
    ``q`` (ridge) no standard errors."""
    m, F = layout.m, layout.F
    t = [layout.T - (v.bit_length() - 1) for v in scales]
    y = t[-1]
    unit = float(1 << F)
    rss_n = rss / unit
    sigma2 = math.ldexp(rss_n, 2 * y - 2 * f) / (m * df_resid)
    # yy > 0 whenever the design is not singular; 0 where a compute party that is not a
    # recipient decodes the zeros its engine returned (Engine.reveal), whose result is dropped
    r2 = 1.0 - rss_n / (yy / unit) if yy else math.nan
    se: tuple[float, ...] = ()
    intercept_se = None
    if inv_diag is not None and q is not None:
        se = tuple(math.sqrt(max(sigma2 * m * math.ldexp(v / unit, 2 * f - 2 * t[j]), 0.0)) for j, v in enumerate(inv_diag))
        intercept_se = math.sqrt(max(sigma2 * (q / unit) / m, 0.0))
    return LinearResult(
        coefficients=tuple(math.ldexp(g / unit, y - t[j] - k) for j, (g, k) in enumerate(zip(gamma, shifts))),
        se=se,
        intercept=math.ldexp(intercept / unit, y - f) / m,
        intercept_se=intercept_se,
        sigma2=sigma2,
        r2=r2,
        r2_adj=1.0 - (1.0 - r2) * (m - 1) / df_resid,
        n=m,
        df_resid=df_resid,
    )


def _singular(engine: Engine, layout: LinearLayout, nu: list[int], not_converged: int) -> Program[list[int]]:
    """Program: open (label ``singular``) the one bit ``[the inverse did not converge or
    some |nu_j| >= 2**NU_BITS]``, from ``2 (d + 1) + 1`` flags summed and compared with 1."""
    p = engine.prime
    bound = 1 << (layout.NU_BITS + layout.NU_FRAC)
    within = yield from engine.ltz(
        [(v - bound) % p for v in nu] + [(-v - bound) % p for v in nu], layout.range_bits, "singular"
    )
    flags = (len(within) - sum(within) + not_converged) % p  # bounds not met + not converged
    singular = yield from engine.ltz([(-flags) % p], layout.any_bits, "singular")  # [0 - flags < 0]
    return (yield from engine.reveal(singular, "singular"))


def _ridge(
    engine: Engine, layout: LinearLayout, a: list[list[int]], b: list[int], yy: int, nu: list[int],
    P: list[int], ridge: float, df_resid: int,
) -> Program[LinearResult]:
    """Program: the ridge branch of :func:`linear_fit` after the scaling (step 3).

    The scales are opened first, so the scaled penalty ``rho_j = ridge m 4**f / 4**t_j``
    is public; ``A_r = Q (A + diag(rho)) Q`` with public ``Q_j = 2**-k_j`` has its diagonal
    below 1.02 (the solver's contract); then ``gamma = Q A_r^-1 Q b``.
    """
    p, d, m = engine.prime, layout.d, layout.m
    F, T, NF, f = layout.F, layout.T, layout.NU_FRAC, engine.params.frac_bits
    S = layout.RIDGE_SHIFT
    scales = yield from engine.reveal(P, "scale")
    t = [T - (v.bit_length() - 1) for v in scales]
    rho = [math.ldexp(ridge * m, 2 * f - 2 * t[j]) for j in range(d)]
    k = [max(0, math.ceil(math.log((1.02 + r) / 1.02, 4))) for r in rho]
    while any((1.02 + r) * 4.0**-kj > 1.02 for r, kj in zip(rho, k)):  # float rounding of the log
        k = [kj + ((1.02 + r) * 4.0**-kj > 1.02) for r, kj in zip(rho, k)]
    # the singular bit is opened whatever k is, so the rounds do not depend on the data
    too_big = max(k) > S
    k = [min(kj, S) for kj in k]
    flat = engine.scale(
        [a[j][l] for j in range(d) for l in range(d)] + b,
        [1 << (2 * S - k[j] - k[l]) for j in range(d) for l in range(d)] + [1 << (2 * S - k[j]) for j in range(d)],
    )
    shifted = yield from engine.trunc_fast(flat, *layout.ridge_scale, "ridge")
    a_r = [
        [(shifted[j * d + l] + (round(math.ldexp(rho[j], F - 2 * k[j])) if j == l else 0)) % p for l in range(d)]
        for j in range(d)
    ]
    b_r = shifted[d * d :]
    inverse, not_converged = yield from spd_inverse(engine, a_r, layout.solver, "solve")
    opened = yield from _singular(engine, layout, nu, not_converged)
    if too_big:
        raise AnalysisRefused(
            f"linear refused: ridge = {ridge} outweighs a feature's variance by more than 4**{S}; "
            f"only the scales and the singular bit were opened"
        )
    if opened[0] != 0:
        raise AnalysisRefused(
            f"linear refused: the penalised design is numerically singular (or a column is nearly "
            f"constant next to the intercept: |mean| / SD of 2**{layout.NU_BITS} or more) among the "
            f"{d} features; only the scales and the singular bit were opened"
        )
    g_r = yield from engine.dot_trunc([(inverse[j], b_r) for j in range(d)], *layout.solve, "solve", fast=True)
    # RSS = c_yy - 2 g.(Q b) + g^T (Q A Q) g in scaled units, g = gamma''
    a_g = yield from engine.dot_trunc([(shifted[j * d : (j + 1) * d], g_r) for j in range(d)], *layout.solve, "output", fast=True)
    gamma = engine.scale(g_r, [1 << (S - kj) for kj in k])  # gamma = Q gamma'', S extra bits
    gamma = yield from engine.trunc_fast(gamma, *layout.ridge_gamma, "output")
    terms = yield from engine.dot([(g_r, engine.sub(a_g, engine.scale(b_r, 2))), (gamma, nu[:d])], "output")
    fits = yield from engine.trunc_fast(terms[:1], *layout.rss, "output")
    cross = yield from engine.trunc_fast(terms[1:], *layout.cross, "output")
    rss = (yy + fits[0]) % p
    intercept = (nu[d] * (1 << (F - NF)) - cross[0]) % p
    g_open = yield from engine.reveal(g_r, "coefficients")
    icpt_open = yield from engine.reveal([intercept], "intercept")
    rss_open = yield from engine.reveal([rss], "sigma2")
    yy_open = yield from engine.reveal([yy], "r2")
    return _raw_result(f, layout, df_resid, scales, g_open, k, icpt_open[0], rss_open[0], yy_open[0])


# ---------------------------------------------------------------------------------
# plaintext inference: Student's t without scipy
# ---------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, dd = 1.0, 1.0 - qab * x / qap
    dd = 1.0 / (dd if abs(dd) > tiny else tiny)
    h = dd
    for k in range(1, 10000):
        m2 = 2 * k
        aa = k * (b - k) * x / ((qam + m2) * (a + m2))
        dd = 1.0 + aa * dd
        dd = 1.0 / (dd if abs(dd) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= dd * c
        aa = -(a + k) * (qab + k) * x / ((a + m2) * (qap + m2))
        dd = 1.0 + aa * dd
        dd = 1.0 / (dd if abs(dd) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = dd * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            return h
    raise ArithmeticError("incomplete beta: the continued fraction did not converge")


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)``; ``y = 1 - x``, passed
    separately so that neither loses precision to the subtraction."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, y) / b


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail ``P(|T| >= |t|)`` of Student's t with ``df`` degrees of freedom."""
    return _betainc(df / 2.0, 0.5, df / (df + t * t), t * t / (df + t * t))


def t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` of Student's t with ``df`` degrees of freedom."""
    tail = t_sf2(t, df) / 2.0
    return 1.0 - tail if t > 0 else tail


def t_quantile(prob: float, df: float) -> float:
    """The ``prob`` quantile (``0.5 <= prob < 1``) of Student's t, by bisection on the tail."""
    if not 0.5 <= prob < 1.0:
        raise ValueError("t_quantile: prob must be in [0.5, 1)")
    target = 2.0 * (1.0 - prob)  # two-sided tail
    lo, hi = 0.0, 1.0
    while t_sf2(hi, df) > target:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_sf2(mid, df) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return (lo + hi) / 2.0


def inference(result: LinearResult, level: float = 0.95) -> tuple[tuple[float, float, float, float, float, float], ...]:
    """Per coefficient, the intercept last: ``(estimate, se, t, p, ci_low, ci_high)``.

    Student's t with ``result.df_resid`` degrees of freedom (statsmodels' ``tvalues``,
    ``pvalues`` and ``conf_int(1 - level)``). Without standard errors (ridge) there is
    nothing to infer: :class:`ValueError`.
    """
    if len(result.se) != len(result.coefficients) or result.intercept_se is None:
        raise ValueError("inference needs standard errors (a ridge fit has none)")
    q = t_quantile(0.5 + level / 2.0, result.df_resid)
    rows = []
    pairs = list(zip(result.coefficients, result.se)) + [(result.intercept, result.intercept_se)]
    for estimate, se in pairs:
        t = estimate / se
        rows.append((estimate, se, t, t_sf2(t, result.df_resid), estimate - q * se, estimate + q * se))
    return tuple(rows)
