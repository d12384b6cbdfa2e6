"""The study plan (plan.py): validation, the canonical digest, the default plan, the manifest,
the differencing warnings, and the agreement on it (the daemon's config, the hello, the CLI).

The plan's analyses do not run yet (describe and per-recipient delivery are built
elsewhere); what is tested here is what is enforced today: validation and agreement.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner

from mpcactors.cli import main
from mpcactors.config import RunConfig
from mpcactors.daemon import establish_links, load_party_config, parameters_digest
from mpcactors.errors import ConfigError, PeerProtocolError
from mpcactors.plan import (
    CHECK_EVERY,
    KINDS,
    Analysis,
    Describe,
    Lasso,
    Logistic,
    Opening,
    Plan,
    default_plan,
    load_plan,
    manifest_allows,
)
from mpcactors.protocol.roster import Roster
from mpcactors.synth import make_cohort

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "heart-failure.toml"
#: The built-in synthetic cohort's columns (`mpcactors synth`).
COLUMNS = {name: table.header[1:] for name, table in make_cohort(10).tables.items()}
ROSTER = Roster(tuple(COLUMNS))
RUN = RunConfig(COLUMNS)
OWNED = "; ".join(f"{name}: {', '.join(columns)}" for name, columns in COLUMNS.items())

DAYS = '''
[[analysis]]
name = "days"
kind = "lasso"
target = "hospital_days"
alpha = 0.1
'''
COHORT = '''
[[analysis]]
name = "cohort"
kind = "describe"
'''


def write(tmp_path: Path, text: str, name: str = "plan.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(path: Path) -> Plan:
    return load_plan(path, roster=ROSTER, columns=COLUMNS)


# ---- validation --------------------------------------------------------------------------------

A1, A2 = "[[analysis]] 1 (days)", "[[analysis]] 2 (days)"
BAD_PLANS = [
    # (plan.toml, the message after "plan.toml: ")
    (DAYS, "title is required (one line naming the study)"),
    ('title = ""' + DAYS, "title: must be a non-empty string, got a string ('')"),
    ('title = "t"\nowner = "me"' + DAYS, "unknown key owner (known keys: analysis, min_cell, title)"),
    ('title = "t"\nmin_cell = 0' + DAYS, "min_cell: must be an integer of at least 1, got an integer (0)"),
    ('title = "t"\n', "[[analysis]] is required: one table per analysis (a plan has at least one)"),
    ('title = "t"\n[[analysis]]\nkind = "lasso"\n', "[[analysis]] 1 name is required"),
    ('title = "t"' + DAYS.replace('"days"', '"Days"'),
     "[[analysis]] 1 name: must be 1 to 32 of a-z, 0-9, '_' and '-', got a string ('Days')"),
    ('title = "t"' + DAYS + DAYS, f"{A2} name: 'days' is the name of [[analysis]] 1 too"),
    ('title = "t"' + DAYS.replace('kind = "lasso"\n', ""), f"{A1} kind is required ({' or '.join(KINDS)})"),
    ('title = "t"' + DAYS.replace('"lasso"', '"anova"'), f"{A1} kind: must be one of {', '.join(KINDS)}, got a string ('anova')"),
    ('title = "t"' + DAYS + 'colums = ["age"]\n',
     f"unknown key {A1} colums (known keys for kind lasso: alpha, features, folds, kind, max_iter, name, recipients, target)"),
    ('title = "t"' + COHORT + 'columns = ["age", "bmi"]\n',
     f"[[analysis]] 1 (cohort) columns: 'bmi' is no party's column ({OWNED})"),
    ('title = "t"' + COHORT + 'columns = ["age", "age"]\n', "[[analysis]] 1 (cohort) columns: lists 'age' twice"),
    ('title = "t"' + COHORT + 'columns = "age"\n',
     "[[analysis]] 1 (cohort) columns: must be a list of non-empty strings, got a string ('age')"),
    ('title = "t"' + COHORT + 'columns = []\n',
     "[[analysis]] 1 (cohort) columns: the analysis describes nothing: give columns or categorical"),
    ('title = "t"' + COHORT + 'categorical = ["chronic_conditions"]\n',
     "[[analysis]] 1 (cohort) levels: give the levels of the categorical column 'chronic_conditions' "
     "(e.g. levels = { chronic_conditions = [1, 2, 3] }): they are public and fix what is opened"),
    ('title = "t"' + COHORT + 'levels = { age = [1] }\n', "[[analysis]] 1 (cohort) levels.age: 'age' is not in categorical"),
    ('title = "t"' + COHORT + 'categorical = ["gp_visits"]\nlevels = { gp_visits = [1, 1.5] }\n',
     "[[analysis]] 1 (cohort) levels.gp_visits: must be a list of 1 to 64 integers, got a list"),
    ('title = "t"' + COHORT + 'categorical = ["gp_visits"]\nlevels = { gp_visits = [1, 2, 1] }\n',
     "[[analysis]] 1 (cohort) levels.gp_visits: lists a level twice"),
    ('title = "t"' + DAYS + 'recipients = ["hospital", "cbs"]\n',
     f"{A1} recipients: 'cbs' is not in the roster (hospital, insurer, ttp)"),
    ('title = "t"' + DAYS + 'recipients = []\n', f"{A1} recipients: must name at least one member"),
    ('title = "t"' + DAYS.replace('target = "hospital_days"\n', ""),
     f"{A1} target is required (the column the lasso predicts)"),
    ('title = "t"' + COHORT + DAYS.replace('"hospital_days"', '"x"'), f"{A2} target: 'x' is no party's column ({OWNED})"),
    ('title = "t"' + DAYS.replace("alpha = 0.1\n", ""), f"{A1} alpha is required (the penalty, as scikit-learn's Lasso(alpha), or a list of them with folds)"),
    ('title = "t"' + DAYS.replace("0.1", "0"), f"{A1} alpha: must be a positive number (a list needs folds = K), got an integer (0)"),
    ('title = "t"' + DAYS.replace("0.1", "-0.5"), f"{A1} alpha: must be a positive number (a list needs folds = K), got a number (-0.5)"),
    ('title = "t"' + DAYS.replace("0.1", '"0.1"'), f"{A1} alpha: must be a positive number (a list needs folds = K), got a string ('0.1')"),
    ('title = "t"' + DAYS.replace("0.1", "[0.1, 1]"), f"{A1} alpha: must be a positive number (a list needs folds = K), got a list"),
    ('title = "t"' + DAYS.replace("0.1", "[0.1, 1]\nfolds = 1"), f"{A1} folds: must be an integer from 2 to 20, got an integer (1)"),
    ('title = "t"' + DAYS.replace("0.1", "0.1\nfolds = 5"), f"{A1} alpha: with folds, must be a list of 2 to 20 positive numbers, got a number (0.1)"),
    ('title = "t"' + DAYS.replace("0.1", "[0.1, 0.1]\nfolds = 5"), f"{A1} alpha: lists a penalty twice"),
    ('title = "t"' + DAYS.replace("0.1", "nan"), f"{A1} alpha: must be a positive number (a list needs folds = K), got a number (nan)"),
    ('title = "t"' + DAYS + 'features = ["age", "hospital_days"]\n',
     f"{A1} features: 'hospital_days' is the target; it cannot be a feature too"),
    ('title = "t"' + DAYS + 'features = ["age", "bmi"]\n', f"{A1} features: 'bmi' is no party's column ({OWNED})"),
    ('title = "t"' + DAYS + 'features = []\n', f"{A1} features: must name 1 to 256 columns besides the target"),
    ('title = "t"' + DAYS + "max_iter = 0\n", f"{A1} max_iter: must be an integer of at least 1, got an integer (0)"),
    ('title = "t"' + DAYS.replace('"lasso"', '"logistic"').replace("alpha = 0.1\n", "l2 = -1\n"),
     f"{A1} l2: must be a number of at least 0 (0: maximum likelihood with standard errors), got an integer (-1)"),
    ('title = "t"' + DAYS.replace('"lasso"', '"logistic"').replace("alpha = 0.1\n", "l2 = nan\n"),
     f"{A1} l2: must be a number of at least 0 (0: maximum likelihood with standard errors), got a number (nan)"),
    ('title = "t"' + DAYS.replace('"lasso"', '"logistic"').replace("alpha = 0.1\n", 'l2 = "1"\n'),
     f"{A1} l2: must be a number of at least 0 (0: maximum likelihood with standard errors), got a string ('1')"),
    ('title = "t"\n[analysis]\nname = "x"\n', "[[analysis]] is required: one table per analysis (a plan has at least one)"),
]


@pytest.mark.parametrize(("text", "message"), BAD_PLANS, ids=[m[:50] for _, m in BAD_PLANS])
def test_a_bad_plan_is_refused_naming_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: {message}"


def test_a_missing_or_unreadable_plan_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'nope.toml'}: the plan file does not exist")):
        load(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'plan.toml'}: invalid TOML: ")):
        load(write(tmp_path, "title = \n"))
    (tmp_path / "latin1.toml").write_bytes(b'title = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="the plan file is not UTF-8"):
        load(tmp_path / "latin1.toml")


def test_the_roster_decides_who_may_receive(tmp_path: Path) -> None:
    path = write(tmp_path, 'title = "t"' + DAYS + 'recipients = ["ttp", "cbs", "hospital"]\n')
    three = {**COLUMNS, "cbs": ("education_level", "household_size")}
    plan = load_plan(path, roster=Roster(tuple(three)), columns=three)
    assert plan.analyses[0].recipients == ("hospital", "cbs", "ttp")  # in roster order


# ---- the example and its manifest -----------------------------------------------------------------


def test_the_example_plan_loads_with_every_default_filled_in() -> None:
    plan = load(EXAMPLE)
    features = tuple(c for names in COLUMNS.values() for c in names if c != "hospital_days")
    assert plan == Plan(
        "Heart failure: what drives hospital days",
        (
            Analysis("cohort", Describe(("age", "ejection_fraction", "gp_visits", "hospital_days"),
                                        (("chronic_conditions", tuple(range(9))),)), ("hospital", "insurer")),
            Analysis("days", Lasso("hospital_days", 0.1, features, 1000), ("hospital",)),
        ),
        min_cell=10,
    )
    assert plan.warnings == ()


def test_the_manifest_of_the_example_lists_every_opening_and_its_recipients() -> None:
    both, hospital = ("hospital", "insurer"), ("hospital",)
    assert load(EXAMPLE).manifest() == (
        Opening("cohort", "mean", (4,), both, "mean"),
        Opening("cohort", "sd", (4,), both, "sd"),
        Opening("cohort", "correlation", (6,), both, "correlation"),
        Opening("cohort", "small_cell:chronic_conditions", (10,), both, "small_cell", control=True),
        Opening("cohort", "count:chronic_conditions", (10,), both, "count"),
        Opening("days", "converged", (200,), hospital, "converged", reveals=200, control=True),
        Opening("days", "coefficients", (12,), hospital, "result"),
        Opening("days", "intercept", (), hospital, "result"),
        Opening("days", "r2", (), hospital, "result"),
        Opening("days", "iterations", (), hospital, None),
    )


@pytest.mark.parametrize(
    ("analysis", "label", "count", "allowed"),
    [
        ("days", "result", 14, True),  # 12 coefficients, the intercept and R^2 in one reveal
        ("days", "result", 13, False),
        ("days", "result", 15, False),
        ("days", "converged", 1, True),  # one bit per check
        ("days", "converged", 200, False),
        ("days", "iterations", 1, False),  # derived, never opened
        ("days", "mean", 4, False),  # another analysis's label
        ("cohort", "mean", 4, True),
        ("cohort", "correlation", 6, True),
        ("cohort", "count", 10, True),  # every level's count in one reveal
        ("cohort", "count", 9, False),
        ("cohort", "small_cell", 10, True),
        ("cohort", "count:chronic_conditions", 10, False),  # an output's name is not its label
        ("cohort", "result", 11, False),
        ("other", "result", 11, False),
    ],
)
def test_manifest_allows_exactly_the_declared_openings(analysis: str, label: str, count: int, allowed: bool) -> None:
    assert manifest_allows(load(EXAMPLE).manifest(), analysis, label, count) is allowed


def test_the_manifest_counts_one_convergence_check_per_check_every_iterations() -> None:
    assert CHECK_EVERY == 5
    lasso = Analysis("m", Lasso("y", 1.0, ("x",), max_iter=12), ("hospital",))
    (converged, *_) = Plan("t", (lasso,)).manifest()
    assert converged.shape == (3,) and converged.per_reveal == 1  # checks at 5, 10 and 12 (the cap)


def test_a_penalised_logistic_model_declares_the_scales_and_no_variances(tmp_path: Path) -> None:
    """l2 > 0: the d scales are a control opening (every compute party needs the public
    penalty), nothing of the standard errors is opened, and l2 is part of the digest; a plan
    without it keeps the digest it had before the key existed."""
    text = 'title = "t"' + DAYS.replace('"lasso"', '"logistic"').replace("alpha = 0.1\n", 'features = ["age", "gp_visits"]\n')
    plain = load(write(tmp_path, text))
    penalised = load(write(tmp_path, text + "l2 = 2\n"))
    assert penalised.analyses[0].method == Logistic("hospital_days", ("age", "gp_visits"), l2=2.0)
    assert "l2" not in plain.analyses[0].method.document() and plain.digest != penalised.digest
    opened = {o.output: o for o in penalised.manifest() if o.label is not None}
    assert list(opened)[:3] == ["small_class", "scale", "converged"]
    assert opened["scale"].shape == (2,) and opened["scale"].control
    assert "variance" not in opened and "variance" in {o.output for o in plain.manifest()}
    assert manifest_allows(penalised.manifest(), "days", "scale", 2)
    assert not manifest_allows(plain.manifest(), "days", "scale", 2)


async def test_the_default_plans_manifest_allows_every_value_a_real_run_opens() -> None:
    from mpcactors.sim import simulate
    from mpcactors.testing import fast_config, tables_for

    hospital, insurer = tables_for(40, 0.8, seed=1)
    config = fast_config(hospital, insurer, max_iter=20)
    manifest = default_plan(config).manifest()
    simulation = await simulate({"hospital": hospital, "insurer": insurer}, config)
    for role, party in simulation.parties.items():
        assert {analysis for analysis, _, _ in party.revealed} == {"cohort", "lasso"}, role
        assert all(manifest_allows(manifest, *opening) for opening in party.revealed), party.revealed
        checks = sum(label == "converged" for _, label, _ in party.revealed)
        assert checks <= next(o.reveals for o in manifest if o.output == "converged")


# ---- the default plan --------------------------------------------------------------------------


def test_the_default_plan_describes_every_column_and_runs_the_runs_lasso_for_every_data_party() -> None:
    run = RunConfig(COLUMNS, alpha=0.25, max_iter=300)
    plan = default_plan(run)
    assert [(a.name, a.kind, a.recipients) for a in plan.analyses] == [
        ("cohort", "describe", ("hospital", "insurer")), ("lasso", "lasso", ("hospital", "insurer")),
    ]
    assert plan.analyses[0].method == Describe(run.joined_columns)
    assert plan.analyses[1].method == Lasso("hospital_days", 0.25, run.features, 300)
    assert plan.min_cell == 10 and plan.warnings == ()
    assert [a.name for a in default_plan(replace(run, lasso=False)).analyses] == ["cohort"]
    assert default_plan(replace(run, alpha=0.5)).digest != plan.digest
    assert default_plan(replace(run, chunk_rows=64, deadlines={})).digest == plan.digest  # local settings


def test_a_file_saying_the_default_plan_has_its_digest(tmp_path: Path) -> None:
    text = '''
title = "Cohort description and the lasso of hospital_days"
[[analysis]]
name = "cohort"
kind = "describe"
[[analysis]]
name = "lasso"
kind = "lasso"
target = "hospital_days"
alpha = 0.1
'''
    assert load(write(tmp_path, text)).digest == default_plan(RUN).digest


# ---- the digest --------------------------------------------------------------------------------

SAME_AS_EXAMPLE = '''
# reformatted: keys reordered, defaults said aloud, recipients and levels in another order
min_cell = 10
title = "Heart failure: what drives hospital days"

[[analysis]]
recipients = ["insurer", "hospital"]
kind = "describe"
name = "cohort"
levels.chronic_conditions = [8, 7, 6, 5, 4, 3, 2, 1, 0]
categorical = ["chronic_conditions"]
columns = [ "age",
  "ejection_fraction", "gp_visits", "hospital_days" ]

[[analysis]]
alpha = 1e-1
max_iter = 1000
features = ["age", "ejection_fraction", "nt_probnp", "creatinine", "systolic_bp", "e_coaching",
            "readmitted_30d", "gp_visits", "medication_cost", "prior_admissions", "chronic_conditions",
            "specialist_visits"]
target = "hospital_days"
kind = "lasso"
name = "days"
recipients = ["hospital"]
'''


def test_the_digest_is_the_same_for_files_that_mean_the_same_plan(tmp_path: Path) -> None:
    example = load(EXAMPLE)
    assert load(write(tmp_path, SAME_AS_EXAMPLE)) == example
    assert load(write(tmp_path, SAME_AS_EXAMPLE)).digest == example.digest
    assert len(example.digest) == 32
    assert json.loads(example.canonical_json()) == example.document()


CHANGES = [
    ('title = "Heart failure: what drives hospital days"', 'title = "Heart failure: what drives hospital stays"'),
    ("min_cell = 10", "min_cell = 11"),
    ('"age", "ejection_fraction", "gp_visits"', '"ejection_fraction", "age", "gp_visits"'),  # correlation order
    ('columns = ["age", ', 'columns = ['),
    ("[0, 1, 2, 3, 4, 5, 6, 7, 8]", "[0, 1, 2, 3, 4, 5, 6, 7]"),
    ('recipients = ["hospital", "insurer"]', 'recipients = ["hospital"]'),
    ('recipients = ["hospital"]\n', 'recipients = ["hospital", "ttp"]\n'),
    ("alpha = 0.1", "alpha = 0.1000001"),
    ('alpha = 0.1', 'alpha = 0.1\nmax_iter = 999'),
    ('alpha = 0.1', 'alpha = 0.1\nfeatures = ["age", "gp_visits"]'),
    ('name = "days"', 'name = "stay"'),
]


@pytest.mark.parametrize(("old", "new"), CHANGES, ids=[new[:30] for _, new in CHANGES])
def test_the_digest_changes_with_any_change_of_meaning(tmp_path: Path, old: str, new: str) -> None:
    text = EXAMPLE.read_text()
    assert old in text
    assert load(write(tmp_path, text.replace(old, new, 1))).digest != load(EXAMPLE).digest


def test_the_order_of_the_analyses_is_part_of_the_plan(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    head, cohort, days = text.split("[[analysis]]")
    assert load(write(tmp_path, head + "[[analysis]]" + days + "[[analysis]]" + cohort)).digest != load(EXAMPLE).digest


# ---- differencing warnings ---------------------------------------------------------------------


def describe(name: str, columns: tuple[str, ...], **levels: tuple[int, ...]) -> Analysis:
    return Analysis(name, Describe(columns, tuple(levels.items())), ("hospital",))


def test_one_column_counted_over_two_level_sets_is_a_differencing_warning() -> None:
    plan = Plan("t", (describe("a", (), chronic_conditions=(0, 1, 2, 3, 4, 5)),
                      describe("b", (), chronic_conditions=(0, 1, 2, 3, 4))))
    assert plan.warnings == (
        "differencing: 'chronic_conditions' is counted over levels [0, 1, 2, 3, 4, 5] in 'a' and [0, 1, 2, 3, 4] "
        "in 'b'; cells of one minus cells of the other can reveal a count below min_cell = 10: count it over the "
        "same levels",
    )
    same = Plan("t", (describe("a", (), chronic_conditions=(0, 1, 2, 3, 4)), describe("b", (), chronic_conditions=(0, 1, 2, 3, 4))))
    assert same.warnings == ()


def test_the_mean_and_sd_of_a_column_with_at_most_three_levels_is_a_differencing_warning() -> None:
    counted = describe("counts", (), prior_admissions=(0, 1, 2))
    moments = describe("moments", ("age", "prior_admissions"))
    assert Plan("t", (counted, moments), min_cell=5).warnings == (
        "differencing: 'prior_admissions' has 3 levels in 'counts' and its mean and sd are opened in 'moments'; "
        "with the row count they give every level's count, whatever min_cell = 5 suppresses: leave it out of "
        "the columns of 'moments'",
    )
    assert Plan("t", (describe("one", ("prior_admissions",), prior_admissions=(0, 1)),)).warnings != ()
    assert Plan("t", (describe("c", (), prior_admissions=(0, 1, 2, 3)), moments)).warnings == ()  # four levels
    assert Plan("t", (counted, describe("m", ("age",)))).warnings == ()


@pytest.mark.slow
def test_simulate_prints_the_warnings_of_a_plan(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace('"gp_visits", "hospital_days"]', '"gp_visits", "hospital_days", "chronic_conditions"]')
    text = text.replace("[0, 1, 2, 3, 4, 5, 6, 7, 8]", "[0, 1, 2]")
    for run in ([], ["--check-plan"]):  # running the plan, and only checking it
        result = CliRunner().invoke(main, ["simulate", "--rows", "30", "--key-bits", "2048", "--plan", str(write(tmp_path, text)), *run])
        assert result.exit_code == 0, result.output
        assert "warning: differencing: 'chronic_conditions' has 3 levels in 'cohort'" in " ".join(result.stderr.split())


# ---- simulate --plan ---------------------------------------------------------------------------


def test_check_plan_validates_the_example_plan_and_prints_what_it_opens_without_running_it() -> None:
    result = CliRunner().invoke(main, ["simulate", "--rows", "30", "--plan", str(EXAMPLE), "--check-plan"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "plan 'Heart failure: what drives hospital days'",
        f"  digest {load(EXAMPLE).digest.hex()}",
        "  min_cell 10",
        "  1. cohort (describe) to hospital, insurer: mean[4], sd[4], correlation[6], "
        "count:chronic_conditions[10]",
        "     and to the compute parties too, as they steer the computation: small_cell:chronic_conditions[10]",
        "  2. days (lasso) to hospital: coefficients[12], intercept[1], r2[1], iterations[1]",
        "     and to the compute parties too, as they steer the computation: converged[200]",
    ]
    assert "the plan is valid for these inputs" in result.stderr


def test_simulate_plan_json_is_the_canonical_plan_its_digest_and_manifest() -> None:
    result = CliRunner().invoke(main, ["simulate", "--rows", "30", "--plan", str(EXAMPLE), "--check-plan", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    plan = load(EXAMPLE)
    assert document["plan"] == plan.document() and document["digest"] == plan.digest.hex()
    assert document["manifest"][0] == {"analysis": "cohort", "output": "mean", "shape": [4],
                                       "recipients": ["hospital", "insurer"], "label": "mean", "reveals": 1,
                                       "control": False}
    assert document["warnings"] == []


def test_simulate_refuses_a_plan_that_does_not_fit_the_inputs(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.read_text().replace('recipients = ["hospital"]', 'recipients = ["cbs"]'))
    result = CliRunner().invoke(main, ["simulate", "--rows", "30", "--plan", str(path)])
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == (
        f"error: {path}: [[analysis]] 2 (days) recipients: 'cbs' is not in the roster (hospital, insurer, ttp)"
    )
    three = CliRunner().invoke(main, ["simulate", "--rows", "30", "--parties", "3", "--plan", str(path), "--check-plan"])
    assert three.exit_code == 0, three.output  # with a third party named cbs, it fits


# ---- the daemons: [plan] file, deploy-example --plan, the hello --------------------------------------


def deploy(directory: Path, *options: str) -> dict[str, Path]:
    result = CliRunner().invoke(main, ["deploy-example", "--out", str(directory), "--rows", "30", "--insecure-test-keys", *options])
    assert result.exit_code == 0, result.output
    return {role: directory / f"{role}.toml" for role in ROSTER.members}


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return deploy(tmp_path_factory.mktemp("planned") / "dep", "--plan", str(EXAMPLE))


def test_deploy_example_copies_the_plan_and_names_it_in_every_config(planned: dict[str, Path]) -> None:
    directory = planned["ttp"].parent
    assert (directory / "plan.toml").read_text() == EXAMPLE.read_text()
    digest = load(EXAMPLE).digest
    for role, path in planned.items():
        assert '\n[plan]  # the study plan every party signed off (docs/plan.md)\nfile = "plan.toml"\n' in path.read_text()
        config = load_party_config(path)
        assert config.run.plan == load(EXAMPLE) and config.run.plan_digest == digest, role
    assert len({parameters_digest(load_party_config(p).run) for p in planned.values()}) == 1


def test_deploy_example_refuses_a_plan_that_does_not_fit_before_writing_anything(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.read_text().replace('"gp_visits"', '"bmi"'))
    result = CliRunner().invoke(main, ["deploy-example", "--out", str(tmp_path / "dep"), "--plan", str(path)])
    assert result.exit_code == 2
    assert f"{path}: [[analysis]] 1 (cohort) columns: 'bmi' is no party's column" in " ".join(result.output.split())
    assert not (tmp_path / "dep").exists() or not any((tmp_path / "dep").iterdir())


def test_the_parameter_digest_covers_the_plan_and_no_plan_leaves_it_as_before(tmp_path: Path, planned: dict[str, Path]) -> None:
    with_plan = load_party_config(planned["hospital"]).run
    without = replace(with_plan, plan=None)
    assert parameters_digest(with_plan) != parameters_digest(without)
    other = replace(with_plan, plan=replace(with_plan.plan, title="another study"))
    assert parameters_digest(other) != parameters_digest(with_plan)
    # a file that means the same plan: the same parameters
    (planned["hospital"].parent / "same.toml").write_text(SAME_AS_EXAMPLE)
    copy = tmp_path / "hospital.toml"
    copy.write_text(planned["hospital"].read_text().replace('"certs/', f'"{planned["hospital"].parent}/certs/')
                    .replace('"data/', f'"{planned["hospital"].parent}/data/')
                    .replace('file = "plan.toml"', f'file = "{planned["hospital"].parent}/same.toml"'))
    assert parameters_digest(load_party_config(copy).run) == parameters_digest(with_plan)


def test_config_errors_of_the_plan_name_the_file_and_the_key(tmp_path: Path) -> None:
    paths = deploy(tmp_path / "dep", "--plan", str(EXAMPLE))
    hospital = paths["hospital"]
    text = hospital.read_text()
    hospital.write_text(text.replace('file = "plan.toml"', 'file = "nope.toml"'))
    with pytest.raises(ConfigError, match=re.escape(f"{hospital}: [plan] file: {hospital.parent / 'nope.toml'} does not exist")):
        load_party_config(hospital)
    hospital.write_text(text.replace('file = "plan.toml"', 'file = "plan.toml"\nsigned = true'))
    with pytest.raises(ConfigError, match=re.escape(f"{hospital}: unknown key [plan] signed (known keys: file)")):
        load_party_config(hospital)
    (tmp_path / "dep" / "plan.toml").write_text(EXAMPLE.read_text().replace("alpha = 0.1", "alpha = -1"))
    hospital.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(
        f"{hospital.parent / 'plan.toml'}: [[analysis]] 2 (days) alpha: must be a positive number (a list needs folds = K), got an integer (-1)"
    )):
        load_party_config(hospital)


async def establish(configs: dict[str, Any]) -> dict[str, Any]:
    outcomes: dict[str, Any] = {}

    async def one(role: str) -> None:
        try:
            outcomes[role] = await establish_links(configs[role], session=os.urandom(16) if role == "hospital" else None)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcomes[role] = exc

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for role in configs:
                nursery.start_soon(one, role)
    return outcomes


@pytest.mark.parametrize("insurer_plan", ["another", "none"])
async def test_parties_with_different_plans_are_refused_at_the_hello_naming_both_digests(tmp_path: Path, insurer_plan: str) -> None:
    paths = deploy(tmp_path / "dep", "--plan", str(EXAMPLE))
    ours = load(EXAMPLE).digest.hex()[:16]
    if insurer_plan == "another":
        write(tmp_path / "dep", EXAMPLE.read_text().replace("alpha = 0.1", "alpha = 0.2"), "insurer-plan.toml")
        text = paths["insurer"].read_text().replace('file = "plan.toml"', 'file = "insurer-plan.toml"')
        theirs = f"{load(tmp_path / 'dep' / 'insurer-plan.toml').digest.hex()[:16]}..."
    else:
        text = paths["insurer"].read_text().replace('[plan]  # the study plan every party signed off (docs/plan.md)\nfile = "plan.toml"\n', "")
        theirs = "(none: the default plan)"
    paths["insurer"].write_text(text)
    configs = {role: replace(load_party_config(paths[role]), connect_deadline=10) for role in ("hospital", "insurer")}
    outcomes = await establish(configs)
    for role in ("hospital", "insurer"):
        assert isinstance(outcomes[role], PeerProtocolError), outcomes[role]
    # each side judges the hellos, so each names its own digest first
    assert f"plan digests differ: ours {ours}..., theirs {theirs} at insurer;" in str(outcomes["hospital"])
    assert f"plan digests differ: ours {theirs}, theirs {ours}... at hospital;" in str(outcomes["insurer"])


def test_check_prints_the_plan_digest_the_operators_compare(tmp_path: Path) -> None:
    paths = deploy(tmp_path / "dep", "--plan", str(EXAMPLE))
    paths["hospital"].write_text(paths["hospital"].read_text().replace("connect = 120", "connect = 1"))
    result = CliRunner().invoke(main, ["check", "--config", str(paths["hospital"])])
    assert result.exit_code == 6  # nobody else runs
    assert (f"  plan 'Heart failure: what drives hospital days': digest {load(EXAMPLE).digest.hex()} "
            "(every party's must be the same)") in result.output.splitlines()
