"""Soak: many consecutive protocol runs by the same three party processes, over mutual TLS.

A leak (memory, file descriptors, threads) only shows in a process that lives through
many runs, and ``mpcactors party`` runs once and exits. So each of the three processes
here is a *soak worker* that loads its party config once and then runs the deployed
code path, :func:`mpcactors.daemon.run_configured_party` (load and validate the CSV,
listen or dial with retries, TLS handshake and hello, the eight steps over loopback
TCP), ``--runs`` times in a row, each in a fresh ``trio.run`` with a fresh session.
After every run the worker records, for itself: RSS (``VmRSS``), open file descriptors
(``/proc/self/fd``), threads (``Threads`` in ``/proc/self/status``) and the result.

What is checked, and what "identical" means: the data and its seed are the same in
every run, the protocol's randomness is fresh (keys, masks, shuffles, MPC randomness).
So:

* ``intersection_size`` is the same in every run and for every party (exact);
* the revealed lasso model is the same for the three parties of a run (exact: they all
  open the same values), and across runs every coefficient, the intercept and R^2 agree
  within the MPC tolerance: 1e-3 of the largest coefficient (the secure lasso's fixed-point
  arithmetic and probabilistic truncation round differently in each run); the model is
  also compared with scikit-learn's ``Lasso`` on the plaintext join, same tolerance;
* per worker, the number of open file descriptors is the same after every run, the number
  of threads never exceeds its value after run 1 (trio's cached worker threads exit after
  10 s idle, so it may drop between runs), and RSS grows by at most ``--rss-slack`` MiB over the second half of
  the runs. Not over all runs: a data party's process keeps the fixed-base tables of the
  last 4 public keys it encrypted under (``paillier.FIXED_BASE_CACHE_SIZE``, tens of MiB
  each), so RSS climbs over the first few runs and then stays put; ``--clear-caches``
  (a diagnostic) empties that cache after every run, and RSS is then flat from run 1.

Usage (the figures in docs/benchmarks.md, section "Robustness", come from the first)::

    python benchmarks/soak.py                       # 20 runs, 300 rows, 2048-bit keys
    python benchmarks/soak.py --runs 3 --no-docs    # a smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

ROLES = _common.ROLES
SECTION_HEADING = "## Robustness"
SECTION_INTRO = """\
Scripts: `benchmarks/soak.py` (many runs by the same three party processes) and
`benchmarks/large_run.py` (one run at 10^6 rows per party). Each run replaces its own block
below. The fault, fuzz and bad-input tests are in `tests/robustness/` (see `docs/errors.md`)."""
TOLERANCE = 1e-3


# ---- the worker ------------------------------------------------------------------------------


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def worker(config_path: Path, runs: int, out: Path, clear_caches: bool = False) -> int:
    """Run the party ``runs`` times in this process; one JSON line per run to ``out``.

    ``clear_caches`` (diagnostic) empties the per-process cache of public-key fixed-base
    tables after each run, to tell that bounded cache apart from a leak.
    """
    from functools import partial

    import trio

    from mpcactors.daemon import RunReport, load_party_config, run_configured_party
    from mpcactors.logs import configure_logging

    configure_logging(level="warning")
    config = load_party_config(config_path)
    with open(out, "w", encoding="utf-8") as sink:
        for run in range(runs):
            report = RunReport(config.role, str(config.path))
            started = time.perf_counter()
            error = None
            document = None
            try:
                result = trio.run(partial(run_configured_party, config, report=report))
                document = {"intersection_size": result.intersection_size, "result": result.result_document()}
                del result
            except Exception as exc:  # noqa: BLE001 - recorded; the soak stops at the first failure
                error = f"{type(exc).__name__}: {exc}"
            if clear_caches:
                from mpcactors.crypto import paillier

                paillier._fixed_base.cache_clear()
            gc.collect()
            record = {
                "run": run,
                "seconds": time.perf_counter() - started,
                "rss_kib": _status("VmRSS"),
                "fds": len(os.listdir("/proc/self/fd")),
                "threads": _status("Threads"),
                "session": report.session,
                "error": error,
                **(document or {}),
            }
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            if error is not None:
                return 1
    return 0


# ---- the driver ------------------------------------------------------------------------------


def sklearn_model(inputs: _common.Inputs, alpha: float, target: str) -> dict[str, Any]:
    """scikit-learn's Lasso on the plaintext join of the two CSVs (the oracle)."""
    import numpy as np
    from sklearn.linear_model import Lasso

    from mpcactors.crypto.fixedpoint import Params
    from mpcactors.data import load_table, plaintext_join

    params = Params()
    hospital = load_table(inputs.hospital_csv, params=params)
    insurer = load_table(inputs.insurer_csv, params=params)
    columns, joined = plaintext_join(hospital, insurer)
    data = joined.astype(np.float64) / float(1 << params.frac_bits)
    t = list(columns).index(target)
    features = [c for c in columns if c != target]
    x = data[:, [i for i in range(len(columns)) if i != t]]
    model = Lasso(alpha=alpha, tol=1e-12, max_iter=1_000_000).fit(x, data[:, t])
    return {"coefficients": dict(zip(features, map(float, model.coef_), strict=True)),
            "intercept": float(model.intercept_), "rows": len(joined)}


