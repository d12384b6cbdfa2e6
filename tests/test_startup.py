"""What a worker process imports before its first job: the crypto, not the command line.

A simulation's workers are forked from a forkserver (``Executor.shared``); each job
waits for its worker's imports, and every import costs CPU the two-core run needs for
Paillier work (``docs/benchmarks.md``, "Every core in one process").
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from multiprocessing import spawn

from click.testing import CliRunner

from mpcactors import cli
from mpcactors.actors.executor import _FORKSERVER_PRELOAD
from mpcactors.actors.hooks import DEFAULT_HOOKS


def fake_main(monkeypatch, **attributes) -> types.ModuleType:
    module = types.ModuleType("__main__")
    module.__file__ = "/venv/bin/mpcactors"
    module.__spec__ = None
    for name, value in attributes.items():
        setattr(module, name, value)
    monkeypatch.setitem(sys.modules, "__main__", module)
    return module


def test_workers_do_not_rerun_the_console_script(monkeypatch, tmp_path):
    """multiprocessing tells a new worker how to rebuild ``__main__``
    (``spawn.get_preparation_data``): from the console script's path (which imports the
    whole CLI) before the command runs, as ``python -m mpcactors`` (which it skips) after."""
    fake_main(monkeypatch, main=cli.main)
    assert spawn.get_preparation_data("worker")["init_main_from_path"] == "/venv/bin/mpcactors"
    result = CliRunner().invoke(cli.main, ["synth", "--rows", "5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = spawn.get_preparation_data("worker")
    assert "init_main_from_path" not in data
    assert data["init_main_from_name"] == "mpcactors.__main__"


def test_another_programs_main_module_is_left_alone(monkeypatch, tmp_path):
    """A script that calls the CLI (or pytest) may define jobs its workers need."""
    fake_main(monkeypatch, main=lambda: None)
    result = CliRunner().invoke(cli.main, ["synth", "--rows", "5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert spawn.get_preparation_data("worker")["init_main_from_path"] == "/venv/bin/mpcactors"


def test_the_forkserver_preloads_every_default_job_and_nothing_heavy():
    """The preload holds the modules of the default jobs (the secret-key jobs, the TTP's
    combination) and imports none of the actors, the CLI, numpy or the logging stack."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(_FORKSERVER_PRELOAD)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout))
    assert {DEFAULT_HOOKS.combine.__module__, "mpcactors.crypto.workers"} <= loaded
    heavy = {"mpcactors.actors", "mpcactors.cli", "mpcactors.config", "numpy", "click", "rich", "structlog"}
    assert not heavy & loaded


def test_the_command_line_loads_the_run_only_when_a_command_runs():
    """``mpcactors --help`` (and every command, before its body) imports the CLI only:
    not numpy, trio, the logging stack, the actors, the configuration or the MPC engine."""
    code = "import json, sys\nimport mpcactors.cli\nprint(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout))
    run_only = {"numpy", "trio", "structlog", "mpcactors.actors", "mpcactors.config", "mpcactors.plan",
                "mpcactors.mpc", "mpcactors.sim", "mpcactors.daemon", "rich.progress"}
    assert not run_only & loaded
