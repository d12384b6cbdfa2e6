"""Shared helpers of the daemon benchmarks (pilot, scaling, join race).

Three kinds of help:

* **facts about the run**: the machine (``lscpu``, ``nproc``, memory), the git commit,
  the date, the load average and the command line, so every figure written to
  ``docs/benchmarks.md`` says where and how it was measured;
* **output**: markdown tables, and :func:`update_docs`, which replaces one marked block
  inside the "Pilot, scaling and the join race" section of ``docs/benchmarks.md`` (and creates the section or
  the file when absent), so re-running a benchmark updates its figures instead of
  piling up copies;
* **running the real daemons**: :func:`write_inputs` writes a synthetic cohort as CSV,
  :func:`prepare_deployment` turns ``mpcactors deploy-example`` output into the
  configuration a benchmark needs (rows, attributes, key size, lasso on or off,
  executor, generous deadlines), and :func:`run_deployment` starts the three
  ``mpcactors party`` processes and measures each one: its per-step report (seconds,
  bytes, messages), its exit code and its peak memory.

Peak memory is measured two ways, because a party may run worker processes:

* ``peak_rss``: ``ru_maxrss`` from ``os.wait4`` on the party's process. Linux reports
  the largest of the process's own peak and those of the children it reaped, so this
  is the peak of the *largest single process* of the party (normally its main process,
  which holds the table).
* ``peak_tree_rss``: the largest *sum* of ``VmRSS`` over the party's process and all
  its descendants (workers), sampled every ``sample_interval`` seconds from ``/proc``.
  Shared pages (the interpreter and imported modules of forked or spawned workers)
  are counted once per process, so this over-counts a little; it is the conservative
  figure to hold against a per-party memory budget. A peak shorter than the sampling
  interval can be missed.

CPU time (user + system, from the same ``wait4``) counts the process and the workers it
reaped before exiting; on a shared machine it varies much less with the load than wall
time does, so it is reported next to wall times as a steadier view of the work done.

No third-party dependency beyond what the project already installs.
"""

from __future__ import annotations

import datetime
import gc
import json
import math
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpcactors.actors.executor import POLICIES as EXECUTOR_POLICIES
from mpcactors.protocol.steps import STEP_NAMES
from mpcactors.protocol.roster import Roster

ROLES = Roster().members

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks.md"
SECTION_HEADING = "## Pilot, scaling and the join race"
SECTION_INTRO = """\
Scripts: `benchmarks/pilot.py`, `benchmarks/scaling.py`, `benchmarks/join_race.py` (see
`benchmarks/README.md`). Each run replaces its own block below (one block per benchmark and
configuration) with the figures of that run, the machine, the command, the git commit and
the load average. Our side always runs as three `mpcactors party` processes talking mutual
TLS over loopback TCP (the deployed code path), unless a block says "simulate"."""

MIB = 1024 * 1024


# ---- facts about the run ---------------------------------------------------------------


def machine() -> dict[str, str]:
    """CPU model (``lscpu``), CPU count (``nproc``), memory, Python and gmpy2 versions."""
    model = platform.processor() or "unknown"
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()
        model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Model name")), model)
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    except OSError:
        pass
    try:
        import gmpy2

        gmpy = gmpy2.version()
    except ImportError:
        gmpy = "absent"
    return {
        "cpu": model,
        "nproc": nproc or "?",
        "memory": memory,
        "python": platform.python_version(),
        "gmpy2": gmpy,
    }


def machine_line() -> str:
    m = machine()
    return f"{m['cpu']} (`lscpu`), nproc {m['nproc']}, {m['memory']} RAM, Python {m['python']}, gmpy2 {m['gmpy2']}"


def git_commit() -> str:
    """Short commit of the working tree, with ``+ uncommitted src/ changes`` when src/ differs."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} + uncommitted src/ changes" if dirty else head


def today() -> str:
    return datetime.date.today().isoformat()


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def command_line() -> str:
    """How this script was invoked, as a command to paste (relative to the repository)."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(REPO))
    except ValueError:
        script_text = str(script)
    return shlex.join(["python", script_text, *sys.argv[1:]])


