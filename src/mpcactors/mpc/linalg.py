"""Secure inverse of a Jacobi-scaled symmetric positive definite matrix (Newton-Schulz).

A reusable building block of the regression programs (``mpc/linear.py``; the Newton
step of ``mpc/logistic.py``). ``docs/linear.md`` explains the choice against Cholesky or
Gauss-Jordan elimination.

Contract. The input ``A`` (``d x d``, shares with ``F = frac_bits`` fractional bits) is
symmetric positive semidefinite with ``lambda_max <= trace <= 2**a`` for the public
:attr:`SpdLayout.start_exp` ``a``: by default ``2**a >= 1.02 d``, for a diagonal in
``[1/4, 1.02)`` (a Jacobi-scaled Gram matrix, e.g. from ``describe``'s secret power-of-two
normalisation); a caller with a tighter public bound on the trace passes it as
``max_trace`` (logistic regression's Hessian over ``m``: ``d / 4``). The iteration

    X_0 = 2**-a I,    X_(k+1) = 2 X_k - X_k (A X_k)

squares the residual ``R_k = I - A X_k`` every step (``R_(k+1) = R_k**2``), so after the public number
:attr:`SpdLayout.iterations` of steps every eigenvalue ``lambda >= 2**-cond_bits`` has
converged to ``2**-F`` relative: a fixed schedule whose rounds do not depend on the data.
Newton's iteration is self-correcting, so the truncation errors of early steps vanish
and the result is accurate to about ``d 2**-F / lambda_min``. The product is formed as
``X (A X)`` with the full ``A X`` and only the upper triangle of ``X (A X)`` (symmetric in
exact arithmetic for any symmetric ``X``): symmetrising ``A X`` instead would add the
commutator ``[A, E]`` of the iterate's error ``E`` to the residual, which ``X`` then
amplifies by its norm every step (measured: it diverges once ``|X| > 2**13``).

Singularity. The trace of the last residual ``R_(k-1)`` (before the final update) is
below ``2**-THRESHOLD_BITS`` when every eigenvalue ``>= 2**-cond_bits`` has converged
(its rounding noise, about ``d 2**(cond_bits - F)``, is kept 16 times below that); a
matrix with an eigenvalue below about ``2**-(cond_bits + 3)`` (collinear columns) leaves
it near 1. The program returns shares of the bit ``[trace(R_(k-1)) >= 2**-THRESHOLD_BITS]``
unopened: the caller reveals it under its own label (one bit) and refuses the analysis
when it is 1. When the bit is 0 every eigenvalue of the returned inverse has converged to
``2**-(2 THRESHOLD_BITS)`` relative or better.

:func:`newton_schulz` is the iteration alone (no comparison, for a caller that does not
test singularity); :func:`spd_inverse` adds the singular bit.

Only the masked values inside truncations and the one comparison are opened here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..crypto.fixedpoint import Params
from ..errors import ConfigError
from .engine import Engine, Program

__all__ = ["THRESHOLD_BITS", "SpdLayout", "newton_schulz", "spd_inverse"]

#: the singular bit is ``[trace(R_(k-1)) >= 2**-THRESHOLD_BITS]``
THRESHOLD_BITS = 16


@dataclass(frozen=True)
class SpdLayout:
    """Every width of :func:`spd_inverse` for a ``d x d`` matrix.

    Attributes:
        params: the run's parameters (the prime and ``sigma`` bound every width).
        d: the matrix size (public).
        frac_bits: ``F``, fractional bits of the input, the iterates and the result.
        cond_bits: every eigenvalue at least ``2**-cond_bits`` converges (so a condition
            number up to about ``2**(cond_bits + a)``); smaller ones raise the singular bit.
        max_trace: a public bound on ``trace(A)`` (``None``: ``1.02 d``, the Jacobi-scaled
            contract); it fixes the start ``2**-a`` and with it the schedule.
        singular_bit: whether :func:`spd_inverse` (with the singular bit) will run; ``False``
            for :func:`newton_schulz` alone, which drops the bit's precision rule.
    """

    params: Params
    d: int
    frac_bits: int = 52
    cond_bits: int = 24
    max_trace: float | None = None
    singular_bit: bool = True

    @property
    def start_exp(self) -> int:
        """``a`` with ``X_0 = 2**-a I`` and ``2**a >= max_trace >= lambda_max``."""
        bound = 1.02 * self.d if self.max_trace is None else self.max_trace
        return max(0, math.ceil(math.log2(bound)))

    @property
    def iterations(self) -> int:
        """Steps until ``(1 - 2**-(cond_bits + a))**(2**k) <= 2**-F``, plus one: the last
        residual tested (``R_(k-1)``) is then below ``2**-F`` at ``lambda = 2**-cond_bits``."""
        need = math.log2(self.frac_bits * math.log(2)) + self.cond_bits + self.start_exp
        return math.ceil(need) + 1

    @property
    def iterate_bits(self) -> int:
        """``|X_k| < 2**iterate_bits`` (real): each step at most doubles an eigenvalue of ``X``."""
        return self.iterations - self.start_exp + 1

    @property
    def product_bits(self) -> int:
        """Raw products ``A X`` and ``X (A X)`` (entries of ``A`` and ``A X`` below 2, sums of ``d``)."""
        return 2 * self.frac_bits + self.iterate_bits + max(1, math.ceil(math.log2(self.d))) + 3

    @property
    def check_bits(self) -> int:
        """The comparison of ``trace(R)`` (``|.| < 2 d``) with the threshold."""
        return self.frac_bits + max(1, math.ceil(math.log2(self.d))) + 3

    def check(self) -> None:
        """Raise :class:`ConfigError` (naming the parameter) unless every operation fits."""
        if self.d < 1:
            raise ConfigError(f"spd_inverse: the matrix size d must be at least 1, got {self.d}")
        if self.cond_bits < 1:
            raise ConfigError(f"spd_inverse: cond_bits must be positive, got {self.cond_bits}")
        if self.max_trace is not None and not (math.isfinite(self.max_trace) and self.max_trace > 0):
            raise ConfigError(f"spd_inverse: max_trace must be a positive number, got {self.max_trace!r}")
        # the rounding noise of the residual, d 2**(cond_bits - F + 2), stays 16 times below
        # the threshold (only for the singular bit); and a slightly negative eigenvalue
        # (rounding of A, at most 2 d 2**-F) does not grow during the schedule
        # (2**(k - a) 2 d 2**-F < 2**-4)
        logd = math.ceil(math.log2(self.d)) if self.d > 1 else 0
        least = self.iterations - self.start_exp + logd + 6
        if self.singular_bit:
            least = max(least, self.cond_bits + THRESHOLD_BITS + logd + 6)
        if self.frac_bits < least:
            raise ConfigError(
                f"spd_inverse: frac_bits = {self.frac_bits} is too few for cond_bits = {self.cond_bits} "
                f"with d = {self.d}: need at least {least}"
            )
        need = self.product_bits + 1 + self.params.sigma + 3
        if need > self.params.field_bits:
            raise ConfigError(
                f"spd_inverse: frac_bits = {self.frac_bits}, cond_bits = {self.cond_bits} and d = {self.d} "
                f"with sigma = {self.params.sigma} need a Shamir prime above 2**{need}, "
                f"but the prime has {self.params.field_bits} bits"
            )


def spd_inverse(
    engine: Engine, a: Sequence[Sequence[int]], layout: SpdLayout, label: str = "solve"
) -> Program[tuple[list[list[int]], int]]:
    """Program: shares of ``A**-1`` (``F`` fractional bits, symmetric) and of the singular bit.

    Args:
        engine: this party's engine.
        a: this party's shares of ``A`` (``d x d``, symmetric: only ``a[j][k]`` with
            ``j <= k`` are read), as the module docstring requires.
        layout: the widths; call :meth:`SpdLayout.check` before the first round.
        label: the label of every exchange (statistics and masked openings).

    Returns:
        ``(X, singular)``: the inverse as a full symmetric matrix of shares and the share
        of ``[trace(R_(k-1)) >= 2**-THRESHOLD_BITS]``, not opened.

    Rounds: ``2 * layout.iterations`` plus one comparison. Communication per step: two
    products fused with their truncations (:meth:`Engine.dot_trunc`), of ``d**2`` elements
    (``A X``) and of ``d (d + 1) / 2``.
    """
    if not layout.singular_bit:
        raise ValueError("spd_inverse: the layout was checked without the singular bit's rule")
    x, trace = yield from newton_schulz(engine, a, layout, label)
    threshold = 1 << (layout.frac_bits - THRESHOLD_BITS)
    singular = yield from engine.ltz([(threshold - 1 - trace) % engine.prime], layout.check_bits, label)
    return x, singular[0]


def newton_schulz(
    engine: Engine, a: Sequence[Sequence[int]], layout: SpdLayout, label: str = "solve"
) -> Program[tuple[list[list[int]], int]]:
    """Program: the fixed Newton-Schulz schedule of :func:`spd_inverse` without the comparison.

    Returns ``(X, trace)``: the inverse as a full symmetric matrix of shares (``F``
    fractional bits) and shares of ``trace(R_(k-1))``, the residual before the last update
    (``F`` bits; ``|.| < 2 d``). Nothing is opened but the truncations' masked values.
    Rounds: ``2 * layout.iterations``.
    """
    p = engine.prime
    d, F = layout.d, layout.frac_bits
    if len(a) != d or any(len(row) != d for row in a):
        raise ValueError(f"spd_inverse: the matrix must be {d} x {d}")
    tri = [(j, k) for j in range(d) for k in range(j, d)]
    one = 1 << F
    x = [[(one >> layout.start_exp) if j == k else 0 for k in range(d)] for j in range(d)]
    sym_a = [[a[min(j, k)][max(j, k)] for k in range(d)] for j in range(d)]
    bits = layout.product_bits
    trace = 0
    for _ in range(layout.iterations):
        flat = yield from engine.dot_trunc([(sym_a[j], x[k]) for j in range(d) for k in range(d)], F, bits, label, fast=True)
        ax_cols = [[flat[j * d + k] for j in range(d)] for k in range(d)]  # column k of A X
        xax = yield from engine.dot_trunc([(x[j], ax_cols[k]) for j, k in tri], F, bits, label, fast=True)
        trace = (d * one - sum(flat[j * d + j] for j in range(d))) % p  # trace(I - A X_k)
        x = _symmetric(d, tri, [(2 * x[j][k] - v) % p for (j, k), v in zip(tri, xax)])
    return x, trace


def _symmetric(d: int, tri: list[tuple[int, int]], values: list[int]) -> list[list[int]]:
    out = [[0] * d for _ in range(d)]
    for (j, k), v in zip(tri, values):
        out[j][k] = out[k][j] = v
    return out
