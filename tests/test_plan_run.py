"""Step 8 runs the study plan: its analyses in order, each output to its recipients only,
nothing opened that the manifest does not list (actors/shared_steps.py, plan.Gate,
mpc/replay.py).

Oracles: numpy on the plaintext join for describe (1e-6 relative, counts exact) and
scikit-learn for the lasso (1e-3 of the largest coefficient), through the simulation's
god view (``verify=True``), as ``docs/describe.md`` and ``docs/lasso.md`` state.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import trio
from click.testing import CliRunner

from mpcactors.cli import main
from mpcactors.codec import decode_envelope
from mpcactors.data import table_from_rows
from mpcactors.errors import InputError, UndeclaredOpening
from mpcactors.mpc.engine import Engine, run_local
from mpcactors.plan import Analysis, Describe, Gate, Lasso, Linear, Logistic, Plan, load_plan
from mpcactors.protocol.roster import Roster
from mpcactors.sim import simulate
from mpcactors.testing import fast_config, run_deployment, tables_for
from mpcactors.actors.hooks import Hooks

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "heart-failure.toml"


def example_run(rows: int = 80, **changes):
    hospital, insurer = tables_for(rows, 0.8, seed=4)
    tables = {"hospital": hospital, "insurer": insurer}
    config = fast_config(hospital, insurer)
    plan = load_plan(EXAMPLE, roster=config.roster, columns=config.columns)
    return tables, replace(config, plan=plan, **changes)


async def test_the_example_plan_runs_and_each_output_reaches_only_its_recipients() -> None:
    tables, config = example_run()
    records = []
    simulation = await simulate(tables, config, verify=True, recorder=records.append)
    # the god view: the description equals numpy's and the model scikit-learn's
    assert simulation.verified is True, simulation.verification
    checks = simulation.verification["analyses"]
    assert checks["cohort"]["max_relative_difference"] <= 1e-6 and checks["cohort"]["counts_exact"]
    assert checks["days"]["max_relative_difference"] <= 1e-3
    parties = simulation.parties
    assert list(parties["hospital"].outputs) == ["cohort", "days"]
    assert list(parties["insurer"].outputs) == ["cohort"]  # days goes to the hospital only
    assert parties["ttp"].outputs == {} and parties["ttp"].result is None
    assert parties["hospital"].outputs["cohort"] == parties["insurer"].outputs["cohort"]
    assert "coefficients" not in json.dumps(parties["insurer"].document())  # its result file has no model
    # the TTP and the insurer opened the model for the hospital but received no share of it:
    # on the wire, the model's shares travel to the hospital only
    for role in ("hospital", "insurer", "ttp"):
        assert ("days", "result", len(config.plan.analyses[1].method.features) + 2) in parties[role].revealed
    step8 = [(r.receiver, decode_envelope(r.data).body["label"]) for r in records if r.step == 8 and r.kind == "mpc"]
    assert {receiver for receiver, label in step8 if label == "result"} == {"hospital"}
    assert {receiver for receiver, label in step8 if label == "converged"} == {"hospital", "insurer", "ttp"}
    assert {receiver for receiver, label in step8 if label == "mean"} == {"hospital", "insurer"}
    cohort = parties["hospital"].outputs["cohort"]
    assert set(cohort) == {"kind", "n", "columns", "correlation", "frequencies"}
    assert cohort["n"] == simulation.intersection_size
    assert list(cohort["frequencies"]["chronic_conditions"]) == [*map(str, range(9)), "other"]


async def test_a_recipient_outside_the_computation_decodes_its_outputs_from_the_deliveries() -> None:
    """cbs deals its shares in step 7 and computes nothing; it alone receives both outputs,
    from the compute parties' shares, and they equal the oracles."""
    hospital, insurer = tables_for(70, 0.8, seed=6)
    rng = np.random.default_rng(2)
    cbs = table_from_rows("cbs.csv", ["id", "income"], [[i, f"{rng.normal(30, 8):.2f}"] for i in hospital.ids], min_rows=2)
    tables = {"hospital": hospital, "insurer": insurer, "cbs": cbs}
    config = fast_config(tables)
    plan = Plan("cbs only", (
        Analysis("profile", Describe(("age", "income", "hospital_days")), ("cbs",)),
        Analysis("model", Lasso("hospital_days", 0.1, ("age", "gp_visits", "income"), 200), ("cbs",)),
    ))
    simulation = await simulate(tables, replace(config, plan=plan), verify=True)
    assert simulation.verified is True, simulation.verification
    assert list(simulation.parties["cbs"].outputs) == ["profile", "model"]
    for role in ("hospital", "insurer", "ttp"):
        assert simulation.parties[role].outputs == {}, role


