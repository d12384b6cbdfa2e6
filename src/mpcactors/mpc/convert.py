"""Step 7: integer additive shares of the hospital and the insurer -> 3-party Shamir shares.

The hospital (1) holds ``s1`` and the insurer (2) holds ``s2`` with ``x = s1 + s2`` over
the integers (signed, about 90 bits, from step 6); the TTP (3) holds nothing. Reduction
mod ``p`` is a ring homomorphism, so a sharing of ``s1 + s2 mod p`` is a sharing of
``x mod p``, and the centred decoding gives back ``x`` as long as ``|x| < p/2``.

The cheap conversion (``docs/lasso.md``): with ``A = PRF(k13)`` and
``B = PRF(k23)`` the TTP's share is ``f(3) = A + B`` on the line
``f(z) = x + (f(3) - x) z / 3``, so

* ``f(1) = (2 s1 + A + m21) / 3`` with ``m21 = 2 s2 + B`` sent by the insurer, and
* ``f(2) = (m12 + s2 + 2 B) / 3`` with ``m12 = s1 + 2 A`` sent by the hospital.

Each message is masked by a key its receiver lacks; the TTP's share is pseudo-random
and independent of ``x``. Cost: 2 elements per value, 1 round, the TTP receives nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from .engine import Engine, Program

__all__ = ["to_shamir"]


def to_shamir(engine: Engine, additive: Sequence[int] | None, length: int) -> Program[list[int]]:
    """Program: every party's degree-1 Shamir share of ``x = s1 + s2 mod p``.

    Args:
        engine: this party's engine (after :meth:`Engine.setup`).
        additive: the hospital's or the insurer's integer share vector (signed ints);
            ``None`` at the TTP.
        length: the vector length (public).

    Raises:
        ValueError: a data party passed no vector, a vector of the wrong length, or a
            non-integer; the TTP passed a vector.
    """
    party = engine.party
    if party in (1, 2):
        if additive is None or len(additive) != length:
            raise ValueError(f"to_shamir: party {party} must pass {length} additive shares")
        if any(type(v) is not int for v in additive):
            raise ValueError("to_shamir: additive shares must be Python ints")
    elif additive is not None:
        raise ValueError("to_shamir: the TTP holds no additive share")
    nonce = engine._next_nonce()
    p = engine.prime
    inv3 = pow(3, -1, p)
    if party == 1:
        a = engine._prf_field(3, nonce, b"cnv", length)
        message = [(s + 2 * r) % p for s, r in zip(additive, a)]  # type: ignore[arg-type]
        received = yield from engine._exchange({2: message}, {2: length}, "convert")
        return [(2 * s + r + m) * inv3 % p for s, r, m in zip(additive, a, received[2])]  # type: ignore[arg-type]
    if party == 2:
        b = engine._prf_field(3, nonce, b"cnv", length)
        message = [(2 * s + r) % p for s, r in zip(additive, b)]  # type: ignore[arg-type]
        received = yield from engine._exchange({1: message}, {1: length}, "convert")
        return [(m + s + 2 * r) * inv3 % p for s, r, m in zip(additive, b, received[1])]  # type: ignore[arg-type]
    a = engine._prf_field(1, nonce, b"cnv", length)
    b = engine._prf_field(2, nonce, b"cnv", length)
    yield from engine._exchange({}, {}, "convert")
    return [(x + y) % p for x, y in zip(a, b)]
