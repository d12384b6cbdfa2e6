"""The whole protocol (steps 1-8) against scikit-learn's Lasso on the plaintext join.

Tolerance: every coefficient, the intercept and R^2 within 1e-3 of scikit-learn's,
relative to the largest coefficient (the lasso issue's criterion). The only
differences are fixed-point rounding of the inputs (which scikit-learn sees too, since
it fits the decoded fixed-point values) and the MPC's fixed-point arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from mpcactors.codec import BigIntArray, decode_envelope
from mpcactors.config import RunConfig
from mpcactors.crypto.fixedpoint import Params
from mpcactors.data import table_from_rows
from mpcactors.sim import simulate

HOSPITAL_FEATURES = ["age", "sex", "bmi", "bp", "s1"]
INSURER_FEATURES = ["s2", "s3", "s4", "s5", "s6"]


def diabetes_split(seed: int = 0, overlap: float = 0.8):
    """Raw (unscaled) diabetes data, columns split between the parties, rows partially shared."""
    data = load_diabetes(scaled=False)
    x, y = data.data, data.target
    names = list(data.feature_names)
    rng = np.random.default_rng(seed)
    n = len(y)
    ids = [f"P{k:05d}" for k in rng.permutation(10_000)[:n]]
    shared = set(rng.choice(n, size=int(overlap * n), replace=False).tolist())
    rest = [k for k in range(n) if k not in shared]
    hospital_rows_idx = sorted(shared | set(rest[: len(rest) // 2]))
    insurer_rows_idx = sorted(shared | set(rest[len(rest) // 2 :]))

    def fmt(v: float) -> str:
        return repr(float(v))

    h_cols = [names.index(c) for c in HOSPITAL_FEATURES]
    i_cols = [names.index(c) for c in INSURER_FEATURES]
    hospital = table_from_rows(
        "<diabetes hospital>", ["id", *HOSPITAL_FEATURES],
        ([ids[k], *(fmt(x[k, c]) for c in h_cols)] for k in hospital_rows_idx),
        id_column="id", columns=None, params=Params(), min_rows=10,
    )
    insurer = table_from_rows(
        "<diabetes insurer>", ["id", *INSURER_FEATURES, "progression"],
        ([ids[k], *(fmt(x[k, c]) for c in i_cols), fmt(y[k])] for k in insurer_rows_idx),
        id_column="id", columns=None, params=Params(), min_rows=10,
    )
    return hospital, insurer


@pytest.mark.parametrize("alpha", [pytest.param(0.5, marks=pytest.mark.slow), 300.0])
async def test_diabetes_split_between_parties_matches_sklearn(alpha):
    hospital, insurer = diabetes_split()
    config = RunConfig.for_parties(
        tuple(hospital.columns), tuple(insurer.columns), target="progression",
        key_bits=1024, allow_test_key_sizes=True, alpha=alpha, chunk_rows=128,
    )
    simulation = await simulate((hospital, insurer), config, verify=True)
    lasso = simulation.verification["lasso"]
    assert simulation.verification["table_matches"]
    assert lasso["max_relative_difference"] <= 1e-3, lasso
    assert simulation.result.converged
    zeros = sum(abs(c) < 1e-9 for c in lasso["sklearn"]["coefficients"].values())
    if alpha == 300.0:
        assert zeros >= 6  # this alpha zeroes most coefficients, and ours agree
        assert sum(abs(c) < 1e-3 * max(map(abs, simulation.result.coefficients)) for c in simulation.result.coefficients) >= zeros


async def test_step8_wire_carries_only_field_shares_and_reveals_only_outputs(small_tables):
    from mpcactors.testing import fast_config

    hospital, insurer = small_tables
    records = []
    config = fast_config(hospital, insurer, max_iter=40)
    progress = []
    simulation = await simulate(
        (hospital, insurer), config, recorder=records.append,
        progress=lambda role, step, done, total, unit: progress.append((role, step, done, total, unit)),
    )
    step8 = [decode_envelope(r.data) for r in records if r.step == 8]
    assert step8, "step 8 exchanged messages"
    prime = Params().prime
    for env in step8:
        assert env.kind == "mpc"
        assert set(env.body) == {"round", "label", "values"}
        values = env.body["values"]
        assert isinstance(values, BigIntArray) and values.width == 24
        assert all(0 <= v < prime for v in values)
    # what the lasso opened: one bit per convergence check, then the model, nothing else
    iterations = simulation.result.iterations
    for role in ("hospital", "insurer", "ttp"):
        revealed = [(label, n) for analysis, label, n in simulation.parties[role].revealed if analysis == "lasso"]
        assert {label for label, _ in revealed} == {"converged", "result"}
        checks = [count for label, count in revealed if label == "converged"]
        assert checks == [1] * len(checks) and len(checks) == -(-iterations // 5)
        d = len(config.features)
        assert revealed[-1] == ("result", d + 2)  # coefficients, intercept, R^2
    # the default plan's recipients are the data parties: the TTP opened the model for them
    # (it sent its shares) but received none, so it has no model
    docs = {role: p.result_document() for role, p in simulation.parties.items()}
    assert docs["hospital"] == docs["insurer"] is not None and docs["ttp"] is None
    # step 8 reports its iterations as it goes, for every party, ending at the revealed count
    for role in ("hospital", "insurer", "ttp"):
        seen = [(done, total) for r, step, done, total, unit in progress if r == role and step == 8]
        assert seen and all(total == 40 for _, total in seen)
        assert [done for done, _ in seen] == sorted(done for done, _ in seen)
        assert seen[-1][0] == min(-(-iterations // 5) * 5, 40)
