"""Hostile bytes: random and mutated frames against the framing, the codec and a running party.

What a peer controls is the bytes on the wire. Whatever they are, the receiving side
may only (a) decode a legal envelope, (b) raise :class:`PeerProtocolError` (or its
subclass :class:`CodecError`), or (c) see the link end (:class:`TransportError`, e.g.
a truncated frame) -- and a party that gets such bytes mid-run stops cleanly: every
party stops, keys are destroyed, no result. Any other exception (``TypeError``,
``KeyError``, ``MemoryError`` ...) is a bug that a peer could trigger at will.

Memory: a length prefix is checked against the cap before any body byte is read, so a
4 GiB prefix costs a few bytes (checked with ``tracemalloc``). What a *decoded* frame
may cost is measured separately (``test_decoding_amplification_is_bounded``).
"""

from __future__ import annotations

import gc
import os
import struct
import tracemalloc

import msgpack
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpcactors.codec import MIN_BIGINT_WIDTH, MAX_MESSAGE_BYTES, BigIntArray, Envelope, decode_envelope, encode_envelope
from mpcactors.errors import CodecError, MpcactorsError, PeerProtocolError, TransportError
from mpcactors.protocol import messages as msg
from mpcactors.testing import (
    Fault, Faults, KeyWatcher, accept_or_refuse, example_messages, fast_config, run_with_faults, tables_for,
)
from mpcactors.transport.framing import FrameReceiver, FrameTooLarge, TruncatedFrame
from mpcactors.transport.tls import PeerCertificate, TLSChannel



SESSION = bytes(range(16))
CAP = 1 << 16  # a small cap keeps the examples fast; the check is the same code at any cap
HEADER = struct.Struct(">I")

# ---- a hostile peer's byte stream ---------------------------------------------------------


class HostileStream(trio.abc.Stream):
    """A peer that sends fixed bytes, in chunks of the given sizes (cycled), then EOF.

    It plays the TLS stream under :class:`TLSChannel`, so the fuzz reaches the exact
    receive path a deployed party runs after the handshake.
    """

    def __init__(self, data: bytes, chunks: list[int] | None = None) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.chunks = chunks or [len(data) or 1]
        self.calls = 0
        self.sent = bytearray()
        self.closed = False

    @property
    def transport_stream(self) -> HostileStream:
        return self

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        n = self.chunks[self.calls % len(self.chunks)]
        self.calls += 1
        if max_bytes is not None:
            n = min(n, max_bytes)
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += len(out)
        return out

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.sent += data

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


def channel_over(stream: HostileStream, *, cap: int = CAP) -> TLSChannel:
    """The ttp's deployed link to the hospital, reading from ``stream``."""
    receiver = FrameReceiver(stream, max_frame_bytes=cap, peer="hospital")
    return TLSChannel(
        "ttp", "hospital", stream, receiver, session=SESSION, purpose="run",
        peer_certificate=PeerCertificate(("hospital.mpcactors.test",), "00", "never", "TLSv1.3"),
        max_message_bytes=cap,
    )


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


async def drain(data: bytes, chunks: list[int] | None = None) -> tuple[list[Envelope], BaseException]:
    """Receive envelopes until the link fails; return them and the error that ended it.

    Raises (failing the test) on any outcome a hostile peer must not be able to cause.
    """
    channel = channel_over(HostileStream(data, chunks))
    envelopes: list[Envelope] = []
    with trio.fail_after(10):
        while True:
            try:
                envelopes.append(await channel.receive())
            except (PeerProtocolError, TransportError) as exc:
                return envelopes, exc
            except MpcactorsError as exc:  # a "refuse" control frame: the peer's stated reason
                assert "closed the link" in str(exc), exc
                return envelopes, exc


# ---- a corpus of valid envelopes (every message type), for mutation --------------------------


def _corpus() -> list[bytes]:
    out = []
    for seq, m in enumerate(example_messages()):
        out.append(encode_envelope(Envelope(SESSION, 4, "hospital", seq, m.kind, m.body())))
    out.append(encode_envelope(Envelope(SESSION, 4, "hospital", 0, "rows", {"big": 2**300, "neg": -(2**80)})))
    return out


