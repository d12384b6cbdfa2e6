"""The logistic race: our ``logistic_fit`` against TNO's ``secure_learning`` logistic regression, same run.

Usage::

    python benchmarks/logistic_race.py               # TNO capped at 30 minutes of fit time
    python benchmarks/logistic_race.py --cap 120     # a short check of the machinery (2 minutes)

Data: scikit-learn's breast-cancer data, the first ten features, raw (unscaled); target the
0/1 label (TNO's labels are the same, mapped to -1/+1 as its models require). Oracle:
statsmodels ``Logit(y, add_constant(X)).fit()`` on the same raw data. Goal for each system:
the wall time until **every coefficient, the intercept included, is within 1e-2 relative of
statsmodels** (``max_j |b_j - b*_j| / |b*_j| <= 1e-2``).

* **Ours** (``mpc.logistic.logistic_fit``, l2 = 0, Newton's method): the three parties in one
  process via ``run_local`` (they take turns on one core: conservative for us; no network,
  while TNO's three processes talk over loopback). A run with ``max_iter = k`` stops after k
  Newton steps and still computes everything a converged fit opens (standard errors,
  log-likelihood); runs k = 1, 2, 3, ... until the first whose coefficients meet the 1e-2
  criterion. Our figure is that run's whole wall time (setup of the PRSS keys and input
  sharing excluded, as for TNO), measured before TNO and again after it; the figure is the mean.
* **TNO** (``tno.mpc.mpyc.secure_learning==1.1.1``, in its own virtual environment
  ``benchmarks/.venv-tno-logistic``, created and installed by this script if missing, with
  ``numpy<2`` and gmpy2 as ``shared/research/reference-measurements.md`` prescribes): three
  local MPyC processes (``-M3``: party 0 spawns parties 1 and 2), running
  ``benchmarks/tno_logistic_party.py``. Model options: ``Logistic(solver_type=GD,
  exponentiation=EXACT, penalty=NONE, class_weights_type=EQUAL)`` with ``SecFxp(64, 32)``
  (its README examples' type) and its default step ``eta0 = 1 / max_i ||x_i||^2`` (computed
  securely). Why: NONE + EQUAL is the unpenalised, unweighted likelihood statsmodels maximises;
  EXACT is its accurate sigmoid (APPROX is a piecewise-linear function with a different
  optimum); its GD solver does not standardise (its ``preprocessing`` only adds the intercept
  column), so it fits the raw data as given, like ours. Its coefficients are opened after
  every epoch (see the party script), and the race stops it when they meet the criterion or
  when ``--cap`` seconds of fit time (from the end of its input sharing) have passed; then it
  reports TNO's error at the cap and the ratio as "at least" cap / ours.

Context printed beside the race: TNO's solver replayed in float64 (same step, same Nesterov
momentum, no fixed point) for many epochs on the raw data and on standardised data, so the
number of epochs TNO would need is known; its first opened epochs are checked against this
replay (they agree to TNO's fixed-point resolution).

Prints one JSON line and a markdown block for ``docs/benchmarks.md`` (machine, command,
commit, ``uptime`` before and after: other sessions load this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import statsmodels.api as sm
from sklearn.datasets import load_breast_cancer

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402
import logistic as ours_bench  # noqa: E402 - benchmarks/logistic.py: run() shares and fits

BENCHMARKS = Path(__file__).resolve().parent
VENV = BENCHMARKS / ".venv-tno-logistic"
RUNNER = BENCHMARKS / "tno_logistic_party.py"
TNO_PACKAGE = "tno.mpc.mpyc.secure_learning"
TNO_VERSION = "1.1.1"
#: reference-measurements.md: secure_learning 1.1.1 pins mpyc 0.10 through its stubs and fails with numpy 2
INSTALL = [f"{TNO_PACKAGE}=={TNO_VERSION}", "numpy<2", "gmpy2"]
TOLERANCE = 1e-2
TARGET_RATIO = 20.0
FEATURES = 10


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> str:
    """Create and fill the reference's virtual environment if needed; return its versions line."""
    return common.ensure_venv(VENV, [INSTALL], TNO_PACKAGE, TNO_VERSION, ("mpyc", "numpy", "gmpy2"))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def tree_cpu_seconds(pid: int, seen: dict[int, float]) -> None:
    """Record the user + system CPU seconds of ``pid`` and its descendants in ``seen`` (per pid, latest)."""
    tick = os.sysconf("SC_CLK_TCK")
    for p in [pid, *common._descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seen[p] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15 of stat)


