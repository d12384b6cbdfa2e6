"""The transcript recorder: every envelope that crossed a link, as bytes and decoded.

A :class:`Transcript` is a :data:`~mpcactors.transport.base.Recorder`: pass it as
``recorder=`` to :func:`mpcactors.sim.simulate` (or to a transport) and it stores each
:class:`~mpcactors.transport.base.Record` (the exact bytes, sender, receiver, step,
kind, size and send time) together with the envelope decoded from those bytes. It
answers the questions the leak analysis asks of a run: what did party X receive at
step N, how many bytes went from X to Y, what kinds of messages exist at all.

Two modes, because a simulation and a deployment see different things:

* **simulation** (``Transcript()``): the simulator attaches one recorder to all three
  in-memory links, so the transcript holds every message of the run. This is the
  transcript of the *network*, which no single party has; it exists only because the
  three parties share one process.
* **one party** (``Transcript(local="hospital")``): a daemon only has its own links,
  so it can only ever record its own traffic. The transcript enforces this: a record
  whose sender and receiver are both other parties raises
  :class:`ForeignTrafficError` instead of being stored, so a misconfigured recorder
  fails loudly rather than silently claiming a view no party has. Transports call
  their recorder for the envelopes they *send*; wrap each link with :meth:`wrap` to
  record what arrives as well.

There is no god view in daemon mode, and no switch to turn one on: the god view of
:mod:`mpcactors.sim` (what every party holds) is built from observer hooks inside
three actors that live in one process. A daemon runs one actor; the other parties'
state is in other processes on other machines, reachable only through the protocol's
messages, which is exactly what this recorder captures.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import trio

from ..codec import Envelope, decode_envelope, encode_envelope
from ..protocol.roster import Roster
from ..transport.base import Record

__all__ = ["Entry", "ForeignTrafficError", "RecordingChannel", "Transcript"]


class ForeignTrafficError(ValueError):
    """A one-party transcript was handed a message between two *other* parties.

    In a deployment that cannot happen (a daemon has no such link); in a simulation it
    means a party's recorder was attached to a link that is not its own.
    """


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded envelope: the record as it crossed the link and its decoding."""

    record: Record
    envelope: Envelope

    @property
    def sender(self) -> str:
        return self.record.sender

    @property
    def receiver(self) -> str:
        return self.record.receiver

    @property
    def step(self) -> int:
        return self.record.step

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def size(self) -> int:
        return self.record.size

    @property
    def time(self) -> float:
        return self.record.time

    @property
    def body(self) -> dict[str, Any]:
        return self.envelope.body


