"""The e-coaching example (examples/e-coaching.toml) on the built-in three-party cohort:
a cohort description, the intervention's adjusted effect (linear), a cross-validated lasso
and a logistic model of readmission, in simulation and as four mTLS daemons.

Oracles, on the plaintext join, at each kind's documented tolerance: numpy for describe
(1e-6 relative, counts exact and suppressed as the rules say), statsmodels for linear
(1e-6) and logistic (1e-4), scikit-learn for the lasso (1e-3 of the largest coefficient;
the CV errors within 1e-4 on the same folds, which only the simulation's god view can
line up, as the folds follow the TTP's secret row order).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import trio
from click.testing import CliRunner

from mpcactors.cli import main
from mpcactors.config import DEFAULT_DEADLINES
from mpcactors.data import load_table, plaintext_join
from mpcactors.plan import Describe, Lasso, Linear, Logistic, load_plan
from mpcactors.sim import compare_with_numpy, compare_with_sklearn, compare_with_statsmodels, simulate
from mpcactors.synth import E_COACHING_EFFECT, make_cohort
from mpcactors.testing import fast_config, party_tables, run_deployment

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "e-coaching.toml"
PARTIES = ("hospital", "insurer", "cbs")
#: who receives what, as the example says
RECEIVES = {"hospital": ["cohort", "effect", "days", "readmission"], "insurer": ["cohort", "effect"], "cbs": ["cohort", "effect"]}


def test_the_example_is_valid_for_the_built_in_three_party_cohort() -> None:
    """It names the cohort's columns (`mpcactors simulate --parties 3 --plan ... --check-plan`)."""
    result = CliRunner().invoke(main, ["simulate", "--parties", "3", "--plan", str(EXAMPLE), "--check-plan"])
    assert result.exit_code == 0, result.output
    assert "the plan is valid for these inputs" in result.output
    columns = {name: table.header[1:] for name, table in make_cohort(10, parties=3).tables.items()}
    plan = load_plan(EXAMPLE, roster=fast_config(party_tables(40, 0.5)).roster, columns=columns)
    assert [a.method.kind for a in plan.analyses] == ["describe", "linear", "lasso", "logistic"]
    assert plan.analyses[1].method.features[0] == "e_coaching"


def check_against_oracles(outputs: dict, plan, data: np.ndarray, columns, *, cv: bool) -> dict[str, dict]:
    """Every analysis's output beside its oracle; the CV lasso's final model at the chosen
    alpha (and, with ``cv``, its validation errors on the same folds)."""
    checks = {}
    for analysis in plan.analyses:
        method, output = analysis.method, outputs[analysis.name]
        if isinstance(method, Describe):
            checks[analysis.name] = compare_with_numpy(output, method, data, columns, plan.min_cell)
        elif isinstance(method, Linear | Logistic):
            checks[analysis.name] = compare_with_statsmodels(output, method, data, columns)
        else:
            assert isinstance(method, Lasso)
            chosen = method if cv else replace(method, alpha=output["alpha"], folds=None)
            checks[analysis.name] = compare_with_sklearn(output, chosen, data, columns)
    return checks


@pytest.mark.slow
async def test_the_example_runs_in_simulation_and_every_number_matches_its_oracle() -> None:
    """The effect's 95% interval is statsmodels', and holds the true effect on this cohort."""
    tables = party_tables(300, 0.5, seed=0, parties=3)
    config = fast_config(tables, deadlines={step: 600.0 for step in DEFAULT_DEADLINES})
    plan = load_plan(EXAMPLE, roster=config.roster, columns=config.columns)
    simulation = await simulate(tables, replace(config, plan=plan), verify=True)
    assert simulation.verified is True, simulation.verification
    checks = simulation.verification["analyses"]
    assert set(checks) == {"cohort", "effect", "days", "readmission"}
    assert checks["days"]["sklearn"]["same_alpha"] and checks["cohort"]["counts_exact"]
    for party, names in RECEIVES.items():
        assert list(simulation.parties[party].outputs) == names, party
    assert simulation.parties["ttp"].outputs == {}
    effect = simulation.parties["cbs"].outputs["effect"]["coefficients"]["e_coaching"]
    assert effect["ci_low"] < E_COACHING_EFFECT < effect["ci_high"] < 0, effect


@pytest.mark.slow
def test_the_example_runs_as_four_daemons_and_each_writes_its_outputs_matching_the_oracles(tmp_path: Path) -> None:
    """`mpcactors deploy-example --parties 3 --plan examples/e-coaching.toml`, then every
    member's daemon; each result file holds exactly its own outputs, equal across
    recipients and to the oracles on the plaintext join of the deployment's CSVs."""
    from mpcactors.daemon import load_party_config

    out = tmp_path / "dep"
    result = CliRunner().invoke(main, ["deploy-example", "--out", str(out), "--rows", "300", "--parties", ",".join(PARTIES),
                                       "--insecure-test-keys", "--plan", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    configs = {role: load_party_config(out / f"{role}.toml") for role in (*PARTIES, "ttp")}
    results = trio.run(partial(run_deployment, configs, timeout=900))
    documents = {role: r.document() for role, r in results.items()}
    for party, names in RECEIVES.items():
        assert list(documents[party]["outputs"]) == names, party
    assert documents["ttp"]["outputs"] == {}
    for name in ("cohort", "effect"):
        assert documents["hospital"]["outputs"][name] == documents["insurer"]["outputs"][name] == documents["cbs"]["outputs"][name]
    run = configs["hospital"].run
    tables = [run.encode_table(p, load_table(out / "data" / f"{p}.csv", params=run.params)) for p in PARTIES]
    columns, matrix = plaintext_join(*tables)
    data = matrix.astype(np.float64) / float(1 << run.params.frac_bits)
    checks = check_against_oracles(documents["hospital"]["outputs"], run.plan, data, columns, cv=False)
    assert all(check["within_tolerance"] for check in checks.values()), checks
