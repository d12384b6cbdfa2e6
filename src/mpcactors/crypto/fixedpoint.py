"""Fixed-point encoding, statistical masks and every bit budget of the protocol.

This module is the single owner of the numbers that must agree across steps:

* attribute values are reals ``x`` with a declared bound ``|x| < 2**int_bits``;
  they are encoded as integers ``round(x * 2**frac_bits)`` (signed);
* an encoded value ``v`` therefore satisfies ``|v| < 2**(value_bits - 1)``; adding
  ``offset = 2**(value_bits - 1)`` makes it non-negative and below ``2**value_bits``;
* step 5 masks are uniform in ``[0, 2**mask_bits)`` with
  ``mask_bits = value_bits + sigma``: the masked value ``v + offset + 2**mask_bits - r``
  is within statistical distance ``2**-sigma`` of uniform, whatever ``v`` is, and stays
  in ``[1, 2**slot_bits)`` with ``slot_bits = mask_bits + 1``; so a Paillier plaintext
  packs ``slots`` of those side by side with no carry or borrow between them;
* step 7 reduces the integer additive shares modulo a fixed prime; step 8 needs that
  prime to hold every value it truncates or compares plus ``sigma + 3`` bits of
  headroom for the statistical mask (Catrina and de Hoogh, SCN 2010). Step 8's
  fixed-point layout (:class:`LassoLayout`) lives here too, so :class:`Params` can refuse
  at construction every combination the secure lasso could not run.

The defaults (``frac_bits = 24``, ``int_bits = 20``, ``sigma = 40``,
``p = 2**192 - 237``) are what ``docs/lasso.md`` measures; ``docs/crypto.md`` lists
which combinations are accepted and why.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["LASSO_MAX_COLUMNS", "LASSO_TOL", "MIN_SIGMA", "PRIME_192", "LassoLayout", "OutOfBoundError", "Params"]

#: 2**192 - 237: prime and congruent to 3 mod 4 (square roots are one exponentiation).
PRIME_192 = 2**192 - 237
#: The smallest ``sigma`` accepted without ``allow_insecure_sigma``: statistical distance
#: ``2**-40`` per masked value (docs/threat-model.md has the per-run union bound).
MIN_SIGMA = 40
#: The most feature columns the secure lasso takes (its budgets are checked up to this).
LASSO_MAX_COLUMNS = 256
#: The lasso's default stopping tolerance (the budgets are checked at this one).
LASSO_TOL = 5e-6


class OutOfBoundError(ValueError):
    """A value does not fit the declared fixed-point bound. Names the value's label."""


