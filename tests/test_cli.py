"""The command line as a user runs it: defaults end to end, CSV input, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mpcactors.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.slow
def test_simulate_with_the_defaults_users_get():
    """The README's main command: 3072-bit keys, built-in synthetic data, full protocol."""
    result = run("simulate", "--json", "--verify")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["parameters"]["key_bits"] == 3072
    assert doc["verified"] is True
    assert doc["verification"]["table_matches"] is True
    assert doc["verification"]["lasso"]["max_relative_difference"] <= 1e-3
    assert doc["intersection_size"] > 100
    result_doc = doc["result"]
    assert set(result_doc) >= {"coefficients", "intercept", "r2", "iterations"}
    assert "hospital_days" not in result_doc["coefficients"]
    steps = {(e["step"], e["party"]) for e in doc["steps"]}
    assert {(s, p) for s in range(1, 9) for p in ("hospital", "insurer")} <= steps
    assert {(s, "ttp") for s in range(4, 9)} <= steps
    assert all(e["seconds"] >= 0 and e["bytes_sent"] >= 0 and e["messages_sent"] >= 0 for e in doc["steps"])


@pytest.mark.slow
def test_synth_then_simulate_from_csv(tmp_path):
    out = tmp_path / "data"
    result = run("synth", "--rows", "150", "--overlap", "0.6", "--seed", "4", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "hospital.csv").exists() and (out / "insurer.csv").exists()
    result = run(
        "simulate", "--hospital", str(out / "hospital.csv"), "--insurer", str(out / "insurer.csv"),
        "--key-bits", "2048", "--alpha", "0.5", "--verify",
    )
    assert result.exit_code == 0, result.output
    assert "verified: yes" in result.output
    assert "lasso: lasso model of hospital_days (alpha=0.5)" in result.output
    assert "prior_admissions" in result.output


@pytest.mark.slow
def test_three_sources_from_csv_files_by_name(tmp_path):
    """A three-source study: synth writes one CSV per party, simulate takes them by name."""
    out = tmp_path / "data"
    result = run("synth", "--parties", "3", "--rows", "150", "--overlap", "0.6", "--seed", "4", "--out", str(out))
    assert result.exit_code == 0, result.output
    inputs = [f"--input={name}={out / (name + '.csv')}" for name in ("hospital", "insurer", "cbs")]
    result = run("simulate", *inputs, "--key-bits", "2048", "--target", "household_income", "--json", "--verify")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["verified"] is True
    assert set(doc["rows"]) == set(doc["dropped_missing"]) == {"hospital", "insurer", "cbs"}
    owners = doc["result"]["owners"]
    assert owners["age"] == "hospital" and owners["gp_visits"] == "insurer" and owners["household_size"] == "cbs"
    assert {e["party"] for e in doc["steps"]} == {"hospital", "insurer", "cbs", "ttp"}


@pytest.mark.slow
def test_built_in_data_for_named_parties_with_chosen_compute_parties():
    result = run("simulate", "--parties", "gp,clinic,town", "--compute", "clinic,town", "--rows", "60",
                 "--key-bits", "2048", "--target", "household_size", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert set(doc["rows"]) == {"gp", "clinic", "town"}
    deleted = {(e["party"], e["step"]): e["deleted"] for e in doc["steps"]}
    assert "mpc_state" in deleted[("town", 8)] and "mpc_state" not in deleted.get(("gp", 8), [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--input", "cbs"), "give NAME=FILE"),
        (("--input", "a=x.csv"), "at least two tables"),
        (("--input", "a=x.csv", "--input", "a=y.csv"), "names 'a' twice"),
        (("--input", "ttp=x.csv", "--input", "b=y.csv"), "trusted third party's name"),
        (("--parties", "1"), "2 to 64 data parties"),
        (("--compute", "hospital,cbs"), "compute parties must be two distinct data parties"),
    ],
)
def test_bad_party_options_are_config_errors(args, message, tmp_path):
    result = run("simulate", "--rows", "40", "--key-bits", "2048", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_missing_input_file_is_a_clear_input_error(tmp_path):
    missing = tmp_path / "nope.csv"
    (tmp_path / "insurer.csv").write_text("id,x\n")
    result = run("simulate", "--hospital", str(missing), "--insurer", str(tmp_path / "insurer.csv"))
    assert result.exit_code == 3
    assert str(missing) in result.output
    assert "Traceback" not in result.output


def test_unknown_target_is_a_config_error():
    result = run("simulate", "--rows", "50", "--target", "length_of_stay")
    assert result.exit_code == 2
    assert "length_of_stay" in result.output and "hospital_days" in result.output


def test_only_one_csv_is_a_config_error(tmp_path):
    result = run("simulate", "--hospital", str(tmp_path / "h.csv"))
    assert result.exit_code == 2
    assert "both --hospital and --insurer" in result.output


def test_too_small_overlap_exits_nonzero_with_the_reason():
    result = run("simulate", "--rows", "40", "--overlap", "0.1", "--key-bits", "2048", "--min-intersection", "10")
    assert result.exit_code == 3
    assert "below the minimum of 10" in result.output


def test_verify_without_scikit_learn_names_the_extra_before_the_run(tmp_path):
    """A plain ``pip install mpcactors`` has no scikit-learn: one line and exit 2, no traceback."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['sklearn'] = None  # as if not installed\n")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-m", "mpcactors", "simulate", "--verify", "--rows", "40", "--key-bits", "2048"],
        capture_output=True, text=True, check=False, timeout=120, env={**os.environ, "PYTHONPATH": path},
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr == "error: --verify needs scikit-learn: pip install 'mpcactors[verify]'\n"


def test_python_dash_m_entry_point():
    completed = subprocess.run([sys.executable, "-m", "mpcactors", "--help"], capture_output=True, text=True, check=False)
    assert completed.returncode == 0
    assert "simulate" in completed.stdout and "synth" in completed.stdout


@pytest.mark.parametrize("command", ["simulate", "synth"])
def test_help_describes_each_command(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "--" in result.output
