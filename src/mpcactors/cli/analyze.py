"""``mpcactors analyze``: run the protocol with recording, attack it, write the anonymity report.

Registered on the main command group by :mod:`mpcactors.cli`. The heavy lifting is in :mod:`mpcactors.analysis`; this handler only
parses options, runs the simulations and writes the files.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from ..errors import ConfigError, MpcactorsError
from ._options import _fail, build_run, simulation_options

__all__ = ["analyze"]

#: analyze's default id space for built-in synthetic data: small enough that the
#: dictionary attack enumerates all of it in a few seconds.
DEFAULT_ID_SPACE = 200_000


@click.command(context_settings={"default_map": {"key_bits": "2048"}})
@simulation_options
@click.option("--out", default="analysis-report", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for report.md, report.html and report.json.")
@click.option("--id-space", default=DEFAULT_ID_SPACE, show_default=True, type=click.IntRange(1, 10**9),
              help="Synthetic data only: ids are drawn from range(N); the dictionary attack tries all of them "
                   "(up to 2,000,000; above that, every real id).")
@click.option("--controls/--no-controls", default=True, show_default=True,
              help="Also run the deliberately broken variants (steps 1-7 each) that the attacks must catch.")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The study plan (plan.toml) whose analyses the report measures: what each opens to whom, the "
                   "differencing attacks its describe analyses allow, each model's leave-one-out influence. "
                   "Default: the default plan.")
def analyze(out: Path, id_space: int, controls: bool, executor_policy: str, workers: int | None,
            plan_path: Path | None, **opts: Any) -> None:
    """Run the protocol with a transcript, attack every step, and write an anonymity report.

    For each step and party (every data party and the TTP: --parties 3 adds a
    CBS-like register outside the computation) the report says what the party holds
    and received, and answers the Article 29 Working Party's three questions (single
    out, link, infer) with the measured success of attacks on this run. Paillier keys
    default to 2048 bits here to keep the run quick. Simulation only: it needs every
    party in one process.
    """
    from ..actors.executor import Executor
    from ..analysis import attacks, report, variants
    from ..analysis.disclosures import plan_disclosures
    from ..analysis.views import record_run
    from ..logs import configure_logging
    from ..synth import cohort_tables_by_party, make_cohort

    configure_logging(json=True, level="error")
    console = Console(stderr=True)
    try:
        if executor_policy == "process":
            raise ConfigError("analyze needs --executor inline or thread (the broken variants patch this process only)")
        if executor_policy == "auto":  # never worker processes, whatever the size: see above
            executor_policy = "inline"
        tables, config = build_run(opts, plan_path)
        plan = config.study_plan
        synthetic = not opts.get("inputs") and opts["hospital"] is None
        if synthetic:  # the same cohort, drawn from the id space the dictionary attack enumerates
            cohort = make_cohort(opts["rows"], opts["overlap"], opts["seed"], id_space=id_space,
                                 parties=config.roster.data_parties)
            tables = cohort_tables_by_party(cohort, params=config.params, min_rows=opts["min_intersection"])
        known_space = id_space if synthetic else None
        executor = Executor(executor_policy, workers=workers)  # type: ignore[arg-type]
        sizes = ", ".join(f"{name} {len(table)}" for name, table in tables.items())
        console.print(f"running the protocol with recording (rows: {sizes}) ...")
        run = record_run(tables, config, id_space=known_space, executor=executor)
        console.print("attacking every step ...")
        results = attacks.run_all(run)
        found = attacks.disclosures(run)
        control_runs = []
        if controls:
            short = replace(config, lasso=False)
            first = config.roster.data_parties[0]
            for variant in (variants.keep_hash_key(), variants.forward_unmasked(), variants.short_masks(),
                            variants.no_row_shuffle()):
                console.print(f"control: {variant.description} ...")
                inputs = dict(tables)
                if variant.name == "no_row_shuffle":  # a file sorted by a column: the order then carries it
                    inputs[first] = variants.sorted_table(inputs[first], inputs[first].columns[0])
                broken = record_run(inputs, short, variant=variant, id_space=known_space, executor=executor)
                control_runs.append((broken, attacks.run_named(broken, variant.caught_by)))
        console.print("measuring what each analysis of the plan opens ...")
        measured = plan_disclosures(run, plan)
        document = report.build_report(run, results, found, controls=control_runs, plan=measured)
        paths = report.write_report(document, out)
    except MpcactorsError as exc:
        _fail(exc)
        return
    for line in document["summary"]:
        click.echo(f"- {line}")
    click.echo(f"wrote {paths['md']}, {paths['html']} and {paths['json']}")
    missed = [c for c in document["controls"] if not c["caught"]]
    if missed:
        console.print(
            "[bold red]the analysis failed its own controls:[/] "
            + ", ".join(f"{c['variant']} was not caught by {c['attack']}" for c in missed)
        )
        sys.exit(1)
