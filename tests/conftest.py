"""Shared fixtures. Most tests use 1024-bit Paillier keys and a few hundred rows
(:mod:`mpcactors.testing`) so the suite stays fast on two cores; ``tests/test_cli.py``
runs the defaults users get (3072-bit keys) end to end once."""

from __future__ import annotations

import pytest

from mpcactors.testing import fast_config, tables_for

# kept for tests written against the earlier helper names
test_config = fast_config
test_config.__test__ = False  # type: ignore[attr-defined]

__all__ = ["fast_config", "tables_for", "test_config"]


@pytest.fixture(scope="session")
def small_tables():
    return tables_for(120, 0.5, seed=7)
