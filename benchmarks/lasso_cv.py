"""Benchmark of the cross-validated lasso (``mpc/lasso_cv.py``) against one lasso fit, same run.

Usage::

    python benchmarks/lasso_cv.py                 # pilot size and diabetes, print a markdown block
    python benchmarks/lasso_cv.py --write-docs    # and replace the block at the end of docs/benchmarks.md
    python benchmarks/lasso_cv.py --quick         # diabetes only

Three parties in one process (``run_local``). For each data set: ``lasso_cv_fit`` over a
grid of alphas with K folds, then in the same run the reference: one ``lasso_fit`` at the
chosen alpha (the computation a user would otherwise run once the penalty is known) and
one at the grid's smallest alpha (the slowest to converge). Rounds and bytes come from
``Engine.statistics()``; CPU time is the sum over the three parties. Accuracy: the CV
errors against scikit-learn ``Lasso(alpha, tol=1e-12)`` fitted per fold on the same
``KFold(K)`` split of the same fixed-point data, and the chosen alpha.

Data: the pilot workload's synthetic cohort (``mpcactors.synth.make_cohort``: 5,000 rows
per party, 15 + 15 attributes, overlap 0.5; the plaintext join, rows with a missing cell
dropped; 29 raw features, target ``hospital_days``) and scikit-learn's diabetes data
(442 rows, 10 raw features, columns split between the two parties).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso
from sklearn.model_selection import KFold

from mpcactors.crypto import shamir
from mpcactors.crypto.fixedpoint import Params
from mpcactors.data import plaintext_join
from mpcactors.mpc.engine import Engine, run_local
from mpcactors.mpc.lasso import lasso_fit
from mpcactors.mpc.lasso_cv import lasso_cv_fit
from mpcactors.synth import cohort_tables, make_cohort

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Cross-validated lasso"
PARAMS = Params()
F = PARAMS.frac_bits
GRID = (0.3, 0.1, 0.03, 0.01, 0.003)  # times the smallest alpha that zeroes every coefficient
FOLDS = 5


def pilot_data() -> tuple[np.ndarray, np.ndarray, list[int], str]:
    cohort = make_cohort(5000, 0.5, seed=0, hospital_attributes=15, insurer_attributes=15, intervention=False)
    hospital, insurer = cohort_tables(cohort, params=PARAMS)
    columns, joined = plaintext_join(hospital, insurer)
    target = columns.index("hospital_days")
    features = [c for c in range(len(columns)) if c != target]
    owners = [1 if c < len(hospital.columns) else 2 for c in features]
    x = joined[:, features].astype(float) / 2**F
    return x, joined[:, target].astype(float) / 2**F, owners, "pilot cohort"


def diabetes_data() -> tuple[np.ndarray, np.ndarray, list[int], str]:
    x, y = load_diabetes(return_X_y=True, scaled=False)
    return x, y, [1, 1, 1, 1, 2, 2, 2, 2, 2, 1], "diabetes"


def share(x: np.ndarray, y: np.ndarray, owners: list[int]):
    m, d = x.shape
    xe = [PARAMS.encode(row) for row in x]
    ye = PARAMS.encode(y)
    flat = shamir.share([v for row in xe for v in row] + ye, random.Random(1))
    xs = {i: [flat[i][r * d : (r + 1) * d] for r in range(m)] for i in (1, 2, 3)}
    ys = {i: flat[i][m * d :] for i in (1, 2, 3)}
    xd, yd = np.array(xe, dtype=float) / 2**F, np.array(ye, dtype=float) / 2**F
    scales: dict[int, dict[int, float]] = {1: {}, 2: {}, 3: {}}
    for j in range(d):
        scales[owners[j]][j] = float(np.abs(xd[:, j]).max())
    scales[2][d] = float(np.abs(yd).max())  # the insurer owns the target
    return xs, ys, xd, yd, scales


def run(make) -> dict:
    engines = {i: Engine(i, PARAMS) for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    wall, cpu = time.perf_counter(), time.process_time()
    results = run_local({i: make(i, engines[i]) for i in (1, 2, 3)})
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert results[1] == results[2] == results[3]
    stats = [engines[i].statistics() for i in (1, 2, 3)]
    return {
        "result": results[1],
        "wall": wall,
        "cpu": cpu,
        "rounds": max(sum(v["rounds"] for v in s.values()) for s in stats),
        "bytes": max(sum(v["bytes"] for v in s.values()) for s in stats),
    }


def measure(data) -> dict:
    x, y, owners, name = data
    m, d = x.shape
    xs, ys, xd, yd, scales = share(x, y, owners)
    amax = float(np.abs((xd - xd.mean(0)).T @ (yd - yd.mean())).max() / m)
    alphas = [float(f"{g * amax:.4g}") for g in GRID]
    common = {"m": m, "d": d, "owners": owners, "target_owner": 2}
    cv = run(lambda i, e: lasso_cv_fit(e, xs[i], ys[i], scales=scales[i], alphas=alphas, folds=FOLDS, **common))
    chosen = cv["result"].alpha
    single = run(lambda i, e: lasso_fit(e, xs[i], ys[i], scales=scales[i], alpha=chosen, **common))
    slowest = run(lambda i, e: lasso_fit(e, xs[i], ys[i], scales=scales[i], alpha=min(alphas), **common))
    reference = []
    for a in alphas:
        errors = []
        for train, test in KFold(FOLDS).split(xd):
            model = Lasso(alpha=a, tol=1e-12, max_iter=10**6).fit(xd[train], yd[train])
            errors.append(float(np.mean((model.predict(xd[test]) - yd[test]) ** 2)))
        reference.append(float(np.mean(errors)))
    ours = np.array(cv["result"].cv_error)
    final = Lasso(alpha=chosen, tol=1e-12, max_iter=10**6).fit(xd, yd)
    largest = float(np.abs(final.coef_).max())
    return {
        "name": name, "m": m, "d": d, "alphas": alphas, "cv": cv, "single": single, "slowest": slowest,
        "cv_rel_error": float((np.abs(ours - reference) / np.array(reference)).max()),
        "same_alpha": alphas[int(np.argmin(reference))] == chosen,
        "coef_error": float(np.abs(np.array(cv["result"].model.coefficients) - final.coef_).max() / largest),
    }


def block(results: list[dict], command: str, load_before: str, load_after: str) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    cpu_name = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION, "",
        f"Measured {date} on {cpu_name}, nproc {os.cpu_count()}, Python {platform.python_version()}, commit {commit}; "
        f"load average {load_before} before, {load_after} after (shared machine: wall times vary with the load, "
        "rounds and bytes do not). "
        f"Command: `{command}`. Three parties in one process (`run_local`); CPU is the sum over the parties, bytes "
        f"are per party (the largest). Grid: {len(GRID)} alphas ({', '.join(str(g) for g in GRID)} times the "
        f"smallest alpha that zeroes every coefficient), K = {FOLDS} folds (`KFold({FOLDS})` split); the "
        "cross-validated run fits every alpha on every fold's training rows and on all rows "
        f"({len(GRID)} x {FOLDS + 1} = {len(GRID) * (FOLDS + 1)} problems) in one batched FISTA. "
        "References in the same run: one `lasso_fit` at the chosen alpha, and one at the grid's smallest "
        "alpha (the slowest to converge).",
        "",
        "| data | run | iterations | rounds/party | bytes/party | wall s | CPU s | rounds ratio | bytes ratio | CPU ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ref = r["single"]
        for label, run_ in ((f"cross-validated, {len(GRID)} alphas x {FOLDS} folds", r["cv"]),
                            (f"one fit, chosen alpha {r['cv']['result'].alpha:g}", ref),
                            (f"one fit, smallest alpha {min(r['alphas']):g}", r["slowest"])):
            res = run_.get("result")
            iterations = res.model.iterations if hasattr(res, "model") else res.iterations
            lines.append(
                f"| {r['name']} ({r['m']} x {r['d']}) | {label} | {iterations} | {run_['rounds']:,} | "
                f"{run_['bytes']:,} | {run_['wall']:.1f} | {run_['cpu']:.1f} | "
                f"{run_['rounds'] / ref['rounds']:.2f} | {run_['bytes'] / ref['bytes']:.1f} | "
                f"{run_['cpu'] / ref['cpu']:.1f} |"
            )
    lines += ["", "Accuracy (same run):", ""]
    for r in results:
        lines.append(
            f"- {r['name']}: alphas {', '.join(f'{a:g}' for a in r['alphas'])}; CV errors within "
            f"{r['cv_rel_error']:.1e} relative of scikit-learn's per-fold `Lasso` (target 1e-4); chosen alpha "
            f"{r['cv']['result'].alpha:g}, {'the same as' if r['same_alpha'] else 'DIFFERENT from'} scikit-learn's; "
            f"final model's largest coefficient error {r['coef_error']:.1e} of the largest coefficient."
        )
    lines += ["", "Rounds ratio = rounds of the run / rounds of the one fit at the chosen alpha (target: at most 1.5)."]
    return "\n".join(lines) + "\n"


def write_docs(text: str) -> None:
    doc = DOCS.read_text()
    start = doc.find(SECTION)
    if start >= 0:
        nxt = doc.find("\n## ", start + len(SECTION))
        doc = doc[:start] + text + (doc[nxt + 1 :] if nxt >= 0 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOCS.write_text(doc)


def main() -> None:
    global GRID, FOLDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="diabetes only")
    parser.add_argument("--data", choices=("pilot", "diabetes", "both"), default="both")
    parser.add_argument("--grid", default=",".join(map(str, GRID)),
                        help="alphas as fractions of the smallest alpha that zeroes every coefficient")
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--write-docs", action="store_true", help="replace the section in docs/benchmarks.md")
    args = parser.parse_args()
    load_before = f"{os.getloadavg()[0]:.2f}"
    GRID = tuple(float(g) for g in args.grid.split(","))
    FOLDS = args.folds
    choice = "diabetes" if args.quick else args.data
    data = [make() for name, make in (("pilot", pilot_data), ("diabetes", diabetes_data)) if choice in (name, "both")]
    results = []
    for item in data:
        results.append(measure(item))
        print(f"{item[3]} done", file=sys.stderr, flush=True)
    text = block(results, "python " + " ".join(["benchmarks/lasso_cv.py", *sys.argv[1:]]), load_before,
                 f"{os.getloadavg()[0]:.2f}")
    print(text)
    if args.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