# ---- output ------------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one character per column: ``l`` or ``r``."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def fmt_mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:,.0f}"


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    if value < 10_000:
        return f"{value:,} B"
    if value < 10 * MIB:
        return f"{value / 1024:,.0f} KiB"
    return f"{value / MIB:,.1f} MiB"


def update_docs(
    block_id: str,
    text: str,
    path: Path = DOCS,
    *,
    prefix: str = "pilot",
    heading: str = SECTION_HEADING,
    intro: str = SECTION_INTRO,
) -> None:
    """Put ``text`` in the block ``prefix:block_id`` of the section ``heading`` of ``path``.

    Creates the file (with its ``# Benchmarks`` heading) and the section (``heading``
    then ``intro``) when absent. A block with the same id is replaced in place; a new
    block goes to the end of the section (before the next ``## `` heading), so other
    sections are never touched. The default section is the pilot's; ``soak.py`` passes
    the Robustness section's.
    """
    start, end = f"<!-- {prefix}:{block_id} -->", f"<!-- /{prefix}:{block_id} -->"
    block = f"{start}\n{text.strip()}\n{end}\n"
    content = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if heading + "\n" not in content:
        content = content.rstrip("\n") + f"\n\n{heading}\n\n{intro}\n"
    head, _, rest = content.partition(heading + "\n")
    following = re.search(r"^## ", rest, flags=re.MULTILINE)
    section, tail = (rest[: following.start()], rest[following.start():]) if following else (rest, "")
    if start in section and end in section:
        before, _, after = section.partition(start)
        _, _, after = after.partition(end)
        section = before + block.rstrip("\n") + after
    else:
        section = section.rstrip("\n") + "\n\n" + block
    if tail and not section.endswith("\n\n"):
        section = section.rstrip("\n") + "\n\n"
    path.write_text(head + heading + "\n" + section + tail, encoding="utf-8")
    print(f"\nupdated {path.relative_to(REPO) if path.is_relative_to(REPO) else path} (block {prefix}:{block_id})")


def fit_exponent(sizes: Sequence[float], times: Sequence[float]) -> float:
    """Least-squares slope of log(time) against log(size): time grows as size**slope."""
    if len(sizes) < 2:
        raise ValueError("need at least two sizes to fit an exponent")
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


# ---- synthetic inputs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """The CSVs of one synthetic cohort (one per data party) and their public shape."""

    hospital_csv: Path
    insurer_csv: Path
    hospital_columns: tuple[str, ...]
    insurer_columns: tuple[str, ...]
    rows: int
    overlap: float
    seed: int
    intersection: int
    #: every data party's CSV and columns, by name in roster order (the two above included)
    csvs: dict[str, Path] = field(default_factory=dict)
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def parties(self) -> tuple[str, ...]:
        return tuple(self.csvs) or ("hospital", "insurer")

    @property
    def members(self) -> tuple[str, ...]:
        return Roster(self.parties).members


def write_inputs(
    directory: Path,
    *,
    rows: int,
    overlap: float = 0.5,
    seed: int = 0,
    hospital_attributes: int = 15,
    insurer_attributes: int = 15,
    missing_rate: float = 0.0,
    parties: int = 2,
) -> Inputs:
    """Write one CSV per data party (``hospital.csv``, ``insurer.csv``, ``cbs.csv``, ...) of
    :func:`mpcactors.synth.make_cohort`.

    ``missing_rate`` defaults to 0 so that every party keeps exactly ``rows`` rows (a
    row with a missing cell is dropped at step 1, which would shrink the workload).
    """
    from mpcactors.synth import make_cohort, write_cohort_by_party

    cohort = make_cohort(
        rows,
        overlap,
        seed,
        hospital_attributes=hospital_attributes,
        insurer_attributes=insurer_attributes,
        missing_rate=missing_rate,
        parties=parties,
        intervention=False,  # the workloads are defined by their attribute counts
    )
    csvs = {name: path.resolve() for name, path in write_cohort_by_party(cohort, directory).items()}
    columns = {name: tuple(table.header[1:]) for name, table in cohort.tables.items()}
    inputs = Inputs(
        hospital_csv=csvs["hospital"],
        insurer_csv=csvs["insurer"],
        hospital_columns=columns["hospital"],
        insurer_columns=columns["insurer"],
        rows=rows,
        overlap=overlap,
        seed=seed,
        intersection=len(cohort.intersection_ids),
        csvs=csvs,
        columns=columns,
    )
    del cohort
    gc.collect()
    return inputs


