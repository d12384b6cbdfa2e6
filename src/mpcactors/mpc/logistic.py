"""Step 8: logistic regression with standard errors on 3-party Shamir shares.

Fits exactly statsmodels' ``Logit(y, add_constant(X)).fit()`` (maximum likelihood, intercept,
raw features) by Newton's method, and opens the coefficients, their standard errors from the
inverse Hessian at the optimum, the log-likelihood and one convergence bit per iteration.
With ``l2 > 0`` it fits scikit-learn's ``LogisticRegression(C=1/l2)`` instead (penalty
``l2/2 ||w||^2`` on the raw coefficients, intercept unpenalised) and opens no standard
errors. ``docs/logistic.md`` has the derivation, the fixed-point layout and the error bounds.

Outline:

1. **Class sizes.** ``n1 = sum(y)`` is a local sum; one bit ``[n1 < min_cell or m - n1 <
   min_cell]`` is opened (label ``"small_class"``): 1 refuses the analysis.
2. **Internal standardisation.** The exact centred diagonal ``M_jj = m sum x_j^2 - s_j^2``
   (one reshare) is compared with the public thresholds ``m^2 4^t 2^(2f)``: a secret power
   of two ``2^e_j >= sd_j`` (``e_j`` clamped below at ``SCALE_LO``). The design used inside is
   ``x~_ij = (x_ij - mean_j) 2^-e_j`` (variance in [1/4, 1)) and a column of ones.
3. **Newton.** Per iteration: ``eta = X~ b`` (one dot round over the rows), the sigmoid
   (:func:`sigmoid_program`), the gradient ``X~^T (y - p)`` and the Hessian ``X~^T W X~``
   (``w_i x~_ij`` reshared, then a dot round), both divided by ``m``; the inverse of the
   Hessian by ``mpc/linalg.py``'s fixed Newton-Schulz schedule from ``c I`` (which never
   overshoots, so it stays bounded even when the data are separable); the step, the box
   ``|b_j| <= 2^BOX_BITS`` and one opened bit ``[||b_new - b_old||^2 < 2^(-2 TOL_BITS)]``
   (label ``"converged"``).
4. **At the optimum** (the last iterate, whose Hessian is evaluated once more): one bit
   ``[some |b_j| >= 2^SEPARATION_BITS]`` (label ``"separation"``): 1 refuses the analysis.
   Then the coefficients, the intercept, the variances (diagonal of the inverse Hessian in raw
   units, intercept last) and the log-likelihood are opened.

With ``l2 > 0`` the secret powers of two are opened after step 1 (label ``"scale"``), so the
penalty ``l2 2^(-2 e_j)`` in standardised units is a public diagonal; the gradient and Hessian
gain it, a public Jacobi scaling keeps the penalised Hessian's trace within the inverse's
start, and no inverse is taken at the optimum (no variances are opened).

Nothing else is opened except masked values inside truncations and comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..crypto.fixedpoint import Params
from ..errors import AnalysisRefused, ConfigError
from .engine import Engine, Program
from .linalg import SpdLayout, newton_schulz

__all__ = ["CONTROL", "DEFAULT_MAX_ITER", "Inference", "LogisticLayout", "LogisticResult", "inference", "logistic_fit", "openings", "sigmoid_program"]


@dataclass(frozen=True)
class LogisticResult:
    """The opened outputs (identical at all three parties), raw feature units."""

    coefficients: tuple[float, ...]
    #: empty, and ``intercept_se`` None, for a penalised fit (``l2 > 0``: docs/logistic.md)
    se: tuple[float, ...]
    intercept: float
    intercept_se: float | None
    loglik: float
    iterations: int
    converged: bool
    n: int


#: Newton iterations at most, unless a plan says otherwise.
DEFAULT_MAX_ITER = 25
#: The openings that steer the program (all three compute parties must see them; with
#: ``l2 > 0`` the scales fix the public penalty).
CONTROL = frozenset({"small_class", "scale", "converged", "separation"})


def openings(
    d: int, *, max_iter: int = DEFAULT_MAX_ITER, l2: float = 0.0
) -> tuple[tuple[str, tuple[int, ...], str | None, int], ...]:
    """What :func:`logistic_fit` can open, in order: ``(output, shape, reveal label or None if
    derived in public, most reveals)``. ``converged`` is revealed once per iteration (at most
    ``max_iter`` times); ``variance`` holds the d coefficient variances, then the intercept's.
    With ``l2 > 0``: the d scales ``2**(int_bits - e_j)`` after the class sizes, and no
    variances (``se`` has shape ``(0,)``, ``intercept_se`` is None)."""
    if l2 > 0:
        return (
            ("small_class", (), "small_class", 1),
            ("scale", (d,), "scale", 1),
            ("converged", (), "converged", max_iter),
            ("separation", (), "separation", 1),
            ("coefficients", (d,), "coefficients", 1),
            ("intercept", (), "intercept", 1),
            ("loglik", (), "loglik", 1),
            ("se", (0,), None, 0),
            ("intercept_se", (), None, 0),
            ("iterations", (), None, 0),
        )
    return (
        ("small_class", (), "small_class", 1),
        ("converged", (), "converged", max_iter),
        ("separation", (), "separation", 1),
        ("coefficients", (d,), "coefficients", 1),
        ("intercept", (), "intercept", 1),
        ("variance", (d + 1,), "variance", 1),
        ("loglik", (), "loglik", 1),
        ("se", (d,), None, 0),
        ("intercept_se", (), None, 0),
        ("iterations", (), None, 0),
    )


@dataclass(frozen=True)
class Inference:
    """Wald statistics of one parameter (plaintext, from the opened estimate and SE)."""

    estimate: float
    se: float
    z: float
    p: float
    ci_low: float
    ci_high: float


_Z975 = 1.959963984540054


def inference(result: LogisticResult) -> dict[str, tuple[Inference, ...] | Inference]:
    """z, two-sided normal p-value (``erfc(|z| / sqrt 2)``) and 95% Wald interval of every
    coefficient (key ``"coefficients"``) and of the intercept (key ``"intercept"``), as
    statsmodels' ``Logit`` reports them. A penalised fit has no standard errors: ValueError."""
    if result.intercept_se is None or len(result.se) != len(result.coefficients):
        raise ValueError("inference needs standard errors (a penalised fit, l2 > 0, has none)")
    intercept_se = result.intercept_se

    def one(b: float, se: float) -> Inference:
        z = b / se if se > 0 else math.copysign(math.inf, b)
        return Inference(b, se, z, math.erfc(abs(z) / math.sqrt(2)), b - _Z975 * se, b + _Z975 * se)

    return {
        "coefficients": tuple(one(b, s) for b, s in zip(result.coefficients, result.se)),
        "intercept": one(result.intercept, intercept_se),
    }


