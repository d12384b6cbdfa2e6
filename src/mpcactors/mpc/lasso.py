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

__all__ = ["CHECK_EVERY", "DEALT", "LassoResult", "lasso_fit", "local_gram", "scale_inputs"]

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
    f, I, p = params.frac_bits, params.int_bits, engine.prime
    me = engine.party
    n = d + 1
    if len(owners) != d or any(o not in (DEALT, 1, 2, 3) for o in owners):
        raise ConfigError("owners must name a party (1, 2 or 3, or DEALT) for every feature column")
    dealt = dict(dealt or {})
    expected_dealt = {j for j in range(d) if owners[j] == DEALT} | ({d, d + 1} if target_owner == DEALT else set())
    if set(dealt) != expected_dealt:
        raise ConfigError("dealt scale shares must be given for exactly the columns owned outside the engine")
    if m < 4 or m > params.max_rows:
        raise ConfigError(f"the intersection size must be in [4, max_rows={params.max_rows}]")
    if not (2.0**-f <= alpha < 2.0**I):
        raise ConfigError(f"alpha must be in [2**-{f}, 2**{I})")
    if len(x) != m or len(y) != m or any(len(row) != d for row in x):
        raise ValueError("x must be m rows of d shares and y must have m shares")
    if max_iter < 1 or check_every < 1 or restart_every < 1 or not 0 < tol < 1:
        raise ConfigError("max_iter, check_every and restart_every must be positive and 0 < tol < 1")
    if not 1 <= d <= LASSO_MAX_COLUMNS:
        raise ConfigError(f"the lasso takes 1 to {LASSO_MAX_COLUMNS} feature columns, got {d}")
    L = params.lasso_layout(rows=m, columns=d, alpha=alpha, tol=tol, target_scaled=target_owner is not None)
    L.check(blame=f"tol = {tol} with {d} columns")  # Params guarantees everything else
    B = COEF_BITS
    # owner scales are input as 2**(Ps - e_j) with Ps = int_bits (integers >= 1; scale_inputs)

    # ---- 1. private scales: each owner inputs its columns' 2**(Ps - e) --------------------
    u = [0] * n  # shares of 2**(Ps - e_j); column d is the target
    v_y = 0  # shares of 2**(8 + e_y): D_y with 8 fractional bits
    owned_by = {o: [j for j in range(d) if owners[j] == o] for o in (1, 2, 3)}
    if target_owner is not None:
        if target_owner not in (DEALT, 1, 2, 3):
            raise ConfigError("target_owner must be 1, 2 or 3, or DEALT")
        if target_owner != DEALT:
            owned_by[target_owner].append(d)
    for j, share in dealt.items():
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

    # ---- 2. Gram products, one reshare; exact centring -------------------------------
    rows = [list(row) + [yv] for row, yv in zip(x, y)]
    gram_local, sums = local_gram(rows, p)
    del rows
    tri = [(j, k) for j in range(n) for k in range(j, n)]
    gram = yield from engine.reshare([gram_local[j][k] for j, k in tri], "gram")
    outer = yield from engine.mul([sums[j] for j, _ in tri], [sums[k] for _, k in tri], "centre")
    centred = [(m * g - o) % p for g, o in zip(gram, outer)]  # m^2 cov(j, k) 2^(2f), exact
    e = L.e
    t1 = L.centre[0]
    # trunc_fast (no random bits) for the two truncations whose width depends on m, so the
    # communication of the whole program does not depend on m at all
    c1 = yield from engine.trunc_fast(centred, *L.centre, "centre")
    Q = L.covariance[0]
    c_m = round(2 ** (t1 + Q) / (m * m))
    cov = yield from engine.trunc(engine.scale(c1, c_m), *L.covariance, "centre")  # cov 2^(2f)

    # ---- 3. owner scaling (exact powers of two), then the means ------------------------
    FG = LassoLayout.SCALED_FRAC_BITS
    scaled1 = yield from engine.mul(cov + sums, [u[j] for j, _ in tri] + u, "scale")
    scaled2 = yield from engine.mul(scaled1[: len(tri)], [u[k] for _, k in tri], "scale")
    g_tilde = yield from engine.trunc(scaled2, *L.owner_scale, "scale")
    c_mean = round(2 ** (e + LassoLayout.MEAN_BITS) / m)
    mean_tilde = yield from engine.trunc_fast(
        engine.scale(scaled1[len(tri) :], c_mean), *L.means, "scale"
    )  # mean of the owner-scaled column, FG fractional bits

    # ---- 4. Jacobi: powers of two s_j with var_j s_j^2 in [1/4, 1) ------------------
    SB = f  # s and 1/s are represented with f fractional bits (exact)
    diag_index = [tri.index((j, j)) for j in range(n)]
    diag = [g_tilde[i] for i in diag_index]
    s_x, s_x_inv = yield from engine.pow2_normalise(diag[:d], FG, LassoLayout.JACOBI_LO, 2, 2, L.jacobi, SB, "jacobi")
    s_y, s_y_inv = yield from engine.pow2_normalise(diag[d:], FG, L.target_lo, 2, 2, L.jacobi, SB, "jacobi")
    s = s_x + s_y
    s_inv_y = s_y_inv[0]
    # s_j <= 2**L.smax_x (2**L.smax_y for the target); real bounds (log2) of
    # sigma_j = s_j / D_j and rho_y = s_y / D_y: L.lsig and L.lrho
    t3 = yield from engine.mul(g_tilde + mean_tilde, [s[j] for j, _ in tri] + s, "jacobi")
    t4 = yield from engine.mul(t3[: len(tri)], [s[k] for _, k in tri], "jacobi")
    FI = ITER_FRAC_BITS
    one = 1 << FI
    g_hat = yield from engine.trunc(t4, *L.g_hat, "jacobi")  # FI bits, |.| <= 1
    mean_hat = yield from engine.trunc(t3[len(tri) :], *L.mean_hat, "jacobi")  # |.| <= s
    entry = {jk: g_hat[i] for i, jk in enumerate(tri)}

    def G(j: int, k: int) -> int:
        return entry[(j, k) if j <= k else (k, j)]

    # ---- 5. step size eta = 1 / ||G||_F (>= 1 / lambda_max) -----------------------------
    feature_tri = [(j, k) for j, k in tri if k < d]
    weighted = [G(j, k) * (1 if j == k else 2) % p for j, k in feature_tri]
    fro2_raw = yield from engine.dot([(weighted, [G(j, k) for j, k in feature_tri])], "step")
    fro2 = yield from engine.trunc(fro2_raw, *L.frobenius, "step")
    # ||G||_F^2 is in [d/16, d^2]: the diagonal is in [1/4, 1)
    y0, _ = yield from engine.pow2_normalise(fro2, FI, LassoLayout.STEP_LO, L.step_hi, 2, L.step_search, FI, "step")
    eta = yield from engine.inv_sqrt(fro2, y0, FI, 6, L.step_newton, "step")
    a_off = yield from engine.mul(
        [eta[0]] * (d * d + d), [G(j, k) for j in range(d) for k in range(d)] + [G(j, d) for j in range(d)], "step"
    )
    a_off = yield from engine.trunc(a_off, *L.step_matrix, "step")
    A = [[((one if j == k else 0) - a_off[j * d + k]) % p for k in range(d)] for j in range(d)]
    c_vec = a_off[d * d :]

    # ---- 6. thresholds tau_j = eta * alpha * sigma_j * rho_y, clamped to 2**B --------------
    # sigma_j = u_j s_j / 2**Ps and rho_y = u_y s_y / 2**Ps are exact powers of two
    sig = yield from engine.mul(u, s, "tau")  # sigma * 2**(Ps + SB), rho_y last
    q_raw = yield from engine.mul(sig[:d], [sig[d]] * d, "tau")  # sigma_j rho_y 2**(2Ps + 2SB), exact
    # |sigma_j rho_y| < 2**L.sig_bits (real)
    FQ = L.q_frac  # so that eta * alpha * (error of q) stays below 2**-FI
    q = yield from engine.trunc(q_raw, *L.q, "tau")
    # where q > 2**(B+2) d / alpha, tau > 2**(B+2) anyway (eta >= 1/d): clamp q first
    q_cap = max(1, math.floor(2.0 ** (B + 2 + FQ) * d / alpha))
    q_over = yield from engine.ltz([(q_cap - v) % p for v in q], L.q_clamp, "tau")
    q_excess = yield from engine.mul(q_over, [(v - q_cap) % p for v in q], "tau")
    q = engine.sub(q, q_excess)
    alpha_enc = round(alpha * 2**L.alpha_frac)
    theta = engine.scale(eta, alpha_enc)  # eta alpha 2**(FI + f_alpha)
    if L.alpha_frac:
        theta = yield from engine.trunc(theta, *L.theta, "tau")
    tau_raw = yield from engine.mul(q, theta * d, "tau")
    # tau_raw < 2**(B + 2 + logd + FQ) * 4 alpha 2**FI / alpha
    tau = yield from engine.trunc(tau_raw, *L.tau, "tau")
    cap = 1 << (B + FI)
    over = yield from engine.ltz([(cap - t) % p for t in tau], L.tau_clamp, "tau")
    excess = yield from engine.mul(over, [(t - cap) % p for t in tau], "tau")
    tau = engine.sub(tau, excess)

    # ---- 7. FISTA with a public restart schedule ------------------------------------------
    w = [0] * d
    w_prev = [0] * d
    w_check = [0] * d
    t_k = 1.0
    ft = L.tol_frac  # tol**2 with >= 6 significant bits
    tol_enc = round(tol * tol * 2**ft)
    delta_enc = round(_DELTA * _DELTA * 2 ** (2 * FI))
    converged = False
    iterations = 0
    beta = 0.0
    last_bits: list[int] = []
    for iteration in range(1, max_iter + 1):
        b1 = round((1 + beta) * 2**_BETA_BITS)
        b0 = round(beta * 2**_BETA_BITS)
        v = [(b1 * wn - b0 * wo) % p for wn, wo in zip(w, w_prev)]
        z_raw = yield from engine.dot([(A[j], v) for j in range(d)], "iterate")
        shift = 1 << (FI + _BETA_BITS)
        z = yield from engine.trunc_fast(
            [(zr + cj * shift) % p for zr, cj in zip(z_raw, c_vec)], *L.iterate, "iterate"
        )
        last_bits = yield from engine.ltz(
            [(t - zz) % p for t, zz in zip(tau, z)] + [(zz + t) % p for t, zz in zip(tau, z)], L.soft, "soft"
        )
        pairs = [([last_bits[j], last_bits[d + j]], [(z[j] - tau[j]) % p, (z[j] + tau[j]) % p]) for j in range(d)]
        w_new = yield from engine.dot(pairs, "soft")
        iterations = iteration
        if iteration % restart_every == 0:
            t_k = 1.0
        t_next = (1 + math.sqrt(1 + 4 * t_k * t_k)) / 2
        beta = (t_k - 1) / t_next
        t_k = t_next
        w_prev, w = w, w_new
        if iteration % check_every == 0 or iteration == max_iter:
            # one bit: ||w_k - w_(k - check_every)|| < tol (||w_(k - check_every)|| + delta)
            delta_w = engine.sub(w, w_check)
            sq = yield from engine.dot([(delta_w, delta_w), (w_check, w_check)], "check")
            gap = (sq[0] * (1 << ft) - tol_enc * sq[1] - tol_enc * delta_enc) % p
            bit = yield from engine.ltz([gap], L.check_bits, "check")
            opened = yield from engine.reveal(bit, "converged")
            w_check = w
            if opened[0] == 1:
                converged = True
                break

    # ---- 8. outputs -------------------------------------------------------------------------
    gamma = w
    # R^2 = 1 - RSS / TSS in preconditioned units (scale-free)
    g_gamma_raw = yield from engine.dot([([G(j, k) for k in range(d)], gamma) for j in range(d)], "r2")
    g_gamma = yield from engine.trunc(g_gamma_raw, *L.g_gamma, "r2")
    combo = [(gg - 2 * G(j, d)) % p for j, gg in enumerate(g_gamma)]
    rss_raw = yield from engine.dot([(gamma, combo)], "r2")
    rss = yield from engine.trunc([(rss_raw[0] + G(d, d) * one) % p], *L.rss, "r2")
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
    r_y = yield from engine.mul([v_y], [s_inv_y], "output")  # (1 / rho_y) 2**RB, exact
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
        iterations=iterations,
        converged=converged,
    )
