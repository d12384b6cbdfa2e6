"""The whole protocol (steps 1-8) on public data sets split column-wise between two
parties, against the oracles on the plaintext join: scikit-learn's ``Lasso`` and
statsmodels' ``OLS`` on the diabetes data, statsmodels' ``Logit`` on the breast-cancer data.

Tolerances, as each kind's docs state: the lasso's coefficients, intercept and R^2 within
1e-3 of scikit-learn's, relative to the largest coefficient; linear's estimates, standard
errors, R^2 and residual variance within 1e-6 relative; logistic's estimates and standard
errors within 1e-4 relative. The only differences are fixed-point rounding of the inputs
(which the oracles see too, since they fit the decoded fixed-point values) and the MPC's
fixed-point arithmetic.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.datasets import load_breast_cancer, load_diabetes

from mpcactors.codec import BigIntArray, decode_envelope
from mpcactors.config import RunConfig
from mpcactors.crypto.fixedpoint import Params
from mpcactors.data import table_from_rows
from mpcactors.plan import Analysis, Linear, Logistic, Plan
from mpcactors.sim import simulate

HOSPITAL_FEATURES = ["age", "sex", "bmi", "bp", "s1"]
INSURER_FEATURES = ["s2", "s3", "s4", "s5", "s6"]


def split(
    name: str, x: np.ndarray, y: np.ndarray, names: list[str], hospital: list[str], insurer: list[str], target: str,
    *, seed: int = 0, overlap: float = 0.8,
):
    """Raw (unscaled) data, columns split between the parties (the target at the insurer),
    ``overlap`` of the rows at both, the rest at one party each."""
    rng = np.random.default_rng(seed)
    n = len(y)
    ids = [f"P{k:05d}" for k in rng.permutation(10_000)[:n]]
    shared = set(rng.choice(n, size=int(overlap * n), replace=False).tolist())
    rest = [k for k in range(n) if k not in shared]
    hospital_rows = sorted(shared | set(rest[: len(rest) // 2]))
    insurer_rows = sorted(shared | set(rest[len(rest) // 2 :]))

    def fmt(v: float) -> str:
        return repr(float(v))

    h_cols = [names.index(c) for c in hospital]
    i_cols = [names.index(c) for c in insurer]
    hospital_table = table_from_rows(
        f"<{name} hospital>", ["id", *hospital],
        ([ids[k], *(fmt(x[k, c]) for c in h_cols)] for k in hospital_rows),
        id_column="id", columns=None, params=Params(), min_rows=10,
    )
    insurer_table = table_from_rows(
        f"<{name} insurer>", ["id", *insurer, target],
        ([ids[k], *(fmt(x[k, c]) for c in i_cols), fmt(y[k])] for k in insurer_rows),
        id_column="id", columns=None, params=Params(), min_rows=10,
    )
    return hospital_table, insurer_table


def diabetes_split(seed: int = 0, overlap: float = 0.8):
    data = load_diabetes(scaled=False)
    return split("diabetes", data.data, data.target, list(data.feature_names), HOSPITAL_FEATURES, INSURER_FEATURES,
                 "progression", seed=seed, overlap=overlap)


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


def config_for(hospital, insurer, target: str, analysis: Analysis) -> RunConfig:
    config = RunConfig.for_parties(
        tuple(hospital.columns), tuple(insurer.columns), target=target,
        key_bits=1024, allow_test_key_sizes=True, chunk_rows=128,
    )
    return replace(config, plan=Plan(analysis.name, (analysis,)))


async def test_diabetes_split_between_parties_linear_matches_statsmodels():
    """OLS with standard errors on all ten raw attributes, five at each party; the t
    statistics, p-values and intervals the hospital receives are statsmodels' too."""
    hospital, insurer = diabetes_split()
    model = Linear("progression", tuple(HOSPITAL_FEATURES + INSURER_FEATURES))
    config = config_for(hospital, insurer, "progression", Analysis("progression", model, ("hospital",)))
    simulation = await simulate((hospital, insurer), config, verify=True)
    check = simulation.verification["analyses"]["progression"]
    assert simulation.verification["table_matches"] and check["within_tolerance"], check
    output = simulation.parties["hospital"].outputs["progression"]
    data = simulation.god_view.joined_table(config).astype(float) / 2**config.params.frac_bits
    columns = list(config.joined_columns)
    reference = sm.OLS(data[:, columns.index("progression")],
                       sm.add_constant(data[:, [columns.index(c) for c in model.features]])).fit()
    rows = [output["intercept"], *(output["coefficients"][c] for c in model.features)]
    ci = reference.conf_int()
    for k, row in enumerate(rows):
        assert row["t"] == pytest.approx(reference.tvalues[k], rel=2e-6)
        assert row["p"] == pytest.approx(reference.pvalues[k], rel=1e-5, abs=1e-12)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(ci[k]), rel=2e-6)
    assert output["r2_adj"] == pytest.approx(reference.rsquared_adj, rel=1e-6)


@pytest.mark.slow
async def test_breast_cancer_split_between_parties_logistic_matches_statsmodels():
    """The breast-cancer data's first ten raw features (all thirty are separable), five at
    each party, every row at both; Wald z, p and 95% intervals as statsmodels' Logit."""
    data = load_breast_cancer()
    names = list(data.feature_names[:10])
    hospital, insurer = split("breast cancer", data.data[:, :10], data.target.astype(float), names, names[:5], names[5:],
                              "malignant", overlap=1.0)
    model = Logistic("malignant", tuple(names))
    config = config_for(hospital, insurer, "malignant", Analysis("malignant", model, ("insurer",)))
    simulation = await simulate((hospital, insurer), config, verify=True)
    check = simulation.verification["analyses"]["malignant"]
    assert simulation.verification["table_matches"] and check["within_tolerance"], check
    assert simulation.intersection_size == len(data.target)
    output = simulation.parties["insurer"].outputs["malignant"]
    assert simulation.parties["hospital"].outputs == {}
    joined = simulation.god_view.joined_table(config).astype(float) / 2**config.params.frac_bits
    columns = list(config.joined_columns)
    reference = sm.Logit(joined[:, columns.index("malignant")],
                         sm.add_constant(joined[:, [columns.index(c) for c in names]])).fit(disp=0, tol=1e-12, maxiter=100)
    rows = [output["intercept"], *(output["coefficients"][c] for c in names)]
    ci = reference.conf_int()
    for k, row in enumerate(rows):
        assert row["z"] == pytest.approx(reference.tvalues[k], rel=2e-4)
        assert row["p"] == pytest.approx(reference.pvalues[k], rel=1e-3, abs=1e-12)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(ci[k]), rel=2e-4, abs=1e-4 * reference.bse[k])
    assert output["loglik"] == pytest.approx(reference.llf, rel=1e-6)


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
