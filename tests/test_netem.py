"""The wide-area relay (`mpcactors.testing.netem`): what `benchmarks/wan.py` relies on.

The relay must be invisible except for time: every byte arrives intact and in order, each
chunk arrives exactly its one-way delay after it was sent (without serialising chunks
behind one another), a bulk transfer takes its size over the capped rate, and the link
ends, with both sides closed, when either side closes or breaks.

Timing tests run on memory streams under trio's autojump clock, so no real sleeping:
times are the virtual clock's, exact up to float rounding. The tolerances below are
1 microsecond for pure delays, and one chunk's transmission time where the cap applies
(the relay reads at most ``MAX_CHUNK`` bytes at a time, so a chunk's bytes arrive together).
"""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest
import trio
import trio.testing

from mpcactors.testing.netem import MAX_CHUNK, LinkShape, LinkStats, RelayThread, TokenBucket, relay, serve_link

EPS = 1e-6


def _pipes() -> tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream,
                      trio.abc.HalfCloseableStream]:
    """(client, relay's client side, relay's server side, server)."""
    client, relay_a = trio.testing.memory_stream_pair()
    relay_b, server = trio.testing.memory_stream_pair()
    return client, relay_a, relay_b, server


async def _read_all(stream: trio.abc.ReceiveStream) -> bytes:
    out = bytearray()
    while chunk := await stream.receive_some():
        out += chunk
    return bytes(out)


async def _relay_into(outcome: list[bool], a: trio.abc.HalfCloseableStream, b: trio.abc.HalfCloseableStream,
                      shape: LinkShape) -> None:
    """Relay with ``shape`` both ways; append what :func:`relay` returned to ``outcome``."""
    outcome.append(await relay(a, b, shape, shape))


async def test_bytes_arrive_intact_and_in_order_both_ways(autojump_clock: trio.testing.MockClock) -> None:
    """Two random streams cross at once (sent in random pieces); each arrives byte for byte."""
    rng = random.Random(7)
    up, down = rng.randbytes(300_000), rng.randbytes(200_000)
    client, ra, rb, server = _pipes()
    shape = LinkShape(delay=0.015, mbit=100)
    got: dict[str, bytes] = {}

    async def send_pieces(stream: trio.abc.HalfCloseableStream, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 40_000)
            await stream.send_all(data[pos : pos + step])
            pos += step
            await trio.sleep(rng.random() * 0.003)
        await stream.send_eof()

    async def receive(name: str, stream: trio.abc.ReceiveStream) -> None:
        got[name] = await _read_all(stream)

    with trio.fail_after(60):  # virtual seconds: a hang fails instead of blocking the suite
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay, ra, rb, shape, shape)
            nursery.start_soon(send_pieces, client, up)
            nursery.start_soon(send_pieces, server, down)
            nursery.start_soon(receive, "server", server)
            nursery.start_soon(receive, "client", client)
    assert got["server"] == up
    assert got["client"] == down


