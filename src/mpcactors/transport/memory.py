"""In-memory transport for the simulation: bytes through a bounded trio channel.

Messages are encoded to msgpack bytes on send and decoded on receipt, exactly as over
TLS, so the simulation tests the codec, shares no Python objects between parties
(no aliasing), and yields a byte-exact transcript.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import trio

from ..errors import TransportError
from .base import EnvelopeChannel, Recorder

__all__ = ["MemoryChannel", "memory_link", "memory_mesh"]


class MemoryChannel(EnvelopeChannel):
    def __init__(
        self,
        local: str,
        peer: str,
        send: trio.MemorySendChannel[bytes],
        receive: trio.MemoryReceiveChannel[bytes],
        *,
        recorder: Recorder | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        kwargs = {} if max_message_bytes is None else {"max_message_bytes": max_message_bytes}
        super().__init__(local, peer, recorder=recorder, **kwargs)
        self._send = send
        self._receive = receive

    async def _send_bytes(self, data: bytes) -> None:
        try:
            await self._send.send(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise TransportError(f"the link from {self.local} to {self.peer} is closed") from None

    async def _receive_bytes(self) -> bytes:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportError(f"{self.peer} closed the link to {self.local}") from None

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


def memory_link(
    a: str, b: str, *, buffer: int = 4, recorder: Recorder | None = None
) -> tuple[MemoryChannel, MemoryChannel]:
    """A bidirectional link: ``(channel held by a, channel held by b)``.

    ``buffer`` bounds the messages in flight per direction (back-pressure: a fast
    sender waits for a slow receiver, so memory stays bounded).
    """
    a_to_b_send, a_to_b_receive = trio.open_memory_channel[bytes](buffer)
    b_to_a_send, b_to_a_receive = trio.open_memory_channel[bytes](buffer)
    return (
        MemoryChannel(a, b, a_to_b_send, b_to_a_receive, recorder=recorder),
        MemoryChannel(b, a, b_to_a_send, a_to_b_receive, recorder=recorder),
    )


def memory_mesh(
    roles: Sequence[str], *, recorder: Recorder | None = None, buffer: int = 4
) -> dict[str, dict[str, MemoryChannel]]:
    """A :func:`memory_link` between every two of ``roles``: ``links[role][peer]``.

    ``links[role]`` is what ``role`` holds, one channel per other role, in the order of
    ``roles``; every link carries ``recorder`` and ``buffer``.
    """
    links: dict[str, dict[str, MemoryChannel]] = {role: {} for role in roles}
    for a, b in combinations(roles, 2):
        links[a][b], links[b][a] = memory_link(a, b, buffer=buffer, recorder=recorder)
    return links
