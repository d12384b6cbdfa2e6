"""A short soak in the suite: consecutive runs of the deployed code path leave nothing behind.

The three parties run :func:`mpcactors.daemon.run_configured_party` from the configs of
``mpcactors deploy-example`` (mutual TLS over loopback TCP, 1024-bit test keys, a short
lasso), all in this process, several times in a row. After a warm-up run, each run
must leave the process with the same open file descriptors, no more threads than the
first run left, and roughly the same memory; and every run must reach the same result:
the intersection size exactly, the model within the MPC tolerance (the protocol's randomness is fresh
each run, so fixed-point rounding differs). The long version, 20 runs by three
separate processes, is ``benchmarks/soak.py``.
"""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

pytestmark = pytest.mark.slow

RUNS = 5
TOLERANCE = 1e-3  # of the largest coefficient, as the lasso's verification uses


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    from mpcactors.cli import main
    from mpcactors.daemon import load_party_config

    out = tmp_path_factory.mktemp("soak") / "deployment"
    result = CliRunner().invoke(main, ["deploy-example", "--out", str(out), "--rows", "40", "--insecure-test-keys"])
    assert result.exit_code == 0, result.output
    for role in ("hospital", "insurer", "ttp"):
        path = out / f"{role}.toml"
        path.write_text(path.read_text().replace("alpha = 0.1", "alpha = 0.1\nmax_iter = 15"))
    return out, {role: load_party_config(out / f"{role}.toml") for role in ("hospital", "insurer", "ttp")}


def relative_difference(a, b) -> float:
    largest = max(max(abs(v) for v in b["coefficients"].values()), 1e-12)
    diffs = [abs(a["coefficients"][k] - b["coefficients"][k]) for k in b["coefficients"]]
    return max([*diffs, abs(a["intercept"] - b["intercept"])]) / largest


def test_consecutive_runs_are_identical_and_leave_nothing_behind(configs):
    from mpcactors.data import plaintext_join
    from mpcactors.daemon import load_input
    from mpcactors.testing import run_deployment

    directory, parsed = configs
    expected = len(plaintext_join(load_input(parsed["hospital"]), load_input(parsed["insurer"]))[1])
    samples = []
    models = []
    for _ in range(RUNS):
        results = trio.run(run_deployment, parsed)
        sizes = {r.intersection_size for r in results.values()}
        assert sizes == {expected}
        documents = [r.result_document() for role, r in results.items() if role != "ttp"]
        assert all(d == documents[0] for d in documents)  # both recipients open the same model
        models.append(documents[0])
        del results, documents
        gc.collect()
        samples.append((len(os.listdir("/proc/self/fd")), threading.active_count(), _status("VmRSS")))

    after_warmup = samples[1:]
    assert len({fds for fds, _, _ in after_warmup}) == 1, f"open file descriptors vary: {samples}"
    # trio's thread cache keeps idle workers for 10 s, so the first run may end before one
    # is cached (CI saw 2 threads after run 1, 3 after every later run). A leak grows run by
    # run: measure after the warm-up run, as for descriptors; fewer (expired workers) is fine.
    assert max(threads for _, threads, _ in after_warmup) <= after_warmup[0][1], f"threads pile up: {samples}"
    growth_kib = max(rss for _, _, rss in after_warmup) - after_warmup[0][2]
    assert growth_kib < 16 * 1024, f"RSS grew by {growth_kib} KiB over {RUNS - 1} runs: {samples}"
    assert max(relative_difference(m, models[0]) for m in models[1:]) <= TOLERANCE
