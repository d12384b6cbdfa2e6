"""The join race: our steps 2 to 6 against TNO's ``secure_inner_join`` in the same run.

Usage::

    python benchmarks/join_race.py                  # 1,000 and 5,000 rows per party
    python benchmarks/join_race.py --sizes 1000     # one size
    python benchmarks/join_race.py --quick          # 100 rows, no docs update (smoke run)

What races: the same synthetic cohort (``mpcactors.synth``, no missing
cells, 50% overlap) written once as two CSVs and read by both sides; the same key
size (2048 bits) and the same attributes (default 2 + 3: the configuration the
reference was measured with in ``shared/research/reference-measurements.md``; fewer
attributes per row is the conservative choice for us, because we pack several values
per ciphertext and TNO encrypts each value on its own).

* **Ours**: three ``mpcactors party`` processes over mutual TLS on loopback, run with
  ``lasso = false`` (steps 1 to 7). The join is steps 2 to 6: the figure is the slowest
  party's summed step times from its run report (key generation is inside step 3).
  Step 7 (conversion to Shamir shares) is not part of the join; TNO has no such step.
* **TNO** (``tno.mpc.protocols.secure_inner_join==2.0.2``, in its own virtual
  environment ``benchmarks/.venv-tno-join``, created and installed by this script if
  missing): three processes (``benchmarks/tno_join_party.py``: two data owners and the
  helper) over plain HTTP on loopback ports chosen at run time. The join figure runs
  from the moment the last of the three processes is ready (imports done, data loaded)
  to the end of the last one: it includes TNO's key generation, as ours does.
  TNO's messages are not encrypted in transit (ours are, with TLS): conservative for us.

Both sides also get a whole-process wall time (launch of the three processes to the
last exit: interpreter start-up, imports, input loading, connections) and the CPU time
(user + system) of all their processes and reaped workers, which depends much less on
the machine's load than wall time.

Fairness on a shared machine: each size runs ours, then TNO, then ours again, and
our figure is the mean of the two runs, so a load change during the (much longer)
TNO run affects both sides. The ratio is TNO's time over ours; "ratio per run" shows
it against each of our two runs, so a load swing during the race is visible.

Sanity check: TNO's two data owners write their additive shares; their sum must equal
the plaintext inner join of the two CSVs (as a multiset of rows, exactly, in decimal).
Our protocol's join is checked against the plaintext join by the project's tests
(``tests/``), not here.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parent
VENV = BENCHMARKS / ".venv-tno-join"
RUNNER = BENCHMARKS / "tno_join_party.py"
TNO_PACKAGE = "tno.mpc.protocols.secure_inner_join"
TNO_VERSION = "2.0.2"
#: reference-measurements.md: the join pins communication 4.x, whose import fails with utils 0.16
INSTALL_STEPS = (
    ["gmpy2==2.3.2", f"{TNO_PACKAGE}=={TNO_VERSION}"],
    ["tno.mpc.encryption_schemes.utils==0.15.0"],
)
TARGET_RATIO = 20.0
TNO_ROLES = {"alice": "hospital", "bob": "insurer", "henri": None}


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> str:
    """Create and fill the reference's virtual environment if needed; return its package version line."""
    return common.ensure_venv(VENV, INSTALL_STEPS, TNO_PACKAGE, TNO_VERSION, ("tno.mpc.communication", "gmpy2"))


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together while chosen)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def plaintext_join(inputs: common.Inputs) -> Counter[tuple[Decimal, ...]]:
    """The inner join of the two CSVs on ``id`` (hospital columns, then insurer's), as a multiset."""
    def read(path: Path) -> dict[str, list[str]]:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            return {row[0]: row[1:] for row in reader}

    hospital, insurer = read(inputs.hospital_csv), read(inputs.insurer_csv)
    return Counter(
        tuple(Decimal(v) for v in hospital[key] + insurer[key]) for key in hospital.keys() & insurer.keys()
    )


