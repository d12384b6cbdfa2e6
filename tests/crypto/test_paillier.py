"""Paillier: checked against python-paillier (``phe``) as an independent implementation.

phe keys are built from the same primes, so each side decrypts the other's
ciphertexts; that covers the key owner's fast paths too (CRT encryption and
half-CRT decryption). 1024-bit keys keep the file fast; one test makes a real 2048-bit key
and one checks the 3072-bit default.
"""

from __future__ import annotations

import concurrent.futures
import copy
import gc
import math
import multiprocessing
import pickle
import secrets
import weakref

import gmpy2
import numpy as np
import phe
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mpcactors.crypto import paillier
from mpcactors.crypto.fixedpoint import Params
from mpcactors.crypto.packing import Packing
from mpcactors.errors import KeyDestroyedError, PeerProtocolError

TEST_BITS = 1024
#: the session a key is made for; its base h is derived from the modulus and this
CONTEXT = b"session 0f3a"


def make_keys(bits: int = TEST_BITS):
    public, secret = paillier.generate_keypair(bits, context=CONTEXT, _allow_insecure_test_size=bits < 2048)
    phe_public = phe.PaillierPublicKey(public.n)
    phe_secret = phe.PaillierPrivateKey(phe_public, secret.p, secret.q)
    return public, secret, phe_public, phe_secret


@pytest.fixture(scope="module")
def keys():
    return make_keys()


def centred(value: int, n: int) -> int:
    """phe's raw_decrypt returns values mod n; map them to (-n/2, n/2] like ours."""
    value %= n
    return value - n if value > n // 2 else value


def check_key_shape(public, secret, bits: int) -> None:
    n, p, q = public.n, secret.p, secret.q
    assert n.bit_length() == bits
    assert p * q == n and p != q
    assert p.bit_length() == q.bit_length() == bits // 2
    assert gmpy2.is_prime(p) and gmpy2.is_prime(q)
    assert math.gcd(n, (p - 1) * (q - 1)) == 1
    # DJN setting: Blum primes with gcd(p - 1, q - 1) = 2; h is a unit mod n**2
    assert p % 4 == 3 and q % 4 == 3 and math.gcd(p - 1, q - 1) == 2
    assert 0 < public.h < n * n and math.gcd(public.h, n) == 1
    assert public.h == paillier.derive_djn_base(n, CONTEXT)


# ---- key generation ------------------------------------------------------------------


def test_real_2048_bit_key_has_the_promised_shape_and_interoperates_with_phe():
    public, secret, phe_public, phe_secret = make_keys(2048)
    check_key_shape(public, secret, 2048)
    values = [0, 1, -1, 2**64, -(2**63), public.n // 2, -(public.n // 2)]
    ciphertexts = public.encrypt(values)
    assert [centred(phe_secret.raw_decrypt(int(c)), public.n) for c in ciphertexts] == values
    assert secret.decrypt(ciphertexts) == values
    # a 2048-bit key is acceptable from a peer without any escape hatch
    assert paillier.PublicKey.from_wire(public.to_wire(), context=CONTEXT) == public


def test_default_key_size_is_3072_bits():
    public, secret = paillier.generate_keypair(context=CONTEXT)
    check_key_shape(public, secret, 3072)


def test_test_size_keys_have_the_promised_shape(keys):
    public, secret, _, _ = keys
    check_key_shape(public, secret, TEST_BITS)


@pytest.mark.parametrize("bits", [512, 1024, 1536, 2047, 2049, 0, -2048])
def test_key_sizes_below_2048_or_odd_are_refused(bits):
    with pytest.raises(ValueError, match="modulus size"):
        paillier.generate_keypair(bits, context=CONTEXT)


def test_test_size_hatch_does_not_allow_arbitrary_sizes():
    with pytest.raises(ValueError, match="modulus size"):
        paillier.generate_keypair(1000, context=CONTEXT, _allow_insecure_test_size=True)


def test_two_keypairs_differ():
    a, _ = paillier.generate_keypair(TEST_BITS, context=CONTEXT, _allow_insecure_test_size=True)
    b, _ = paillier.generate_keypair(TEST_BITS, context=CONTEXT, _allow_insecure_test_size=True)
    assert a.n != b.n and a != b and a.fingerprint() != b.fingerprint()


# ---- encryption and decryption against phe ---------------------------------------------

# Values as (kind, x): ("plain", m) is m itself, ("edge", (sign, k)) is sign * (n//2 - k).
plaintext_specs = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(lambda m: ("plain", m)),
    st.sampled_from([0, 1, -1, 2**63, -(2**63), 2**63 - 1, 2**64, -(2**64)]).map(
        lambda m: ("plain", m)
    ),
    st.tuples(st.sampled_from([1, -1]), st.integers(min_value=0, max_value=2**70)).map(
        lambda t: ("edge", t)
    ),
)


