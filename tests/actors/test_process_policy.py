"""The process executor: same result, and no worker that held a secret key outlives step 6."""

from __future__ import annotations

import os

import pytest

from mpcactors.actors.executor import Executor
from mpcactors.sim import GodView, simulate
from mpcactors.testing import fast_config, tables_for


class WorkerWatch(GodView):
    def __init__(self) -> None:
        super().__init__()
        self.checked: dict[str, frozenset[int]] = {}

    def key_destroyed(self, role, name, key):
        if name == "secret_key_workers":
            statistics = key.statistics()
            assert statistics.closed and statistics.jobs > 0
            for pid in key.worker_pids:
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)  # the process is gone, not merely idle
            self.checked[role] = key.worker_pids
            return
        if name == "paillier_secret":
            assert role in self.checked, "the key was destroyed while its workers' scope was still open"
        super().key_destroyed(role, name, key)


async def test_process_policy_gives_the_join_and_retires_secret_workers_before_deletion():
    hospital, insurer = tables_for(160, 0.5, seed=5)
    watch = WorkerWatch()
    simulation = await simulate(
        hospital, insurer, fast_config(hospital, insurer, lasso=False),
        executor=Executor("process", workers=2), observer=watch, verify=True,
    )
    assert simulation.verified is True
    assert set(watch.checked) == {"hospital", "insurer"}
    assert all(pids for pids in watch.checked.values())  # secret-key work really ran in workers