# ---------------------------------------------------------------------------------
# fixed-point layout
# ---------------------------------------------------------------------------------
class LogisticLayout:
    """Every fixed-point width of :func:`logistic_fit` for one run's public ``m``, ``d`` and ``l2``.

    ``operations()`` lists each truncation ``(label, shift, bits)`` and comparison
    ``(label, None, bits)``; :meth:`check` refuses (``ConfigError``) any the engine could not
    run: ``0 < shift < bits`` and ``bits + sigma + 4 <= floor(log2 p)``.
    """

    FX = 32  #: fractional bits of the standardised design x~
    FB = 40  #: ... of the coefficients b in standardised units
    FE = 40  #: ... of eta, the sigmoid and its internals, the weights w
    FA = 44  #: ... of the normalised Hessian A = H/m, its inverse X and the gradient
    FH = 48  #: ... of the first truncation of the Hessian sums
    FN = 40  #: ... of nu_j = mean_j 2^-e_j (for the intercept)
    FV = 32  #: ... of X when the variances are formed
    FN2 = 24  #: ... of nu in the intercept variance
    FQ = 16  #: ... of X (1, -nu) in the intercept variance
    FC = 40  #: ... of the public polynomial coefficients and log2(e)
    COARSE = 6  #: fractional bits of the coarse copy of eta used for the comparisons
    BOX_BITS = 7  #: |b_j| <= 2^7 in standardised units (a box: clamped every iteration)
    SEPARATION_BITS = 6  #: separation is declared if some |b_j| >= 2^6 at the end
    CLAMP = 32  #: |eta| beyond 32 is clamped in the sigmoid (e^-32 < 2^-46)
    SCALE_LO = -8  #: columns with sd < 2^-8 are scaled as if sd were 2^-8
    #: the inverse (mpc/linalg.py) converges for every eigenvalue of H/m above 2^-COND_BITS
    #: (28 Newton-Schulz steps for breast cancer's ten features)
    COND_BITS = 20
    TOL_BITS = 20  #: convergence: ||step|| < 2^-20 in standardised units
    NOISE_BITS = 16  #: granularity noise of the outputs scaled by a secret power of two
    MEAN_BITS = 30  #: c_m = round(2^(e + MEAN_BITS) / m)

    def __init__(self, params: Params, m: int, d: int, l2: float = 0.0) -> None:
        self.params = params
        f, I = params.frac_bits, params.int_bits
        self.m, self.d, self.n, self.l2 = m, d, d + 1, l2
        self.e = e = m.bit_length()
        self.logn = logn = (d + 1).bit_length()
        self.KM = e + self.MEAN_BITS
        self.c_m = round(2**self.KM / m)
        self.gamma = self.c_m * m / 2**self.KM  # x~ = (x - mean) 2^-e_j gamma exactly
        self.span = I - self.SCALE_LO  # P_j = 2^(I - e_j) in [1, 2^span]
        # The penalty (l2 > 0): l2 a_j^2 on the Hessian's diagonal before the division by m,
        # a_j = 2^-e_j gamma <= 2^-SCALE_LO gamma, so at most 2^rho_bits; in A = gamma H / m it
        # is rho_j = l2 a_j^2 gamma / m, and the public Jacobi factor Q_j = 2^-k_j (k_j <= S)
        # brings rho_j Q_j^2 to at most 1/4 (see jacobi()).
        a_max2 = 4.0**-self.SCALE_LO * self.gamma**2
        self.rho_bits = max(0, math.ceil(math.log2(l2 * a_max2))) if l2 > 0 else 0
        self.S = self.jacobi(a_max2) if l2 > 0 else 0
        S = self.S
        #: |g| (the gradient over m, after Q) < 2^GB: 1 without a penalty; the penalty's part
        #: rho_j |b_j| Q_j <= 2^(k_j - 2 + BOX_BITS)
        self.GB = GB = 1 if l2 == 0 else max(1, S + self.BOX_BITS - 2) + 1
        PB = self.rho_bits + self.BOX_BITS + 1  # the penalty's part of the raw gradient sums
        #: the Hessian over m has trace <= n/4 (weights <= 1/4, mean squares below 1); the
        #: scaled penalty adds at most 1/4 per feature. 2^-20 of slack for gamma and rounding.
        trace = (self.n / 4 if l2 == 0 else (self.n + d) / 4) * (1 + 2**-20)
        self.solver = SpdLayout(params, self.n, frac_bits=self.FA, cond_bits=self.COND_BITS,
                                max_trace=trace, singular_bit=False)
        #: fractional bits of the opened coefficients and intercept (56 at the defaults), and of
        #: the opened coefficient variances (80): 20 and 8 bits below the exact products' widths
        self.OUT = self.FB + self.NOISE_BITS + I - 20
        self.OUT_VAR = self.FV + self.NOISE_BITS + 2 * I - 8
        self.XB = XB = (e + 1) // 2 + 1  # |x~| <= sqrt(m) < 2^XB
        FX, FB, FE, FA, FH = self.FX, self.FB, self.FE, self.FA, self.FH
        self.ZB = ZB = self.BOX_BITS + XB + logn + 1  # |eta| < 2^ZB
        self.XI = self.solver.iterate_bits + 1  # |X| < 2^XI (one bit of slack)
        ops: list[tuple[str, int | None, int]] = [
            ("count", None, e + 2),
            ("scale", None, 2 * e + 2 * I + 2 * f + 3),
            ("standardise", f + self.KM + I - FX, XB + f + self.KM + self.span + 3),
            ("nu", f + self.KM + I - self.FN, self.span + f + self.KM + I + 3),
            ("eta", FX, ZB + FX + FB + 2),
            ("sigmoid_coarse", FE - self.COARSE, ZB + FE + 2),
            ("sigmoid_sign", None, ZB + self.COARSE + 3),
            ("sigmoid_log2e", self.FC, FE + 6 + self.FC + 3),
            ("sigmoid_bits", None, 16),
            ("sigmoid_poly", FE, 2 * FE + 3),
            ("sigmoid_coef", self.FC, FE + self.FC + 6),
            ("sigmoid_exp", 63, FE + 63 + 4),
            ("sigmoid_newton", FE + 1, 2 * FE + 4),
            ("weights", FE, 2 * FE + 2),
            ("hessian", FE + 2 * FX - FH, FE + 2 * FX + (e + 2 if l2 == 0 else max(e, PB) + 3)),
            ("normalise", FH + self.KM - FA + 2 * S, FH + self.KM + 2 * S + GB + 2),
            ("inverse", FA, self.solver.product_bits),
            ("step", 2 * FA - FB + S, 2 * FA + S + self.XI + logn + GB + 2),
            ("box", None, FB + S + self.XI + logn + GB + 3),
            ("check", None, 2 * (FB + self.BOX_BITS + 2) + logn + 2),
            ("separation", None, FB + self.BOX_BITS + 3),
            ("separation_any", None, logn + 2),
            ("xty", FX + f - FE, FX + f + e + 3),
            ("loglik_term", FB, FB + FE + self.BOX_BITS + logn + 3),
            ("coefficients", FB + self.NOISE_BITS + I - self.OUT,
             self.BOX_BITS + FB + self.NOISE_BITS + self.span + 4),
            ("intercept", FB + self.FN - self.OUT, FB + self.FN + self.BOX_BITS + self.span + logn + 3),
            ("x_out", FA - self.FV, self.XI + FA + 2),
            ("variance", self.FV + self.NOISE_BITS + 2 * I - self.OUT_VAR,
             self.XI + self.FV + self.NOISE_BITS + 2 * self.span + 4),
            ("nu_out", self.FN - self.FN2, self.span + self.FN + 2),
            ("intercept_q", self.FV + self.FN2 - self.FQ,
             self.XI + self.FV + self.span + self.FN2 + logn + 3),
            ("intercept_var", None, 0),  # no truncation: aTq is opened as is (width below)
        ]
        q_bits = self.XI + self.span + logn + 2 + self.FQ
        self.intercept_var_bits = self.span + self.FN2 + q_bits + logn + 2
        self.ops = [op for op in ops if op[0] != "intercept_var"]

    def jacobi(self, a2: float) -> int:
        """``k`` with ``rho Q^2 <= 1/4`` for ``Q = 2^-k`` and ``rho = l2 a2 gamma / m``, the
        penalty of a column with ``a_j^2 = a2`` in ``A``."""
        rho = self.l2 * a2 * self.gamma / self.m
        k = max(0, math.ceil(math.log(4 * rho, 4))) if rho > 0 else 0
        while rho * 4.0**-k > 0.25:  # float rounding of the log
            k += 1
        return k

    def op(self, label: str) -> tuple[int, int]:
        for name, shift, bits in self.ops:
            if name == label:
                return (bits if shift is None else (shift, bits))  # type: ignore[return-value]
        raise KeyError(label)

    def check(self) -> None:
        """Raise :class:`ConfigError` unless every operation fits the prime and the shifts are positive."""
        p = self.params
        if not (isinstance(self.l2, (int, float)) and math.isfinite(self.l2) and self.l2 >= 0):
            raise ConfigError(f"logistic: l2 must be a finite number of at least 0, got {self.l2!r}")
        for label, shift, bits in self.ops:
            if shift is not None and not 0 < shift < bits:
                raise ConfigError(
                    f"logistic: parameters frac_bits = {p.frac_bits} and int_bits = {p.int_bits} do not fit: "
                    f"its {label} truncation would shift a {bits}-bit value by {shift} bits"
                )
        label, _, bits = max(self.ops, key=lambda op: op[2])
        need = bits + p.sigma + 4
        if need > p.field_bits:
            penalty = f", l2 = {self.l2}" if self.l2 > 0 else ""
            raise ConfigError(
                f"logistic: m = {self.m} rows and d = {self.d} columns{penalty} with frac_bits = {p.frac_bits}, "
                f"int_bits = {p.int_bits} and sigma = {p.sigma} need a Shamir prime above 2**{need} "
                f"(its {label} operation), but the prime has {p.field_bits} bits"
            )
        if self.intercept_var_bits >= p.field_bits - 1:
            raise ConfigError(
                f"logistic: d = {self.d} columns: the intercept variance needs {self.intercept_var_bits} bits, "
                f"the prime has {p.field_bits}"
            )
        self.solver.check()


