"""Measured statistical hiding of the masked openings inside trunc, trunc_fast and ltz.

Each of these opens ``a + 2**(k-1) + mask``; the claim (``docs/lasso.md``) is that what
any single party sees is within statistical distance ``2**-sigma`` of a distribution
that does not depend on ``a``. At a deliberately tiny ``sigma = 4`` that distance is
large enough to measure: the TTP (party 3) subtracts every mask part it knows (the two
PRSS parts its keys give it), and we compare its view for the two extreme inputs
``a = -2**(k-1)`` and ``a = 2**(k-1) - 1``.

The distinguisher is the best threshold test (the two-sample Kolmogorov-Smirnov
distance). For a view ``a + 2**(k-1) + U`` with ``U`` uniform on ``[0, W)`` (which is
what a PRSS part or a sum of random bits is to a party that misses it), a threshold
test is optimal and its advantage is the total variation distance ``2**k / W``: the
measurement is the real distance, not a lower bound.

Tolerance: with ``N`` samples per input the empirical CDFs are each within ``eps/2`` of
the true ones except with probability ``2 exp(-N eps**2 / 2)`` (Dvoretzky-Kiefer-
Wolfowitz, Massart's constant), so the measured advantage exceeds the true one by more
than ``eps = 0.025`` with probability below ``4 exp(-12.5) < 2e-5`` at ``N = 40000``.
The seeds are fixed, so the test is deterministic; the bound says the seed is not lucky.
"""

from __future__ import annotations

import random

import pytest

from mpcactors.crypto import shamir
from mpcactors.crypto.fixedpoint import Params
from mpcactors.mpc.engine import Engine, run_local

SIGMA = 4
PARAMS = Params(sigma=SIGMA, allow_insecure_sigma=True)
K, M = 12, 4
N = 40_000
EPS = 0.025  # sampling tolerance, see the module docstring


def threshold_advantage(xs: list[int], ys: list[int]) -> float:
    """``max_t |P[x >= t] - P[y >= t]|`` over all thresholds (equal sample sizes)."""
    events = sorted([(v, 0) for v in xs] + [(v, 1) for v in ys])
    best = gap = 0
    for index, (value, which) in enumerate(events):
        gap += 1 if which == 0 else -1
        if index + 1 == len(events) or events[index + 1][0] != value:
            best = max(best, abs(gap))
    return best / len(xs)


def ttp_view(monkeypatch, op: str, value: int, seed: int) -> list[int]:
    """Party 3's view of the opened values of ``op`` on ``N`` copies of ``value``."""
    engines = {i: Engine(i, PARAMS, b"mask distance %d" % seed) for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    ttp = engines[3]
    known_parts: list[list[int]] = []  # per random_bounded call: the two parts party 3 knows
    original_bounded = ttp.random_bounded

    def spy_bounded(n: int, bits: int) -> list[int]:
        nonce = ttp._nonce + 1  # the nonce random_bounded is about to draw
        parts = [ttp._prf_bounded(peer, nonce, b"bnd", n, bits) for peer in ttp.peers]
        known_parts.append([x + y for x, y in zip(*parts)])
        return original_bounded(n, bits)

    monkeypatch.setattr(ttp, "random_bounded", spy_bounded)
    opened: list[list[int]] = []
    original_open = ttp.open

    def spy_open(a, label="open"):
        out = yield from original_open(a, label)
        opened.append(out)
        return out

    monkeypatch.setattr(ttp, "open", spy_open)
    shares = shamir.share([value] * N, random.Random(seed), PARAMS.prime)
    if op == "ltz":
        run_local({i: e.ltz(shares[i], K) for i, e in engines.items()})
        weights = [1 << (K - 1)]  # the high mask is scaled by 2**(k-1)
    else:
        run_local({i: getattr(e, op)(shares[i], M, K) for i, e in engines.items()})
        # trunc: one PRSS value (the high mask, scaled by 2**m); trunc_fast: the low mask first
        weights = [1 << M] if op == "trunc" else [1, 1 << M]
    assert len(opened) == 1 and len(known_parts) == len(weights)
    known = [sum(w * part[q] for w, part in zip(weights, known_parts)) for q in range(N)]
    return [c - kn for c, kn in zip(opened[0], known)]


@pytest.mark.slow
@pytest.mark.parametrize("op", ["trunc", "trunc_fast", "ltz"])
def test_a_single_party_distinguishes_extreme_inputs_with_advantage_at_most_2_to_minus_sigma(monkeypatch, op):
    low = ttp_view(monkeypatch, op, -(1 << (K - 1)), seed=1)
    high = ttp_view(monkeypatch, op, (1 << (K - 1)) - 1, seed=2)
    advantage = threshold_advantage(low, high)
    # the masks really are that narrow: the advantage is not zero (the measurement works)
    assert advantage > 2**-SIGMA / 2
    assert advantage <= 2**-SIGMA + EPS, f"{op}: advantage {advantage:.4f} > 2**-{SIGMA} + {EPS}"
