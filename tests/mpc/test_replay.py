"""The replay engine (mpc/replay.py): a party outside the computation decodes its outputs by
running the analysis program on the delivered openings. It must get the compute parties'
result, and refuse deliveries that do not fit the program."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mpcactors.crypto import shamir
from mpcactors.crypto.fixedpoint import Params
from mpcactors.errors import PeerProtocolError
from mpcactors.mpc.describe import describe_fit
from mpcactors.mpc.engine import Engine, run_local
from mpcactors.mpc.replay import ReplayEngine, replay

PARAMS = Params()


def described(x: np.ndarray):
    """describe_fit at three engines; returns the result and the (label, values) they opened."""
    m, d = x.shape
    flat = shamir.share([v for row in x for v in PARAMS.encode(row)], random.Random(1), PARAMS.prime)
    engines = {i: Engine(i, PARAMS, b"replay") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    opened: list[tuple[str, list[int]]] = []
    original = Engine.reveal

    def recording(self, a, label):
        values = yield from original(self, a, label)
        if self.party == 1:
            opened.append((label, values))
        return values

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Engine, "reveal", recording)
        results = run_local({
            i: describe_fit(e, [flat[i][r * d:(r + 1) * d] for r in range(m)], m=m, columns=["a", "b"], min_cell=3)
            for i, e in engines.items()
        })
    return results[1], opened


def replayed(opened, m: int):
    engine = ReplayEngine(PARAMS, opened)
    return replay(describe_fit(engine, [[0, 0]] * m, m=m, columns=["a", "b"], min_cell=3), engine)


def test_the_replay_of_the_delivered_openings_is_the_compute_parties_result() -> None:
    x = np.random.default_rng(3).normal(5, 2, (30, 2))
    result, opened = described(x)
    assert replayed(opened, 30) == result


@pytest.mark.parametrize(("change", "message"), [
    (lambda o: o[:-1], "fewer openings than the analysis makes"),
    (lambda o: [*o, ("extra", [1])], "more openings than the analysis makes"),
    (lambda o: [("mean", o[0][1][:-1]), *o[1:]], "delivered 1 values labelled 'mean' where the analysis opens 2"),
    (lambda o: [("sd", o[0][1]), *o[1:]], "labelled 'sd' where the analysis opens 2 labelled 'mean'"),
])
def test_deliveries_that_do_not_fit_the_program_are_refused(change, message) -> None:
    x = np.random.default_rng(4).normal(0, 1, (20, 2))
    _, opened = described(x)
    with pytest.raises(PeerProtocolError, match=message):
        replayed(change(opened), 20)
