"""Executor policy by table size: where ``auto`` switches from inline to worker processes.

Usage::

    python benchmarks/executor_policy.py                          # 1,000 to 8,000 rows, 2048 bits
    python benchmarks/executor_policy.py --sizes 500,1000 --no-docs --repeats 1

For each size the three ``mpcactors party`` processes (mutual TLS on loopback) run
steps 1 to 7 (``lasso = false``: the lasso does no Paillier work, so the policy does
not matter there) with ``inline`` and with ``process``, alternating
(inline, process, inline, process, ...) so that a change of load on the shared machine
hits both. The figure per run is the wall time from launch to the last exit, which
includes what the process policy costs up front (starting workers, a fixed-base table
per worker and key). The ratio inline / process above 1 means processes win; the
smallest size where they win in every repeat is what ``AUTO_PROCESS_MIN_ROWS``
(``src/mpcactors/actors/executor.py``) should be near on a machine like this one.
Data: the synthetic cohort, 15 + 15 attributes like the pilot, 50% overlap.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

from mpcactors.actors.executor import AUTO_PROCESS_MIN_ROWS  # noqa: E402

STEPS = range(1, 8)
POLICIES = ("inline", "process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,3000,5000,8000", help="rows per party, comma-separated")
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2, help="runs per size and policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--workdir", type=Path, help="keep inputs and configs here (default: a temp dir)")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="executor-policy-"))
    print(f"# Executor policy by size, {common.now()}; machine: {common.machine_line()}; commit {common.git_commit()}",
          flush=True)

    rows_table = []
    loads = []
    for rows in sizes:
        base = workdir / f"rows-{rows}"
        inputs = common.write_inputs(base / "data", rows=rows, overlap=0.5, seed=args.seed,
                                     hospital_attributes=15, insurer_attributes=15)
        walls: dict[str, list[float]] = {p: [] for p in POLICIES}
        steps: dict[str, list[float]] = {p: [] for p in POLICIES}
        for repeat in range(args.repeats):
            for policy in POLICIES:
                deployment = common.prepare_deployment(base / f"{policy}-{repeat}", inputs, key_bits=args.bits,
                                                       lasso=False, executor=policy)
                run = common.run_deployment(deployment, timeout=3600, label=f"{rows:,} rows, {policy}")
                if not run.ok:
                    raise SystemExit(f"the {rows:,}-row {policy} run failed: {run.failure()}")
                walls[policy].append(run.wall_seconds)
                steps[policy].append(run.protocol_seconds(STEPS))
                loads += [run.load_before, run.load_after]
                print(f"  {rows:,} rows, {policy}: wall {run.wall_seconds:.2f} s, steps 1-7 "
                      f"{run.protocol_seconds(STEPS):.2f} s", flush=True)
        ratios = [i / p for i, p in zip(walls["inline"], walls["process"], strict=True)]
        rows_table.append([
            f"{rows:,}",
            ", ".join(f"{w:.2f}" for w in walls["inline"]),
            ", ".join(f"{w:.2f}" for w in walls["process"]),
            f"{statistics.median(ratios):.2f}",
            f"{min(ratios):.2f} to {max(ratios):.2f}",
            "process" if min(ratios) > 1 else ("inline" if max(ratios) < 1 else "either"),
            "process" if rows >= AUTO_PROCESS_MIN_ROWS else "inline",
        ])
        shutil.rmtree(base / "data", ignore_errors=True)

    table = common.markdown_table(
        ["rows per party", "inline: wall s", "process: wall s", "ratio inline / process (median)",
         "ratio per pair", "faster", "auto picks"],
        rows_table, "rrrrrll",
    )
    text = f"""\
### Executor policy by table size

- Command: `{common.command_line()}`
- Date: {common.today()}; commit {common.git_commit()}
- Machine: {common.machine_line()}
- Run: three `mpcactors party` processes, mutual TLS on loopback, steps 1 to 7
  (`lasso = false`), {args.bits}-bit keys, synthetic cohort 15 + 15 attributes, overlap 0.5;
  {args.repeats} runs per policy and size, alternating inline and process. Wall time from
  launch to the last exit, worker start-up included.
- Load: the 1-minute load average ranged {min(loads):.2f} to {max(loads):.2f} (2 CPUs).
- `auto` (the default of `mpcactors party` and `mpcactors simulate`) uses worker processes from
  `AUTO_PROCESS_MIN_ROWS = {AUTO_PROCESS_MIN_ROWS:,}` rows (a data party's table; the TTP's intersection).

{table}
"""
    print()
    print(text)
    if not args.no_docs:
        common.update_docs("executor-policy", text)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