CORPUS = _corpus()


def test_the_corpus_holds_every_message_type():
    """Mutation starts from every kind a peer can send; a new message type must join it."""
    assert {decode_envelope(frame).kind for frame in CORPUS} == set(msg._TYPES)


# A mutation is (operation, position, bytes); positions wrap around the current length.
mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate"]),
    st.integers(min_value=0, max_value=10_000),
    st.binary(min_size=1, max_size=8),
)


def mutate(data: bytes, mutations: list[tuple[str, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for op, position, blob in mutations:
        at = position % (len(buf) + 1)
        if op == "flip" and buf:
            buf[at % len(buf)] ^= blob[0] or 1
        elif op == "set" and buf:
            buf[at % len(buf)] = blob[0]
        elif op == "insert":
            buf[at:at] = blob
        elif op == "delete":
            del buf[at : at + len(blob)]
        elif op == "truncate":
            del buf[at:]
        elif op == "duplicate":
            buf[at:at] = buf[at : at + 4 * len(blob)]
    return bytes(buf)


# msgpack values a peer can send, including ext types with any code and payload
msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=40)
    | st.builds(msgpack.ExtType, st.integers(min_value=0, max_value=127), st.binary(max_size=40)),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=8) | st.integers(min_value=-(2**63), max_value=2**64 - 1), children, max_size=5),
    max_leaves=20,
)
envelope_fields = st.tuples(
    st.just(1) | msgpack_values,
    st.just(SESSION) | msgpack_values,
    st.integers(min_value=0, max_value=10) | msgpack_values,
    st.sampled_from(["hospital", "insurer", "ttp"]) | msgpack_values,
    st.integers(min_value=0, max_value=3) | msgpack_values,
    st.sampled_from(sorted(msg._TYPES)) | msgpack_values,
    st.dictionaries(st.sampled_from(["value", "key", "columns", "hashes", "ciphertexts", "rows", "size", "round",
                                     "label", "values", "reason"]), msgpack_values, max_size=4) | msgpack_values,
)

#: examples per Hypothesis test; raise them for a longer hunt, e.g.
#: MPCACTORS_FUZZ_EXAMPLES=20000 MPCACTORS_FUZZ_PARTY_EXAMPLES=500 pytest tests/robustness/test_fuzz.py
EXAMPLES = int(os.environ.get("MPCACTORS_FUZZ_EXAMPLES", "300"))
PARTY_EXAMPLES = int(os.environ.get("MPCACTORS_FUZZ_PARTY_EXAMPLES", "25"))  # each is a protocol run
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: structured inputs cost more to generate than bytes: two thirds as many
FUZZ_STRUCTURES = settings(max_examples=max(1, 2 * EXAMPLES // 3), deadline=None,
                           suppress_health_check=[HealthCheck.too_slow])


# ---- framing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("announced", [CAP + 1, 2**31, 2**32 - 1], ids=["cap+1", "2GiB", "4GiB"])
async def test_a_huge_length_prefix_is_refused_before_anything_is_read_or_allocated(announced):
    data = HEADER.pack(announced) + b"\x00" * 64
    stream = HostileStream(data)
    receiver = FrameReceiver(stream, max_frame_bytes=MAX_MESSAGE_BYTES if announced > MAX_MESSAGE_BYTES else CAP,
                             peer="hospital")
    gc.collect()
    tracemalloc.start()
    try:
        with trio.fail_after(5):
            with pytest.raises(FrameTooLarge, match=rf"hospital announced a frame of {announced} bytes, above the cap"):
                await receiver.receive_frame()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stream.pos == HEADER.size, "the body was read"
    assert peak < 64 * 1024, f"peak {peak} bytes for a refused {announced}-byte frame"


async def test_a_4gib_prefix_on_a_deployed_link_is_a_clean_protocol_error():
    """The same through the TLS channel: a readable refusal goes back, the link closes."""
    stream = HostileStream(HEADER.pack(2**32 - 1) + b"x" * 100)
    channel = channel_over(stream, cap=MAX_MESSAGE_BYTES)
    gc.collect()
    tracemalloc.start()
    try:
        with trio.fail_after(10):
            with pytest.raises(FrameTooLarge) as caught:
                await channel.receive()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.exit_code == 4
    assert peak < 1 << 20, f"peak {peak} bytes for a refused 4 GiB frame"  # vs 4 GiB announced
    assert stream.closed
    refusal = msgpack.unpackb(bytes(stream.sent[4:]))
    assert refusal["code"] == "frame" and "refuses a frame of 4294967295 bytes" in refusal["reason"]


async def test_a_frame_below_the_cap_allocates_at_most_the_announced_size():
    """A peer that announces the cap and then stalls costs us the cap, never more."""
    cap = 4 << 20
    stream = HostileStream(HEADER.pack(cap) + b"\x01" * 1000)  # ends long before the body does
    receiver = FrameReceiver(stream, max_frame_bytes=cap, peer="hospital")
    gc.collect()
    tracemalloc.start()
    try:
        with trio.fail_after(5):
            with pytest.raises(TruncatedFrame):
                await receiver.receive_frame()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cap <= peak < cap + 256 * 1024


@FUZZ
@given(data=st.binary(max_size=2048), chunks=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=5))
async def test_random_bytes_on_a_link_give_only_protocol_errors_or_a_closed_link(data, chunks):
    envelopes, error = await drain(data, chunks)
    for envelope in envelopes:
        accept_or_refuse(envelope, SESSION)  # behind the codec: accepted, or PeerProtocolError


