"""The secure cohort description: means, SDs, correlations and disclosure-controlled counts.

A program over the three-party engine (``mpc/engine.py``), written like ``mpc/lasso.py``
and documented in ``docs/describe.md``. Every party passes its Shamir shares and gets the
same :class:`Description`.

Outline:

1. **Means.** The column sums ``s_j`` are local (sums of shares); they are opened exactly
   (label ``"mean"``): with ``m`` public a sum is the mean, and any mean precise to
   ``2**-(frac_bits + bitlen(m))`` determines it anyway.
2. **Centred Gram matrix, one reshare.** Each party computes ``m Z_i^T Z_i - s_i s_i^T``
   of its own shares (``local_gram``, degree 2) and one reshare gives shares of
   ``M = m Z^T Z - s s^T = m^2 cov * 2**(2f)``, an exact integer matrix.
3. **Normalisation.** Secret ``t_j`` with ``M_jj / 4**t_j`` in ``[1/4, 1)`` (to 1%): a
   coarse batch of wide comparisons steps ``4**8`` at a time and scales ``M_jj`` exactly into
   ``[4**(T - 8), 4**T)``; :meth:`Engine.pow2_normalise` on the top 24 bits of that finds
   the rest. With ``P_j = 2**(T - t_j)`` the products ``N_jk = M_jk P_j P_k`` are exact,
   ``|N_jk| <~ 4**T`` (Cauchy-Schwarz), and one truncation leaves ``F = 48`` fractional bits.
4. **Newton.** ``y_j = 1 / sqrt(N_jj / 4**T)`` (:meth:`Engine.inv_sqrt` from ``1.75 - x``),
   then ``sqrt(M_jj) = (N_jj / 4**T) y_j 2**t_j`` plus noise below its granule (opened,
   label ``"sd"``; the SD is ``sqrt(M_jj / (m (m - 1))) / 2**f``, the ``n - 1``
   denominator applied in public) and
   ``r_jk = (N_jk / 4**T) y_j y_k`` for ``j < k`` (opened, label ``"correlation"``, only
   for pairs of columns whose SD is not 0).
5. **Counts with disclosure control.** Per level the count is a local sum of the one-hot
   indicators. One batch of comparisons gives the bits ``[count < min_cell]`` (opened,
   label ``"small_cell"``); where exactly one level of a column is small, the next level
   in declared order that is not small is suppressed too (a public rule: no bit is
   opened for it), so the small count is not ``m`` minus the others; then every count
   is opened in one reveal (label ``"count"``), 0 where suppressed.

Nothing else is opened except masked values inside truncations and comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ..crypto.fixedpoint import Params
from ..errors import ConfigError, IntersectionTooSmall
from .engine import Engine, Program
from .lasso import local_gram

__all__ = ["ColumnSummary", "Description", "DescribeLayout", "LevelCount", "describe_fit"]

@dataclass(frozen=True)
class ColumnSummary:
    """One numeric column: ``count`` (= m), ``mean`` and ``sd`` (``n - 1`` denominator;
    exactly 0.0 for a constant column)."""

    name: str
    count: int
    mean: float
    sd: float


@dataclass(frozen=True)
class LevelCount:
    """One level of a categorical column.

    ``count`` is ``None`` when the level is suppressed; ``suppressed`` says why:
    ``"small"`` (its count is below ``min_cell``; only that bit was opened) or
    ``"complement"`` (the smallest other level of a column with exactly one small level,
    so the small count cannot be recovered as ``m`` minus the others).
    """

    level: Hashable
    count: int | None
    suppressed: Literal["small", "complement"] | None


@dataclass(frozen=True)
class Description:
    """The opened description (identical at all three parties).

    ``correlation`` is the full ``d x d`` Pearson matrix; an entry involving a constant
    column (SD 0) is ``None`` (undefined, and never computed or opened), the diagonal of a
    non-constant column is 1.0. ``categorical`` maps each categorical column to its levels
    in the order given.
    """

    m: int
    numeric: tuple[ColumnSummary, ...]
    correlation: tuple[tuple[float | None, ...], ...]
    categorical: Mapping[str, tuple[LevelCount, ...]]


@dataclass(frozen=True)
class DescribeLayout:
    """Every fixed-point width of :func:`describe_fit` for one run's public ``m``.

    Inputs have ``f = frac_bits`` fractional bits and ``|x| < 2**int_bits``, so
    ``0 <= M_jj < m**2 4**(int_bits + f) <= 4**T`` with ``T = bitlen(m) + int_bits + f``.
    After the normalisation everything has ``F`` fractional bits and magnitude below
    ``2**8`` (the Newton iterate of a constant column grows to ``1.75 * 1.5**5 < 14``).
    """

    #: fractional bits of the normalised values, the Newton iterates and the outputs
    F = 48
    #: Newton iterations from ``y0 = 1.75 - x`` (``x y0**2`` in ``[0.56, 0.8]``): the relative
    #: error of ``1/sqrt`` falls 0.22, 1.8e-2, 1.7e-4, 8.5e-8, 2.3e-14
    NEWTON_ITERATIONS = 5
    #: the coarse search steps by ``4**COARSE``; the fine search sees ``2 * WINDOW`` bits
    COARSE = 8
    WINDOW = 12

    params: Params
    m: int

    @property
    def T(self) -> int:
        return self.m.bit_length() + self.params.int_bits + self.params.frac_bits

    @property
    def coarse_levels(self) -> list[int]:
        """The coarse search's exponents ``a`` (comparisons with ``4**a``), ascending."""
        top = (self.T - 1) // self.COARSE
        return [self.T - self.COARSE * (top - i) for i in range(top)]

    @property
    def normalise_bits(self) -> int:
        """The coarse comparisons of ``M_jj - 4**a`` (``|.| < 4**T``)."""
        return 2 * self.T + 1

    @property
    def window(self) -> tuple[int, int]:
        """``trunc_fast`` of the coarsely scaled ``M_jj`` (below ``4**T``) to its top ``2 WINDOW`` bits."""
        return 2 * (self.T - self.WINDOW), 2 * self.T + 2

    @property
    def window_bits(self) -> int:
        """The fine comparisons (``|.| < 4**WINDOW + 2``)."""
        return 2 * self.WINDOW + 2

    @property
    def root_bits(self) -> int:
        """Fractional bits of the opened ``sqrt(M_jj)``."""
        return self.F + self.COARSE - 1

    @property
    def centre(self) -> tuple[int, int]:
        """``trunc_fast`` of ``N = M_jk P_j P_k`` (``|N| <= 4**T``) to ``F`` bits."""
        return 2 * self.T - self.F, 2 * self.T + 2

    @property
    def newton_bits(self) -> int:
        """Products of two ``F``-bit values of magnitude below ``2**8`` (Newton, correlations)."""
        return 2 * self.F + 10

    @property
    def output_bits(self) -> int:
        """The last truncation: correlations (as :attr:`newton_bits`) and the SD noise
        ``U 2**(t + COARSE - 1)`` (``U < 3 * 2**F``, ``t <= T``)."""
        return max(self.newton_bits, self.F + self.T + self.COARSE + 2)

    @property
    def count_bits(self) -> int:
        """Comparisons between counts and with ``min_cell`` (``|.| <= m``)."""
        return self.m.bit_length() + 1

    def check(self) -> None:
        """Raise :class:`ConfigError` unless the engine can run every operation."""
        shift, bits = self.centre
        if not (0 < shift < bits and self.T > self.WINDOW + self.COARSE):
            raise ConfigError(
                f"describe: frac_bits = {self.params.frac_bits} and int_bits = {self.params.int_bits} "
                f"leave the normalised values fewer than {self.F} fractional bits"
            )
        need = max(bits + 1, self.normalise_bits, self.output_bits) + self.params.sigma + 3
        if need > self.params.field_bits:
            raise ConfigError(
                f"describe: m = {self.m} rows with frac_bits = {self.params.frac_bits}, int_bits = "
                f"{self.params.int_bits} and sigma = {self.params.sigma} need a Shamir prime above "
                f"2**{need}, but the prime has {self.params.field_bits} bits"
            )


