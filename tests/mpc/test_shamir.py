"""Degree-1 Shamir sharing among the three parties (crypto/shamir.py)."""

from __future__ import annotations

import random

import pytest
from scipy.stats import chi2

from mpcactors.crypto import shamir
from mpcactors.crypto.shamir import PRIME as P

EDGES = [0, 1, -1, P - 1, P // 2, -(P // 2), 2**190, -(2**190)]


def test_lagrange_weights():
    assert shamir.lagrange_at_zero((1, 2, 3)) == {1: 3, 2: P - 3, 3: 1}
    for i, j in [(1, 2), (1, 3), (2, 3)]:
        w = shamir.lagrange_at_zero((i, j))
        assert w[i] == j * pow(j - i, -1, P) % P
        assert w[j] == i * pow(i - j, -1, P) % P
    with pytest.raises(ValueError):
        shamir.lagrange_at_zero((1, 1))


@pytest.mark.parametrize("pair", [(1, 2), (1, 3), (2, 3), (1, 2, 3)])
def test_every_pair_reconstructs(pair):
    rng = random.Random(7)
    secrets_in = EDGES + [rng.randrange(-(2**100), 2**100) for _ in range(200)]
    shares = shamir.share(secrets_in, rng)
    got = shamir.reconstruct({i: shares[i] for i in pair})
    assert got == [s % P for s in secrets_in]


def test_three_inconsistent_shares_are_detected():
    shares = shamir.share([5, 6, 7], random.Random(1))
    shares[3][1] = (shares[3][1] + 1) % P
    with pytest.raises(shamir.InconsistentSharesError) as info:
        shamir.reconstruct(shares)
    assert "position 1" in str(info.value)
    assert str(shares[3][1]) not in str(info.value)


def test_reconstruct_rejects_bad_input():
    shares = shamir.share([1, 2], random.Random(1))
    with pytest.raises(ValueError):
        shamir.reconstruct({1: shares[1]})
    with pytest.raises(ValueError):
        shamir.reconstruct({1: shares[1], 2: shares[2][:1]})


def test_product_of_sharings_is_degree_two():
    rng = random.Random(3)
    a, b = [rng.randrange(P) for _ in range(20)], [rng.randrange(P) for _ in range(20)]
    sa, sb = shamir.share(a, rng), shamir.share(b, rng)
    h = {i: [x * y % P for x, y in zip(sa[i], sb[i])] for i in (1, 2, 3)}
    lam = shamir.LAGRANGE_DEGREE2
    got = [sum(lam[i] * h[i][k] for i in (1, 2, 3)) % P for k in range(20)]
    assert got == [x * y % P for x, y in zip(a, b)]


@pytest.mark.parametrize("party", [1, 2, 3])
@pytest.mark.parametrize("secret", [0, P - 1])
def test_a_single_share_is_uniform(party, secret):
    """Chi-square test on the top 4 bits of one party's share of a fixed secret.

    16 bins, 15 degrees of freedom, 16,000 samples; the threshold is the 1 - 1e-6
    quantile, so a correct implementation fails this test with probability 1e-6.
    """
    rng = random.Random(1000 + party + secret % 97)
    n, bins = 16_000, 16
    counts = [0] * bins
    for _ in range(n):
        counts[shamir.share([secret], rng)[party][0] * bins // P] += 1
    expected = n / bins
    statistic = sum((c - expected) ** 2 / expected for c in counts)
    assert statistic < chi2.ppf(1 - 1e-6, bins - 1)


def test_vector_ops():
    a, b = [1, P - 1, 5], [2, 3, P - 7]
    assert shamir.add(a, b) == [3, 2, P - 2]
    assert shamir.sub(a, b) == [P - 1, P - 4, 12]
    assert shamir.neg(a) == [P - 1, 1, P - 5]
    assert shamir.scale(a, -2) == [P - 2, 2, P - 10]
    with pytest.raises(ValueError):
        shamir.add(a, b[:2])