def realise(spec, n: int) -> int:
    kind, x = spec
    if kind == "plain":
        return x
    sign, k = x
    return sign * (n // 2 - k)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(plaintext_specs, min_size=1, max_size=6))
@example(specs=[("edge", (1, 0)), ("edge", (-1, 0)), ("edge", (1, 1)), ("edge", (-1, 1))])
def test_round_trip_agrees_with_phe_in_both_directions(keys, specs):
    public, secret, phe_public, phe_secret = keys
    n = public.n
    values = [realise(s, n) for s in specs]
    ours = public.encrypt(values)
    # phe decrypts our ciphertexts
    assert [centred(phe_secret.raw_decrypt(int(c)), n) for c in ours] == values
    # we decrypt ours, by object and by raw value
    assert secret.decrypt(ours) == values
    assert secret.decrypt_raw([int(c) for c in ours]) == values
    # we decrypt phe's (phe encrypts non-negative residues mod n)
    theirs = [public.ciphertext(phe_public.raw_encrypt(v % n)) for v in values]
    assert secret.decrypt(theirs) == values


def test_numpy_integers_are_accepted(keys):
    public, secret, _, _ = keys
    values = np.array([-5, 0, 7, np.iinfo(np.int64).max, np.iinfo(np.int64).min], dtype=np.int64)
    assert secret.decrypt(public.encrypt(values)) == values.tolist()


def test_encryption_is_randomised(keys):
    public, secret, _, _ = keys
    a, b = public.encrypt([42, 42])
    assert int(a) != int(b)
    assert secret.decrypt([a, b]) == [42, 42]


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda n: n // 2 + 1,
        lambda n: -(n // 2) - 1,
        lambda n: n - 1,
        lambda n: n,
        lambda n: -n,
        lambda n: n * n,
    ],
)
def test_plaintexts_outside_the_centred_range_are_refused_by_position(keys, make_bad):
    public, secret, _, _ = keys
    bad = make_bad(public.n)
    for encrypt in (public.encrypt, public.encrypt_raw, secret.encrypt_raw):
        with pytest.raises(ValueError, match="position 2 ") as info:
            encrypt([1, 2, bad, 3])
        assert str(bad) not in str(info.value)
    with pytest.raises(ValueError, match="position 0 "):
        paillier.encrypt_raw(public.to_wire(), [bad])


@pytest.mark.parametrize("bad", [1.0, 2.5, "7", None])
def test_non_integer_plaintexts_are_refused_not_truncated(keys, bad):
    public, secret, _, _ = keys
    for encrypt in (public.encrypt, secret.encrypt_raw):
        with pytest.raises(TypeError, match="position 1 "):
            encrypt([0, bad])


# ---- homomorphic operations against phe ---------------------------------------------------

pair_values = st.integers(min_value=-(2**100), max_value=2**100)
scalars = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64), st.sampled_from([0, 1, -1])
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=pair_values, y=pair_values, k=scalars)
def test_homomorphic_operations_agree_with_phe(keys, x, y, k):
    public, secret, phe_public, phe_secret = keys
    n = public.n
    a, b = public.encrypt([x, y])
    results = [a + b, a - b, -a, a * k, k * b]
    expected = [x + y, x - y, -x, k * x, k * y]
    # phe decrypts the results of our operations
    assert [centred(phe_secret.raw_decrypt(int(c)), n) for c in results] == expected
    assert secret.decrypt(results) == expected
    # phe's own homomorphic results (its public API, integers encode with exponent 0)
    # decrypt correctly with our key, also after being combined with our ciphertexts
    px, py = phe_public.encrypt(x), phe_public.encrypt(y)
    phe_results = [px + py, px - py, px * k]
    rebuilt = [public.ciphertext(c.ciphertext(be_secure=False)) for c in phe_results]
    assert secret.decrypt(rebuilt) == [x + y, x - y, k * x]
    assert secret.decrypt([rebuilt[0] + a]) == [2 * x + y]


