"""Benchmark of the secure OLS with standard errors alone (three parties in one process via run_local).

Usage::

    python benchmarks/linear.py                 # pilot size (5,000 rows, 30 attributes) + diabetes
    python benchmarks/linear.py --write-docs    # and rewrite the "Linear regression" section

What it measures, per data set: the CPU seconds each party spends inside its program (its
generator, timed per party; the three share one process), the CPU of the whole run
(with ``run_local``'s message passing), the wall time (the machine is shared: see the load), the local Gram products (timed separately, the only part that
grows with ``m``), rounds and bytes sent per party (``Engine.statistics()``), and the
largest relative error against statsmodels ``OLS(y, add_constant(X)).fit()`` over
params, bse, pvalues, rsquared and scale. The reference measured in the same run is
statsmodels' own fit on the plaintext (CPU, mean of 20 after a warm-up; the ratio of
the slowest party's CPU to it is the price of the secrecy, without the network).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

# one BLAS thread: statsmodels' CPU time and the parties' Gram products are then
# single-core figures (spinning BLAS threads inflate CPU time on a loaded machine)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, fmt_bytes, git_commit, load_average, machine_line, markdown_table, now  # noqa: E402

from mpcactors.crypto import shamir  # noqa: E402
from mpcactors.crypto.fixedpoint import Params  # noqa: E402
from mpcactors.mpc.engine import Engine, run_local  # noqa: E402
from mpcactors.mpc.lasso import local_gram  # noqa: E402
from mpcactors.mpc.linalg import SpdLayout  # noqa: E402
from mpcactors.mpc.linear import inference, linear_fit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Linear regression with standard errors (step 8)"
PARAMS = Params()


def pilot(m: int = 5000, d: int = 30, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Thirty raw, badly scaled attributes (costs up to 1e5 next to 0/1 flags and counts,
    some correlated) and a count-like outcome from a linear model plus noise."""
    g = np.random.default_rng(seed)
    cols = []
    for j in range(d):
        kind = j % 5
        if kind == 0:
            cols.append(g.uniform(40, 95, m))
        elif kind == 1:
            cols.append(g.integers(0, 2, m).astype(float))
        elif kind == 2:
            cols.append(g.uniform(0, 100000, m))
        elif kind == 3:
            cols.append(g.integers(0, 31, m).astype(float))
        else:
            cols.append(0.5 * cols[-4] + g.normal(0, 10, m))  # correlated with an age-like column
    x = np.column_stack(cols)
    beta = g.normal(0, 1, d) / x.std(axis=0)
    y = 3.0 + x @ beta + g.normal(0, 1.5, m)
    return x, y


def timed(program, seconds: dict[int, float], party: int):
    """Run ``program`` as a generator, adding the time spent inside it to ``seconds[party]``."""
    value = None
    while True:
        start = time.process_time()
        try:
            out = program.send(value)
        except StopIteration as stop:
            seconds[party] += time.process_time() - start
            return stop.value
        seconds[party] += time.process_time() - start
        value = yield out