# ---------------------------------------------------------------------------------
# polynomials (public coefficients)
# ---------------------------------------------------------------------------------
#: 2^-r for r in [-1/8, 9/8]: 2^-1/2 * sum_k (-t ln 2)^k / k! with t = r - 1/2, |t| <= 5/8;
#: the remainder of degree 12 is below (0.434^13 / 13!) * 1.1 < 2^-44.
EXP_DEGREE = 12
EXP_COEFFS = tuple(2**-0.5 * (-math.log(2)) ** k / math.factorial(k) for k in range(EXP_DEGREE + 1))
#: log(1 + u) for u in [0, 1.1]: log(1.55) + sum_k (-1)^(k+1) (t / 1.55)^k / k with t = u - 0.55,
#: |t / 1.55| <= 0.355; the remainder of degree 24 is below 0.355^25 / 25 / 0.645 < 2^-42.
LOG_CENTRE = 0.55
LOG_DEGREE = 24
LOG_COEFFS = (math.log(1 + LOG_CENTRE),) + tuple(
    (-1) ** (k + 1) / (k * (1 + LOG_CENTRE) ** k) for k in range(1, LOG_DEGREE + 1)
)


def _powers(engine: Engine, t: list[int], degree: int, F: int, bits: int, label: str) -> Program[list[list[int]]]:
    """Program: ``[t^1, ..., t^degree]`` (``F`` fractional bits, ``|t| <= 1``) in ``ceil(log2 degree)``
    levels of one product round and one truncation round each."""
    pw: dict[int, list[int]] = {1: list(t)}
    top = 1
    n = len(t)
    while top < degree:
        ks = [k for k in range(top + 1, min(2 * top, degree) + 1)]
        left = [v for k in ks for v in pw[top]]
        right = [v for k in ks for v in pw[k - top]]
        prod = yield from engine.mul_trunc(left, right, F, bits, label, fast=True)
        for i, k in enumerate(ks):
            pw[k] = prod[i * n : (i + 1) * n]
        top = ks[-1]
    return [pw[k] for k in range(1, degree + 1)]