def test_raw_addition_agrees_with_phe(keys):
    public, secret, phe_public, phe_secret = keys
    xs, ys = [1, -2, 2**64, 0], [-1, -3, 2**64, 5]
    sums = public.add_raw(public.encrypt_raw(xs), public.encrypt_raw(ys))
    expected = [x + y for x, y in zip(xs, ys)]
    assert [centred(phe_secret.raw_decrypt(c), public.n) for c in sums] == expected
    assert secret.decrypt_raw(sums) == expected
    with pytest.raises(ValueError, match="cannot add 2 ciphertexts to 1"):
        public.add_raw(sums[:2], sums[:1])


def test_rerandomisation_changes_the_ciphertext_but_not_the_plaintext(keys):
    public, secret, _, phe_secret = keys
    values = [5, -7, 0]
    originals = public.encrypt(values)
    fresh = public.rerandomize_many(originals)
    single = public.rerandomize(originals[0])
    raw = public.rerandomize_raw([int(c) for c in originals])
    module_raw = paillier.rerandomize_raw(public.to_wire(), [int(c) for c in originals])
    for batch in ([int(c) for c in fresh], raw, module_raw):
        assert all(new != int(old) for new, old in zip(batch, originals))
        assert [centred(phe_secret.raw_decrypt(c), public.n) for c in batch] == values
    assert int(single) != int(originals[0]) and secret.decrypt([single]) == [5]
    # a deterministic result (a + b) no longer matches after re-randomisation
    total = originals[0] + originals[1]
    assert int(public.rerandomize(total)) != int(total)


def test_module_level_raw_encryption_uses_only_the_wire_dict(keys):
    public, secret, _, _ = keys
    raw = paillier.encrypt_raw(public.to_wire(), [3, -4])
    assert all(isinstance(c, int) for c in raw)
    assert secret.decrypt_raw(raw) == [3, -4]


def test_raw_encryption_runs_in_a_spawned_worker_process(keys):
    """What worker pools rely on: the function and its arguments cross a process boundary."""
    public, secret, _, _ = keys
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        raw = pool.submit(paillier.encrypt_raw, public.to_wire(), [11, -12]).result(timeout=120)
    assert secret.decrypt_raw(raw) == [11, -12]


# ---- the key owner's fast paths: CRT encryption and half-CRT decryption ---------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(plaintext_specs, min_size=1, max_size=6))
@example(specs=[("edge", (1, 0)), ("edge", (-1, 0)), ("plain", 0), ("plain", -1)])
def test_owner_encryption_agrees_with_phe_and_the_public_path(keys, specs):
    public, secret, _, phe_secret = keys
    n = public.n
    values = [realise(s, n) for s in specs]
    ours = secret.encrypt_raw(values)
    assert all(type(c) is int and 0 < c < n * n and math.gcd(c, n) == 1 for c in ours)
    assert [centred(phe_secret.raw_decrypt(c), n) for c in ours] == values
    assert secret.decrypt_raw(ours) == values
    assert secret.decrypt([public.ciphertext(c) for c in ours]) == values
    # owner ciphertexts combine with public ones like any ciphertexts of the key
    sums = public.add_raw(ours, public.encrypt_raw([1] * len(values)))
    assert [centred(phe_secret.raw_decrypt(c), n) for c in sums] == [centred(v + 1, n) for v in values]


