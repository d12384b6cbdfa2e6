"""The ``mpcactors`` command line.

Handlers stay thin: parse options, load and validate input (before anything is
sent), configure logging, ``trio.run`` the async work, render the outcome. Every
:class:`~mpcactors.errors.MpcactorsError` becomes one readable line on stderr and its
class's exit code; tracebacks are for bugs only.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click
import trio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .config import RunConfig
from .crypto.fixedpoint import Params
from .errors import ConfigError, MpcactorsError
from .logs import configure_logging

__all__ = ["main"]

stderr = Console(stderr=True)


def _fail(exc: MpcactorsError) -> None:
    # Text, not markup: messages quote file and column names, which may contain "[...]"
    stderr.print(Text("error: ", style="bold red") + Text(str(exc)), highlight=False)
    sys.exit(exc.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mpcactors")
def main() -> None:
    """Train a lasso model on a hospital's and an insurer's joined data without sharing it."""


# ---- synth ---------------------------------------------------------------------------


@main.command()
@click.option("--rows", default=1000, show_default=True, type=click.IntRange(1), help="Rows per party.")
@click.option("--overlap", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="Fraction of rows in both tables.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the synthetic data.")
@click.option("--hospital-attributes", default=5, show_default=True, type=click.IntRange(1, 64))
@click.option("--insurer-attributes", default=5, show_default=True, type=click.IntRange(2, 64), help="Including the target hospital_days.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory for hospital.csv and insurer.csv.")
def synth(rows: int, overlap: float, seed: int, hospital_attributes: int, insurer_attributes: int, out: Path) -> None:
    """Write a synthetic heart-failure cohort: OUT/hospital.csv and OUT/insurer.csv."""
    from .synth import make_cohort, write_cohort

    cohort = make_cohort(rows, overlap, seed, hospital_attributes=hospital_attributes, insurer_attributes=insurer_attributes)
    hospital, insurer = write_cohort(cohort, out)
    click.echo(f"wrote {hospital} and {insurer} ({rows} rows each, {len(cohort.intersection_ids)} shared ids)")


# ---- simulate ------------------------------------------------------------------------


def _load_inputs(
    hospital: Path | None, insurer: Path | None, rows: int, overlap: float, seed: int, id_column: str, params: Params,
    min_rows: int,
) -> tuple[Any, Any]:
    from .data import load_table

    if (hospital is None) != (insurer is None):
        raise ConfigError("give both --hospital and --insurer, or neither (for built-in synthetic data)")
    if hospital is not None and insurer is not None:
        return (
            load_table(hospital, id_column=id_column, params=params, min_rows=min_rows),
            load_table(insurer, id_column=id_column, params=params, min_rows=min_rows),
        )
    from .synth import cohort_tables, make_cohort

    return cohort_tables(make_cohort(rows, overlap, seed), params=params, min_rows=min_rows)


class _StepProgress:
    """Progress bars per party for the long steps, on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[tuple[str, int, str], Any] = {}

    def __call__(self, role: str, step: int, done: int, total: int, unit: str) -> None:
        key = (role, step, unit)
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(f"step {step} {role}: {unit}", total=total)
        self.progress.update(self.tasks[key], completed=done)