def _poly(engine: Engine, t: list[int], coeffs: Sequence[float], L: LogisticLayout, label: str) -> Program[list[int]]:
    """Program: ``sum_k coeffs[k] t^k`` with ``FE`` fractional bits."""
    FE, FC, p = L.FE, L.FC, engine.prime
    powers = yield from _powers(engine, t, len(coeffs) - 1, FE, L.op("sigmoid_poly")[1], label)
    c = [round(x * 2**FC) for x in coeffs]
    acc = [(c[0] << FE) % p] * len(t)
    for k, pk in enumerate(powers, start=1):
        acc = [(a + c[k] * v) % p for a, v in zip(acc, pk)]
    return (yield from engine.trunc_fast(acc, FC, L.op("sigmoid_coef")[1], label))


# ---------------------------------------------------------------------------------
# the sigmoid
# ---------------------------------------------------------------------------------
def sigmoid_program(engine: Engine, z: Sequence[int], L: LogisticLayout, label: str = "sigmoid") -> Program[dict[str, list[int]]]:
    """Program: ``sigma(z)`` for shared ``z`` (``FE`` fractional bits, ``|z| < 2^ZB``).

    Range reduction: ``s = [z < 0]`` on a coarse copy (6 fractional bits: wrong only for
    ``|z| < 2^-5``, where the identity ``sigma(z) = 1 - sigma(-z)`` still holds since nothing
    below assumes ``a >= 0``); ``a = |z|`` clamped at 32; ``v = a log2(e) = n + r`` with the
    integer ``n < 64`` found bit by bit by six comparisons on the coarse copy (so ``r`` is in
    ``[-1/8, 9/8]``); ``u = e^-a = 2^-n 2^-r`` with ``2^-n`` an exact product of six bit-selected
    powers of two and ``2^-r`` a degree-12 polynomial; ``q = 1/(1+u)`` by four Newton steps from
    ``1.5 - (1+u)/2``; ``sigma = q + s (1 - 2q)``.

    Returns shares of ``p`` (sigma), ``w = q (1 - q)`` (= p (1 - p)), ``s`` and ``u`` (all
    ``FE`` fractional bits but ``s``, a bit).
    """
    FE, C, p = L.FE, L.COARSE, engine.prime
    one = 1 << FE
    zc = yield from engine.trunc_fast(z, *L.op("sigmoid_coarse"), label)
    lim = L.CLAMP << C
    bits = yield from engine.ltz(
        list(zc) + [(lim - v) % p for v in zc] + [(v + lim) % p for v in zc], L.op("sigmoid_sign"), label
    )
    N = len(z)
    s, below_hi, lo = bits[:N], bits[N : 2 * N], bits[2 * N :]
    sign = [(1 - 2 * b) % p for b in s]
    clamp = [(b + c) % p for b, c in zip(below_hi, lo)]  # [zc > lim] + [zc < -lim]: |z| > 32
    ab = yield from engine.mul(list(z) + list(zc), sign + sign, label)
    a, ac = ab[:N], ab[N:]
    fix = yield from engine.mul(
        clamp + clamp, [((L.CLAMP << FE) - v) % p for v in a] + [(lim - v) % p for v in ac], label
    )
    a = engine.add(a, fix[:N])
    ac = engine.add(ac, fix[N:])
    log2e = round(math.log2(math.e) * 2**L.FC)
    v_both = yield from engine.trunc_fast(engine.scale(a + ac, log2e), *L.op("sigmoid_log2e"), label)
    v, vc = v_both[:N], v_both[N:]
    # integer part n of v, bit by bit from the top (v < 47): b_k = [vc >= 2^C (acc + 2^k)]
    acc = [0] * N
    factors = []
    for k in range(5, -1, -1):
        less = yield from engine.ltz(
            [(c - ((1 << (k + C)) + (x << C))) % p for c, x in zip(vc, acc)], L.op("sigmoid_bits"), label
        )
        b = [(1 - x) % p for x in less]
        acc = [(x + (bb << k)) % p for x, bb in zip(acc, b)]
        # factor 2^(2^k (1 - b)): the product over k is 2^(63 - n)
        factors.append([(1 + (1 - bb) * ((1 << (1 << k)) - 1)) % p for bb in b])
    t = [(vv - (x << FE) - (one >> 1)) % p for vv, x in zip(v, acc)]  # r - 1/2
    poly = yield from _poly(engine, t, EXP_COEFFS, L, label)
    while len(factors) > 1:  # exact integer products: 3 rounds
        pairs = [(factors[i], factors[i + 1]) for i in range(0, len(factors) - 1, 2)]
        flat = yield from engine.mul([x for a_, _ in pairs for x in a_], [x for _, b_ in pairs for x in b_], label)
        rest = factors[len(pairs) * 2 :]
        factors = [flat[i * N : (i + 1) * N] for i in range(len(pairs))] + rest
    u = yield from engine.mul_trunc(poly, factors[0], *L.op("sigmoid_exp"), label, fast=True)
    den = [(one + x) % p for x in u]
    y = [((3 << FE) - x) % p for x in den]  # 1.5 - den/2 with FE + 1 fractional bits
    shift, nbits = L.op("sigmoid_newton")
    # four steps, the first with y at FE + 1 bits
    for cut in (shift, FE, FE, FE):
        xy = yield from engine.mul_trunc(den, y, cut, nbits, label, fast=True)
        y = yield from engine.mul_trunc(y, [((2 << FE) - x) % p for x in xy], cut, nbits, label, fast=True)
    q = y
    both = yield from engine.mul(s + q, [(one - 2 * x) % p for x in q] + [(one - x) % p for x in q], label)
    prob = engine.add(q, both[:N])
    w = yield from engine.trunc_fast(both[N:], *L.op("weights"), label)
    return {"p": prob, "w": w, "s": s, "u": u}