class CountingBytes:
    """A stand-in for secrets.token_bytes that replays a fixed random stream."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self.source = np.random.default_rng(self.seed)
        self.drawn = bytearray()

    def __call__(self, count: int) -> bytes:
        chunk = self.source.bytes(count)
        self.drawn += chunk
        return chunk


def test_owner_encryption_is_the_public_encryption_for_the_same_randomness(keys, monkeypatch):
    """The distribution argument: same ``a`` gives the same ciphertext, value for value.

    Independent oracle: ``(1 + m*n) * pow(h, a, n**2)`` with ``a`` read from the random
    bytes (byte i is digit i of ``a`` in base 256). A small chunk size makes the batch
    cross several chunks of randomness.
    """
    public, secret, _, _ = keys
    n, h = public.n, public.h
    values = [0, 1, -1, 12345, -(2**70), n // 2, -(n // 2)]
    stream = CountingBytes(seed=2024)
    monkeypatch.setattr(paillier.secrets, "token_bytes", stream)
    monkeypatch.setattr(paillier, "_CHUNK", 3)
    owner = secret.encrypt_raw(values)
    owner_bytes = bytes(stream.drawn)
    stream.reset()
    public_path = public.encrypt_raw(values)
    assert bytes(stream.drawn) == owner_bytes
    assert owner == public_path
    width = len(owner_bytes) // len(values)
    assert width * 8 >= math.ceil(public.bits / 2)  # a has at least ceil(bits/2) bits
    exponents = [
        int.from_bytes(owner_bytes[k * width : (k + 1) * width], "little")
        for k in range(len(values))
    ]
    expected = [(1 + (m % n) * n) * pow(h, a, n * n) % (n * n) for m, a in zip(values, exponents)]
    assert owner == expected


def test_owner_encryption_is_randomised(keys):
    _, secret, _, _ = keys
    a, b = secret.encrypt_raw([7, 7])
    assert a != b
    assert secret.decrypt_raw([a, b]) == [7, 7]


def half_bound(public) -> int:
    return 1 << paillier.half_crt_plaintext_bits(public.bits)


def test_half_crt_bound_is_below_half_of_each_prime(keys):
    public, secret, _, _ = keys
    bound = half_bound(public)
    assert 2 * bound <= secret.p < secret.q
    assert paillier.half_crt_plaintext_bits(3072) == 1534


def test_half_crt_decryption_agrees_with_full_decryption_and_phe(keys):
    public, secret, phe_public, _ = keys
    bound = half_bound(public)
    values = [0, 1, 2, 2**64, bound // 3, bound - 2, bound - 1]
    values += [secrets.randbelow(bound) for _ in range(8)]
    ours = secret.encrypt_raw(values)
    theirs = [phe_public.raw_encrypt(v) for v in values]
    public_path = public.encrypt_raw(values)
    for ciphertexts in (ours, theirs, public_path):
        assert secret.decrypt_raw(ciphertexts, below_half_p=True) == values
        assert secret.decrypt_raw(ciphertexts) == values
    assert secret.decrypt_raw([], below_half_p=True) == []


def test_half_crt_decryption_refuses_values_outside_the_bound_by_position(keys):
    public, secret, phe_public, _ = keys
    bound = half_bound(public)
    for bad in (bound, bound + 1, -1, -(2**64), public.n // 2, 2 * bound + 5):
        ciphertexts = secret.encrypt_raw([0, 1, bad, 3])
        with pytest.raises(ValueError, match="position 2 ") as info:
            secret.decrypt_raw(ciphertexts, below_half_p=True)
        assert str(bad) not in str(info.value) and str(bad % public.n) not in str(info.value)
        # the same ciphertexts decrypt fully without the guarantee
        assert secret.decrypt_raw(ciphertexts) == [0, 1, bad, 3]
    with pytest.raises(ValueError, match="position 1 "):
        secret.decrypt_raw([phe_public.raw_encrypt(5), 0], below_half_p=True)


def test_half_crt_decryption_trusts_the_caller_for_multiples_of_p(keys):
    """The documented limit of the check: p + 5 is congruent to 5 modulo p."""
    _, secret, _, _ = keys
    (ciphertext,) = secret.encrypt_raw([secret.p + 5])
    assert secret.decrypt_raw([ciphertext]) == [secret.p + 5]
    assert secret.decrypt_raw([ciphertext], below_half_p=True) == [5]


def test_half_crt_on_a_key_with_a_short_prime_falls_back_and_still_checks():
    """A key built from unbalanced primes (not from generate_keypair): still correct."""
    p = int(gmpy2.next_prime(2**400 + 12345))
    q = int(gmpy2.next_prime(2**623 + 6789))
    n = p * q
    assert n.bit_length() == TEST_BITS and 2 * (1 << paillier.half_crt_plaintext_bits(TEST_BITS)) > p
    public = paillier.PublicKey(n, pow(3, n, n * n))
    secret = paillier.SecretKey(public, p, q)
    phe_public = phe.PaillierPublicKey(n)
    bound = half_bound(public)
    values = [0, p + 5, bound - 1]
    ciphertexts = [phe_public.raw_encrypt(v) for v in values]
    assert secret.decrypt_raw(ciphertexts, below_half_p=True) == values
    with pytest.raises(ValueError, match="position 0 "):
        secret.decrypt_raw([phe_public.raw_encrypt(bound)], below_half_p=True)


def test_packed_masked_rows_decrypt_with_half_crt_when_the_packing_says_so(keys):
    """Step 3 (owner encryption), step 5 (masks, public path), step 6 (half-CRT)."""
    public, secret, _, _ = keys
    params = Params()
    packing = Packing.for_public_key(params, public)
    d = max(k for k in range(1, packing.slots + 1) if packing.fits_half_crt(k))
    rng = np.random.default_rng(5)
    top = params.offset - 1
    values = [[int(v) for v in rng.integers(-top, top, size=d, endpoint=True)] for _ in range(4)]
    values.append([top] * d)
    values.append([-top] * d)
    masks = [params.masks(d) for _ in values]
    masks[-2] = [0] * d  # largest possible slots
    masks[-1] = [(1 << params.mask_bits) - 1] * d  # smallest possible slots
    encrypted = secret.encrypt_raw(packing.pack_values(values))
    masked = public.add_raw(encrypted, public.encrypt_raw(packing.pack_masks(masks)))
    shares = packing.unpack_shares(secret.decrypt_raw(masked, below_half_p=True), d)
    assert [[s + r for s, r in zip(srow, mrow)] for srow, mrow in zip(shares, masks)] == values


@pytest.mark.parametrize("modulus_bits", [1024, 2048, 3072])
def test_fits_half_crt_is_sound_against_the_largest_packed_plaintext(modulus_bits):
    params = Params()
    packing = Packing(params, modulus_bits)
    bound = 1 << paillier.half_crt_plaintext_bits(modulus_bits)
    top = params.offset - 1
    fitting = [d for d in range(1, 2 * packing.slots + 2) if packing.fits_half_crt(d)]
    assert fitting and fitting == list(range(1, len(fitting) + 1))  # a prefix
    for d in fitting:
        largest = packing.pack_values([[top] * d])  # plus packed masks of r = 0
        for x, r in zip(largest, packing.pack_masks([[0] * d])):
            assert 0 <= x + r < bound
    # one more value than fits makes the worst case too wide for the bound
    d = len(fitting) + 1
    assert min(d, packing.slots) * params.slot_bits > paillier.half_crt_plaintext_bits(
        modulus_bits
    )
    with pytest.raises(ValueError):
        packing.fits_half_crt(0)


def test_the_pilot_row_of_15_values_fits_half_crt_at_3072_bits():
    packing = Packing(Params(), 3072)
    assert packing.plaintexts_per_row(15) == 1 and packing.fits_half_crt(15)


# ---- keys must not mix --------------------------------------------------------------------


def test_ciphertexts_of_different_keys_do_not_combine(keys):
    public, secret, _, _ = keys
    other_public, other_secret = paillier.generate_keypair(
        TEST_BITS, context=CONTEXT, _allow_insecure_test_size=True
    )
    (mine,) = public.encrypt([1])
    (theirs,) = other_public.encrypt([1])
    for operation in (lambda: mine + theirs, lambda: mine - theirs, lambda: theirs + mine):
        with pytest.raises(ValueError, match="different Paillier keys"):
            operation()
    with pytest.raises(ValueError, match="position 1 belongs to a different"):
        secret.decrypt([mine, theirs])
    with pytest.raises(ValueError, match="different Paillier key"):
        public.rerandomize(theirs)
    with pytest.raises(TypeError):
        mine * theirs  # noqa: B018 - ciphertext times ciphertext is not homomorphic
    # an equal key rebuilt from the wire is the same key
    rebuilt = paillier.PublicKey.from_wire(public.to_wire(), context=CONTEXT, _allow_insecure_test_size=True)
    (again,) = rebuilt.encrypt([2])
    assert secret.decrypt([mine + again]) == [3]


def test_ciphertext_rebuild_validates_the_raw_value(keys):
    public, secret, _, _ = keys
    n = public.n
    for bad in (0, -1, n * n, n * n + 1, secret.p, secret.q * 5, n):
        with pytest.raises(ValueError):
            public.ciphertext(bad)
    for bad in (0, n * n):
        with pytest.raises(ValueError, match="position 1 "):
            secret.decrypt_raw([1, bad])
    (c,) = public.encrypt([9])
    assert public.ciphertext(int(c)) == c


# ---- wire format --------------------------------------------------------------------------


def test_public_key_wire_round_trip_and_fingerprint(keys):
    public, _, _, _ = keys
    wire = public.to_wire()
    assert set(wire) == {"n", "h"} and all(type(v) is int for v in wire.values())
    rebuilt = paillier.PublicKey.from_wire(wire, context=CONTEXT, _allow_insecure_test_size=True)
    assert rebuilt == public and hash(rebuilt) == hash(public)
    fingerprint = public.fingerprint()
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    assert rebuilt.fingerprint() == fingerprint
    changed = paillier.PublicKey(public.n, public.h * 4 % (public.n**2))
    assert changed.fingerprint() != fingerprint


def malformed_wires(public, secret):
    n, h = public.n, public.h
    yield "not a map", [n, h]
    yield "missing h", {"n": n}
    yield "extra key", {"n": n, "h": h, "g": n + 1}
    yield "n as text", {"n": str(n), "h": h}
    yield "n as float", {"n": float(n), "h": h}
    yield "h as bool", {"n": n, "h": True}
    yield "even n", {"n": n + 1, "h": h}
    yield "negative n", {"n": -n, "h": h}
    yield "too short n", {"n": n >> 1, "h": h % ((n >> 1) ** 2)}
    yield "too long n", {"n": (n << 1) + 1, "h": h}
    yield "h zero", {"n": n, "h": 0}
    yield "h too large", {"n": n, "h": n * n}
    yield "h not a unit", {"n": n, "h": secret.p * 3}


def test_malformed_public_keys_are_peer_protocol_errors(keys):
    public, secret, _, _ = keys
    for label, wire in malformed_wires(public, secret):
        with pytest.raises(PeerProtocolError):
            paillier.PublicKey.from_wire(wire, context=CONTEXT, _allow_insecure_test_size=True)
            pytest.fail(f"accepted a malformed key: {label}")


def test_test_size_keys_from_peers_need_the_escape_hatch(keys):
    public, _, _, _ = keys
    with pytest.raises(PeerProtocolError, match="1024 bits"):
        paillier.PublicKey.from_wire(public.to_wire(), context=CONTEXT)


# ---- the DJN base h: derived from the modulus and the session, checked by every peer ----


def assert_names_no_key_material(error: BaseException, public) -> None:
    message = str(error)
    for value in (public.n, public.h, public.n % 10**30, public.h % 10**30):
        assert str(value) not in message and format(value, "x") not in message


def test_the_key_owner_cannot_choose_h_equal_to_1(keys):
    """The review's reproduction: with h = 1, the TTP's re-randomisation and the other
    party's mask randomness vanish, so the key owner links every forwarded row."""
    public, _, _, _ = keys
    with pytest.raises(ValueError, match="not the one derived") as info:
        paillier.PublicKey.from_wire({"n": public.n, "h": 1}, context=CONTEXT, _allow_insecure_test_size=True)
    assert isinstance(info.value, PeerProtocolError)  # the peer's fault, for the actor layer
    assert_names_no_key_material(info.value, public)


