"""Fixed-point encoding, statistical masks and every bit budget of the protocol.

This module is the single owner of the numbers that must agree across steps:

* attribute values are reals ``x`` with a declared bound ``|x| < 2**int_bits``;
  they are encoded as integers ``round(x * 2**frac_bits)`` (signed);
* an encoded value ``v`` therefore satisfies ``|v| < 2**(value_bits - 1)``; adding
  ``offset = 2**(value_bits - 1)`` makes it non-negative and below ``2**value_bits``;
* step 5 masks are uniform in ``[0, 2**mask_bits)`` with
  ``mask_bits = value_bits + sigma``: the masked value ``v + offset + 2**mask_bits - r``
  is within statistical distance ``2**-sigma`` of uniform, whatever ``v`` is, and stays
  in ``[1, 2**slot_bits)`` with ``slot_bits = mask_bits + 1``; so a Paillier plaintext
  packs ``slots`` of those side by side with no carry or borrow between them;
* step 7 reduces the integer additive shares modulo a fixed prime; step 8 needs that
  prime to hold every intermediate value, the largest being the Gram sums
  ``sum_i x_i * x_j`` over ``max_rows`` rows, plus ``sigma + 3`` bits of headroom for
  probabilistic truncation and comparison (Catrina and de Hoogh, SCN 2010).

The defaults (``frac_bits = 24``, ``sigma = 40``, ``p = 2**192 - 237``) follow
``research/lasso-and-crypto.md`` section 7.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["PRIME_192", "Params", "OutOfBoundError"]

#: 2**192 - 237: prime and congruent to 3 mod 4 (square roots are one exponentiation).
PRIME_192 = 2**192 - 237


class OutOfBoundError(ValueError):
    """A value does not fit the declared fixed-point bound. Names the value's label."""


@dataclass(frozen=True, slots=True)
class Params:
    """Numeric parameters shared by every party of one run (they must agree).

    Attributes:
        frac_bits: fractional bits ``f`` of the fixed-point encoding.
        int_bits: every attribute value satisfies ``|x| < 2**int_bits``.
        sigma: statistical security parameter for masks (bits).
        max_rows: an upper bound on the intersection size ``m`` used by step 8.
        prime: the Shamir field modulus of steps 7 and 8.
    """

    frac_bits: int = 24
    int_bits: int = 20
    sigma: int = 40
    max_rows: int = 2**21
    prime: int = PRIME_192

    def __post_init__(self) -> None:
        for name in ("frac_bits", "int_bits", "sigma", "max_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"parameter {name} must be a positive integer, got {value!r}")
        if self.field_bits < self.required_field_bits:
            raise ConfigError(
                f"the Shamir prime has {self.field_bits} usable bits but step 8 needs "
                f"{self.required_field_bits} (frac_bits={self.frac_bits}, "
                f"int_bits={self.int_bits}, sigma={self.sigma}, max_rows={self.max_rows})"
            )

    # ---- encoded values and masks (steps 3 to 6) ---------------------------------
    @property
    def value_bits(self) -> int:
        """``k``: an encoded value satisfies ``|v| < 2**(k - 1)``."""
        return self.int_bits + self.frac_bits + 1

    @property
    def offset(self) -> int:
        """Added to an encoded value to make it non-negative, below ``2**value_bits``."""
        return 1 << (self.value_bits - 1)

    @property
    def mask_bits(self) -> int:
        """Masks are uniform in ``[0, 2**mask_bits)``."""
        return self.value_bits + self.sigma

    @property
    def slot_bits(self) -> int:
        """Width of one packed slot: a masked value plus one carry-guard bit."""
        return self.mask_bits + 1

    def slots(self, modulus_bits: int) -> int:
        """How many slots fit a Paillier plaintext of a ``modulus_bits``-bit modulus.

        The packed integer stays below ``2**(modulus_bits - 2) <= n / 2``, so the centred
        decryption returns it unchanged (non-negative).
        """
        count = (modulus_bits - 2) // self.slot_bits
        if count < 1:
            raise ConfigError(
                f"a {modulus_bits}-bit Paillier modulus cannot hold one {self.slot_bits}-bit slot"
            )
        return count

    # ---- step 8 ------------------------------------------------------------------
    @property
    def gram_bits(self) -> int:
        """Magnitude bits of the largest step-8 intermediate: a Gram sum over ``max_rows``."""
        return 2 * (self.value_bits - 1) + math.ceil(math.log2(self.max_rows))

    @property
    def required_field_bits(self) -> int:
        """Bits the prime must exceed: Gram sums plus truncation/comparison headroom."""
        return self.gram_bits + self.sigma + 3

    @property
    def field_bits(self) -> int:
        """``floor(log2 p)``: the prime exceeds ``2**field_bits``."""
        return self.prime.bit_length() - 1

    # ---- encoding ----------------------------------------------------------------
    @property
    def bound(self) -> float:
        """The declared real bound: every value satisfies ``|x| < bound``."""
        return float(2**self.int_bits)

    def encode(self, values: Iterable[float], *, label: str = "value") -> list[int]:
        """Encode reals as signed integers ``round(x * 2**frac_bits)``.

        Raises:
            OutOfBoundError: a value is not finite or ``|x| >= 2**int_bits``; the
                message names ``label`` and the position (never the value itself,
                which may be a secret).
        """
        scale = 1 << self.frac_bits
        limit = self.offset
        out = []
        for index, x in enumerate(values):
            if not math.isfinite(x) or abs(x) >= self.bound:
                raise OutOfBoundError(
                    f"{label} at position {index} is outside the fixed-point bound "
                    f"|x| < 2**{self.int_bits}"
                )
            v = round(x * scale)
            if abs(v) >= limit:  # only reachable by rounding at the very edge
                raise OutOfBoundError(f"{label} at position {index} rounds past the bound")
            out.append(int(v))
        return out

    def decode(self, values: Iterable[int]) -> list[float]:
        """Inverse of :meth:`encode` (up to the ``2**-frac_bits`` rounding)."""
        scale = float(1 << self.frac_bits)
        return [int(v) / scale for v in values]

    def masks(self, count: int) -> list[int]:
        """``count`` statistical masks, uniform in ``[0, 2**mask_bits)``, from a CSPRNG."""
        bits = self.mask_bits
        return [secrets.randbits(bits) for _ in range(count)]

    def centred(self, value: int) -> int:
        """Map a field element to the centred range ``(-p/2, p/2]``."""
        value %= self.prime
        return value - self.prime if value > self.prime // 2 else value

    def check_encoded(self, values: Sequence[int], *, label: str = "value") -> None:
        """Raise :class:`OutOfBoundError` unless every encoded ``|v| < offset``."""
        limit = self.offset
        for index, v in enumerate(values):
            if not -limit < v < limit:
                raise OutOfBoundError(f"{label} at position {index} is outside the encoded bound")