# ---------------------------------------------------------------------------------
# the program
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Penalty:
    """The public constants of the penalty once the scales are open (all zero without one):
    ``hess[j]`` is ``l2 a_j^2`` and ``grad[j]`` multiplies ``b_j`` (``FB`` bits) into the raw
    gradient sums (``FE + 2 FX`` bits); ``k[j]`` the Jacobi exponents (0 for the intercept)."""

    hess: tuple[int, ...]
    grad: tuple[int, ...]
    k: tuple[int, ...]

    @classmethod
    def none(cls, n: int) -> _Penalty:
        return cls((0,) * n, (0,) * n, (0,) * n)

    @classmethod
    def of(cls, L: LogisticLayout, scales: Sequence[int]) -> _Penalty:
        raw = L.FE + 2 * L.FX
        # a_j^2 = P_j^2 4^-I gamma^2 with the opened P_j = 2^(I - e_j)
        a2 = [0.0] + [math.ldexp(P * P, -2 * L.params.int_bits) * L.gamma**2 for P in scales]
        return cls(
            tuple(round(math.ldexp(L.l2 * v, raw)) for v in a2),
            tuple(round(math.ldexp(L.l2 * v, raw - L.FB)) for v in a2),
            (0,) + tuple(min(L.jacobi(v), L.S) for v in a2[1:]),
        )