def test_any_base_the_key_owner_picks_itself_is_refused(keys):
    public, _, _, _ = keys
    n = public.n
    own_choice = pow(n - 7 * 7, n, n * n)  # a perfectly shaped DJN base, but chosen
    for h in (own_choice, public.h * public.h % (n * n), pow(public.h, 3, n * n)):
        with pytest.raises(ValueError, match="not the one derived"):
            paillier.PublicKey.from_wire({"n": n, "h": h}, context=CONTEXT, _allow_insecure_test_size=True)


def test_a_key_made_for_another_session_is_refused(keys):
    public, _, _, _ = keys
    with pytest.raises(ValueError, match="this session") as info:
        paillier.PublicKey.from_wire(public.to_wire(), context=b"another session", _allow_insecure_test_size=True)
    assert_names_no_key_material(info.value, public)


def test_the_modulus_must_have_the_agreed_size(keys):
    public, _, _, _ = keys
    wire = public.to_wire()
    rebuilt = paillier.PublicKey.from_wire(
        wire, context=CONTEXT, expected_bits=TEST_BITS, _allow_insecure_test_size=True
    )
    assert rebuilt == public
    with pytest.raises(ValueError, match="1024 bits; the run agreed on 512") as info:
        paillier.PublicKey.from_wire(wire, context=CONTEXT, expected_bits=512, _allow_insecure_test_size=True)
    assert isinstance(info.value, PeerProtocolError)
    assert_names_no_key_material(info.value, public)