def describe_fit(
    engine: Engine,
    x: Sequence[Sequence[int]],
    *,
    m: int,
    columns: Sequence[str],
    indicators: Sequence[Sequence[int]] = (),
    categorical: Mapping[str, Sequence[Hashable]] | None = None,
    min_cell: int,
    indicator_frac_bits: int | None = None,
    residual: bool = True,
) -> Program[Description]:
    """Program: describe the shared cohort; every party gets the same :class:`Description`.

    Args:
        engine: this party's engine, after :meth:`Engine.setup`.
        x: this party's shares of the numeric columns, ``m`` rows of ``len(columns)`` field
            elements, fixed-point encoded like every value (``params.frac_bits`` fractional
            bits, ``|x| < 2**int_bits``, as :meth:`Params.encode` makes them).
        m: the number of rows (public), at least 2 and at least ``min_cell``.
        columns: the numeric columns' names (public).
        indicators: this party's shares of the one-hot indicator columns of every
            categorical column, ``m`` rows, the levels of the first column first. Each
            indicator is 0 or ``2**indicator_frac_bits`` and every row has exactly one 1
            per categorical column (the owner one-hot encodes its integer-coded column).
        categorical: column name -> its levels (public), in the order of ``indicators``.
        min_cell: the smallest count that may be opened.
        residual: the last level of each column counts every value outside the others (the
            plan's ``other``, often empty): it is small only when not empty, it is never the
            complement while a declared level can be, and a small last level does not hide a
            second small level, which gets a complement as a lone small level does.
        indicator_frac_bits: the indicators' encoding: ``params.frac_bits`` by default
            (encoded like any value: 0 or ``2**frac_bits``); 0 for raw 0/1 values.

    Raises:
        IntersectionTooSmall: ``m < min_cell``, before anything is opened.
        ConfigError: bad sizes or parameters, before the first round.
    """
    params = engine.params
    p = engine.prime
    categorical = dict(categorical or {})
    d = len(columns)
    widths = [len(levels) for levels in categorical.values()]
    if not isinstance(min_cell, int) or min_cell < 1:
        raise ConfigError(f"describe: min_cell must be a positive integer, got {min_cell!r}")
    if m < min_cell:
        raise IntersectionTooSmall(
            f"describe refused: the cohort has {m} rows, fewer than min_cell = {min_cell}; nothing is opened"
        )
    if not 2 <= m <= params.max_rows:
        raise ConfigError(f"describe: the number of rows must be in [2, max_rows={params.max_rows}]")
    if len(x) != m or any(len(row) != d for row in x):
        raise ValueError(f"describe: x must be {m} rows of {d} shares")
    if any(w < 1 for w in widths) or (sum(widths) and len(indicators) != m) or any(
        len(row) != sum(widths) for row in indicators
    ):
        raise ValueError(f"describe: indicators must be {m} rows of {sum(widths)} shares, one per level")
    b = params.frac_bits if indicator_frac_bits is None else indicator_frac_bits
    if not 0 <= b <= params.frac_bits:
        raise ConfigError(f"describe: indicator_frac_bits must be in [0, {params.frac_bits}]")
    layout = DescribeLayout(params, m)
    layout.check()

    numeric = yield from _numeric(engine, x, m, columns, layout)
    # counts: local sums; an indicator of exactly 0 or 2**b makes the division exact
    inv = pow(1 << b, -1, p)
    counts = [sum(column) * inv % p for column in zip(*indicators)]
    levels = yield from _counts(engine, counts, categorical, min_cell, layout.count_bits, residual)
    summaries, correlation = numeric
    return Description(m=m, numeric=summaries, correlation=correlation, categorical=levels)


