"""Step 8: scikit-learn's lasso on 3-party Shamir shares, from the Gram matrix.

Objective (exactly ``sklearn.linear_model.Lasso(alpha)``, intercept fitted, raw features)::

    1/(2m) * ||y - X w - b||^2 + alpha * ||w||_1

Outline (``docs/lasso.md`` has the derivation, the bit budget and what is revealed):

1. **Gram** (communication independent of ``m``): with ``Z = [X | y]`` every party
   computes ``Z_i^T Z_i`` of its own shares locally (limb-split float64 BLAS, exact) and
   the column sums; one reshare turns the degree-2 products into shares of ``Z^T Z``.
2. **Exact centring** over the intersection: ``M = m Z^T Z - s s^T`` (``m`` is public),
   then divide by ``m^2`` (two truncations): the covariance matrix ``C``.
3. **Private preconditioning**: each column owner inputs ``2**(P - e_j)`` where
   ``2**e_j >= scale_j`` (its private max-abs value rounded up to a power of two); this
   brings every column into ``[-1, 1]``. Then a secure Jacobi scaling: one batch of
   comparisons finds the power of two ``s_j`` with ``var_j * s_j**2`` in ``[1/4, 1)``.
   All scale factors are secret powers of two, so scaling is exact.
4. **Step size** ``eta = 1 / ||G||_F`` (Newton inverse square root; ``||G||_F >= lambda_max``).
   One-off constants ``A = I - eta G``, ``c = eta b``, thresholds ``tau_j``.
5. **FISTA** with a public restart schedule: per iteration one dot-product round and a
   truncation for ``z = A v + c`` (the public momentum is folded into the same
   truncation), two exact comparisons per coordinate for the soft-threshold and one
   reshare. Every ``check_every`` iterations one bit ``[||dw|| < tol (||w|| + delta)]`` is
   revealed; the loop stops when it is 1 or at ``max_iter``.
6. **Outputs**: coefficients in raw units, the intercept, and R^2 (from the Gram
   quantities, with a Newton reciprocal). Nothing else is opened except masked values
   inside truncations and comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..crypto.fixedpoint import LASSO_MAX_COLUMNS, LASSO_TOL, LassoLayout
from ..errors import ConfigError
from .engine import Engine, Program

__all__ = ["CHECK_EVERY", "DEALT", "Batch", "LassoResult", "check_arguments", "lasso_fit", "local_gram", "model_outputs", "scale_inputs", "solve_batch"]

# The fixed-point layout (every width below) is crypto.fixedpoint.LassoLayout, which
# Params checks at construction; these are its constants under their local names.
COEF_BITS = LassoLayout.COEF_BITS
ITER_FRAC_BITS = LassoLayout.ITER_FRAC_BITS
MIN_SCALE_EXP = LassoLayout.MIN_SCALE_EXP
F_OUT = LassoLayout.OUT_FRAC_BITS
_DELTA = 1e-3
_BETA_BITS = LassoLayout.BETA_BITS
_NOISE_BITS = LassoLayout.NOISE_BITS


@dataclass(frozen=True)
class LassoResult:
    """The revealed outputs of step 8 (identical at all three parties)."""

    coefficients: tuple[float, ...]
    intercept: float
    r2: float
    iterations: int
    converged: bool


# ---------------------------------------------------------------------------------
# local Gram products
# ---------------------------------------------------------------------------------
_LIMB_BITS = 16
_LIMBS = 12  # 192-bit shares
_CHUNK_ROWS = 1 << 20  # 2**32 * 2**20 < 2**53: float64 sums of limb products stay exact


def local_gram(rows: Sequence[Sequence[int]], prime: int) -> tuple[list[list[int]], list[int]]:
    """``(Z^T Z mod p, column sums mod p)`` of a party's own share matrix ``Z`` (m x n).

    Shares are split into twelve 16-bit limbs held as float64; one BLAS product per
    chunk of ``2**20`` rows is exact (every partial sum stays below ``2**53``), and the
    limb products are recombined with Python integers. Returns the full symmetric matrix.
    """
    m = len(rows)
    n = len(rows[0]) if m else 0
    gram_limbs = np.zeros((n * _LIMBS, n * _LIMBS), dtype=np.int64)
    sum_limbs = np.zeros(n * _LIMBS, dtype=np.int64)
    for start in range(0, m, _CHUNK_ROWS):
        chunk = rows[start : start + _CHUNK_ROWS]
        raw = b"".join(v.to_bytes(24, "big") for row in chunk for v in row)
        limbs = np.frombuffer(raw, dtype=">u2").reshape(len(chunk), n * _LIMBS).astype(np.float64)
        gram_limbs += (limbs.T @ limbs).astype(np.int64)
        sum_limbs += limbs.sum(axis=0).astype(np.int64)
    weights = [1 << (_LIMB_BITS * (_LIMBS - 1 - a)) for a in range(_LIMBS)]
    rows_weighted = []
    for r in range(n * _LIMBS):
        line = gram_limbs[r].tolist()
        rows_weighted.append(
            [sum(w * x for w, x in zip(weights, line[k * _LIMBS : (k + 1) * _LIMBS])) for k in range(n)]
        )
    gram = [[0] * n for _ in range(n)]
    for j in range(n):
        for k in range(j, n):
            value = sum(weights[a] * rows_weighted[j * _LIMBS + a][k] for a in range(_LIMBS)) % prime
            gram[j][k] = gram[k][j] = value
    sums_list = sum_limbs.tolist()
    sums = [sum(w * x for w, x in zip(weights, sums_list[j * _LIMBS : (j + 1) * _LIMBS])) % prime for j in range(n)]
    return gram, sums


# ---------------------------------------------------------------------------------
# the program
# ---------------------------------------------------------------------------------
def _exponent(scale: float, low: int, high: int) -> int:
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ConfigError("a preconditioning scale must be a positive finite number")
    return min(max(math.ceil(math.log2(scale)), low), high)


#: Iterations between the lasso's convergence checks (one revealed bit each): the run's
#: schedule (step 8) and the plan's opening manifest both read it here.
CHECK_EVERY = 5

#: ``owners`` entry for a column whose owner computes outside the engine and dealt its
#: scale input in step 7 (see ``dealt`` in :func:`lasso_fit`).
DEALT = 0


def scale_inputs(params: Any, scales: Mapping[int, float], d: int) -> dict[int, int]:
    """The integers an owner inputs for its private scales (key ``j`` of ``scales``, the
    target under ``d``): ``2**(int_bits - e_j)`` under key ``j`` for every column, and for
    the target also ``2**(8 + e_y)`` under key ``d + 1``."""
    I = params.int_bits
    out = {j: 1 << (I - _exponent(s, MIN_SCALE_EXP, I)) for j, s in scales.items()}
    if d in scales:
        out[d + 1] = 1 << (8 + _exponent(scales[d], MIN_SCALE_EXP, I))
    return out


def lasso_fit(
    engine: Engine,
    x: Sequence[Sequence[int]],
    y: Sequence[int],
    *,
    m: int,
    d: int,
    owners: Sequence[int],
    scales: Mapping[int, float],
    alpha: float,
    max_iter: int = 1000,
    tol: float = LASSO_TOL,
    check_every: int = CHECK_EVERY,
    restart_every: int = 50,
    target_owner: int | None = None,
    dealt: Mapping[int, int] | None = None,
) -> Program[LassoResult]:
    """Program: fit ``Lasso(alpha)`` with intercept on shared data; every party gets the result.

    Args:
        engine: this party's engine, after :meth:`Engine.setup`.
        x: this party's shares of the fixed-point encoded features (``params.frac_bits``
            fractional bits, ``|x| < 2**int_bits``), ``m`` rows of ``d`` field elements.
        y: this party's shares of the encoded target, length ``m``.
        m, d: the public sizes (``d <= LASSO_MAX_COLUMNS``).
        owners: the party (1 or 2) owning each feature column (public).
        scales: this party's private preconditioning scale for every column it owns
            (column index -> a bound on the column's absolute values, e.g. its max-abs
            value over its whole local table), and, if this party is ``target_owner``, the
            target's under key ``d``. Scales are rounded up to powers of two and clamped to
            ``[2**-8, 2**int_bits]``; they are input as secret shares and never revealed.
        alpha: scikit-learn's ``alpha`` (public), ``2**-frac_bits <= alpha < 2**int_bits``.
        max_iter: iteration cap (the result says ``converged=False`` if it is reached).
        tol: relative tolerance of the stopping test
            ``||w_k - w_(k-c)|| < tol (||w_(k-c)|| + 1e-3)`` with ``c = check_every``, in the
            preconditioned units (one revealed bit per check). ``tol`` below about ``1e-7``
            exceeds the comparison's bit budget (:class:`ConfigError` before any round).
        restart_every: FISTA momentum restart period (a public schedule).
        target_owner: the party owning the target, if it supplies a scale for it;
            otherwise the target is normalised from the public bound ``2**int_bits``.
        dealt: this party's shares of the scale inputs (:func:`scale_inputs`, same keys)
            of the columns whose owner is :data:`DEALT` (a data party outside the three
            compute parties, which dealt them in step 7), with the target's (keys ``d``
            and ``d + 1``) if ``target_owner`` is :data:`DEALT`.

    Returns:
        :class:`LassoResult`: coefficients in raw feature units, intercept, R^2, the
        number of iterations and whether the stopping test passed.
    """
    params = engine.params
    f, I = params.frac_bits, params.int_bits
    check_arguments(params, x, y, m=m, d=d, owners=owners, dealt=dealt, target_owner=target_owner,
                    max_iter=max_iter, tol=tol, check_every=check_every, restart_every=restart_every)
    if not (2.0**-f <= alpha < 2.0**I):
        raise ConfigError(f"alpha must be in [2**-{f}, 2**{I})")
    L = params.lasso_layout(rows=m, columns=d, alpha=alpha, tol=tol, target_scaled=target_owner is not None)
    L.check(blame=f"tol = {tol} with {d} columns")  # Params guarantees everything else
    batch = yield from solve_batch(
        engine, L, x, y, m=m, d=d, owners=owners, scales=scales, alphas=[alpha], chunks=[(0, m)],
        fits=[(0,)], extras=[], max_iter=max_iter, tol=tol, check_every=check_every,
        restart_every=restart_every, target_owner=target_owner, dealt=dealt,
    )
    return (yield from model_outputs(engine, L, batch, problem=0))


def check_arguments(
    params: Any, x: Sequence[Sequence[int]], y: Sequence[int], *, m: int, d: int, owners: Sequence[int],
    dealt: Mapping[int, int] | None, target_owner: int | None, max_iter: int, tol: float, check_every: int,
    restart_every: int,
) -> None:
    """The checks :func:`lasso_fit` and the cross-validated lasso share (before any round)."""
    if len(owners) != d or any(o not in (DEALT, 1, 2, 3) for o in owners):
        raise ConfigError("owners must name a party (1, 2 or 3, or DEALT) for every feature column")
    expected_dealt = {j for j in range(d) if owners[j] == DEALT} | ({d, d + 1} if target_owner == DEALT else set())
    if set(dealt or {}) != expected_dealt:
        raise ConfigError("dealt scale shares must be given for exactly the columns owned outside the engine")
    if m < 4 or m > params.max_rows:
        raise ConfigError(f"the intersection size must be in [4, max_rows={params.max_rows}]")
    if len(x) != m or len(y) != m or any(len(row) != d for row in x):
        raise ValueError("x must be m rows of d shares and y must have m shares")
    if max_iter < 1 or check_every < 1 or restart_every < 1 or not 0 < tol < 1:
        raise ConfigError("max_iter, check_every and restart_every must be positive and 0 < tol < 1")
    if not 1 <= d <= LASSO_MAX_COLUMNS:
        raise ConfigError(f"the lasso takes 1 to {LASSO_MAX_COLUMNS} feature columns, got {d}")
    if target_owner is not None and target_owner not in (DEALT, 1, 2, 3):
        raise ConfigError("target_owner must be 1, 2 or 3, or DEALT")


@dataclass
class Batch:
    """The secret state a batched solve leaves for the outputs (shares; internal to step 8).

    Datasets are the fits (each solved, with its own preconditioning), then the extras
    (scaled like the fit they are paired with, not solved). Problems are alpha-major:
    problem ``a * len(fits) + F`` is alpha ``a`` on fit ``F``.
    """

    d: int
    n_fits: int
    #: per dataset: the upper triangle of the preconditioned covariance, FI fractional bits
    entries: list[dict[tuple[int, int], int]]
    #: per dataset: the column means in the solved units (FI fractional bits)
    mean_hat: list[list[int]]
    #: per fit: sigma_j 2**(Ps + SB) for the features and rho_y last (exact)
    sig: list[list[int]]
    #: per fit: 2**SB / s_y (exact)
    s_inv_y: list[int]
    #: 2**(8 + e_y): the target's scale D_y with 8 fractional bits
    v_y: int
    #: per problem: the solution in the solved units (FI fractional bits)
    gamma: list[list[int]]
    #: per problem: the last soft-threshold bits ([z > tau] then [z < -tau], d each)
    last_bits: list[list[int]]
    iterations: int
    converged: bool

    def G(self, dataset: int, j: int, k: int) -> int:
        return self.entries[dataset][(j, k) if j <= k else (k, j)]


def solve_batch(
    engine: Engine,
    L: LassoLayout,
    x: Sequence[Sequence[int]],
    y: Sequence[int],
    *,
    m: int,
    d: int,
    owners: Sequence[int],
    scales: Mapping[int, float],
    alphas: Sequence[float],
    chunks: Sequence[tuple[int, int]],
    fits: Sequence[tuple[int, ...]],
    extras: Sequence[tuple[tuple[int, ...], int]],
    max_iter: int,
    tol: float,
    check_every: int,
    restart_every: int,
    target_owner: int | None,
    dealt: Mapping[int, int] | None,
) -> Program[Batch]:
    """Program: steps 1-7 of the module docstring for several lasso problems in the same rounds.

    The rows are cut into ``chunks`` (row ranges); a dataset is a set of chunk indices, its
    Gram matrix the sum of theirs (one reshare for all chunks). Every fit dataset gets its
    own centring, preconditioning, step size, and for every alpha its own thresholds and
    FISTA iterate; the extras (dataset, fit index) are centred and scaled with that fit's
    powers of two. All vectors of one step go through the same engine calls, so the round
    count is that of one problem (plus one small comparison per check when there are
    several problems: the revealed bit says that *every* problem passed its test). ``L``
    must cover every alpha (:func:`lasso_fit` passes the layout of its one alpha).
    """
    params = engine.params
    I, p = params.int_bits, engine.prime
    me = engine.party
    n = d + 1
    B = COEF_BITS
    n_fits = len(fits)
    datasets = list(fits) + [chunk_set for chunk_set, _ in extras]
    fit_of = list(range(n_fits)) + [fit for _, fit in extras]
    n_sets = len(datasets)
    problems = [(a, fit) for a in range(len(alphas)) for fit in range(n_fits)]
    n_problems = len(problems)
    # owner scales are input as 2**(Ps - e_j) with Ps = int_bits (integers >= 1; scale_inputs)

    # ---- 1. private scales: each owner inputs its columns' 2**(Ps - e) --------------------
    u = [0] * n  # shares of 2**(Ps - e_j); column d is the target
    v_y = 0  # shares of 2**(8 + e_y): D_y with 8 fractional bits
    owned_by = {o: [j for j in range(d) if owners[j] == o] for o in (1, 2, 3)}
    if target_owner is not None and target_owner != DEALT:
        owned_by[target_owner].append(d)
    for j, share in (dealt or {}).items():
        if j == d + 1:
            v_y = share
        else:
            u[j] = share
    for owner in (1, 2, 3):
        cols = owned_by[owner]
        if not cols:
            continue
        values = None
        if me == owner:
            missing = [j for j in cols if j not in scales]
            if missing:
                raise ConfigError(f"party {me} owns column {missing[0]} but passed no scale for it")
            inputs = scale_inputs(params, {j: scales[j] for j in cols}, d)
            values = [inputs[j] for j in cols] + ([inputs[d + 1]] if d in cols else [])
        count = len(cols) + (1 if d in cols else 0)
        shared = yield from engine.input(owner, values, count, "scales")
        for j, share in zip(cols, shared):
            u[j] = share
        if d in cols:
            v_y = shared[-1]
    if target_owner is None:
        u[d] = 1  # D_y = 2**I, public
        v_y = 1 << (8 + I)

    # ---- 2. Gram products of every chunk, one reshare; exact centring of every dataset -------
    tri = [(j, k) for j in range(n) for k in range(j, n)]
    T = len(tri)
    chunk_grams: list[int] = []
    chunk_sums = []
    for start, stop in chunks:
        rows = [list(row) + [yv] for row, yv in zip(x[start:stop], y[start:stop])]
        gram_local, local_sums = local_gram(rows, p)
        del rows
        chunk_grams.extend(gram_local[j][k] for j, k in tri)
        chunk_sums.append(local_sums)
    reshared = yield from engine.reshare(chunk_grams, "gram")
    sizes = [sum(chunks[c][1] - chunks[c][0] for c in chunk_set) for chunk_set in datasets]
    grams = [[sum(reshared[c * T + i] for c in chunk_set) % p for i in range(T)] for chunk_set in datasets]
    sums = [[sum(chunk_sums[c][j] for c in chunk_set) % p for j in range(n)] for chunk_set in datasets]
    outer = yield from engine.mul(
        [s[j] for s in sums for j, _ in tri], [s[k] for s in sums for _, k in tri], "centre"
    )
    # m_D^2 cov(j, k) 2^(2f), exact
    centred = [(sizes[D] * grams[D][i] - outer[D * T + i]) % p for D in range(n_sets) for i in range(T)]
    e = L.e  # every dataset has at most m rows, so the widths for m cover it
    t1 = L.centre[0]
    # trunc_fast (no random bits) for the two truncations whose width depends on m, so the
    # communication of the whole program does not depend on m at all
    c1 = yield from engine.trunc_fast(centred, *L.centre, "centre")
    Q = L.covariance[0]
    c_m = [round(2 ** (t1 + Q) / (sizes[D] * sizes[D])) for D in range(n_sets) for _ in range(T)]
    cov = yield from engine.trunc(engine.scale(c1, c_m), *L.covariance, "centre")  # cov 2^(2f)

    # ---- 3. owner scaling (exact powers of two), then the means ------------------------
    FG = LassoLayout.SCALED_FRAC_BITS
    scaled1 = yield from engine.mul(
        [v for D in range(n_sets) for v in cov[D * T : (D + 1) * T] + sums[D]],
        ([u[j] for j, _ in tri] + u) * n_sets, "scale",
    )
    g_tilde = yield from engine.mul_trunc(
        [v for D in range(n_sets) for v in scaled1[D * (T + n) : D * (T + n) + T]],
        [u[k] for _, k in tri] * n_sets, *L.owner_scale, "scale",
    )
    c_mean = [round(2 ** (e + LassoLayout.MEAN_BITS) / sizes[D]) for D in range(n_sets) for _ in range(n)]
    mean_tilde = yield from engine.trunc_fast(
        engine.scale([v for D in range(n_sets) for v in scaled1[D * (T + n) + T : (D + 1) * (T + n)]], c_mean),
        *L.means, "scale",
    )  # mean of the owner-scaled column, FG fractional bits

    # ---- 4. Jacobi: powers of two s_j with var_j s_j^2 in [1/4, 1) (per fit) ---------------
    SB = params.frac_bits  # s and 1/s are represented with f fractional bits (exact)
    diag_index = [tri.index((j, j)) for j in range(n)]
    diag = [[g_tilde[F * T + i] for i in diag_index] for F in range(n_fits)]
    s_x, _ = yield from engine.pow2_normalise(
        [v for dg in diag for v in dg[:d]], FG, LassoLayout.JACOBI_LO, 2, 2, L.jacobi, SB, "jacobi"
    )
    s_y, s_y_inv = yield from engine.pow2_normalise(
        [dg[d] for dg in diag], FG, L.target_lo, 2, 2, L.jacobi, SB, "jacobi"
    )
    s = [s_x[F * d : (F + 1) * d] + [s_y[F]] for F in range(n_fits)]
    # s_j <= 2**L.smax_x (2**L.smax_y for the target); real bounds (log2) of
    # sigma_j = s_j / D_j and rho_y = s_y / D_y: L.lsig and L.lrho
    t3 = yield from engine.mul(
        [v for D in range(n_sets) for v in g_tilde[D * T : (D + 1) * T] + mean_tilde[D * n : (D + 1) * n]],
        [v for D in range(n_sets) for v in [s[fit_of[D]][j] for j, _ in tri] + s[fit_of[D]]], "jacobi",
    )
    FI = ITER_FRAC_BITS
    one = 1 << FI
    g_hat = yield from engine.mul_trunc(
        [v for D in range(n_sets) for v in t3[D * (T + n) : D * (T + n) + T]],
        [s[fit_of[D]][k] for D in range(n_sets) for _, k in tri], *L.g_hat, "jacobi",
    )  # FI bits, |.| <= 1 for the fits
    mean_hat = yield from engine.trunc(
        [v for D in range(n_sets) for v in t3[D * (T + n) + T : (D + 1) * (T + n)]], *L.mean_hat, "jacobi"
    )  # |.| <= s
    entries = [{jk: g_hat[D * T + i] for i, jk in enumerate(tri)} for D in range(n_sets)]

    def G(F: int, j: int, k: int) -> int:
        return entries[F][(j, k) if j <= k else (k, j)]

    # ---- random bits for the comparisons of 6. and the first iteration of 7. -----------------
    joining_pairs = (n_problems.bit_length() + 1) // 2 if n_problems > 1 else 0

    def check_pairs(k: int) -> int:
        """Pairs of random bits the check after iteration ``k`` draws (public; 0 if none)."""
        return n_problems * (L.check_bits // 2) + joining_pairs if k % check_every == 0 or k == max_iter else 0

    def pairs_needed(k: int) -> int:
        """Pairs of random bits iteration ``k`` of the loop below, and its check, draw (public):
        ltz on k-bit values draws ceil((k - 1) / 2) pairs."""
        return 2 * d * n_problems * (L.soft // 2) + check_pairs(k)

    tau_pairs = n_problems * d * (L.q_clamp // 2 + L.tau_clamp // 2)

    # ---- 5. step size eta = 1 / ||G||_F (>= 1 / lambda_max), per fit -----------------------
    feature_tri = [(j, k) for j, k in tri if k < d]
    fro2 = yield from engine.dot_trunc(
        [([G(F, j, k) * (1 if j == k else 2) % p for j, k in feature_tri], [G(F, j, k) for j, k in feature_tri])
         for F in range(n_fits)], *L.frobenius, "step",
    )
    # ||G||_F^2 is in [d/16, d^2]: the diagonal is in [1/4, 1)
    y0, _ = yield from engine.pow2_normalise(fro2, FI, LassoLayout.STEP_LO, L.step_hi, 2, L.step_search, FI, "step")
    # the bits of the thresholds' and the first iteration's comparisons ride along
    eta, _ = yield from engine.together(
        engine.inv_sqrt(fro2, y0, FI, 6, L.step_newton, "step"), engine.prefetch_bits(0, tau_pairs + pairs_needed(1))
    )
    block = d * d + d
    a_off = yield from engine.mul_trunc(
        [eta[F] for F in range(n_fits) for _ in range(block)],
        [v for F in range(n_fits)
         for v in [G(F, j, k) for j in range(d) for k in range(d)] + [G(F, j, d) for j in range(d)]],
        *L.step_matrix, "step",
    )
    A = [[[((one if j == k else 0) - a_off[F * block + j * d + k]) % p for k in range(d)] for j in range(d)]
         for F in range(n_fits)]
    c_vec = [a_off[F * block + d * d : (F + 1) * block] for F in range(n_fits)]

    # ---- 6. thresholds tau_j = eta * alpha * sigma_j * rho_y, clamped to 2**B, per problem --
    # sigma_j = u_j s_j / 2**Ps and rho_y = u_y s_y / 2**Ps are exact powers of two
    sig_flat = yield from engine.mul(u * n_fits, [v for sf in s for v in sf], "tau")
    sig = [sig_flat[F * n : (F + 1) * n] for F in range(n_fits)]  # sigma * 2**(Ps + SB), rho_y last
    # q_raw = sigma_j rho_y 2**(2Ps + 2SB), exact; |sigma_j rho_y| < 2**L.sig_bits (real)
    FQ = L.q_frac  # so that eta * alpha * (error of q) stays below 2**-FI
    q = yield from engine.mul_trunc(
        [v for sf in sig for v in sf[:d]], [sf[d] for sf in sig for _ in range(d)], *L.q, "tau"
    )
    # where q > 2**(B+2) d / alpha, tau > 2**(B+2) anyway (eta >= 1/d): clamp q first
    q_caps = [max(1, math.floor(2.0 ** (B + 2 + FQ) * d / alphas[a])) for a, _ in problems]
    q_of = [q[F * d : (F + 1) * d] for _, F in problems]
    q_over = yield from engine.ltz(
        [(cap - v) % p for cap, qp in zip(q_caps, q_of) for v in qp], L.q_clamp, "tau"
    )
    q_excess = yield from engine.mul(q_over, [(v - cap) % p for cap, qp in zip(q_caps, q_of) for v in qp], "tau")
    q_p = engine.sub([v for qp in q_of for v in qp], q_excess)
    alpha_enc = [round(alphas[a] * 2**L.alpha_frac) for a, _ in problems]
    theta = engine.scale([eta[F] for _, F in problems], alpha_enc)  # eta alpha 2**(FI + f_alpha)
    if L.alpha_frac:
        theta = yield from engine.trunc(theta, *L.theta, "tau")
    # the product < 2**(B + 2 + logd + FQ) * 4 alpha 2**FI / alpha
    tau_flat = yield from engine.mul_trunc(q_p, [t for t in theta for _ in range(d)], *L.tau, "tau")
    cap = 1 << (B + FI)
    over = yield from engine.ltz([(cap - t) % p for t in tau_flat], L.tau_clamp, "tau")
    excess = yield from engine.mul(over, [(t - cap) % p for t in tau_flat], "tau")
    tau_flat = engine.sub(tau_flat, excess)
    tau = [tau_flat[P * d : (P + 1) * d] for P in range(n_problems)]

    # ---- 7. FISTA with a public restart schedule, every problem in the same rounds ----------
    w = [[0] * d for _ in problems]
    w_prev = [[0] * d for _ in problems]
    w_check = [[0] * d for _ in problems]
    t_k = 1.0
    ft = L.tol_frac  # tol**2 with >= 6 significant bits
    tol_enc = round(tol * tol * 2**ft)
    delta_enc = round(_DELTA * _DELTA * 2 ** (2 * FI))
    converged = False
    iterations = 0
    beta = 0.0
    last_bits: list[list[int]] = [[] for _ in problems]

    def check(w: list[list[int]], w_check: list[list[int]]) -> Program[bool]:
        """One revealed bit: ``||w - w_check|| < tol (||w_check|| + delta)`` for every problem."""
        # ||dw||^2 2**ft - tol^2 ||w_c||^2 - tol^2 delta^2 as one inner product per problem
        quads = []
        for wp, wc in zip(w, w_check):
            delta_w = engine.sub(wp, wc)
            quads.append((engine.scale(delta_w, 1 << ft) + engine.scale(wc, -tol_enc), delta_w + wc))
        bit = yield from engine.dot_ltz(quads, L.check_bits, "check", offset=[-tol_enc * delta_enc % p] * n_problems)
        if n_problems > 1:
            # [number of problems that did not pass < 1]: |count - 1| <= n_problems
            failing = (n_problems - sum(bit) - 1) % p
            bit = yield from engine.ltz([failing], n_problems.bit_length() + 1, "check")
        opened = yield from engine.reveal(bit, "converged")
        return opened[0] == 1

    def step(iteration: int, v: list[list[int]]) -> Program[tuple[list[list[int]], list[list[int]]]]:
        """One FISTA step from the extrapolated point ``v``: the new iterate and its soft-threshold bits."""

        def head() -> Program[tuple[list[int], list[int]]]:
            # z = A v + c before its truncation (2 FI + BETA_BITS fractional bits); per problem
            # tau - z (d values), then z + tau (d), truncated and compared with 0 in one opening
            shift = 1 << (FI + _BETA_BITS)
            pairs, offset = [], []
            for P, (_, F) in enumerate(problems):
                minus_v = [-x % p for x in v[P]]
                pairs += [(A[F][j], minus_v) for j in range(d)] + [(A[F][j], v[P]) for j in range(d)]
                offset += [(t - c) * shift % p for t, c in zip(tau[P], c_vec[F])]
                offset += [(t + c) * shift % p for t, c in zip(tau[P], c_vec[F])]
            return (yield from engine.dot_trunc_ltz(pairs, *L.iterate, "iterate", offset=offset))

        # the next iteration's random bits ride along with this one's first rounds (the pool
        # already holds this iteration's: the previous one, or the step size, fetched them);
        # head() has drawn this iteration's pairs when the prefetch counts the pool, so it
        # asks for this iteration's check and the next iteration
        ahead = check_pairs(iteration) + (pairs_needed(iteration + 1) if iteration < max_iter else 0)
        (gaps, bits), _ = yield from engine.together(head(), engine.prefetch_bits(0, ahead + joining_pairs))
        new_bits = [bits[P * 2 * d : (P + 1) * 2 * d] for P in range(n_problems)]
        # soft threshold: [z > tau] (z - tau) + [z < -tau] (z + tau)
        pairs = [([lb[j], lb[d + j]], [-g[j] % p, g[d + j]])
                 for lb, g in zip(new_bits, (gaps[P * 2 * d : (P + 1) * 2 * d] for P in range(n_problems)))
                 for j in range(d)]
        w_flat = yield from engine.dot(pairs, "soft")
        return [w_flat[P * d : (P + 1) * d] for P in range(n_problems)], new_bits

    # A check reads w_k and w_(k - check_every), which iteration k + 1 does not change: its
    # rounds run in lockstep with iteration k + 1 (first, so the randomness is drawn in the
    # order of a check followed by an iteration). If it reveals 1, the result is w_k and
    # iteration k + 1 is dropped: nothing of it was opened but masked values.
    pending_check: Program[bool] | None = None
    for iteration in range(1, max_iter + 1):
        b1 = round((1 + beta) * 2**_BETA_BITS)
        b0 = round(beta * 2**_BETA_BITS)
        v = [[(b1 * wn - b0 * wo) % p for wn, wo in zip(wp, wpp)] for wp, wpp in zip(w, w_prev)]
        if pending_check is None:
            w_new, bits_new = yield from step(iteration, v)
        else:
            done, (w_new, bits_new) = yield from engine.together(pending_check, step(iteration, v))
            pending_check = None
            if done:
                converged = True
                break
        last_bits = bits_new
        iterations = iteration
        if iteration % restart_every == 0:
            t_k = 1.0
        t_next = (1 + math.sqrt(1 + 4 * t_k * t_k)) / 2
        beta = (t_k - 1) / t_next
        t_k = t_next
        w_prev, w = w, w_new
        if iteration % check_every == 0 or iteration == max_iter:
            if iteration == max_iter:
                converged = yield from check(w, w_check)
                break
            pending_check = check(w, w_check)
            w_check = w
    engine.next_phase()  # the outputs' randomness does not depend on the loop's length
    return Batch(
        d=d, n_fits=n_fits, entries=entries, mean_hat=[mean_hat[D * n : (D + 1) * n] for D in range(n_sets)],
        sig=sig, s_inv_y=s_y_inv, v_y=v_y, gamma=w, last_bits=last_bits, iterations=iterations, converged=converged,
    )


def model_outputs(engine: Engine, L: LassoLayout, batch: Batch, problem: int) -> Program[LassoResult]:
    """Program: step 8 of the module docstring for one problem of ``batch`` (public index):
    R^2, the coefficients in raw units and the intercept, revealed under ``"result"``."""
    p = engine.prime
    d = batch.d
    FI = ITER_FRAC_BITS
    one = 1 << FI
    F = problem % batch.n_fits
    gamma, last_bits = batch.gamma[problem], batch.last_bits[problem]
    sig, mean_hat = batch.sig[F], batch.mean_hat[F]

    def G(j: int, k: int) -> int:
        return batch.G(F, j, k)

    # R^2 = 1 - RSS / TSS in preconditioned units (scale-free)
    g_gamma = yield from engine.dot_trunc([([G(j, k) for k in range(d)], gamma) for j in range(d)], *L.g_gamma, "r2")
    combo = [(gg - 2 * G(j, d)) % p for j, gg in enumerate(g_gamma)]
    rss = yield from engine.dot_trunc([(gamma, combo)], *L.rss, "r2", offset=[G(d, d) * one % p])
    # TSS = var(y) in preconditioned units is in [1/4, 1): Newton from 1.5 converges
    inv_tss = yield from engine.reciprocal([G(d, d)], [round(1.5 * one)], FI, 6, L.tss_newton, "r2")
    ratio = yield from engine.mul_trunc(rss, inv_tss, *L.r2, "r2")
    r2 = [(one - ratio[0]) % p]

    # coefficients w_j = pi_j gamma_j with pi_j = sigma_j / rho_y, intercept b0 = icpt / rho_y,
    # revealed with F_OUT fractional bits. Their true granularity is 2**-FI * pi_j (and
    # 2**-FI / rho_y), a secret power of two; secret noise uniform over one granule (the
    # 72-bit PRSS value U scaled by it) hides any run of trailing zero bits that would
    # otherwise show the ratio of the private scales. It moves a value by at most 1.5
    # granules and is zero for coefficients the lasso set to exactly 0.
    r_y = yield from engine.mul([batch.v_y], [batch.s_inv_y[F]], "output")  # (1 / rho_y) 2**RB, exact
    # 1 / rho_y carries L.r_y_frac fractional bits; the noise's granule factors carry f
    noise_u = engine.add_public(engine.random_bounded(d + 1, _NOISE_BITS), -(3 << (_NOISE_BITS - 1)))
    nonzero = engine.add(last_bits[:d], last_bits[d:]) + [1]
    mixed = yield from engine.mul(sig[:d] + noise_u, r_y * d + nonzero, "output")
    pi_raw, noise_u = mixed[:d], mixed[d:]  # pi 2**(Ps + SB + RB), exact
    # pi carries L.pi_frac fractional bits and pi <= 2**L.lpi
    pi_out = yield from engine.trunc(pi_raw, *L.pi_out, "output")
    pi_noise = yield from engine.trunc(pi_raw, *L.pi_noise, "output")
    r_y_noise = yield from engine.trunc(r_y, *L.r_y_noise, "output")
    mean_dot = yield from engine.dot([(mean_hat[:d], gamma)], "output")
    icpt_raw = (mean_hat[d] * one - mean_dot[0]) % p  # 2 FI bits
    # |intercept| < 2**L.licpt in preconditioned units
    icpt = yield from engine.trunc([icpt_raw], *L.intercept, "output")
    products = yield from engine.mul(gamma + icpt + noise_u, pi_out + r_y + pi_noise + r_y_noise, "output")
    w_out = yield from engine.trunc(products[:d], *L.coefficients, "output")
    b_out = yield from engine.trunc([products[d]], *L.intercept_out, "output")
    # a granule in output units is pi_j 2**(F_OUT - FI); U / 2**NOISE_BITS is in [-1.5, 1.5)
    noise = yield from engine.trunc(products[d + 1 :], *L.noise, "output")
    out = engine.add(w_out + b_out, noise)
    values = yield from engine.reveal(out + r2, "result")
    out_scale = float(2**F_OUT)
    return LassoResult(
        coefficients=tuple(v / out_scale for v in values[:d]),
        intercept=values[d] / out_scale,
        r2=values[d + 1] / float(one),
        iterations=batch.iterations,
        converged=batch.converged,
    )