def test_real_sizes_are_bound_to_the_agreed_size_too():
    public, _ = paillier.generate_keypair(2048, context=CONTEXT)
    with pytest.raises(ValueError, match="2048 bits; the run agreed on 3072"):
        paillier.PublicKey.from_wire(public.to_wire(), context=CONTEXT, expected_bits=3072)


@pytest.mark.parametrize("context,error", [(b"", ValueError), ("session", TypeError), (None, TypeError)])
def test_the_context_is_required_non_empty_bytes(keys, context, error):
    public, _, _, _ = keys
    with pytest.raises(error, match="context"):
        paillier.generate_keypair(TEST_BITS, context=context, _allow_insecure_test_size=True)
    with pytest.raises(error, match="context") as info:
        paillier.PublicKey.from_wire(public.to_wire(), context=context, _allow_insecure_test_size=True)
    assert not isinstance(info.value, PeerProtocolError)  # a bad context is our bug
    with pytest.raises(TypeError):
        paillier.generate_keypair(TEST_BITS, _allow_insecure_test_size=True)  # no default


def test_the_derived_base_is_what_djn_needs(keys):
    """Checked with the factorisation: h = (-x**2)**n is
    * deterministic in (n, context) and different for another context;
    * an n-th residue modulo n**2 (h**lambda = 1), so h**a encrypts 0: re-randomising
      never changes a plaintext;
    * of Jacobi symbol 1 but a non-residue modulo p and modulo q (Legendre -1), the
      -x**2 shape that generates the Jacobi-1 subgroup when p = q = 3 mod 4 and
      gcd(p - 1, q - 1) = 2 (which key generation enforces);
    * not of small order (h**k != 1 for k < 1000)."""
    public, secret, _, _ = keys
    n, h, p, q = public.n, public.h, secret.p, secret.q
    assert h == paillier.derive_djn_base(n, CONTEXT) == paillier.derive_djn_base(n, CONTEXT)
    assert paillier.derive_djn_base(n, CONTEXT + b"!") != h
    nsquare = n * n
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    assert 0 < h < nsquare and math.gcd(h, n) == 1
    assert pow(h, lam, nsquare) == 1
    assert secret.decrypt_raw([h]) == [0]
    assert gmpy2.jacobi(h % n, n) == 1
    assert gmpy2.legendre(h % p, p) == -1 and gmpy2.legendre(h % q, q) == -1
    power = 1
    for _ in range(1, 1000):
        power = power * h % nsquare
        assert power != 1
    # and encryption with it round-trips, re-randomisation changes every ciphertext
    ciphertexts = public.encrypt_raw([0, 5, -5])
    again = public.rerandomize_raw(ciphertexts)
    assert secret.decrypt_raw(again) == [0, 5, -5] and set(again).isdisjoint(ciphertexts)


