"""Options and helpers shared by ``simulate`` (:mod:`mpcactors.cli`) and ``analyze``
(:mod:`mpcactors.cli.analyze`): the data options, input loading and ``_fail``.

Every :class:`~mpcactors.errors.MpcactorsError` becomes one readable line on stderr and
its class's exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from ..config import RunConfig
from ..crypto import paillier
from ..crypto.fixedpoint import Params
from ..crypto.hashing import IdFold
from ..errors import ConfigError, MpcactorsError

__all__ = ["build_run", "simulation_options", "stderr"]

stderr = Console(stderr=True)


#: The modulus sizes the command line offers: the crypto layer's policy.
KEY_BITS = click.Choice([str(bits) for bits in sorted(paillier.SECURE_KEY_BITS)])

def _fail(exc: MpcactorsError) -> None:
    # Text, not markup: messages quote file and column names, which may contain "[...]"
    stderr.print(Text("error: ", style="bold red") + Text(str(exc)), highlight=False)
    sys.exit(exc.exit_code)


def _load_inputs(
    hospital: Path | None, insurer: Path | None, rows: int, overlap: float, seed: int, id_column: str, params: Params,
    min_rows: int, id_fold: str = "casefold",
) -> tuple[Any, Any]:
    from ..data import load_table

    if (hospital is None) != (insurer is None):
        raise ConfigError("give both --hospital and --insurer, or neither (for built-in synthetic data)")
    if hospital is not None and insurer is not None:
        return (
            load_table(hospital, id_column=id_column, params=params, min_rows=min_rows, id_fold=id_fold),
            load_table(insurer, id_column=id_column, params=params, min_rows=min_rows, id_fold=id_fold),
        )
    from ..synth import cohort_tables, make_cohort

    return cohort_tables(make_cohort(rows, overlap, seed), params=params, min_rows=min_rows)



def simulation_options(f: Any) -> Any:
    """The data options shared by ``simulate`` and ``analyze``."""
    options = [
        click.option("--hospital", type=click.Path(path_type=Path), help="Hospital CSV (default: built-in synthetic data)."),
        click.option("--insurer", type=click.Path(path_type=Path), help="Insurer CSV (default: built-in synthetic data)."),
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
        min_rows=opts["min_intersection"], id_fold=opts["id_fold"],
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
        id_fold=opts["id_fold"],
        alpha=opts["alpha"],
    )
    return hospital, insurer, config
