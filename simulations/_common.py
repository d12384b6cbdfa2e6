"""What every simulation script starts with: its command line and the synthetic tables.

The scripts are run as ``python simulations/NAME.py`` (this folder is then first on
``sys.path``), so they import this module as ``_common``.
"""

from __future__ import annotations

import argparse
from typing import Any

from mpcactors.logs import configure_logging
from mpcactors.synth import cohort_tables_by_party, make_cohort


def _arguments(doc: str, rows: int, id_space: int | None, parties: int | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", type=int, default=rows)
    if id_space is not None:
        parser.add_argument("--id-space", type=int, default=id_space)
    if parties is not None:
        parser.add_argument("--parties", type=int, default=parties)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    configure_logging(level="error")
    return args


def synthetic_tables_by_party(
    doc: str, *, rows: int = 300, id_space: int | None = None, parties: int | None = None
) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse ``--rows``, ``--seed`` (and ``--id-space`` when ``id_space`` is given,
    ``--parties`` when ``parties`` is), quieten the logs, and build every data party's
    table, by name in roster order (50% of each table's rows are in every table).

    ``doc`` is the script's docstring (its first line is the ``--help`` description).
    """
    args = _arguments(doc, rows, id_space, parties)
    extra = {"id_space": args.id_space} if id_space is not None else {}
    cohort = make_cohort(args.rows, 0.5, args.seed, parties=args.parties if parties is not None else 2, **extra)
    return args, cohort_tables_by_party(cohort, min_rows=2)


def synthetic_tables(doc: str, *, rows: int = 300, id_space: int | None = None) -> tuple[argparse.Namespace, Any, Any]:
    """:func:`synthetic_tables_by_party` for the hospital and the insurer: ``(args, hospital, insurer)``."""
    args, tables = synthetic_tables_by_party(doc, rows=rows, id_space=id_space)
    hospital, insurer = tables.values()
    return args, hospital, insurer
