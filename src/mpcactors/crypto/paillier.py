"""Paillier encryption on gmpy2, with fast encryption randomness and CRT decryption.

Generator ``g = n + 1``; plaintexts are centred integers ``|m| < n/2``. Encryption is
``(1 + m*n) * h**a mod n**2`` with ``a`` of ``ceil(bits/2)`` random bits (Damgard, Jurik
and Nielsen's short-randomness variant, semantically secure under DCR) through a cached
fixed-base table of the public base ``h``, which :func:`derive_djn_base` computes from
the modulus and the session: nobody chooses it, every peer checks it
(:meth:`PublicKey.from_wire`). Decryption uses the CRT; the key owner also encrypts
modulo ``p**2`` and ``q**2`` and may skip half the CRT for small plaintexts.

Key sizes: 3072 bits by default, 2048 and 4096 allowed, 512 and 1024 only with
``_allow_insecure_test_size=True``. An object API (keys and ciphertexts that know their
key) and raw fast paths on int lists share one implementation; the module-level raw
functions take the public key's wire dict so they pickle into workers; the secret key
never pickles. Decryption is not constant-time. Rationale, sources and measurements:
``docs/crypto.md``.

This module does no I/O, no logging and uses no event loop.
"""

from __future__ import annotations

import functools
import hashlib
import math
import operator
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import gmpy2

from ..errors import KeyDestroyedError, PeerProtocolError

__all__ = [
    "DEFAULT_KEY_BITS",
    "DJN_BASE_TAG",
    "FIXED_BASE_CACHE_SIZE",
    "SECURE_KEY_BITS",
    "allowed_key_bits",
    "Ciphertext",
    "InvalidPublicKey",
    "PublicKey",
    "SecretKey",
    "derive_djn_base",
    "encrypt_raw",
    "generate_keypair",
    "half_crt_plaintext_bits",
    "mask_and_rerandomise",
    "rerandomize_raw",
]

#: Modulus size used when none is given.
DEFAULT_KEY_BITS = 3072
#: Modulus sizes accepted for real use (keys and peers' public keys).
SECURE_KEY_BITS: frozenset[int] = frozenset({2048, 3072, 4096})
#: Extra sizes accepted only with ``_allow_insecure_test_size=True`` (fast tests).
_TEST_KEY_BITS: frozenset[int] = frozenset({512, 1024})
#: How many public keys' fixed-base tables one process keeps (each is tens of MB).
FIXED_BASE_CACHE_SIZE = 4
#: Window of the fixed-base table: one table row per byte of the random exponent.
_WINDOW_BITS = 8
#: Random exponents are drawn for this many values at a time (bounds a temporary buffer).
_CHUNK = 1024
#: FIPS 186-4 (B.3.1): |p - q| must exceed 2**(bits/2 - 100) to rule out Fermat factoring.
_PQ_DISTANCE_SLACK_BITS = 100
#: Miller-Rabin rounds of gmpy2.is_prime (GMP also runs a BPSW test first).
_PRIMALITY_ROUNDS = 50
#: Domain separation of :func:`derive_djn_base` (versioned: change it and every base changes).
DJN_BASE_TAG = b"mpcactors/paillier/djn-base/v1\x00"
#: Extra bits drawn for ``x`` before reducing it mod ``n``: bias below ``2**-128``.
_DERIVATION_SLACK_BITS = 128
#: Attempts at a unit ``x`` before a modulus is declared unusable (an honest one needs 1).
_DERIVATION_ATTEMPTS = 64


class InvalidPublicKey(PeerProtocolError, ValueError):
    """A public key received from a peer is refused; the message names sizes only.

    A :class:`ValueError` for callers of this module and a
    :class:`~mpcactors.errors.PeerProtocolError` for the actor layer (the peer's fault).
    """


def _length_prefixed(value: bytes) -> bytes:
    return len(value).to_bytes(8, "big") + value


def _check_context(context: object) -> None:
    if not isinstance(context, bytes):
        raise TypeError(f"the DJN base context must be bytes, not {type(context).__name__}")
    if not context:
        raise ValueError("the DJN base context must not be empty (use the session id)")


