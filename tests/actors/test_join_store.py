"""The TTP's join on disk gives the same joined table as the in-memory join, and leaves no file.

The oracle is the plaintext inner join (``simulate(..., verify=True)`` compares the
Shamir-shared table with it as a multiset of rows). ``SPILL_ROWS`` is lowered so that
small tables take the disk path the TTP takes above the threshold.
"""

from __future__ import annotations

import stat
from dataclasses import replace

import numpy as np
import pytest

from mpcactors.actors import join_store
from mpcactors.actors.hooks import Hooks
from mpcactors.errors import PeerProtocolError
from mpcactors.data import table_from_rows
from mpcactors.protocol.roster import default_names
from mpcactors.sim import simulate
from mpcactors.testing import fast_config, tables_for


def session(k: int, rows: int):
    """Two test tables and, with k = 3, a third party's table on most of the same ids."""
    hospital, insurer = tables_for(rows, 0.6, seed=3)
    names = default_names(k)
    tables = {names[0]: hospital, names[1]: insurer}
    if k == 3:
        rng = np.random.default_rng(10)
        extra = [[pid, f"{rng.normal(3, 1):.3f}"] for pid in hospital.ids if rng.random() < 0.85]
        tables[names[2]] = table_from_rows("cbs.csv", ["id", "cbs_score"], extra, min_rows=2)
    config = replace(
        fast_config(hospital, insurer, lasso=False, chunk_rows=16),
        columns={name: table.columns for name, table in tables.items()},
    )
    return tables, config


@pytest.fixture
def spill(monkeypatch, tmp_path):
    """Every run spills (after the first chunk), into ``tmp_path`` (as TMPDIR)."""
    monkeypatch.setattr(join_store, "SPILL_ROWS", 0)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("k", [2, 3])
async def test_the_join_on_disk_gives_the_plaintext_join(spill, k):
    tables, config = session(k, 150)
    seen = []

    def at_step(role, step):  # the spill directory exists, is private, and holds no plaintext
        if role == "ttp" and step == 5:
            (directory,) = spill.iterdir()
            seen.append(stat.S_IMODE(directory.stat().st_mode))
            blob = b"".join(f.read_bytes() for f in directory.iterdir())
            seen.append(any(pid.encode() in blob for pid in tables[config.roster.data_parties[0]].ids))

    simulation = await simulate(tables, config, verify=True, hooks=Hooks(at_step=at_step))
    assert simulation.verification["table_matches"] and simulation.verification["shared_rows"] > 10
    assert seen == [0o700, False]
    assert list(spill.iterdir()) == []  # deleted at the end of the run


@pytest.mark.parametrize("failing", ["ttp", "hospital"])
async def test_the_files_are_deleted_when_the_run_fails(spill, failing):
    """The TTP fails itself, or is stopped because a data party failed (cancelled)."""
    tables, config = session(2, 150)

    def at_step(role, step):
        if role == failing and step == 6:
            assert len(list(spill.iterdir())) == 1
            raise RuntimeError(f"injected failure at {failing}'s step 6")

    with pytest.raises(RuntimeError, match="injected"):
        await simulate(tables, config, hooks=Hooks(at_step=at_step))
    assert list(spill.iterdir()) == []


def test_duplicate_digests_are_refused_and_the_join_matches_a_dict_join(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    rng = np.random.default_rng(5)
    digests = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)) for _ in range(3000)]
    digests[7] = digests[7][:20] + bytes(12)  # trailing zero bytes must still match exactly
    a, b = digests[:2000], digests[1000:] + digests[:300]
    b = [b[i] for i in rng.permutation(len(b))]
    with join_store.SpillJoin({"a": 4, "b": 4}, ciphertext_bytes={"a": 4, "b": 4}) as store:
        for party, rows in (("a", a), ("b", b)):
            for start in range(0, len(rows), 700):
                part = rows[start : start + 700]
                store.add(party, b"".join(part), join_store.to_records(range(start, start + len(part)), 4, party))
        m = store.join()
        position = {d: i for i, d in enumerate(b)}
        expected = sorted((i, position[d]) for i, d in enumerate(a) if d in position)
        assert m == len(expected) == 1300
        pairs = list(zip(store.joined_rows("a", range(m)), store.joined_rows("b", range(m)), strict=True))
        assert sorted(pairs) == expected  # the ciphertext records follow their digests
    with join_store.SpillJoin({"a": 4}, ciphertext_bytes={"a": 4}) as store:
        store.add("a", b"".join(a[:5] + a[3:4]), bytes(24))
        with pytest.raises(PeerProtocolError, match="a sent the same hashed id twice"):
            store.join()
    assert list(tmp_path.iterdir()) == []
