"""Three ways to join the TTP's hashed ids on disk, timed on the same data (the choice in join_store).

    python benchmarks/ttp_join_prototypes.py --rows N

Two parties upload ``N`` random 32-byte digests each (half shared), in chunks of 4096,
with their arrival index. Each prototype stores them on disk as they arrive, then
produces the matched (row in A, row in B) pairs; all three must agree. Ciphertexts are
left out: every design stores them the same way (a file in arrival order). Prints one
JSON line with the seconds of each prototype (store, join, total).

* ``sqlite``: one table per party (digest BLOB PRIMARY KEY, row), WITHOUT ROWID, filled
  in one transaction, then ``SELECT ... JOIN ... USING (digest)``.
* ``sorted_runs``: each chunk sorted (numpy) and appended as a run file; at the end
  each party's runs are k-way merged (``heapq.merge``) and the two sorted streams
  merge-joined.
* ``hash_partitions``: what :class:`mpcactors.actors.join_store.SpillJoin` does: each
  digest goes to one of 256 partition files by its first byte, then one partition at a
  time is joined in memory with numpy.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from mpcactors.actors import join_store

CHUNK = 4096
ID = np.dtype([("digest", "S32"), ("row", "<u8")])


def data(rows: int) -> tuple[bytes, bytes]:
    shared = os.urandom(32 * (rows // 2))
    a = shared + os.urandom(32 * (rows - rows // 2))
    b = os.urandom(32 * (rows - rows // 2)) + shared
    perm = np.random.default_rng(1).permutation(rows)
    b = np.frombuffer(b, dtype="S32")[perm].tobytes()
    return a, b


def chunks(blob: bytes):
    for start in range(0, len(blob), 32 * CHUNK):
        yield start // 32, blob[start : start + 32 * CHUNK]


def sqlite_join(a: bytes, b: bytes, tmp: Path) -> tuple[list[tuple[int, int]], float]:
    db = sqlite3.connect(tmp / "join.sqlite")
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-65536")  # 64 MiB
    for name in "ab":
        db.execute(f"CREATE TABLE {name} (digest BLOB PRIMARY KEY, row INTEGER) WITHOUT ROWID")
    started = time.perf_counter()
    with db:
        for name, blob in (("a", a), ("b", b)):
            for first, chunk in chunks(blob):
                db.executemany(
                    f"INSERT INTO {name} VALUES (?, ?)",
                    ((chunk[i : i + 32], first + i // 32) for i in range(0, len(chunk), 32)),
                )
    stored = time.perf_counter() - started
    pairs = db.execute("SELECT a.row, b.row FROM a JOIN b USING (digest)").fetchall()
    db.close()
    return pairs, stored


def runs_join(a: bytes, b: bytes, tmp: Path) -> tuple[list[tuple[int, int]], float]:
    started = time.perf_counter()
    runs: dict[str, list[Path]] = {"a": [], "b": []}
    for name, blob in (("a", a), ("b", b)):
        for first, chunk in chunks(blob):
            ids = np.empty(len(chunk) // 32, dtype=ID)
            ids["digest"] = np.frombuffer(chunk, dtype="S32")
            ids["row"] = np.arange(first, first + len(ids))
            ids.sort(order="digest")
            path = tmp / f"{name}-{len(runs[name])}"
            ids.tofile(path)
            runs[name].append(path)
    stored = time.perf_counter() - started

    def stream(paths):
        def read(path):
            with open(path, "rb") as f:
                while block := f.read(40 * 1024):
                    yield from zip(*(np.frombuffer(block, dtype=ID)[f].tolist() for f in ("digest", "row")))
        return heapq.merge(*(read(p) for p in paths))

    pairs = []
    left, right = stream(runs["a"]), stream(runs["b"])
    x, y = next(left, None), next(right, None)
    while x is not None and y is not None:
        if x[0] == y[0]:
            pairs.append((x[1], y[1]))
            x, y = next(left, None), next(right, None)
        elif x[0] < y[0]:
            x = next(left, None)
        else:
            y = next(right, None)
    return pairs, stored


def partitions_join(a: bytes, b: bytes, tmp: Path) -> tuple[list[tuple[int, int]], float]:
    started = time.perf_counter()
    with join_store.SpillJoin({"a": 1, "b": 1}, ciphertext_bytes={"a": 1, "b": 1}) as store:
        for name, blob in (("a", a), ("b", b)):
            for _, chunk in chunks(blob):
                store.add(name, chunk, bytes(len(chunk) // 32))
        stored = time.perf_counter() - started
        store.join()
        pairs = list(zip(store.joined["a"].tolist(), store.joined["b"].tolist(), strict=True))
    return pairs, stored


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True)
    args = parser.parse_args(argv)
    a, b = data(args.rows)
    out, reference = {"rows": args.rows}, None
    for name, run in (("hash_partitions", partitions_join), ("sorted_runs", runs_join), ("sqlite", sqlite_join)):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            pairs, stored = run(a, b, Path(tmp))
            total = time.perf_counter() - started
        pairs = sorted(pairs)
        assert reference is None or pairs == reference, f"{name} disagrees"
        reference = pairs
        out[name] = {"store": round(stored, 2), "join": round(total - stored, 2), "total": round(total, 2)}
    assert len(reference) == args.rows // 2
    print(json.dumps(out))


if __name__ == "__main__":
    main()
