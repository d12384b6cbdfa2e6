"""A wide-area network on one machine: a TCP relay that adds delay and a bandwidth cap.

Linux's ``tc netem`` needs a kernel module this project cannot count on (the
benchmark machines lack it), so the relay does the same in user space, per link and per
direction. It forwards TCP bytes untouched: mutual TLS between the parties runs end to
end through it (the relay holds no key and could not read a record if it wanted to).

Each direction of a link is a :class:`LinkShape`: a one-way ``delay`` and an optional
``mbit`` cap. The model is the one of a real link, a serialising queue followed by a
propagation delay:

* a chunk read at time ``t`` finishes its transmission when the :class:`TokenBucket`
  (``mbit`` refill, ``burst`` bytes deep) has let all its bytes through, at ``ready``;
* it is delivered at ``ready + delay``, by a separate writer task that sleeps until then.

Because every chunk carries its own due time, many chunks are in flight at once, so the
delay does not serialise throughput (a bulk transfer of ``n`` bytes takes about
``delay + n / rate``, not ``chunks * delay``). Per direction at most ``queue_bytes`` are
held; beyond that the relay stops reading, and TCP's flow control pushes back on the sender.

An end of stream is forwarded, after the data before it, as a half-close (``send_eof``);
the link ends when both directions have ended, or at once, with both sides closed, when
either side breaks (reset, or writing to a side that has gone).

Used by ``benchmarks/wan.py`` (:class:`RelayThread`, which runs :func:`serve_link` for each
link of a daemon run in a background thread) and by ``tests/test_netem.py`` (with
memory streams and trio's autojump clock: :func:`relay` works on any trio stream).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio

__all__ = [
    "LinkShape",
    "LinkStats",
    "RelayThread",
    "TokenBucket",
    "relay",
    "serve_link",
    "shape_one_way",
]

#: The largest chunk read at once: a TLS record's worth, so a chunk's transmission time
#: at a capped rate stays short (16 KiB at 100 Mbit/s: 1.3 ms).
MAX_CHUNK = 16 * 1024


@dataclass(frozen=True)
class LinkShape:
    """One direction of a link: one-way ``delay`` (seconds) and a cap of ``mbit`` (None: none).

    ``burst`` is the token bucket's depth in bytes (what may leave at once after an idle
    spell); ``queue_bytes`` bounds what the relay holds for this direction.
    """

    delay: float = 0.0
    mbit: float | None = None
    burst: int = MAX_CHUNK
    queue_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delay) and self.delay >= 0):
            raise ValueError(f"delay must be a finite number of seconds >= 0, got {self.delay!r}")
        if self.mbit is not None and not (math.isfinite(self.mbit) and self.mbit > 0):
            raise ValueError(f"mbit must be positive (or None for no cap), got {self.mbit!r}")
        if self.burst < 1 or self.queue_bytes < 1:
            raise ValueError("burst and queue_bytes must be at least 1 byte")

    @classmethod
    def wan(cls, rtt_ms: float, mbit: float | None) -> LinkShape:
        """Half of the round-trip time ``rtt_ms`` each way, the same cap both ways."""
        return cls(delay=rtt_ms / 2000.0, mbit=mbit)

    @property
    def bytes_per_second(self) -> float | None:
        return None if self.mbit is None else self.mbit * 1e6 / 8


class TokenBucket:
    """Bytes through a link of ``rate`` bytes per second with a bucket ``burst`` bytes deep.

    :meth:`reserve` books ``n`` bytes at time ``now`` and returns when the last of them
    has left: at once while the bucket holds enough tokens, otherwise after the debt has
    been refilled at ``rate``. Bookings queue in call order (a FIFO link), so the returned
    times never decrease. ``rate=None``: no cap (always ``now``).
    """

    def __init__(self, rate: float | None, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last = now

    def reserve(self, n: int, now: float) -> float:
        if self.rate is None:
            return now
        if now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
        self.tokens -= n
        return self.last + max(0.0, -self.tokens) / self.rate


@dataclass
class LinkStats:
    """What went through one direction of a relayed connection."""

    bytes: int = 0
    chunks: int = 0
    #: latest time at which a chunk was delivered (trio clock), 0 before the first
    last_delivery: float = 0.0


async def shape_one_way(
    source: trio.abc.ReceiveStream,
    sink: trio.abc.SendStream,
    shape: LinkShape,
    stats: LinkStats | None = None,
    *,
    max_chunk: int = MAX_CHUNK,
) -> None:
    """Copy ``source`` to ``sink`` through ``shape``, then forward the end of stream.

    Returns after the end of stream has been forwarded (``send_eof`` when ``sink`` has
    it, otherwise the sink is closed). Raises :class:`trio.BrokenResourceError` or
    :class:`trio.ClosedResourceError` when either side breaks.
    """
    stats = stats if stats is not None else LinkStats()
    bucket = TokenBucket(shape.bytes_per_second, shape.burst, trio.current_time())
    send, receive = trio.open_memory_channel[tuple[float, bytes | None]](math.inf)
    queued = 0
    drained = trio.Event()

    async def reader() -> None:
        nonlocal queued, drained
        last_due = -math.inf
        async with send:
            while True:
                data = await source.receive_some(max_chunk)
                now = trio.current_time()
                if not data:
                    send.send_nowait((max(last_due, now + shape.delay), None))
                    return
                last_due = bucket.reserve(len(data), now) + shape.delay
                queued += len(data)
                send.send_nowait((last_due, bytes(data)))
                while queued > shape.queue_bytes:
                    await drained.wait()
                    drained = trio.Event()

    async def writer() -> None:
        nonlocal queued
        async with receive:
            async for due, data in receive:
                await trio.sleep_until(due)
                if data is None:
                    if isinstance(sink, trio.abc.HalfCloseableStream):
                        await sink.send_eof()
                    else:
                        await sink.aclose()
                    return
                await sink.send_all(data)
                queued -= len(data)
                stats.bytes += len(data)
                stats.chunks += 1
                stats.last_delivery = trio.current_time()
                drained.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(writer)


async def relay(
    a: trio.abc.HalfCloseableStream,
    b: trio.abc.HalfCloseableStream,
    a_to_b: LinkShape,
    b_to_a: LinkShape,
    stats: tuple[LinkStats, LinkStats] | None = None,
) -> bool:
    """Relay between ``a`` and ``b`` until both directions end; always closes both.

    Returns True when both ends closed in order (each end of stream forwarded), False
    when the link was cut because a side broke (then the other side is closed at once,
    as a network would reset it).
    """
    forward, backward = stats if stats is not None else (LinkStats(), LinkStats())
    clean = True
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shape_one_way, a, b, a_to_b, forward)
            nursery.start_soon(shape_one_way, b, a, b_to_a, backward)
    except* (trio.BrokenResourceError, trio.ClosedResourceError):
        clean = False
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(a)
            await trio.aclose_forcefully(b)
    return clean


async def _dial(target: tuple[str, int], patience: float) -> trio.SocketStream | None:
    """Connect to ``target``, retrying while it is not listening yet (up to ``patience`` s)."""
    with trio.move_on_after(patience):
        while True:
            try:
                return await trio.open_tcp_stream(*target)
            except OSError:
                await trio.sleep(0.05)
    return None


@dataclass
class _LinkCounters:
    connections: int = 0
    forward: list[LinkStats] = field(default_factory=list)
    backward: list[LinkStats] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        return {
            "connections": self.connections,
            "bytes_forward": sum(s.bytes for s in self.forward),
            "bytes_backward": sum(s.bytes for s in self.backward),
        }


async def serve_link(
    target: tuple[str, int],
    forward: LinkShape,
    backward: LinkShape,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    dial_patience: float = 30.0,
    counters: _LinkCounters | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``host:port`` (0: a free port, passed to ``task_status.started``) and relay
    every connection to ``target``: ``forward`` shapes what the dialler sends, ``backward``
    what comes back. A target not yet listening is retried for ``dial_patience`` seconds
    (the parties start together); after that the incoming connection is closed."""
    counters = counters if counters is not None else _LinkCounters()
    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners[0].socket.getsockname()[1])

    async def handle(client: trio.SocketStream) -> None:
        server = await _dial(target, dial_patience)
        if server is None:
            await trio.aclose_forcefully(client)
            return
        counters.connections += 1
        stats = (LinkStats(), LinkStats())
        counters.forward.append(stats[0])
        counters.backward.append(stats[1])
        await relay(client, server, forward, backward, stats)

    await trio.serve_listeners(handle, listeners)


