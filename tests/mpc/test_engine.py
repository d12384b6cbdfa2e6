"""The sans-I/O MPC engine: every primitive against plaintext, and the driver contract."""

from __future__ import annotations

import math
import random

import pytest

from mpcactors.crypto import shamir
from mpcactors.crypto.fixedpoint import Params
from mpcactors.errors import KeyDestroyedError, PeerProtocolError
from mpcactors.mpc.engine import BYTES_PER_ELEMENT, Engine, Exchange, _division_table, run_local

PARAMS = Params()
P = PARAMS.prime


def centred(v: int) -> int:
    return v - P if v > P // 2 else v


@pytest.fixture
def engines():
    engines = {i: Engine(i, PARAMS, b"test seed") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    return engines


@pytest.fixture
def rng():
    return random.Random(2024)


def run(engines, make):
    """Run ``make(engine, party)`` at all three parties; return party 1's view and all outputs."""
    return run_local({i: make(e, i) for i, e in engines.items()})


def opened(outputs) -> list[int]:
    """Reconstruct the secrets of per-party share vectors, checking all three agree."""
    return [centred(v) for v in shamir.reconstruct(outputs)]


def signed_values(rng, bits, n=60):
    edge = [0, 1, -1, 2 ** (bits - 1) - 1, -(2 ** (bits - 1))]
    return edge + [rng.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1)) for _ in range(n)]


