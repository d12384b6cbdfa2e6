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

    from mpcactors.codec import Envelope, decode_envelope, encode_envelope
    from mpcactors.errors import PeerProtocolError, TransportError
    from mpcactors.testing import accept_or_refuse, example_messages
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
        accept_or_refuse(envelope, SESSION)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    chunk = 1 + data[0] % 64 if data[0] < 128 else 1 << 20
    trio.run(receive_all, data[1:], chunk)


def seeds(directory: Path) -> None:
    for seq, m in enumerate(example_messages()):
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
