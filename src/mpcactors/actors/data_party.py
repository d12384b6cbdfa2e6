"""Steps 1 to 6 of a data party: prepare, hash, encrypt, send, mask, decrypt.

Every data party runs the same steps; what differs between them is public
configuration (its columns, its peers in the roster). With k data parties, each masks
every other party's columns (step 5), so at the end of step 6 the joined table is
additively shared among all k: a party holds its own columns minus every other party's
masks, and its masks for every other party's columns (:data:`Held.ADDITIVE_SHARES`),
and no Paillier key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..crypto import hashing, paillier
from ..crypto.packing import Packing
from ..errors import InputError, PeerProtocolError
from ..protocol import messages as msg
from ..protocol.roster import TTP
from ..protocol.rules import check_intersection
from ..protocol.steps import Step
from ..protocol.wire import BigIntArray
from .actor import Actor
from .executor import SecretKeyWork
from .hooks import Held
from .pipeline import run_ordered

__all__ = ["DataParty"]


@dataclass
class _State:
    """What a data party carries from one step to the next (secrets live in the vault)."""

    order: list[int] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    public: paillier.PublicKey | None = None
    #: every other data party's public key, by name
    others_public: dict[str, paillier.PublicKey] = field(default_factory=dict)
    packing: Packing | None = None
    per_row: int = 0
    #: our step-5 masks for each other data party's columns, by name (rows in the TTP's order)
    masks: dict[str, list[list[int]]] = field(default_factory=dict)


class DataParty:
    """The steps of one data party, over its :class:`Actor`."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        config = actor.config
        self.own_columns = config.columns_of(actor.role)
        #: the other data parties, in roster order
        self.others = tuple(p for p in actor.roster.data_parties if p != actor.role)
        #: every column is masked by each other data party
        self.maskers = len(self.others)
        if tuple(actor.table.columns) != tuple(self.own_columns):
            raise InputError(
                f"{actor.role}'s table has columns {list(actor.table.columns)}, the run expects {list(self.own_columns)}"
            )
        self.state = _State()
        self.keys: SecretKeyWork | None = None

    async def run(self) -> None:
        a = self.actor
        await a.in_step(Step.PREPARE, self.prepare)
        await a.in_step(Step.KEYED_HASHING, self.keyed_hashing)
        await a.in_step(Step.ENCRYPT, self.make_keys)
        observer = a.observer
        retired = None if observer is None else lambda w: observer.key_destroyed(a.role, "secret_key_workers", w)
        async with a.executor.secret_key_scope(a.vault["paillier_secret"], retired=retired) as self.keys:
            await a.in_step(Step.INTERSECT, self.send_rows)
            await a.in_step(Step.MASKS, self.send_masks)
            await a.in_step(Step.MASK_AND_FORWARD, self.decrypt_masked)
        self.keys = None
        # still step 6: the key dies once no worker process holds it any more
        a.vault.destroy("paillier_secret")
        self.state = _State()

    async def prepare(self) -> None:
        """Step 1: the table was validated before the run; shuffle with a CSPRNG so the
        TTP cannot learn anything from the order rows arrive in."""
        a = self.actor
        order = list(range(len(a.table)))
        a.hooks.shuffle(order)
        self.state.order = order
        a.hold(Held.INPUT, a.table)

    async def keyed_hashing(self) -> None:
        """Step 2: the joint key from every data party's contribution, every id hashed, the key destroyed."""
        a = self.actor
        mine = hashing.contribution()
        for other in self.others:
            await a.send(other, msg.HashContribution(mine))
        theirs = [(await a.expect(other, msg.HashContribution)).value for other in self.others]
        key = a.vault.create("hash_key", hashing.JointKey.from_contributions(mine, *theirs))
        ids = a.table.ids
        ordered = [ids[i] for i in self.state.order]
        self.state.hashes = await a.executor.run_secret(key.hash_ids, ordered)
        a.hold(Held.HASHED_IDS, self.state.hashes)
        a.vault.destroy("hash_key")

    async def make_keys(self) -> None:
        """Step 3: keys only. Encryption streams into step 4's transfer, so the table is
        never held encrypted in memory and cores encrypt while bytes move."""
        a, config = self.actor, self.actor.config
        public, secret = await a.executor.run_secret(
            lambda: paillier.generate_keypair(
                bits=config.key_bits, context=a.scheduler.session, _allow_insecure_test_size=config.allow_test_key_sizes
            )
        )
        a.vault.create("paillier_secret", secret)
        self.state.public = public
        for other in self.others:
            await a.send(other, msg.PublicKey(public.to_wire(), len(self.own_columns)))
        for other in self.others:
            theirs = await a.expect(other, msg.PublicKey)
            expected = len(config.columns_of(other))
            if theirs.columns != expected:
                raise PeerProtocolError(f"{other} announced {theirs.columns} columns, the run expects {expected}")
            self.state.others_public[other] = a.public_key_of(other, theirs.key)
        a.hold(Held.PUBLIC_KEYS, (public.to_wire(), *(k.to_wire() for k in self.state.others_public.values())))
        self.state.packing = Packing(a.params, public.n.bit_length(), maskers=self.maskers)
        self.state.per_row = self.state.packing.plaintexts_per_row(len(self.own_columns))

    async def send_rows(self) -> None:
        """Step 4: (hashed id, encrypted row) to the TTP, in the shuffled order; then ``m``."""
        a, state, keys = self.actor, self.state, self.keys
        assert state.public is not None and state.packing is not None and keys is not None
        public, packing = state.public, state.packing
        await a.send(TTP, msg.PublicKey(public.to_wire(), len(self.own_columns)))
        hashes, order, values = state.hashes, state.order, a.table.values
        state.hashes = []
        width = (2 * public.n.bit_length() + 7) // 8
        kept: list[int] | None = [] if a.observed else None

        async def encrypt(rows: range) -> list[int]:
            # our own key: the owner's CRT path (same ciphertexts, ~1.5x faster)
            return await keys.encrypt_raw(packing.pack_values(values[[order[i] for i in rows]]))

        def message(rows: range, ciphertexts: list[int]) -> msg.Message:
            if kept is not None:
                kept.extend(ciphertexts)
            return msg.Rows(b"".join(hashes[i] for i in rows), BigIntArray(tuple(ciphertexts), width))

        await a.stream_rows(TTP, len(hashes), encrypt, message, "rows encrypted and sent")
        await a.send(TTP, msg.RowsEnd(len(hashes)))
        if kept is not None:
            a.hold(Held.OWN_CIPHERTEXTS, kept)
        reply = await a.expect(TTP, msg.Intersection)
        a.intersection_size = m = reply.size
        a.hold(Held.INTERSECTION_SIZE, m)
        check_intersection(m, len(hashes), a.config.min_intersection, a.role)

    async def send_masks(self) -> None:
        """Step 5: masks for every other data party's columns, each encrypted under its
        owner's key, to the TTP: per row, one group of ciphertexts per other party in roster order."""
        a, keys = self.actor, self.keys
        config = a.config
        m = a.intersection_size
        assert keys is not None
        masks = {
            other: [a.hooks.draw_masks(a.params, len(config.columns_of(other))) for _ in range(m)]
            for other in self.others
        }
        self.state.masks = masks
        a.hold(Held.MASKS, [[r for other in self.others for r in masks[other][i]] for i in range(m)])
        targets = []
        for other, public in self.state.others_public.items():
            packing = Packing(a.params, public.n.bit_length(), maskers=self.maskers)
            targets.append((public.to_wire(), packing, packing.plaintexts_per_row(len(config.columns_of(other))), masks[other]))
        width = (2 * config.key_bits + 7) // 8

        async def encrypt(rows: range) -> list[int]:
            # the masks are our additive share of the other parties' columns: secret,
            # so they go where our key goes (never to workers that outlive the run)
            blocks = [
                (await keys.encrypt_under(wire, packing.pack_masks(theirs[rows.start : rows.stop])), per_row)
                for wire, packing, per_row, theirs in targets
            ]
            return [c for i in range(len(rows)) for block, n in blocks for c in block[i * n : (i + 1) * n]]

        def message(rows: range, ciphertexts: list[int]) -> msg.Message:
            return msg.Masks(BigIntArray(tuple(ciphertexts), width))

        await a.stream_rows(TTP, m, encrypt, message, "masks encrypted and sent")
        await a.send(TTP, msg.MasksEnd(m))

    async def decrypt_masked(self) -> None:
        """Step 6: decrypt our columns minus the other party's masks; with our own masks
        that is our additive share of the joined table."""
        a, state, keys = self.actor, self.state, self.keys
        assert state.packing is not None and keys is not None
        m, packing, per_row = a.intersection_size, state.packing, state.per_row
        d_own = len(self.own_columns)
        own_shares: list[list[int]] = []
        announced: list[int] = []
        batch = a.executor.batch_rows(a.config.chunk_rows) * per_row
        half_crt = packing.fits_half_crt(d_own)  # masked rows are far below p/2: half the work

        async def decrypt(values: list[int]) -> list[int]:
            try:
                return await keys.decrypt_raw(values, below_half_p=half_crt)
            except ValueError as exc:  # e.g. a value outside (0, n^2): the TTP's fault, not our bug
                raise PeerProtocolError(
                    f"{a.role}: at step {a.scheduler.step}: ttp sent masked values that do not decrypt: {exc}"
                ) from None

        async def jobs():  # decryption jobs, as masked chunks arrive
            received = 0
            while True:
                message = await a.expect(TTP, msg.Masked, msg.MaskedEnd)
                if isinstance(message, msg.MaskedEnd):
                    announced.append(message.rows)
                    return
                values = list(message.ciphertexts)
                received += len(values)
                if len(values) % per_row or received > m * per_row:
                    raise PeerProtocolError("ttp sent a masked chunk of the wrong size")
                for start in range(0, len(values), batch):
                    part = values[start : start + batch]
                    yield lambda part=part: decrypt(part)

        async def unpack(plain: list[int]) -> None:
            try:
                own_shares.extend(packing.unpack_shares(plain, d_own))
            except ValueError as exc:
                raise PeerProtocolError(f"ttp sent masked values that do not unpack: {exc}") from None
            a.report(len(own_shares), m, "rows decrypted")

        await run_ordered(jobs(), unpack, limit=a.executor.inflight())
        if announced != [m] or len(own_shares) != m:
            raise PeerProtocolError(f"ttp sent {len(own_shares)} masked rows, announced {announced}, expected {m}")
        a.hold(Held.MASKED_VALUES, own_shares)
        # the additive sharing of the joined table, in the roster's column order: our
        # columns from the decryption, every other party's columns are our own masks
        masks, state.masks = state.masks, {}
        parts = [own_shares if party == a.role else masks[party] for party in a.roster.data_parties]
        additive = [[v for part in row for v in part] for row in zip(*parts, strict=True)]
        for rows in masks.values():
            rows.clear()
        a.vault.create("additive_shares", additive)
        a.hold(Held.ADDITIVE_SHARES, additive)