def max_relative_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest |difference| of coefficients and intercept, relative to b's largest coefficient."""
    largest = max(max(abs(v) for v in b["coefficients"].values()), 1e-12)
    diffs = [abs(a["coefficients"][k] - b["coefficients"][k]) for k in b["coefficients"]]
    diffs.append(abs(a["intercept"] - b["intercept"]))
    return max(diffs) / largest


def linear_slope(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(values) / n
    return sum((i - mx) * (v - my) for i, v in enumerate(values)) / sum((i - mx) ** 2 for i in range(n))


def update_docs(block_id: str, text: str, path: Path = _common.DOCS) -> None:
    """Replace (or append) the block ``block_id`` in the Robustness section of docs/benchmarks.md."""
    _common.update_docs(block_id, text, path, prefix="robustness", heading=SECTION_HEADING, intro=SECTION_INTRO)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: the config of one worker
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rows", type=int, default=300, help="rows per party")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bits", type=int, default=2048, choices=[1024, 2048, 3072])
    parser.add_argument("--rss-slack", type=float, default=4.0,
                        help="MiB of RSS growth allowed over the second half of the runs")
    parser.add_argument("--clear-caches", action="store_true",
                        help="diagnostic: empty the fixed-base table cache after every run")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.worker:
        return worker(Path(args.worker), args.runs, args.out, args.clear_caches)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mpcactors-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    inputs = _common.write_inputs(workdir / "data", rows=args.rows, overlap=args.overlap, seed=args.seed,
                                  hospital_attributes=5, insurer_attributes=5)
    deployment = _common.prepare_deployment(workdir / "deployment", inputs, key_bits=args.bits, lasso=True,
                                            executor="inline", step_deadline=600)
    commands = {
        role: [sys.executable, str(Path(__file__).resolve()), "--worker", str(deployment.configs[role]),
               "--runs", str(args.runs), "--out", str(workdir / f"{role}.jsonl"),
               *(["--clear-caches"] if args.clear_caches else [])]
        for role in ROLES
    }
    print(f"soak: {args.runs} runs, {args.rows} rows per party, {args.bits}-bit keys, in {workdir}", flush=True)
    load_before = _common.load_average()
    outcomes, wall, timed_out = _common.run_processes(
        commands, cwd=workdir, stderr_dir=workdir, timeout=args.runs * 900, label="soak"
    )
    records = {role: [json.loads(line) for line in (workdir / f"{role}.jsonl").read_text().splitlines()]
               for role in ROLES}
    problems: list[str] = []
    if timed_out:
        problems.append("the soak exceeded its time limit")
    for role in ROLES:
        if outcomes[role].exit_code != 0:
            problems.append(f"{role} exited {outcomes[role].exit_code}: {outcomes[role].stderr.strip()[-300:]}")
        if len(records[role]) != args.runs:
            problems.append(f"{role} finished {len(records[role])} of {args.runs} runs")
        errors = [r["error"] for r in records[role] if r["error"]]
        if errors:
            problems.append(f"{role}: {errors[0]}")
    complete = min(len(records[r]) for r in ROLES)

    # results: exact agreement within a run and on the intersection, tolerance on the model
    sizes = {r["intersection_size"] for role in ROLES for r in records[role][:complete] if "intersection_size" in r}
    if len(sizes) != 1:
        problems.append(f"intersection sizes differ: {sorted(sizes)}")
    models = []
    for run in range(complete):
        docs = [records[role][run].get("result") for role in ROLES]
        if docs[0] is None or any(d != docs[0] for d in docs):
            problems.append(f"run {run + 1}: the parties' models differ")
        models.append(docs[0])
    oracle = sklearn_model(inputs, alpha=0.1, target="hospital_days")
    spread = max((max_relative_difference(m, models[0]) for m in models[1:] if m), default=0.0)
    vs_sklearn = max((max_relative_difference(m, oracle) for m in models if m), default=float("nan"))
    if spread > TOLERANCE:
        problems.append(f"models differ across runs by {spread:.2e} of the largest coefficient (> {TOLERANCE})")
    if not vs_sklearn <= TOLERANCE:
        problems.append(f"models differ from scikit-learn by {vs_sklearn:.2e} (> {TOLERANCE})")
    if oracle["rows"] not in sizes:
        problems.append(f"intersection {sorted(sizes)} differs from the plaintext join ({oracle['rows']} rows)")

    # resources: descriptors and threads constant after the first run; memory flat over the
    # second half of the runs (each data party's process caches the fixed-base tables of the
    # last 4 public keys it encrypted under, tens of MiB, filled over the first runs)
    half = complete // 2
    rows = []
    for role in ROLES:
        rec = records[role][:complete]
        rss = [r["rss_kib"] / 1024 for r in rec]
        fds = [r["fds"] for r in rec]
        threads = [r["threads"] for r in rec]
        second = rss[half:] if complete >= 4 else rss
        growth = max(second) - second[0]
        slope = linear_slope(second)
        if growth > args.rss_slack:
            problems.append(f"{role}: RSS grew by {growth:.1f} MiB over runs {half + 1}-{complete} (> {args.rss_slack} MiB)")
        if len(set(fds[1:])) > 1:
            problems.append(f"{role}: open file descriptors vary after run 1: {fds}")
        if max(threads) > threads[0]:  # trio's idle worker threads may exit between runs, never pile up
            problems.append(f"{role}: more threads than after run 1: {threads}")
        seconds = [r["seconds"] for r in rec]
        rows.append([
            role, f"{rss[0]:.1f}", f"{rss[half - 1] if half else rss[0]:.1f}", f"{rss[-1]:.1f}",
            f"{growth:+.1f}", f"{slope * 1024:+.0f}", f"{min(fds)}-{max(fds)}", f"{min(threads)}-{max(threads)}",
            f"{sum(seconds) / len(seconds):.1f}", _common.fmt_mib(outcomes[role].peak_rss),
        ])
    table = _common.markdown_table(
        ["party", "RSS after run 1 (MiB)", f"after run {half}", f"after run {complete}",
         f"growth, runs {half + 1}-{complete} (MiB)", "trend there (KiB/run)", "open fds", "threads",
         "s per run", "peak RSS (MiB)"],
        rows,
    )
    series = "; ".join(
        f"{role} " + " ".join(f"{r['rss_kib'] / 1024:.0f}" for r in records[role][:complete]) for role in ROLES
    )
    verdict = "PASS" if not problems else "FAIL: " + "; ".join(problems)
    text = "\n".join([
        f"### Soak: {complete} consecutive runs by the same three party processes, {args.rows} rows per party, "
        f"{args.bits}-bit keys" + (" (diagnostic: fixed-base cache emptied after each run)" if args.clear_caches else ""),
        "",
        f"Machine: {_common.machine_line()}. Command: `{_common.command_line()}`. Date {_common.today()}, "
        f"commit {_common.git_commit()}, load average {load_before:.2f} before, {_common.load_average():.2f} after; "
        f"{wall:.0f} s in all.",
        "",
        table,
        "",
        f"Results: intersection {sorted(sizes)} rows in every run (plaintext join: {oracle['rows']}); the three parties "
        f"reveal the same model in each run; across runs the model varies by at most {spread:.1e} of the largest "
        f"coefficient, and differs from scikit-learn's Lasso on the plaintext join by at most {vs_sklearn:.1e} "
        f"(tolerance {TOLERANCE:g}: fresh protocol randomness each run, fixed-point rounding).",
        "",
        f"RSS after each run (MiB): {series}."
        + (" Caches of public-key fixed-base tables emptied after every run (`--clear-caches`, a diagnostic)."
           if args.clear_caches else ""),
        "",
        f"Verdict: {verdict}.",
    ])
    print(text)
    if not args.no_docs:
        update_docs(f"soak-{args.rows}-{args.bits}" + ("-clear-caches" if args.clear_caches else ""), text)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