def _numeric(
    engine: Engine, x: Sequence[Sequence[int]], m: int, columns: Sequence[str], layout: DescribeLayout
) -> Program[tuple[tuple[ColumnSummary, ...], tuple[tuple[float | None, ...], ...]]]:
    """Program: means, SDs and the correlation matrix of the numeric columns."""
    d = len(columns)
    if d == 0:
        return (), ()
    p, f, F, T = engine.prime, engine.params.frac_bits, layout.F, layout.T
    gram_local, sums = local_gram(x, p)
    opened_sums = yield from engine.reveal(sums, "mean")
    means = [float(Fraction(s, m << f)) for s in opened_sums]

    # M = m Z^T Z - s s^T: degree 2 locally, one reshare
    tri = [(j, k) for j in range(d) for k in range(j, d)]
    centred = yield from engine.reshare([(m * gram_local[j][k] - sums[j] * sums[k]) % p for j, k in tri], "gram")
    diag = [centred[tri.index((j, j))] for j in range(d)]

    # secret P_j = 2**(T - t_j) with M_jj P_j**2 / 4**T in [1/4, 1), and 2**(t_j + COARSE - 1)
    P, two_t = yield from _normalise(engine, diag, layout)
    half = yield from engine.mul(centred, [P[j] for j, _ in tri], "normalise")
    full = yield from engine.mul(half, [P[k] for _, k in tri], "normalise")  # |N| <= 4**T
    c = yield from engine.trunc_fast(full, *layout.centre, "normalise")  # F bits, |c| <= 1
    x_n = [c[tri.index((j, j))] for j in range(d)]  # in [1/4, 1)

    y0 = [((7 << (F - 2)) - v) % p for v in x_n]  # 1.75 - x
    y = yield from engine.inv_sqrt(x_n, y0, F, layout.NEWTON_ITERATIONS, layout.newton_bits, "newton")
    cy = yield from engine.mul_trunc(c, [y[j] for j, _ in tri], F, layout.newton_bits, "newton")
    off = [i for i, (j, k) in enumerate(tri) if j < k]
    # sqrt(M_jj) 2**root_bits = (x y)_j 2**F 2**(t_j + COARSE - 1) is a multiple of the secret
    # granule g_j = 2**(t_j + COARSE - 1), whose trailing zeros would show t_j. The noise
    # U_j g_j / 2**F (U_j a PRSS value, each part uniform below 2**F) is uniform modulo g_j
    # to every party, which misses two parts, and below 3 g_j
    u = engine.random_bounded(d, F)
    last = yield from engine.mul(
        [cy[i] for i in off] + [cy[tri.index((j, j))] for j in range(d)] + u,
        [y[tri[i][1]] for i in off] + two_t + two_t,
        "newton",
    )
    n_off = len(off)
    truncated = yield from engine.trunc(last[:n_off] + last[n_off + d :], F, layout.output_bits, "newton")
    roots = yield from engine.reveal(engine.add(last[n_off : n_off + d], truncated[n_off:]), "sd")
    R = layout.root_bits
    constant = [r < 1 << (R - 1) for r in roots]  # M_jj >= 1 unless constant: root >= 2**R
    scale = math.sqrt(m * (m - 1))
    sds = [0.0 if const else float(Fraction(r, 1 << R)) / scale / (1 << f) for r, const in zip(roots, constant)]

    # every pair is opened, so the rounds do not depend on which columns are constant (the
    # SDs are opened to the recipients only); a pair with a constant column is noise, shown as None
    r_open = (yield from engine.reveal(truncated[:n_off], "correlation")) if n_off else []
    matrix: list[list[float | None]] = [[None if constant[j] or constant[k] else 1.0 for k in range(d)] for j in range(d)]
    for n, value in enumerate(r_open):
        j, k = tri[off[n]]
        if not (constant[j] or constant[k]):
            matrix[j][k] = matrix[k][j] = min(1.0, max(-1.0, value / float(1 << F)))
    summaries = tuple(ColumnSummary(name, m, mean, sd) for name, mean, sd in zip(columns, means, sds))
    return summaries, tuple(tuple(row) for row in matrix)


