"""CPU of step 8 (the secure lasso over the MPC engine), one source tree against another.

Usage::

    git worktree add /tmp/engine-before <reference commit>
    python benchmarks/engine_cpu.py --before /tmp/engine-before [--repeat 3]
    python benchmarks/engine_cpu.py --profile pilot          # cProfile of this tree, top functions

Each measurement runs in a fresh interpreter whose ``PYTHONPATH`` is one tree's ``src``;
the two trees alternate (before, after, before, after, ...) so both see the same machine
load. Workloads, three parties in one process (``run_local``), seeded PRSS keys:

* ``pilot``: the pilot's step 8 (``benchmarks/pilot.py``): the joined table of
  ``mpcactors.synth.make_cohort(5000, overlap 0.5, seed 0, 15 + 15 attributes, no missing
  cells)``, i.e. 2,500 rows x 29 features + ``hospital_days``, hospital columns owned by
  party 1, insurer columns and the target by party 2, ``alpha = 0.1`` (the config default),
  each owner's scale its max-abs value;
* ``diabetes``: scikit-learn's diabetes (442 x 10, standardised), alpha 1.0, as in
  ``benchmarks/lasso.py``.

Per run: the CPU time of the whole program (``time.process_time``, all three parties), split
at the first ``iterate`` round and the first ``r2`` round into the one-off part and the FISTA
loop; CPU per iteration = loop CPU / iterations. The local Gram products are inside the
one-off part. Every run also prints a digest of the revealed values, ``engine.revealed`` and
the rounds, and the driver checks they are identical between the trees.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------
# the child: one workload on whatever mpcactors is importable
# ---------------------------------------------------------------------------------
def workload(name: str):  # -> (x float array, y float array, owners, alpha, target_owner)
    import numpy as np

    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True, scaled=True)
        return x, y, [1, 1, 1, 1, 2, 2, 2, 2, 2, 1], 1.0
    if name == "pilot":
        from mpcactors.synth import TARGET, make_cohort

        cohort = make_cohort(5000, 0.5, 0, hospital_attributes=15, insurer_attributes=15, missing_rate=0.0,
                             intervention=False)
        h = {r[0]: r[1:] for r in cohort.hospital_rows}
        i = {r[0]: r[1:] for r in cohort.insurer_rows}
        ids = sorted(cohort.intersection_ids)
        h_cols, i_cols = list(cohort.hospital_header[1:]), list(cohort.insurer_header[1:])
        t = i_cols.index(TARGET)
        keep = [c for c in range(len(i_cols)) if c != t]
        x = np.array([[float(v) for v in h[k]] + [float(i[k][c]) for c in keep] for k in ids])
        y = np.array([float(i[k][t]) for k in ids])
        return x, y, [1] * len(h_cols) + [2] * len(keep), 0.1
    raise SystemExit(f"unknown workload {name!r}")


def child(name: str, profile: bool) -> None:
    import random
    import time

    import numpy as np

    from mpcactors.crypto import shamir
    from mpcactors.crypto.fixedpoint import Params
    from mpcactors.mpc.engine import Engine, run_local
    from mpcactors.mpc.lasso import lasso_fit

    params = Params()
    x, y, owners, alpha = workload(name)
    m, d = x.shape
    xe = [params.encode(row) for row in x]
    ye = params.encode(y)
    flat = shamir.share([v for row in xe for v in row] + ye, random.Random(1), params.prime)
    xs = {i: [flat[i][r * d : (r + 1) * d] for r in range(m)] for i in (1, 2, 3)}
    ys = {i: flat[i][m * d :] for i in (1, 2, 3)}
    del flat
    f = params.frac_bits
    xd, yd = np.array(xe, dtype=float) / 2**f, np.array(ye, dtype=float) / 2**f
    scales: dict[int, dict[int, float]] = {1: {}, 2: {}, 3: {}}
    for j in range(d):
        scales[owners[j]][j] = float(np.abs(xd[:, j]).max())
    scales[2][d] = float(np.abs(yd).max())
    engines = {i: Engine(i, params, b"engine_cpu benchmark") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    marks: dict[str, float] = {}

    def timed(program):
        # pass everything through; note the CPU clock at the first iterate and r2 rounds
        value = None
        while True:
            try:
                exchange = program.send(value)
            except StopIteration as stop:
                return stop.value
            if exchange.label in ("iterate", "r2") and exchange.label not in marks:
                marks[exchange.label] = time.process_time()
            value = yield exchange

    programs = {
        i: timed(lasso_fit(engines[i], xs[i], ys[i], m=m, d=d, owners=owners, scales=scales[i],
                           alpha=alpha, target_owner=2))
        for i in (1, 2, 3)
    }
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        results = run_local(programs)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return
    start = time.process_time()
    results = run_local(programs)
    end = time.process_time()
    result = results[1]
    assert all(r == result for r in results.values())
    loop = marks["r2"] - marks["iterate"]
    stats = [e.statistics() for e in engines.values()]
    digest = hashlib.sha256(repr((result, [e.revealed for e in engines.values()])).encode()).hexdigest()[:16]
    from sklearn.linear_model import Lasso

    reference = Lasso(alpha=alpha, tol=1e-12, max_iter=10**6).fit(xd, yd)
    largest = float(np.abs(reference.coef_).max())
    print(json.dumps({
        "workload": name,
        "m": m,
        "d": d,
        "cpu": end - start,
        "loop_cpu": loop,
        "one_off_cpu": end - start - loop,
        "iterations": result.iterations,
        "per_iteration_ms": 1000 * loop / result.iterations,
        "rounds": max(sum(v["rounds"] for v in s.values()) for s in stats),
        "bytes": [sum(v["bytes"] for v in s.values()) for s in stats],
        "revealed": engines[1].revealed,
        "digest": digest,
        "coef_error": float(np.abs(np.array(result.coefficients) - reference.coef_).max() / largest),
        "r2": result.r2,
    }))


# ---------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------
def run_tree(tree: Path, name: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    done = subprocess.run([sys.executable, __file__, "--child", name], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{tree} {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def git_commit(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="the reference tree (a git worktree of the start commit)")
    parser.add_argument("--after", type=Path, default=ROOT, help="the tree under test (default: this one)")
    parser.add_argument("--workloads", default="pilot,diabetes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", metavar="WORKLOAD")
    parser.add_argument("--child", metavar="WORKLOAD", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, profile=False)
        return
    if args.profile:
        sys.path.insert(0, str(args.after / "src"))
        child(args.profile, profile=True)
        return
    if args.before is None:
        raise SystemExit("--before TREE is required (or --profile WORKLOAD)")
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    print(json.dumps({
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commits": {k: git_commit(v) for k, v in trees.items()},
        "python": platform.python_version(),
        "load": os.getloadavg(),
    }), flush=True)
    summary = {}
    for name in args.workloads.split(","):
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for _ in range(args.repeat):
            for which, tree in trees.items():
                r = run_tree(tree, name)
                runs[which].append(r)
                print(json.dumps({"tree": which, "load": os.getloadavg()[0], **r}), flush=True)
        b, a = runs["before"][0], runs["after"][0]
        for key in ("iterations", "rounds", "bytes", "revealed", "digest"):
            if any(r[key] != b[key] for r in runs["before"] + runs["after"]):
                raise SystemExit(f"{name}: {key} differs between the trees or runs")

        def med(which: str, key: str) -> float:
            return statistics.median(r[key] for r in runs[which])

        summary[name] = {
            "m": b["m"], "d": b["d"], "iterations": b["iterations"], "rounds": b["rounds"],
            "digest": b["digest"], "coef_error": (b["coef_error"], a["coef_error"]),
            **{f"{k}_{w}": med(w, k) for k in ("cpu", "one_off_cpu", "per_iteration_ms") for w in trees},
            "per_iteration_ratio": med("before", "per_iteration_ms") / med("after", "per_iteration_ms"),
            "cpu_ratio": med("before", "cpu") / med("after", "cpu"),
        }
        print(json.dumps({"summary": name, **summary[name]}), flush=True)
    print(json.dumps({"finished_load": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