def rel_error(coef: np.ndarray, ref: np.ndarray) -> float:
    """Largest relative error over every coefficient, the intercept included."""
    return float(np.max(np.abs(np.asarray(coef) - ref) / np.abs(ref)))


# ---- ours ---------------------------------------------------------------------------------
def ours_path(x: np.ndarray, y: np.ndarray, ref: np.ndarray, max_k: int, first_k: int = 1) -> list[dict]:
    """Runs with max_iter = first_k, first_k + 1, ... until the first that meets the tolerance (at most max_k)."""
    path = []
    for k in range(first_k, max_k + 1):
        out = ours_bench.run(x, y, max_iter=k)
        r = out["result"]
        coef = np.array((r.intercept, *r.coefficients))
        record = {"max_iter": k, "iterations": r.iterations, "converged": r.converged, "seconds": out["wall"],
                  "cpu": out["cpu"],
                  "rounds": out["rounds"], "bytes_per_party": out["bytes_per_party"], "error": rel_error(coef, ref)}
        print(json.dumps({"ours": record}), flush=True)
        path.append(record)
        if record["error"] <= TOLERANCE:
            break
    return path


# ---- TNO ----------------------------------------------------------------------------------
def run_tno(x: np.ndarray, y01: np.ndarray, ref: np.ndarray, *, cap: float, epochs: int, directory: Path) -> dict:
    """TNO's fit in three MPyC processes, stopped at the first epoch within tolerance or at the cap."""
    data, out = directory / "tno_data.json", directory / "tno_epochs.jsonl"
    data.write_text(json.dumps({"x": x.tolist(), "y": [1.0 if v else -1.0 for v in y01], "epochs": epochs,
                                "eta0": None}))
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(TNO_LOGISTIC_DATA=str(data), TNO_LOGISTIC_OUT=str(out))
    stderr = (directory / "tno_stderr.txt").open("w")
    launched = time.time()
    process = subprocess.Popen([str(venv_python()), str(RUNNER), "-M3", "--no-log"], cwd=directory, env=env,
                               stdout=stderr, stderr=subprocess.STDOUT, start_new_session=True)
    ready: dict | None = None
    epochs_seen: list[dict] = []
    peak_rss, reason = 0, "exited"
    cpu_at_ready: float | None = None
    cpu_seen: dict[int, float] = {}
    try:
        while True:
            time.sleep(1.0)
            peak_rss = max(peak_rss, common.tree_rss(process.pid))
            tree_cpu_seconds(process.pid, cpu_seen)
            lines = out.read_text().splitlines() if out.exists() else []
            records = [json.loads(line) for line in lines if line.strip()]
            ready = next((r for r in records if r.get("event") == "ready"), ready)
            if ready is not None and cpu_at_ready is None:
                cpu_at_ready = sum(cpu_seen.values())
            epochs_seen = [r for r in records if "epoch" in r]
            for r in epochs_seen:
                r["error"] = rel_error(np.array(r["coef"]), ref)
            if any(r["error"] <= TOLERANCE for r in epochs_seen):
                reason = "tolerance reached"
                break
            if ready is not None and time.time() - ready["time"] >= cap:
                reason = "cap"
                break
            if process.poll() is not None:
                break
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # our own child's process group (the three parties)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        stderr.close()
    ended = time.time()
    if ready is None:
        tail = (directory / "tno_stderr.txt").read_text().strip().splitlines()[-15:]
        raise SystemExit("TNO's logistic regression did not start:\n" + "\n".join(tail))
    if reason == "exited" and process.returncode not in (0, None) and len(epochs_seen) < epochs:
        tail = (directory / "tno_stderr.txt").read_text().strip().splitlines()[-15:]
        raise SystemExit(f"TNO's processes exited with {process.returncode}:\n" + "\n".join(tail))
    fit_elapsed = min(ended, ready["time"] + cap) - ready["time"] if reason == "cap" else (
        epochs_seen[-1]["seconds"] if epochs_seen else ended - ready["time"])
    met = next((r for r in epochs_seen if r["error"] <= TOLERANCE), None)
    return {
        "reason": reason,
        "epochs_done": len(epochs_seen),
        "epoch_seconds": [round(r["seconds"], 1) for r in epochs_seen],
        "epoch_errors": [r["error"] for r in epochs_seen],
        "coef_last": epochs_seen[-1]["coef"] if epochs_seen else None,
        "error_at_stop": epochs_seen[-1]["error"] if epochs_seen else 1.0,  # zero coefficients: 100 %
        "seconds_to_tolerance": met["seconds"] if met else None,
        "fit_seconds_observed": fit_elapsed,
        "startup_and_sharing_seconds": ready["time"] - launched,
        "peak_rss_all_processes": peak_rss,
        # sampled once a second: the CPU of the three parties after their input sharing
        "fit_cpu_seconds": sum(cpu_seen.values()) - (cpu_at_ready or 0.0),
    }


