"""More than two data parties: the shared table is the k-way inner join, the model is scikit-learn's.

For k = 2, 3 and 5 data parties (the first two compute with the TTP, the others deal
their shares in step 7 and then hold nothing), the Shamir-shared joined table must equal
the plaintext k-way inner join as a multiset of rows, and the secure lasso must match
scikit-learn's ``Lasso`` on it within 1e-3 of the largest coefficient (the project's MPC
tolerance: fixed-point rounding of order 2**-24 through about a hundred iterations).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mpcactors.data import table_from_rows
from mpcactors.errors import IntersectionTooSmall
from mpcactors.protocol.roster import default_names
from mpcactors.sim import GodView, simulate
from mpcactors.testing import fast_config, tables_for


def extra_table(name: str, ids, seed: int, keep: float = 0.85):
    """A small table for a party beyond the first two: two columns, most of the ids."""
    rng = np.random.default_rng(seed)
    rows = [[pid, f"{rng.normal(3, 1):.3f}", str(int(rng.integers(1, 8)))] for pid in ids if rng.random() < keep]
    return table_from_rows(f"{name}.csv", ["id", f"{name}_score", f"{name}_level"], rows, min_rows=2)


def session(k: int, *, rows: int = 120, target: str = "hospital_days", **changes):
    hospital, insurer = tables_for(rows, 0.6, seed=3)
    names = default_names(k)
    tables = {names[0]: hospital, names[1]: insurer}
    for n, name in enumerate(names[2:]):
        tables[name] = extra_table(name, hospital.ids, seed=10 + n)
    config = replace(
        fast_config(hospital, insurer, max_iter=200, **changes),
        columns={name: table.columns for name, table in tables.items()}, target=target,
    )
    return tables, config


@pytest.mark.parametrize("k", [2, 3, pytest.param(5, marks=pytest.mark.slow)])
async def test_the_shared_table_is_the_k_way_join_and_the_lasso_matches_sklearn(k):
    tables, config = session(k)
    simulation = await simulate(tables, config, verify=True)
    assert simulation.verification["table_matches"] and simulation.verification["shared_rows"] > 10
    assert simulation.verification["lasso"]["max_relative_difference"] <= 1e-3
    assert simulation.verified is True
    # every data party (the default plan's recipients) ends with the same model and the same
    # description, and says who owns each column; the TTP receives neither
    documents = [simulation.parties[name].document() for name in config.roster.data_parties]
    assert all(d["result"] == documents[0]["result"] and d["outputs"] == documents[0]["outputs"] for d in documents)
    assert set(documents[0]["result"]["owners"].values()) == set(config.roster.data_parties)
    assert simulation.parties["ttp"].outputs == {} and simulation.parties["ttp"].result is None


@pytest.mark.slow
async def test_a_target_owned_outside_the_computation_is_scaled_by_its_owner():
    tables, config = session(3, target="cbs_score")
    simulation = await simulate(tables, config, verify=True)
    assert simulation.parties["cbs"].result_document()["owners"]["cbs_level"] == "cbs"
    assert simulation.verification["lasso"]["max_relative_difference"] <= 1e-3


async def test_a_data_party_outside_the_computation_holds_nothing_after_step_7():
    tables, config = session(3)
    watch = GodView()
    simulation = await simulate(tables, config, observer=watch)
    deleted = {(e["party"], e["step"]): e["deleted"] for e in simulation.document()["steps"]}
    assert "additive_shares" in deleted[("cbs", 7)]
    assert "shamir_shares" not in watch.held["cbs"] and "shamir_shares" in watch.held["hospital"]
    assert simulation.parties["cbs"].result is not None  # it still receives the output


async def test_a_party_whose_ids_meet_no_one_elses_stops_everyone_cleanly():
    tables, config = session(3)
    tables["cbs"] = table_from_rows(
        "cbs.csv", ["id", "cbs_score", "cbs_level"], [[f"X{n}", "1", "2"] for n in range(40)], min_rows=2
    )
    with pytest.raises(IntersectionTooSmall, match="the intersection has 0 rows"):
        await simulate(tables, config)


async def test_the_ttp_receives_no_plaintext_id_or_value_from_three_parties():
    from mpcactors import codec
    from mpcactors.crypto.hashing import normalise_id

    tables, config = session(3, rows=150)
    records = []
    await simulate(tables, replace(config, lasso=False), recorder=records.append)
    to_ttp = b"".join(r.data for r in records if r.receiver == "ttp")
    assert len(to_ttp) > 100_000  # the TTP really received the three tables and the masks
    scale = float(1 << config.params.frac_bits)
    needles = set()
    for table in tables.values():
        for raw in table.ids:
            needles |= {raw.encode(), normalise_id(raw).encode()}
        for v in np.unique(table.values):
            needles |= {codec.encode(int(v)), codec.encode(int(v) / scale)}
            if len(text := f"{int(v) / scale:g}") >= 5:
                needles.add(text.encode())
    needles = {n for n in needles if len(n) >= 5}  # shorter patterns occur in random bytes
    assert [n for n in needles if n in to_ttp] == []
    assert sum(n in codec.encode({"id": tables["cbs"].ids[0]}) for n in needles) >= 1  # the check can fail


async def test_chunks_larger_than_a_worker_batch_keep_every_party_s_masks_aligned():
    # under the thread and process policies a chunk is computed in batches of 64 rows;
    # each row's masks for the k - 1 other parties must stay together whatever the batching
    from mpcactors.actors import Executor

    tables, config = session(3, rows=300, chunk_rows=256, lasso=False)
    simulation = await simulate(tables, config, executor=Executor("thread", workers=2), verify=True)
    assert simulation.verification["shared_rows"] > 128 and simulation.verified is True