def _normalise(engine: Engine, diag: list[int], layout: DescribeLayout) -> Program[tuple[list[int], list[int]]]:
    """Program: shares of ``P_j = 2**(T - t_j)`` with ``M_jj P_j**2 / 4**T`` in ``[1/4, 1)``
    (up to the window's rounding, 1%) and of ``2**(t_j + COARSE - 1)``, both exact.

    A coarse search (one batch of wide comparisons with ``4**a``, ``a`` every ``COARSE``
    from ``T - COARSE`` down to ``[1, COARSE]``) scales ``M_jj`` exactly into
    ``[4**(T - COARSE), 4**T)``; a truncation keeps its top ``2 WINDOW`` bits, and
    :meth:`Engine.pow2_normalise` on those narrow values finds the last ``COARSE`` steps.
    For a constant column (``M_jj = 0``) ``t_j`` may reach ``1 - COARSE``.
    """
    p, T, c, W = engine.prime, layout.T, layout.COARSE, layout.WINDOW
    n = len(diag)
    levels = layout.coarse_levels
    top = len(levels)
    below = yield from engine.ltz(
        [(v - (1 << 2 * a)) % p for a in levels for v in diag], layout.normalise_bits, "normalise"
    )

    def pick(g: Callable[[int], int]) -> list[int]:
        """Shares of ``g(J_j)``, ``J_j`` the number of levels ``M_jj`` reaches (the bits are
        monotone, so the sum telescopes)."""
        return [(g(top) + sum(below[i * n + q] * (g(i) - g(i + 1)) for i in range(top))) % p for q in range(n)]

    scaled = yield from engine.mul(diag, pick(lambda J: 1 << 2 * c * (top - J)), "normalise")
    window = yield from engine.trunc_fast(scaled, *layout.window, "normalise")  # [4**(W - c), 4**W)
    fine, fine_inv = yield from engine.pow2_normalise(
        window, 0, 2 * (W - c), 2 * W, 2, layout.window_bits, W, "normalise"
    )  # 2**(c - 1 - J'), 2**(2W - c + 1 + J')
    coarse = pick(lambda J: 1 << c * (top - J)) + pick(lambda J: 1 << T - c * (top - J))
    both = yield from engine.mul(coarse, fine + fine_inv, "normalise")
    return both[:n], engine.scale(both[n:], pow(1 << (2 * W - c + 1), -1, p))


