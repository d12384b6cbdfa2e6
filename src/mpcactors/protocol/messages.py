"""Frozen message types: the body of every envelope ``kind``, each validating itself.

Like h11's events, every class checks its own fields when it is built, whether by us
or by :func:`parse` from a peer's body, and raises :class:`PeerProtocolError` naming
the kind and the field. :meth:`Message.body` is what travels. Don't subclass these.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ..errors import PeerProtocolError
from .wire import BigIntArray, Envelope

__all__ = [
    "HASH_BYTES",
    "MAX_REASON",
    "Abort",
    "Done",
    "HashContribution",
    "Intersection",
    "Masked",
    "MaskedEnd",
    "Masks",
    "MasksEnd",
    "Dealt",
    "DealtEnd",
    "Delivered",
    "Message",
    "Mpc",
    "PublicKey",
    "Rows",
    "RowsEnd",
    "parse",
]

HASH_BYTES = 32
MAX_REASON = 500
#: the most reveals one party may be delivered in step 8 (a lasso checks convergence at most 200 times)
MAX_DELIVERED = 10_000


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


@dataclass(frozen=True, slots=True)
class Message:
    kind: ClassVar[str] = ""

    def body(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def _check(self, name: str, ok: bool, what: str) -> None:
        if not ok:
            raise PeerProtocolError(f"{self.kind!r} message: field {name!r} must be {what}")


@dataclass(frozen=True, slots=True)
class HashContribution(Message):
    """Step 2: a 256-bit random contribution to the joint HMAC key (data parties only)."""

    kind: ClassVar[str] = "hash_contribution"
    value: bytes

    def __post_init__(self) -> None:
        self._check("value", isinstance(self.value, bytes) and len(self.value) == 32, "32 bytes")


@dataclass(frozen=True, slots=True)
class PublicKey(Message):
    """Steps 3 and 4: a Paillier public key (``paillier.PublicKey.to_wire()``) and column count."""

    kind: ClassVar[str] = "public_key"
    key: dict[str, int]
    columns: int

    def __post_init__(self) -> None:
        key = self.key
        self._check("key", isinstance(key, dict) and all(type(v) is int for v in key.values()), "a map of integers")
        self._check("columns", type(self.columns) is int and 1 <= self.columns <= 10_000, "a column count")


@dataclass(frozen=True, slots=True)
class Rows(Message):
    """Step 4: a chunk of (hashed id, packed ciphertexts) rows, sent to the TTP."""

    kind: ClassVar[str] = "rows"
    hashes: bytes  # concatenated 32-byte digests
    ciphertexts: BigIntArray  # ciphertexts_per_row per row, row-major

    def __post_init__(self) -> None:
        self._check(
            "hashes", isinstance(self.hashes, bytes) and len(self.hashes) % HASH_BYTES == 0, "a multiple of 32 bytes"
        )
        self._check("ciphertexts", isinstance(self.ciphertexts, BigIntArray), "a big-integer array")

    @property
    def count(self) -> int:
        """The number of rows in this chunk."""
        return len(self.hashes) // HASH_BYTES

    def hash(self, i: int) -> bytes:
        return self.hashes[i * HASH_BYTES : (i + 1) * HASH_BYTES]


@dataclass(frozen=True, slots=True)
class _End(Message):
    """Closes a stream: the number of rows the stream carried."""

    rows: int

    def __post_init__(self) -> None:
        self._check("rows", _is_count(self.rows), "a row count")


@dataclass(frozen=True, slots=True)
class RowsEnd(_End):
    kind: ClassVar[str] = "rows_end"


@dataclass(frozen=True, slots=True)
class Intersection(Message):
    """Step 4: the intersection size ``m``, the only thing the TTP tells the parties."""

    kind: ClassVar[str] = "intersection"
    size: int

    def __post_init__(self) -> None:
        self._check("size", _is_count(self.size), "a row count")


@dataclass(frozen=True, slots=True)
class _Ciphertexts(Message):
    ciphertexts: BigIntArray

    def __post_init__(self) -> None:
        self._check("ciphertexts", isinstance(self.ciphertexts, BigIntArray), "a big-integer array")


@dataclass(frozen=True, slots=True)
class Masks(_Ciphertexts):
    """Step 5: a chunk of packed masks encrypted under the column owner's key."""

    kind: ClassVar[str] = "masks"


@dataclass(frozen=True, slots=True)
class MasksEnd(_End):
    kind: ClassVar[str] = "masks_end"


@dataclass(frozen=True, slots=True)
class Masked(_Ciphertexts):
    """Step 6: a chunk of re-randomised ``Enc(x - r)`` rows in the TTP's order."""

    kind: ClassVar[str] = "masked"