async def test_an_opening_outside_the_manifest_is_refused_before_anything_is_sent() -> None:
    tables, config = example_run(rows=40)

    def one_more(role: str, analysis: str, engine: Engine, program):
        result = yield from program
        yield from engine.reveal([0], "sneak")  # after the description: one value more
        return result

    with pytest.raises(UndeclaredOpening) as caught:
        await simulate(tables, config, hooks=Hooks(program=one_more))
    assert "analysis 'cohort' tried to open 1 values labelled 'sneak'" in str(caught.value)
    assert "nothing was sent" in str(caught.value)


def test_the_gate_admits_each_declared_opening_as_often_as_declared_and_to_its_recipients() -> None:
    roster = Roster(("hospital", "insurer", "cbs"))
    lasso = Analysis("m", Lasso("y", 1.0, ("x",), max_iter=10), ("insurer", "cbs"))
    plan = Plan("t", (lasso,))
    gate = Gate(plan.manifest(), lasso, roster)
    # control: all three compute parties; kept for cbs, which is outside the computation
    assert gate.admit("converged", 1).to == {1, 2, 3} and gate.admit("converged", 1).keep
    with pytest.raises(UndeclaredOpening, match="a 3th time"):
        gate.admit("converged", 1)
    # an output: only the insurer (Shamir point 2) among the compute parties
    assert gate.admit("result", 3).to == {2}
    for label, count in (("result", 2), ("mean", 1), ("iterations", 1)):
        with pytest.raises(UndeclaredOpening, match=f"labelled '{label}'"):
            Gate(plan.manifest(), lasso, roster).admit(label, count)