def run_tno(inputs: common.Inputs, directory: Path, *, key_bits: int, timeout: float, check: bool) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    ports = dict(zip(TNO_ROLES, free_ports(len(TNO_ROLES)), strict=True))
    port_text = ",".join(f"{name}={port}" for name, port in ports.items())
    commands = {}
    for name, role in TNO_ROLES.items():
        (directory / f"{name}.json").unlink(missing_ok=True)
        argv = [str(venv_python()), str(RUNNER), "--role", name, "--ports", port_text,
                "--out", str(directory / f"{name}.json"), "--key-bits", str(key_bits)]
        if role is not None:
            argv += ["--csv", str(inputs.hospital_csv if role == "hospital" else inputs.insurer_csv)]
            if check:
                argv.append("--shares")
        commands[name] = argv
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    load_before = common.load_average()
    outcomes, wall, timed_out = common.run_processes(
        commands, cwd=directory, stderr_dir=directory, timeout=timeout, label="TNO", env=env
    )
    failed = [o for o in outcomes.values() if o.exit_code != 0]
    if timed_out or failed:
        detail = "; ".join(f"{o.name} exited {o.exit_code}: {o.stderr.strip().splitlines()[-1:]}" for o in failed)
        raise SystemExit(f"TNO's join failed{' (timeout)' if timed_out else ''}: {detail}")
    records = {name: json.loads((directory / f"{name}.json").read_text()) for name in TNO_ROLES}
    join_seconds = max(r["end"] for r in records.values()) - max(r["ready"] for r in records.values())
    result = {
        "join_seconds": join_seconds,
        "wall_seconds": wall,
        "keygen_seconds": max(r["keygen_seconds"] for r in records.values()),
        "bytes_sent": sum(r["bytes_sent"] for r in records.values()),
        "intersection_size": records["henri"]["intersection_size"],
        "peak_rss": {name: o.peak_tree_rss for name, o in outcomes.items()},
        "cpu_seconds": sum(o.cpu_seconds for o in outcomes.values()),
        "load_before": load_before,
        "load_after": common.load_average(),
        "sanity": None,
    }
    if check:
        alice, bob = records["alice"]["shares"], records["bob"]["shares"]
        summed = Counter(
            tuple(Decimal(a) + Decimal(b) for a, b in zip(row_a, row_b, strict=True))
            for row_a, row_b in zip(alice, bob, strict=True)
        )
        expected = plaintext_join(inputs)
        result["sanity"] = summed == expected
        result["sanity_rows"] = (sum(summed.values()), sum(expected.values()))
    return result