# ---- the three daemons -------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_dumps(data: dict[str, Any]) -> str:
    """TOML text for tables of scalars and lists (with one level of nested tables, e.g. ``peers``)."""
    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        nested = {k: v for k, v in body.items() if isinstance(v, dict)}
        if scalars or not nested:
            lines.append(f"[{name}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
            lines.append("")
        for key, sub in nested.items():
            table(f"{name}.{key}", sub)

    for name, body in data.items():
        table(name, body)
    return "\n".join(lines)


@dataclass(frozen=True)
class Deployment:
    directory: Path
    configs: dict[str, Path]
    key_bits: int
    lasso: bool
    executor: str
    inputs: Inputs


def prepare_deployment(
    directory: Path,
    inputs: Inputs,
    *,
    key_bits: int,
    lasso: bool,
    executor: str = "process",
    chunk_rows: int | None = None,
    step_deadline: float | None = None,
) -> Deployment:
    """Three party configs on 127.0.0.1 (fresh ports and certificates) for ``inputs``.

    Runs ``mpcactors deploy-example`` into ``directory`` for the certificates, ports and
    config skeleton, then rewrites each config: the input CSVs and columns of
    ``inputs``, ``key_bits`` (1024 adds ``insecure_test_key_bits``, for smoke runs
    only), ``lasso``, the executor policy, and per-step deadlines of ``step_deadline``
    seconds (default: an hour plus 20 ms per row, so a big run is never cut short by a
    deadline meant to catch stalls).
    """
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "mpcactors", "deploy-example", "--out", str(directory), "--rows", "10",
         "--key-bits", "2048", "--force", "--parties", ",".join(inputs.parties)],
        check=True,
        capture_output=True,
        text=True,
    )
    deadline = step_deadline if step_deadline is not None else 3600 + 0.02 * inputs.rows
    configs: dict[str, Path] = {}
    for role in inputs.members:
        path = directory / f"{role}.toml"
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        data["party"]["executor"] = executor
        protocol = data["protocol"]
        if "columns" in protocol:  # the k-party form of deploy-example
            protocol["columns"] = {name: list(columns) for name, columns in inputs.columns.items()}
        else:
            protocol["hospital_columns"] = list(inputs.hospital_columns)
            protocol["insurer_columns"] = list(inputs.insurer_columns)
        protocol["key_bits"] = key_bits
        if key_bits < 2048:
            protocol["insecure_test_key_bits"] = True
        protocol["lasso"] = lasso
        if chunk_rows is not None:
            protocol["chunk_rows"] = chunk_rows
        deadlines = data.setdefault("deadlines", {})
        deadlines["connect"] = max(float(deadlines.get("connect", 120)), 600.0)
        for step in range(1, 10):
            deadlines[f"step_{step}"] = float(deadline)
        if role != "ttp":
            data["input"]["csv"] = str(inputs.csvs.get(role) or (inputs.hospital_csv if role == "hospital" else inputs.insurer_csv))
            data["input"].pop("columns", None)
        path.write_text(
            f"# Written by benchmarks/_common.py from `mpcactors deploy-example` output.\n\n{toml_dumps(data)}",
            encoding="utf-8",
        )
        configs[role] = path
    return Deployment(directory, configs, key_bits, lasso, executor, inputs)


