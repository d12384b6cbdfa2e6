"""Options and helpers shared by ``simulate`` (:mod:`mpcactors.cli`) and ``analyze``
(:mod:`mpcactors.cli.analyze`): the data options, input loading and ``_fail``; and the
study plan's loading and summary (``simulate --plan``, ``deploy-example --plan``).

Every :class:`~mpcactors.errors.MpcactorsError` becomes one readable line on stderr and
its class's exit code.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.text import Text

from ..crypto import paillier
from ..crypto.fixedpoint import Params
from ..crypto.hashing import IdFold
from ..protocol.roster import DEFAULT_DATA_PARTIES, Roster, parse_parties
from ..errors import ConfigError, MpcactorsError

if TYPE_CHECKING:  # the run's modules (numpy, the plan) load when a command runs, not for --help
    from ..config import RunConfig
    from ..plan import Plan

__all__ = ["build_run", "print_plan", "simulation_options", "stderr"]

stderr = Console(stderr=True)


#: The modulus sizes the command line offers: the crypto layer's policy.
KEY_BITS = click.Choice([str(bits) for bits in sorted(paillier.SECURE_KEY_BITS)])

def _fail(exc: MpcactorsError) -> None:
    # Text, not markup: messages quote file and column names, which may contain "[...]";
    # soft wrap: a long path stays one string the user can copy (the terminal wraps it)
    stderr.print(Text("error: ", style="bold red") + Text(str(exc)), highlight=False, soft_wrap=True)
    sys.exit(exc.exit_code)


def _inputs(opts: dict[str, Any]) -> dict[str, Path]:
    """The CSV files by party name: ``--input NAME=FILE`` (repeatable), or the two-party
    shorthands ``--hospital`` and ``--insurer``; empty for built-in synthetic data."""
    named: dict[str, Path] = {}
    for item in opts.get("inputs") or ():
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise ConfigError(f"--input {item!r}: give NAME=FILE, e.g. --input cbs=cbs.csv")
        if name in named:
            raise ConfigError(f"--input names {name!r} twice")
        named[name] = Path(file)
    shorthands = {name: opts[name] for name in DEFAULT_DATA_PARTIES if opts.get(name) is not None}
    if shorthands and len(shorthands) != len(DEFAULT_DATA_PARTIES) and not named:
        raise ConfigError("give both --hospital and --insurer, or neither (for built-in synthetic data)")
    for name in shorthands.keys() & named.keys():
        raise ConfigError(f"--{name} and --input {name}=... name the same party")
    named = {**shorthands, **named}  # the shorthands' parties first, in their default order
    if len(named) == 1:
        raise ConfigError("a study joins at least two tables: give --input NAME=FILE at least twice")
    return named


def _load_inputs(opts: dict[str, Any], params: Params) -> dict[str, Any]:
    """Every data party's validated table, by name in roster order."""
    from ..data import load_table

    files = _inputs(opts)
    min_rows, id_fold = opts["min_intersection"], opts["id_fold"]
    if files:
        if opts.get("parties") is not None and parse_parties(opts["parties"]) != tuple(files):
            raise ConfigError("--parties names the built-in synthetic data's parties; with --input the names come from the inputs")
        Roster.of(tuple(files))  # the names, checked
        return {
            name: load_table(file, id_column=opts["id_column"], params=params, min_rows=min_rows, id_fold=id_fold)
            for name, file in files.items()
        }
    from ..synth import cohort_tables_by_party, make_cohort

    parties = parse_parties(opts["parties"]) if opts.get("parties") is not None else DEFAULT_DATA_PARTIES
    cohort = make_cohort(opts["rows"], opts["overlap"], opts["seed"], parties=parties)
    return cohort_tables_by_party(cohort, params=params, min_rows=min_rows)


