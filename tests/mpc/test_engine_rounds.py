"""The engine's round savers: lockstep composition and prefetched random bits.

What the lasso relies on: :meth:`Engine.together` computes exactly what the two programs
compute one after the other, in ``max`` of their rounds instead of the sum; the pools of
random bits hand out the same bits whether they were refilled in lockstep with earlier
rounds or on demand (so the round cuts leave every computed value the same).
"""

from __future__ import annotations

import random

import pytest

from mpcactors.crypto import shamir
from mpcactors.crypto.fixedpoint import Params
from mpcactors.errors import PeerProtocolError
from mpcactors.mpc.engine import Engine, run_local

PARAMS = Params()
P = PARAMS.prime


def centred(v: int) -> int:
    return v - P if v > P // 2 else v


def fresh_engines(seed: bytes = b"rounds seed") -> dict[int, Engine]:
    engines = {i: Engine(i, PARAMS, seed) for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    return engines


def counted(program, box: list[int]):
    """Pass ``program``'s exchanges through, counting them in ``box[0]``."""
    value = None
    while True:
        try:
            exchange = program.send(value)
        except StopIteration as stop:
            return stop.value
        box[0] += 1
        value = yield exchange


def run_counted(engines, make):
    """``({party: result}, rounds)``; every party must take the same number of rounds."""
    boxes = {i: [0] for i in engines}
    out = run_local({i: counted(make(e, i), boxes[i]) for i, e in engines.items()})
    assert len({b[0] for b in boxes.values()}) == 1
    return out, boxes[1][0]


def opened(outputs) -> list[int]:
    return [centred(v) for v in shamir.reconstruct(outputs)]


@pytest.fixture
def inputs():
    rng = random.Random(7)
    a = [rng.randrange(-(2**30), 2**30) for _ in range(40)]
    b = [rng.randrange(-(2**30), 2**30) for _ in range(40)]
    c = [rng.randrange(-(2**20), 2**20) for _ in range(25)]
    return a, b, c, shamir.share(a, rng), shamir.share(b, rng), shamir.share(c, rng)


def test_together_computes_what_the_programs_compute_one_after_the_other(inputs):
    """A product (1 round) in lockstep with a comparison (opening, bits, BitLT tree) and a
    reveal to everyone (a round where every party expects both peers, unlike the ring of
    the others): the same secrets, in max(rounds) instead of the sum; and with the short
    program second, the same again."""
    a, b, c, sa, sb, sc = inputs

    def first(e, i):
        prod = yield from e.mul(sa[i], sb[i], "x")
        shown = yield from e.reveal(prod[:3], "shown")
        return prod, shown

    def second(e, i):
        return (yield from e.ltz(sc[i], 22, "y"))

    def sequential(e, i):
        return (yield from first(e, i)), (yield from second(e, i))

    seq, seq_rounds = run_counted(fresh_engines(), sequential)
    _, rounds_first = run_counted(fresh_engines(), first)
    _, rounds_second = run_counted(fresh_engines(), second)
    assert seq_rounds == rounds_first + rounds_second
    expected_prod = [x * y for x, y in zip(a, b)]
    expected_ltz = [int(v < 0) for v in c]
    for order in ("first-second", "second-first"):
        engines = fresh_engines()
        if order == "first-second":
            out, rounds = run_counted(engines, lambda e, i: e.together(first(e, i), second(e, i)))
            results = {i: r for i, r in out.items()}
        else:
            out, rounds = run_counted(engines, lambda e, i: e.together(second(e, i), first(e, i)))
            results = {i: (r[1], r[0]) for i, r in out.items()}
        assert rounds == max(rounds_first, rounds_second) < seq_rounds
        assert opened({i: r[0][0] for i, r in results.items()}) == expected_prod
        assert all(r[0][1] == expected_prod[:3] for r in results.values())
        assert opened({i: r[1] for i, r in results.items()}) == expected_ltz
        # statistics count a combined round once, elements under the label that sent them
        stats = engines[1].statistics()
        assert sum(s["rounds"] for label, s in stats.items() if label != "setup") == rounds
        assert stats["shown"]["elements"] == 2 * 3  # to both peers


def test_together_with_a_program_of_no_rounds_and_nested(inputs):
    """A program without rounds returns at once; compositions nest (three programs)."""
    a, b, c, sa, sb, sc = inputs

    def nothing(e):
        return e.add(sa[e.party], sb[e.party])
        yield  # noqa: B901

    engines = fresh_engines()
    out, rounds = run_counted(engines, lambda e, i: e.together(nothing(e), e.mul(sa[i], sb[i])))
    assert rounds == 1
    assert opened({i: r[0] for i, r in out.items()}) == [x + y for x, y in zip(a, b)]
    assert opened({i: r[1] for i, r in out.items()}) == [x * y for x, y in zip(a, b)]
    out, rounds = run_counted(
        fresh_engines(),
        lambda e, i: e.together(e.together(e.mul(sa[i], sb[i]), e.mul(sb[i], sb[i])), e.open(sc[i])),
    )
    assert rounds == 1
    assert opened({i: r[0][1] for i, r in out.items()}) == [y * y for y in b]
    assert all([centred(v) for v in r[1]] == c for r in out.values())


def test_together_rejects_a_short_vector(inputs):
    """A peer that sends fewer elements than both programs expect is caught, not misread."""
    a, b, c, sa, sb, sc = inputs
    engines = fresh_engines()

    def short(e, i):
        program = e.together(e.mul(sa[i], sb[i]), e.open(sc[i]))
        exchange = next(program)
        if i == 2:
            exchange = type(exchange)({k: v[:-1] for k, v in exchange.send.items()}, exchange.expect, exchange.label,
                                      exchange.sizes)
        value = yield exchange
        try:
            program.send(value)
        except StopIteration as stop:
            return stop.value

    with pytest.raises(PeerProtocolError, match="expected"):
        run_local({i: short(e, i) for i, e in engines.items()})


def test_prefetched_bits_are_the_bits_drawn_on_demand(inputs):
    """Bits and pairs fetched ahead, in lockstep with a product, are the bits (and pairs) the
    same draws return without the prefetch, and the draws then take no rounds: the refill
    moved off the critical path without changing a value."""
    a, b, c, sa, sb, sc = inputs

    def draws(e):
        single = yield from e.random_bits(3000)
        pairs = yield from e.random_bit_pairs(1500)
        return single, pairs

    plain, plain_rounds = run_counted(fresh_engines(), lambda e, i: draws(e))
    assert plain_rounds == 5  # a refill of single bits (2 rounds), one of pairs (3: the products)

    engines = fresh_engines()
    _, rounds = run_counted(
        engines, lambda e, i: e.together(e.mul(sa[i], sb[i]), e.prefetch_bits(3000, 1500))
    )
    assert rounds == 3  # the refill's three rounds, the product inside the first
    ahead, ahead_rounds = run_counted(engines, lambda e, i: draws(e))
    assert ahead_rounds == 0
    single = opened({i: r[0] for i, r in ahead.items()})
    assert single == opened({i: r[0] for i, r in plain.items()})
    pair_bits = opened({i: r[1][0] for i, r in ahead.items()})
    products = opened({i: r[1][1] for i, r in ahead.items()})
    assert pair_bits == opened({i: r[1][0] for i, r in plain.items()})
    assert products == opened({i: r[1][1] for i, r in plain.items()})
    assert set(single) == set(pair_bits) == {0, 1}
    # a prefetch the pools already cover takes no round
    _, rounds = run_counted(engines, lambda e, i: e.prefetch_bits(100, 100))
    assert rounds == 0


def test_pair_products_are_the_products_of_the_pairs():
    """The products a pool of pairs hands out are ``lo_g * hi_g`` of its pairs, over draws
    that cross a block boundary, and they make ``ltz`` exact with its first level local."""
    engines = fresh_engines(b"pairs")
    out, rounds = run_counted(engines, lambda e, i: e.random_bit_pairs(1000))
    assert rounds == 3
    out2, rounds = run_counted(engines, lambda e, i: e.random_bit_pairs(100))  # 2,000 + 200 bits: block 2
    assert rounds == 3
    for result in (out, out2):
        bits = opened({i: r[0] for i, r in result.items()})
        products = opened({i: r[1] for i, r in result.items()})
        assert products == [lo * hi for lo, hi in zip(bits[0::2], bits[1::2])]
        assert 0 < sum(products) < len(products) and set(bits) == {0, 1}
    rng = random.Random(3)
    for k in (2, 3, 9, 44):  # one bit, one pair, odd and even widths
        a = [0, -1, 1, 2 ** (k - 1) - 1, -(2 ** (k - 1))] + [rng.randrange(-(2 ** (k - 1)), 2 ** (k - 1)) for _ in range(60)]
        s = shamir.share(a, rng)
        out, _ = run_counted(engines, lambda e, i: e.ltz(s[i], k))
        assert opened(out) == [int(x < 0) for x in a]
    # with the pool full, a 44-bit comparison is its opening and the tree over 22 pairs
    a = [rng.randrange(-(2**43), 2**43) for _ in range(30)]
    s = shamir.share(a, rng)
    run_counted(engines, lambda e, i: e.prefetch_bits(0, 30 * 22))
    out, rounds = run_counted(engines, lambda e, i: e.ltz(s[i], 44))
    assert rounds == 1 + 5  # 22 -> 11 -> 6 -> 3 -> 2 -> 1
    assert opened(out) == [int(x < 0) for x in a]


@pytest.mark.parametrize("fast", [False, True])
def test_fused_product_and_truncation_equals_the_two_steps(fast):
    """``mul_trunc`` and ``dot_trunc`` (with an offset) return exactly what a product (or dot
    product) followed by ``trunc`` (``trunc_fast``) returns from the same randomness, open the
    same number of masked values under the same label, in one round instead of two."""
    rng = random.Random(11)
    n, m, k = 40, 30, 84
    a = [rng.randrange(-(2**40), 2**40) for _ in range(n)]
    b = [rng.randrange(-(2**40), 2**40) for _ in range(n)]
    u = [[rng.randrange(-(2**35), 2**35) for _ in range(5)] for _ in range(n)]
    off = [rng.randrange(-(2**60), 2**60) for _ in range(n)]
    sa, sb, so = shamir.share(a, rng), shamir.share(b, rng), shamir.share(off, rng)
    su = [shamir.share(row, rng) for row in u]
    cut = "trunc_fast" if fast else "trunc"

    def two_steps(e, i):
        prod = yield from e.mul(sa[i], sb[i], "x")
        first = yield from getattr(e, cut)(prod, m, k, "x")
        dots = yield from e.dot([(su[q][i], su[q][i]) for q in range(n)], "y")
        second = yield from getattr(e, cut)(e.add(dots, so[i]), m, k, "y")
        return first, second

    def fused(e, i):
        if fast:  # mul_trunc always truncates with random bits: compare dot_trunc for both
            first = yield from e.dot_trunc([([x], [y]) for x, y in zip(sa[i], sb[i])], m, k, "x", fast=True)
        else:
            first = yield from e.mul_trunc(sa[i], sb[i], m, k, "x")
        second = yield from e.dot_trunc([(su[q][i], su[q][i]) for q in range(n)], m, k, "y", offset=so[i], fast=fast)
        return first, second

    results = {}
    for name, program in (("two steps", two_steps), ("fused", fused)):
        engines = fresh_engines(b"fused")
        run_counted(engines, lambda e, i: e.prefetch_bits(2 * n * m, 0))
        out, rounds = run_counted(engines, program)
        results[name] = (
            [opened({i: r[j] for i, r in out.items()}) for j in (0, 1)], rounds, engines[1].opened, engines[1].statistics()
        )
    (values, rounds, opens, stats), (f_values, f_rounds, f_opens, f_stats) = results["two steps"], results["fused"]
    assert f_values == values
    assert (rounds, f_rounds) == (4, 2)
    assert f_opens == opens == [("x", n), ("y", n)]
    assert [f_stats[lbl]["elements"] for lbl in "xy"] == [stats[lbl]["elements"] for lbl in "xy"] == [2 * n, 2 * n]
    exact = [x * y for x, y in zip(a, b)], [sum(v * v for v in row) + o for row, o in zip(u, off)]
    for got, want in zip(values, exact):
        errors = {g - (w >> m) for g, w in zip(got, want)}
        assert errors <= ({-1, 0, 1, 2} if fast else {0, 1})


def test_zero_sharings_of_degree_two():
    """The degree-2 sharings of zero recombine to 0 (weights 3, -3, 1), every party's shares
    look random, and two draws differ: what hides the products' polynomial in ``dot_trunc``."""
    engines = fresh_engines(b"zero")
    shares = {i: e._zero_degree2(200) for i, e in engines.items()}
    assert all((3 * x - 3 * y + z) % P == 0 for x, y, z in zip(shares[1], shares[2], shares[3]))
    assert all(len(set(s)) == 200 for s in shares.values())
    again = {i: e._zero_degree2(200) for i, e in engines.items()}
    assert all(set(again[i]).isdisjoint(shares[i]) for i in engines)


def test_fused_opening_hides_the_products_polynomial():
    """What ``mul_trunc`` opens is a degree-2 polynomial through the three sent values; its
    ``x**2`` coefficient must not be the product of the inputs' slopes (which the plain
    degree-2 shares ``a_i b_i`` would show, with the degree-1 masks adding nothing to it)
    but re-randomised by the zero sharing, and its constant term the masked value."""
    rng = random.Random(5)
    a = [rng.randrange(-(2**40), 2**40) for _ in range(30)]
    b = [rng.randrange(-(2**40), 2**40) for _ in range(30)]
    sa, sb = shamir.share(a, rng), shamir.share(b, rng)
    engines = fresh_engines(b"hide")
    run_counted(engines, lambda e, i: e.prefetch_bits(30 * 20, 0))
    sent: dict[int, list[int]] = {}

    def spy(e, i):
        program = e.mul_trunc(sa[i], sb[i], 20, 84)
        exchange = next(program)
        sent[i] = exchange.send[e.peers[0]]
        assert exchange.send[e.peers[0]] == exchange.send[e.peers[1]]  # the same value to both
        value = yield exchange
        try:
            program.send(value)
        except StopIteration as stop:
            return stop.value

    run_local({i: spy(e, i) for i, e in engines.items()})
    half = pow(2, -1, P)
    for q in range(30):
        t1, t2, t3 = (sent[i][q] for i in (1, 2, 3))
        slope_a = (sa[2][q] - sa[1][q]) % P
        slope_b = (sb[2][q] - sb[1][q]) % P
        assert (t1 - 2 * t2 + t3) * half % P != slope_a * slope_b % P
        masked = (3 * t1 - 3 * t2 + t3) % P
        assert 0 < masked < 2 ** (84 + 40 + 3)  # a + 2**83 + mask: a masked value, not a reduced one


def test_dot_ltz_equals_dot_then_ltz():
    """``dot_ltz`` compares inner products (plus an offset) with zero exactly, opens the same
    masked values as ``dot`` then ``ltz``, and takes one round fewer."""
    rng = random.Random(13)
    n, k = 50, 50
    u = [[rng.randrange(-(2**20), 2**20) for _ in range(4)] for _ in range(n)]
    v = [[rng.randrange(-(2**20), 2**20) for _ in range(4)] for _ in range(n)]
    off = [rng.randrange(-(2**40), 2**40) for _ in range(n)]
    su, sv = [shamir.share(row, rng) for row in u], [shamir.share(row, rng) for row in v]
    so = shamir.share(off, rng)
    exact = [int(sum(x * y for x, y in zip(ru, rv)) + o < 0) for ru, rv, o in zip(u, v, off)]
    assert 0 < sum(exact) < n

    def two_steps(e, i):
        dots = yield from e.dot([(su[q][i], sv[q][i]) for q in range(n)], "c")
        return (yield from e.ltz(e.add(dots, so[i]), k, "c"))

    def fused(e, i):
        return (yield from e.dot_ltz([(su[q][i], sv[q][i]) for q in range(n)], k, "c", offset=so[i]))

    seen = []
    for program in (two_steps, fused):
        engines = fresh_engines(b"dot ltz")
        run_counted(engines, lambda e, i: e.prefetch_bits(0, n * k // 2))
        out, rounds = run_counted(engines, program)
        assert opened(out) == exact
        seen.append((rounds, engines[1].opened))
    assert seen[1][0] == seen[0][0] - 1
    assert seen[0][1] == seen[1][1] == [("c", n)]


def test_dot_trunc_ltz_gives_a_truncation_and_its_exact_sign_from_one_opening():
    """``dot_trunc_ltz`` returns ``trunc_fast`` of inner products (plus an offset), within its
    error bound, and exactly the sign of *that* truncated value (so the sign never disagrees
    with the value it comes with), from one opening per value, in the rounds of one ``ltz``:
    where ``dot_trunc`` then ``ltz`` take two openings and one round more."""
    rng = random.Random(17)
    n, m, k = 60, 30, 44
    u = [[rng.randrange(-(2**40), 2**40) for _ in range(3)] for _ in range(n)]
    v = [[rng.randrange(-(2**28), 2**28) for _ in range(3)] for _ in range(n)]
    # the offsets put some inner products within a unit of 2**m of zero: there the truncation
    # decides the sign, and it must be the sign of the truncated value returned
    dots = [sum(x * y for x, y in zip(ru, rv)) for ru, rv in zip(u, v)]
    off = [-d + rng.randrange(-(2**m), 2**m) if q % 3 == 0 else rng.randrange(-(2**60), 2**60) for q, d in enumerate(dots)]
    off[1], off[2] = -dots[1] - 2 ** (k + m - 1) + 2 ** (m + 2), -dots[2] + 2 ** (k + m - 1) - 2 ** (m + 2) - 1  # the edges
    su, sv, so = [shamir.share(row, rng) for row in u], [shamir.share(row, rng) for row in v], shamir.share(off, rng)
    exact = [d + o for d, o in zip(dots, off)]

    def fused(e, i):
        return (yield from e.dot_trunc_ltz([(su[q][i], sv[q][i]) for q in range(n)], m, k + m, "s", offset=so[i]))

    def two_steps(e, i):
        t = yield from e.dot_trunc([(su[q][i], sv[q][i]) for q in range(n)], m, k + m, "s", offset=so[i], fast=True)
        return t, (yield from e.ltz(t, k, "s"))

    seen = {}
    for name, program in (("fused", fused), ("two steps", two_steps)):
        engines = fresh_engines(b"trunc ltz")
        run_counted(engines, lambda e, i: e.prefetch_bits(0, n * k // 2))
        out, rounds = run_counted(engines, program)
        values = opened({i: r[0] for i, r in out.items()})
        signs = opened({i: r[1] for i, r in out.items()})
        assert {t - (x >> m) for t, x in zip(values, exact)} <= {-1, 0, 1, 2}, name  # trunc_fast's bound
        assert signs == [int(t < 0) for t in values], name
        seen[name] = (rounds, engines[1].opened)
    assert seen["fused"] == (1 + 5, [("s", n)])  # one opening, the tree over 22 pairs
    assert seen["two steps"] == (2 + 5, [("s", n), ("s", n)])


def test_dot_trunc_ltz_masks_the_bits_below_the_truncation():
    """The opened value hides the inner products' low bits too (trunc_fast's PRSS mask):
    for exact multiples of ``2**m`` the opened low bits are spread, not zero."""
    rng = random.Random(19)
    n, m, k = 40, 30, 44
    values = [rng.randrange(-(2**20), 2**20) << m for _ in range(n)]
    shares = shamir.share(values, rng)
    engines = fresh_engines(b"trunc ltz low")
    run_counted(engines, lambda e, i: e.prefetch_bits(0, n * k // 2))
    seen: list[list[int]] = []
    original = engines[1]._open_degree2

    def spy(a, label):
        out = yield from original(a, label)
        seen.append(out)
        return out

    engines[1]._open_degree2 = spy
    run_counted(engines, lambda e, i: e.dot_trunc_ltz([([x], [1]) for x in shares[i]], m, k + m, "s"))
    low = [c % 2**m for c in seen[0]]
    assert len(set(low)) == n and min(low) > 0