def simulation_options(f: Any) -> Any:
    """The data options shared by ``simulate`` and ``analyze``."""
    options = [
        click.option("--hospital", type=click.Path(path_type=Path), help="Hospital CSV (default: built-in synthetic data)."),
        click.option("--insurer", type=click.Path(path_type=Path), help="Insurer CSV (default: built-in synthetic data)."),
        click.option("--rows", default=300, show_default=True, type=click.IntRange(10), help="Synthetic rows per party."),
        click.option("--overlap", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="Synthetic overlap fraction."),
        click.option("--seed", default=0, show_default=True, type=int, help="Seed of the synthetic data (protocol randomness is always fresh)."),
        click.option("--id-column", default="id", show_default=True, help="Name of the id column in both CSVs."),
        click.option("--key-bits", default=3072, show_default=True, type=click.Choice(["2048", "3072"]), help="Paillier modulus size."),
        click.option("--target", default="hospital_days", show_default=True, help="Target column (in either party's CSV)."),
        click.option("--alpha", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Lasso penalty (scikit-learn's alpha)."),
        click.option("--min-intersection", default=10, show_default=True, type=click.IntRange(1)),
        click.option("--chunk-rows", default=4096, show_default=True, type=click.IntRange(1, 65536)),
        click.option("--executor", "executor_policy", default="auto", show_default=True,
                     type=click.Choice(["auto", "inline", "thread", "process"]),
                     help="Where Paillier work runs; auto: worker processes from 2,048 rows on a multi-core machine, else inline."),
        click.option("--workers", type=click.IntRange(1), default=None,
                     help="Worker processes (or threads) per party [default: one per core]."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def build_run(opts: dict[str, Any]) -> tuple[Any, Any, RunConfig]:
    params = Params()
    hospital, insurer = _load_inputs(
        opts["hospital"], opts["insurer"], opts["rows"], opts["overlap"], opts["seed"], opts["id_column"], params,
        min_rows=opts["min_intersection"],
    )
    all_columns = set(hospital.columns) | set(insurer.columns)
    if opts["target"] not in all_columns:
        raise ConfigError(
            f"--target {opts['target']!r} is not a column of either CSV "
            f"(hospital: {list(hospital.columns)}, insurer: {list(insurer.columns)})"
        )
    config = RunConfig.for_parties(
        hospital.columns,
        insurer.columns,
        target=opts["target"],
        key_bits=int(opts["key_bits"]),
        params=params,
        min_intersection=opts["min_intersection"],
        chunk_rows=opts["chunk_rows"],
        alpha=opts["alpha"],
    )
    return hospital, insurer, config


@main.command()
@simulation_options
@click.option("--verify", is_flag=True, help="God view (simulation only): check the shared table and model against plaintext.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
def simulate(verify: bool, as_json: bool, executor_policy: str, workers: int | None, **opts: Any) -> None:
    """Run all three parties locally on synthetic data (or --hospital/--insurer CSVs)."""
    from .actors.executor import Executor
    from .sim import simulate as run_simulation

    configure_logging(json=True, level="error")
    try:
        hospital, insurer, config = build_run(opts)
        executor = Executor(executor_policy, workers=workers)  # type: ignore[arg-type]
        if as_json or not stderr.is_terminal:
            progress_cb = None
            simulation = trio.run(partial(run_simulation, (hospital, insurer), config, executor=executor, verify=verify))
        else:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=stderr, transient=True) as progress:
                progress_cb = _StepProgress(progress)
                simulation = trio.run(partial(run_simulation, (hospital, insurer), config, executor=executor,
                                              verify=verify, progress=progress_cb))
    except MpcactorsError as exc:
        _fail(exc)
        return
    document = simulation.document()
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)  # piped output: do not squeeze the tables to 80 columns
        render_simulation(document, console)
    if verify and not simulation.verified:
        stderr.print("[bold red]verification failed:[/] the secure result differs from the plaintext result")
        sys.exit(1)


def render_simulation(doc: dict[str, Any], console: Console) -> None:
    rows = doc["rows"]
    console.print(
        f"[bold]intersection:[/] {doc['intersection_size']} rows "
        f"(hospital {rows['hospital']} rows, insurer {rows['insurer']} rows; "
        f"dropped for missing values: hospital {doc['dropped_missing']['hospital']}, "
        f"insurer {doc['dropped_missing']['insurer']}) in {doc['seconds']:.1f} s"
    )
    steps = Table(title="Steps (per party)", show_lines=False)
    for col in ("step", "party", "seconds", "bytes sent", "messages sent", "deleted"):
        steps.add_column(col, justify="right" if col in ("seconds", "bytes sent", "messages sent") else "left")
    for entry in sorted(doc["steps"], key=lambda e: (e["step"], e["party"])):
        steps.add_row(
            f"{entry['step']} {entry['name']}", entry["party"], f"{entry['seconds']:.2f}",
            f"{entry['bytes_sent']:,}", str(entry["messages_sent"]), ", ".join(entry["deleted"]) or "-",
        )
    console.print(steps)
    result = doc.get("result")
    if result is not None:
        sk = doc.get("verification", {}).get("lasso", {}).get("sklearn")
        model = Table(title=f"Lasso model of {escape(doc['parameters']['target'])} (alpha={doc['parameters']['alpha']})")
        model.add_column("column")
        model.add_column("owner")
        model.add_column("coefficient", justify="right")
        if sk:
            model.add_column("scikit-learn (god view)", justify="right")
        for name, value in result["coefficients"].items():
            row = [escape(name), result["owners"][name], f"{value:.6g}"]
            if sk:
                row.append(f"{sk['coefficients'][name]:.6g}")
            model.add_row(*row)
        row = ["(intercept)", "-", f"{result['intercept']:.6g}"]
        if sk:
            row.append(f"{sk['intercept']:.6g}")
        model.add_row(*row)
        console.print(model)
        status = "converged" if result["converged"] else "not converged (iteration cap)"
        line = f"R^2 = {result['r2']:.4f}, iterations = {result['iterations']} ({status})"
        if sk:
            line += f"; scikit-learn R^2 = {sk['r2']:.4f}"
        console.print(line)
    if "verified" in doc:
        v = doc["verification"]
        verdict = "[green]yes[/]" if doc["verified"] else "[red]NO[/]"
        console.print(
            f"[bold]god view[/] (simulation only): shared table equals the plaintext join: "
            f"{'yes' if v['table_matches'] else 'NO'} ({v['shared_rows']} rows)"
        )
        if "lasso" in v:
            console.print(
                f"largest difference from scikit-learn: {v['lasso']['max_abs_difference']:.3g} "
                f"({v['lasso']['max_relative_difference']:.3g} of the largest coefficient; tolerance "
                f"{v['lasso']['tolerance']:g})"
            )
        console.print(f"verified: {verdict}")


def _register_commands() -> None:
    """Commands that live in their own modules (daemon, analysis), each listed in its ``__all__``."""
    from . import _cli_analysis, _cli_daemon

    for module in (_cli_daemon, _cli_analysis):
        for name in module.__all__:
            main.add_command(getattr(module, name))


_register_commands()
