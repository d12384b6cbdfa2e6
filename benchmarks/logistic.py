"""Benchmark of the secure logistic regression alone (three parties in one process via run_local).

Usage::

    python benchmarks/logistic.py                    # breast cancer, first ten raw features
    python benchmarks/logistic.py --pilot            # also the pilot size: cost of one Newton iteration
    python benchmarks/logistic.py --pilot --converged   # the pilot fit to convergence instead (minutes)

What it measures, per data set: wall time of the whole program (the three parties run in
turn in one process, so a party's share is about a third), rounds and bytes sent per party
(party 1), the Newton iteration count, and the largest relative error of the coefficients
and standard errors against statsmodels ``Logit`` on the decoded data.

The pilot size (5,000 rows, 30 raw attributes, a synthetic binary outcome) is measured as
the difference of two runs with ``max_iter = 1`` and ``max_iter = 2``: the cost of one Newton
iteration (a sigmoid and Hessian over all rows plus one inverse), since a converged fit there
takes several minutes in one Python process. With ``--converged`` the pilot fit instead runs
once to convergence: iterations, rounds, bytes sent by each party (setup excluded), seconds
and the largest relative error of params and bse against statsmodels, as a table and one
JSON line. Prints a markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import time

import numpy as np
import statsmodels.api as sm
from sklearn.datasets import load_breast_cancer

from mpcactors.crypto import shamir
from mpcactors.crypto.fixedpoint import Params
from mpcactors.mpc.engine import Engine, run_local
from mpcactors.mpc.logistic import logistic_fit

PARAMS = Params()


def run(x: np.ndarray, y: np.ndarray, **options) -> dict:
    m, d = x.shape
    xe = [PARAMS.encode(row) for row in x]
    ye = PARAMS.encode(y)
    flat = shamir.share([v for row in xe for v in row] + ye, random.Random(1), PARAMS.prime)
    xs = {i: [flat[i][r * d : (r + 1) * d] for r in range(m)] for i in (1, 2, 3)}
    ys = {i: flat[i][m * d :] for i in (1, 2, 3)}
    engines = {i: Engine(i, PARAMS, b"logistic benchmark") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    start, cpu = time.perf_counter(), time.process_time()
    results = run_local({i: logistic_fit(engines[i], xs[i], ys[i], m=m, d=d, min_cell=5, **options) for i in (1, 2, 3)})
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    stats = engines[1].statistics()
    xd = np.array(xe, dtype=float) / 2**PARAMS.frac_bits
    yd = np.array(ye, dtype=float) / 2**PARAMS.frac_bits
    return {
        "result": results[1],
        "wall": wall,
        "cpu": cpu,
        "rounds": sum(s["rounds"] for s in stats.values()) - stats.get("setup", {}).get("rounds", 0),
        "bytes": sum(s["bytes"] for s in stats.values()),
        "bytes_per_party": [sum(s["bytes"] for label, s in engines[i].statistics().items() if label != "setup")
                            for i in (1, 2, 3)],
        "xd": xd,
        "yd": yd,
    }


def errors(out: dict) -> tuple[float, float]:
    ref = sm.Logit(out["yd"], sm.add_constant(out["xd"])).fit(disp=0, tol=1e-12, maxiter=100)
    r = out["result"]
    ours = np.array((r.intercept, *r.coefficients))
    ours_se = np.array((r.intercept_se, *r.se))
    return float(np.max(np.abs(ours - ref.params) / np.abs(ref.params))), float(np.max(np.abs(ours_se - ref.bse) / ref.bse))


def pilot_data(m: int = 5000, d: int = 30, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Thirty raw columns on scales from 0.01 to 10^5; outcome from a logistic model on six of them."""
    g = np.random.default_rng(seed)
    scales = np.logspace(-2, 5, d)
    x = g.normal(0, 1, (m, d)) * scales + 3 * scales
    z = (x - 3 * scales) / scales
    eta = -0.5 + z[:, :6] @ np.array([0.8, -0.5, 0.3, 0.6, -0.2, 0.4])
    y = (g.uniform(size=m) < 1 / (1 + np.exp(-eta))).astype(float)
    return x, y


def converged_pilot(x: np.ndarray, y: np.ndarray) -> dict:
    """One fit at the pilot size to convergence (default ``max_iter``): prints a table and a JSON line."""
    load_before = os.getloadavg()[0]
    out = run(x, y)
    load_after = os.getloadavg()[0]
    ec, es = errors(out)
    r = out["result"]
    record = {
        "benchmark": "logistic_pilot_converged", "rows": len(x), "attributes": x.shape[1],
        "iterations": r.iterations, "converged": r.converged, "rounds_per_party": out["rounds"],
        "bytes_per_party": out["bytes_per_party"], "seconds": round(out["wall"], 1),
        "max_rel_error_params": ec, "max_rel_error_bse": es,
        "load_before": load_before, "load_after": load_after,
    }
    print("| data | iterations (converged) | rounds per party | MiB sent, party 1 / 2 / 3 | wall, 3 parties | max rel. error params / bse |")
    print("|---|---:|---:|---|---:|---|")
    print(f"| pilot, 5000 x 30 raw, to convergence | {r.iterations} ({'yes' if r.converged else 'no'}) | {out['rounds']} | "
          + " / ".join(f"{b / 2**20:.1f}" for b in out["bytes_per_party"])
          + f" | {out['wall']:.0f} s | {ec:.1e} / {es:.1e} |")
    print(json.dumps(record), flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pilot", action="store_true", help="also measure one iteration at 5,000 x 30")
    parser.add_argument("--converged", action="store_true",
                        help="with --pilot: run the pilot fit once to convergence (minutes) instead of max_iter 1 and 2")
    args = parser.parse_args()
    if args.converged and not args.pilot:
        parser.error("--converged needs --pilot")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    print(f"- Machine: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, Python {platform.python_version()}")
    print(f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, "
          f"load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    print()
    print("| data | rows x cols | iterations | rounds per party | MiB sent per party | wall, 3 parties | max rel. error coef / se |")
    print("|---|---|---:|---:|---:|---:|---|")
    x, y = load_breast_cancer(return_X_y=True)
    out = run(x[:, :10], y.astype(float))
    ec, es = errors(out)
    r = out["result"]
    print(f"| breast cancer, first 10 raw | 569 x 10 | {r.iterations} | {out['rounds']} | "
          f"{out['bytes'] / 2**20:.1f} | {out['wall']:.1f} s | {ec:.1e} / {es:.1e} |", flush=True)
    if args.pilot and not args.converged:
        x, y = pilot_data()
        one = run(x, y, max_iter=1)
        two = run(x, y, max_iter=2)
        print(f"| pilot, max_iter = 1 | 5000 x 30 | 1 | {one['rounds']} | {one['bytes'] / 2**20:.1f} | {one['wall']:.0f} s | - |")
        print(f"| pilot, max_iter = 2 | 5000 x 30 | 2 | {two['rounds']} | {two['bytes'] / 2**20:.1f} | {two['wall']:.0f} s | - |")
        print(f"| pilot, one Newton iteration (difference) | 5000 x 30 | - | {two['rounds'] - one['rounds']} | "
              f"{(two['bytes'] - one['bytes']) / 2**20:.1f} | {two['wall'] - one['wall']:.0f} s | - |")
    if args.converged:
        print()
        converged_pilot(*pilot_data())
    load = os.getloadavg()
    print()
    print(f"Load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.")


if __name__ == "__main__":
    main()
