"""Frozen message types: the body of every envelope ``kind``, validated on arrival.

Each class turns into a msgpack body with :meth:`body` and is rebuilt from a peer's
body with :func:`parse`, which checks every field's type and size and raises
:class:`PeerProtocolError` naming the field. Don't subclass these.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ..codec import BigIntArray, Envelope
from ..errors import PeerProtocolError

__all__ = [
    "Abort",
    "Done",
    "HashContribution",
    "Intersection",
    "Masked",
    "MaskedEnd",
    "Masks",
    "MasksEnd",
    "Mpc",
    "PublicKey",
    "Rows",
    "RowsEnd",
    "parse",
]

HASH_BYTES = 32
_MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Message:
    kind: ClassVar[str] = ""

    def body(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class HashContribution(Message):
    """Step 2: a 256-bit random contribution to the joint HMAC key (H <-> I only)."""

    kind: ClassVar[str] = "hash_contribution"
    value: bytes


@dataclass(frozen=True, slots=True)
class PublicKey(Message):
    """Steps 3 and 4: a Paillier public key (``paillier.PublicKey.to_wire()``) and column count."""

    kind: ClassVar[str] = "public_key"
    key: dict[str, int]
    columns: int


@dataclass(frozen=True, slots=True)
class Rows(Message):
    """Step 4: a chunk of (hashed id, packed ciphertexts) rows, sent to the TTP."""

    kind: ClassVar[str] = "rows"
    hashes: bytes  # concatenated 32-byte digests
    ciphertexts: BigIntArray  # ciphertexts_per_row per row, row-major


@dataclass(frozen=True, slots=True)
class RowsEnd(Message):
    kind: ClassVar[str] = "rows_end"
    rows: int


@dataclass(frozen=True, slots=True)
class Intersection(Message):
    """Step 4: the intersection size ``m``, the only thing the TTP tells the parties."""

    kind: ClassVar[str] = "intersection"
    size: int


@dataclass(frozen=True, slots=True)
class Masks(Message):
    """Step 5: a chunk of packed masks encrypted under the *other* party's key."""

    kind: ClassVar[str] = "masks"
    ciphertexts: BigIntArray


@dataclass(frozen=True, slots=True)
class MasksEnd(Message):
    kind: ClassVar[str] = "masks_end"
    rows: int


@dataclass(frozen=True, slots=True)
class Masked(Message):
    """Step 6: a chunk of re-randomised ``Enc(x - r)`` rows in the TTP's order."""

    kind: ClassVar[str] = "masked"
    ciphertexts: BigIntArray


@dataclass(frozen=True, slots=True)
class MaskedEnd(Message):
    kind: ClassVar[str] = "masked_end"
    rows: int


@dataclass(frozen=True, slots=True)
class Mpc(Message):
    """Steps 7 and 8: one MPC round's vector of field elements for one peer."""

    kind: ClassVar[str] = "mpc"
    round: int
    label: str
    values: BigIntArray


@dataclass(frozen=True, slots=True)
class Done(Message):
    """Step 9: a SHA-256 digest of the sender's outcome (session, intersection, model).

    Every peer already knows what it digests (the model was opened to all at step 8),
    so it reveals nothing new; a mismatch means the parties computed different results.
    """

    kind: ClassVar[str] = "done"
    digest: bytes


@dataclass(frozen=True, slots=True)
class Abort(Message):
    """Any step: the sender stopped; ``reason`` is a readable, secret-free message."""

    kind: ClassVar[str] = "abort"
    reason: str


_TYPES: dict[str, type[Message]] = {
    cls.kind: cls
    for cls in (
        HashContribution, PublicKey, Rows, RowsEnd, Intersection, Masks, MasksEnd, Masked, MaskedEnd, Mpc, Done, Abort
    )
}


def _check(kind: str, name: str, ok: bool, what: str) -> None:
    if not ok:
        raise PeerProtocolError(f"{kind!r} message: field {name!r} must be {what}")


def parse(envelope: Envelope) -> Message:
    """Rebuild the typed message of a (scheduler-approved) envelope."""
    cls = _TYPES.get(envelope.kind)
    if cls is None:
        raise PeerProtocolError(f"unknown message kind {envelope.kind!r}")
    body = envelope.body
    names = [f.name for f in fields(cls)]
    if set(body) != set(names):
        raise PeerProtocolError(f"{cls.kind!r} message has fields {sorted(body)}, expected {sorted(names)}")
    kind = cls.kind
    if cls is HashContribution:
        _check(kind, "value", isinstance(body["value"], bytes) and len(body["value"]) == 32, "32 bytes")
    elif cls is PublicKey:
        key = body["key"]
        _check(kind, "key", isinstance(key, dict) and all(type(v) is int for v in key.values()), "a map of integers")
        _check(kind, "columns", type(body["columns"]) is int and 1 <= body["columns"] <= 10_000, "a column count")
    elif cls is Rows:
        _check(
            kind,
            "hashes",
            isinstance(body["hashes"], bytes) and len(body["hashes"]) % HASH_BYTES == 0,
            "a multiple of 32 bytes",
        )
        _check(kind, "ciphertexts", isinstance(body["ciphertexts"], BigIntArray), "a big-integer array")
    elif cls in (Masks, Masked):
        _check(kind, "ciphertexts", isinstance(body["ciphertexts"], BigIntArray), "a big-integer array")
    elif cls in (RowsEnd, MasksEnd, MaskedEnd):
        _check(kind, "rows", type(body["rows"]) is int and body["rows"] >= 0, "a row count")
    elif cls is Intersection:
        _check(kind, "size", type(body["size"]) is int and body["size"] >= 0, "a row count")
    elif cls is Mpc:
        _check(kind, "round", type(body["round"]) is int and body["round"] >= 0, "a round number")
        _check(kind, "label", isinstance(body["label"], str) and len(body["label"]) <= 64, "a short label")
        _check(kind, "values", isinstance(body["values"], BigIntArray), "a big-integer array")
    elif cls is Done:
        _check(kind, "digest", isinstance(body["digest"], bytes) and len(body["digest"]) == HASH_BYTES, "32 bytes")
    elif cls is Abort:
        _check(kind, "reason", isinstance(body["reason"], str) and len(body["reason"]) <= _MAX_REASON, "a short text")
    return cls(**body)
