"""Large run: 1,000,000 rows per party through steps 1 to 7, in chunks, memory per party.

Usage::

    python benchmarks/large_run.py                    # 10^6 rows per party (about an hour on 2 cores)
    python benchmarks/large_run.py --rows 100000      # the check that it works (tens of minutes)
    python benchmarks/large_run.py --rows 2000 --no-docs --bits 1024   # a smoke run

The three ``mpcactors party`` processes run as deployed (mutual TLS over loopback TCP)
with ``lasso = false``: steps 1 to 7 are everything whose cost and memory grow with the
rows (step 8 works on Gram quantities of fixed size). Bulk steps move the table in chunks
of ``chunk_rows`` rows per message (4,096 by default), through bounded buffers, so no
party should ever hold a message, or its encrypted table, much larger than a chunk.

Measured, per party: peak RSS of its largest process (``wait4``), peak RSS summed over
its process tree (workers included, sampled), CPU time; per step: seconds, bytes and
messages sent, and so bytes per message (the chunking at work). Checked: every party
exits 0 and reports the intersection size of the plaintext join (known from the seed),
and no step sends a message above the frame cap. For scale, the table's own size is
given: its CSV, and ``rows x columns x 8`` bytes of encoded values.

Results go to the "Robustness" section of docs/benchmarks.md (one block per size and key
size, replaced when re-run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from soak import update_docs  # noqa: E402

STEPS = range(1, 8)


def report(
    run: _common.DeploymentRun, inputs: _common.Inputs, *, bits: int, chunk_rows: int, executor: str, overlap: float
) -> tuple[str, list[str]]:
    """The large-run block for ``run`` (Markdown) and the problems found, empty for a pass.

    Checks: every party exited 0 and reports the plaintext join's intersection size, and
    no step's messages average above the frame cap. Shared with ``scaling.py``, whose
    10^6-row point is the same run (``--large-run-block``).
    """
    problems = [] if run.ok else [run.failure()]
    for role, party in run.parties.items():
        size = (party.result or {}).get("intersection_size")
        if run.ok and size != inputs.intersection:
            problems.append(f"{role} reports an intersection of {size}, the plaintext join has {inputs.intersection}")
    cap = 64 * 1024 * 1024
    steps = run.steps_by_role()
    per_message = []
    for step in STEPS:
        cells = [f"{step} {_common.STEP_NAMES[step]}"]
        for role in _common.ROLES:
            entry = steps[role].get(step)
            if not entry or not entry.get("messages_sent"):
                cells.append("-")
                continue
            average = entry["bytes_sent"] / entry["messages_sent"]
            if average > cap:
                problems.append(f"{role} sent messages of {average:.0f} bytes on average at step {step}, above the cap")
            cells.append(f"{entry['messages_sent']:,} x {_common.fmt_bytes(int(average))}")
        per_message.append(cells)

    columns = len(inputs.hospital_columns), len(inputs.insurer_columns)
    csv_bytes = inputs.hospital_csv.stat().st_size, inputs.insurer_csv.stat().st_size
    memory = _common.markdown_table(
        ["party", "peak RSS, largest process (MiB)", "peak RSS, process + workers (MiB)", "CPU s",
         "its CSV (MiB)", "its encoded table (MiB)"],
        [
            [role, _common.fmt_mib(p.peak_rss), _common.fmt_mib(p.peak_tree_rss), f"{p.cpu_seconds:,.0f}",
             _common.fmt_mib(csv_bytes[i]) if i < 2 else "-",
             _common.fmt_mib(inputs.rows * columns[i] * 8) if i < 2 else "-"]
            for i, (role, p) in enumerate(run.parties.items())
        ],
    )
    verdict = "PASS" if not problems else "FAIL: " + "; ".join(problems)
    text = "\n".join([
        f"### Large run: {inputs.rows:,} rows per party, steps 1-7, {bits}-bit keys, chunks of "
        f"{chunk_rows:,} rows",
        "",
        f"Machine: {_common.machine_line()}. Command: `{_common.command_line()}`. Date {_common.today()}, commit "
        f"{_common.git_commit()}, load average {run.load_before:.2f} before, {run.load_after:.2f} after. Three "
        f"`mpcactors party` processes, mutual TLS on loopback, executor `{executor}`; synthetic cohort, "
        f"{columns[0]} + {columns[1]} attributes, overlap {overlap}, intersection {inputs.intersection:,} rows.",
        "",
        f"Steps 1-7 (slowest party): {_common.fmt_seconds(run.protocol_seconds(STEPS))} s; wall "
        f"{_common.fmt_seconds(run.wall_seconds)} s; bytes sent {_common.fmt_bytes(run.bytes_sent(STEPS))}.",
        "",
        memory,
        "",
        _common.step_table(steps, STEPS),
        "",
        "Messages sent per step (count x average size):",
        "",
        _common.markdown_table(["step", "hospital", "insurer", "TTP"], per_message),
        "",
        f"Verdict: {verdict}.",
    ])
    return text, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per party")
    parser.add_argument("--bits", type=int, default=2048, choices=[1024, 2048, 3072])
    parser.add_argument("--hospital-attributes", type=int, default=5)
    parser.add_argument("--insurer-attributes", type=int, default=5, help="including the target")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=4096)
    parser.add_argument("--executor", choices=_common.EXECUTOR_POLICIES, default="process")
    parser.add_argument("--timeout", type=float, default=6 * 3600)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mpcactors-large-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# large run: {args.rows:,} rows per party, {args.bits}-bit keys, in {workdir}", flush=True)
    inputs = _common.write_inputs(
        workdir / "data", rows=args.rows, overlap=args.overlap, seed=args.seed,
        hospital_attributes=args.hospital_attributes, insurer_attributes=args.insurer_attributes,
    )
    deployment = _common.prepare_deployment(
        workdir / "deployment", inputs, key_bits=args.bits, lasso=False, executor=args.executor,
        chunk_rows=args.chunk_rows,
    )
    run = _common.run_deployment(deployment, timeout=args.timeout, label=f"{args.rows:,} rows")

    text, problems = report(
        run, inputs, bits=args.bits, chunk_rows=args.chunk_rows, executor=args.executor, overlap=args.overlap
    )
    print(text)
    if not args.no_docs:
        update_docs(f"large-{args.rows}-{args.bits}", text)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