def simulation_options(f: Any) -> Any:
    """The data options shared by ``simulate`` and ``analyze``."""
    options = [
        click.option("--input", "inputs", multiple=True, metavar="NAME=FILE",
                     help="A data party's CSV, by the party's name (repeat for each party; at least two)."),
        click.option("--hospital", type=click.Path(path_type=Path), help="Shorthand for --input hospital=FILE."),
        click.option("--insurer", type=click.Path(path_type=Path), help="Shorthand for --input insurer=FILE."),
        click.option("--parties", default=None, metavar="N|NAMES",
                     help="Built-in synthetic data for N data parties (hospital, insurer, cbs, party4, ...) "
                          "or for the named ones [default: 2]."),
        click.option("--compute", default=None, metavar="NAME,NAME",
                     help="The two data parties that compute with the TTP [default: the first two]."),
        click.option("--rows", default=300, show_default=True, type=click.IntRange(10), help="Synthetic rows per party."),
        click.option("--overlap", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="Synthetic overlap fraction."),
        click.option("--seed", default=0, show_default=True, type=int, help="Seed of the synthetic data (protocol randomness is always fresh)."),
        click.option("--id-column", default="id", show_default=True, help="Name of the id column in both CSVs."),
        click.option("--id-fold", default="casefold", show_default=True, type=click.Choice([f.value for f in IdFold]),
                     help="Case folding of ids before matching: casefold (Straße = STRASSE) or none (case-sensitive pseudonyms)."),
        click.option("--key-bits", default=3072, show_default=True, type=KEY_BITS, help="Paillier modulus size."),
        click.option("--target", default="hospital_days", show_default=True, help="Target column (in either party's CSV)."),
        click.option("--alpha", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Lasso penalty (scikit-learn's alpha)."),
        click.option("--min-intersection", default=10, show_default=True, type=click.IntRange(1)),
        click.option("--chunk-rows", default=4096, show_default=True, type=click.IntRange(1, 65536)),
        click.option("--executor", "executor_policy", default="auto", show_default=True,
                     type=click.Choice(["auto", "inline", "thread", "process"]),
                     help="Where Paillier work runs; auto: worker processes on a multi-core machine once the work pays for them "
                          "(simulate: ~300 rows at 2048 bits in all; a daemon: 2,048 rows), else inline."),
        click.option("--workers", type=click.IntRange(1), default=None,
                     help="Worker processes (or threads) per party [default: one per core]."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def build_run(opts: dict[str, Any], plan_path: Path | None = None) -> tuple[dict[str, Any], RunConfig]:
    """The data parties' tables (by name, in roster order) and the run's configuration,
    with the plan of ``plan_path`` validated against them (else the default plan)."""
    from ..config import RunConfig
    from ..plan import load_plan

    params = Params()
    tables = _load_inputs(opts, params)
    if plan_path is None and not any(opts["target"] in table.columns for table in tables.values()):
        which = "either CSV" if len(tables) == 2 else "any CSV"
        owned = ", ".join(f"{name}: {list(table.columns)}" for name, table in tables.items())
        raise ConfigError(f"--target {opts['target']!r} is not a column of {which} ({owned})")
    compute = None if opts.get("compute") is None else tuple(n.strip() for n in opts["compute"].split(","))
    config = RunConfig(
        {name: table.columns for name, table in tables.items()},
        compute=compute,
        target=opts["target"],
        key_bits=int(opts["key_bits"]),
        params=params,
        min_intersection=opts["min_intersection"],
        chunk_rows=opts["chunk_rows"],
        id_fold=opts["id_fold"],
        alpha=opts["alpha"],
        plan=None if plan_path is None else load_plan(plan_path, roster=Roster.of(tuple(tables), compute),
                                                      columns={name: table.columns for name, table in tables.items()}),
    )
    return tables, config


def print_plan(plan: Plan, *, as_json: bool = False, note: str = "") -> None:
    """The plan's summary (or, with ``as_json``, its canonical form, digest and manifest) on
    stdout; its differencing warnings on stderr; then ``note``."""
    if as_json:
        manifest = [asdict(opening) for opening in plan.manifest()]
        document = {"plan": plan.document(), "digest": plan.digest.hex(), "manifest": manifest, "warnings": list(plan.warnings)}
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo("\n".join(plan.summary()))
    for warning in plan.warnings:
        stderr.print(Text("warning: ", style="bold yellow") + Text(warning), highlight=False)
    if note:
        stderr.print(Text(note), highlight=False)
