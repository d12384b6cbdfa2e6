"""Paillier: checked against python-paillier (``phe``) as an independent implementation.

phe keys are built from the same primes, so each side decrypts the other's
ciphertexts. 1024-bit keys keep the file fast; one test makes a real 2048-bit key
and one checks the 3072-bit default.
"""

from __future__ import annotations

import concurrent.futures
import copy
import gc
import math
import multiprocessing
import pickle
import weakref

import gmpy2
import numpy as np
import phe
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mpcactors.crypto import paillier
from mpcactors.errors import KeyDestroyedError, PeerProtocolError

TEST_BITS = 1024


def make_keys(bits: int = TEST_BITS):
    public, secret = paillier.generate_keypair(bits, _allow_insecure_test_size=bits < 2048)
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


# ---- key generation ------------------------------------------------------------------


def test_real_2048_bit_key_has_the_promised_shape_and_interoperates_with_phe():
    public, secret, phe_public, phe_secret = make_keys(2048)
    check_key_shape(public, secret, 2048)
    values = [0, 1, -1, 2**64, -(2**63), public.n // 2, -(public.n // 2)]
    ciphertexts = public.encrypt(values)
    assert [centred(phe_secret.raw_decrypt(int(c)), public.n) for c in ciphertexts] == values
    assert secret.decrypt(ciphertexts) == values
    # a 2048-bit key is acceptable from a peer without any escape hatch
    assert paillier.PublicKey.from_wire(public.to_wire()) == public


def test_default_key_size_is_3072_bits():
    public, secret = paillier.generate_keypair()
    check_key_shape(public, secret, 3072)


def test_test_size_keys_have_the_promised_shape(keys):
    public, secret, _, _ = keys
    check_key_shape(public, secret, TEST_BITS)


@pytest.mark.parametrize("bits", [512, 1024, 1536, 2047, 2049, 0, -2048])
def test_key_sizes_below_2048_or_odd_are_refused(bits):
    with pytest.raises(ValueError, match="modulus size"):
        paillier.generate_keypair(bits)


def test_test_size_hatch_does_not_allow_arbitrary_sizes():
    with pytest.raises(ValueError, match="modulus size"):
        paillier.generate_keypair(1000, _allow_insecure_test_size=True)


def test_two_keypairs_differ():
    a, _ = paillier.generate_keypair(TEST_BITS, _allow_insecure_test_size=True)
    b, _ = paillier.generate_keypair(TEST_BITS, _allow_insecure_test_size=True)
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
    public, _, _, _ = keys
    bad = make_bad(public.n)
    for encrypt in (public.encrypt, public.encrypt_raw):
        with pytest.raises(ValueError, match="position 2 ") as info:
            encrypt([1, 2, bad, 3])
        assert str(bad) not in str(info.value)
    with pytest.raises(ValueError, match="position 0 "):
        paillier.encrypt_raw(public.to_wire(), [bad])


@pytest.mark.parametrize("bad", [1.0, 2.5, "7", None])
def test_non_integer_plaintexts_are_refused_not_truncated(keys, bad):
    public, _, _, _ = keys
    with pytest.raises(TypeError, match="position 1 "):
        public.encrypt([0, bad])


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


# ---- keys must not mix --------------------------------------------------------------------


def test_ciphertexts_of_different_keys_do_not_combine(keys):
    public, secret, _, _ = keys
    other_public, other_secret = paillier.generate_keypair(
        TEST_BITS, _allow_insecure_test_size=True
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
    rebuilt = paillier.PublicKey.from_wire(public.to_wire(), _allow_insecure_test_size=True)
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
    rebuilt = paillier.PublicKey.from_wire(wire, _allow_insecure_test_size=True)
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
            paillier.PublicKey.from_wire(wire, _allow_insecure_test_size=True)
            pytest.fail(f"accepted a malformed key: {label}")


def test_test_size_keys_from_peers_need_the_escape_hatch(keys):
    public, _, _, _ = keys
    with pytest.raises(PeerProtocolError, match="1024 bits"):
        paillier.PublicKey.from_wire(public.to_wire())


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
    public, secret = paillier.generate_keypair(TEST_BITS, _allow_insecure_test_size=True)
    p, q, n = secret.p, secret.q, public.n
    ciphertexts = public.encrypt([1, -2])
    assert secret.decrypt(ciphertexts) == [1, -2]
    assert {p, q} <= reachable_ints(secret)  # the walk does find secret material

    secret.destroy()
    assert secret.destroyed
    for use in (
        lambda: secret.decrypt(ciphertexts),
        lambda: secret.decrypt_raw([int(c) for c in ciphertexts]),
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
    public, secret = paillier.generate_keypair(TEST_BITS, _allow_insecure_test_size=True)
    secret.decrypt(public.encrypt([1]))
    secret.decrypt_raw(paillier.encrypt_raw(public.to_wire(), [1]))
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