def _evaluate(
    engine: Engine, xt: list[list[int]], y_fe: list[int], b: list[int], L: LogisticLayout, pen: _Penalty
) -> Program[dict]:
    """Program: at coefficients ``b``: eta, the sigmoid, the penalised gradient ``g`` and
    Hessian ``A``, both divided by ``m`` via the public ``c_m`` and scaled by the Jacobi
    factors (``Q g`` and ``Q A Q``, ``FA`` bits)."""
    p, n, m, S = engine.prime, L.n, L.m, L.S
    eta = yield from engine.dot_trunc([(row, b) for row in xt], *L.op("eta"), "eta", fast=True)
    sig = yield from sigmoid_program(engine, eta, L)
    resid = engine.sub(y_fe, sig["p"])
    w = sig["w"]
    u = yield from engine.mul([w[i] for i in range(m) for _ in range(n)], [v for row in xt for v in row], "hessian")
    cols = [[xt[i][j] for i in range(m)] for j in range(n)]
    ucols = [[u[i * n + j] for i in range(m)] for j in range(n)]
    tri = [(j, k) for j in range(n) for k in range(j, n)]
    # gradient sums carry FX + FE bits, Hessian sums FE + 2 FX: align the gradient by 2^FX
    # the penalty's public diagonal and its gradient term ride in the truncation's offset
    offset = [pen.hess[j] if j == k else 0 for j, k in tri] + [(-pen.grad[j] * bj) % p for j, bj in enumerate(b)]
    h1 = yield from engine.dot_trunc(
        [(ucols[j], cols[k]) for j, k in tri] + [(engine.scale(cols[j], 1 << L.FX), resid) for j in range(n)],
        *L.op("hessian"), "hessian", offset=offset, fast=True,
    )
    k = pen.k
    factors = [L.c_m << (2 * S - k[j] - k[l]) for j, l in tri] + [L.c_m << (2 * S - k[j]) for j in range(n)]
    h2 = yield from engine.trunc_fast(engine.scale(h1, factors), *L.op("normalise"), "hessian")
    A = [[0] * n for _ in range(n)]
    for (j, k), v in zip(tri, h2):
        A[j][k] = A[k][j] = v
    return {"eta": eta, "sig": sig, "A": A, "g": h2[len(tri) :]}


