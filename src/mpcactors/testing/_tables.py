"""Small synthetic tables and fast configurations for tests and attack scripts.

Not for production runs: :func:`fast_config` uses 1024-bit Paillier keys, which are
only acceptable because the data is synthetic and the point is speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..config import DEFAULT_DEADLINES, RunConfig
from ..protocol.roster import DEFAULT_DATA_PARTIES
from ..synth import cohort_tables, cohort_tables_by_party, make_cohort


def tables_for(rows: int, overlap: float, seed: int = 0, **kwargs: Any) -> tuple[Any, Any]:
    """Validated ``(hospital, insurer)`` tables of a synthetic cohort (see :func:`mpcactors.synth.make_cohort`)."""
    return cohort_tables(make_cohort(rows, overlap, seed, **kwargs), min_rows=2)


def party_tables(rows: int, overlap: float, seed: int = 0, *, parties: Any = 3, **kwargs: Any) -> dict[str, Any]:
    """Validated tables of a synthetic cohort for ``parties`` data parties, by name (roster order)."""
    return cohort_tables_by_party(make_cohort(rows, overlap, seed, parties=parties, **kwargs), min_rows=2)


def fast_config(*tables: Any, **changes: Any) -> RunConfig:
    """A :class:`RunConfig` with 1024-bit keys and small chunks for the given tables (tests only).

    ``tables`` is ``hospital, insurer``, or one mapping of every data party's table by
    name, or one sequence of tables for the default roster.
    """
    only = tables[0] if len(tables) == 1 else tables
    by_name = dict(only) if isinstance(only, Mapping) else dict(zip(DEFAULT_DATA_PARTIES, only, strict=True))
    config = RunConfig(
        {name: table.columns for name, table in by_name.items()},
        key_bits=1024,
        allow_test_key_sizes=True,
        min_intersection=3,
        chunk_rows=64,
        deadlines={step: 120.0 for step in DEFAULT_DEADLINES},
    )
    return replace(config, **changes)