@FUZZ
@given(bodies=st.lists(st.binary(max_size=600), min_size=1, max_size=4),
       cut=st.none() | st.integers(min_value=0, max_value=4000),
       chunks=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=5))
async def test_random_frames_and_truncated_frames_give_only_protocol_errors_or_a_closed_link(bodies, cut, chunks):
    data = b"".join(frame(b) for b in bodies)
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    envelopes, error = await drain(data, chunks)
    assert isinstance(error, PeerProtocolError | TransportError)
    if cut is not None and 0 < len(data) and error is not None and isinstance(error, TransportError):
        assert "closed" in str(error) or "middle of a frame" in str(error)
    for envelope in envelopes:
        accept_or_refuse(envelope, SESSION)  # behind the codec: accepted, or PeerProtocolError


# ---- codec -------------------------------------------------------------------------------------


@FUZZ
@given(seed=st.sampled_from(CORPUS), mutations=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_envelopes_decode_or_raise_codec_error(seed, mutations):
    data = mutate(seed, mutations)
    try:
        envelope = decode_envelope(data, max_bytes=CAP)
    except CodecError:
        return
    accept_or_refuse(envelope, SESSION)  # behind the codec: accepted, or PeerProtocolError


@FUZZ
@given(seed=st.sampled_from(CORPUS), mutations=st.lists(mutation, min_size=1, max_size=4),
       chunks=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=3))
async def test_mutated_envelopes_in_frames_give_only_protocol_errors(seed, mutations, chunks):
    data = frame(seed) + frame(mutate(seed, mutations)) + frame(seed)
    envelopes, error = await drain(data, chunks)
    for envelope in envelopes:
        accept_or_refuse(envelope, SESSION)  # behind the codec: accepted, or PeerProtocolError


@pytest.mark.slow
@FUZZ_STRUCTURES
@given(fields=envelope_fields)
def test_hostile_msgpack_structures_decode_or_raise_codec_error(fields):
    data = msgpack.packb(list(fields), use_bin_type=True)
    try:
        envelope = decode_envelope(data, max_bytes=CAP)
    except CodecError:
        return
    accept_or_refuse(envelope, SESSION)  # behind the codec: accepted, or PeerProtocolError


@pytest.mark.slow
@FUZZ_STRUCTURES
@given(fields=envelope_fields, depth=st.integers(min_value=0, max_value=3))
def test_hostile_structures_nested_or_wrapped_decode_or_raise_codec_error(fields, depth):
    value: object = list(fields)
    for _ in range(depth):
        value = [value]
    data = msgpack.packb(value, use_bin_type=True)
    try:
        envelope = decode_envelope(data, max_bytes=CAP)
    except CodecError:
        return
    accept_or_refuse(envelope, SESSION)  # behind the codec: accepted, or PeerProtocolError


