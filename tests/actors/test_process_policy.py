"""The process executor: same result, and no worker that held a secret key outlives step 6."""

from __future__ import annotations

import os

import pytest

from mpcactors.actors import executor as executor_module
from mpcactors.actors.executor import AUTO_PROCESS_MIN_ROWS, AUTO_SHARED_MIN_ROWS, Executor
from mpcactors.sim import GodView, simulate
from mpcactors.testing import fast_config, tables_for


class WorkerWatch(GodView):
    def __init__(self, *, workers_expected: bool = True) -> None:
        super().__init__()
        self.workers_expected = workers_expected
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
        if name == "paillier_secret" and self.workers_expected:
            assert role in self.checked, "the key was destroyed while its workers' scope was still open"
        super().key_destroyed(role, name, key)


@pytest.mark.slow
async def test_process_policy_gives_the_join_and_retires_secret_workers_before_deletion():
    hospital, insurer = tables_for(160, 0.5, seed=5)
    watch = WorkerWatch()
    simulation = await simulate(
        (hospital, insurer), fast_config(hospital, insurer, lasso=False),
        executor=Executor("process", workers=2), observer=watch, verify=True,
    )
    assert simulation.verified is True
    assert set(watch.checked) == {"hospital", "insurer"}
    assert all(pids for pids in watch.checked.values())  # secret-key work really ran in workers


@pytest.mark.parametrize(
    ("rows", "cores", "workers", "expected"),
    [
        (AUTO_PROCESS_MIN_ROWS - 1, 8, None, "inline"),  # small table: start-up costs more than it saves
        (AUTO_PROCESS_MIN_ROWS, 8, None, "process"),
        (AUTO_PROCESS_MIN_ROWS, 1, None, "inline"),  # one core: nothing to spread over
        (AUTO_PROCESS_MIN_ROWS, 8, 1, "inline"),  # one worker asked for: the same
        (10**6, 2, 2, "process"),
    ],
)
def test_auto_picks_worker_processes_for_big_tables_on_several_cores(rows, cores, workers, expected, monkeypatch):
    monkeypatch.setattr(executor_module, "machine_cores", lambda: cores)
    auto = Executor(workers=workers)
    assert auto.requested == "auto" and auto.policy == "inline"  # unsized, nothing is spread
    sized = auto.sized(rows)
    assert sized.policy == expected and sized.workers == workers


@pytest.mark.parametrize("policy", ["inline", "thread", "process"])
def test_an_explicit_policy_is_kept_whatever_the_size(policy):
    executor = Executor(policy)
    assert executor.sized(1).policy == policy and executor.sized(10**7).policy == policy


def test_a_worker_count_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        Executor("process", workers=0)


@pytest.mark.parametrize(("threshold", "uses_workers"), [pytest.param(30, True, marks=pytest.mark.slow), (10_000, False)])
async def test_auto_sizes_a_simulation_by_the_whole_runs_work(threshold, uses_workers, monkeypatch):
    # 160 rows per party at 1024 bits: 320 rows, worth 40 rows at 2048 bits
    monkeypatch.setattr(executor_module, "AUTO_SHARED_MIN_ROWS", threshold)
    monkeypatch.setattr(executor_module, "machine_cores", lambda: 2)
    hospital, insurer = tables_for(160, 0.5, seed=5)
    watch = WorkerWatch(workers_expected=uses_workers)
    simulation = await simulate(
        (hospital, insurer), fast_config(hospital, insurer, lasso=False), executor=Executor("auto"), observer=watch, verify=True,
    )
    assert simulation.verified is True
    assert set(watch.checked) == ({"hospital", "insurer"} if uses_workers else set())


