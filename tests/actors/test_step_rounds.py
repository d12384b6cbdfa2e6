"""The run document counts step 8's MPC rounds: the figure a wide-area link's latency multiplies.

`benchmarks/wan.py` reads ``rounds`` from the parties' step entries and predicts the
network time as ``rounds x RTT/2`` (docs/benchmarks.md). The oracle is the program itself:
the lasso run on its own by ``run_local`` with the same public shape (m, d, owners, target
owner, max_iter) yields exactly that many exchanges. With ``max_iter = 5`` the loop ends
at its one check whatever the data, so the count depends on the shape only.
"""

from __future__ import annotations

import random
from dataclasses import replace

from mpcactors.crypto.fixedpoint import Params
from mpcactors.mpc.engine import Engine, run_local
from mpcactors.mpc.lasso import lasso_fit
from mpcactors.plan import Plan, default_plan
from mpcactors.sim import simulate
from mpcactors.testing import fast_config, tables_for


def _counted(program, counter: list[int]):
    """Drive ``program`` and count the exchanges it yields."""
    received = None
    try:
        while True:
            exchange = program.send(received)
            counter[0] += 1
            received = yield exchange
    except StopIteration as stop:
        return stop.value


async def test_every_compute_party_reports_the_lasso_programs_round_count() -> None:
    hospital, insurer = tables_for(60, 0.7, seed=3)
    config = fast_config(hospital, insurer, max_iter=5)
    lasso = default_plan(config).analysis("lasso")  # a plan of the lasso alone
    config = replace(config, plan=Plan("the lasso alone", (lasso,)))
    simulation = await simulate((hospital, insurer), config)
    document = simulation.document()
    rounds = {e["party"]: e["rounds"] for e in document["steps"] if e["step"] == 8}
    assert set(rounds) == {"hospital", "insurer", "ttp"} and len(set(rounds.values())) == 1
    assert all(e["rounds"] == 0 for e in document["steps"] if e["step"] not in (7, 8))

    result = document["result"]
    index = {"hospital": 1, "insurer": 2}
    owners = [index[o] for o in result["owners"].values()]
    d, m = len(owners), document["intersection_size"]
    params = Params()
    rng = random.Random(0)
    engines = {i: Engine(i, params, b"rounds oracle") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    counters = {i: [0] for i in (1, 2, 3)}
    scales = {1: {j: 1.0 for j in range(d) if owners[j] == 1}, 2: {j: 1.0 for j in range(d) if owners[j] == 2} | {d: 1.0}, 3: {}}
    run_local({
        i: _counted(lasso_fit(
            engines[i], [[rng.randrange(1 << 20) for _ in range(d)] for _ in range(m)],
            [rng.randrange(1 << 20) for _ in range(m)], m=m, d=d, owners=owners, scales=scales[i],
            alpha=config.alpha, max_iter=5, target_owner=2,
        ), counters[i])
        for i in (1, 2, 3)
    })
    assert result["iterations"] == 5
    assert counters[1][0] == counters[3][0] == rounds["hospital"]