def test_keys_from_secrets_work(rng):
    engines = {i: Engine(i, PARAMS) for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    assert engines[1]._keys[2] == engines[2]._keys[1]
    a, b = signed_values(rng, 60), signed_values(rng, 60)
    sa, sb = shamir.share(a, rng), shamir.share(b, rng)
    out = run(engines, lambda e, i: e.mul(sa[i], sb[i]))
    assert opened(out) == [x * y for x, y in zip(a, b)]


def test_local_linear_operations(engines, rng):
    a, b = signed_values(rng, 100), signed_values(rng, 100)
    sa, sb = shamir.share(a, rng), shamir.share(b, rng)
    e = engines
    assert opened({i: e[i].add(sa[i], sb[i]) for i in e}) == [x + y for x, y in zip(a, b)]
    assert opened({i: e[i].sub(sa[i], sb[i]) for i in e}) == [x - y for x, y in zip(a, b)]
    assert opened({i: e[i].scale(sa[i], -3) for i in e}) == [-3 * x for x in a]
    assert opened({i: e[i].add_public(sa[i], 7) for i in e}) == [x + 7 for x in a]


def test_mul_and_dot(engines, rng):
    a, b = signed_values(rng, 90), signed_values(rng, 90)
    sa, sb = shamir.share(a, rng), shamir.share(b, rng)
    out = run(engines, lambda e, i: e.mul(sa[i], sb[i]))
    assert opened(out) == [x * y for x, y in zip(a, b)]
    out = run(engines, lambda e, i: e.dot([(sa[i][:10], sb[i][:10]), (sa[i][10:], sb[i][10:])]))
    assert opened(out) == [sum(x * y for x, y in zip(a[:10], b[:10])), sum(x * y for x, y in zip(a[10:], b[10:]))]
    stats = engines[1].statistics()
    # one round each; each party sends one element per product (dot: per sum)
    assert stats["mul"] == {"rounds": 1, "elements": len(a), "bytes": len(a) * BYTES_PER_ELEMENT}
    assert stats["dot"]["elements"] == 2


def test_input_from_each_owner(engines, rng):
    for owner in (1, 2, 3):
        values = signed_values(rng, 120)
        out = run(engines, lambda e, i: e.input(owner, values if i == owner else None, len(values)))
        assert opened(out) == values


def test_open_and_reveal(engines, rng):
    values = signed_values(rng, 150)
    s = shamir.share(values, rng)
    out = run(engines, lambda e, i: e.open(s[i], "masked"))
    assert all(o == [v % P for v in values] for o in out.values())
    out = run(engines, lambda e, i: e.reveal(s[i], "result"))
    assert all(o == values for o in out.values())
    assert engines[2].revealed == [("result", len(values))]
    assert engines[2].opened == [("masked", len(values))]


def test_reveal_detects_an_inconsistent_share(engines, rng):
    s = shamir.share([11, 12], rng)
    s[3][0] = (s[3][0] + 1) % P
    with pytest.raises(PeerProtocolError):
        run(engines, lambda e, i: e.reveal(s[i], "result"))


def test_random_bits(engines):
    """Bits are 0 or 1 and balanced: 4,000 bits, |ones - 2000| < 5.3 sigma (false alarm ~1e-7)."""
    out = run(engines, lambda e, i: e.random_bits(4000))
    bits = opened(out)
    assert set(bits) <= {0, 1}
    assert abs(sum(bits) - 2000) < 5.3 * math.sqrt(1000)
    # the pool hands out fresh bits
    out2 = run(engines, lambda e, i: e.random_bits(4000))
    assert opened(out2) != bits


def test_prss_random_values_agree_and_differ(engines):
    e = engines
    r = {i: e[i].random(50) for i in e}
    values = shamir.reconstruct(r)  # raises if the three shares were not one sharing
    assert len(set(values)) == 50
    bounded = shamir.reconstruct({i: e[i].random_bounded(50, 30) for i in e})
    assert all(0 <= v < 3 * 2**30 for v in bounded)


@pytest.mark.parametrize("m,k", [(1, 20), (16, 48), (24, 90), (47, 48)])
def test_trunc_error_bound(engines, rng, m, k):
    """TruncPr returns floor(a / 2**m) + u with u in {0, 1}, for signed a of k bits."""
    a = signed_values(rng, k, n=200)
    s = shamir.share(a, rng)
    out = run(engines, lambda e, i: e.trunc(s[i], m, k))
    errors = [r - (x >> m) for r, x in zip(opened(out), a)]
    assert set(errors) <= {0, 1}
    # exact multiples of 2**m are never rounded up
    multiples = [x << m for x in (0, 1, -1, 5)]
    s = shamir.share(multiples, rng)
    out = run(engines, lambda e, i: e.trunc(s[i], m, k + m + 1))
    assert opened(out) == [0, 1, -1, 5]


@pytest.mark.parametrize("k", [2, 8, 38, 64])
def test_ltz_is_exact(engines, rng, k):
    a = signed_values(rng, k, n=80)
    s = shamir.share(a, rng)
    out = run(engines, lambda e, i: e.ltz(s[i], k))
    assert opened(out) == [int(x < 0) for x in a]


def test_budget_is_checked(engines):
    with pytest.raises(Exception, match="prime"):
        next(engines[1].ltz([0], 160))


def test_reciprocal_and_inv_sqrt(engines, rng):
    f = 24
    xs = [0.3, 0.5, 0.99, 0.26]
    enc = [round(x * 2**f) for x in xs]
    s = shamir.share(enc, rng)
    y0 = [round(1.5 * 2**f)] * len(xs)
    out = run(engines, lambda e, i: e.reciprocal(s[i], e.constant(y0), f, 6, 2 * f + 8))
    for got, x in zip(opened(out), xs):
        assert abs(got / 2**f - 1 / x) < 1e-5  # a few units of 2**-24, relative to 1/x < 4
    y0 = [round(1.0 * 2**f)] * len(xs)
    out = run(engines, lambda e, i: e.inv_sqrt(s[i], e.constant(y0), f, 7, 2 * f + 8))
    for got, x in zip(opened(out), xs):
        assert abs(got / 2**f - 1 / math.sqrt(x)) < 1e-5


def test_pow2_normalise(engines, rng):
    f = 24
    xs = [2.0**-20, 0.001, 0.26, 0.5, 0.9999, 3.0, 2.0**6 - 0.01]
    s = shamir.share([round(x * 2**f) for x in xs], rng)
    out = run(engines, lambda e, i: e.pow2_normalise(s[i], f, -20, 6, 1, 32, 40))
    ys = opened({i: o[0] for i, o in out.items()})
    inv = opened({i: o[1] for i, o in out.items()})
    for x, y, yi in zip(xs, ys, inv):
        assert 0.5 <= x * y / 2**40 < 1
        assert y * yi == 2**80
    out = run(engines, lambda e, i: e.pow2_normalise(s[i], f, -20, 6, 2, 32, 40))
    ys = opened({i: o[0] for i, o in out.items()})
    for x, y in zip(xs, ys):
        assert 0.25 <= x * (y / 2**40) ** 2 < 1


def test_run_local_rejects_mismatched_rounds():
    def sender():
        yield Exchange({2: [1]}, frozenset(), "a")

    def receiver():
        yield Exchange({}, frozenset({1}), "b")

    def idle():
        yield Exchange({}, frozenset(), "a")

    with pytest.raises(PeerProtocolError, match="expected round 0"):
        run_local({1: sender(), 2: receiver(), 3: idle()})

    def silent():
        yield Exchange({}, frozenset(), "a")

    with pytest.raises(PeerProtocolError, match="never expected"):
        run_local({1: sender(), 2: silent(), 3: idle()})

    def waiting():
        yield Exchange({}, frozenset({3}), "a")

    with pytest.raises(PeerProtocolError, match="deadlock"):
        run_local({1: idle(), 2: waiting(), 3: idle()})


def test_received_vectors_are_validated(engines):
    def feed(vector):
        program = engines[1].open([1, 2, 3])
        exchange = next(program)
        assert exchange.send == {3: [1, 2, 3]} and exchange.expect == frozenset({2})
        program.send({2: vector})

    with pytest.raises(PeerProtocolError, match="elements, expected 3"):
        feed([1, 2])
    with pytest.raises(PeerProtocolError, match=r"not in \[0, p\)"):
        feed([1, 2, P])
    with pytest.raises(PeerProtocolError, match=r"not in \[0, p\)"):
        feed([1, -2, 3])
    with pytest.raises(PeerProtocolError, match="expected vectors from"):
        program = engines[1].open([1])
        next(program)
        program.send({3: [1]})


def test_destroy(engines):
    e = engines[1]
    e.destroy()
    assert e._keys == {}
    with pytest.raises(KeyDestroyedError):
        e.random(1)
    with pytest.raises(KeyDestroyedError):
        next(e.mul([1], [1]))


@pytest.mark.parametrize("m,k", [(1, 20), (24, 48), (44, 94)])
def test_trunc_fast_error_bound(engines, rng, m, k):
    """trunc_fast returns floor(a / 2**m) + u with u in {-1, 0, 1, 2} and mean bias -2**-m.

    Each ``result - a / 2**m`` lies in [-2, 2]; for 2,000 values Hoeffding bounds the chance
    that their mean is 0.25 or further from its expectation by 2 exp(-2 * 2000 * 0.25**2 / 16) < 4e-7.
    """
    a = signed_values(rng, k, n=2000)
    s = shamir.share(a, rng)
    out = run(engines, lambda e, i: e.trunc_fast(s[i], m, k))
    got = opened(out)
    assert set(r - (x >> m) for r, x in zip(got, a)) <= {-1, 0, 1, 2}
    assert abs(sum(r - x / 2**m for r, x in zip(got, a)) / len(a) + 2.0**-m) < 0.25


# ---- the fast internals against their textbook forms ------------------------------------
def test_prf_streams_are_the_documented_shake_output(engines):
    """A PRF vector is SHAKE-256(key || nonce || tag) cut into 24-byte big-endian integers
    (bounded ones masked, bits least significant first), and both holders of a key draw the
    same vector: what the resharing masks and the PRSS shares rely on."""
    import hashlib

    e1, e2 = engines[1], engines[2]
    stream = hashlib.shake_256(e1._keys[2] + (7).to_bytes(8, "big") + b"t").digest(24 * 40)
    expected = [int.from_bytes(stream[i : i + 24], "big") for i in range(0, 24 * 40, 24)]
    assert e1._prf_field(2, 7, b"t", 40) == e2._prf_field(1, 7, b"t", 40) == expected
    assert e1._prf_field(2, 7, b"t", 0) == []
    bounded = e1._prf_bounded(2, 7, b"t", 30, 13)
    assert bounded == [int.from_bytes(stream[i : i + 2], "big") & 0x1FFF for i in range(0, 60, 2)]
    bits = e1._prf_bits(2, 7, b"t", 21)
    assert bits == [(stream[i // 8] >> (i % 8)) & 1 for i in range(21)]


@pytest.mark.parametrize("prime", [P, 11, 1000003])  # p = 1 and p = 2 mod 3
def test_division_by_two_and_three(engines, prime):
    """v // d + table[v % d] is v * d**-1 mod p, in [0, p), at the edges and for random v;
    the engine's _div_small is that (and the identity for d = 1)."""
    r = random.Random(5)
    values = sorted({0, 1, 2, 3, prime - 1, prime - 2, prime - 3} | {r.randrange(prime) for _ in range(200)})
    for d in (2, 3):
        table = _division_table(prime, d)
        assert [v // d + table[v % d] for v in values] == [v * pow(d, -1, prime) % prime for v in values]
    if prime == P:
        for d in (1, 2, 3):
            assert engines[1]._div_small(values, d) == [v * pow(d, -1, P) % P for v in values]


def test_mul_sends_the_textbook_resharing(engines, rng):
    """Each party sends ``prev`` the value at ``prev`` of the line through ``(0, lambda h)`` and
    ``(next, r)``: ``lambda h (1 - prev/next) + r prev/next`` with ``r`` from the key shared
    with ``next`` (computed here with full-size field constants, as the protocol states it)."""
    a, b = signed_values(rng, 60, 10), signed_values(rng, 60, 10)
    sa, sb = shamir.share(a, rng), shamir.share(b, rng)
    for i, e in engines.items():
        nonce = e._reshare_nonce + 1  # resharing masks have a nonce counter of their own
        exchange = next(e.mul(sa[i], sb[i]))
        r = e._prf_field(e.next, nonce, b"rsh", len(a))
        c = e.prev * pow(e.next, -1, P) % P
        lam = shamir.LAGRANGE_DEGREE2[i]
        h = [x * y % P for x, y in zip(sa[i], sb[i])]
        assert exchange.send == {e.prev: [(lam * v * (1 - c) + q * c) % P for v, q in zip(h, r)]}