def run_ours(inputs: common.Inputs, directory: Path, *, key_bits: int, executor: str, timeout: float,
             label: str) -> dict:
    deployment = common.prepare_deployment(directory, inputs, key_bits=key_bits, lasso=False, executor=executor)
    run = common.run_deployment(deployment, timeout=timeout, label=label)
    if not run.ok:
        raise SystemExit(f"our run failed: {run.failure()}")
    return {
        "join_seconds": run.protocol_seconds(range(2, 7)),
        "steps_1_7_seconds": run.protocol_seconds(range(1, 8)),
        "wall_seconds": run.wall_seconds,
        "bytes_sent": run.bytes_sent(range(2, 7)),
        "peak_rss": {r: p.peak_tree_rss for r, p in run.parties.items()},
        "cpu_seconds": run.cpu_seconds,
        "load_before": run.load_before,
        "load_after": run.load_after,
        "run": run,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000", help="rows per party, comma-separated")
    parser.add_argument("--bits", type=int, default=2048, help="Paillier modulus size for both sides")
    parser.add_argument("--hospital-attributes", type=int, default=2)
    parser.add_argument("--insurer-attributes", type=int, default=3, help="including the target column")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--executor", choices=common.EXECUTOR_POLICIES, default="process",
                        help="our daemons' executor policy")
    parser.add_argument("--no-check", action="store_true", help="skip the sanity check of TNO's output")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="100 rows per party, no docs update")
    parser.add_argument("--workdir", type=Path, help="keep inputs, configs and outputs here (default: a temp dir)")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per run before it is stopped")
    args = parser.parse_args()
    sizes = [100] if args.quick else [int(s) for s in args.sizes.split(",")]
    write_docs = not (args.quick or args.no_docs)

    versions = ensure_venv()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="join-race-"))
    started = common.now()
    print(f"# Join race, {started}; machine: {common.machine_line()}")
    print(f"  reference: {TNO_PACKAGE} {versions.split()[0]} (communication {versions.split()[1]}, "
          f"gmpy2 {versions.split()[2]}); ours: commit {common.git_commit()}, executor {args.executor}")
    print(f"  {args.bits}-bit keys, {args.hospital_attributes} + {args.insurer_attributes} attributes, "
          f"overlap {args.overlap}, work directory {workdir}", flush=True)

    results = []
    for rows in sizes:
        base = workdir / f"rows-{rows}"
        inputs = common.write_inputs(
            base / "data", rows=rows, overlap=args.overlap, seed=args.seed,
            hospital_attributes=args.hospital_attributes, insurer_attributes=args.insurer_attributes,
        )
        print(f"## {rows:,} rows per party (intersection {inputs.intersection:,}); "
              f"load {common.load_average():.2f}", flush=True)
        first = run_ours(inputs, base / "ours-1", key_bits=args.bits, executor=args.executor,
                         timeout=args.timeout, label="ours 1")
        print(f"  ours (1): join {first['join_seconds']:.2f} s, wall {first['wall_seconds']:.2f} s", flush=True)
        tno = run_tno(inputs, base / "tno", key_bits=args.bits, timeout=args.timeout, check=not args.no_check)
        print(f"  TNO: join {tno['join_seconds']:.2f} s, wall {tno['wall_seconds']:.2f} s, "
              f"sanity {tno['sanity']}", flush=True)
        second = run_ours(inputs, base / "ours-2", key_bits=args.bits, executor=args.executor,
                          timeout=args.timeout, label="ours 2")
        print(f"  ours (2): join {second['join_seconds']:.2f} s, wall {second['wall_seconds']:.2f} s", flush=True)
        results.append((rows, inputs, first, tno, second))

    headers = ["rows per party", "intersection", "ours: steps 2-6 s (run 1, run 2)", "TNO: join s",
               "ratio (TNO / ours)", "ratio per run", "ours: wall s", "TNO: wall s", "ratio, wall",
               "CPU s: ours / TNO", "ratio, CPU", "bytes sent: ours / TNO", "TNO output = plaintext join",
               f"target >= {TARGET_RATIO:g}x"]
    table_rows = []
    for rows, inputs, first, tno, second in results:
        ours_join = statistics.mean([first["join_seconds"], second["join_seconds"]])
        ours_wall = statistics.mean([first["wall_seconds"], second["wall_seconds"]])
        ratio = tno["join_seconds"] / ours_join
        per_run = sorted(tno["join_seconds"] / r["join_seconds"] for r in (first, second))
        ours_cpu = statistics.mean([first["cpu_seconds"], second["cpu_seconds"]])
        table_rows.append([
            f"{rows:,}",
            f"{inputs.intersection:,}",
            f"{ours_join:.2f} ({first['join_seconds']:.2f}, {second['join_seconds']:.2f})",
            common.fmt_seconds(tno["join_seconds"]),
            f"{ratio:.1f}x",
            f"{per_run[0]:.1f}x to {per_run[1]:.1f}x",
            f"{ours_wall:.2f}",
            common.fmt_seconds(tno["wall_seconds"]),
            f"{tno['wall_seconds'] / ours_wall:.1f}x",
            f"{common.fmt_seconds(ours_cpu)} / {common.fmt_seconds(tno['cpu_seconds'])}",
            f"{tno['cpu_seconds'] / ours_cpu:.1f}x",
            f"{common.fmt_bytes(first['bytes_sent'])} / {common.fmt_bytes(tno['bytes_sent'])}",
            {True: "yes", False: "NO", None: "not checked"}[tno["sanity"]],
            "met" if ratio >= TARGET_RATIO else "MISSED",
        ])
    table = common.markdown_table(headers, table_rows, "rrrrrrrrrrrrll")
    loads = [v for _, _, f, t, s in results for v in (f["load_before"], t["load_before"], s["load_before"],
                                                          s["load_after"])]
    memory_rows = []
    for rows, _, first, tno, _ in results:
        memory_rows.append([f"{rows:,}"] + [common.fmt_mib(first["peak_rss"][r]) for r in common.ROLES]
                           + [common.fmt_mib(tno["peak_rss"][n]) for n in TNO_ROLES])
    memory = common.markdown_table(
        ["rows per party", "ours: hospital", "ours: insurer", "ours: TTP", "TNO: alice", "TNO: bob", "TNO: helper"],
        memory_rows,
    )
    print()
    print(table)
    print()
    print("Peak RSS per party (MiB, process + workers, sampled):")
    print(memory)
    print(f"\n1-minute load average during the runs: {min(loads):.2f} to {max(loads):.2f} "
          f"on {common.machine()['nproc']} CPUs")

    if write_docs:
        key = "join_race-" + "-".join(str(s) for s in sizes) + f"-{args.bits}"
        text = f"""\
### Join race against TNO's secure_inner_join: {", ".join(f"{s:,}" for s in sizes)} rows per party

- Command: `{common.command_line()}`
- Date: {common.today()}; commit {common.git_commit()}
- Machine: {common.machine_line()}
- Load: the machine was shared with other engineers' work; the 1-minute load average
  was {min(loads):.2f} to {max(loads):.2f} during the runs. Each size ran ours, TNO, ours, so a load
  change during the race affects both sides; "ratio per run" shows how much it moved our time.
- Reference: `{TNO_PACKAGE}=={versions.split()[0]}` (communication {versions.split()[1]},
  gmpy2 {versions.split()[2]}) in `benchmarks/.venv-tno-join`, three processes, plain HTTP on loopback.
- Ours: three `mpcactors party` processes, mutual TLS on loopback, executor `{args.executor}`,
  `lasso = false`; the join is steps 2 to 6 (slowest party's summed step times from the run reports;
  key generation is inside step 3). TNO's join time runs from the moment the last of its
  processes is ready to the end of the last one (its key generation included).
- Workload: synthetic cohort (`mpcactors.synth`, seed {args.seed}, no missing cells), overlap
  {args.overlap}, {args.hospital_attributes} + {args.insurer_attributes} attributes, {args.bits}-bit
  keys, the same two CSV files for both sides. "Wall" is the launch of the three processes to the
  last exit (interpreter start-up, imports, input loading, connections included). "CPU" is
  user + system time of all processes of a side and the workers they reaped (start-up included);
  it depends much less on the load than wall time. "Ratio per run": TNO's join time against
  each of our two runs (ours ran before and after TNO).

{table}

Peak RSS per party (MiB, the party's process and its workers, sampled every 0.2 s):

{memory}
"""
        common.update_docs(key, text)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