class Transcript:
    """Every recorded envelope of a run (or of one party's links), queryable.

    Args:
        local: ``None`` for a simulation transcript of all links, or the member of
            ``roster`` (default: the two-party roster) whose own traffic this is (a
            daemon's view); then records between two other parties are refused with
            :class:`ForeignTrafficError`.

    The transcript is append-only and keeps arrival order. It decodes each record
    with the same codec the receiving party uses, so a message that does not decode
    raises :class:`~mpcactors.errors.CodecError` here too.
    """

    def __init__(self, *, local: str | None = None, roster: Roster | None = None) -> None:
        members = (roster or Roster()).members
        if local is not None and local not in members:
            raise ValueError(f"local must be one of {members} or None, got {local!r}")
        self.local = local
        self._entries: list[Entry] = []

    # ---- recording ------------------------------------------------------------------
    def __call__(self, record: Record) -> None:
        """Record one envelope (the :data:`~mpcactors.transport.base.Recorder` protocol)."""
        if self.local is not None and self.local not in (record.sender, record.receiver):
            raise ForeignTrafficError(
                f"the {self.local}'s transcript was handed a {record.kind!r} message from "
                f"{record.sender} to {record.receiver}: a party can only record its own links"
            )
        envelope = decode_envelope(record.data, max_bytes=max(len(record.data), 1))
        self._entries.append(Entry(record, envelope))

    def wrap(self, channel: trio.abc.Channel[Envelope]) -> RecordingChannel:
        """A channel that also records every envelope *received* on ``channel``.

        ``channel`` must have ``local`` and ``peer`` attributes (every
        :class:`~mpcactors.transport.base.EnvelopeChannel` has). Attach this
        transcript as the transport's ``recorder`` for the envelopes it sends.
        """
        return RecordingChannel(channel, self)

    # ---- queries --------------------------------------------------------------------
    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(tuple(self._entries))

    def select(
        self,
        *,
        step: int | None = None,
        sender: str | None = None,
        receiver: str | None = None,
        kind: str | None = None,
        through_step: int | None = None,
    ) -> list[Entry]:
        """Entries matching every given criterion, in recording order.

        ``through_step`` keeps entries of steps ``<= through_step`` (what had been
        sent by the end of that step).
        """
        return [
            e
            for e in self._entries
            if (step is None or e.step == step)
            and (through_step is None or e.step <= through_step)
            and (sender is None or e.sender == sender)
            and (receiver is None or e.receiver == receiver)
            and (kind is None or e.kind == kind)
        ]

    def received_by(self, role: str, *, step: int | None = None, through_step: int | None = None) -> list[Entry]:
        return self.select(receiver=role, step=step, through_step=through_step)

    def sent_by(self, role: str, *, step: int | None = None, through_step: int | None = None) -> list[Entry]:
        return self.select(sender=role, step=step, through_step=through_step)

    def kinds(self) -> list[str]:
        """Distinct message kinds, in order of first appearance."""
        return list(dict.fromkeys(e.kind for e in self._entries))

    def bytes_by_step(self) -> dict[int, int]:
        """Total encoded bytes per protocol step (all links)."""
        out: dict[int, int] = defaultdict(int)
        for e in self._entries:
            out[e.step] += e.size
        return dict(sorted(out.items()))

    def messages_by_step(self) -> dict[int, int]:
        out: dict[int, int] = defaultdict(int)
        for e in self._entries:
            out[e.step] += 1
        return dict(sorted(out.items()))

    def bytes_by_party(self) -> dict[str, dict[str, dict[int, int]]]:
        """``{role: {"sent": {step: bytes}, "received": {step: bytes}}}`` for every role seen."""
        out: dict[str, dict[str, dict[int, int]]] = {}
        for e in self._entries:
            for role, direction in ((e.sender, "sent"), (e.receiver, "received")):
                per = out.setdefault(role, {"sent": {}, "received": {}})[direction]
                per[e.step] = per.get(e.step, 0) + e.size
        return out

    def traffic(self) -> list[dict[str, Any]]:
        """One row per (step, sender, receiver, kind): message count and bytes."""
        rows: dict[tuple[int, str, str, str], list[int]] = {}
        for e in self._entries:
            row = rows.setdefault((e.step, e.sender, e.receiver, e.kind), [0, 0])
            row[0] += 1
            row[1] += e.size
        return [
            {"step": s, "sender": a, "receiver": b, "kind": k, "messages": n, "bytes": size}
            for (s, a, b, k), (n, size) in sorted(rows.items())
        ]


class RecordingChannel(trio.abc.Channel[Envelope]):
    """A transport wrapper that records received envelopes into a transcript.

    Transports only call their recorder on *send* (the sender knows the bytes it
    wrote). A party that wants its full view (what it sent and what it received)
    wraps each of its links; received envelopes are re-encoded with the same
    canonical codec, which yields the bytes that crossed the wire (the codec is
    deterministic; ``tests/analysis/test_transcript.py`` checks the round trip).
    """

    def __init__(self, inner: trio.abc.Channel[Envelope], transcript: Transcript) -> None:
        self.inner = inner
        self.transcript = transcript
        self.local: str = inner.local  # type: ignore[attr-defined]
        self.peer: str = inner.peer  # type: ignore[attr-defined]

    async def send(self, value: Envelope) -> None:
        await self.inner.send(value)

    async def receive(self) -> Envelope:
        envelope = await self.inner.receive()
        data = encode_envelope(envelope)
        self.transcript(
            Record(self.peer, self.local, envelope.step, envelope.kind, len(data), time.monotonic(), data)
        )
        return envelope

    async def aclose(self) -> None:
        await self.inner.aclose()

    def statistics(self) -> Any:
        return self.inner.statistics()  # type: ignore[attr-defined]
