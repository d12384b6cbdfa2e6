"""What every transport shares: envelopes in, bytes on the wire, statistics, recording.

A transport is a :class:`trio.abc.Channel` of :class:`~mpcactors.codec.Envelope`
between this party and one peer. Subclasses move *bytes* (:meth:`_send_bytes`,
:meth:`_receive_bytes`); this base class owns the codec, so the in-memory simulation
exercises exactly the bytes a TLS deployment would carry, counts them per step, and
hands them to a transcript recorder if one is attached.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from ..codec import MAX_MESSAGE_BYTES, Envelope, decode_envelope, encode_envelope
from ..errors import CodecError, PeerProtocolError

__all__ = ["EnvelopeChannel", "LinkStatistics", "Record", "Recorder"]


@dataclass(frozen=True, slots=True)
class Record:
    """One envelope as it crossed a link: the exact bytes and where they went."""

    sender: str
    receiver: str
    step: int
    kind: str
    size: int
    time: float
    data: bytes


#: A transcript recorder: called once per envelope *sent* on a link.
Recorder = Callable[[Record], None]


@dataclass
class LinkStatistics:
    """Messages and bytes per step, in each direction, on one link."""

    local: str
    peer: str
    sent_messages: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    sent_bytes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    received_messages: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    received_bytes: dict[int, int] = field(default_factory=lambda: defaultdict(int))


class EnvelopeChannel(trio.abc.Channel[Envelope]):
    """Base of all transports: codec, size limit, statistics and recording."""

    def __init__(
        self,
        local: str,
        peer: str,
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        recorder: Recorder | None = None,
    ) -> None:
        self.local = local
        self.peer = peer
        self.max_message_bytes = max_message_bytes
        self.recorder = recorder
        self._stats = LinkStatistics(local, peer)

    # subclasses implement these two
    async def _send_bytes(self, data: bytes) -> None:
        raise NotImplementedError

    async def _receive_bytes(self) -> bytes:
        raise NotImplementedError

    def statistics(self) -> LinkStatistics:
        return self._stats

    async def send(self, value: Envelope) -> None:
        data = encode_envelope(value)
        if len(data) > self.max_message_bytes:
            raise ValueError(
                f"{value.kind!r} message of {len(data)} bytes exceeds the {self.max_message_bytes}-byte cap; "
                "lower chunk_rows"
            )
        await self._send_bytes(data)
        self._stats.sent_messages[value.step] += 1
        self._stats.sent_bytes[value.step] += len(data)
        if self.recorder is not None:
            self.recorder(Record(self.local, self.peer, value.step, value.kind, len(data), time.monotonic(), data))

    async def receive(self) -> Envelope:
        data = await self._receive_bytes()
        try:
            envelope = decode_envelope(data, max_bytes=self.max_message_bytes)
        except CodecError as exc:
            raise PeerProtocolError(f"{self.peer} sent undecodable bytes: {exc}") from None
        if envelope.sender != self.peer:
            raise PeerProtocolError(f"a message on the link to {self.peer} claims to come from {envelope.sender}")
        self._stats.received_messages[envelope.step] += 1
        self._stats.received_bytes[envelope.step] += len(data)
        return envelope
