"""Step 7: integer additive shares -> Shamir shares (mpc/convert.py)."""

from __future__ import annotations

import random

import pytest

from mpcactors.crypto import shamir
from mpcactors.crypto.fixedpoint import Params
from mpcactors.mpc.convert import to_shamir
from mpcactors.mpc.engine import Engine, run_local

PARAMS = Params()
P = PARAMS.prime


@pytest.fixture
def engines():
    engines = {i: Engine(i, PARAMS, b"convert seed") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    return engines


def additive_pairs(rng):
    """Signed integer shares like step 6's: x = s1 + s2, |s| up to slot_bits, x within the encoded bound."""
    bound = PARAMS.offset  # |x| < 2**(value_bits - 1)
    mask = 1 << PARAMS.mask_bits
    xs = [0, 1, -1, bound - 1, -(bound - 1)] + [rng.randrange(-bound + 1, bound) for _ in range(300)]
    pairs = []
    for x in xs:
        r = rng.randrange(mask)
        pairs.append((x + PARAMS.offset + mask - r, -(PARAMS.offset + mask - r)))
    # extreme share magnitudes, and shares far beyond any Paillier slot: only x matters
    pairs += [(2**120, -(2**120) + 5), (-(2**150), 2**150 - 7), (0, 0)]
    return pairs


def convert(engines, s1, s2):
    n = len(s1)
    return run_local({
        1: to_shamir(engines[1], s1, n),
        2: to_shamir(engines[2], s2, n),
        3: to_shamir(engines[3], None, n),
    })


def test_conversion_reconstructs_x(engines):
    pairs = additive_pairs(random.Random(11))
    s1, s2 = [a for a, _ in pairs], [b for _, b in pairs]
    out = convert(engines, s1, s2)
    expected = [(a + b) % P for a, b in pairs]
    assert shamir.reconstruct(out) == expected  # all three shares lie on one line
    for pair in [(1, 2), (1, 3), (2, 3)]:
        assert shamir.reconstruct({i: out[i] for i in pair}) == expected
    assert [PARAMS.centred(v) for v in expected] == [a + b for a, b in pairs]


def test_matches_naive_resharing(engines):
    """The naive way (each data party Shamir-shares its own share, everyone adds) gives the same secrets."""
    rng = random.Random(5)
    pairs = additive_pairs(rng)[:50]
    s1, s2 = [a for a, _ in pairs], [b for _, b in pairs]
    n1, n2 = shamir.share(s1, rng), shamir.share(s2, rng)
    naive = {i: shamir.add(n1[i], n2[i]) for i in (1, 2, 3)}
    cheap = convert(engines, s1, s2)
    assert shamir.reconstruct(naive) == shamir.reconstruct(cheap)


def test_cost_and_who_receives(engines):
    n = 40
    convert(engines, [1] * n, [2] * n)
    assert engines[1].statistics()["convert"] == {"rounds": 1, "elements": n, "bytes": 24 * n}
    assert engines[2].statistics()["convert"]["elements"] == n
    assert engines[3].statistics()["convert"] == {"rounds": 0, "elements": 0, "bytes": 0}


def test_messages_are_masked_freshly(engines):
    """The same share sent twice travels under different PRF masks (a fresh nonce per call)."""
    captured = {}
    program = to_shamir(engines[1], [0, 0], 2)
    exchange = next(program)
    captured["zero"] = exchange.send[2]
    program = to_shamir(engines[1], [0, 0], 2)
    captured["again"] = next(program).send[2]
    assert captured["zero"] != captured["again"]
    assert all(v != 0 for v in captured["zero"])


def test_bad_arguments(engines):
    with pytest.raises(ValueError):
        next(to_shamir(engines[1], None, 3))
    with pytest.raises(ValueError):
        next(to_shamir(engines[2], [1, 2], 3))
    with pytest.raises(ValueError):
        next(to_shamir(engines[3], [1, 2, 3], 3))
    with pytest.raises(ValueError):
        next(to_shamir(engines[1], [1.0, 2, 3], 3))
