"""The statistics behind the attack verdicts, with the standard library only (no SciPy at run time).

An attack's success is compared with the highest success rate that blind guessing
reaches with probability at least ``1 - ALPHA``: a binomial tail for independent
guesses, a hypergeometric one for claims drawn without replacement. The
Kolmogorov-Smirnov test checks values that should be uniform.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

__all__ = ["ALPHA", "binomial_threshold", "hypergeometric_threshold", "ks_uniform_pvalue", "subsample"]

#: False-alarm probability of one "attack succeeds" verdict when it has no advantage.
ALPHA = 1e-4


def _log_binomial_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def _upper_threshold(log_pmf: Any, low: int, high: int, alpha: float) -> int:
    """Smallest ``t`` in ``[low, high]`` with ``P(X > t) <= alpha``."""
    tail = 0.0
    for k in range(high, low - 1, -1):
        mass = math.exp(log_pmf(k))
        if tail + mass > alpha:
            return k
        tail += mass
    return low


def binomial_threshold(n: int, p: float, alpha: float = ALPHA) -> int:
    """Smallest ``t`` with ``P(Binomial(n, p) > t) <= alpha``."""
    if n <= 0:
        return 0
    return _upper_threshold(lambda k: _log_binomial_pmf(k, n, p), 0, n, alpha)


def hypergeometric_threshold(population: int, good: int, draws: int, alpha: float = ALPHA) -> int:
    """Smallest ``t`` with ``P(X > t) <= alpha`` for ``X`` the good items in ``draws``
    drawn without replacement from ``population`` items of which ``good`` are good."""
    low, high = max(0, draws + good - population), min(draws, good)

    def log_comb(a: int, b: int) -> float:
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    total = log_comb(population, draws)
    return _upper_threshold(lambda k: log_comb(good, k) + log_comb(population - good, draws - k) - total, low, high, alpha)


def ks_uniform_pvalue(samples: Sequence[float]) -> tuple[float, float]:
    """Kolmogorov-Smirnov test of ``samples`` against Uniform(0, 1): ``(D, p-value)``.

    Uses the asymptotic Kolmogorov distribution with Stephens' small-sample
    correction, accurate to a few percent for ``n >= 5`` (enough for a verdict).
    """
    xs = sorted(samples)
    n = len(xs)
    if n == 0:
        return 0.0, 1.0
    d = max(max((i + 1) / n - x, x - i / n) for i, x in enumerate(xs))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    if lam < 0.2:
        return d, 1.0
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(max(p, 0.0), 1.0)


def subsample(indices: Sequence[int], size: int, rng: random.Random) -> list[int]:
    """At most ``size`` of ``indices``: all of them, or a random sample without replacement."""
    return list(indices) if len(indices) <= size else rng.sample(list(indices), size)
