"""Three actors in one process: the shared table is the plaintext join, keys really die,
failures stop everyone cleanly, and the TTP's bytes hold no plaintext."""

from __future__ import annotations

import gc
import struct
from collections import Counter

import numpy as np
import pytest
import trio

from mpcactors import codec
from mpcactors.crypto.hashing import normalise_id
from mpcactors.data import plaintext_join
from mpcactors.errors import KeyDestroyedError, StepTimeout
from mpcactors.errors import IntersectionTooSmall
from mpcactors.sim import GodView, simulate
from mpcactors.transport.base import Record

from mpcactors.testing import fast_config, tables_for


def assert_shared_table_is_the_join(simulation, hospital, insurer):
    columns, expected = plaintext_join(hospital, insurer)
    actual = simulation.god_view.joined_table(simulation.config)
    assert tuple(columns) == simulation.config.joined_columns
    assert len(actual) == len(expected) == simulation.intersection_size
    assert Counter(map(tuple, actual.tolist())) == Counter(map(tuple, expected.tolist()))


@pytest.mark.parametrize("overlap", [0.01, 0.5, 1.0])
async def test_shared_table_equals_plaintext_join(overlap):
    hospital, insurer = tables_for(300, overlap, seed=3, intervention=False)  # 3 shared rows survive at 0.01
    assert hospital.dropped_missing + insurer.dropped_missing > 0  # rows with missing values exist and are dropped
    config = fast_config(hospital, insurer, lasso=False)
    simulation = await simulate((hospital, insurer), config, verify=True)
    assert simulation.verified is True
    assert_shared_table_is_the_join(simulation, hospital, insurer)
    # every party learns m and nothing more about the overlap
    assert {p.intersection_size for p in simulation.parties.values()} == {len(plaintext_join(hospital, insurer)[1])}


