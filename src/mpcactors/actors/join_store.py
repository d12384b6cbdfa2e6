"""The TTP's join on disk: hashed ids and ciphertexts spilled to a private directory.

Above :data:`SPILL_ROWS` uploaded rows the TTP (:mod:`.ttp`) stops holding the
step-4 uploads in memory and hands them to a :class:`SpillJoin`:

* each upload's ciphertexts go, as fixed-width big-endian records, to one file per
  party in arrival order (read back by arrival index in step 6);
* each hashed id goes, with its arrival index, to one of :data:`PARTITIONS` files per
  party chosen by the digest's first byte. The digests are keyed HMAC outputs, so
  the partitions are even, and the join is one partition at a time: load the
  partition of every party (40 bytes a row), check for duplicates, intersect with
  numpy (a sort, in C), keep the matched arrival indices (8 bytes per party and
  joined row), delete the partition;
* step 5's masks are appended as they arrive (already in the joined order), one file
  per (column owner, masking party), and read back by row range in step 6.

The joined order is a fresh uniform permutation: the argsort of one CSPRNG 64-bit key
per joined row (the protocol's ``shuffle`` hook is used instead when a variant
replaces it). Memory is a few MiB of buffers plus the join's index arrays (4 bytes per
party and joined row, and the permutation's 8 bytes and 8-byte keys while the joined
order is built); the tables themselves never are. See ``docs/benchmarks.md`` ("The TTP's join on disk") for the
measurements behind the design and the threshold.

The directory is made by :func:`tempfile.mkdtemp` (mode 0700, under ``TMPDIR``) and
removed by :meth:`SpillJoin.close`, which the TTP calls when its steps end, fail or
are cancelled. The files hold what the TTP's memory held: hashed ids (until the join
deletes them) and ciphertexts, never a plaintext.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PeerProtocolError
from ..protocol.messages import HASH_BYTES

__all__ = ["PARTITIONS", "SPILL_ROWS", "SpillJoin", "default_permutation", "from_records", "to_records"]

#: Rows (summed over the data parties) the TTP holds in memory before it spills; chosen
#: by ``benchmarks/ttp_join.py`` (see docs/benchmarks.md, "The TTP's join on disk").
SPILL_ROWS = 200_000
#: Hash partitions per party: at 10^7 rows, 40k rows (1.6 MB of digests) each.
PARTITIONS = 256
#: Bytes buffered per file before a write.
_BUFFER = 1 << 16
_ID = np.dtype([("digest", f"S{HASH_BYTES}"), ("row", "<u8")])


def to_records(values: Sequence[int], width: int, who: str) -> bytes:
    """Ciphertexts as ``width``-byte big-endian records (what the wire carried)."""
    try:
        return b"".join(int(v).to_bytes(width, "big") for v in values)
    except OverflowError:
        raise PeerProtocolError(f"{who} sent a ciphertext wider than {width} bytes") from None


def from_records(blob: bytes, width: int) -> list[int]:
    return [int.from_bytes(blob[i : i + width], "big") for i in range(0, len(blob), width)]


def default_permutation(m: int) -> np.ndarray:
    """A uniform permutation of ``range(m)`` from the OS CSPRNG: the order of random 64-bit keys.

    Two equal keys among 10^7 have probability about 3e-6; they keep their relative order.
    """
    keys = np.frombuffer(os.urandom(8 * m), dtype="<u8")
    return np.argsort(keys, kind="stable")


class _Appender:
    """A file written in ``_BUFFER``-sized appends (open, write, close: no descriptor held)."""

    __slots__ = ("buffer", "path", "size")

    def __init__(self, path: Path) -> None:
        self.path, self.buffer, self.size = path, bytearray(), 0

    def write(self, data: bytes) -> None:
        self.buffer += data
        self.size += len(data)
        if len(self.buffer) >= _BUFFER:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            with open(self.path, "ab") as f:
                f.write(self.buffer)
            self.buffer.clear()


class SpillJoin:
    """One run's step-4 uploads and step-5 masks on disk, and their join.

    ``widths`` gives, per data party (in roster order), the bytes of one uploaded row
    (ciphertexts per row times the ciphertext width).
    """

    def __init__(self, widths: dict[str, int], *, ciphertext_bytes: dict[str, int]) -> None:
        self.parties = tuple(widths)
        self.widths = dict(widths)
        self.ciphertext_bytes = dict(ciphertext_bytes)
        self.directory = Path(tempfile.mkdtemp(prefix="mpcactors-ttp-join-"))
        self._rows = dict.fromkeys(self.parties, 0)
        self._ciphertexts = {p: _Appender(self.directory / f"rows-{i}") for i, p in enumerate(self.parties)}
        self._ids = {
            p: [_Appender(self.directory / f"ids-{i}-{k}") for k in range(PARTITIONS)]
            for i, p in enumerate(self.parties)
        }
        self._masks: dict[tuple[str, str], _Appender] = {}
        self._fds: dict[Path, int] = {}
        #: per party, the arrival index of its row in each joined row, in the joined order
        self.joined: dict[str, np.ndarray] = {}

    # ---- step 4 --------------------------------------------------------------------
    def rows(self, party: str) -> int:
        return self._rows[party]

    def add(self, party: str, hashes: bytes, ciphertexts: bytes) -> None:
        """Rows of ``party`` in arrival order: concatenated digests and their row records."""
        count = len(hashes) // HASH_BYTES
        ids = np.empty(count, dtype=_ID)
        ids["digest"] = np.frombuffer(hashes, dtype=f"S{HASH_BYTES}")
        start = self._rows[party]
        ids["row"] = np.arange(start, start + count, dtype="<u8")
        self._rows[party] = start + count
        self._ciphertexts[party].write(ciphertexts)
        partition = np.frombuffer(hashes, dtype=np.uint8)[::HASH_BYTES].astype(np.intp) % PARTITIONS
        order = np.argsort(partition, kind="stable")
        bounds = np.searchsorted(partition[order], np.arange(PARTITIONS + 1))
        grouped = ids[order]
        files = self._ids[party]
        for k in np.flatnonzero(np.diff(bounds)):
            files[k].write(grouped[bounds[k] : bounds[k + 1]].tobytes())

    def _load_ids(self, party: str, k: int) -> np.ndarray:
        appender = self._ids[party][k]
        appender.flush()
        if not appender.path.exists():
            return np.empty(0, dtype=_ID)
        return np.fromfile(appender.path, dtype=_ID)

    def hashed_ids(self, party: str) -> list[bytes]:
        """``party``'s digests in arrival order (for an observer: simulation only, in memory)."""
        out: list[bytes] = [b""] * self._rows[party]
        for k in range(PARTITIONS):
            ids = self._load_ids(party, k)
            for digest, row in zip(ids["digest"].tolist(), ids["row"].tolist(), strict=True):
                out[row] = digest.ljust(HASH_BYTES, b"\0")
        return out

    def join(
        self,
        permutation: Callable[[int], np.ndarray] = default_permutation,
        report: Callable[[int, int, str], None] | None = None,
    ) -> int:
        """Match every party's digests, fix the joined order, delete the digests; returns ``m``.

        Raises:
            PeerProtocolError: a party sent the same hashed id twice.
        """
        matched: dict[str, list[np.ndarray]] = {p: [] for p in self.parties}
        for k in range(PARTITIONS):
            common: np.ndarray | None = None
            rows: dict[str, np.ndarray] = {}
            for party in self.parties:
                ids = self._load_ids(party, k)
                digests, first = np.unique(ids["digest"], return_index=True)
                if len(digests) != len(ids):
                    raise PeerProtocolError(f"{party} sent the same hashed id twice")
                if common is None:
                    common, rows[party] = digests, ids["row"][first]
                    continue
                common, keep, theirs = np.intersect1d(common, digests, assume_unique=True, return_indices=True)
                rows = {p: r[keep] for p, r in rows.items()}
                rows[party] = ids["row"][first[theirs]]
            for party in self.parties:  # 4 bytes a row where the upload has fewer than 2**32 rows
                index = rows[party]
                matched[party].append(index.astype(np.uint32) if self._rows[party] < 2**32 else index)
                self._ids[party][k].path.unlink(missing_ok=True)
            if report is not None:
                report(k + 1, PARTITIONS, "hash partitions joined on disk")
        self._ids = {}
        # one array at a time, and each replaced in place: at most one spare copy is alive
        joined = {p: np.concatenate(matched.pop(p)) for p in self.parties}
        m = len(joined[self.parties[0]])
        order = permutation(m)
        for party in self.parties:
            joined[party] = joined[party][order]
        del order
        self.joined = joined
        for appender in self._ciphertexts.values():
            appender.flush()
        return m

    # ---- step 5 and 6 -------------------------------------------------------------
    def add_masks(self, owner: str, sender: str, records: bytes) -> None:
        """Masks from ``sender`` for ``owner``'s columns, in the joined order (row records)."""
        key = (owner, sender)
        if key not in self._masks:
            i, j = self.parties.index(owner), self.parties.index(sender)
            self._masks[key] = _Appender(self.directory / f"masks-{i}-{j}")
        self._masks[key].write(records)

    def _fd(self, path: Path) -> int:
        if path not in self._fds:
            self._fds[path] = os.open(path, os.O_RDONLY)
        return self._fds[path]

    def joined_rows(self, party: str, part: range) -> list[int]:
        """``party``'s ciphertexts of joined rows ``part``, row-major (step 6)."""
        width = self.widths[party]
        fd = self._fd(self._ciphertexts[party].path)
        arrival = self.joined[party][part.start : part.stop].tolist()
        blob = b"".join(os.pread(fd, width, row * width) for row in arrival)
        return from_records(blob, self.ciphertext_bytes[party])

    def masks(self, owner: str, sender: str, part: range) -> list[int]:
        """``sender``'s masks for ``owner``'s columns of joined rows ``part``."""
        appender = self._masks[(owner, sender)]
        appender.flush()
        width = self.widths[owner]
        blob = os.pread(self._fd(appender.path), width * len(part), part.start * width)
        return from_records(blob, self.ciphertext_bytes[owner])

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.directory.iterdir()) if self.directory.exists() else 0

    def close(self) -> None:
        """Delete every file (idempotent): at the end of the run, on failure and on cancellation."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self.joined = {}
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SpillJoin:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
