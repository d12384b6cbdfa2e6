"""A longer, coverage-guided fuzz of the receive path with atheris (libFuzzer); not in the suite.

The suite's Hypothesis harness (``tests/robustness/test_fuzz.py``) runs a few thousand
inputs on every test run. This script runs libFuzzer for as long as you let it, on the
same property: whatever bytes a peer sends, the receiving side only ever

* decodes a legal envelope (which the step scheduler and the message parser then accept
  or refuse with :class:`PeerProtocolError`), or
* raises :class:`PeerProtocolError` (or its subclass :class:`CodecError`), or
* sees the link end (:class:`TransportError`: a truncated frame);

and its memory stays bounded (``-rss_limit_mb``: libFuzzer stops with a crash report if
the process grows past it). Any other exception is a finding: libFuzzer writes the input
to ``crash-*`` and prints the traceback.

The input is a byte stream read through the real framing (:class:`FrameReceiver`, cap
64 KiB here) and the real envelope decoder; the first byte also chooses how the stream
is chunked, so partial reads are covered. Seeds: one valid envelope of every message kind.

Usage (``pip install atheris`` first)::

    python benchmarks/fuzz_atheris.py -atheris_runs=200000            # about 10 minutes on one core
    python benchmarks/fuzz_atheris.py -max_total_time=3600 corpus/    # an hour, keeping the corpus
"""

from __future__ import annotations

import struct
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import trio

    from mpcactors.codec import BigIntArray, Envelope, decode_envelope, encode_envelope
    from mpcactors.errors import PeerProtocolError, TransportError
    from mpcactors.protocol import messages as msg
    from mpcactors.protocol.scheduler import StepScheduler
    from mpcactors.transport.framing import FrameReceiver

SESSION = bytes(range(16))
CAP = 1 << 16


class Stream(trio.abc.ReceiveStream):
    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.pos, self.chunk = data, 0, chunk

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        n = self.chunk if max_bytes is None else min(self.chunk, max_bytes)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    async def aclose(self) -> None:
        pass


def behind_the_codec(envelope: Envelope) -> None:
    scheduler = StepScheduler("ttp", SESSION)
    scheduler.begin_step(4)
    try:
        scheduler.incoming(envelope)
        msg.parse(envelope)
    except PeerProtocolError:
        pass


async def receive_all(data: bytes, chunk: int) -> None:
    receiver = FrameReceiver(Stream(data, chunk), max_frame_bytes=CAP, peer="hospital")
    while True:
        try:
            frame = await receiver.receive_frame()
        except (trio.EndOfChannel, PeerProtocolError, TransportError):
            return
        try:
            envelope = decode_envelope(frame, max_bytes=CAP)
        except PeerProtocolError:
            continue
        behind_the_codec(envelope)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    chunk = 1 + data[0] % 64 if data[0] < 128 else 1 << 20
    trio.run(receive_all, data[1:], chunk)


def seeds(directory: Path) -> None:
    values = BigIntArray(tuple(range(10**70, 10**70 + 3)), 256)
    messages = [
        msg.HashContribution(bytes(32)), msg.PublicKey({"n": 2**1023 + 1155, "g": 2**1023 + 1156}, 5),
        msg.Rows(bytes(64), values), msg.RowsEnd(2), msg.Intersection(7), msg.Masks(values), msg.MasksEnd(2),
        msg.Masked(values), msg.MaskedEnd(2), msg.Mpc(2, "mul", BigIntArray((1, 2, 3), 24)), msg.Abort("stop"),
    ]
    for seq, m in enumerate(messages):
        body = encode_envelope(Envelope(SESSION, 4, "hospital", seq, m.kind, m.body()))
        (directory / f"seed-{m.kind}").write_bytes(b"\x00" + struct.pack(">I", len(body)) + body)


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):  # no corpus directory given: seed a fresh one
        corpus = Path(tempfile.mkdtemp(prefix="mpcactors-fuzz-"))
        seeds(corpus)
        argv.append(str(corpus))
    if not any(a.startswith("-rss_limit_mb") for a in argv):
        argv.append("-rss_limit_mb=1024")
    if not any(a.startswith("-max_len") for a in argv):
        argv.append(f"-max_len={CAP + 64}")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
