"""The value types that travel: the envelope and the big-integer array.

They belong to the protocol, not to the wire codec: the scheduler and the message
types are built from them without importing msgpack, and :mod:`mpcactors.codec`
turns them into bytes and back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_BIGINT_WIDTH", "MIN_BIGINT_WIDTH", "PROTOCOL_VERSION", "BigIntArray", "Envelope"]

PROTOCOL_VERSION = 1
#: Narrower integers cost more memory decoded than on the wire (a Python int is >= 28
#: bytes), so a big-integer array is for wide integers only; small ones travel as NDARRAY.
MIN_BIGINT_WIDTH = 16
#: 32768-bit elements: far above any modulus we use.
MAX_BIGINT_WIDTH = 4096


@dataclass(frozen=True, slots=True)
class BigIntArray(Sequence[int]):
    """A vector of big integers that travels as one fixed-width byte string.

    Ciphertexts (values mod n^2) and field elements are sent this way: ``width`` bytes
    per element, so the encoded size is exactly ``len * width`` plus a 5-byte header,
    and decoding a million elements does not build a million msgpack objects.
    ``signed`` selects two's complement (additive shares can be negative).
    """

    values: tuple[int, ...]
    width: int
    signed: bool = False

    @classmethod
    def of(cls, values: Iterable[int], *, width: int | None = None, signed: bool = False) -> BigIntArray:
        """Build from ints (or ``gmpy2.mpz``); ``width`` defaults to the smallest that fits."""
        items = tuple(int(v) for v in values)
        if width is None:
            top = max((abs(v) for v in items), default=0)
            width = max(MIN_BIGINT_WIDTH, (top.bit_length() + (8 if signed else 7)) // 8)
        return cls(items, width, signed)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index):  # type: ignore[override]
        return self.values[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self.values)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One protocol message: ``[version, session, step, sender, seq, kind, body]`` on the wire.

    ``kind`` names a message type (:mod:`.messages`); the scheduler checks
    ``(step, sender, kind)`` against the step table.
    """

    session: bytes
    step: int
    sender: str
    seq: int
    kind: str
    body: dict[str, Any]
    version: int = PROTOCOL_VERSION