def run(name: str, x: np.ndarray, y: np.ndarray) -> list[str]:
    m, d = x.shape
    xe = [PARAMS.encode(row) for row in x]
    ye = PARAMS.encode(y)
    flat = shamir.share([v for row in xe for v in row] + ye, random.Random(1), PARAMS.prime)
    xs = {i: [flat[i][r * d : (r + 1) * d] for r in range(m)] for i in (1, 2, 3)}
    ys = {i: flat[i][m * d :] for i in (1, 2, 3)}
    xd = np.array(xe, dtype=float) / 2**PARAMS.frac_bits
    yd = np.array(ye, dtype=float) / 2**PARAMS.frac_bits

    start = time.perf_counter()
    local_gram([row + [v] for row, v in zip(xs[1], ys[1])], PARAMS.prime)
    gram_seconds = time.perf_counter() - start

    engines = {i: Engine(i, PARAMS, b"linear benchmark") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    for e in engines.values():
        e._stats.clear()  # count the program only, not the key agreement
    seconds = {1: 0.0, 2: 0.0, 3: 0.0}
    start, cpu_start = time.perf_counter(), time.process_time()
    results = run_local({
        i: timed(linear_fit(engines[i], xs[i], ys[i], m=m, d=d, min_cell=10), seconds, i) for i in (1, 2, 3)
    })
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start

    sm.OLS(yd, sm.add_constant(xd)).fit()  # warm up (imports, caches)
    start = time.process_time()
    repeats = 20
    for _ in range(repeats):
        fit = sm.OLS(yd, sm.add_constant(xd)).fit()
        fit.bse, fit.pvalues  # noqa: B018 (computed lazily)
    reference = (time.process_time() - start) / repeats
    rows = inference(results[1])
    order = list(range(1, d + 1)) + [0]
    errors = [
        np.max(np.abs(np.array([r[0] for r in rows]) / fit.params[order] - 1)),
        np.max(np.abs(np.array([r[1] for r in rows]) / fit.bse[order] - 1)),
        max((abs(a / b - 1) if b else abs(a)) for a, b in zip([r[3] for r in rows], fit.pvalues[order])),
        abs(results[1].r2 / fit.rsquared - 1),
        abs(results[1].sigma2 / fit.scale - 1),
    ]
    stats = [e.statistics() for e in engines.values()]
    rounds = sum(s["rounds"] for s in stats[0].values())
    sent = [sum(s["bytes"] for s in st.values()) for st in stats]
    print(f"{name}: m={m} d={d} rounds={rounds} bytes={sent} seconds={seconds} wall={wall:.2f} cpu={cpu:.2f} "
          f"gram={gram_seconds:.2f} statsmodels={reference:.4f} max rel error={max(errors):.1e}")
    return [
        name, f"{m:,}", str(d), str(rounds), " / ".join(fmt_bytes(b) for b in sent),
        " / ".join(f"{seconds[i]:.2f}" for i in (1, 2, 3)), f"{cpu:.2f}", f"{wall:.2f}", f"{gram_seconds:.2f}",
        f"{reference * 1000:.1f} ms", f"{max(seconds.values()) / reference:,.0f}", f"{max(errors):.0e}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true", help="rewrite the section in docs/benchmarks.md")
    args = parser.parse_args()
    load_before = load_average()
    started = now()
    table = [run("pilot (synthetic)", *pilot()), run("diabetes (raw)", *load_diabetes(return_X_y=True, scaled=False))]
    headers = [
        "data", "rows", "attributes", "rounds", "bytes sent (party 1 / 2 / 3)", "CPU s per party (1 / 2 / 3)",
        "CPU s, whole run", "wall s", "local Gram s (party 1)", "statsmodels CPU (same run)",
        "slowest party / statsmodels", "max rel. error",
    ]
    text = "\n".join([
        f"- Command: `{command_line()}`",
        f"- Machine: {machine_line()}",
        f"- Commit: {git_commit()}; started {started} UTC; load average {load_before:.1f} before, "
        f"{load_average():.1f} after",
        "",
        markdown_table(headers, table),
        "",
        f"Of the rounds, {2 * SpdLayout(PARAMS, 30).iterations} (pilot) and {2 * SpdLayout(PARAMS, 10).iterations} "
        "(diabetes) are the Newton-Schulz schedule (2 per step: each product fused with its truncation); the rest are the normalisation, "
        "the singular bit and the openings. The local Gram products are the only part that "
        "grows with the rows.",
    ])
    print(text)
    if args.write_docs:
        content = DOCS.read_text(encoding="utf-8")
        start, end = "<!-- linear:results -->", "<!-- /linear:results -->"
        block = f"{start}\n{text}\n{end}"
        if start in content:
            head, _, rest = content.partition(start)
            _, _, tail = rest.partition(end)
            content = head + block + tail
        else:
            content = content.rstrip("\n") + f"\n\n{SECTION}\n\n{INTRO}\n\n{block}\n"
        DOCS.write_text(content, encoding="utf-8")
        print(f"updated {DOCS}")


INTRO = """What: `linear_fit` (OLS with intercept, standard errors, R^2; `mpc/linear.py`) on the
pilot size (5,000 rows, 30 raw, badly scaled attributes) and on scikit-learn's diabetes
data (442 rows, 10 raw attributes), the three parties in one process (`run_local`), so
the wall time has no network in it; rounds and bytes are what a deployment sends. The
round count depends only on `m` (the normalisation's comparison range) and `d`, never on
the values. The error column is the largest relative difference from statsmodels over
params, bse, pvalues, R^2 and scale (`docs/linear.md`)."""


if __name__ == "__main__":
    main()
