"""Degree-1 Shamir secret sharing among three parties over ``F_p`` (steps 7 and 8).

Parties are the evaluation points ``1`` (hospital), ``2`` (insurer) and ``3`` (TTP).
A secret ``s`` is shared as ``f(i)`` for a random line ``f(z) = s + a*z``: any two
shares determine ``s``, one share is uniform and says nothing about it.

The product of two degree-1 sharings is a degree-2 sharing; its secret is
``sum(LAGRANGE_DEGREE2[i] * h_i)`` with the weights ``(3, -3, 1)`` at the points
``1, 2, 3``. That is what the multiplication protocol of :mod:`mpcactors.mpc.engine`
reshares.

Everything here is a plain function on lists of ints: no I/O, no state.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Protocol

from ..errors import PeerProtocolError
from .fixedpoint import PRIME_192

__all__ = [
    "LAGRANGE_DEGREE2",
    "PARTIES",
    "PRIME",
    "InconsistentSharesError",
    "add",
    "lagrange_at_zero",
    "neg",
    "reconstruct",
    "scale",
    "share",
    "sub",
]

#: The default field modulus, ``2**192 - 237`` (prime, ``= 3 mod 4``).
PRIME = PRIME_192
#: Evaluation points of the three parties: hospital, insurer, TTP.
PARTIES: tuple[int, int, int] = (1, 2, 3)
#: Weights that recover ``h(0)`` of a degree-2 polynomial from ``h(1), h(2), h(3)``.
LAGRANGE_DEGREE2: dict[int, int] = {1: 3, 2: -3, 3: 1}


class InconsistentSharesError(PeerProtocolError):
    """Three shares that do not lie on one line: some party sent a wrong share."""


class RandomSource(Protocol):
    def randrange(self, n: int) -> int: ...


def lagrange_at_zero(points: Sequence[int], prime: int = PRIME) -> dict[int, int]:
    """Weights ``l_i`` with ``f(0) = sum(l_i * f(i))`` for every polynomial of degree ``< len(points)``.

    For a pair ``{i, j}`` these are ``j/(j-i)`` and ``i/(i-j)``; for ``(1, 2, 3)`` they are
    ``(3, -3, 1)`` (reduced mod ``prime``).
    """
    if len(set(points)) != len(points) or any(p % prime == 0 for p in points):
        raise ValueError("evaluation points must be distinct and non-zero")
    weights = {}
    for i in points:
        num, den = 1, 1
        for j in points:
            if j != i:
                num = num * j % prime
                den = den * (j - i) % prime
        weights[i] = num * pow(den, -1, prime) % prime
    return weights


def share(
    secret_values: Sequence[int], rng: RandomSource | None = None, prime: int = PRIME
) -> dict[int, list[int]]:
    """Share every value with a fresh random line; returns ``{party: shares}`` for parties 1, 2, 3.

    ``secret_values`` may be signed integers; they are reduced mod ``prime``.
    ``rng`` needs a ``randrange(n)`` method (``secrets.SystemRandom()`` by default; tests
    may pass a seeded ``random.Random``).
    """
    source = rng if rng is not None else secrets.SystemRandom()
    out: dict[int, list[int]] = {1: [], 2: [], 3: []}
    for s in secret_values:
        s %= prime
        a = source.randrange(prime)
        out[1].append((s + a) % prime)
        out[2].append((s + 2 * a) % prime)
        out[3].append((s + 3 * a) % prime)
    return out


def reconstruct(shares: Mapping[int, Sequence[int]], prime: int = PRIME) -> list[int]:
    """Recover the secrets (in ``[0, prime)``) from two or three parties' share vectors.

    With three parties the third share is checked against the line through the
    other two.

    Raises:
        ValueError: fewer than two parties, unknown points or unequal lengths.
        InconsistentSharesError: three shares that do not lie on a line (a peer
            sent a wrong share); the message names no value.
    """
    points = sorted(shares)
    if len(points) < 2 or any(p not in PARTIES for p in points):
        raise ValueError("need the shares of two or three of the parties 1, 2, 3")
    lengths = {len(shares[p]) for p in points}
    if len(lengths) != 1:
        raise ValueError("share vectors of different lengths")
    i, j = points[0], points[1]
    weights = lagrange_at_zero((i, j), prime)
    li, lj = weights[i], weights[j]
    si, sj = shares[i], shares[j]
    secrets_out = [(li * a + lj * b) % prime for a, b in zip(si, sj)]
    if len(points) == 3:
        k = points[2]
        # the line through (i, a) and (j, b) must pass through (k, c)
        inv = pow(j - i, -1, prime)
        for index, (a, b, c) in enumerate(zip(si, sj, shares[k])):
            slope = (b - a) * inv % prime
            if (secrets_out[index] + k * slope - c) % prime:
                raise InconsistentSharesError(
                    f"shares at position {index} do not lie on one line"
                )
    return secrets_out


def add(a: Sequence[int], b: Sequence[int], prime: int = PRIME) -> list[int]:
    """Element-wise ``a + b mod prime`` (shares of the sum)."""
    if len(a) != len(b):
        raise ValueError("vectors of different lengths")
    return [(x + y) % prime for x, y in zip(a, b)]


def sub(a: Sequence[int], b: Sequence[int], prime: int = PRIME) -> list[int]:
    """Element-wise ``a - b mod prime``."""
    if len(a) != len(b):
        raise ValueError("vectors of different lengths")
    return [(x - y) % prime for x, y in zip(a, b)]


def neg(a: Sequence[int], prime: int = PRIME) -> list[int]:
    """Element-wise ``-a mod prime``."""
    return [(-x) % prime for x in a]


def scale(a: Sequence[int], c: int, prime: int = PRIME) -> list[int]:
    """Element-wise ``c * a mod prime`` for a public integer ``c`` (may be negative)."""
    c %= prime
    return [x * c % prime for x in a]
