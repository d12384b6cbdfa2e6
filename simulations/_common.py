"""What every simulation script starts with: its command line and the synthetic tables.

The scripts are run as ``python simulations/NAME.py`` (this folder is then first on
``sys.path``), so they import this module as ``_common``.
"""

from __future__ import annotations

import argparse
from typing import Any

from mpcactors.logs import configure_logging
from mpcactors.testing import tables_for


def synthetic_tables(doc: str, *, rows: int = 300, id_space: int | None = None) -> tuple[argparse.Namespace, Any, Any]:
    """Parse ``--rows``, ``--seed`` (and ``--id-space`` when ``id_space`` is given), quieten
    the logs, and build the hospital's and the insurer's tables (50% overlap).

    Returns ``(args, hospital, insurer)``; ``doc`` is the script's docstring (its first
    line is the ``--help`` description).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", type=int, default=rows)
    if id_space is not None:
        parser.add_argument("--id-space", type=int, default=id_space)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    configure_logging(level="error")
    extra = {"id_space": args.id_space} if id_space is not None else {}
    hospital, insurer = tables_for(args.rows, 0.5, args.seed, **extra)
    return args, hospital, insurer
