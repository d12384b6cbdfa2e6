"""The TTP's steps 4 to 6 at national scale, without Paillier work: memory, time, disk.

    python benchmarks/ttp_join.py --rows N [--parties K] [--store auto|memory|disk]

Runs the real :class:`mpcactors.actors.ttp.Ttp` (steps 4, 5 and 6: receive, match,
shuffle, announce ``m``, receive masks, forward) in a child process, over a stand-in
for its :class:`~mpcactors.actors.actor.Actor` that plays the data parties:

* party ``k`` uploads the ids ``k*shift .. k*shift + N - 1`` in a scrambled order
  (``shift = N // (2K)``), each as a 32-byte keyed BLAKE2b digest (the HMAC's size) and
  one 512-byte random ciphertext per row: a 2048-bit key's ``n^2``, and 5 attributes
  fit one packed plaintext (``Packing.plaintexts_per_row(5) == 1`` with the default
  parameters; the data party's step 3 packs a row the same way);
* each party sends its step-5 masks (random 512-byte values, one per row and owner);
* the step-6 combination is replaced by "forward the owner's ciphertext" (no
  multiplication mod ``n^2``, no re-randomisation), so step 6 measures the TTP's own
  reading in the joined order.

Every ciphertext carries its row's id in its low 8 bytes, so the parent checks what the
TTP forwarded against the plaintext join: every party receives the same id at every
joined position, and the ids are exactly the ids all parties share. Prints one JSON
line: rows, parties, store, seconds (the TTP's time, the stand-in's data generation
excluded), rows_per_second (uploaded rows over all parties per second), peak_rss_mib
(the child's ``ru_maxrss``), disk_mib (the spill directory after step 5, its largest).
``--store memory`` forces today's in-memory join, ``disk`` the join on disk, ``auto``
the threshold the TTP uses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import trio

from mpcactors.actors import join_store
from mpcactors.actors.actor import Actor
from mpcactors.actors.executor import Executor
from mpcactors.actors.hooks import Hooks
from mpcactors.actors.ttp import Ttp
from mpcactors.crypto.fixedpoint import Params
from mpcactors.protocol import messages as msg
from mpcactors.protocol.wire import BigIntArray

KEY_BITS = 2048
WIDTH = 2 * KEY_BITS // 8  # bytes of a ciphertext mod n^2
ATTRIBUTES = 5
LOW = (1 << 64) - 1


def forward_own(public_wire, own, masks):  # the step-6 combination without Paillier work
    return own


class _Vault:
    def __init__(self) -> None:
        self.alive = {}

    def create(self, name, value):
        self.alive[name] = value
        return value

    def destroy(self, name):
        value = self.alive.pop(name)
        if isinstance(value, dict):
            for v in value.values():
                v.clear()


class StandIn:
    """What :class:`Ttp` uses of its actor; plays the data parties' side of steps 4 to 6."""

    stream_rows = Actor.stream_rows
    report = Actor.report

    def __init__(self, rows: int, parties: int, chunk: int, out: Path) -> None:
        self.n_rows, self.k, self.out = rows, parties, out
        names = [f"party{i}" for i in range(parties)]
        self.roster = SimpleNamespace(data_parties=tuple(names))
        self.params = Params()
        self.config = SimpleNamespace(
            columns_of=lambda p: tuple(f"x{i}" for i in range(ATTRIBUTES)), min_intersection=1, chunk_rows=chunk,
        )
        self.role, self.observed, self.observer, self.progress = "ttp", False, None, None
        self.scheduler = SimpleNamespace(step=4)
        self._last_progress = {}
        self.hooks = Hooks(combine=forward_own)
        self.executor = Executor("inline")
        self.vault = _Vault()
        self.intersection_size = 0
        self.generating = 0.0
        self.step_seconds = {}
        self.disk = 0
        self.shift = rows // (2 * parties)
        self.n = (1 << (KEY_BITS - 1)) | 1
        self._streams = {name: self._uploads(i) for i, name in enumerate(names)}
        self._forwarded = {name: open(out / f"{name}.ids", "wb") for name in names}
        self.ttp: Ttp | None = None

    def _ids(self, party: int, rows: range) -> np.ndarray:
        n = self.n_rows
        step = 2654435761 % n or 1
        while math.gcd(step, n) != 1:
            step += 1
        return party * self.shift + (np.arange(rows.start, rows.stop, dtype=np.int64) * step + 7) % n

    def _values(self, ids: np.ndarray, per_row: int) -> tuple[int, ...]:
        block = np.frombuffer(os.urandom(WIDTH * len(ids) * per_row), dtype=np.uint8).reshape(-1, WIDTH).copy()
        block[:, -8:] = np.repeat(ids, per_row).astype(">u8").view(np.uint8).reshape(-1, 8)
        raw = block.tobytes()
        return tuple(int.from_bytes(raw[i : i + WIDTH], "big") for i in range(0, len(raw), WIDTH))

    def _uploads(self, party: int):
        yield msg.PublicKey({"n": self.n}, ATTRIBUTES)
        per_row = 1
        for start in range(0, self.n_rows, self.config.chunk_rows):
            rows = range(start, min(start + self.config.chunk_rows, self.n_rows))
            ids = self._ids(party, rows)
            digests = b"".join(
                hashlib.blake2b(int(i).to_bytes(8, "little"), digest_size=32, key=b"bench").digest() for i in ids.tolist()
            )
            yield msg.Rows(digests, BigIntArray(self._values(ids, per_row), WIDTH))
        yield msg.RowsEnd(self.n_rows)
        m = self.intersection_size
        owners = self.k - 1
        for start in range(0, m, self.config.chunk_rows):
            count = min(self.config.chunk_rows, m - start)
            yield msg.Masks(BigIntArray(self._values(np.zeros(count * owners, dtype=np.int64), 1), WIDTH))
        yield msg.MasksEnd(m)

    def public_key_of(self, party, wire):
        n = wire["n"]
        return SimpleNamespace(n=n, to_wire=lambda: {"n": n})

    def hold(self, name, value):
        pass

    async def expect(self, peer, *expected):
        await trio.sleep(0)
        started = time.perf_counter()
        message = next(self._streams[peer])
        self.generating += time.perf_counter() - started
        assert isinstance(message, expected), (message.kind, expected)
        return message

    async def send(self, peer, message):
        await trio.sleep(0)
        if isinstance(message, msg.Masked):
            ids = np.fromiter((v & LOW for v in message.ciphertexts), dtype=np.int64, count=len(message.ciphertexts))
            self._forwarded[peer].write(ids.tobytes())

    async def in_step(self, step, body):
        if int(step) == 6 and self.ttp is not None and self.ttp.store is not None:
            self.disk = self.ttp.store.disk_bytes()
        self.scheduler.step = int(step)
        started, generating = time.perf_counter(), self.generating
        await body()
        self.step_seconds[int(step)] = time.perf_counter() - started - (self.generating - generating)