# ---- TNO's solver replayed in float64 ------------------------------------------------------
def tno_replay(x: np.ndarray, y01: np.ndarray, epochs: int, map_back=None) -> list[np.ndarray]:
    """TNO's GD (``GD.inner_loop_calculation``, full batch) in float64: the path of its iterates.

    Step ``1 / max_i ||x_i||^2`` (intercept column excluded, as TNO's ``preprocessing``), Nesterov
    momentum ``(epoch - 1) / (epoch + 2)``, gradient ``X~^T (h - y) / n`` (TNO's form with labels
    -1/+1 and its 1/(2n) factor is the same vector)."""
    n = len(x)
    a = np.column_stack([np.ones(n), x])
    eta = 1.0 / float((x**2).sum(axis=1).max())
    coef, w_prev = np.zeros(a.shape[1]), None
    path = []
    for epoch in range(1, epochs + 1):
        w_prevprev = w_prev if w_prev is not None else coef
        w_prev = coef
        v = w_prev + (epoch - 1) / (epoch + 2) * (w_prev - w_prevprev)
        h = 1.0 / (1.0 + np.exp(-(a @ v)))
        coef = v - eta * (a.T @ (h - y01) / n)
        path.append(map_back(coef) if map_back else coef)
    return path


def replay_summary(x: np.ndarray, y01: np.ndarray, ref: np.ndarray, epochs: int) -> dict:
    raw = [rel_error(c, ref) for c in tno_replay(x, y01, epochs)]
    mu, sd = x.mean(axis=0), x.std(axis=0)

    def back(c: np.ndarray) -> np.ndarray:
        b = c[1:] / sd
        return np.concatenate([[c[0] - b @ mu], b])

    std = [rel_error(c, ref) for c in tno_replay((x - mu) / sd, y01, epochs, back)]
    checkpoints = [k for k in (1, 10, 100, 1000, 10_000, 100_000, 1_000_000) if k <= epochs]

    def first(errors: list[float]) -> int | None:
        return next((k + 1 for k, e in enumerate(errors) if e <= TOLERANCE), None)

    def stays(errors: list[float]) -> int | None:
        """First epoch from which the error stays within tolerance up to the last replayed epoch."""
        last_bad = max((k for k, e in enumerate(errors) if e > TOLERANCE), default=-1)
        return last_bad + 2 if last_bad + 1 < len(errors) else None

    return {
        "epochs": epochs,
        "raw": {"at": {k: raw[k - 1] for k in checkpoints}, "first_within": first(raw), "stays_within_from": stays(raw)},
        "standardised": {"at": {k: std[k - 1] for k in checkpoints}, "first_within": first(std),
                         "stays_within_from": stays(std)},
        "path_raw_head": [c.tolist() for c in tno_replay(x, y01, 5)],
    }