def logistic_fit(
    engine: Engine,
    x: Sequence[Sequence[int]],
    y: Sequence[int],
    *,
    m: int,
    d: int,
    min_cell: int,
    l2: float = 0.0,
    max_iter: int = DEFAULT_MAX_ITER,
) -> Program[LogisticResult]:
    """Program: maximum-likelihood (or L2-penalised) logistic regression with intercept;
    every party gets the result.

    Args:
        engine: this party's engine, after :meth:`Engine.setup`.
        x: this party's shares of the features, ``m`` rows of ``d`` field elements, fixed-point
            encoded (``params.frac_bits``, ``|x| < 2**int_bits``), raw units.
        y: this party's shares of the 0/1 target encoded as 0 or ``2**frac_bits``.
        m, d: the public sizes.
        min_cell: both classes must have at least this many persons.
        l2: scikit-learn's ``LogisticRegression(C=1/l2)`` penalty ``l2/2 ||w||^2`` on the raw
            coefficients (public, finite, ``>= 0``; the intercept is not penalised). With
            ``l2 > 0`` the scales are opened after the class sizes and no standard errors
            are computed or opened (``se == ()``, ``intercept_se is None``; docs/logistic.md).
        max_iter: Newton iterations at most (one opened convergence bit each).

    Raises:
        AnalysisRefused: a class has fewer than ``min_cell`` persons (opened bit
            ``"small_class"``) or the fit separates the classes (opened bit ``"separation"``).
        ConfigError: bad arguments or a fixed-point budget the prime cannot hold, before the
            first round.
    """
    params = engine.params
    p, f = engine.prime, params.frac_bits
    if isinstance(l2, bool) or not (isinstance(l2, (int, float)) and math.isfinite(l2) and l2 >= 0):
        raise ConfigError(f"logistic: l2 must be a finite number of at least 0, got {l2!r}")
    if not isinstance(min_cell, int) or min_cell < 1:
        raise ConfigError(f"logistic: min_cell must be a positive integer, got {min_cell!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"logistic: max_iter must be a positive integer, got {max_iter!r}")
    if d < 1:
        raise ConfigError("logistic: needs at least one feature column")
    if not d + 2 <= m <= params.max_rows:
        raise ConfigError(f"logistic: the number of rows must be in [d + 2, max_rows = {params.max_rows}]")
    if len(x) != m or len(y) != m or any(len(row) != d for row in x):
        raise ValueError(f"logistic: x must be {m} rows of {d} shares and y {m} shares")
    L = LogisticLayout(params, m, d, float(l2))
    L.check()
    if 2 * min_cell > m:
        raise AnalysisRefused(
            f"logistic refused: {m} rows cannot hold two classes of min_cell = {min_cell} persons; nothing is opened"
        )
    n, FE, FB, FX = L.n, L.FE, L.FB, L.FX

    # ---- 1. class sizes ---------------------------------------------------------------
    n1 = sum(y) * pow(1 << f, -1, p) % p  # y is exactly 0 or 2^f: the count
    small = yield from engine.ltz([(n1 - min_cell) % p, (m - n1 - min_cell) % p], L.op("count"), "count")
    both = yield from engine.mul([small[0]], [small[1]], "count")
    opened = yield from engine.reveal([(small[0] + small[1] - both[0]) % p], "small_class")
    if opened[0]:
        raise AnalysisRefused(f"logistic refused: a class of the target has fewer than min_cell = {min_cell} persons")

    # ---- 2. secret powers of two 2^e_j >= sd_j, the standardised design -------------------
    sums = [sum(row[j] for row in x) % p for j in range(d)]
    sq = [sum(row[j] * row[j] for row in x) % p for j in range(d)]
    M = yield from engine.reshare([(m * a - s * s) % p for a, s in zip(sq, sums)], "scale")
    ts = list(range(L.SCALE_LO, params.int_bits))
    thresholds = [m * m << (2 * f + 2 * t) if t >= 0 else (m * m << (2 * f)) >> (-2 * t) for t in ts]
    below = yield from engine.ltz([(v - th) % p for th in thresholds for v in M], L.op("scale"), "scale")
    # P_j = 2^(I - e_j), e_j = SCALE_LO + J_j, J_j = number of thresholds M_jj reaches
    I, span = params.int_bits, L.span
    P = []
    for j in range(d):
        value = 1 << span  # J = 0
        for i in range(len(ts)):
            reached = (1 - below[i * d + j]) % p
            value += reached * ((1 << (span - i - 1)) - (1 << (span - i)))
        P.append(value % p)
    pen = _Penalty.none(n)
    if l2 > 0:  # the penalty in standardised units must be public: open the scales
        scales = yield from engine.reveal(P, "scale")
        pen = _Penalty.of(L, scales)
    Pc = engine.scale(P, L.c_m)
    centred = [(m * row[j] - sums[j]) % p for row in x for j in range(d)]
    raw = yield from engine.mul(centred + sums, [Pc[j] for _ in range(m) for j in range(d)] + Pc, "standardise")
    xs = yield from engine.trunc_fast(raw[: m * d], *L.op("standardise"), "standardise")
    nu = yield from engine.trunc_fast(raw[m * d :], *L.op("nu"), "standardise")
    one_x = 1 << FX
    xt = [[one_x] + xs[i * d : (i + 1) * d] for i in range(m)]
    y_fe = engine.scale(y, 1 << (FE - f))
    xty = yield from engine.dot_trunc(
        [([row[j] for row in xt], list(y)) for j in range(n)], *L.op("xty"), "standardise", fast=True
    )

    # ---- 3. Newton -------------------------------------------------------------------------
    b = [0] * n
    state = yield from _evaluate(engine, xt, y_fe, b, L, pen)
    box = 1 << (FB + L.BOX_BITS)
    tol = 1 << (2 * FB - 2 * L.TOL_BITS)
    converged = False
    iterations = 0
    for iteration in range(1, max_iter + 1):
        X, _ = yield from newton_schulz(engine, state["A"], L.solver, "schulz")
        # the step Q X (Q g): the outer Q as a public power of two before the truncation
        step = yield from engine.dot_trunc(
            [(engine.scale(X[j], 1 << (L.S - kj)), state["g"]) for j, kj in enumerate(pen.k)],
            *L.op("step"), "step", fast=True,
        )
        cand = engine.add(b, step)
        out = yield from engine.ltz([(box - v) % p for v in cand] + [(v + box) % p for v in cand], L.op("box"), "box")
        hi, lo = out[:n], out[n:]  # [cand > box], [cand < -box]
        fix = yield from engine.mul(
            hi + lo, [(box - v) % p for v in cand] + [(-box - v) % p for v in cand], "box"
        )
        new = [(c + u + v) % p for c, u, v in zip(cand, fix[:n], fix[n:])]
        change = engine.sub(new, b)
        ss = yield from engine.dot([(change, change)], "check")
        bit = yield from engine.ltz([(ss[0] - tol) % p], L.op("check"), "check")
        b = new
        iterations = iteration
        state = yield from _evaluate(engine, xt, y_fe, b, L, pen)
        done = yield from engine.reveal(bit, "converged")
        if done[0]:
            converged = True
            break
    if l2 == 0:  # the inverse Hessian at the final b, for the standard errors
        X, _ = yield from newton_schulz(engine, state["A"], L.solver, "schulz")

    # ---- 4. separation ----------------------------------------------------------------------
    sep = 1 << (FB + L.SEPARATION_BITS)
    far = yield from engine.ltz([(sep - 1 - v) % p for v in b] + [(v + sep - 1) % p for v in b], L.op("separation"), "separation")
    anyfar = yield from engine.ltz([-sum(far) % p], L.op("separation_any"), "separation")  # [count > 0]
    opened = yield from engine.reveal(anyfar, "separation")
    if opened[0]:
        if l2 > 0:
            raise AnalysisRefused(
                f"logistic refused: the fit nearly separates the classes and l2 = {l2} does not bound it "
                f"(a standardised coefficient reached 2**{L.SEPARATION_BITS}); use a larger l2"
            )
        raise AnalysisRefused(
            "logistic refused: the fit separates the classes (a standardised coefficient reached "
            f"2**{L.SEPARATION_BITS}); the maximum-likelihood estimate does not exist"
        )

    # ---- 5. outputs ------------------------------------------------------------------------
    NB = L.NOISE_BITS
    noise = engine.add_public(engine.random_bounded(2 * d, NB), -(3 << (NB - 1)))
    left = [((bj << NB) + u) % p for bj, u in zip(b[1:], noise[:d])]
    right = list(P)
    if l2 == 0:  # the variances: diagonal of X in raw units, and a^T X a for the intercept
        Xv = yield from engine.trunc_fast([X[j][k] for j in range(n) for k in range(n)], *L.op("x_out"), "output")
        Xv = [Xv[j * n : (j + 1) * n] for j in range(n)]
        nus = yield from engine.trunc_fast(nu, *L.op("nu_out"), "output")
        P2 = yield from engine.mul(P, P, "output")
        a_vec = [1 << L.FN2] + [(-v) % p for v in nus]
        q_raw = yield from engine.dot([(Xv[j], a_vec) for j in range(n)], "output")
        left += [((Xv[j + 1][j + 1] << NB) + u) % p for j, u in zip(range(d), noise[d:])]
        right += P2
    scaled = yield from engine.mul(left, right, "output")
    coef = yield from engine.trunc_fast(scaled[:d], *L.op("coefficients"), "output")
    pairs = [(b[1:], nu)]
    if l2 == 0:
        var = yield from engine.trunc_fast(scaled[d:], *L.op("variance"), "output")
        q = yield from engine.trunc_fast(q_raw, *L.op("intercept_q"), "output")
        pairs.append((a_vec, q))
    nudot = yield from engine.dot(pairs, "output")
    icpt = yield from engine.trunc_fast([((b[0] << L.FN) - nudot[0]) % p], *L.op("intercept"), "output")

    # log-likelihood at b: sum y eta - sum softplus(eta); softplus = eta (1 - s) + log(1 + u)
    sig = state["sig"]
    logs = yield from _poly(engine, [(v - round(LOG_CENTRE * 2**FE)) % p for v in sig["u"]], LOG_COEFFS, L, "loglik")
    pos = yield from engine.mul(state["eta"], [(1 - s) % p for s in sig["s"]], "loglik")
    t1 = yield from engine.dot_trunc([(b, xty)], *L.op("loglik_term"), "loglik", fast=True)
    ll = (t1[0] - sum(pos) - sum(logs)) % p

    coef_o = yield from engine.reveal(coef, "coefficients")
    icpt_o = yield from engine.reveal(icpt, "intercept")
    se: tuple[float, ...] = ()
    intercept_se = None
    if l2 == 0:
        var_o = yield from engine.reveal(var + [nudot[1]], "variance")
        h_scale = L.gamma / m  # H^-1 = X gamma / m
        se = tuple(math.sqrt(max(v / 2**L.OUT_VAR * L.gamma**2 * h_scale, 0.0)) for v in var_o[:d])
        intercept_se = math.sqrt(max(var_o[d] / 2 ** (L.FN2 + L.FQ) * h_scale, 0.0))
    ll_o = yield from engine.reveal([ll], "loglik")
    return LogisticResult(
        coefficients=tuple(c / 2**L.OUT * L.gamma for c in coef_o),
        se=se,
        intercept=icpt_o[0] / 2**L.OUT,
        intercept_se=intercept_se,
        loglik=ll_o[0] / 2**FE,
        iterations=iterations,
        converged=converged,
        n=m,
    )
