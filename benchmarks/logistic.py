"""Benchmark of the secure logistic regression alone (three parties in one process via run_local).

Usage::

    python benchmarks/logistic.py                    # breast cancer, first ten raw features
    python benchmarks/logistic.py --pilot            # also the pilot size: cost of one Newton iteration

What it measures, per data set: wall time of the whole program (the three parties run in
turn in one process, so a party's share is about a third), rounds and bytes sent per party
(party 1), the Newton iteration count, and the largest relative error of the coefficients
and standard errors against statsmodels ``Logit`` on the decoded data.

The pilot size (5,000 rows, 30 raw attributes, a synthetic binary outcome) is measured as
the difference of two runs with ``max_iter = 1`` and ``max_iter = 2``: the cost of one Newton
iteration (a sigmoid and Hessian over all rows plus one inverse), since a converged fit there
takes several minutes in one Python process. Prints a markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
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
    start = time.perf_counter()
    results = run_local({i: logistic_fit(engines[i], xs[i], ys[i], m=m, d=d, min_cell=5, **options) for i in (1, 2, 3)})
    wall = time.perf_counter() - start
    stats = engines[1].statistics()
    xd = np.array(xe, dtype=float) / 2**PARAMS.frac_bits
    yd = np.array(ye, dtype=float) / 2**PARAMS.frac_bits
    return {
        "result": results[1],
        "wall": wall,
        "rounds": sum(s["rounds"] for s in stats.values()) - stats.get("setup", {}).get("rounds", 0),
        "bytes": sum(s["bytes"] for s in stats.values()),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pilot", action="store_true", help="also measure one iteration at 5,000 x 30")
    args = parser.parse_args()
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
    if args.pilot:
        x, y = pilot_data()
        one = run(x, y, max_iter=1)
        two = run(x, y, max_iter=2)
        print(f"| pilot, max_iter = 1 | 5000 x 30 | 1 | {one['rounds']} | {one['bytes'] / 2**20:.1f} | {one['wall']:.0f} s | - |")
        print(f"| pilot, max_iter = 2 | 5000 x 30 | 2 | {two['rounds']} | {two['bytes'] / 2**20:.1f} | {two['wall']:.0f} s | - |")
        print(f"| pilot, one Newton iteration (difference) | 5000 x 30 | - | {two['rounds'] - one['rounds']} | "
              f"{(two['bytes'] - one['bytes']) / 2**20:.1f} | {two['wall'] - one['wall']:.0f} s | - |")
    load = os.getloadavg()
    print()
    print(f"Load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.")


if __name__ == "__main__":
    main()
