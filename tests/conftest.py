"""Shared fixtures. Most tests use 1024-bit Paillier keys and a few hundred rows
(:mod:`mpcactors.testing`) so the suite stays fast on two cores; ``tests/test_cli.py``
runs the defaults users get (3072-bit keys) end to end once."""

from __future__ import annotations

import pytest

from mpcactors.testing import tables_for


@pytest.fixture(scope="session")
def small_tables():
    return tables_for(120, 0.5, seed=7)