@pytest.mark.parametrize("n", [2**1024, 1, -7, 2**1023 + 1.0], ids=["even", "one", "negative", "float"])
def test_derivation_needs_an_odd_modulus(n):
    with pytest.raises(ValueError, match="odd modulus"):
        paillier.derive_djn_base(n, CONTEXT)  # type: ignore[arg-type]


def test_a_modulus_whose_hashes_give_no_unit_is_refused_by_size(keys, monkeypatch):
    public, _, _, _ = keys
    monkeypatch.setattr(paillier, "_DERIVATION_ATTEMPTS", 0)  # as if every x shared a factor
    with pytest.raises(ValueError, match="1024-bit modulus") as info:
        paillier.PublicKey.from_wire(public.to_wire(), context=CONTEXT, _allow_insecure_test_size=True)
    assert isinstance(info.value, PeerProtocolError)
    assert_names_no_key_material(info.value, public)


# ---- the secret key's life cycle ------------------------------------------------------------


def reachable_ints(root) -> set[int]:
    """Every int / mpz reachable from ``root`` through object references."""
    found: set[int] = set()
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type) or type(obj).__name__ in ("module",):
            continue
        seen.add(id(obj))
        if isinstance(obj, (int, type(gmpy2.mpz(0)))) and not isinstance(obj, bool):
            found.add(int(obj))
            continue
        stack.extend(gc.get_referents(obj))
    return found