@dataclass
class PartyRun:
    """One party process: exit code, run report, result, peak memory."""

    role: str
    exit_code: int
    report: dict[str, Any]
    result: dict[str, Any] | None
    peak_rss: int  # bytes, largest single process of the party (wait4 ru_maxrss)
    peak_tree_rss: int  # bytes, sampled sum over the party's process tree
    cpu_seconds: float  # user + system, the party's process and the workers it reaped
    stderr: str

    @property
    def steps(self) -> dict[int, dict[str, Any]]:
        return {int(s["step"]): s for s in self.report.get("steps", [])}

    def seconds(self, steps: Iterable[int]) -> float:
        mine = self.steps
        return sum(float(mine[s]["seconds"]) for s in steps if s in mine)

    def bytes_sent(self, steps: Iterable[int]) -> int:
        mine = self.steps
        return sum(int(mine[s]["bytes_sent"]) for s in steps if s in mine)


@dataclass
class DeploymentRun:
    """The three party processes of one run, and the wall time from launch to the last exit."""

    deployment: Deployment
    parties: dict[str, PartyRun]
    wall_seconds: float
    load_before: float
    load_after: float
    timed_out: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_seconds(self) -> float:
        """CPU time (user + system) of all three parties' processes, start-up included."""
        return sum(p.cpu_seconds for p in self.parties.values())

    def steps_by_role(self) -> dict[str, dict[int, dict[str, Any]]]:
        return {role: party.steps for role, party in self.parties.items()}

    @property
    def ok(self) -> bool:
        return not self.timed_out and all(p.exit_code == 0 for p in self.parties.values())

    def protocol_seconds(self, steps: Iterable[int]) -> float:
        """The slowest party's time through ``steps`` (each party runs them back to back)."""
        steps = list(steps)
        return max(p.seconds(steps) for p in self.parties.values())

    def bytes_sent(self, steps: Iterable[int]) -> int:
        steps = list(steps)
        return sum(p.bytes_sent(steps) for p in self.parties.values())

    def failure(self) -> str:
        lines = []
        if self.timed_out:
            lines.append("the run exceeded its timeout; the parties were stopped")
        for p in self.parties.values():
            if p.exit_code != 0:
                error = p.report.get("error") or p.stderr.strip().splitlines()[-1:] or ["?"]
                lines.append(f"{p.role} exited {p.exit_code}: {error if isinstance(error, str) else error[0]}")
        return "; ".join(lines)


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in children:
                found.append(int(child))
                stack.append(int(child))
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Sum of VmRSS over ``pid`` and its descendants, in bytes (0 once it has exited)."""
    return sum(_rss(p) for p in [pid, *_descendants(pid)])


@dataclass
class ProcessOutcome:
    """One process started by :func:`run_processes`."""

    name: str
    exit_code: int
    seconds: float  # from the launch of all processes to this one's exit
    peak_rss: int  # bytes, ru_maxrss from wait4 (largest of the process and its reaped children)
    peak_tree_rss: int  # bytes, largest sampled sum over the process and its descendants
    cpu_seconds: float  # user + system time of the process and the children it reaped
    stderr: str


def run_processes(
    commands: dict[str, list[str]],
    *,
    cwd: Path,
    stderr_dir: Path,
    timeout: float | None = None,
    sample_interval: float = 0.2,
    label: str = "",
    env: dict[str, str] | None = None,
    keep_stdout: bool = False,
) -> tuple[dict[str, ProcessOutcome], float, bool]:
    """Start every command at once, wait for all, measure each: (outcomes, wall seconds, timed out).

    Each process runs in its own session (process group), so a run that exceeds
    ``timeout`` seconds is stopped by signalling exactly those groups. With
    ``keep_stdout``, each process's standard output goes to ``stderr_dir/NAME.stdout``.
    """
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stderr_paths = {name: stderr_dir / f"{name}.stderr" for name in commands}
    started = time.perf_counter()
    for name, argv in commands.items():
        with open(stderr_paths[name], "wb") as stderr, \
                open(stderr_dir / f"{name}.stdout" if keep_stdout else os.devnull, "wb") as stdout:
            processes[name] = subprocess.Popen(
                argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                start_new_session=True, env=env,
            )
    peak_tree = dict.fromkeys(commands, 0)
    finished: dict[str, tuple[int, float, Any]] = {}
    timed_out = False
    while len(finished) < len(processes):
        for name, proc in processes.items():
            if name in finished:
                continue
            peak_tree[name] = max(peak_tree[name], tree_rss(proc.pid))
            pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                code = os.waitstatus_to_exitcode(wait_status)
                proc.returncode = code  # reaped here; keep Popen from waiting again
                finished[name] = (code, time.perf_counter() - started, usage)
                if label:
                    print(f"  [{label}] {name} exited {code} after {finished[name][1]:.1f} s", flush=True)
        if timeout is not None and time.perf_counter() - started > timeout and len(finished) < len(processes):
            timed_out = True
            for name, proc in processes.items():
                if name not in finished:
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            timeout = None  # reap them on the next turns
        if len(finished) < len(processes):
            time.sleep(sample_interval)
    wall = time.perf_counter() - started
    outcomes = {
        name: ProcessOutcome(
            name=name,
            exit_code=code,
            seconds=seconds,
            peak_rss=int(usage.ru_maxrss) * 1024,
            peak_tree_rss=peak_tree[name],
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            stderr=stderr_paths[name].read_text(errors="replace")[-4000:],
        )
        for name, (code, seconds, usage) in finished.items()
    }
    return outcomes, wall, timed_out


def run_deployment(
    deployment: Deployment,
    *,
    timeout: float | None = None,
    sample_interval: float = 0.2,
    label: str = "",
) -> DeploymentRun:
    """Start the three ``mpcactors party`` processes, wait for all, collect what each measured."""
    directory = deployment.directory
    members = deployment.inputs.members
    for suffix in ("result.json", "report.json"):
        for role in members:
            (directory / f"{role}-{suffix}").unlink(missing_ok=True)
    commands = {
        role: [sys.executable, "-m", "mpcactors", "party", "--config", str(deployment.configs[role]),
               "--result", str(directory / f"{role}-result.json"),
               "--report", str(directory / f"{role}-report.json"), "--log-level", "warning"]
        for role in members
    }
    load_before = load_average()
    outcomes, wall, timed_out = run_processes(
        commands, cwd=directory, stderr_dir=directory, timeout=timeout, sample_interval=sample_interval, label=label
    )
    parties: dict[str, PartyRun] = {}
    for role in members:
        report_path = directory / f"{role}-report.json"
        result_path = directory / f"{role}-result.json"
        outcome = outcomes[role]
        parties[role] = PartyRun(
            role=role,
            exit_code=outcome.exit_code,
            report=json.loads(report_path.read_text()) if report_path.exists() else {},
            result=json.loads(result_path.read_text()) if result_path.exists() else None,
            peak_rss=outcome.peak_rss,
            peak_tree_rss=outcome.peak_tree_rss,
            cpu_seconds=outcome.cpu_seconds,
            stderr=outcome.stderr,
        )
    return DeploymentRun(deployment, parties, wall, load_before, load_average(), timed_out)


def steps_by_role(step_documents: Iterable[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """Group run-document step entries (``{"step", "party", "seconds", "bytes_sent", ...}``) by party."""
    grouped: dict[str, dict[int, dict[str, Any]]] = {}
    for entry in step_documents:
        grouped.setdefault(entry["party"], {})[int(entry["step"])] = entry
    return grouped


def step_table(by_role: dict[str, dict[int, dict[str, Any]]], steps: Iterable[int]) -> str:
    """Per step: each party's seconds and bytes sent."""
    members = sorted(by_role, key=lambda r: (r == "ttp", list(by_role).index(r)))
    rows = []
    for step in steps:
        cells: list[Any] = [f"{step} {STEP_NAMES[step]}"]
        cells += [fmt_seconds(by_role[r][step]["seconds"]) if step in by_role[r] else "-" for r in members]
        cells += [fmt_bytes(by_role[r][step]["bytes_sent"]) if step in by_role[r] else "-" for r in members]
        rows.append(cells)
    names = ["TTP" if r == "ttp" else r for r in members]
    headers = ["step", *(f"{n} s" for n in names), *(f"{n} sent" for n in names)]
    return markdown_table(headers, rows)