def child(rows: int, parties: int, store: str, chunk: int, out: Path, result: Path) -> None:
    if store == "memory":
        join_store.SPILL_ROWS = 1 << 62
    elif store == "disk":
        join_store.SPILL_ROWS = 0
    actor = StandIn(rows, parties, chunk, out)
    ttp = actor.ttp = Ttp(actor)  # type: ignore[arg-type]
    spilled = []

    async def main():
        await ttp.run()

    original = ttp._join_on_disk

    async def joined():
        spilled.append(True)
        await original()

    ttp._join_on_disk = joined
    trio.run(main)
    for f in actor._forwarded.values():
        f.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.write_text(json.dumps({
        "m": actor.intersection_size, "step_seconds": actor.step_seconds, "generate_seconds": actor.generating,
        "peak_rss_mib": rss, "disk_mib": actor.disk / 2**20, "spilled": bool(spilled),
    }))


def measure(rows: int, parties: int, store: str = "auto", chunk: int = 4096) -> dict:
    with tempfile.TemporaryDirectory(prefix="ttp-join-bench-") as tmp:
        out, result = Path(tmp), Path(tmp) / "result.json"
        process = multiprocessing.get_context("spawn").Process(target=child, args=(rows, parties, store, chunk, out, result))
        process.start()
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"the TTP child failed with exit code {process.exitcode}")
        r = json.loads(result.read_text())
        # the plaintext join: ids all parties share, and the same id at every joined position
        shift = rows // (2 * parties)
        forwarded = [np.fromfile(out / f"party{i}.ids", dtype=np.int64) for i in range(parties)]
        for i in range(1, parties):
            assert np.array_equal(forwarded[0], forwarded[i]), f"party{i} got other rows than party0"
        expected = np.arange((parties - 1) * shift, rows, dtype=np.int64)
        assert r["m"] == len(expected), (r["m"], len(expected))
        assert np.array_equal(np.sort(forwarded[0]), expected), "the joined ids are not the plaintext join"
        assert not np.array_equal(forwarded[0], np.sort(forwarded[0])) or len(expected) < 3, "not shuffled"
    seconds = sum(r["step_seconds"].values())
    return {
        "rows": rows, "parties": parties, "store": "disk" if r["spilled"] else "memory",
        "seconds": round(seconds, 2), "rows_per_second": round(rows * parties / seconds),
        "peak_rss_mib": round(r["peak_rss_mib"], 1), "disk_mib": round(r["disk_mib"], 1),
        "intersection": r["m"], "step_seconds": {k: round(v, 2) for k, v in r["step_seconds"].items()},
        "generate_seconds": round(r["generate_seconds"], 2),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="rows per party")
    parser.add_argument("--parties", type=int, default=2)
    parser.add_argument("--store", choices=("auto", "memory", "disk"), default="auto")
    parser.add_argument("--chunk-rows", type=int, default=4096)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.rows, args.parties, args.store, args.chunk_rows)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
