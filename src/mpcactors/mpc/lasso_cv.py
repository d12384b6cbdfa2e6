"""Step 8 with the penalty chosen by K-fold cross-validation, as one batched computation.

For public ``alphas`` and ``folds = K`` this fits, in the same rounds (``lasso.solve_batch``):
``Lasso(alpha)`` on every fold's training rows for every alpha, and on all rows for every
alpha. Folds are scikit-learn's ``KFold(n_splits=K, shuffle=False)`` over the row order,
which is the TTP's random order: no party can link a position to a person.

* **Grams** (``docs/lasso.md``, "Cross-validation"): each party computes the local Gram
  products of each fold's rows; one reshare of all ``K`` of them gives every dataset:
  all rows (their sum), fold k's training rows (the sum minus fold k) and fold k's
  validation rows. Every training set is centred and preconditioned on its own rows.
* **Validation error** without anything m-sized per alpha: for training fold k with
  solution ``gamma`` (solved units), the validation MSE is the quadratic form
  ``(-gamma, 1)^T (C_V + D D^T) (-gamma, 1)`` where ``C_V`` is the validation rows'
  covariance and ``D`` the difference of the validation and training means, both in
  fold k's solved units; it is brought to raw units by the secret power of two
  ``1 / rho_y^2`` and, like the coefficients, gets secret noise below one granule so
  its trailing bits do not show that power of two.
* **Openings**: one convergence bit per check for all problems together, the sum over
  folds of the validation MSE per alpha (``"cv_error"``; the mean is that divided by the
  public K), and the all-rows model at the chosen alpha (``"result"``, as
  :func:`~mpcactors.mpc.lasso.lasso_fit`). The choice is public (argmin of the opened
  errors), so the chosen alpha's all-rows problem is selected by a public index.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..crypto.fixedpoint import LASSO_TOL, LassoLayout
from ..errors import ConfigError
from .engine import Engine, Program
from .lasso import (
    CHECK_EVERY,
    F_OUT,
    ITER_FRAC_BITS,
    Batch,
    LassoResult,
    check_arguments,
    model_outputs,
    solve_batch,
)

__all__ = ["CONTROL", "CVLayout", "LassoCVResult", "cv_openings", "fold_bounds", "lasso_cv_fit"]


@dataclass(frozen=True)
class LassoCVResult:
    """The revealed outputs of a cross-validated lasso (identical at all three parties).

    Attributes:
        alphas: the candidate penalties, in the order given.
        cv_error: per alpha, the mean over the folds of the validation mean squared error
            (scikit-learn's ``LassoCV.mse_path_.mean(axis=1)`` for the same folds).
        alpha: the chosen penalty: the smallest ``cv_error``; on a tie the larger alpha.
        model: the fit on all rows at ``alpha``.
    """

    alphas: tuple[float, ...]
    cv_error: tuple[float, ...]
    alpha: float
    model: LassoResult


#: The openings every compute party must see: the convergence bits steer the loop, and the
#: validation errors choose the model whose shares all three then open.
CONTROL = frozenset({"converged", "cv_error"})


def fold_bounds(m: int, folds: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` row range of each validation fold: scikit-learn's
    ``KFold(n_splits=folds, shuffle=False)`` (the first ``m % folds`` folds one row longer)."""
    bounds, start = [], 0
    for k in range(folds):
        size = m // folds + (1 if k < m % folds else 0)
        bounds.append((start, start + size))
        start += size
    return bounds


def cv_openings(
    d: int, n_alphas: int, *, max_iter: int, check_every: int = CHECK_EVERY
) -> tuple[tuple[str, tuple[int, ...], str | None, int], ...]:
    """What :func:`lasso_cv_fit` can open, in order: ``(output, shape, reveal label or None
    if derived in public, number of reveals)``.

    ``converged``: one bit per check, at most ``ceil(max_iter / check_every)`` reveals;
    ``cv_error``: one value per alpha (the sum over folds; the mean follows from the
    public K); ``alpha`` follows from those; ``coefficients``, ``intercept`` and ``r2`` of
    the final model in one reveal; ``iterations`` follows from the bits.
    """
    checks = math.ceil(max_iter / check_every)
    return (
        ("converged", (checks,), "converged", checks),
        ("cv_error", (n_alphas,), "cv_error", 1),
        ("alpha", (), None, 1),
        ("coefficients", (d,), "result", 1),
        ("intercept", (), "result", 1),
        ("r2", (), "result", 1),
        ("iterations", (), None, 1),
    )


class CVLayout(LassoLayout):
    """:class:`LassoLayout` for several alphas at once, plus the validation-error widths.

    The one-off widths are those of the largest alpha, except the encoding of alpha in
    the thresholds, which takes the smallest alpha's fractional bits (so every alpha keeps
    ``ALPHA_BITS`` significant bits) and widens that truncation by the alphas' spread.
    The training datasets have at most ``rows`` rows, so the centring widths cover them.
    Two documented assumptions (checking them would reveal something), in the solved
    units of a training fold, where the training target's variance is in ``[1/4, 1)``:
    every validation covariance entry is below ``2**VALIDATION_BITS``, and the validation
    MSE is below ``2**MSE_BITS``.
    """

    VALIDATION_BITS = 8
    MSE_BITS = 16

    def __init__(
        self, params: Any, *, rows: int, columns: int, alphas: Sequence[float], tol: float, target_scaled: bool,
        folds: int,
    ) -> None:
        super().__init__(params, rows=rows, columns=columns, alpha=max(alphas), tol=tol, target_scaled=target_scaled)
        small = LassoLayout(params, rows=rows, columns=columns, alpha=min(alphas), tol=tol, target_scaled=target_scaled)
        self._small = [small]  # checked too (a list: every tuple attribute is a truncation)
        I = params.int_bits
        FI, OUT, B, logd = self.ITER_FRAC_BITS, self.OUT_FRAC_BITS, self.COEF_BITS, self.logd
        V, X = self.VALIDATION_BITS, self.MSE_BITS
        spread = math.ceil(math.log2(max(alphas))) - math.ceil(math.log2(min(alphas)))
        self.alpha_frac = small.alpha_frac
        self.theta = (self.alpha_frac, FI + self.ALPHA_BITS + 6 + spread)
        # validation entries share the training entries' truncation, with headroom
        self.g_hat = (self.g_hat[0], self.g_hat[1] + V)
        smax = max(self.smax_x, self.smax_y)
        #: C_V gamma (d values) and the mean difference (1 value) per problem, 2FI bits
        self.cv_h = (FI, max(V + B + logd + 2, smax + B + logd + 4) + 2 * FI)
        self.cv_mse = (FI, X + 2 * FI + 2)
        #: 1 / rho_y^2 = r_y^2 / 2**(2 RB) is in [2**-(2 lrho), 2**(2 I + 2)]: kept exact
        #: with gain_frac fractional bits for the error, noise_frac for the noise
        RB = self.r_y_frac
        self.gain_frac = max(2 * self.lrho, OUT - FI + 1)
        self.noise_frac = OUT - FI
        self.cv_gain = (2 * RB - self.gain_frac, 2 * RB + 2 * I + 4)
        self.cv_gain_noise = (2 * RB - self.noise_frac, 2 * RB + 2 * I + 4)
        self.cv_error = (FI + self.gain_frac - OUT, X + FI + 2 * I + self.gain_frac + 4)
        self.cv_noise = (self.NOISE_BITS, self.NOISE_BITS + 2 * I + self.noise_frac + 5)
        #: the comparison that joins every problem's convergence bit (solve_batch)
        self.all_converged = ((folds + 1) * len(alphas)).bit_length() + 1

    def operations(self) -> Iterator[tuple[str, str, int | None, int]]:
        yield from super().operations()
        yield "all_converged", "ltz", None, self.all_converged

    def check(self, blame: str = "") -> None:
        for single in self._small:
            single.check(blame)
        super().check(blame)
        # the noise (NOISE_BITS below one granule) must reach below the output resolution:
        # a granule is at most 2**(OUT - FI + 2 I + 2) output units
        top = self.OUT_FRAC_BITS - self.ITER_FRAC_BITS + 2 * self.params.int_bits + 2
        if self.NOISE_BITS <= top:
            raise ConfigError(
                f"parameter int_bits = {self.params.int_bits} is too large for the cross-validated lasso: "
                f"its error noise has {self.NOISE_BITS} bits and needs more than {top}"
            )


def lasso_cv_fit(
    engine: Engine,
    x: Sequence[Sequence[int]],
    y: Sequence[int],
    *,
    m: int,
    d: int,
    owners: Sequence[int],
    scales: Mapping[int, float],
    alphas: Sequence[float],
    folds: int,
    max_iter: int = 1000,
    target_owner: int | None = None,
    dealt: Mapping[int, int] | None = None,
    check_every: int = CHECK_EVERY,
    tol: float = LASSO_TOL,
    restart_every: int = 50,
) -> Program[LassoCVResult]:
    """Program: choose ``alpha`` among ``alphas`` by ``folds``-fold cross-validation and fit it.

    The arguments are :func:`~mpcactors.mpc.lasso.lasso_fit`'s (read its docstring), with
    ``alphas`` (public, distinct, each in ``[2**-frac_bits, 2**int_bits)``) instead of
    ``alpha``, and ``folds`` (``K >= 2``; every training set needs at least 4 rows). Fold
    ``k`` is rows ``fold_bounds(m, K)[k]`` of the shared row order.

    The whole alpha x fold grid and the all-rows fit of every alpha run as one batched
    FISTA (one convergence bit for all of them per check; ``max_iter`` caps them all), so
    the round count is about one :func:`lasso_fit`'s. Opens what :func:`cv_openings`
    lists and nothing else.

    Returns:
        :class:`LassoCVResult`; ``model.iterations`` and ``model.converged`` are those of
        the batch (every problem passed its stopping test at that check).
    """
    params = engine.params
    f, I = params.frac_bits, params.int_bits
    check_arguments(params, x, y, m=m, d=d, owners=owners, dealt=dealt, target_owner=target_owner,
                    max_iter=max_iter, tol=tol, check_every=check_every, restart_every=restart_every)
    alphas = tuple(float(a) for a in alphas)
    if not alphas or any(not (2.0**-f <= a < 2.0**I) for a in alphas):
        raise ConfigError(f"alphas must be one or more penalties in [2**-{f}, 2**{I})")
    if len(set(alphas)) != len(alphas):
        raise ConfigError("alphas must be distinct")
    if not isinstance(folds, int) or folds < 2 or m - math.ceil(m / folds) < 4:
        raise ConfigError(f"folds must be at least 2 and leave at least 4 training rows (m = {m}), got {folds!r}")
    L = CVLayout(params, rows=m, columns=d, alphas=alphas, tol=tol, target_scaled=target_owner is not None,
                 folds=folds)
    L.check(blame=f"tol = {tol} with {d} columns")
    bounds = fold_bounds(m, folds)
    everything = tuple(range(folds))
    fits = [everything] + [tuple(c for c in everything if c != k) for k in range(folds)]
    extras = [((k,), 1 + k) for k in range(folds)]
    batch = yield from solve_batch(
        engine, L, x, y, m=m, d=d, owners=owners, scales=scales, alphas=alphas, chunks=bounds, fits=fits,
        extras=extras, max_iter=max_iter, tol=tol, check_every=check_every, restart_every=restart_every,
        target_owner=target_owner, dealt=dealt,
    )
    totals = yield from _validation_errors(engine, L, batch, len(alphas), folds)
    opened = yield from engine.reveal(totals, "cv_error")
    cv_error = tuple(v / float(2**F_OUT) / folds for v in opened)
    # argmin; on a tie the larger alpha (the sparser model)
    best = min(range(len(alphas)), key=lambda a: (opened[a], -alphas[a]))
    model = yield from model_outputs(engine, L, batch, problem=best * batch.n_fits)
    return LassoCVResult(alphas=alphas, cv_error=cv_error, alpha=alphas[best], model=model)


def _validation_errors(engine: Engine, L: CVLayout, batch: Batch, n_alphas: int, folds: int) -> Program[list[int]]:
    """Program: per alpha, shares of the sum over folds of the validation MSE (raw units,
    ``F_OUT`` fractional bits, with granularity noise)."""
    p, d = engine.prime, batch.d
    FI = ITER_FRAC_BITS
    one = 1 << FI
    grid = [(a, k) for a in range(n_alphas) for k in range(folds)]
    fit = [1 + k for _, k in grid]  # training fold k is fit 1 + k; its validation rows extra k
    val = [batch.n_fits + k for _, k in grid]
    gammas = [batch.gamma[a * batch.n_fits + 1 + k] for a, k in grid]
    mean_diff = [engine.sub(batch.mean_hat[v], batch.mean_hat[t]) for v, t in zip(val, fit)]  # FI bits
    # round 1: h = C_V[x, x] gamma and D_x . gamma per problem; r_y = (1 / rho_y) 2**RB per fold
    pairs = []
    for gamma, v, diff in zip(gammas, val, mean_diff):
        pairs += [([batch.G(v, j, k) for k in range(d)], gamma) for j in range(d)]
        pairs.append((diff[:d], gamma))
    pairs += [([batch.v_y], [batch.s_inv_y[1 + k]]) for k in range(folds)]
    raw = yield from engine.dot(pairs, "cv")
    size = len(grid) * (d + 1)
    r_y = raw[size:]
    for q, diff in enumerate(mean_diff):
        i = q * (d + 1) + d
        raw[i] = (diff[d] * one - raw[i]) % p  # D_y - D_x . gamma, 2 FI bits
    h = yield from engine.trunc(raw[:size], *L.cv_h, "cv")
    # round 2: mse = gamma^T C_V gamma - 2 gamma^T C_V[x, y] + C_V[y, y] + (D_y - D_x . gamma)^2
    pairs = []
    for q, (gamma, v) in enumerate(zip(gammas, val)):
        hq = h[q * (d + 1) : (q + 1) * (d + 1)]
        pairs.append((gamma + [hq[d]], [(hq[j] - 2 * batch.G(v, j, d)) % p for j in range(d)] + [hq[d]]))
    pairs += [([r], [r]) for r in r_y]
    raw = yield from engine.dot(pairs, "cv")
    mse_raw = [(x + batch.G(v, d, d) * one) % p for x, v in zip(raw[: len(grid)], val)]
    mse = yield from engine.trunc(mse_raw, *L.cv_mse, "cv")  # solved units, FI bits
    gain = yield from engine.trunc(raw[len(grid) :], *L.cv_gain, "cv")  # 1 / rho_y^2, gain_frac bits
    gain_noise = yield from engine.trunc(raw[len(grid) :], *L.cv_gain_noise, "cv")
    # a granule of the error is 2**-FI / rho_y^2; U / 2**NOISE_BITS is in [-1.5, 1.5) granules
    noise_u = engine.add_public(engine.random_bounded(len(grid), L.NOISE_BITS), -(3 << (L.NOISE_BITS - 1)))
    products = yield from engine.mul(
        mse + noise_u, [gain[k] for _, k in grid] + [gain_noise[k] for _, k in grid], "cv"
    )
    errors = yield from engine.trunc(products[: len(grid)], *L.cv_error, "cv")
    noise = yield from engine.trunc(products[len(grid) :], *L.cv_noise, "cv")
    noisy = engine.add(errors, noise)
    return [sum(noisy[a * folds : (a + 1) * folds]) % p for a in range(n_alphas)]
