"""Length-prefixed framing: exact round trips, the cap checked before the body, truncation."""

from __future__ import annotations

import struct
from functools import partial

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from mpcactors.codec import MAX_MESSAGE_BYTES
from mpcactors.errors import PeerProtocolError, TransportError
from mpcactors.transport import framing
from mpcactors.transport.framing import FrameReceiver, FrameTooLarge, TruncatedFrame, send_frame

TIMEOUT = 10


class RecordingStream(trio.abc.ReceiveStream):
    """A receive stream over fixed bytes that records every ``max_bytes`` it was asked for."""

    def __init__(self, data: bytes, *, chunk: int | None = None) -> None:
        self.data = data
        self.pos = 0
        self.chunk = chunk
        self.requests: list[int | None] = []

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        self.requests.append(max_bytes)
        n = len(self.data) - self.pos if max_bytes is None else max_bytes
        if self.chunk is not None:
            n = min(n, self.chunk)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


async def test_frames_round_trip_over_a_stream_that_delivers_one_byte_at_a_time() -> None:
    bodies = [b"", b"x", bytes(range(256)) * 8, b"last"]
    send, receive = trio.testing.memory_stream_one_way_pair()
    with trio.fail_after(TIMEOUT):
        receiver = FrameReceiver(_OneByteReceiveStream(receive), max_frame_bytes=1 << 20)

        async def produce() -> None:
            for body in bodies:
                await send_frame(send, body, max_frame_bytes=1 << 20)
            await send.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            got = [await receiver.receive_frame() for _ in bodies]
            with pytest.raises(trio.EndOfChannel):
                await receiver.receive_frame()
    assert got == bodies


async def test_a_body_above_the_coalescing_size_arrives_whole() -> None:
    body = bytes(range(256)) * 300  # 76,800 bytes: header and body go out in separate writes
    send, receive = trio.testing.memory_stream_one_way_pair()
    receiver = FrameReceiver(receive, max_frame_bytes=len(body))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(send_frame, send, body, max_frame_bytes=len(body)))
            assert await receiver.receive_frame() == body


class _OneByteReceiveStream(trio.abc.ReceiveStream):
    """Wraps a one-way memory pair: returns at most one byte per call."""

    def __init__(self, inner: trio.testing.MemoryReceiveStream) -> None:
        self.inner = inner

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self.inner.receive_some(1)

    async def aclose(self) -> None:
        await self.inner.aclose()


@settings(max_examples=50, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=600), max_size=8),
    chunk=st.integers(min_value=1, max_value=700),
)
def test_any_sequence_of_frames_decodes_exactly_whatever_the_chunking(bodies: list[bytes], chunk: int) -> None:
    stream = RecordingStream(b"".join(frame(b) for b in bodies), chunk=chunk)

    async def main() -> list[bytes]:
        receiver = FrameReceiver(stream, max_frame_bytes=600)
        out = []
        with trio.fail_after(TIMEOUT):
            for _ in bodies:
                out.append(await receiver.receive_frame())
            with pytest.raises(trio.EndOfChannel):
                await receiver.receive_frame()
        return out

    assert trio.run(main) == bodies


async def test_the_cap_is_checked_before_the_body_is_read() -> None:
    # a 4 GiB - 1 announcement with no body at all: the error comes from the header alone
    stream = RecordingStream(struct.pack(">I", 2**32 - 1))
    receiver = FrameReceiver(stream, max_frame_bytes=1024, peer="insurer")
    with trio.fail_after(TIMEOUT), pytest.raises(FrameTooLarge) as info:
        await receiver.receive_frame()
    assert info.value.size == 2**32 - 1 and info.value.limit == 1024
    assert str(info.value) == "insurer announced a frame of 4294967295 bytes, above the cap of 1024 bytes"
    assert isinstance(info.value, PeerProtocolError)
    assert sum(r or 0 for r in stream.requests) == 4  # only the header was asked for


async def test_a_frame_exactly_at_the_cap_is_accepted_and_one_byte_more_is_not() -> None:
    with trio.fail_after(TIMEOUT):
        ok = FrameReceiver(RecordingStream(frame(b"a" * 100)), max_frame_bytes=100)
        assert await ok.receive_frame() == b"a" * 100
        over = FrameReceiver(RecordingStream(frame(b"a" * 101)), max_frame_bytes=100)
        with pytest.raises(FrameTooLarge):
            await over.receive_frame()


async def test_reads_never_ask_past_the_current_frame_nor_above_the_chunk_size() -> None:
    big = b"b" * (3 * framing._CHUNK + 17)
    data = frame(big) + frame(b"next")
    stream = RecordingStream(data)
    receiver = FrameReceiver(stream, max_frame_bytes=len(big))
    with trio.fail_after(TIMEOUT):
        assert await receiver.receive_frame() == big
        consumed_after_first = stream.pos
        assert await receiver.receive_frame() == b"next"
    # the first frame's reads stopped exactly at its end: no byte of the next frame was taken
    assert consumed_after_first == 4 + len(big)
    assert all(r is not None and r <= framing._CHUNK for r in stream.requests)


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 9])
async def test_a_stream_that_ends_inside_a_frame_is_a_truncation_not_a_clean_end(cut: int) -> None:
    data = frame(b"0123456789")[:cut]
    receiver = FrameReceiver(RecordingStream(data), max_frame_bytes=100, peer="ttp")
    with trio.fail_after(TIMEOUT), pytest.raises(TruncatedFrame, match="ttp closed the connection in the middle of a frame"):
        await receiver.receive_frame()
    assert issubclass(TruncatedFrame, TransportError)


async def test_sending_above_the_cap_is_refused_and_nothing_is_written() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    with trio.fail_after(TIMEOUT):
        with pytest.raises(ValueError, match="exceeds the 10-byte cap"):
            await send_frame(send, b"x" * 11, max_frame_bytes=10)
        await send.aclose()
        assert await receive.receive_some() == b""


def test_the_cap_must_fit_the_header() -> None:
    with pytest.raises(ValueError):
        FrameReceiver(RecordingStream(b""), max_frame_bytes=2**32)
    with pytest.raises(ValueError):
        FrameReceiver(RecordingStream(b""), max_frame_bytes=0)


def test_the_default_frame_cap_is_the_codec_message_cap() -> None:
    # the framing knows nothing about envelopes, so it keeps its own default; a frame
    # carries one message, so the two caps must not drift apart
    assert framing.MAX_FRAME_BYTES == MAX_MESSAGE_BYTES
