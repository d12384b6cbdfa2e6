"""Scaling, steps 1 to 7: wall time and peak memory per party against rows per party.

Usage::

    python benchmarks/scaling.py                                  # 10^4 and 10^5 rows per party
    python benchmarks/scaling.py --sizes 10000,100000,1000000     # add 10^6 (about an hour on 2 cores)
    python benchmarks/scaling.py --quick                          # 500 and 2,000 rows, no docs update

Each size runs the three ``mpcactors party`` processes (mutual TLS on loopback) with
``lasso = false``, so the run ends after step 7 (the conversion to Shamir shares):
everything whose cost grows with the number of rows. Step 8 works on the Gram
quantities, whose size does not depend on the rows. Data: the synthetic cohort
(``mpcactors.synth``, no missing cells), 15 + 15 attributes like the pilot, 50% overlap,
2048-bit keys by default (``--bits 3072`` for the protocol's default size).

Figures per size: the slowest party's summed step times (steps 1-7), the wall time
from launch to the last exit, the time per row, bytes sent, and each party's peak
memory (largest process, and process + workers; see ``_common.py``). The exponent
``b`` of ``time ~ rows**b`` is fitted by least squares on log-log over all sizes run,
for the steps 1-7 time, the wall time and the CPU time (b = 1 is linear; CPU time is
the steadiest on a shared machine); the targets are b close to 1 and, at 10^6 rows, peak memory
under 4 GiB per party.

``--large-run-block`` also writes the largest size as the Robustness section's large-run
block (``large_run.report``: per-step message counts and sizes, the intersection check), so
one 10^6-row run serves both the scaling series and the large run::

    python benchmarks/scaling.py --sizes 10000,100000,1000000 --hospital-attributes 5 \
        --insurer-attributes 5 --large-run-block --workdir /tmp/scale
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402
import large_run  # noqa: E402
from soak import update_docs as update_robustness_docs  # noqa: E402

STEPS = range(1, 8)
MEMORY_TARGET = 4 * 1024**3  # bytes per party at 10^6 rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="rows per party, comma-separated (add 1000000 for the full run)")
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--executor", choices=common.EXECUTOR_POLICIES, default="process")
    parser.add_argument("--hospital-attributes", type=int, default=15)
    parser.add_argument("--insurer-attributes", type=int, default=15, help="including the target")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=4096, help="rows per bulk message")
    parser.add_argument("--large-run-block", action="store_true",
                        help="also write the largest size as the Robustness section's large-run block "
                             "(the same run serves as the large run)")
    parser.add_argument("--quick", action="store_true", help="500 and 2,000 rows, no docs update")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--workdir", type=Path, help="keep inputs, configs and reports here (default: a temp dir)")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per run before it is stopped")
    args = parser.parse_args()
    sizes = [500, 2000] if args.quick else sorted(int(s) for s in args.sizes.split(","))
    write_docs = not (args.quick or args.no_docs)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="scaling-"))
    print(f"# Scaling, steps 1-7, {common.now()}; machine: {common.machine_line()}")
    print(f"  commit {common.git_commit()}; sizes {sizes}, {args.bits} bits, {args.hospital_attributes} + "
          f"{args.insurer_attributes} attributes, overlap {args.overlap}, executor {args.executor}; "
          f"work directory {workdir}", flush=True)

    results = []
    for rows in sizes:
        base = workdir / f"rows-{rows}"
        inputs = common.write_inputs(
            base / "data", rows=rows, overlap=args.overlap, seed=args.seed,
            hospital_attributes=args.hospital_attributes, insurer_attributes=args.insurer_attributes,
        )
        print(f"## {rows:,} rows per party (load {common.load_average():.2f})", flush=True)
        deployment = common.prepare_deployment(
            base / "deployment", inputs, key_bits=args.bits, lasso=False, executor=args.executor,
            chunk_rows=args.chunk_rows,
        )
        run = common.run_deployment(deployment, timeout=args.timeout, label=f"{rows:,} rows",
                                    sample_interval=0.2 if rows < 200_000 else 0.5)
        if not run.ok:
            raise SystemExit(f"the {rows:,}-row run failed: {run.failure()}")
        steps_seconds = run.protocol_seconds(STEPS)
        print(f"  steps 1-7 {steps_seconds:.1f} s, wall {run.wall_seconds:.1f} s, peak RSS (MiB) "
              + ", ".join(f"{r} {common.fmt_mib(p.peak_tree_rss)}" for r, p in run.parties.items()), flush=True)
        results.append((rows, run, steps_seconds))
        if args.large_run_block and rows == sizes[-1]:
            text, problems = large_run.report(run, inputs, bits=args.bits, chunk_rows=args.chunk_rows,
                                              executor=args.executor, overlap=args.overlap)
            print(text, flush=True)
            if write_docs:
                update_robustness_docs(f"large-{rows}-{args.bits}", text)
            if problems:
                raise SystemExit(f"the {rows:,}-row run failed its checks: {'; '.join(problems)}")
        # the inputs of a million rows are large; they are not needed any more
        shutil.rmtree(base / "data", ignore_errors=True)

    rows_table = []
    for rows, run, steps_seconds in results:
        largest = max(p.peak_tree_rss for p in run.parties.values())
        memory_verdict = ""
        if rows >= 1_000_000:
            memory_verdict = f"< 4 GiB: {'met' if largest < MEMORY_TARGET else 'MISSED'}"
        rows_table.append([
            f"{rows:,}",
            common.fmt_seconds(steps_seconds),
            common.fmt_seconds(run.wall_seconds),
            f"{steps_seconds / rows * 1e6:,.0f}",
            common.fmt_bytes(run.bytes_sent(STEPS)),
            common.fmt_seconds(run.cpu_seconds),
            *(f"{common.fmt_mib(p.peak_rss)} / {common.fmt_mib(p.peak_tree_rss)}" for p in run.parties.values()),
            f"{run.load_before:.2f} / {run.load_after:.2f}",
            memory_verdict,
        ])
    table = common.markdown_table(
        ["rows per party", "steps 1-7 s", "wall s", "µs per row", "bytes sent", "CPU s (all processes)",
         "hospital peak MiB (largest / + workers)", "insurer peak MiB", "TTP peak MiB",
         "load before / after", "memory target (10^6)"],
        rows_table, "rrrrrrrrrrl",
    )
    if len(results) >= 2:
        exponent = common.fit_exponent([r for r, _, _ in results], [s for _, _, s in results])
        exponent_wall = common.fit_exponent([r for r, _, _ in results], [run.wall_seconds for _, run, _ in results])
        exponent_cpu = common.fit_exponent([r for r, _, _ in results], [run.cpu_seconds for _, run, _ in results])
        fit = (f"Fitted exponent of time ~ rows^b over {', '.join(f'{r:,}' for r, _, _ in results)} rows: "
               f"b = {exponent:.3f} on steps 1-7, b = {exponent_wall:.3f} on wall time, b = {exponent_cpu:.3f} "
               "on CPU time (1 is linear; fixed costs such as start-up and key generation pull b below 1 "
               "at small sizes).")
    else:
        fit = "One size only: no exponent fitted (give --sizes with at least two sizes)."
    steps_detail = "\n\n".join(
        f"#### {rows:,} rows per party\n\n{common.step_table(run.steps_by_role(), STEPS)}" for rows, run, _ in results
    )
    print()
    print(table)
    print()
    print(fit)
    print()
    print(steps_detail)

    if write_docs:
        key = f"scaling-{args.bits}-" + "-".join(str(r) for r in sizes)
        loads = [v for _, run, _ in results for v in (run.load_before, run.load_after)]
        text = f"""\
### Scaling, steps 1 to 7: {", ".join(f"{r:,}" for r in sizes)} rows per party, {args.bits} bits

- Command: `{common.command_line()}`
- Date: {common.today()}; commit {common.git_commit()}
- Machine: {common.machine_line()}
- Run: three `mpcactors party` processes, mutual TLS on loopback, executor `{args.executor}`,
  `lasso = false`. Synthetic cohort (seed {args.seed}, no missing cells), {args.hospital_attributes} +
  {args.insurer_attributes} attributes, overlap {args.overlap}.
- Load: the 1-minute load average ranged {min(loads):.2f} to {max(loads):.2f} (2 CPUs).
- "steps 1-7" is the slowest party's summed step times; peak memory per party is the largest
  single process / the process and its workers together (sampled).

{table}

{fit}

{steps_detail}
"""
        common.update_docs(key, text)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