class RelayThread:
    """The relays of one run, in a background thread with its own trio loop.

    ``links`` maps a link's name to ``(target, forward, backward)``. As a context manager it
    starts a :func:`serve_link` per link and, once all listen, exposes their ports in
    :attr:`ports` (name -> port on 127.0.0.1); on exit it stops them (cutting any
    connection still open) and joins the thread. :meth:`totals` gives per link the
    connections relayed and the bytes each way.
    """

    def __init__(self, links: Mapping[str, tuple[tuple[str, int], LinkShape, LinkShape]]) -> None:
        self.links = dict(links)
        self.ports: dict[str, int] = {}
        self._counters = {name: _LinkCounters() for name in self.links}
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="netem-relay", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    for name, (target, forward, backward) in self.links.items():
                        self.ports[name] = await nursery.start(
                            lambda task_status, t=target, f=forward, b=backward, c=self._counters[name]: serve_link(
                                t, f, b, counters=c, task_status=task_status
                            )
                        )
                    self._ready.set()

        try:
            trio.run(main)
        except BaseException as exc:  # reported to the caller by __enter__ / __exit__
            self._error = exc
        finally:
            self._ready.set()

    def __enter__(self) -> RelayThread:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError(f"the relay did not start: {self._error}") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._scope is not None:
            try:
                trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join(timeout=30)

    def totals(self) -> dict[str, dict[str, int]]:
        return {name: c.totals() for name, c in self._counters.items()}