def _counts(
    engine: Engine, counts: list[int], categorical: Mapping[str, Sequence[Hashable]], min_cell: int, bits: int,
    residual: bool,
) -> Program[dict[str, tuple[LevelCount, ...]]]:
    """Program: the counts of every level under the small-cell and complement rules.

    The small-cell bits are opened (label ``small_cell``); they steer which counts are
    opened, so they reach every compute party. With ``residual``, the last level's bit is
    ``[1 <= count < min_cell]``: an empty residual (every value has a declared code) is
    shown as 0 and needs no complement. The complement of a column with exactly one small
    level is chosen by a public rule, the next level in declared order that is not small
    (after the last level comes the first; the residual only when no declared level will
    do), so no further bit is opened; the counts are then opened in one reveal (label
    ``count``), 0 where suppressed.
    """
    p = engine.prime
    if not counts:
        return {name: () for name in categorical}
    groups: list[list[int]] = []  # the positions of each column's levels in `counts`
    start = 0
    for levels in categorical.values():
        groups.append(list(range(start, start + len(levels))))
        start += len(levels)
    residuals = [group[-1] for group in groups] if residual else []
    # [count < min_cell] per level and, in the same batch, [count < 1] per residual level
    compared = yield from engine.ltz(
        [(v - min_cell) % p for v in counts] + [(counts[q] - 1) % p for q in residuals], bits, "small_cell"
    )
    small_bits = compared[: len(counts)]
    for q, empty in zip(residuals, compared[len(counts) :]):
        # a residual level is small only when it is not empty: [1 <= count < min_cell]
        small_bits[q] = (small_bits[q] - empty) % p
    small = yield from engine.reveal(small_bits, "small_cell")
    reason: list[Literal["small", "complement"] | None] = ["small" if bit else None for bit in small]
    for group in groups:
        flagged = [i for i, q in enumerate(group) if small[q]]
        if residual and len(flagged) == 2 and flagged[-1] == len(group) - 1:
            # the last level counts the values outside the others (the plan's 'other'); it is
            # often empty, and whoever knows the code list may assume so: it hides nothing
            flagged = flagged[:1]
        if len(flagged) == 1:
            after = [group[(flagged[0] + step) % len(group)] for step in range(1, len(group))]
            candidates = [q for q in after if not small[q]]
            if residual:
                # not the residual level while a declared one will do: its bit is 0 both when
                # it is large and when it is empty (shown as 0), and an empty one protects nothing
                candidates = [q for q in candidates if q != group[-1]] or candidates
            if candidates:
                reason[candidates[0]] = "complement"
    shown = [(v if why is None else 0) for v, why in zip(counts, reason)]
    opened = yield from engine.reveal(shown, "count")
    return {
        name: tuple(
            LevelCount(level, opened[q] if reason[q] is None else None, reason[q])  # type: ignore[arg-type]
            for level, q in zip(levels, group)
        )
        for (name, levels), group in zip(categorical.items(), groups)
    }