@dataclass(frozen=True, slots=True)
class MaskedEnd(_End):
    kind: ClassVar[str] = "masked_end"


@dataclass(frozen=True, slots=True)
class Mpc(Message):
    """Steps 7 and 8: one MPC round's vector of field elements for one peer."""

    kind: ClassVar[str] = "mpc"
    round: int
    label: str
    values: BigIntArray

    def __post_init__(self) -> None:
        self._check("round", _is_count(self.round), "a round number")
        self._check("label", isinstance(self.label, str) and len(self.label) <= 64, "a short label")
        self._check("values", isinstance(self.values, BigIntArray), "a big-integer array")


@dataclass(frozen=True, slots=True)
class Dealt(Message):
    """Step 7: a chunk of Shamir shares (field elements) that a data party outside the
    computation dealt of its additive share, for one compute party."""

    kind: ClassVar[str] = "dealt"
    values: BigIntArray

    def __post_init__(self) -> None:
        self._check("values", isinstance(self.values, BigIntArray), "a big-integer array")


@dataclass(frozen=True, slots=True)
class DealtEnd(_End):
    kind: ClassVar[str] = "dealt_end"


@dataclass(frozen=True, slots=True)
class Delivered(Message):
    """Step 8: what one compute party delivers to one data party outside the computation.

    One entry per reveal of every analysis the receiver is a recipient of, in order:
    the analysis, the reveal's label, and either the values (``clear``: every compute
    party received them, so all three send the same) or the sender's Shamir shares of
    them, which the receiver reconstructs from the three senders.
    """

    kind: ClassVar[str] = "delivered"
    analyses: list[str]
    labels: list[str]
    clear: list[bool]
    values: list[BigIntArray]

    def __post_init__(self) -> None:
        n = len(self.values) if isinstance(self.values, list | tuple) else -1
        self._check("values", 0 <= n <= MAX_DELIVERED and all(isinstance(v, BigIntArray) for v in self.values),
                    f"a list of at most {MAX_DELIVERED} big-integer arrays")
        for name in ("analyses", "labels"):
            value = getattr(self, name)
            self._check(name, isinstance(value, list | tuple) and len(value) == n
                        and all(isinstance(v, str) and 0 < len(v) <= 64 for v in value), "one short name per entry")
        self._check("clear", isinstance(self.clear, list | tuple) and len(self.clear) == n
                    and all(type(v) is bool for v in self.clear), "one boolean per entry")


@dataclass(frozen=True, slots=True)
class Done(Message):
    """Step 9: a SHA-256 digest of the outcome the sender shares with the receiver: the
    session, the intersection size, the plan, and the outputs both of them received.

    The receiver already knows everything it digests, so it reveals nothing new; a
    mismatch means the two parties computed different results.
    """

    kind: ClassVar[str] = "done"
    digest: bytes

    def __post_init__(self) -> None:
        self._check("digest", isinstance(self.digest, bytes) and len(self.digest) == HASH_BYTES, "32 bytes")


@dataclass(frozen=True, slots=True)
class Abort(Message):
    """Any step: the sender stopped; ``reason`` is a readable, secret-free message."""

    kind: ClassVar[str] = "abort"
    reason: str

    def __post_init__(self) -> None:
        self._check("reason", isinstance(self.reason, str) and len(self.reason) <= MAX_REASON, "a short text")

    @property
    def printable_reason(self) -> str:
        """The reason with every unprintable character replaced: a peer's words reach terminals and logs."""
        return "".join(c if c.isprintable() else "?" for c in self.reason)


_TYPES: dict[str, type[Message]] = {
    cls.kind: cls
    for cls in (
        HashContribution, PublicKey, Rows, RowsEnd, Intersection, Masks, MasksEnd, Masked, MaskedEnd, Mpc,
        Dealt, DealtEnd, Delivered, Done, Abort
    )
}


def parse(envelope: Envelope) -> Message:
    """Rebuild the typed message of a (scheduler-approved) envelope.

    Raises:
        PeerProtocolError: an unknown kind, missing or extra fields, or a field that
            fails the class's own checks.
    """
    cls = _TYPES.get(envelope.kind)
    if cls is None:
        raise PeerProtocolError(f"unknown message kind {envelope.kind!r}")
    body = envelope.body
    names = [f.name for f in fields(cls)]
    if set(body) != set(names):
        raise PeerProtocolError(f"{cls.kind!r} message has fields {sorted(body)}, expected {sorted(names)}")
    return cls(**body)
