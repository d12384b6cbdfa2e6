"""The wire codec: round trips at boundary values, and every malformed input is a CodecError."""

from __future__ import annotations

import struct

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpcactors import codec
from mpcactors.codec import BigIntArray, Envelope
from mpcactors.errors import CodecError, PeerProtocolError

N_3072 = (1 << 3071) + 12345  # an n - 1 sized value for 3072-bit moduli
BOUNDARY_INTS = [0, 1, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, -(2**64), N_3072 - 1, N_3072**2 - 1]

big_ints = st.one_of(st.sampled_from(BOUNDARY_INTS), st.integers(min_value=-(2**6000), max_value=2**6000))
scalars = st.one_of(st.none(), st.booleans(), big_ints, st.floats(allow_nan=False), st.text(max_size=20), st.binary(max_size=40))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def roundtrip(value):
    return codec.decode(codec.encode(value))


@given(values)
def test_msgpack_values_round_trip(value):
    assert roundtrip(value) == value


@given(st.lists(st.integers(min_value=0, max_value=2**3072 - 1), max_size=20))
def test_bigint_array_round_trip_unsigned(items):
    array = BigIntArray.of(items, width=384)
    decoded = roundtrip({"c": array})["c"]
    assert isinstance(decoded, BigIntArray)
    assert list(decoded) == items and decoded.width == 384


@given(st.lists(big_ints.filter(lambda v: abs(v) < 2**190), max_size=20))
def test_bigint_array_round_trip_signed(items):
    decoded = roundtrip(BigIntArray.of(items, width=24, signed=True))
    assert list(decoded) == items


def test_bigint_array_of_empty_and_too_wide():
    assert list(roundtrip(BigIntArray.of([], width=16))) == []
    with pytest.raises(ValueError, match="does not fit"):
        codec.encode(BigIntArray((2**128,), 16))


@given(
    st.sampled_from(["<i8", "<u8", "<f8", "|u1", "|b1"]),
    st.lists(st.integers(min_value=0, max_value=5), min_size=0, max_size=3),
)
def test_ndarray_round_trip(dtype, shape):
    rng = np.random.default_rng(0)
    array = (rng.integers(0, 2, size=shape) if dtype == "|b1" else rng.integers(0, 200, size=shape)).astype(dtype)
    decoded = roundtrip(array)
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    assert np.array_equal(decoded, array)
    assert not decoded.flags.writeable  # a read-only copy, never a view the sender controls


def test_ndarray_boundary_values():
    for array in (np.array([2**63 - 1, -(2**63)], dtype="<i8"), np.array([2**64 - 1, 0], dtype="<u8")):
        assert np.array_equal(roundtrip(array), array)


def test_numpy_scalars_and_mpz_become_ints():
    import gmpy2

    assert roundtrip({"a": np.int64(5), "b": np.float64(0.5), "c": gmpy2.mpz(2**100), "d": gmpy2.mpz(3)}) == {
        "a": 5, "b": 0.5, "c": 2**100, "d": 3,
    }


def test_unsupported_types_are_refused_on_encode():
    with pytest.raises(TypeError):
        codec.encode({"x": object()})
    with pytest.raises(TypeError, match="dtype"):
        codec.encode(np.array(["a"], dtype=object))


def envelope(**changes):
    fields = dict(session=b"s" * 16, step=4, sender="hospital", seq=3, kind="rows", body={"x": 1})
    fields.update(changes)
    return Envelope(**fields)


def test_envelope_round_trip():
    env = envelope(body={"c": BigIntArray.of([1, 2**3000]), "n": 2**2000})
    assert codec.decode_envelope(codec.encode_envelope(env)) == env


def ext(code, data):
    return msgpack.packb(msgpack.ExtType(code, data))


MALFORMED = {
    "unknown ext code": ext(42, b"abc"),
    "object dtype": ext(3, bytes([3]) + b"|O8" + bytes([1]) + struct.pack(">Q", 1) + b"\0" * 8),
    "void dtype": ext(3, bytes([3]) + b"|V8" + bytes([1]) + struct.pack(">Q", 1) + b"\0" * 8),
    "shape/length mismatch": ext(3, bytes([3]) + b"<i8" + bytes([1]) + struct.pack(">Q", 3) + b"\0" * 8),
    "too many dimensions": ext(3, bytes([3]) + b"<i8" + bytes([9]) + struct.pack(">9Q", *[1] * 9) + b"\0" * 8),
    "truncated ndarray header": ext(3, b"\x05<i"),
    "non-boolean bytes in bool array": ext(3, bytes([3]) + b"|b1" + bytes([1]) + struct.pack(">Q", 1) + b"\x07"),
    "bigint array length mismatch": ext(2, struct.pack(">BI", 0, 16) + b"\0" * 20),
    "bigint array too narrow": ext(2, struct.pack(">BI", 0, 1) + b"\x07" * 64),
    "bigint array bad width": ext(2, struct.pack(">BI", 0, 0)),
    "bigint array bad sign flag": ext(2, struct.pack(">BI", 7, 16)),
    "too many msgpack items for the size": msgpack.packb([[]] * 5000),
    "malformed bigint": ext(1, b"\x05\x01"),
    "non-str map key (int)": msgpack.packb({1: 2}),
    "non-str map key (bytes)": msgpack.packb({b"k": 2}),
    "truncated bytes": codec.encode({"a": "hello world"})[:-3],
    "trailing bytes": codec.encode({"a": 1}) + b"\x01",
    "reserved byte": b"\xc1",
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_input_is_a_codec_error(name):
    with pytest.raises(CodecError):
        codec.decode(MALFORMED[name])


def test_oversized_payload_is_refused_before_decoding():
    data = codec.encode({"blob": b"x" * 2000})
    with pytest.raises(CodecError, match="exceeds the limit"):
        codec.decode(data, max_bytes=1000)


def test_codec_error_is_a_peer_fault():
    assert issubclass(CodecError, PeerProtocolError)


@pytest.mark.parametrize(
    "item",
    [
        [1, b"s" * 16, 4, "hospital", 0, "rows"],  # 6 elements
        [2, b"s" * 16, 4, "hospital", 0, "rows", {}],  # version
        [1, b"short", 4, "hospital", 0, "rows", {}],  # session id length
        [1, b"s" * 16, 42, "hospital", 0, "rows", {}],  # step
        [1, b"s" * 16, 4, "Mallory <m@x>", 0, "rows", {}],  # sender: not a party name
        [1, b"s" * 16, 4, 7, 0, "rows", {}],  # sender: not a string
        [1, b"s" * 16, 4, "hospital", -1, "rows", {}],  # seq
        [1, b"s" * 16, 4, "hospital", 0, "", {}],  # kind
        [1, b"s" * 16, 4, "hospital", 0, "rows", [1]],  # body not a map
        {"not": "an array"},
    ],
)
def test_invalid_envelopes(item):
    with pytest.raises(CodecError):
        codec.decode_envelope(codec.encode(item))


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_codec_error(data):
    try:
        codec.decode_envelope(data)
    except CodecError:
        pass


@settings(max_examples=300)
@given(st.data())
def test_mutated_envelopes_never_raise_anything_but_codec_error(data):
    good = bytearray(codec.encode_envelope(envelope(body={"c": BigIntArray.of([5, 2**100]), "a": np.arange(3)})))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(good) - 1))
        good[position] = data.draw(st.integers(0, 255))
    try:
        codec.decode_envelope(bytes(good))
    except CodecError:
        pass