# ---- report -------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=1800.0, help="TNO's fit time cap in seconds (default 30 min)")
    parser.add_argument("--epochs", type=int, default=1000, help="TNO's epoch cap (the time cap comes first)")
    parser.add_argument("--max-iter", type=int, default=25, help="largest max_iter tried on our side")
    parser.add_argument("--first-iter", type=int, default=1,
                        help="smallest max_iter tried on our side (a quick rerun when the smallest that meets is known)")
    parser.add_argument("--replay-epochs", type=int, default=200_000, help="epochs of the float64 replay")
    parser.add_argument("--workdir", type=Path, help="keep TNO's inputs, epoch log and output here")
    args = parser.parse_args()

    versions = ensure_venv()
    x_all, y_all = load_breast_cancer(return_X_y=True)
    x, y = x_all[:, :FEATURES], y_all.astype(float)
    ref = np.asarray(sm.Logit(y, sm.add_constant(x)).fit(disp=0).params)
    started, up_before, commit = common.now(), uptime(), common.git_commit()
    print(f"uptime before: {up_before}", flush=True)

    first = ours_path(x, y, ref, args.max_iter, args.first_iter)
    hit = first[-1]
    if hit["error"] > TOLERANCE:
        raise SystemExit(f"ours did not reach {TOLERANCE} within max_iter = {args.max_iter}: {hit}")
    up_ours = uptime()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.workdir or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        tno = run_tno(x, y, ref, cap=args.cap, epochs=args.epochs, directory=directory)
    print(json.dumps({"tno": {k: v for k, v in tno.items() if k != "coef_last"}}), flush=True)
    up_tno = uptime()
    again = ours_bench.run(x, y, max_iter=hit["max_iter"])
    again_error = rel_error(np.array((again["result"].intercept, *again["result"].coefficients)), ref)
    ours_seconds = (hit["seconds"] + again["wall"]) / 2
    up_after = uptime()
    replay = replay_summary(x, y, ref, args.replay_epochs)
    # TNO's opened epochs against the float64 replay of its solver (largest absolute difference)
    tno_vs_replay = None
    if tno["coef_last"] is not None:
        replay_at = tno_replay(x, y, tno["epochs_done"])[-1]
        tno_vs_replay = float(np.max(np.abs(np.array(tno["coef_last"]) - replay_at)))

    ours_cpu = (hit["cpu"] + again["cpu"]) / 2
    if tno["seconds_to_tolerance"] is not None:
        ratio, ratio_text = tno["seconds_to_tolerance"] / ours_seconds, "="
    else:
        ratio, ratio_text = tno["fit_seconds_observed"] / ours_seconds, ">="
    cpu_ratio = tno["fit_cpu_seconds"] / ours_cpu
    record = {
        "benchmark": "logistic_race", "data": f"breast cancer, first {FEATURES} raw features", "rows": len(x),
        "tolerance": TOLERANCE, "commit": commit, "started": started, "uptime_before": up_before,
        "uptime_after": up_after, "tno_versions": versions, "cap_seconds": args.cap,
        "ours": {"max_iter": hit["max_iter"], "seconds_runs": [hit["seconds"], again["wall"]],
                 "cpu_runs": [hit["cpu"], again["cpu"]],
                 "seconds": ours_seconds, "error": hit["error"], "error_rerun": again_error,
                 "rounds": hit["rounds"], "bytes_per_party": hit["bytes_per_party"],
                 "path": [{k: r[k] for k in ("max_iter", "seconds", "error")} for r in first]},
        "tno": {k: v for k, v in tno.items() if k != "coef_last"},
        "tno_last_coef_vs_float64_replay_abs": tno_vs_replay,
        "replay": {k: v for k, v in replay.items() if k != "path_raw_head"},
        "ratio": ratio, "ratio_kind": ratio_text, "target": TARGET_RATIO,
        "cpu_ratio": cpu_ratio,
    }
    print(json.dumps(record), flush=True)

    machine = common.machine_line()
    ours_rows = "\n".join(
        f"| ours, max_iter = {r['max_iter']} | {r['seconds']:.1f} s | {r['error']:.1e} | {'yes' if r['error'] <= TOLERANCE else 'no'} |"
        for r in first)
    tno_rows = "\n".join(
        f"| TNO, epoch {i + 1} | {s:.0f} s | {e:.2e} | {'yes' if e <= TOLERANCE else 'no'} |"
        for i, (s, e) in enumerate(zip(tno["epoch_seconds"], tno["epoch_errors"])))
    if tno["seconds_to_tolerance"] is not None:
        tno_line = f"TNO reached it after **{tno['seconds_to_tolerance']:.0f} s**"
    else:
        tno_line = (f"TNO had **not** reached it when stopped at the cap ({tno['fit_seconds_observed']:.0f} s of fit "
                    f"time, {tno['epochs_done']} epochs done): largest relative error then "
                    f"{tno['error_at_stop']:.2f}")
    ratio_line = f"**{'at least ' if ratio_text == '>=' else ''}{ratio:.0f}x** (target {TARGET_RATIO:.0f}x)"
    r_raw, r_std = replay["raw"], replay["standardised"]

    def at(summary: dict) -> str:
        return ", ".join(f"{k:,}: {v:.2g}" for k, v in summary["at"].items())

    def reached(summary: dict) -> str:
        if summary["first_within"] is None:
            return f"never within {TOLERANCE:g} in {replay['epochs']:,} epochs"
        stays = summary["stays_within_from"]
        return (f"first within {TOLERANCE:g} at epoch {summary['first_within']:,}, "
                + (f"within it from epoch {stays:,} on" if stays else "but not staying within it (momentum oscillation)"))

    drift = "n/a (no epoch done)" if tno_vs_replay is None else f"{tno_vs_replay:.1e}"

    print(f"""
<!-- logistic_race:results -->
- Command: `{common.command_line()}`
- Machine: {machine}
- Commit: {commit}; started {started} UTC; TNO `{versions}` ({TNO_PACKAGE}, mpyc, numpy, gmpy2)
- `uptime` before: `{up_before}`; after our first series: `{up_ours}`; after TNO: `{up_tno}`; at the end: `{up_after}`

Time to every coefficient (intercept included) within {TOLERANCE:g} relative of statsmodels: ours
**{ours_seconds:.1f} s** (max_iter = {hit['max_iter']}, mean of the run before TNO, {hit['seconds']:.1f} s, and the
run after it, {again['wall']:.1f} s); {tno_line}. Ratio {ratio_line}. CPU time over the same
stretch: ours {ours_cpu:.1f} s (one process, three parties), TNO {tno['fit_cpu_seconds']:.0f} s (its three
processes, sampled once a second), {'at least ' if ratio_text == '>=' else ''}{cpu_ratio:.0f}x.

| run | fit wall seconds | max rel. error (all coefficients) | within {TOLERANCE:g} |
|---|---:|---:|---|
{ours_rows}
{tno_rows}

Ours: {hit['rounds']} rounds and {hit['bytes_per_party'][0] / 2**20:.1f} MiB sent per party for max_iter = {hit['max_iter']}.
TNO: {tno['startup_and_sharing_seconds']:.0f} s of start-up and input sharing before its fit (not counted), peak
resident memory of its three processes together {tno['peak_rss_all_processes'] / 2**30:.2f} GiB. Its last opened
coefficients differ from a float64 replay of its solver by at most {drift} (absolute; its fixed-point resolution is 2^-32).
TNO's solver replayed in float64 ({replay['epochs']:,} epochs, no MPC; step and momentum as in its code): largest relative
error after k epochs on the raw data {at(r_raw)} ({reached(r_raw)}); on standardised data (coefficients mapped
back to raw units) {at(r_std)} ({reached(r_std)}).
<!-- /logistic_race:results -->""")


if __name__ == "__main__":
    main()
