"""Small synthetic tables and fast configurations for tests and attack scripts.

Not for production runs: :func:`fast_config` uses 1024-bit Paillier keys, which are
only acceptable because the data is synthetic and the point is speed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config import DEFAULT_DEADLINES, RunConfig
from ..synth import cohort_tables, make_cohort


def tables_for(rows: int, overlap: float, seed: int = 0, **kwargs: Any) -> tuple[Any, Any]:
    """Validated ``(hospital, insurer)`` tables of a synthetic cohort (see :func:`mpcactors.synth.make_cohort`)."""
    return cohort_tables(make_cohort(rows, overlap, seed, **kwargs), min_rows=2)


def fast_config(hospital: Any, insurer: Any, **changes: Any) -> RunConfig:
    """A :class:`RunConfig` for the two tables with 1024-bit keys and small chunks (tests only)."""
    config = RunConfig.for_parties(
        hospital.columns,
        insurer.columns,
        key_bits=1024,
        allow_test_key_sizes=True,
        min_intersection=3,
        chunk_rows=64,
        deadlines={step: 120.0 for step in DEFAULT_DEADLINES},
    )
    return replace(config, **changes)
