"""The wire codec: msgpack envelopes with a closed extension registry.

Every message between parties, in simulation as in deployment, is one envelope::

    [version, session_id, step, sender, seq, kind, body]

encoded with msgpack. ``body`` is a map with ``str`` keys whose values are msgpack
natives or one of three extension types, and nothing else:

====  ===============  ========================================================
code  name             payload
====  ===============  ========================================================
1     BIGINT           sign byte (0 or 1) + big-endian magnitude, for ints that
                       do not fit msgpack's 64-bit integers
2     BIGINT_ARRAY     ``>BI`` header (signed flag, byte width) + ``count * width``
                       bytes, two's complement when signed: ciphertexts, shares
3     NDARRAY          dtype length + dtype + ndim + ``ndim`` big-endian u64 dims
                       + C-order data; dtypes ``<i8 <u8 <f8 |u1 |b1`` only
====  ===============  ========================================================

Anything else (an unknown ext code, an object dtype, a shape that does not match the
data, a non-``str`` map key, trailing or truncated bytes, a message over the size
limit) is a :class:`~mpcactors.errors.CodecError`. No pickle is involved anywhere:
decoding never constructs anything but ints, floats, strings, bytes, lists, dicts,
:class:`BigIntArray` and read-only numpy arrays.
"""

from __future__ import annotations

import struct
from itertools import repeat
from typing import Any

import gmpy2
import msgpack
import numpy as np

from .errors import CodecError
from .protocol.roster import is_party_name
from .protocol.steps import Step
from .protocol.wire import MAX_BIGINT_WIDTH, MIN_BIGINT_WIDTH, PROTOCOL_VERSION, BigIntArray, Envelope

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "MIN_BIGINT_WIDTH",
    "BigIntArray",
    "Envelope",
    "decode",
    "decode_envelope",
    "encode",
    "encode_envelope",
]

#: Default hard cap on one encoded message (also the TLS frame cap).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

EXT_BIGINT = 1
EXT_BIGINT_ARRAY = 2
EXT_NDARRAY = 3

_ALLOWED_DTYPES = frozenset({"<i8", "<u8", "<f8", "|u1", "|b1"})
_MAX_NDIM = 4
_MAX_BIGINT_BYTES = 4096  # 32768-bit integers: far above any modulus we use
#: Decoding may allocate about this many bytes per wire byte, at most (see ``decode``).
_CONTAINER_BUDGET_DIVISOR = 16
_ARRAY_HEADER = struct.Struct(">BI")
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_MPZ = type(gmpy2.mpz(0))


def _bigint_array_bytes(array: BigIntArray) -> bytes:
    width, signed = array.width, array.signed
    if not MIN_BIGINT_WIDTH <= width <= MAX_BIGINT_WIDTH:
        raise ValueError(f"BigIntArray width must be {MIN_BIGINT_WIDTH} to {MAX_BIGINT_WIDTH} bytes, got {width}")
    try:
        body = b"".join(v.to_bytes(width, "big", signed=signed) for v in array.values)
    except OverflowError:
        raise ValueError(f"a BigIntArray element does not fit {width} bytes") from None
    return _ARRAY_HEADER.pack(int(signed), width) + body


def _bigint_array_from(data: bytes) -> BigIntArray:
    if len(data) < _ARRAY_HEADER.size:
        raise CodecError("truncated BIGINT_ARRAY header")
    signed, width = _ARRAY_HEADER.unpack_from(data)
    if signed not in (0, 1) or not MIN_BIGINT_WIDTH <= width <= MAX_BIGINT_WIDTH:
        raise CodecError(f"BIGINT_ARRAY with invalid header (signed={signed}, width={width})")
    body = bytes(data[_ARRAY_HEADER.size :])
    if len(body) % width:
        raise CodecError(f"BIGINT_ARRAY of {len(body)} bytes is not a multiple of width {width}")
    pieces = (body[i : i + width] for i in range(0, len(body), width))
    if signed:
        values = tuple(int.from_bytes(piece, "big", signed=True) for piece in pieces)
    else:  # the hot path (ciphertexts, field elements): map is about a third faster
        values = tuple(map(int.from_bytes, pieces, repeat("big")))
    return BigIntArray(values, width, bool(signed))


# ---- encoding ---------------------------------------------------------------------