def test_a_gated_reveal_gives_the_values_to_the_recipients_only() -> None:
    class To:
        def __init__(self, to):
            self.to = to

        def admit(self, label, count):
            from mpcactors.mpc.engine import Delivery

            return Delivery(frozenset(self.to), keep=True)

    engines = {i: Engine(i, rng_seed_material=b"gate") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    for e in engines.values():
        e.gate = To({2})
    shares = {1: [12], 2: [19], 3: [26]}  # the line 5 + 7 x: the value 5
    out = run_local({i: e.reveal(shares[i], "out") for i, e in engines.items()})
    assert out == {1: [0], 2: [5], 3: [0]}
    assert engines[1].kept == [("out", False, [12])]  # shares, for a recipient outside


def test_a_categorical_column_that_is_not_integer_coded_is_an_input_error_naming_file_and_column() -> None:
    tables, config = example_run(rows=20)
    hospital, insurer = tables["hospital"], tables["insurer"]
    rows = [[i, *(str(float(v) / (1 << config.params.frac_bits)) for v in row)] for i, row in zip(insurer.ids, insurer.values)]
    column = insurer.columns.index("chronic_conditions")
    rows[3][1 + column] = "2.5"
    bad = table_from_rows("insurer.csv", ["id", *insurer.columns], rows, params=config.params, min_rows=2)
    with pytest.raises(InputError, match=r"insurer.csv: column 'chronic_conditions' is categorical .* data row 4"):
        config.encode_table("insurer", bad)
    encoded = config.encode_table("insurer", insurer)
    assert encoded.columns[-10:] == tuple(f"chronic_conditions={v}" for v in [*range(9), "other"])
    one = 1 << config.params.frac_bits
    hot = encoded.values[:, -10:] // one
    assert (hot.sum(axis=1) == 1).all()
    codes = insurer.values[:, column] // one
    assert (hot[np.arange(len(codes)), np.minimum(codes, 9)] == 1).all()
    assert config.encode_table("insurer", encoded) is encoded


@pytest.mark.slow
def test_three_daemons_run_the_example_plan_and_each_writes_only_its_own_outputs(tmp_path: Path) -> None:
    from mpcactors.daemon import load_party_config

    out = tmp_path / "dep"
    result = CliRunner().invoke(main, ["deploy-example", "--out", str(out), "--rows", "60", "--insecure-test-keys",
                                       "--plan", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    configs = {role: load_party_config(out / f"{role}.toml") for role in ("hospital", "insurer", "ttp")}
    results = trio.run(run_deployment, configs)
    documents = {role: r.document() for role, r in results.items()}
    assert list(documents["hospital"]["outputs"]) == ["cohort", "days"]
    assert list(documents["insurer"]["outputs"]) == ["cohort"]
    assert documents["ttp"]["outputs"] == {}
    assert documents["hospital"]["outputs"]["cohort"] == documents["insurer"]["outputs"]["cohort"]


@pytest.mark.parametrize("l2", [0.0, pytest.param(0.5, marks=pytest.mark.slow)])
async def test_a_logistic_analysis_runs_in_the_plan_and_matches_statsmodels(l2: float) -> None:
    """The insurer adds a 0/1 column (readmitted: more than 8 hospital days, say); the plan's
    logistic model of it on two hospital columns equals statsmodels' Logit within 1e-4
    relative (docs/logistic.md), for its recipient only; with l2, scikit-learn's
    LogisticRegression(C=1/l2), no standard errors, and the console says so."""
    hospital, insurer = tables_for(160, 0.9, seed=8)
    one = 1 << fast_config(hospital, insurer).params.frac_bits
    days = insurer.values[:, insurer.columns.index("hospital_days")] / one
    rows = [[i, *(str(v / one) for v in row), str(int(d > np.median(days)))] for i, row, d in zip(insurer.ids, insurer.values, days)]
    insurer = table_from_rows("insurer.csv", ["id", *insurer.columns, "readmitted"], rows, min_rows=2)
    config = fast_config(hospital, insurer)
    model = Logistic("readmitted", ("age", "ejection_fraction"), l2=l2)
    plan = Plan("readmission", (Analysis("readmission", model, ("insurer",)),))
    simulation = await simulate({"hospital": hospital, "insurer": insurer}, replace(config, plan=plan), verify=True)
    assert simulation.verified is True, simulation.verification
    output = simulation.parties["insurer"].outputs["readmission"]
    keys = {"estimate", "se", "z", "p", "ci_low", "ci_high"} if l2 == 0 else {"estimate"}
    assert output["kind"] == "logistic" and output["l2"] == l2 and set(output["intercept"]) == keys
    assert simulation.parties["hospital"].outputs == {}
    if l2 > 0:
        from rich.console import Console

        from mpcactors.cli import render_regression

        console = Console(record=True, width=250)
        oracle = simulation.verification["analyses"]["readmission"]["statsmodels"]
        render_regression("readmission", "to insurer", output, oracle, console)
        text = console.export_text()
        assert "scikit-learn coef" in text and "no standard errors" in text and "statsmodels" not in text
    # the owner refuses a target that is not 0/1 before step 3
    bad = table_from_rows("insurer.csv", ["id", *insurer.columns], [[*r[:-1], "2"] for r in rows], min_rows=2)
    with pytest.raises(InputError, match="'readmitted' is the target of a logistic regression"):
        replace(config, plan=plan).encode_table("insurer", bad)


@pytest.mark.parametrize("ridge", [0.0, pytest.param(2.0, marks=pytest.mark.slow)])
async def test_a_linear_analysis_runs_in_the_plan_and_matches_statsmodels(ridge: float) -> None:
    """OLS of hospital days on columns of both parties equals statsmodels' OLS within 1e-6
    relative (estimates, standard errors, R^2, residual variance; docs/linear.md); ridge
    equals scikit-learn's Ridge and opens no standard errors."""
    hospital, insurer = tables_for(120, 0.9, seed=9)
    config = fast_config(hospital, insurer)
    model = Linear("hospital_days", ("age", "nt_probnp", "prior_admissions"), ridge)
    plan = Plan("days", (Analysis("days", model, ("hospital", "insurer")),))
    simulation = await simulate({"hospital": hospital, "insurer": insurer}, replace(config, plan=plan), verify=True)
    assert simulation.verified is True, simulation.verification
    output = simulation.parties["hospital"].outputs["days"]
    assert output["df_resid"] == simulation.intersection_size - 4
    assert ("se" in output["intercept"]) is (ridge == 0)


@pytest.mark.slow
async def test_a_cross_validated_lasso_runs_in_the_plan_and_matches_scikit_learn_per_fold() -> None:
    """alpha = [...] with folds = K: the mean validation error per alpha within 1e-4 relative
    of scikit-learn's Lasso fitted per fold on the same folds (the shared row order), the
    same chosen alpha, and the final model as the lasso's tolerance (docs/lasso.md)."""
    hospital, insurer = tables_for(120, 0.9, seed=10)
    config = fast_config(hospital, insurer)
    lasso = Lasso("hospital_days", (0.05, 0.5, 2.0), ("age", "nt_probnp", "prior_admissions", "gp_visits"), 300, folds=3)
    plan = Plan("cv", (Analysis("days", lasso, ("hospital",)),))
    simulation = await simulate({"hospital": hospital, "insurer": insurer}, replace(config, plan=plan), verify=True)
    assert simulation.verified is True, simulation.verification
    output = simulation.parties["hospital"].outputs["days"]
    assert set(output["cv_error"]) == {"0.05", "0.5", "2.0"} and output["alpha"] in (0.05, 0.5, 2.0)
    assert simulation.verification["analyses"]["days"]["sklearn"]["same_alpha"]
    assert simulation.parties["insurer"].outputs == {}