def test_pathological_nesting_is_a_codec_error_not_a_crash():
    for data in (b"\x91" * 100_000, b"\x81\xa1a" * 50_000, b"\xdd\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff"):
        with pytest.raises(CodecError):
            decode_envelope(data)


# ---- memory amplification of decoding ---------------------------------------------------------

N = 1 << 18  # bytes of hostile payload per case


def _amplifiers() -> dict[str, bytes]:
    def env(body: dict) -> bytes:
        return encode_envelope(Envelope(SESSION, 4, "hospital", 0, "rows", body))

    return {
        "array of empty maps": env({"c": [{}] * N}),
        "array of empty arrays": env({"c": [[]] * N}),
        "array of small ints": env({"c": [300] * (N // 3)}),
        # our encoder refuses these widths, so a hostile peer would hand-craft the extension
        "BIGINT_ARRAY of width 1": env({"c": msgpack.ExtType(2, struct.pack(">BI", 0, 1) + b"\x07" * N)}),
        "BIGINT_ARRAY of width 2": env(
            {"c": msgpack.ExtType(2, struct.pack(">BI", 0, 2) + b"".join((1000 + i % 60000).to_bytes(2, "big") for i in range(N // 2)))}
        ),
    }


AMPLIFIERS = _amplifiers()


@pytest.mark.parametrize("name", sorted(AMPLIFIERS))
def test_decoding_amplification_is_bounded(name):
    """Decoding a frame may cost at most 4x its size: then the frame cap bounds memory."""
    data = AMPLIFIERS[name]
    gc.collect()
    tracemalloc.start()
    try:
        try:
            decode_envelope(data)
        except CodecError:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 4 * len(data) + (1 << 20), f"{name}: {len(data)} bytes decoded with a peak of {peak} bytes"


# ---- a running party ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tables():
    return tables_for(30, 0.6, seed=9)


#: (party, step, kind, peer) where a hostile peer's bytes reach the receiver mid-run
TARGETS = [
    ("hospital", 2, "hash_contribution", "insurer"),
    ("hospital", 3, "public_key", "insurer"),
    ("insurer", 4, "public_key", "ttp"),
    ("hospital", 4, "rows", "ttp"),
    ("ttp", 4, "intersection", "insurer"),
    ("insurer", 5, "masks", "ttp"),
    ("ttp", 6, "masked", "hospital"),
    ("insurer", 7, "mpc", "hospital"),
]


def hostile_payloads() -> dict[str, bytes]:
    valid = CORPUS[2]
    return {
        "random": bytes(range(7, 250, 3)),
        "empty": b"",
        "truncated envelope": valid[: len(valid) // 2],
        "not an envelope": msgpack.packb({"type": "hello"}),
        "unknown ext": msgpack.packb([1, SESSION, 4, "hospital", 0, "rows", {"c": msgpack.ExtType(99, b"x")}]),
        "bad ndarray shape": msgpack.packb(
            [1, SESSION, 4, "hospital", 0, "rows", {"c": msgpack.ExtType(3, b"\x03<i8\x01" + struct.pack(">Q", 2**40))}]
        ),
    }


PAYLOADS = hostile_payloads()


def _check_clean_stop(run, watcher: KeyWatcher, sender: str, receiver: str) -> None:
    """Everyone stopped with a readable error, the receiver's naming the sender; keys destroyed."""
    assert run.results == {}
    for role, error in run.errors.items():
        assert isinstance(error, MpcactorsError), f"{role}: {type(error).__name__}: {error}"
    assert isinstance(run.errors[receiver], PeerProtocolError), run.errors[receiver]
    assert sender in str(run.errors[receiver]) and "step" in str(run.errors[receiver])
    watcher.assert_destroyed()


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize(("sender", "step", "kind", "receiver"), TARGETS, ids=[f"{s}-{k}" for s, _, k, _ in TARGETS])
async def test_hostile_bytes_mid_run_stop_every_party_cleanly(sender, step, kind, receiver, payload, tables, autojump_clock):
    hospital, insurer = tables
    config = fast_config(hospital, insurer, max_iter=3, deadlines={s: 10.0 for s in range(1, 10)})
    fault = Fault("garbage", sender, step, kind=kind, peer=receiver, payload=PAYLOADS[payload])
    watcher = KeyWatcher()
    with trio.fail_after(1000):
        run = await run_with_faults((hospital, insurer), config, Faults(fault), observer=watcher)
    assert run.faults.fired
    _check_clean_stop(run, watcher, sender, receiver)
    del run
    watcher.assert_nothing_survives()


def _replace_body(value, field: int):
    def tamper(envelope: Envelope) -> Envelope:
        body = dict(envelope.body)
        names = sorted(body)
        body[names[field % len(names)]] = value
        return Envelope(envelope.session, envelope.step, envelope.sender, envelope.seq, envelope.kind, body)

    return tamper


hostile_field_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.binary(max_size=80),
    st.text(max_size=10),
    st.none(),
    st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=4),
    st.dictionaries(st.sampled_from(["n", "g", "x"]), st.integers(min_value=-5, max_value=2**1030), max_size=3),
    st.builds(lambda vs, w: BigIntArray(tuple(v % (1 << (8 * w)) for v in vs), w),
              st.lists(st.integers(min_value=0), max_size=5),
              st.integers(min_value=MIN_BIGINT_WIDTH, max_value=300)),  # narrower: refused by the codec's own tests
)


@pytest.mark.slow
@settings(max_examples=PARTY_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(TARGETS), field=st.integers(min_value=0, max_value=2), value=hostile_field_values)
async def test_hostile_fields_behind_a_valid_header_never_crash_a_party(target, field, value, tables):
    """A legal envelope whose body holds anything: the run may fail, but only as a protocol
    error (or as the protocol's own outcome, e.g. too small an intersection), never as a bug."""
    sender, step, kind, receiver = target
    hospital, insurer = tables
    config = fast_config(hospital, insurer, max_iter=3, lasso=step >= 7, deadlines={s: 30.0 for s in range(1, 10)})
    fault = Fault("tamper", sender, step, kind=kind, peer=receiver, tamper=_replace_body(value, field))
    watcher = KeyWatcher()
    with trio.fail_after(120):
        run = await run_with_faults((hospital, insurer), config, Faults(fault), observer=watcher)
    assert run.faults.fired
    _check_only_readable_errors(run, watcher)
    del run
    watcher.assert_nothing_survives()


def _check_only_readable_errors(run, watcher: KeyWatcher) -> None:
    for role, error in run.errors.items():
        assert isinstance(error, MpcactorsError), f"{role}: {type(error).__name__}: {error}"
    if run.errors:
        watcher.assert_destroyed()


@pytest.mark.parametrize("excess", [1, 10**12], ids=["one-more-row", "10^12-rows"])
async def test_an_intersection_larger_than_our_table_is_refused_before_any_work(excess, tables, autojump_clock):
    """A TTP that announces more joined rows than a party has is lying (or corrupt).

    Taken at its word, the party would build one mask row per announced row in step 5:
    unbounded memory and CPU in synchronous code that no deadline can interrupt.
    """
    hospital, insurer = tables
    config = fast_config(hospital, insurer, max_iter=3, deadlines={s: 10.0 for s in range(1, 10)})

    def inflate(envelope: Envelope) -> Envelope:
        return Envelope(envelope.session, envelope.step, envelope.sender, envelope.seq, envelope.kind,
                        {"size": len(hospital) + excess})

    fault = Fault("tamper", "ttp", 4, kind="intersection", peer="hospital", tamper=inflate)
    watcher = KeyWatcher()
    with trio.fail_after(1000):
        run = await run_with_faults((hospital, insurer), config, Faults(fault), observer=watcher)
    error = run.errors["hospital"]
    assert isinstance(error, PeerProtocolError) and error.exit_code == 4
    assert "ttp" in str(error) and "step 4" in str(error)
    assert "masks" not in watcher.held["hospital"]  # refused before step 5 built anything
    _check_clean_stop(run, watcher, "ttp", "hospital")
    del run, error
    watcher.assert_nothing_survives()