async def test_each_chunk_is_delayed_by_the_one_way_delay_without_serialising(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Messages sent 1 ms apart each arrive 40 ms after they left (not 40 ms after the previous one)."""
    client, ra, rb, server = _pipes()
    forward, backward = LinkShape(delay=0.040), LinkShape(delay=0.010)
    sent_at: list[float] = []
    arrivals: list[tuple[float, bytes]] = []

    async def sender() -> None:
        for i in range(20):
            sent_at.append(trio.current_time())
            await client.send_all(bytes([i]) * 10)
            await trio.sleep(0.001)
        await client.send_eof()

    async def receiver() -> None:
        while chunk := await server.receive_some():
            arrivals.append((trio.current_time(), chunk))

    with trio.fail_after(60):  # virtual seconds: a hang fails instead of blocking the suite
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay, ra, rb, forward, backward)
            nursery.start_soon(sender)
            nursery.start_soon(receiver)
            await trio.sleep(0.5)
            # the other direction has its own delay: one round trip is the sum
            start = trio.current_time()
            await server.send_all(b"pong")
            assert await client.receive_some() == b"pong"
            assert trio.current_time() - start == pytest.approx(0.010, abs=EPS)
            await server.send_eof()
    assert [c for _, c in arrivals] == [bytes([i]) * 10 for i in range(20)]
    for (arrived, _), left in zip(arrivals, sent_at, strict=True):
        assert arrived - left == pytest.approx(0.040, abs=EPS)


async def test_bulk_transfer_takes_its_size_over_the_rate_plus_the_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """1 MB at 8 Mbit/s (1 MB/s) with 25 ms one way: the last byte arrives after
    (1 MB - burst) / rate + 25 ms, within one chunk's transmission time; and no chunk
    arrives before its bytes could have crossed the link."""
    data = random.Random(1).randbytes(1_000_000)
    client, ra, rb, server = _pipes()
    shape = LinkShape(delay=0.025, mbit=8)
    rate = 1_000_000.0
    stats = (LinkStats(), LinkStats())
    received = 0
    checked = 0

    async def receiver() -> None:
        nonlocal received, checked
        start = trio.current_time()
        while chunk := await server.receive_some():
            received += len(chunk)
            elapsed = trio.current_time() - start
            # the cap holds at every moment: at most burst + rate * (elapsed - delay) bytes
            assert received <= shape.burst + rate * (elapsed - shape.delay) + 1
            checked += 1

    with trio.fail_after(60):  # virtual seconds: a hang fails instead of blocking the suite
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay, ra, rb, shape, shape, stats)
            nursery.start_soon(receiver)
            start = trio.current_time()
            await client.send_all(data)
            await client.send_eof()
            await trio.sleep(5)
            await server.send_eof()
    elapsed = stats[0].last_delivery - start
    expected = (len(data) - shape.burst) / rate + shape.delay
    assert received == len(data) and stats[0].bytes == len(data) and checked > 10
    assert expected - EPS <= elapsed <= expected + MAX_CHUNK / rate


def test_token_bucket_lets_a_burst_through_then_paces_at_the_rate() -> None:
    bucket = TokenBucket(rate=1000.0, burst=100, now=0.0)
    assert bucket.reserve(100, 0.0) == 0.0  # a full bucket: at once
    assert bucket.reserve(50, 0.0) == pytest.approx(0.05)  # then 50 bytes at 1000 B/s
    assert bucket.reserve(50, 0.0) == pytest.approx(0.10)  # FIFO: behind the previous booking
    assert bucket.reserve(10, 1.0) == 1.0  # idle long enough: full again
    assert TokenBucket(rate=None, burst=1, now=0.0).reserve(10**9, 3.0) == 3.0


async def test_a_side_that_closes_ends_the_link_after_its_data(autojump_clock: trio.testing.MockClock) -> None:
    """The client sends and closes: the server gets every byte, then end of stream; when
    the server closes too the relay returns True (an orderly end) with both its sides closed."""
    client, ra, rb, server = _pipes()
    shape = LinkShape(delay=0.02, mbit=10)
    outcome: list[bool] = []

    with trio.fail_after(60):  # virtual seconds: a hang fails instead of blocking the suite
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_relay_into, outcome, ra, rb, shape)
            await client.send_all(b"last words" * 1000)
            await client.send_eof()
            assert await _read_all(server) == b"last words" * 1000
            await server.send_all(b"bye")
            assert await client.receive_some() == b"bye"
            await server.aclose()
            assert await client.receive_some() == b""  # the server's close arrives as end of stream
            await client.aclose()
    assert outcome == [True]
    with pytest.raises(trio.ClosedResourceError):
        await ra.send_all(b"x")
    with pytest.raises(trio.ClosedResourceError):
        await rb.send_all(b"x")


async def test_a_side_that_breaks_cuts_the_link_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """The server goes away while the client is still sending: the relay stops within the
    delay, returns False, and the client's side is closed (it reads end of stream)."""
    client, ra, rb, server = _pipes()
    shape = LinkShape(delay=0.05)
    outcome: list[bool] = []

    with trio.fail_after(60):  # virtual seconds: a hang fails instead of blocking the suite
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_relay_into, outcome, ra, rb, shape)
            await client.send_all(b"hello")
            assert await server.receive_some() == b"hello"
            await server.aclose()  # gone, not a half-close
            start = trio.current_time()
            await client.send_all(b"are you there?")
            assert await client.receive_some() == b""
            assert trio.current_time() - start <= shape.delay + EPS
    assert outcome == [False]


def test_relay_thread_forwards_tcp_both_ways_with_the_delay() -> None:
    """Over real loopback TCP, through the background-thread relay the benchmark uses: an
    echo server behind a 30 ms one-way link answers a 100 KB message intact, and the
    exchange takes at least the 60 ms round trip (a lower bound only: real time)."""
    server = socket.create_server(("127.0.0.1", 0))
    target = server.getsockname()[:2]

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    payload = random.Random(3).randbytes(100_000)
    shape = LinkShape(delay=0.030, mbit=1000)
    with RelayThread({"echo": (target, shape, shape)}) as relays:
        with socket.create_connection(("127.0.0.1", relays.ports["echo"]), timeout=10) as conn:
            start = time.perf_counter()
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            got = bytearray()
            while data := conn.recv(65536):
                got += data
            elapsed = time.perf_counter() - start
        assert bytes(got) == payload
        assert elapsed >= 0.060
    server.close()
    totals = relays.totals()["echo"]
    assert totals == {"connections": 1, "bytes_forward": len(payload), "bytes_backward": len(payload)}


async def test_serve_link_waits_for_a_target_that_starts_late() -> None:
    """The parties start together, so a dialler may reach the relay before the target
    listens: the relay retries the target instead of dropping the connection."""
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a port that is free now; the target starts on it later
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            relay_port = await nursery.start(lambda task_status: serve_link(
                ("127.0.0.1", port), LinkShape(), LinkShape(), dial_patience=10, task_status=task_status))
            client = await trio.open_tcp_stream("127.0.0.1", relay_port)
            await client.send_all(b"early")
            await trio.sleep(0.2)
            listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
            target = await listeners[0].accept()
            assert await target.receive_some() == b"early"
            await target.aclose()
            await listeners[0].aclose()
            assert await client.receive_some() == b""
            await client.aclose()
            nursery.cancel_scope.cancel()
