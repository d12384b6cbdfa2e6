"""Shared fixtures: small synthetic tables and a fast test configuration.

Most tests use 1024-bit Paillier keys (``allow_test_key_sizes``) and a few hundred
rows so the suite stays fast on two cores; ``tests/test_cli.py`` runs the defaults
users get (3072-bit keys) end to end once.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mpcactors.config import RunConfig
from mpcactors.crypto.fixedpoint import Params


def tables_for(rows: int, overlap: float, seed: int = 0, **kwargs):
    from mpcactors.data import table_from_rows
    from mpcactors.synth import make_cohort

    cohort = make_cohort(rows, overlap, seed, **kwargs)
    params = Params()
    return (
        table_from_rows("<hospital>", cohort.hospital_header, cohort.hospital_rows, id_column="id",
                        columns=None, params=params, min_rows=2),
        table_from_rows("<insurer>", cohort.insurer_header, cohort.insurer_rows, id_column="id",
                        columns=None, params=params, min_rows=2),
    )


def test_config(hospital, insurer, **changes) -> RunConfig:
    config = RunConfig(
        hospital_columns=tuple(hospital.columns),
        insurer_columns=tuple(insurer.columns),
        key_bits=1024,
        allow_test_key_sizes=True,
        min_intersection=3,
        chunk_rows=64,
        deadlines={step: 120.0 for step in range(1, 10)},
    )
    return replace(config, **changes)


test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(scope="session")
def small_tables():
    return tables_for(120, 0.5, seed=7)