def test_destroy_drops_the_secret_and_every_later_use_fails():
    public, secret = paillier.generate_keypair(TEST_BITS, context=CONTEXT, _allow_insecure_test_size=True)
    p, q, n = secret.p, secret.q, public.n
    ciphertexts = public.encrypt([1, -2])
    assert secret.decrypt(ciphertexts) == [1, -2]
    assert {p, q} <= reachable_ints(secret)  # the walk does find secret material

    # owner encryption builds secret-derived tables (entries mod p**2 and q**2)
    assert secret.decrypt_raw(secret.encrypt_raw([5])) == [5]
    tables = secret._material.owner_tables
    tables_ref = weakref.ref(tables)
    table_samples = {int(tables.rows_p[0][2]), int(tables.rows_q[-1][255])}
    assert table_samples <= reachable_ints(secret)
    del tables

    secret.destroy()
    assert secret.destroyed
    gc.collect()
    assert tables_ref() is None  # the tables object itself is gone
    assert not reachable_ints(secret) & table_samples
    for use in (
        lambda: secret.decrypt(ciphertexts),
        lambda: secret.decrypt_raw([int(c) for c in ciphertexts]),
        lambda: secret.decrypt_raw([int(c) for c in ciphertexts], below_half_p=True),
        lambda: secret.encrypt_raw([1]),
        lambda: secret.encrypt_raw([]),
        lambda: secret.p,
        lambda: secret.q,
    ):
        with pytest.raises(KeyDestroyedError):
            use()
    secret.destroy()  # idempotent
    # nothing reachable from the key object shares a factor with n any more
    leftovers = [v for v in reachable_ints(secret) if v > 1 and math.gcd(v, n) not in (1, n)]
    assert leftovers == []
    assert not reachable_ints(secret) & {p, q, p * p, q * q, pow(p, -1, q), pow(q, -1, p)}
    # the public half stays usable
    assert public.encrypt([3])


def test_key_objects_are_freed_when_dropped():
    """No module-level cache keeps a key (tests elsewhere rely on weakrefs to keys)."""
    public, secret = paillier.generate_keypair(TEST_BITS, context=CONTEXT, _allow_insecure_test_size=True)
    secret.decrypt(public.encrypt([1]))
    secret.decrypt_raw(paillier.encrypt_raw(public.to_wire(), [1]))
    secret.decrypt_raw(secret.encrypt_raw([1]), below_half_p=True)
    secret_ref, public_ref = weakref.ref(secret), weakref.ref(public)
    del secret, public
    assert secret_ref() is None and public_ref() is None


def test_secret_key_cannot_be_pickled_or_copied(keys):
    _, secret, _, _ = keys
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError):
            pickle.dumps(secret, protocol=protocol)
    with pytest.raises(TypeError):
        copy.copy(secret)
    with pytest.raises(TypeError):
        copy.deepcopy(secret)


def test_secret_key_repr_shows_no_primes(keys):
    public, secret, _, _ = keys
    for text in (repr(secret), str(secret)):
        for secret_value in (secret.p, secret.q):
            assert str(secret_value) not in text
            assert hex(secret_value)[2:] not in text
            assert str(secret_value)[:12] not in text
        assert public.fingerprint() in text