@dataclass(frozen=True, slots=True)
class Params:
    """Numeric parameters shared by every party of one run (they must agree).

    Construction checks every budget of steps 5 to 8: an accepted ``Params`` runs the
    secure lasso for every ``m <= max_rows``, ``d <= LASSO_MAX_COLUMNS``, ``alpha`` in
    ``[2**-frac_bits, 2**int_bits)``, with or without a target scale, at the default
    tolerance (:meth:`lasso_layout`). Otherwise :class:`ConfigError` names the parameter.

    Attributes:
        frac_bits: fractional bits ``f`` of the fixed-point encoding.
        int_bits: every attribute value satisfies ``|x| < 2**int_bits``.
        sigma: statistical security parameter for masks (bits); at least
            :data:`MIN_SIGMA` unless ``allow_insecure_sigma``.
        max_rows: an upper bound on the intersection size ``m`` used by step 8.
        prime: the Shamir field modulus of steps 7 and 8.
        allow_insecure_sigma: **tests only**: accept ``sigma < MIN_SIGMA``, which lets
            the parties learn about each other's values (short masks).
    """

    frac_bits: int = 24
    int_bits: int = 20
    sigma: int = 40
    max_rows: int = 2**21
    prime: int = PRIME_192
    allow_insecure_sigma: bool = False

    def __post_init__(self) -> None:
        for name in ("frac_bits", "int_bits", "sigma", "max_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"parameter {name} must be a positive integer, got {value!r}")
        if self.sigma < MIN_SIGMA and self.allow_insecure_sigma is not True:
            raise ConfigError(
                f"parameter sigma = {self.sigma} is below the statistical security floor "
                f"{MIN_SIGMA}: masks that short let the parties learn each other's values"
            )
        for layout in self._extreme_lasso_layouts():
            layout.check()

    # ---- encoded values and masks (steps 3 to 6) ---------------------------------
    @property
    def value_bits(self) -> int:
        """``k``: an encoded value satisfies ``|v| < 2**(k - 1)``."""
        return self.int_bits + self.frac_bits + 1

    @property
    def offset(self) -> int:
        """Added to an encoded value to make it non-negative, below ``2**value_bits``."""
        return 1 << (self.value_bits - 1)

    @property
    def mask_bits(self) -> int:
        """Masks are uniform in ``[0, 2**mask_bits)``."""
        return self.value_bits + self.sigma

    @property
    def slot_bits(self) -> int:
        """Width of one packed slot: a masked value plus one carry-guard bit."""
        return self.mask_bits + 1

    def slots(self, modulus_bits: int) -> int:
        """How many slots fit a Paillier plaintext of a ``modulus_bits``-bit modulus.

        The packed integer stays below ``2**(modulus_bits - 2) <= n / 2``, so the centred
        decryption returns it unchanged (non-negative).
        """
        count = (modulus_bits - 2) // self.slot_bits
        if count < 1:
            raise ConfigError(
                f"a {modulus_bits}-bit Paillier modulus cannot hold one {self.slot_bits}-bit slot"
            )
        return count

    # ---- step 8 ------------------------------------------------------------------
    @property
    def gram_bits(self) -> int:
        """Magnitude bits of the step-8 Gram sums ``sum_i x_i x_j`` over ``max_rows`` rows."""
        return 2 * (self.value_bits - 1) + math.ceil(math.log2(self.max_rows))

    @property
    def required_field_bits(self) -> int:
        """Bits the prime must exceed for the widest step-8 truncation or comparison."""
        return max(layout.required_field_bits for layout in self._extreme_lasso_layouts())

    @property
    def field_bits(self) -> int:
        """``floor(log2 p)``: the prime exceeds ``2**field_bits``."""
        return self.prime.bit_length() - 1

    @property
    def field_bytes(self) -> int:
        """Bytes of one field element on the wire (a share in steps 7 and 8)."""
        return (self.prime.bit_length() + 7) // 8

    def lasso_layout(
        self, *, rows: int, columns: int, alpha: float, tol: float = LASSO_TOL, target_scaled: bool = True
    ) -> LassoLayout:
        """Step 8's widths for one run's public sizes (:class:`LassoLayout`); unchecked."""
        return LassoLayout(self, rows=rows, columns=columns, alpha=alpha, tol=tol, target_scaled=target_scaled)

    def _extreme_lasso_layouts(self) -> Iterator[LassoLayout]:
        """The layouts at the corners of every argument range :class:`Params` guarantees.

        Every width and shift is monotone in ``bitlen(m)``, ``bitlen(d)`` and ``alpha``,
        so checking the corners checks every run in between.
        """
        smallest_alpha = 2.0**-self.frac_bits
        largest_alpha = math.nextafter(2.0**self.int_bits, 0.0)
        for rows in (4, max(4, self.max_rows)):
            for columns in (1, LASSO_MAX_COLUMNS):
                for alpha in (smallest_alpha, largest_alpha):
                    for target_scaled in (False, True):  # without a target scale first: it needs more
                        yield self.lasso_layout(rows=rows, columns=columns, alpha=alpha, target_scaled=target_scaled)

    # ---- encoding ----------------------------------------------------------------
    @property
    def bound(self) -> float:
        """The declared real bound: every value satisfies ``|x| < bound``."""
        return float(2**self.int_bits)

    def encode(self, values: Iterable[float], *, label: str = "value") -> list[int]:
        """Encode reals as signed integers ``round(x * 2**frac_bits)``.

        Raises:
            OutOfBoundError: a value is not finite or ``|x| >= 2**int_bits``; the
                message names ``label`` and the position (never the value itself,
                which may be a secret).
        """
        scale = 1 << self.frac_bits
        limit = self.offset
        out = []
        for index, x in enumerate(values):
            if not math.isfinite(x) or abs(x) >= self.bound:
                raise OutOfBoundError(
                    f"{label} at position {index} is outside the fixed-point bound "
                    f"|x| < 2**{self.int_bits}"
                )
            v = round(x * scale)
            if abs(v) >= limit:  # only reachable by rounding at the very edge
                raise OutOfBoundError(f"{label} at position {index} rounds past the bound")
            out.append(int(v))
        return out

    def decode(self, values: Iterable[int]) -> list[float]:
        """Inverse of :meth:`encode` (up to the ``2**-frac_bits`` rounding)."""
        scale = float(1 << self.frac_bits)
        return [int(v) / scale for v in values]

    def masks(self, count: int) -> list[int]:
        """``count`` statistical masks, uniform in ``[0, 2**mask_bits)``, from a CSPRNG."""
        bits = self.mask_bits
        return [secrets.randbits(bits) for _ in range(count)]

    def centred(self, value: int) -> int:
        """Map a field element to the centred range ``(-p/2, p/2]``."""
        value %= self.prime
        return value - self.prime if value > self.prime // 2 else value

    def check_encoded(self, values: Sequence[int], *, label: str = "value") -> None:
        """Raise :class:`OutOfBoundError` unless every encoded ``|v| < offset``."""
        limit = self.offset
        for index, v in enumerate(values):
            if not -limit < v < limit:
                raise OutOfBoundError(f"{label} at position {index} is outside the encoded bound")


#: A truncation's ``(shift, bits)``: ``Engine.trunc(a, shift, bits)`` for signed ``bits``-bit ``a``.
Trunc = tuple[int, int]


class LassoLayout:
    """Every fixed-point width of step 8 (``mpc/lasso.py``) for one run's public sizes.

    ``mpc/lasso.py`` takes each truncation's ``(shift, bits)`` and each comparison's
    ``bits`` from here, so :meth:`check` sees exactly what the engine will be asked to
    do: ``0 < shift < bits``, ``bits + sigma + 3 <= field_bits`` (one bit more for
    ``trunc_fast``), and the secret powers of two of the Jacobi scaling exact with
    ``frac_bits`` fractional bits. ``docs/lasso.md`` ("Numbers") derives the widths.
    """

    #: |z| < 2**COEF_BITS for every iterate, in preconditioned units
    COEF_BITS = 10
    #: fractional bits of everything after the Gram phase (iterates, A, c, tau, R^2)
    ITER_FRAC_BITS = 32
    #: fractional bits of the owner-scaled covariance (Jacobi factors reach 2**24)
    SCALED_FRAC_BITS = 64
    #: fractional bits of the revealed coefficients and intercept
    OUT_FRAC_BITS = 48
    #: owner scales are clamped to [2**MIN_SCALE_EXP, 2**int_bits]
    MIN_SCALE_EXP = -8
    #: the Jacobi search covers column variances down to 2**JACOBI_LO (scaled units)
    JACOBI_LO = -32
    #: ... and the target's variance down to 2**TARGET_JACOBI_LO when it has no owner scale
    TARGET_JACOBI_LO = -48
    #: bits of the public reciprocals of m**2 and m used for centring and the means
    CENTRE_BITS = 50
    MEAN_BITS = 40
    #: significant bits of the public alpha, and fractional bits of the public momentum
    ALPHA_BITS = 40
    BETA_BITS = 12
    #: width of the PRSS value behind the granularity noise of the outputs
    NOISE_BITS = 72
    #: the step size's power-of-two search starts at 2**STEP_LO (||G||_F^2 >= d/16)
    STEP_LO = -4

    def __init__(self, params: Params, *, rows: int, columns: int, alpha: float, tol: float, target_scaled: bool) -> None:
        self.params = params
        f, I = params.frac_bits, params.int_bits
        B, FI, FG, OUT = self.COEF_BITS, self.ITER_FRAC_BITS, self.SCALED_FRAC_BITS, self.OUT_FRAC_BITS
        self.e = e = rows.bit_length()
        self.logd = logd = columns.bit_length()
        self.target_lo = self.JACOBI_LO if target_scaled else self.TARGET_JACOBI_LO
        #: s_j <= 2**smax_x for features and 2**smax_y for the target
        self.smax_x = -self.JACOBI_LO // 2 - 1
        self.smax_y = -self.target_lo // 2 - 1
        smax = max(self.smax_x, self.smax_y)
        #: real bounds (log2): sigma_j <= 2**lsig, rho_y <= 2**lrho
        self.lsig = self.smax_x - self.MIN_SCALE_EXP
        self.lrho = self.smax_y - (self.MIN_SCALE_EXP if target_scaled else I)
        self.sig_bits = self.lsig + self.lrho + 1
        log_alpha = math.ceil(math.log2(alpha))
        #: fractional bits of q = sigma_j rho_y, of eta * alpha, and of tol**2
        self.q_frac = FQ = FI + 3 + max(0, log_alpha)
        self.alpha_frac = max(0, self.ALPHA_BITS - log_alpha)
        self.tol_frac = max(0, math.ceil(-2 * math.log2(tol)) + 6)
        #: fractional bits of 1 / rho_y and of the coefficient factors pi_j
        self.r_y_frac = RB = 8 + f
        self.pi_frac = I + f + RB
        self.lpi = self.lsig + I + 1
        self.licpt = max(self.smax_y, self.smax_x + B + logd) + 1
        self.tau_bits = B + 2 + logd + FQ + FI + 3
        self.step_hi = 2 * logd + 2  # ||G||_F^2 <= d**2
        rss_bits = 2 * (B + FI) + 2 * logd + 4
        # ---- truncations (shift, bits) and comparisons (bits), in program order ----
        self.centre: Trunc = (2 * e - 2, 2 * e + 2 * I + 2 * f + 2)  # trunc_fast
        self.covariance: Trunc = (self.CENTRE_BITS, 2 * I + 2 * f + 4 + self.CENTRE_BITS)
        self.owner_scale: Trunc = (2 * f + 2 * I - FG, 2 * f + 2 * I + 2)
        self.means: Trunc = (f + I + e + self.MEAN_BITS - FG, e + f + I + self.MEAN_BITS + 3)  # trunc_fast
        self.jacobi = FG + 4
        self.g_hat: Trunc = (FG + 2 * f - FI, FG + 2 * f + 3)
        self.mean_hat: Trunc = (FG + f - FI, FG + f + smax + 3)
        self.frobenius: Trunc = (FI, 2 * FI + 2 * logd + 4)
        self.step_search = FI + self.step_hi + 3
        self.step_newton = 2 * FI + self.step_hi + 4  # inv_sqrt: shifts FI and FI + 1
        self.step_matrix: Trunc = (FI, 2 * FI + 6)
        self.q: Trunc = (2 * I + 2 * f - FQ, 2 * I + 2 * f + self.sig_bits + 1)
        self.q_clamp = FQ + self.sig_bits + 2
        self.theta: Trunc = (self.alpha_frac, FI + self.ALPHA_BITS + 6)
        self.tau: Trunc = (FQ, self.tau_bits)
        self.tau_clamp = self.tau_bits - FQ + 2
        self.soft = B + FI + 2
        #: tau -+ (A v + c), truncated by FI + BETA_BITS to `soft` bits and compared with 0 in
        #: one opening (Engine.dot_trunc_ltz): the comparison's width plus the shift
        self.iterate: Trunc = (FI + self.BETA_BITS, self.soft + FI + self.BETA_BITS)
        self.check_bits = 2 * (B + 1 + FI) + logd + self.tol_frac + 4
        self.g_gamma: Trunc = (FI, B + 2 * FI + logd + 3)
        self.rss: Trunc = (FI, rss_bits)
        self.tss_newton = 2 * FI + 4
        self.r2: Trunc = (FI, rss_bits + 3)
        self.pi_out: Trunc = (self.pi_frac - OUT, self.lpi + self.pi_frac + 2)
        self.pi_noise: Trunc = (self.pi_frac - f, self.lpi + self.pi_frac + 2)
        self.r_y_noise: Trunc = (RB - f, I + 1 + RB + 2)
        self.intercept: Trunc = (FI, self.licpt + 2 * FI + 1)
        self.coefficients: Trunc = (FI, B + self.lpi + FI + OUT + 2)
        self.intercept_out: Trunc = (FI + RB - OUT, self.licpt + I + 1 + FI + RB + 2)
        self.noise: Trunc = (self.NOISE_BITS + f - (OUT - FI), self.NOISE_BITS + 2 + self.lpi + f + 1)

    def operations(self) -> Iterator[tuple[str, str, int | None, int]]:
        """``(label, kind, shift, bits)`` of every truncation and comparison; kind is
        ``"trunc"``, ``"trunc_fast"`` or ``"ltz"`` (shift ``None``).

        Every :data:`Trunc` attribute is a truncation, so a new one is checked as soon as
        it is declared; comparisons and the Newton steps are listed by name.
        """
        fast = {"centre", "means", "iterate"}
        newton = {"step_newton": (self.ITER_FRAC_BITS + 1, self.step_newton),
                  "tss_newton": (self.ITER_FRAC_BITS, self.tss_newton)}
        comparisons = ("jacobi", "step_search", "q_clamp", "tau_clamp", "soft", "check_bits")
        for label, value in vars(self).items():
            if label in comparisons:
                yield label, "ltz", None, value
            elif label in newton:
                yield label, "trunc", *newton[label]
            elif isinstance(value, tuple) and not (label == "theta" and self.alpha_frac == 0):
                yield label, "trunc_fast" if label in fast else "trunc", *value

    @property
    def required_field_bits(self) -> int:
        """``floor(log2 p)`` this layout needs: the widest operation plus ``sigma + 3``."""
        return max(bits + (kind == "trunc_fast") for _, kind, _, bits in self.operations()) + self.params.sigma + 3

    def check(self, blame: str = "") -> None:
        """Raise :class:`ConfigError` unless the engine can run every operation.

        ``blame`` names what the caller lets vary (default: the :class:`Params` fields).
        """
        p = self.params
        blame = blame or (
            f"parameters frac_bits = {p.frac_bits}, int_bits = {p.int_bits}, sigma = {p.sigma} "
            f"and max_rows = {p.max_rows}"
        )
        smax = max(self.smax_x, self.smax_y)
        if p.frac_bits < smax:
            raise ConfigError(
                f"parameter frac_bits = {p.frac_bits} is too small: step 8 scales columns by secret "
                f"powers of two down to 2**-{smax}, exact only with frac_bits >= {smax}"
            )
        for label, kind, shift, bits in self.operations():
            if shift is not None and not 0 < shift < bits:
                hint = "raise frac_bits or int_bits" if shift <= 0 else "lower frac_bits"
                raise ConfigError(
                    f"parameters frac_bits = {p.frac_bits} and int_bits = {p.int_bits} do not fit step 8: "
                    f"its {label} truncation would shift a {bits}-bit value by {shift} bits ({hint})"
                )
        need = self.required_field_bits
        if need > p.field_bits:
            label = max(self.operations(), key=lambda op: op[3] + (op[1] == "trunc_fast"))[0]
            raise ConfigError(
                f"{blame} need a Shamir prime above 2**{need} in step 8 (its {label} "
                f"operation), but the prime has {p.field_bits} bits: lower one of them"
            )