def derive_djn_base(n: int, context: bytes) -> int:
    """The DJN randomness base ``h = (-x**2)**n mod n**2`` with ``x`` derived from public data.

    ``x`` is SHA-256 in counter mode over :data:`DJN_BASE_TAG`, ``n`` and ``context``
    (each length-prefixed), ``bits(n) + 128`` bits reduced mod ``n``, so nobody, the key
    owner included, chooses ``h``; anyone holding ``n`` and ``context`` recomputes it.

    Raises:
        TypeError: ``context`` is not bytes.
        ValueError: ``context`` is empty, ``n`` is not an odd integer above 1, or no unit
            ``x`` turns up (a modulus with small factors; the message names its size only).
    """
    _check_context(context)
    if not isinstance(n, int) or n < 3 or n % 2 == 0:
        raise ValueError("the DJN base needs an odd modulus above 1")
    n_bytes = n.to_bytes((n.bit_length() + 7) // 8, "big")
    prefix = DJN_BASE_TAG + _length_prefixed(n_bytes) + _length_prefixed(context)
    blocks = -(-(n.bit_length() + _DERIVATION_SLACK_BITS) // 256)
    modulus = gmpy2.mpz(n)
    for attempt in range(_DERIVATION_ATTEMPTS):
        stream = b"".join(
            hashlib.sha256(prefix + attempt.to_bytes(4, "big") + block.to_bytes(4, "big")).digest()
            for block in range(blocks)
        )
        x = gmpy2.mpz(int.from_bytes(stream, "big")) % modulus
        if x and gmpy2.gcd(x, modulus) == 1:
            return int(gmpy2.powmod(modulus - x * x % modulus, modulus, modulus * modulus))
    raise ValueError(f"no DJN base for this {n.bit_length()}-bit modulus: it has small factors")


def allowed_key_bits(*, allow_insecure_test_size: bool = False) -> frozenset[int]:
    """The modulus sizes a key may have: the one key-size policy that configs and the CLI read."""
    return SECURE_KEY_BITS | _TEST_KEY_BITS if allow_insecure_test_size else SECURE_KEY_BITS


def _exponent_bytes(modulus_bits: int) -> int:
    """Bytes of the random exponent ``a``: at least ``ceil(bits/2)`` bits, whole bytes."""
    return -(-math.ceil(modulus_bits / 2) // _WINDOW_BITS)


def half_crt_plaintext_bits(modulus_bits: int) -> int:
    """Bits below which plaintexts qualify for half-CRT decryption: ``modulus_bits//2 - 2``.

    Every plaintext ``0 <= m < 2**(bits//2 - 2)`` is below ``p / 2`` for both primes
    of any key whose primes have ``bits/2`` bits (``p >= 2**(bits/2 - 1)``), which
    :func:`generate_keypair` guarantees. A public number, so a caller can check its own
    plaintexts against it without the key (``SecretKey.decrypt_raw(below_half_p=True)``).
    """
    return modulus_bits // 2 - 2


# ---- fixed-base exponentiation (public data only) ------------------------------------


def _power_rows(base: Any, modulus: Any, exponent_bytes: int) -> list[list[Any]]:
    """``rows[i][j] = base**(j * 256**i) mod modulus`` for ``i < exponent_bytes``, ``j < 256``."""
    rows = []
    base = gmpy2.mpz(base) % modulus
    for _ in range(exponent_bytes):
        row = [gmpy2.mpz(1), base]
        power = base
        for _ in range(2, 1 << _WINDOW_BITS):
            power = power * base % modulus
            row.append(power)
        rows.append(row)
        base = power * base % modulus  # base**256: the next byte position
    return rows


class _FixedBase:
    """Table of ``h**(j * 256**i) mod n**2`` for fast random powers of a fixed ``h``.

    ``rows[i][j]`` is ``h**(j * 256**i)``; a random exponent is drawn as
    ``exponent_bytes`` uniform bytes ``b_i`` and ``h**a`` is the product of
    ``rows[i][b_i]``. Holds only public data, so caching it per process is fine.
    """

    __slots__ = ("exponent_bytes", "n", "nsquare", "rows")

    def __init__(self, n: int, h: int) -> None:
        self.n = gmpy2.mpz(n)
        self.nsquare = self.n * self.n
        self.exponent_bytes = _exponent_bytes(n.bit_length())
        self.rows = _power_rows(h, self.nsquare, self.exponent_bytes)

    def times_random_powers(self, starts: Sequence[Any]) -> list[int]:
        """Return ``[s * h**a_k mod n**2]`` with a fresh uniform ``a_k`` per start value."""
        nsquare = self.nsquare
        rows = self.rows
        width = self.exponent_bytes
        out: list[int] = []
        for chunk_start in range(0, len(starts), _CHUNK):
            chunk = starts[chunk_start : chunk_start + _CHUNK]
            randomness = secrets.token_bytes(width * len(chunk))
            for k, acc in enumerate(chunk):
                digits = randomness[k * width : (k + 1) * width]
                for row, digit in zip(rows, digits):
                    if digit:
                        acc = acc * row[digit] % nsquare
                out.append(int(acc))
        return out


@functools.lru_cache(maxsize=FIXED_BASE_CACHE_SIZE)
def _fixed_base(n: int, h: int) -> _FixedBase:
    """The per-process table for public key ``(n, h)`` (keyed by plain ints, not keys)."""
    return _FixedBase(n, h)


# ---- shared validation and raw arithmetic -------------------------------------------


def _plaintext_ints(values: Iterable[Any], half: int, first_position: int = 0) -> list[int]:
    """Validate plaintexts (integers with ``|m| <= n//2``) and return them as ints.

    Positions in error messages count from ``first_position`` (a batch of a longer list).
    """
    out = []
    for position, value in enumerate(values, first_position):
        try:
            m = operator.index(value)
        except TypeError:
            raise TypeError(f"plaintext at position {position} is not an integer") from None
        if not -half <= m <= half:
            raise ValueError(
                f"plaintext at position {position} is outside the centred range |m| < n/2"
            )
        out.append(m)
    return out


def _plaintext_starts(
    values: Iterable[Any], n: Any, half: int, first_position: int = 0
) -> list[Any]:
    """Validate plaintexts and return ``1 + (m mod n) * n`` for each (``g**m``, g = n+1)."""
    return [1 + (m % n) * n for m in _plaintext_ints(values, half, first_position)]


def _ciphertext_values(
    values: Iterable[Any], n: Any, nsquare: Any, first_position: int = 0
) -> list[Any]:
    """Validate raw ciphertexts (``0 < c < n**2``, integers) and return them as mpz."""
    out = []
    for position, value in enumerate(values, first_position):
        try:
            c = gmpy2.mpz(operator.index(value))
        except TypeError:
            raise TypeError(f"ciphertext at position {position} is not an integer") from None
        if not 0 < c < nsquare:
            raise ValueError(f"ciphertext at position {position} is outside (0, n**2)")
        out.append(c)
    return out


def _wire_ints(public_wire: Mapping[str, int]) -> tuple[int, int]:
    return int(public_wire["n"]), int(public_wire["h"])


def encrypt_raw(public_wire: Mapping[str, int], plaintexts: Sequence[int]) -> list[int]:
    """Encrypt integers under the public key given as its wire dict; return raw ints.

    Picklable and free of key objects, so it can run in a worker process; the
    fixed-base table is built once per process and key (:data:`FIXED_BASE_CACHE_SIZE`).
    The caller is expected to have validated the key with :meth:`PublicKey.from_wire`.

    Raises:
        ValueError: a plaintext is outside ``|m| < n/2`` (the message names its position).
        TypeError: a plaintext is not an integer (floats are refused, not truncated).
    """
    n, h = _wire_ints(public_wire)
    table = _fixed_base(n, h)
    return table.times_random_powers(_plaintext_starts(plaintexts, table.n, n // 2))


def rerandomize_raw(public_wire: Mapping[str, int], ciphertexts: Sequence[int]) -> list[int]:
    """Multiply each raw ciphertext by a fresh encryption of zero (``h**a``).

    The result decrypts to the same plaintext and is distributed like a fresh
    encryption of it, so it hides how it was computed. Picklable like :func:`encrypt_raw`.

    Raises:
        ValueError: a value is outside ``(0, n**2)`` (the message names its position).
    """
    n, h = _wire_ints(public_wire)
    table = _fixed_base(n, h)
    return table.times_random_powers(_ciphertext_values(ciphertexts, table.n, table.nsquare))


def mask_and_rerandomise(public_wire: Mapping[str, int], own: list[int], masks: list[list[int]]) -> list[int]:
    """TTP, step 6: ``Enc(x) * prod_i Enc(2^k - r_i)`` re-randomised, so the key owner cannot
    link it to its row; one mask list per other data party.

    The default :class:`~mpcactors.actors.hooks.Hooks` ``combine``. It lives here, not
    in the actors, so a worker process that runs it imports only this module (a
    forkserver's workers start with it loaded, see :mod:`mpcactors.actors.executor`).
    """
    nsquare = gmpy2.mpz(public_wire["n"]) ** 2
    combined = [gmpy2.mpz(a) for a in own]
    for mask in masks:
        combined = [c * b % nsquare for c, b in zip(combined, mask, strict=True)]
    return rerandomize_raw(public_wire, [int(c) for c in combined])


# ---- keys and ciphertexts ----------------------------------------------------------------


class PublicKey:
    """A Paillier public key ``(n, h)``: encrypts, adds, re-randomises. Plain public data.

    Build one with :func:`generate_keypair` or, for a key received from a peer,
    :meth:`from_wire`. Two keys are equal when ``n`` and ``h`` are.
    """

    __slots__ = ("__weakref__", "_h", "_half", "_n", "_nsquare")

    def __init__(self, n: int, h: int) -> None:
        """Wrap ``(n, h)`` without validation; use :meth:`from_wire` for untrusted data."""
        self._n = gmpy2.mpz(n)
        self._h = gmpy2.mpz(h)
        self._nsquare = self._n * self._n
        self._half = int(self._n // 2)

    # ---- plain data ----
    @property
    def n(self) -> int:
        """The modulus."""
        return int(self._n)

    @property
    def h(self) -> int:
        """The fixed randomness base ``(-x**2)**n mod n**2``."""
        return int(self._h)

    @property
    def bits(self) -> int:
        """Bit length of ``n``."""
        return self._n.bit_length()

    @property
    def max_plaintext(self) -> int:
        """Largest ``|m|`` that can be encrypted: ``n // 2`` (plaintexts are centred)."""
        return self._half

    def to_wire(self) -> dict[str, int]:
        """Plain data for the codec: ``{"n": n, "h": h}`` (Python ints)."""
        return {"n": int(self._n), "h": int(self._h)}

    @classmethod
    def from_wire(
        cls,
        data: object,
        *,
        context: bytes,
        expected_bits: int | None = None,
        _allow_insecure_test_size: bool = False,
    ) -> PublicKey:
        """Rebuild and validate a public key received from a peer.

        Checks the shape (a map with exactly the integer entries ``n`` and ``h``), that
        ``n`` is odd with an allowed bit size (:data:`SECURE_KEY_BITS`; test sizes only
        with ``_allow_insecure_test_size``) equal to ``expected_bits`` when given, and
        that ``h`` is :func:`derive_djn_base` of ``n`` and ``context`` (the session id
        the key was made for). It cannot check that ``n`` is a product of two primes:
        that needs the factorisation.

        Raises:
            InvalidPublicKey: the data is not a valid public key for this context; the
                message names sizes, never key material.
            TypeError, ValueError: ``context`` is not non-empty bytes (the caller's bug).
        """
        _check_context(context)
        if not isinstance(data, Mapping) or set(data.keys()) != {"n", "h"}:
            raise InvalidPublicKey(
                "a Paillier public key must be a map with exactly the keys 'n' and 'h'"
            )
        n, h = data["n"], data["h"]
        for name, value in (("n", n), ("h", h)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidPublicKey(f"Paillier public key entry {name!r} is not an integer")
        allowed = allowed_key_bits(allow_insecure_test_size=_allow_insecure_test_size)
        if n <= 0 or n.bit_length() not in allowed:
            raise InvalidPublicKey(
                f"Paillier public key modulus has {n.bit_length()} bits; "
                f"allowed sizes are {sorted(allowed)}"
            )
        if expected_bits is not None and n.bit_length() != expected_bits:
            raise InvalidPublicKey(
                f"Paillier public key modulus has {n.bit_length()} bits; the run agreed on {expected_bits}"
            )
        if n % 2 == 0:
            raise InvalidPublicKey("Paillier public key modulus is even")
        if not 0 < h < n * n:
            raise InvalidPublicKey("Paillier public key base h is outside (0, n**2)")
        if gmpy2.gcd(h, n) != 1:
            raise InvalidPublicKey("Paillier public key base h shares a factor with n")
        try:
            derived = derive_djn_base(n, context)
        except ValueError as exc:
            raise InvalidPublicKey(f"Paillier public key refused: {exc}") from None
        if h != derived:
            raise InvalidPublicKey(
                f"the base h of this {n.bit_length()}-bit Paillier public key is not the one "
                "derived from its modulus and this session: the key owner chose its own"
            )
        return cls(n, h)

    def fingerprint(self) -> str:
        """First 16 hex digits of SHA-256 over a canonical encoding of ``(n, h)``; for logs."""
        digest = hashlib.sha256(b"mpcactors/paillier-public-key/v1\x00")
        for value in (int(self._n), int(self._h)):
            raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
            digest.update(len(raw).to_bytes(4, "big"))
            digest.update(raw)
        return digest.hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self is other or (self._n == other._n and self._h == other._h)

    def __hash__(self) -> int:
        return hash((int(self._n), int(self._h)))

    def __repr__(self) -> str:
        return f"<PublicKey {self.bits}-bit fingerprint={self.fingerprint()}>"

    # ---- object API ----
    def encrypt(self, values: Iterable[int]) -> list[Ciphertext]:
        """Encrypt each integer (``|m| < n/2``; numpy integers accepted) with fresh randomness.

        Raises:
            ValueError: a value is out of range (the message names its position only).
            TypeError: a value is not an integer.
        """
        return [Ciphertext(self, c) for c in self.encrypt_raw(list(values))]

    def ciphertext(self, value: int) -> Ciphertext:
        """Rebuild a ciphertext of this key from its raw integer (``int(ciphertext)``).

        Raises:
            ValueError: not ``0 < value < n**2`` or ``gcd(value, n) != 1``.
        """
        (c,) = _ciphertext_values([value], self._n, self._nsquare)
        if gmpy2.gcd(c, self._n) != 1:
            raise ValueError("ciphertext value shares a factor with n")
        return Ciphertext(self, c)

    def rerandomize(self, ciphertext: Ciphertext) -> Ciphertext:
        """A fresh-looking ciphertext of the same plaintext (see :func:`rerandomize_raw`)."""
        return self.rerandomize_many([ciphertext])[0]

    def rerandomize_many(self, ciphertexts: Iterable[Ciphertext]) -> list[Ciphertext]:
        """:meth:`rerandomize` for many ciphertexts at once."""
        raw = [self._own(c, position)._value for position, c in enumerate(ciphertexts)]
        table = _fixed_base(int(self._n), int(self._h))
        return [Ciphertext(self, c) for c in table.times_random_powers(raw)]

    def _own(self, ciphertext: object, position: int | None = None) -> Ciphertext:
        if not isinstance(ciphertext, Ciphertext):
            raise TypeError(f"expected a Ciphertext, got {type(ciphertext).__name__}")
        if ciphertext._public != self:
            where = "" if position is None else f" at position {position}"
            raise ValueError(f"ciphertext{where} belongs to a different Paillier key")
        return ciphertext

    # ---- raw fast paths on plain ints ----
    def encrypt_raw(self, plaintexts: Sequence[int]) -> list[int]:
        """:func:`encrypt_raw` with this key."""
        table = _fixed_base(int(self._n), int(self._h))
        return table.times_random_powers(_plaintext_starts(plaintexts, self._n, self._half))

    def rerandomize_raw(self, ciphertexts: Sequence[int]) -> list[int]:
        """:func:`rerandomize_raw` with this key."""
        table = _fixed_base(int(self._n), int(self._h))
        return table.times_random_powers(
            _ciphertext_values(ciphertexts, self._n, self._nsquare)
        )

    def add_raw(self, a: Sequence[int], b: Sequence[int]) -> list[int]:
        """Element-wise homomorphic sum: ``Enc(x) * Enc(y) = Enc(x + y) mod n**2``.

        Deterministic: re-randomise the result before it leaves for a party that could
        otherwise recognise its inputs in it.

        Raises:
            ValueError: different lengths, or a value outside ``(0, n**2)``.
        """
        if len(a) != len(b):
            raise ValueError(f"cannot add {len(a)} ciphertexts to {len(b)}")
        nsquare = self._nsquare
        left = _ciphertext_values(a, self._n, nsquare)
        right = _ciphertext_values(b, self._n, nsquare)
        return [int(x * y % nsquare) for x, y in zip(left, right)]


class Ciphertext:
    """One Paillier ciphertext bound to its public key.

    Supports ``+`` and ``-`` between ciphertexts of the same key, unary ``-`` and
    ``*`` by a plaintext integer (either side). Results are deterministic functions of
    the operands: re-randomise with :meth:`PublicKey.rerandomize` before sending them
    to the key owner. ``int(c)`` is the raw value modulo ``n**2``.
    """

    __slots__ = ("_public", "_value")

    def __init__(self, public: PublicKey, value: Any) -> None:
        """Internal: use :meth:`PublicKey.encrypt` or :meth:`PublicKey.ciphertext`."""
        self._public = public
        self._value = gmpy2.mpz(value)

    @property
    def public(self) -> PublicKey:
        """The key this ciphertext belongs to."""
        return self._public

    def __int__(self) -> int:
        return int(self._value)

    def _check_same_key(self, other: Ciphertext) -> None:
        if other._public != self._public:
            raise ValueError("cannot combine ciphertexts of different Paillier keys")

    def __add__(self, other: object) -> Ciphertext:
        if not isinstance(other, Ciphertext):
            return NotImplemented
        self._check_same_key(other)
        return Ciphertext(self._public, self._value * other._value % self._public._nsquare)

    def __sub__(self, other: object) -> Ciphertext:
        if not isinstance(other, Ciphertext):
            return NotImplemented
        self._check_same_key(other)
        nsquare = self._public._nsquare
        inverse = gmpy2.invert(other._value, nsquare)
        return Ciphertext(self._public, self._value * inverse % nsquare)

    def __neg__(self) -> Ciphertext:
        return Ciphertext(self._public, gmpy2.invert(self._value, self._public._nsquare))

    def __mul__(self, scalar: object) -> Ciphertext:
        if isinstance(scalar, Ciphertext):
            return NotImplemented
        try:
            k = operator.index(scalar)  # type: ignore[arg-type]
        except TypeError:
            return NotImplemented
        return Ciphertext(self._public, gmpy2.powmod(self._value, k, self._public._nsquare))

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ciphertext):
            return NotImplemented
        return self._public == other._public and self._value == other._value

    def __hash__(self) -> int:
        return hash((self._public, int(self._value)))

    def __repr__(self) -> str:
        return f"<Ciphertext key={self._public.fingerprint()}>"


class _OwnerTables:
    """Fixed-base rows of ``h`` modulo ``p**2`` and modulo ``q**2``, for owner encryption.

    Unlike the public table these are secret-derived: any entry ``e`` of ``rows_p``
    gives away ``p`` as ``gcd(h**k - e, n)`` for the known ``k``. So they are never
    cached per process: they live in :class:`_SecretMaterial`, are built on the first
    :meth:`SecretKey.encrypt_raw` and dropped with the rest by :meth:`SecretKey.destroy`.
    Together they are as large as the public table (two half-width tables).
    """

    __slots__ = ("__weakref__", "psquare_inverse", "rows_p", "rows_q")

    def __init__(self, h: Any, s: _SecretMaterial, exponent_bytes: int) -> None:
        self.rows_p: list[list[Any]] | None = _power_rows(h, s.psquare, exponent_bytes)
        self.rows_q: list[list[Any]] | None = _power_rows(h, s.qsquare, exponent_bytes)
        self.psquare_inverse: Any = gmpy2.invert(s.psquare, s.qsquare)

    def clear(self) -> None:
        self.rows_p = self.rows_q = self.psquare_inverse = None


class _SecretMaterial:
    """Everything derived from the factorisation; dropped as a whole by destroy()."""

    __slots__ = ("h_p", "h_q", "owner_tables", "p", "p_inverse", "psquare", "q", "qsquare")

    def __init__(self, n: Any, p: Any, q: Any) -> None:
        if q < p:
            p, q = q, p
        self.p = p
        self.q = q
        self.psquare = p * p
        self.qsquare = q * q
        self.p_inverse = gmpy2.invert(p, q)
        # h_p = L_p(g**(p-1) mod p**2)**-1 mod p with g = n + 1 (as in phe).
        self.h_p = gmpy2.invert((gmpy2.powmod(n + 1, p - 1, self.psquare) - 1) // p, p)
        self.h_q = gmpy2.invert((gmpy2.powmod(n + 1, q - 1, self.qsquare) - 1) // q, q)
        self.owner_tables: _OwnerTables | None = None  # built on first owner encryption

    def clear(self) -> None:
        tables = self.owner_tables
        if tables is not None:
            tables.clear()
        for name in self.__slots__:
            setattr(self, name, None)


class SecretKey:
    """A Paillier secret key: decrypts, and encrypts faster than the public key can.

    Never serialised, never logged; destroy after use. The one way its material
    reaches another process is :func:`mpcactors.crypto.workers.secret_key_handoff`.

    ``pickle``, ``copy`` and ``repr`` do not reveal it (pickling raises ``TypeError``).
    After :meth:`destroy` every use raises :class:`~mpcactors.errors.KeyDestroyedError`.
    """

    __slots__ = ("__weakref__", "_fingerprint", "_material", "_public")

    def __init__(self, public: PublicKey, p: int, q: int) -> None:
        """Internal: use :func:`generate_keypair`. Checks ``p * q == n`` and ``p != q``."""
        p_, q_ = gmpy2.mpz(p), gmpy2.mpz(q)
        if p_ == q_ or p_ * q_ != public._n:
            raise ValueError("p and q are not two distinct factors of the public modulus")
        self._public = public
        self._fingerprint = public.fingerprint()
        self._material: _SecretMaterial | None = _SecretMaterial(public._n, p_, q_)

    def _live(self) -> _SecretMaterial:
        material = self._material
        if material is None:
            raise KeyDestroyedError(
                f"Paillier secret key {self._fingerprint} was destroyed and cannot be used"
            )
        return material

    @property
    def public(self) -> PublicKey:
        """The matching public key (stays usable after :meth:`destroy`)."""
        return self._public

    @property
    def p(self) -> int:
        """The smaller prime factor of ``n``."""
        return int(self._live().p)

    @property
    def q(self) -> int:
        """The larger prime factor of ``n``."""
        return int(self._live().q)

    @property
    def destroyed(self) -> bool:
        """Whether :meth:`destroy` has run."""
        return self._material is None

    def destroy(self) -> None:
        """Drop ``p``, ``q`` and every value derived from them; idempotent.

        Afterwards no reference to secret material remains reachable from this
        object and every use raises :class:`~mpcactors.errors.KeyDestroyedError`.
        Python cannot wipe memory: ints and mpz values are immutable, so the freed
        memory keeps its bytes until reused (and copies may linger in values the
        caller took out through :attr:`p` and :attr:`q`). This is deletion as far as
        the language allows, not secure erasure.
        """
        material = self._material
        self._material = None
        if material is not None:
            material.clear()

    def decrypt(self, ciphertexts: Iterable[Ciphertext]) -> list[int]:
        """Decrypt ciphertexts of this key to centred integers in ``(-n/2, n/2]``.

        Raises:
            KeyDestroyedError: the key was destroyed.
            ValueError: a ciphertext belongs to another key (position named).
        """
        self._live()
        raw = [self._public._own(c, position)._value for position, c in enumerate(ciphertexts)]
        return self._decrypt_values(raw)

    def decrypt_raw(self, values: Sequence[int], *, below_half_p: bool = False) -> list[int]:
        """Decrypt raw ciphertext ints (``0 < c < n**2``) to centred integers.

        With ``below_half_p=True`` the caller guarantees that every plaintext ``m``
        satisfies ``0 <= m < 2**half_crt_plaintext_bits(bits)`` (a public bound, below
        ``min(p, q) / 2`` for every key :func:`generate_keypair` makes, see
        :func:`half_crt_plaintext_bits`). Then ``m`` equals its residue modulo the
        smaller prime ``p`` and decryption does only the ``p`` half of the CRT: one
        exponentiation modulo ``p**2`` instead of two, about twice as fast.
        :meth:`~mpcactors.crypto.packing.Packing.fits_half_crt` tells when packed
        masked rows qualify.

        The guarantee is checked as far as the ``p`` half allows: a residue at or
        above the bound raises :class:`ValueError`. A plaintext that breaks the
        guarantee has a residue below the bound only if it happens to be close to a
        multiple of ``p`` (for an unrelated value, a chance of at most
        ``bound / p < 1/2``, and of ``1/3`` for keys made here), so a false
        guarantee is caught in most cases, not all: this is a safety net, the
        caller's bound is the contract.

        Uses gmpy2's list exponentiation, which releases the GIL, so a thread can run it
        beside the event loop.

        Raises:
            KeyDestroyedError: the key was destroyed.
            ValueError: a value is outside ``(0, n**2)`` (position named), or, with
                ``below_half_p``, a decrypted value is not below the bound (position
                named, not the value).
        """
        return self._decrypt_batch(values, below_half_p=below_half_p)

    def _decrypt_batch(
        self, values: Sequence[int], *, below_half_p: bool, first_position: int = 0
    ) -> list[int]:
        """:meth:`decrypt_raw` for a batch starting at ``first_position`` of a longer list."""
        self._live()
        public = self._public
        checked = _ciphertext_values(values, public._n, public._nsquare, first_position)
        if below_half_p:
            return self._decrypt_below_half_p(checked, first_position)
        return self._decrypt_values(checked)

    def _decrypt_below_half_p(self, values: list[Any], first_position: int) -> list[int]:
        s = self._live()
        p, h_p, psquare = s.p, s.h_p, s.psquare
        bound_bits = half_crt_plaintext_bits(self._public.bits)
        bound = 1 << bound_bits
        if 2 * bound > p:
            # A key not made by generate_keypair with a short smaller prime: the p half
            # alone would not determine m; decrypt fully and check the same bound.
            out = self._decrypt_values(values)
        else:
            to_p = gmpy2.powmod_base_list([c % psquare for c in values], p - 1, psquare)
            out = [int((xp - 1) // p * h_p % p) for xp in to_p]
        for position, m in enumerate(out, first_position):
            if not 0 <= m < bound:
                raise ValueError(
                    f"decrypted value at position {position} is not in [0, 2**{bound_bits}): "
                    "the caller's half-CRT guarantee was false"
                )
        return out

    def encrypt_raw(self, plaintexts: Sequence[int]) -> list[int]:
        """Encrypt integers under this key's public key, about 1.4 to 1.5 times faster.

        The key owner's fast path: the same ciphertexts as :meth:`PublicKey.encrypt_raw`
        computed modulo ``p**2`` and ``q**2`` with half-width numbers and joined with
        the CRT (see :class:`_OwnerTables`). For each plaintext it draws the same kind
        of randomness, a uniform ``a`` of ``8 * ceil(ceil(bits/2) / 8)`` bits, and
        returns ``c = (1 + m*n) * h**a mod n**2``: by the CRT, the unique value modulo
        ``n**2`` with the residues computed here. So the output is, value for value,
        what the public path returns for the same ``a``, and its distribution is that
        of a fresh public encryption (the security argument in docs/crypto.md
        carries over unchanged; tests check equality for equal randomness).

        The per-prime tables are built on the first call (about as long as the public
        table, under a second at 3072 bits) and dropped by :meth:`destroy`.

        Raises:
            KeyDestroyedError: the key was destroyed.
            ValueError: a plaintext is outside ``|m| < n/2`` (position named).
            TypeError: a plaintext is not an integer.
        """
        return self._encrypt_batch(plaintexts)

    def _encrypt_batch(self, plaintexts: Sequence[int], first_position: int = 0) -> list[int]:
        """:meth:`encrypt_raw` for a batch starting at ``first_position`` of a longer list."""
        s = self._live()
        public = self._public
        n = public._n
        ms = _plaintext_ints(plaintexts, public._half, first_position)
        width = _exponent_bytes(public.bits)
        tables = s.owner_tables
        if tables is None:
            tables = s.owner_tables = _OwnerTables(public._h, s, width)
        rows_p, rows_q, inverse = tables.rows_p, tables.rows_q, tables.psquare_inverse
        if rows_p is None or rows_q is None:  # destroyed by another thread meanwhile
            self._live()
            raise KeyDestroyedError("Paillier secret key was destroyed during encryption")
        psquare, qsquare = s.psquare, s.qsquare
        out: list[int] = []
        for chunk_start in range(0, len(ms), _CHUNK):
            chunk = ms[chunk_start : chunk_start + _CHUNK]
            randomness = secrets.token_bytes(width * len(chunk))
            for k, m in enumerate(chunk):
                start = 1 + (m % n) * n
                acc_p = start % psquare
                acc_q = start % qsquare
                digits = randomness[k * width : (k + 1) * width]
                for row_p, row_q, digit in zip(rows_p, rows_q, digits):
                    if digit:
                        acc_p = acc_p * row_p[digit] % psquare
                        acc_q = acc_q * row_q[digit] % qsquare
                # Garner: c = acc_p (mod p**2), c = acc_q (mod q**2), 0 <= c < n**2
                out.append(int(acc_p + psquare * ((acc_q - acc_p) * inverse % qsquare)))
        return out

    def _decrypt_values(self, values: list[Any]) -> list[int]:
        s = self._live()
        p, q, h_p, h_q, p_inverse = s.p, s.q, s.h_p, s.h_q, s.p_inverse
        psquare, qsquare = s.psquare, s.qsquare
        n, half = int(self._public._n), self._public._half
        to_p = gmpy2.powmod_base_list([c % psquare for c in values], p - 1, psquare)
        to_q = gmpy2.powmod_base_list([c % qsquare for c in values], q - 1, qsquare)
        out = []
        for xp, xq in zip(to_p, to_q):
            m_p = (xp - 1) // p * h_p % p
            m_q = (xq - 1) // q * h_q % q
            m = int(m_p + p * ((m_q - m_p) * p_inverse % q))
            out.append(m - n if m > half else m)
        return out

    def __repr__(self) -> str:
        state = "destroyed" if self._material is None else "live"
        return f"<SecretKey {self._public.bits}-bit fingerprint={self._fingerprint} {state}>"

    def __reduce__(self) -> Any:
        raise TypeError("a Paillier secret key cannot be pickled or copied")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("a Paillier secret key cannot be pickled or copied")

    def __getstate__(self) -> Any:
        raise TypeError("a Paillier secret key cannot be pickled or copied")


# ---- key generation ------------------------------------------------------------------


def _random_blum_prime(bits: int) -> Any:
    """A uniformly chosen ``bits``-bit prime ``= 3 (mod 4)`` with its two top bits set."""
    top = 0b11 << (bits - 2)
    while True:
        candidate = gmpy2.mpz(secrets.randbits(bits) | top | 0b11)
        if gmpy2.is_prime(candidate, _PRIMALITY_ROUNDS):
            return candidate


def generate_keypair(
    bits: int = DEFAULT_KEY_BITS, *, context: bytes, _allow_insecure_test_size: bool = False
) -> tuple[PublicKey, SecretKey]:
    """Generate a Paillier key pair with a ``bits``-bit modulus from the OS CSPRNG.

    ``p`` and ``q`` are independent random primes of ``bits/2`` bits with their top two
    bits set (so ``n`` has exactly ``bits`` bits), ``p = q = 3 (mod 4)``,
    ``gcd(p - 1, q - 1) = 2`` (the DJN setting, see docs/crypto.md),
    ``|p - q| > 2**(bits/2 - 100)`` (FIPS 186-4) and ``gcd(n, (p-1)(q-1)) = 1``.
    ``h = derive_djn_base(n, context)``: peers check it with the same ``context``
    (:meth:`PublicKey.from_wire`), the session id of the run the key is for.

    Raises:
        ValueError: ``bits`` is not an allowed size (:data:`SECURE_KEY_BITS`; 512 and
            1024 only with ``_allow_insecure_test_size=True``), or ``context`` is empty.
        TypeError: ``context`` is not bytes.
    """
    allowed = allowed_key_bits(allow_insecure_test_size=_allow_insecure_test_size)
    if bits not in allowed:
        raise ValueError(f"Paillier modulus size must be one of {sorted(allowed)}, got {bits}")
    _check_context(context)  # before the expensive part
    half = bits // 2
    while True:
        p = _random_blum_prime(half)
        q = _random_blum_prime(half)
        if p == q or abs(p - q).bit_length() <= half - _PQ_DISTANCE_SLACK_BITS:
            continue
        if gmpy2.gcd(p - 1, q - 1) != 2:
            continue
        n = p * q
        if n.bit_length() != bits or gmpy2.gcd(n, (p - 1) * (q - 1)) != 1:
            continue  # unreachable for such primes; checked rather than assumed
        break
    public = PublicKey(int(n), derive_djn_base(int(n), context))
    return public, SecretKey(public, p, q)
