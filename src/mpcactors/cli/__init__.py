"""The ``mpcactors`` command line.

Handlers stay thin: parse options, load and validate input (before anything is
sent), configure logging, ``trio.run`` the async work, render the outcome. Every
:class:`~mpcactors.errors.MpcactorsError` becomes one readable line on stderr and its
class's exit code; tracebacks are for bugs only.

``synth`` and ``simulate`` live here, ``analyze`` in :mod:`.analyze`, the deployed-party
commands in :mod:`.daemon`; the options ``simulate`` and ``analyze`` share in :mod:`._options`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.table import Table

from ..errors import ConfigError, MpcactorsError
from . import analyze, audit, daemon
from ._options import _fail, build_run, print_plan, simulation_options, stderr

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mpcactors")
def main() -> None:
    """Train a lasso model on a hospital's and an insurer's joined data without sharing it."""
    _workers_skip_the_console_script()


def _workers_skip_the_console_script() -> None:
    """Give the ``mpcactors`` console script the module spec ``python -m mpcactors`` has.

    A worker process started by spawn or forkserver re-runs the parent's main module
    unless it is a package's ``__main__`` (multiprocessing's rule); the console script
    has no spec, so every worker would import the whole command line (about 0.3 s of
    CPU each) for jobs that live in the crypto modules. Another program's main
    module (a script, pytest) is left alone: its workers may need it.
    """
    module = sys.modules.get("__main__")
    if module is not None and getattr(module, "__spec__", None) is None and getattr(module, "main", None) is main:
        from importlib.machinery import ModuleSpec

        module.__spec__ = ModuleSpec("mpcactors.__main__", None)


# ---- synth ---------------------------------------------------------------------------


@main.command()
@click.option("--rows", default=1000, show_default=True, type=click.IntRange(1), help="Rows per party.")
@click.option("--overlap", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="Fraction of each table's rows whose ids are in every table.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the synthetic data.")
@click.option("--hospital-attributes", default=5, show_default=True, type=click.IntRange(1, 64),
              help="The first N of age, ejection_fraction, nt_probnp, creatinine, systolic_bp, then lab_1, ...")
@click.option("--insurer-attributes", default=5, show_default=True, type=click.IntRange(2, 64),
              help="The first N-1 of gp_visits, medication_cost, prior_admissions, chronic_conditions, then claims_1, ...; "
                   "and the target hospital_days.")
@click.option("--intervention/--no-intervention", default=True, show_default=True,
              help="Add the e-coaching study's columns: e_coaching and readmitted_30d (first table), specialist_visits (second).")
@click.option("--parties", default="2", show_default=True, help="Data parties: a count (hospital, insurer, cbs, party4, ...) or comma-separated names; one CSV each.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory for the CSVs (hospital.csv, insurer.csv, ...).")
def synth(rows: int, overlap: float, seed: int, hospital_attributes: int, insurer_attributes: int, intervention: bool,
          parties: str, out: Path) -> None:
    """Write a synthetic heart-failure cohort: one CSV per data party in OUT (default hospital.csv and insurer.csv)."""
    from ..protocol.roster import parse_parties
    from ..synth import make_cohort, write_cohort_by_party

    try:
        names = parse_parties(parties)
    except ConfigError as exc:
        _fail(exc)
        return
    cohort = make_cohort(rows, overlap, seed, hospital_attributes=hospital_attributes, insurer_attributes=insurer_attributes,
                         intervention=intervention, parties=names)
    *first, last = map(str, write_cohort_by_party(cohort, out).values())
    click.echo(f"wrote {', '.join(first)} and {last} ({rows} rows each, {len(cohort.intersection_ids)} ids in every table)")


# ---- simulate ------------------------------------------------------------------------


class _StepProgress:
    """Progress bars per party for the long steps, on stderr."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[tuple[str, int, str], Any] = {}

    def __call__(self, role: str, step: int, done: int, total: int, unit: str) -> None:
        key = (role, step, unit)
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(f"step {step} {role}: {unit}", total=total)
        self.progress.update(self.tasks[key], completed=done)