def _default(obj: Any) -> Any:
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int):  # only reached for ints outside msgpack's 64-bit range
        if abs(obj).bit_length() > 8 * _MAX_BIGINT_BYTES:
            raise ValueError("integer too large for the codec")
        magnitude = abs(obj)
        return msgpack.ExtType(
            EXT_BIGINT, bytes([obj < 0]) + magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big")
        )
    if isinstance(obj, _MPZ):
        value = int(obj)
        return value if _INT64_MIN <= value <= _UINT64_MAX else _default(value)
    if isinstance(obj, BigIntArray):
        return msgpack.ExtType(EXT_BIGINT_ARRAY, _bigint_array_bytes(obj))
    if isinstance(obj, np.ndarray):
        return msgpack.ExtType(EXT_NDARRAY, _ndarray_bytes(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"the codec cannot encode a {type(obj).__name__}")


def _ndarray_bytes(array: np.ndarray) -> bytes:
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    name = dtype.str
    if name not in _ALLOWED_DTYPES:
        raise TypeError(f"the codec does not send arrays of dtype {array.dtype}")
    if array.ndim > _MAX_NDIM:
        raise TypeError(f"the codec does not send arrays with more than {_MAX_NDIM} dimensions")
    data = np.ascontiguousarray(array, dtype=dtype).tobytes()
    header = bytes([len(name)]) + name.encode() + bytes([array.ndim])
    return header + b"".join(struct.pack(">Q", n) for n in array.shape) + data


def encode(obj: Any) -> bytes:
    """Encode a value (msgpack natives plus the registry types) to bytes."""
    return msgpack.packb(obj, default=_default, use_bin_type=True, strict_types=False)


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode an envelope as the fixed 7-element msgpack array."""
    return encode(
        [
            envelope.version,
            envelope.session,
            envelope.step,
            envelope.sender,
            envelope.seq,
            envelope.kind,
            envelope.body,
        ]
    )


# ---- decoding ---------------------------------------------------------------------


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_BIGINT:
        if not 2 <= len(data) <= _MAX_BIGINT_BYTES + 1 or data[0] not in (0, 1):
            raise CodecError("malformed BIGINT")
        magnitude = int.from_bytes(data[1:], "big")
        return -magnitude if data[0] else magnitude
    if code == EXT_BIGINT_ARRAY:
        return _bigint_array_from(data)
    if code == EXT_NDARRAY:
        return _ndarray_from(data)
    raise CodecError(f"unknown msgpack extension code {code}")


def _ndarray_from(data: bytes) -> np.ndarray:
    try:
        name_len = data[0]
        name = data[1 : 1 + name_len].decode("ascii")
        pos = 1 + name_len
        ndim = data[pos]
        pos += 1
    except (IndexError, UnicodeDecodeError):
        raise CodecError("truncated NDARRAY header") from None
    if name not in _ALLOWED_DTYPES:
        raise CodecError(f"NDARRAY dtype {name!r} is not allowed")
    if ndim > _MAX_NDIM:
        raise CodecError(f"NDARRAY with {ndim} dimensions (at most {_MAX_NDIM})")
    if len(data) < pos + 8 * ndim:
        raise CodecError("truncated NDARRAY shape")
    shape = struct.unpack_from(f">{ndim}Q", data, pos)
    pos += 8 * ndim
    dtype = np.dtype(name)
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(data) - pos:
        raise CodecError(f"NDARRAY shape {shape} does not match {len(data) - pos} data bytes")
    array = np.frombuffer(data, dtype=dtype, offset=pos).reshape(shape).copy()
    if dtype.str == "|b1" and array.view(np.uint8).max(initial=0) > 1:
        raise CodecError("NDARRAY of booleans holds a byte other than 0 or 1")
    array.setflags(write=False)
    return array


def _pairs(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if not isinstance(key, str):
            raise CodecError(f"map key of type {type(key).__name__} (only str keys are allowed)")
        if key in out:
            raise CodecError(f"duplicate map key {key!r}")
        out[key] = value
    return out


class _Budget:
    """Counts msgpack container elements while decoding, so memory stays proportional to size.

    A one-byte msgpack item can become an 8-byte list slot plus an object of 28 bytes
    or more. Bulk data travels in BIGINT_ARRAY, NDARRAY and bytes, never in msgpack
    containers, so legitimate messages use few elements; capping them at one per
    16 wire bytes keeps decoding within a small multiple of the message size.
    """

    __slots__ = ("left",)

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise CodecError("message holds more msgpack items than its size allows")

    def pairs(self, pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
        self.take(len(pairs))
        return _pairs(pairs)

    def items(self, items: list[Any]) -> list[Any]:
        self.take(len(items))
        return items


def decode(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Decode bytes produced by :func:`encode`.

    Memory: decoding allocates at most a small multiple of ``len(data)`` (container
    elements are budgeted, BIGINT_ARRAY elements are at least 16 bytes wide), so the
    message cap bounds what a hostile peer can make us allocate.

    Raises:
        CodecError: for anything that is not exactly one valid value within the limits.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    limit = 64 + len(data) // _CONTAINER_BUDGET_DIVISOR
    budget = _Budget(limit)
    try:
        return msgpack.unpackb(
            data,
            ext_hook=_ext_hook,
            object_pairs_hook=budget.pairs,
            list_hook=budget.items,
            strict_map_key=False,  # _pairs enforces str keys with a clearer error
            raw=False,
            use_list=True,
            max_array_len=limit,  # checked against the header, before the list is allocated
            max_map_len=limit,
        )
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises many types; all mean "malformed"
        raise CodecError(f"malformed message ({type(exc).__name__})") from None


def decode_envelope(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Envelope:
    """Decode and structurally validate one envelope (the scheduler checks the rest)."""
    item = decode(data, max_bytes=max_bytes)
    if not isinstance(item, list) or len(item) != 7:
        raise CodecError("an envelope must be a 7-element array")
    version, session, step, sender, seq, kind, body = item
    if version != PROTOCOL_VERSION or type(version) is not int:
        raise CodecError(f"unsupported protocol version {version!r} (this is {PROTOCOL_VERSION})")
    if not isinstance(session, bytes) or len(session) != 16:
        raise CodecError("the session id must be 16 bytes")
    if type(step) is not int or not 0 <= step < Step.DONE:
        raise CodecError(f"invalid step {step!r}")
    if not isinstance(sender, str) or not is_party_name(sender):
        raise CodecError(f"invalid sender {sender!r}")
    if type(seq) is not int or seq < 0:
        raise CodecError(f"invalid sequence number {seq!r}")
    if not isinstance(kind, str) or not 0 < len(kind) <= 64:
        raise CodecError("invalid message kind")
    if not isinstance(body, dict):
        raise CodecError("the message body must be a map")
    return Envelope(session, step, sender, seq, kind, body, version)