@pytest.mark.parametrize(
    ("rows", "bits", "cores", "workers", "expected"),
    [
        (AUTO_SHARED_MIN_ROWS, 2048, 2, None, "process"),
        (AUTO_SHARED_MIN_ROWS - 1, 2048, 8, None, "inline"),  # too little work for the start-up
        (320, 1024, 2, None, "inline"),  # the tests' tables: 1024-bit rows cost 1/8
        (-(-AUTO_SHARED_MIN_ROWS * 8 // 27), 3072, 2, None, "process"),  # 3072-bit rows cost 27/8
        (10**6, 2048, 1, None, "inline"),  # one core: nothing to spread over
        (10**6, 2048, 8, 1, "inline"),
    ],
)
def test_a_simulation_decides_its_policy_once_by_rows_and_key_size(rows, bits, cores, workers, expected):
    assert Executor(workers=workers).shared_policy(rows, key_bits=bits, cores=cores) == expected
    assert Executor("thread").shared_policy(rows, key_bits=bits, cores=cores) == "thread"  # kept


def test_the_cores_are_those_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert executor_module.machine_cores() == 1
    assert Executor().shared_policy(10**6) == "inline"  # one core allowed, however many the machine has
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert Executor().shared_policy(10**6) == "process" and Executor().pool_size == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (4.1, 1.0, 1.0))
    assert Executor().shared_policy(10**6) == "process"  # the load is not consulted (docs/benchmarks.md)


async def recorded_process_run(monkeypatch) -> tuple[list[tuple[int, object, object]], WorkerWatch]:
    """A verified two-party run under ``process`` on two workers, with every worker job
    recorded as ``(id of its worker pool, function, limiter)``."""
    import trio_parallel

    jobs = []
    original = trio_parallel.WorkerContext.run_sync

    async def recording(self, fn, *args, limiter=None, **kwargs):
        jobs.append((id(self), fn, limiter))
        return await original(self, fn, *args, limiter=limiter, **kwargs)

    monkeypatch.setattr(trio_parallel.WorkerContext, "run_sync", recording)
    hospital, insurer = tables_for(160, 0.5, seed=5)
    watch = WorkerWatch()
    simulation = await simulate(
        (hospital, insurer), fast_config(hospital, insurer, lasso=False),
        executor=Executor("process", workers=2), observer=watch, verify=True,
    )
    assert simulation.verified is True
    return jobs, watch


@pytest.mark.slow
async def test_nothing_derived_from_a_secret_reaches_the_public_workers(monkeypatch):
    # Public-key workers (the run's pools, or trio-parallel's cached ones for a daemon)
    # are not scoped to a key, so whatever a job carries could outlive the deletion
    # step: only the TTP's public step-6 work may go there. The data parties' masks
    # (their additive shares) go to the scoped workers, and no pool mixes the two.
    from mpcactors.actors.hooks import mask_and_rerandomise
    from mpcactors.crypto import workers as crypto_workers

    jobs, _ = await recorded_process_run(monkeypatch)
    by_pool: dict[int, set] = {}
    for pool, fn, _ in jobs:
        by_pool.setdefault(pool, set()).add(fn)
    secret_jobs = {crypto_workers.encrypt_batch, crypto_workers.decrypt_batch, crypto_workers.encrypt_under_batch}
    public = [fns for fns in by_pool.values() if mask_and_rerandomise in fns]
    scoped = [fns for fns in by_pool.values() if fns & secret_jobs]
    assert public and scoped
    assert all(fns == {mask_and_rerandomise} for fns in public)
    assert all(fns <= secret_jobs for fns in scoped)


@pytest.mark.slow
async def test_one_limit_for_the_run_and_each_keys_work_in_few_workers(monkeypatch):
    """Two cores, two keys: every job of every party (public and secret-key) waits on
    one limit of two, so the parties together never oversubscribe the cores, and each
    key's secret-key scope starts one worker, so its tables are built once."""
    jobs, watch = await recorded_process_run(monkeypatch)
    limiters = {limiter for _, _, limiter in jobs}
    assert len(limiters) == 1 and next(iter(limiters)).total_tokens == 2
    assert {role: len(pids) for role, pids in watch.checked.items()} == {"hospital": 1, "insurer": 1}