@main.command()
@simulation_options
@click.option("--verify", is_flag=True, help="God view (simulation only): check the shared table and model against plaintext.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
@click.option("--audit", "audit_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Append each party's signed audit record to DIR/<party>.jsonl (keys in DIR/keys).")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A study plan (plan.toml): run its analyses [default: a cohort description and the lasso of --target, to every data party].")
@click.option("--check-plan", is_flag=True, help="With --plan: validate the plan against these inputs, print what it opens to whom, and stop.")
def simulate(
    verify: bool, as_json: bool, audit_dir: Path | None, plan_path: Path | None, check_plan: bool,
    executor_policy: str, workers: int | None, **opts: Any,
) -> None:
    """Run every party locally on synthetic data (or on CSVs: --input NAME=FILE, --hospital/--insurer).

    Step 8 runs the study plan's analyses (--plan FILE; without it, a cohort description
    and the lasso of --target). With --check-plan, validate the plan against the inputs'
    roster and columns, print its digest and what each analysis opens to whom, and stop."""
    import trio

    from ..actors.executor import Executor
    from ..logs import configure_logging
    from ..sim import simulate as run_simulation

    if audit_dir is not None:
        from ..audit import simulate_audited

        run_simulation = partial(simulate_audited, directory=audit_dir)  # type: ignore[assignment]
    configure_logging(json=True, level="error")
    try:
        tables, config = build_run(opts, plan_path)
        if verify:  # the god view's oracles: an extra
            missing = [name for module, name in (("sklearn", "scikit-learn"), ("statsmodels", "statsmodels"))
                       if importlib.util.find_spec(module) is None]
            if missing:
                raise ConfigError(f"--verify needs {' and '.join(missing)}: pip install 'mpcactors[verify]'")
        if check_plan:
            print_plan(config.study_plan, as_json=as_json, note="the plan is valid for these inputs")
            return
        for warning in config.study_plan.warnings:
            stderr.print(Text("warning: ", style="bold yellow") + Text(warning), highlight=False)
        executor = Executor(executor_policy, workers=workers)  # type: ignore[arg-type]
        if as_json or not stderr.is_terminal:
            progress_cb = None
            simulation = trio.run(partial(run_simulation, tables, config, executor=executor, verify=verify))
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=stderr, transient=True) as progress:
                progress_cb = _StepProgress(progress)
                simulation = trio.run(partial(run_simulation, tables, config, executor=executor,
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
    rows, dropped = doc["rows"], doc["dropped_missing"]
    console.print(
        f"[bold]intersection:[/] {doc['intersection_size']} rows "
        f"({', '.join(f'{escape(p)} {n} rows' for p, n in rows.items())}; "
        f"dropped for missing values: {', '.join(f'{escape(p)} {n}' for p, n in dropped.items())}) "
        f"in {doc['seconds']:.1f} s"
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
    checks = doc.get("verification", {}).get("analyses", {})
    recipients = doc["plan"]["recipients"]
    console.print(f"[bold]plan:[/] {escape(doc['plan']['title'])} (digest {doc['plan']['digest'][:16]}...)")
    for name, output in doc["outputs"].items():
        to = f"to {', '.join(recipients[name])}"
        if output["kind"] == "describe":
            render_description(name, to, output, checks.get(name, {}).get("numpy"), console)
        elif output["kind"] in ("linear", "logistic"):
            render_regression(name, to, output, checks.get(name, {}).get("statsmodels"), console)
        else:
            render_lasso(name, to, output, checks.get(name, {}).get("sklearn"), console)
    for name in recipients:
        if name not in doc["outputs"]:
            console.print(f"[bold]{escape(name)}[/]: not shown (to {', '.join(recipients[name])}, none of them simulated here)")
    if "verified" in doc:
        v = doc["verification"]
        verdict = "[green]yes[/]" if doc["verified"] else "[red]NO[/]"
        console.print(
            f"[bold]god view[/] (simulation only): shared table equals the plaintext join: "
            f"{'yes' if v['table_matches'] else 'NO'} ({v['shared_rows']} rows)"
        )
        for name, check in v.get("analyses", {}).items():
            if "statsmodels" in check:
                console.print(
                    f"{escape(name)}: largest relative difference from statsmodels (estimates and standard errors): "
                    f"{check['max_relative_difference']:.3g} (tolerance {check['tolerance']:g})"
                )
            elif "sklearn" in check:
                console.print(
                    f"{escape(name)}: largest difference from scikit-learn: {check['max_abs_difference']:.3g} "
                    f"({check['max_relative_difference']:.3g} of the largest coefficient; tolerance {check['tolerance']:g})"
                )
            else:
                console.print(
                    f"{escape(name)}: largest relative difference from numpy: {check['max_relative_difference']:.3g} "
                    f"(tolerance {check['tolerance']:g}); counts exact and suppressed as the rules say: "
                    f"{'yes' if check['counts_exact'] else 'NO'}"
                )
        console.print(f"verified: {verdict}")


def render_description(name: str, to: str, output: dict[str, Any], numpy: dict[str, Any] | None, console: Console) -> None:
    """A describe output: the numeric columns, the correlations, the level counts (numpy beside, with --verify)."""
    table = Table(title=f"{escape(name)}: the cohort ({output['n']} persons), {escape(to)}")
    for col in ("column", "count", "mean", "sd"):
        table.add_column(col, justify="left" if col == "column" else "right")
    if numpy:
        table.add_column("numpy mean (god view)", justify="right")
        table.add_column("numpy sd", justify="right")
    for column, v in output["columns"].items():
        row = [escape(column), str(v["count"]), f"{v['mean']:.6g}", f"{v['sd']:.6g}"]
        if numpy:
            row += [f"{numpy['columns'][column]['mean']:.6g}", f"{numpy['columns'][column]['sd']:.6g}"]
        table.add_row(*row)
    if output["columns"]:
        console.print(table)
    names = output["correlation"]["columns"]
    if len(names) > 1:
        corr = Table(title=f"{escape(name)}: Pearson correlations")
        corr.add_column("")
        for column in names:
            corr.add_column(escape(column), justify="right")
        for column, row in zip(names, output["correlation"]["matrix"]):
            corr.add_row(escape(column), *("-" if v is None else f"{v:.3f}" for v in row))
        console.print(corr)
    for column, levels in output["frequencies"].items():
        counts = Table(title=f"{escape(name)}: {escape(column)} (counts below min_cell suppressed)")
        counts.add_column("level")
        counts.add_column("count", justify="right")
        if numpy:
            counts.add_column("numpy (god view)", justify="right")
        for level, count in levels.items():
            row = [escape(level), "suppressed" if count is None else str(count)]
            if numpy:
                row.append(str(numpy["frequencies"][column][level]))
            counts.add_row(*row)
        console.print(counts)


def render_regression(name: str, to: str, output: dict[str, Any], oracle: dict[str, Any] | None, console: Console) -> None:
    """A model with standard errors, as statsmodels prints it (the oracle's beside, with --verify)."""
    stat = "z" if output["kind"] == "logistic" else "t"
    title = f"{escape(name)}: {output['kind']} regression of {escape(output['target'])} (n = {output['n']}), {escape(to)}"
    table = Table(title=title)
    for col in ("", "owner", "coef", "std err", stat, "P>|" + stat + "|", "[0.025", "0.975]"):
        table.add_column(col, justify="left" if col in ("", "owner") else "right")
    source = "scikit-learn" if output.get("ridge") or output.get("l2") else "statsmodels"  # penalised: sklearn
    if oracle:
        table.add_column(f"{source} coef (god view)", justify="right")
        table.add_column(f"{source} std err", justify="right")
    rows = [("const", "-", output["intercept"], oracle["intercept"] if oracle else None)]
    rows += [(c, output["owners"][c], v, oracle["coefficients"][c] if oracle else None) for c, v in output["coefficients"].items()]
    for column, owner, v, ref in rows:
        row = [escape(column), owner, f"{v['estimate']:.6g}"]
        row += [f"{v['se']:.6g}", f"{v[stat]:.3f}", f"{v['p']:.4f}", f"{v['ci_low']:.6g}", f"{v['ci_high']:.6g}"] if "se" in v else ["-"] * 5
        if ref is not None:
            row += [f"{ref['estimate']:.6g}", f"{ref['se']:.6g}" if "se" in ref else "-"]
        table.add_row(*row)
    console.print(table)
    if output["kind"] == "linear":
        line = (f"R^2 = {output['r2']:.6g}, adjusted R^2 = {output['r2_adj']:.6g}, residual variance = "
                f"{output['sigma2']:.6g}, residual df = {output['df_resid']}")
        if output["ridge"]:
            line += f"; ridge {output['ridge']:g}: no standard errors (a biased estimator; docs/linear.md)"
        if oracle and "r2" in oracle:
            line += f"; statsmodels R^2 = {oracle['r2']:.6g}"
        console.print(line)
    if "loglik" in output:
        status = "converged" if output["converged"] else "not converged (iteration cap)"
        line = f"log-likelihood = {output['loglik']:.6g}, iterations = {output['iterations']} ({status})"
        if output.get("l2"):
            line += f"; l2 penalty {output['l2']:g}: no standard errors (a biased estimator; docs/logistic.md)"
        if oracle:
            line += f"; {source} log-likelihood = {oracle['loglik']:.6g}"
        console.print(line)


def render_lasso(name: str, to: str, output: dict[str, Any], sk: dict[str, Any] | None, console: Console) -> None:
    """A lasso output: one row per coefficient (scikit-learn's beside, with --verify)."""
    model = Table(title=f"{escape(name)}: lasso model of {escape(output['target'])} (alpha={output['alpha']}), {escape(to)}")
    model.add_column("column")
    model.add_column("owner")
    model.add_column("coefficient", justify="right")
    if sk:
        model.add_column("scikit-learn (god view)", justify="right")
    for column, value in output["coefficients"].items():
        row = [escape(column), output["owners"][column], f"{value:.6g}"]
        if sk:
            row.append(f"{sk['coefficients'][column]:.6g}")
        model.add_row(*row)
    row = ["(intercept)", "-", f"{output['intercept']:.6g}"]
    if sk:
        row.append(f"{sk['intercept']:.6g}")
    model.add_row(*row)
    console.print(model)
    if "cv_error" in output:
        errors = ", ".join(f"{a}: {e:.6g}" for a, e in output["cv_error"].items())
        console.print(f"{output['folds']}-fold cross-validation, mean validation error per alpha: {errors}; "
                      f"chosen alpha = {output['alpha']}")
    status = "converged" if output["converged"] else "not converged (iteration cap)"
    line = f"R^2 = {output['r2']:.4f}, iterations = {output['iterations']} ({status})"
    if sk:
        line += f"; scikit-learn R^2 = {sk['r2']:.4f}"
    console.print(line)


for _command in (analyze.analyze, audit.audit, daemon.certs, daemon.check, daemon.deploy_example, daemon.party):
    main.add_command(_command)
