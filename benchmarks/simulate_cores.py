"""Every core in one process: the whole ``mpcactors simulate``, before and after, against TNO's join.

Usage::

    # the race (issue 18, item 1): this checkout against another one, TNO in the same run
    python benchmarks/simulate_cores.py race --before /tmp/simcores-before [--rows 1000] [--repeats 3]
    # the README's main command (``mpcactors simulate``, its defaults), before and after
    python benchmarks/simulate_cores.py readme --before /tmp/simcores-before [--repeats 3]
    # where ``auto`` should switch from inline to worker processes in a simulation
    python benchmarks/simulate_cores.py policy [--sizes 25,50,100,250,500] [--bits 2048 3072]

What is timed is what a newcomer waits for: the console script ``mpcactors simulate``
from process start to exit (interpreter start-up, imports, input loading, key
generation, steps 1 to 8 with the lasso, every worker process started and stopped),
``--json`` so no terminal rendering is timed. Inputs: the synthetic cohort of
``benchmarks/_common.write_inputs`` (seed 0, no missing cells, overlap 0.5), by
default 1,000 rows per party and 2 + 3 attributes: the join race's configuration, read
from the same CSVs by both checkouts and by TNO.

``race`` alternates the two checkouts (``before``, ``after``, then ``after``,
``before``, ...) so a change of load on the shared machine hits both, and runs TNO's
``secure_inner_join`` (``benchmarks/join_race.py``'s runner and virtual environment)
once after the first round. The ratio is TNO's join alone over our whole command.
By default (``--bytecode both``) each checkout runs with its compiled bytecode cached
(as installed: ``pip install`` compiles it; a run from an editable checkout writes it
unless ``PYTHONDONTWRITEBYTECODE`` is set, as it is in this machine's sessions) and
without a cache (every import compiles the checkout's sources).
``policy`` alternates ``--executor inline`` and ``--executor process`` of this checkout
per size, to place :data:`mpcactors.actors.executor.AUTO_SHARED_MIN_ROWS`.

Every run records the 1-minute load average before it (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

HERE = Path(sys.executable).parent / "mpcactors"


def bytecode_env(cache: Path | None) -> dict[str, str]:
    """The environment of a run: with ``cache``, Python reads and writes compiled bytecode
    there (as after ``pip install``, which compiles it); without, this shell's setting
    (``PYTHONDONTWRITEBYTECODE=1`` on the shared machine: every import compiles the
    editable checkout's sources anew)."""
    if cache is None:
        return dict(os.environ)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def run_simulate(script: Path, inputs: common.Inputs, bits: int, *extra: str, env: dict[str, str] | None = None) -> dict:
    """One whole ``mpcactors simulate`` run: wall seconds from launch to exit, and its document."""
    command = [str(script), "simulate", "--key-bits", str(bits), "--hospital", str(inputs.hospital_csv),
               "--insurer", str(inputs.insurer_csv), "--json", *extra]
    load = common.load_average()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    document = json.loads(done.stdout)
    return {"wall": wall, "protocol": document["seconds"], "load": load, "m": document["intersection_size"]}


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def race(args: argparse.Namespace) -> None:
    import join_race

    before = args.before / ".venv" / "bin" / "mpcactors"
    if not before.exists():
        raise SystemExit(f"{before} is missing: make a venv in the --before checkout (pip install -e .)")
    before_commit = subprocess.run(["git", "-C", str(args.before), "rev-parse", "--short", "HEAD"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    versions = join_race.ensure_venv()
    workdir = Path(tempfile.mkdtemp(prefix="simulate-cores-"))
    inputs = common.write_inputs(workdir / "data", rows=args.rows, overlap=0.5, seed=0,
                                 hospital_attributes=2, insurer_attributes=3)
    print(f"# simulate race, {common.now()}; machine: {common.machine_line()}; after = commit {common.git_commit()}, "
          f"before = commit {before_commit}; {args.rows:,} rows per party, {args.bits} bits", flush=True)
    scripts = {"before": before, "after": HERE}
    # bytecode cached: a warm-up run per checkout writes the cache, untimed
    conditions = {"cached": "bytecode cached", "none": "no bytecode cache"} if args.bytecode == "both" \
        else {args.bytecode: "bytecode cached" if args.bytecode == "cached" else "no bytecode cache"}
    envs = {(which, c): bytecode_env(workdir / f"pyc-{which}" if c == "cached" else None)
            for which in scripts for c in conditions}
    for (which, c), env in envs.items():
        if c == "cached":
            run_simulate(scripts[which], inputs, args.bits, env=env)
    uptime = [subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()]
    runs: dict[tuple[str, str], list[dict]] = {key: [] for key in envs}
    tno = None
    for repeat in range(args.repeats):
        order = ("before", "after") if repeat % 2 == 0 else ("after", "before")
        for c in conditions:
            for which in order:
                run = run_simulate(scripts[which], inputs, args.bits, env=envs[which, c])
                runs[which, c].append(run)
                print(f"  {which} ({conditions[c]}): wall {run['wall']:.2f} s, protocol {run['protocol']:.2f} s, "
                      f"load {run['load']:.2f}", flush=True)
        if tno is None and not args.no_tno:
            tno = join_race.run_tno(inputs, workdir / "tno", key_bits=args.bits, timeout=7200, check=True)
            print(f"  TNO: join {tno['join_seconds']:.2f} s, wall {tno['wall_seconds']:.2f} s, load "
                  f"{tno['load_before']:.2f} to {tno['load_after']:.2f}, sanity {tno['sanity']}", flush=True)
    uptime.append(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    walls = {key: [r["wall"] for r in rs] for key, rs in runs.items()}
    loads = [r["load"] for rs in runs.values() for r in rs] + ([tno["load_before"], tno["load_after"]] if tno else [])
    median = {key: statistics.median(w) for key, w in walls.items()}
    rows = [[f"{which}, {conditions[c]}", fmt(walls[which, c]), f"{median[which, c]:.2f}",
             fmt([r["protocol"] for r in runs[which, c]]),
             f"{tno['join_seconds'] / median[which, c]:.1f}x" if tno else "-",
             f"{tno['join_seconds'] / max(walls[which, c]):.1f}x to {tno['join_seconds'] / min(walls[which, c]):.1f}x"
             if tno else "-"]
            for c in conditions for which in ("before", "after")]
    table = common.markdown_table(
        ["checkout", "whole command: wall s per run", "median s", "protocol s (steps 1-9) per run",
         "TNO join / ours (median)", "per run"], rows, "lrrrrr")
    tno_line = (f"TNO's `secure_inner_join` alone (its key generation included, {versions.split()[0]}): "
                f"**{tno['join_seconds']:.1f} s** (wall {tno['wall_seconds']:.1f} s; its output equals the plaintext "
                f"join: {tno['sanity']})." if tno else "TNO not run (--no-tno).")
    after_median = median["after", "cached" if "cached" in conditions else "none"]
    before_median = median["before", "cached" if "cached" in conditions else "none"]
    text = f"""\
### The race: the whole `mpcactors simulate` at {args.rows:,} rows per party against TNO's join alone

- Command: `{common.command_line()}`
- Date: {common.today()}; after = commit {common.git_commit()}, before = commit {before_commit} (a second checkout)
- Machine: {common.machine_line()}
- Load: the 1-minute load average was {min(loads):.2f} to {max(loads):.2f} (2 CPUs, other sessions running);
  `uptime` before: `{uptime[0]}`; after: `{uptime[1]}`. Before and after alternate, TNO ran after the
  first round.
- Ours: `mpcactors simulate --key-bits {args.bits} --hospital H --insurer I --json`, default executor `auto`,
  process start to exit (interpreter start, imports, steps 1 to 8 with the lasso, every worker stopped);
  {args.rows:,} rows per party, 2 + 3 attributes, intersection {runs['after', next(iter(conditions))][0]['m']}.
  "Bytecode cached": Python's compiled bytecode of both checkouts is in a cache
  (`PYTHONPYCACHEPREFIX`, written by one untimed run each), as after `pip install`, which compiles
  it, or from a user's second run on; "no bytecode cache": this machine's sessions run with
  `PYTHONDONTWRITEBYTECODE=1`, so every run compiles the editable checkout's sources anew.
  TNO's figure starts after its imports, once its three parties are ready.
- {tno_line}

{table}

After / before (medians, {next(iter(conditions.values()))}): {after_median / before_median:.2f}.
"""
    print()
    print(text)
    if not args.no_docs:
        common.update_docs("simulate-race", text, prefix="cores", heading=HEADING, intro=INTRO)


def readme(args: argparse.Namespace) -> None:
    """The README's main command, ``mpcactors simulate`` with its defaults, before and after."""
    before = args.before / ".venv" / "bin" / "mpcactors"
    before_commit = subprocess.run(["git", "-C", str(args.before), "rev-parse", "--short", "HEAD"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    walls: dict[str, list[float]] = {"before": [], "after": []}
    loads = []
    for repeat in range(args.repeats):
        for which in (("before", "after") if repeat % 2 == 0 else ("after", "before")):
            loads.append(common.load_average())
            started = time.perf_counter()
            subprocess.run([str(before if which == "before" else HERE), "simulate", *args.extra],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            walls[which].append(time.perf_counter() - started)
            print(f"  {which}: {walls[which][-1]:.2f} s, load {loads[-1]:.2f}", flush=True)
    median = {which: statistics.median(w) for which, w in walls.items()}
    command = " ".join(["mpcactors simulate", *args.extra])
    text = f"""\
### The README's main command: `{command}`, before and after

- Command: `{common.command_line()}`
- Date: {common.today()}; after = commit {common.git_commit()}, before = commit {before_commit}
- Machine: {common.machine_line()}
- Load: the 1-minute load average was {min(loads):.2f} to {max(loads):.2f}; before and after alternate.
- Process start to exit, output to /dev/null (300 rows per party, 3072-bit keys, steps 1 to 8).

| checkout | wall s per run | median s |
|---|---:|---:|
| before | {fmt(walls['before'])} | {median['before']:.2f} |
| after | {fmt(walls['after'])} | {median['after']:.2f} |

After / before (medians): {median['after'] / median['before']:.2f}.
"""
    print()
    print(text)
    if not args.no_docs:
        common.update_docs("simulate-readme", text, prefix="cores", heading=HEADING, intro=INTRO)


def policy(args: argparse.Namespace) -> None:
    from mpcactors.actors.executor import AUTO_SHARED_MAX_LOAD_PER_CORE, AUTO_SHARED_MIN_ROWS, Executor

    sizes = sorted(int(s) for s in args.sizes.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="simulate-policy-"))
    print(f"# simulate policy, {common.now()}; machine: {common.machine_line()}; commit {common.git_commit()}",
          flush=True)
    table_rows = []
    loads = []
    for bits in args.bits:
        for rows in sizes:
            inputs = common.write_inputs(workdir / f"data-{rows}", rows=rows, overlap=0.5, seed=0,
                                         hospital_attributes=2, insurer_attributes=3)
            walls: dict[str, list[float]] = {"inline": [], "process": []}
            for repeat in range(args.repeats):
                order = ("inline", "process") if repeat % 2 == 0 else ("process", "inline")
                for which in order:
                    run = run_simulate(HERE, inputs, bits, "--executor", which)
                    walls[which].append(run["wall"])
                    loads.append(run["load"])
            ratios = [i / p for i, p in zip(walls["inline"], walls["process"], strict=True)]
            # what auto picks for this size at the median load of these runs
            picks = Executor().shared_policy(2 * rows, key_bits=bits, load=statistics.median(loads[-2 * args.repeats:]))
            table_rows.append([str(bits), f"{rows:,}", fmt(walls["inline"]), fmt(walls["process"]),
                               f"{statistics.median(ratios):.2f}",
                               "process" if min(ratios) > 1 else ("inline" if max(ratios) < 1 else "either"), picks])
            print("  " + " | ".join(table_rows[-1]), flush=True)
    table = common.markdown_table(
        ["bits", "rows per party", "inline: wall s", "process: wall s", "inline / process (median)", "faster",
         "auto picks"], table_rows, "rrrrrll")
    text = f"""\
### Where `auto` switches to worker processes in a simulation ({", ".join(map(str, args.bits))} bits)

- Command: `{common.command_line()}`
- Date: {common.today()}; commit {common.git_commit()}
- Machine: {common.machine_line()}
- Load: the 1-minute load average was {min(loads):.2f} to {max(loads):.2f} (2 CPUs, other sessions running).
- Run: the whole `mpcactors simulate --key-bits B --executor inline|process --json` (process start to exit,
  steps 1 to 8), 2 + 3 attributes, overlap 0.5, {args.repeats} runs per policy and size, alternating.
- `auto` picks `process` when the run's rows (both parties) times `(bits / 2048)^3` reach
  `AUTO_SHARED_MIN_ROWS = {AUTO_SHARED_MIN_ROWS:,}` unless the load average exceeds
  `AUTO_SHARED_MAX_LOAD_PER_CORE = {AUTO_SHARED_MAX_LOAD_PER_CORE}` per core ("auto picks" at the median
  load of that size's runs).

{table}
"""
    print()
    print(text)
    if not args.no_docs:
        block = "simulate-policy-" + "-".join(map(str, args.bits))
        common.update_docs(block, text, prefix="cores", heading=HEADING, intro=INTRO)


HEADING = "## Every core in one process: `mpcactors simulate`"
INTRO = """\
`mpcactors simulate` runs every party in one process. Since issue 18 (item 1) the run
has one executor for all parties (`Executor.shared` in `src/mpcactors/actors/executor.py`):
`auto` decides once, by the whole run's rows, and under `process` every party's
Paillier work shares one limit of one job per core, public-key work goes to one pool
that ends with the run, and each key's secret-key work to that key's scoped workers
(`pool_size // data parties` of them), all forked from a forkserver that starts while
the parties generate their keys and has imported the crypto once. Script:
`benchmarks/simulate_cores.py`."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("race")
    r.add_argument("--before", type=Path, required=True, help="a checkout of the start commit, with its own .venv")
    r.add_argument("--rows", type=int, default=1000)
    r.add_argument("--bits", type=int, default=2048)
    r.add_argument("--repeats", type=int, default=3, help="runs per checkout")
    r.add_argument("--no-tno", action="store_true")
    r.add_argument("--bytecode", choices=("both", "cached", "none"), default="both",
                   help="run with compiled bytecode cached, without a cache (this shell's setting), or both")
    r.add_argument("--no-docs", action="store_true")
    m = sub.add_parser("readme")
    m.add_argument("--before", type=Path, required=True)
    m.add_argument("--repeats", type=int, default=3)
    m.add_argument("--no-docs", action="store_true")
    m.add_argument("extra", nargs="*", help="arguments after `simulate` (default: none, the README's command)")
    p = sub.add_parser("policy")
    p.add_argument("--sizes", default="25,50,100,250,500", help="rows per party, comma-separated")
    p.add_argument("--bits", type=int, nargs="+", default=[2048])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    {"race": race, "readme": readme, "policy": policy}[args.mode](args)


if __name__ == "__main__":
    main()
