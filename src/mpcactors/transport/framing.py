"""Length-prefixed frames over a byte stream.

A frame is a 4-byte big-endian unsigned length followed by exactly that many bytes.
The receiver checks the announced length against a hard cap *before* it reads the
body, so a peer that announces a 4 GiB frame costs us four bytes of memory and a
readable :class:`FrameTooLarge` error, not an allocation. Bodies are read in bounded
chunks into a buffer of exactly the announced size, so nothing is ever allocated past
the cap.

The framing knows nothing about TLS or envelopes: :mod:`mpcactors.transport.tls` runs
it over a :class:`trio.SSLStream` and passes its own cap, and the tests run it over
memory streams.
"""

from __future__ import annotations

import struct

import trio

from ..errors import PeerProtocolError, TransportError

__all__ = ["HEADER", "MAX_FRAME_BYTES", "FrameReceiver", "FrameTooLarge", "TruncatedFrame", "send_frame"]

#: The frame header: the body length as a big-endian unsigned 32-bit integer.
HEADER = struct.Struct(">I")
#: The default cap on one frame's body (64 MiB); callers that know better pass their own.
MAX_FRAME_BYTES = 64 * 1024 * 1024

#: Largest single ``receive_some`` request while reading a body. Bounded because
#: ``ssl.SSLObject.read(n)`` allocates ``n`` bytes per call before shrinking.
_CHUNK = 256 * 1024
#: Bodies below this size are sent with their header in one ``send_all`` call.
_COALESCE = 64 * 1024


class FrameTooLarge(PeerProtocolError):
    """The peer announced a frame above the cap; the body was not read."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class TruncatedFrame(TransportError):
    """The stream ended in the middle of a frame (the connection broke)."""


def _check_cap(max_frame_bytes: int) -> int:
    if not 1 <= max_frame_bytes <= 2**32 - 1:
        raise ValueError(f"max_frame_bytes must be between 1 and 2**32 - 1, got {max_frame_bytes}")
    return max_frame_bytes


async def send_frame(stream: trio.abc.SendStream, data: bytes, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
    """Send ``data`` as one frame.

    Raises:
        ValueError: ``data`` is longer than ``max_frame_bytes`` (our bug or our
            misconfiguration: nothing is sent).
        trio.BrokenResourceError, trio.ClosedResourceError: from the stream.
    """
    _check_cap(max_frame_bytes)
    if len(data) > max_frame_bytes:
        raise ValueError(f"a frame of {len(data)} bytes exceeds the {max_frame_bytes}-byte cap")
    header = HEADER.pack(len(data))
    if len(data) < _COALESCE:
        await stream.send_all(header + bytes(data))
    else:  # avoid copying a large body just to prepend four bytes
        await stream.send_all(header)
        await stream.send_all(data)


class FrameReceiver:
    """Reads frames from one :class:`trio.abc.ReceiveStream`.

    Only one task may call :meth:`receive_frame` at a time (like any trio stream).

    Args:
        stream: the byte stream to read.
        max_frame_bytes: the hard cap on one frame's body.
        peer: how to name the other side in error messages (e.g. ``"insurer"``).
    """

    def __init__(self, stream: trio.abc.ReceiveStream, *, max_frame_bytes: int = MAX_FRAME_BYTES, peer: str = "the peer") -> None:
        self.stream = stream
        self.max_frame_bytes = _check_cap(max_frame_bytes)
        self.peer = peer

    async def _read_exactly(self, buffer: bytearray | memoryview, *, at_boundary: bool) -> bool:
        """Fill ``buffer`` from the stream. Returns False on a clean EOF before any byte."""
        view = memoryview(buffer)
        filled = 0
        while filled < len(view):
            chunk = await self.stream.receive_some(min(len(view) - filled, _CHUNK))
            if not chunk:
                if at_boundary and filled == 0:
                    return False
                raise TruncatedFrame(f"{self.peer} closed the connection in the middle of a frame")
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        return True

    async def receive_frame(self) -> bytes:
        """Receive the next frame's body.

        Raises:
            trio.EndOfChannel: the peer closed the stream cleanly between frames.
            FrameTooLarge: the announced length exceeds ``max_frame_bytes`` (the
                body is not read; the stream is no longer usable).
            TruncatedFrame: the stream ended inside a frame.
            trio.BrokenResourceError, trio.ClosedResourceError: from the stream.
        """
        header = bytearray(HEADER.size)
        if not await self._read_exactly(header, at_boundary=True):
            raise trio.EndOfChannel
        (size,) = HEADER.unpack(header)
        if size > self.max_frame_bytes:
            raise FrameTooLarge(
                f"{self.peer} announced a frame of {size} bytes, above the cap of {self.max_frame_bytes} bytes",
                size=size,
                limit=self.max_frame_bytes,
            )
        body = bytearray(size)
        await self._read_exactly(body, at_boundary=False)
        return bytes(body)