class DeletionProver(GodView):
    """Checks at each deletion that the key refuses use, and later that nothing keeps it alive."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[tuple[str, str]] = []
        self.pending: list[tuple[str, str, object]] = []  # (role, name, weakref) to check at the next step

    def key_destroyed(self, role, name, key):
        super().key_destroyed(role, name, key)
        use = {
            "hash_key": lambda: key.hash_ids(["x"]),
            "paillier_secret": lambda: key.decrypt_raw([1]),
            "mpc_state": lambda: key.setup(),
        }.get(name)
        if use is not None:
            with pytest.raises(KeyDestroyedError):
                result = use()
                if hasattr(result, "__next__"):
                    next(result)
            self.refused.append((role, name))
        import weakref

        self.pending.append((role, name, weakref.ref(key)))

    def hold(self, role, step, name, value):
        super().hold(role, step, name, value)
        # after a deletion point, by the time the party holds something new, no reference
        # to the destroyed key may remain in the actor, its scheduler or its executor
        gc.collect()
        for who, what, ref in self.pending:
            if who == role:
                assert ref() is None, f"{role}'s {what} is still referenced after its deletion"
        self.pending = [p for p in self.pending if p[0] != role]


async def test_keys_are_destroyed_and_unreachable(small_tables):
    hospital, insurer = small_tables
    prover = DeletionProver()
    simulation = await simulate((hospital, insurer), fast_config(hospital, insurer, lasso=False), observer=prover)
    gc.collect()
    created = {(role, name) for role, name, _ in prover.keys}
    assert {("hospital", "hash_key"), ("insurer", "hash_key"), ("hospital", "paillier_secret"),
            ("insurer", "paillier_secret"), ("ttp", "mpc_state")} <= created
    assert all(ref() is None for _, _, ref in prover.keys), "a key object outlived the run"
    assert all(flag for _, _, flag in prover.destroyed)
    assert {("hospital", "hash_key"), ("insurer", "paillier_secret"), ("ttp", "mpc_state")} <= set(prover.refused)
    deleted = {(e["party"], e["step"]): e["deleted"] for e in simulation.document()["steps"]}
    assert "hash_key" in deleted[("hospital", 2)] and "paillier_secret" in deleted[("insurer", 6)]
    assert "additive_shares" in deleted[("hospital", 7)] and "hashed_ids" in deleted[("ttp", 4)]


async def test_intersection_below_minimum_aborts_everyone_cleanly():
    hospital, insurer = tables_for(100, 0.05, seed=1)
    config = fast_config(hospital, insurer, min_intersection=10)
    prover = DeletionProver()
    with pytest.raises(IntersectionTooSmall, match="below the minimum of 10"):
        await simulate((hospital, insurer), config, observer=prover)
    gc.collect()
    assert all(ref() is None for _, _, ref in prover.keys)
    assert "shamir_shares" not in prover.held["hospital"]  # nothing was computed past step 4


async def test_a_stalled_peer_gives_a_step_timeout(small_tables, autojump_clock, monkeypatch):
    hospital, insurer = small_tables
    config = fast_config(hospital, insurer, lasso=False, deadlines={s: 5.0 for s in range(1, 10)})
    from mpcactors.actors.ttp import Ttp

    async def never_answer(self):
        await trio.sleep_forever()

    monkeypatch.setattr(Ttp, "run", never_answer)
    with pytest.raises(StepTimeout, match=r"waiting for intersection from ttp at step 4"):
        await simulate((hospital, insurer), config)


def needles(hospital, insurer):
    """Byte patterns a leaked plaintext id or attribute value would show up as.

    Ids as text (raw and normalised); each encoded value as msgpack would carry it (int
    and float), as the offset slot value a packed plaintext holds, and its decimal text
    when at least 5 characters long (shorter strings occur in random bytes by chance).
    """
    scale = float(1 << 24)
    offset = 1 << 44
    found = set()
    for table in (hospital, insurer):
        for raw in table.ids:
            found.add(raw.encode())
            found.add(normalise_id(raw).encode())
        for v in np.unique(table.values):
            v = int(v)
            x = v / scale
            found.add(codec.encode(v))
            found.add(codec.encode(x))
            found.add(struct.pack(">Q", v + offset))
            text = f"{x:g}"
            if len(text) >= 5:
                found.add(text.encode())
    return {n for n in found if len(n) >= 5}  # 1-4 byte patterns (e.g. msgpack 0) occur anywhere


async def test_ttp_receives_no_plaintext_id_or_value():
    hospital, insurer = tables_for(150, 0.5, seed=11)
    records: list[Record] = []
    config = fast_config(hospital, insurer, lasso=False)
    await simulate((hospital, insurer), config, recorder=records.append)
    to_ttp = b"".join(r.data for r in records if r.receiver == "ttp")
    assert len(to_ttp) > 100_000  # the TTP really received the tables
    leaked = [n for n in needles(hospital, insurer) if n in to_ttp]
    assert leaked == []
    # and the check can fail: a message that carried plaintext would be caught
    leaky = codec.encode({"age": int(hospital.values[0, 0]), "id": hospital.ids[0]})
    assert sum(n in leaky for n in needles(hospital, insurer)) >= 2


async def test_a_peer_key_of_another_size_than_agreed_is_refused_naming_the_peer(small_tables):
    # the hospital was configured with 512-bit keys, everyone else agreed on 1024
    from mpcactors.actors import run_party
    from mpcactors.errors import PeerProtocolError
    from mpcactors.transport.memory import memory_mesh

    hospital, insurer = small_tables
    agreed = fast_config(hospital, insurer, lasso=False)
    configs = {"hospital": fast_config(hospital, insurer, lasso=False, key_bits=512), "insurer": agreed, "ttp": agreed}
    tables = {"hospital": hospital, "insurer": insurer, "ttp": None}
    links = memory_mesh(agreed.roster.members)
    errors = {}

    async def one(role):
        try:
            await run_party(role, links[role], session=b"S" * 16, config=configs[role], table=tables[role])
        except Exception as exc:  # noqa: BLE001 - each party's own error
            errors[role] = exc

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for role in configs:
                nursery.start_soon(one, role)
    refused = errors["insurer"]
    assert isinstance(refused, PeerProtocolError)
    assert "insurer: at step 3: hospital sent a Paillier public key that is refused" in str(refused)
    assert "modulus has 512 bits; the run agreed on 1024" in str(refused)
