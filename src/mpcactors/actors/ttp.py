"""Steps 4 to 6 of the TTP: match hashed ids, forward masked and re-randomised rows.

The TTP never holds a secret key. It keeps the hashed-id columns only while it
matches them (:data:`~mpcactors.protocol.steps.SECRETS`), fixes the joined table's
row order with a fresh random permutation, and tells the data parties nothing but
the intersection size ``m``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trio

from ..crypto import paillier
from ..crypto.packing import Packing
from ..errors import PeerProtocolError
from ..protocol import messages as msg
from ..protocol.rules import check_intersection
from ..protocol.steps import Step
from ..protocol.wire import BigIntArray
from .actor import Actor
from . import join_store
from .hooks import DEFAULT_HOOKS, Held

__all__ = ["Ttp"]


@dataclass
class _Table:
    """One data party's step-4 upload as the TTP keeps it, and the masks for its columns."""

    public: paillier.PublicKey
    per_row: int
    ciphertexts: list[int] = field(default_factory=list)
    #: encrypted masks for this party's columns, by the data party that drew them
    masks: dict[str, list[int]] = field(default_factory=dict)


class Ttp:
    """The TTP's steps, over its :class:`Actor`."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.parties = actor.roster.data_parties
        self.tables: dict[str, _Table] = {}
        #: per joined row, the arrival index of its row in each party's upload (roster order)
        self.rows: list[tuple[int, ...]] = []
        #: the uploads on disk, once more than ``join_store.SPILL_ROWS`` rows arrived
        self.store: join_store.SpillJoin | None = None

    async def run(self) -> None:
        a = self.actor
        try:
            await a.in_step(Step.INTERSECT, self.intersect)
            await a.in_step(Step.MASKS, self.receive_masks)
            await a.in_step(Step.MASK_AND_FORWARD, self.forward)
        finally:  # success, failure or cancellation: the spilled files go
            if self.store is not None:
                self.store.close()
            self.tables.clear()
            self.rows = []

    def _width(self, party: str) -> int:
        """Bytes of one ciphertext under ``party``'s key (as on the wire)."""
        return (2 * self.tables[party].public.n.bit_length() + 7) // 8

    def _spill(self, indexes: dict[str, dict[bytes, int]]) -> None:
        """Move every upload received so far to disk; later rows go there directly."""
        widths = {p: self.tables[p].per_row * self._width(p) for p in self.parties}
        store = join_store.SpillJoin(widths, ciphertext_bytes={p: self._width(p) for p in self.parties})
        self.store = store
        total = sum(len(index) for index in indexes.values())
        moved = 0
        for party in self.parties:
            table, index = self.tables[party], indexes[party]
            moved += len(index)
            store.add(party, b"".join(index), join_store.to_records(table.ciphertexts, self._width(party), party))
            index.clear()
            table.ciphertexts = []
            self.actor.report(moved, total, "rows moved to disk (later rows go there directly)")

    async def _receive_table(self, party: str, indexes: dict[str, dict[bytes, int]]) -> None:
        a, config = self.actor, self.actor.config
        d = len(config.columns_of(party))
        key = await a.expect(party, msg.PublicKey)
        public = a.public_key_of(party, key.key)
        if key.columns != d:
            raise PeerProtocolError(f"{party} announced {key.columns} columns, the run expects {d}")
        maskers = len(self.parties) - 1
        table = _Table(public, Packing(a.params, public.n.bit_length(), maskers=maskers).plaintexts_per_row(d))
        self.tables[party] = table
        index = indexes[party]
        while True:
            message = await a.expect(party, msg.Rows, msg.RowsEnd)
            received = self.store.rows(party) if self.store is not None else len(index)
            if isinstance(message, msg.RowsEnd):
                if message.rows != received:
                    raise PeerProtocolError(f"{party} announced {message.rows} rows but sent {received}")
                break
            count = message.count
            values = message.ciphertexts
            if len(values) != count * table.per_row:
                raise PeerProtocolError(f"{party} sent {len(values)} ciphertexts for {count} rows")
            if self.store is not None:  # duplicates are found by the join
                self.store.add(party, message.hashes, join_store.to_records(values, self._width(party), party))
                continue
            for i in range(count):
                digest = message.hash(i)
                if digest in index:
                    raise PeerProtocolError(f"{party} sent the same hashed id twice")
                index[digest] = len(index)
            table.ciphertexts.extend(values)
            if sum(len(i) for i in indexes.values()) > join_store.SPILL_ROWS and len(self.tables) == len(self.parties):
                self._spill(indexes)

    async def intersect(self) -> None:
        """Step 4: receive every upload, match, shuffle, drop the hashed ids, announce ``m``."""
        a = self.actor
        indexes = a.vault.create("hashed_ids", {party: {} for party in self.parties})
        async with trio.open_nursery() as nursery:
            for party in self.parties:
                nursery.start_soon(self._receive_table, party, indexes)
        if self.store is not None:
            await self._join_on_disk()
            return
        first, *others = (indexes[p] for p in self.parties)
        a.hold(Held.HASHED_IDS, tuple(list(index) for index in indexes.values()))
        rows = [
            (row, *(other[digest] for other in others))
            for digest, row in first.items()
            if all(digest in other for other in others)
        ]
        a.hooks.shuffle(rows)  # the joined table's row order
        self.rows = rows
        a.hold(Held.ROW_PAIRS, rows)  # (arrival index in each party's upload) per joined row
        sizes = {party: len(index) for party, index in indexes.items()}
        # drop the hashed-id columns: only the row pairing survives matching
        a.vault.destroy("hashed_ids")
        a.intersection_size = m = len(rows)
        a.hold(Held.INTERSECTION_SIZE, m)
        for party in self.parties:
            await a.send(party, msg.Intersection(m))
        check_intersection(m, min(sizes.values()), a.config.min_intersection, a.role)

    async def _join_on_disk(self) -> None:
        """Step 4 for spilled uploads: the same matching, shuffle and announcement, on disk."""
        a, store = self.actor, self.store
        assert store is not None
        sizes = {party: store.rows(party) for party in self.parties}
        if a.observed:
            a.hold(Held.HASHED_IDS, tuple(store.hashed_ids(p) for p in self.parties))
        shuffle = a.hooks.shuffle
        if shuffle is DEFAULT_HOOKS.shuffle:
            permutation = join_store.default_permutation
        else:  # a variant's shuffle, on the joined rows' numbers

            def permutation(m: int) -> np.ndarray:
                order = list(range(m))
                shuffle(order)
                return np.asarray(order, dtype=np.int64)

        # the matching is CPU and disk work without awaits, as the in-memory join is
        m = store.join(permutation, a.report)
        if a.observed:
            columns = [store.joined[p].tolist() for p in self.parties]
            a.hold(Held.ROW_PAIRS, list(zip(*columns, strict=True)))
        a.vault.destroy("hashed_ids")  # the digests' partitions were deleted by the join
        a.intersection_size = m
        a.hold(Held.INTERSECTION_SIZE, m)
        for party in self.parties:
            await a.send(party, msg.Intersection(m))
        check_intersection(m, min(sizes.values()), a.config.min_intersection, a.role)

    async def _receive_masks(self, sender: str) -> None:
        # masks from `sender` for every other party's columns, each under its owner's key:
        # per row, one group of ciphertexts per owner in roster order
        a = self.actor
        m = a.intersection_size
        owners = [p for p in self.parties if p != sender]
        per_row = {owner: self.tables[owner].per_row for owner in owners}
        width = sum(per_row.values())
        masks: dict[str, list[int]] = {owner: [] for owner in owners}
        rows = 0
        while True:
            message = await a.expect(sender, msg.Masks, msg.MasksEnd)
            if isinstance(message, msg.MasksEnd):
                if message.rows != m or rows != m:
                    raise PeerProtocolError(f"{sender} sent masks for {rows} rows, expected {m}")
                break
            values = message.ciphertexts
            if len(values) % width:
                raise PeerProtocolError(f"{sender} sent a masks chunk that is not whole rows")
            count = len(values) // width
            rows += count
            if rows > m:
                raise PeerProtocolError(f"{sender} sent more masks than the intersection has rows")
            if self.store is not None:
                self._spill_masks(sender, owners, values, count)
                a.report(rows, m, f"masks from {sender} spilled to disk")
                continue
            start = 0
            for _ in range(count):
                for owner in owners:
                    stop = start + per_row[owner]
                    masks[owner].extend(values[start:stop])
                    start = stop
        for owner in owners:
            self.tables[owner].masks[sender] = masks[owner]

    def _spill_masks(self, sender: str, owners: list[str], values: BigIntArray, count: int) -> None:
        # a chunk holds, per row, one group per owner; every key has the run's size, so
        # the chunk is a matrix of equal records, cut by owner columns
        assert self.store is not None
        width = self._width(owners[0])
        per_row = [self.tables[o].per_row * width for o in owners]
        records = join_store.to_records(values, width, sender)
        matrix = np.frombuffer(records, dtype=np.uint8).reshape(count, sum(per_row))
        start = 0
        for owner, size in zip(owners, per_row, strict=True):
            self.store.add_masks(owner, sender, matrix[:, start : start + size].tobytes())
            start += size

    async def receive_masks(self) -> None:
        """Step 5: every data party's masks for every other party's columns."""
        async with trio.open_nursery() as nursery:
            for sender in self.parties:
                nursery.start_soon(self._receive_masks, sender)

    async def _forward(self, party: str) -> None:
        a = self.actor
        table = self.tables[party]
        column = self.parties.index(party)
        public, per_row, ciphertexts = table.public, table.per_row, table.ciphertexts
        masks = [table.masks[sender] for sender in self.parties if sender != party]
        table.masks = {}
        width = (2 * public.n.bit_length() + 7) // 8
        rows = self.rows
        wire = public.to_wire()
        key = public.fingerprint()  # this key's work stays on few workers (its fixed-base table)
        combine = a.hooks.combine

        store = self.store

        async def combined(part: range) -> list[int]:
            if store is not None:
                senders = [s for s in self.parties if s != party]
                spilled = [store.masks(party, s, part) for s in senders]
                return await a.executor.run(combine, wire, store.joined_rows(party, part), spilled)
            own = []
            for j in part:
                row = rows[j][column]
                own.extend(ciphertexts[row * per_row : (row + 1) * per_row])
            chunk = [mask[part.start * per_row : part.stop * per_row] for mask in masks]
            return await a.executor.run(combine, wire, own, chunk, affinity=key)

        def message(part: range, values: list[int]) -> msg.Message:
            return msg.Masked(BigIntArray(tuple(values), width))

        m = a.intersection_size
        await a.stream_rows(party, m, combined, message, f"rows re-randomised for {party}")
        await a.send(party, msg.MaskedEnd(m))
        table.ciphertexts = []

    async def forward(self) -> None:
        """Step 6: ``Enc(x - r)``, re-randomised, to each column owner, in the joined order."""
        a = self.actor
        a.executor = a.executor.sized(a.intersection_size)
        async with trio.open_nursery() as nursery:
            for party in self.parties:
                nursery.start_soon(self._forward, party)
