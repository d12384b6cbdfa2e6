"""Public helpers for tests and attack scripts, like :mod:`trio.testing`.

* small synthetic tables and fast configurations (:func:`tables_for`, :func:`party_tables`, :func:`fast_config`);
* the fuzzers' seed corpus (:func:`example_messages`, :func:`accept_or_refuse`);
* fault injection (:class:`Fault`, :class:`Faults`, :func:`run_with_faults`);
* a god view that proves deletion after a failed run (:class:`KeyWatcher`);
* every member of a deployment as a daemon in one process (:func:`run_deployment`).

Not for production runs: :func:`fast_config` uses 1024-bit Paillier keys, which are
only acceptable because the data is synthetic and the point is speed.
"""

from __future__ import annotations

from ._deploy import run_deployment
from ._faults import (
    FAULT_ACTIONS,
    HOSTILE_ACTIONS,
    Fault,
    FaultRun,
    Faults,
    FaultyChannel,
    InjectedCrash,
    run_with_faults,
)
from ._fuzz import accept_or_refuse, example_messages
from ._keys import KeyWatcher
from ._tables import fast_config, party_tables, tables_for

__all__ = [
    "FAULT_ACTIONS",
    "HOSTILE_ACTIONS",
    "Fault",
    "FaultRun",
    "Faults",
    "FaultyChannel",
    "InjectedCrash",
    "KeyWatcher",
    "accept_or_refuse",
    "example_messages",
    "fast_config",
    "party_tables",
    "run_deployment",
    "run_with_faults",
    "tables_for",
]
