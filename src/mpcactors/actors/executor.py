"""Where CPU-heavy crypto runs: inline, in a thread, or in worker processes.

The policy is a setting because the right answer depends on the job: tests want
``inline`` (deterministic, no process start-up), a laptop simulation wants
``process`` for public-key work on every core. gmpy2 holds the GIL, so ``thread``
mostly keeps the event loop responsive rather than adding speed.

Secret-key work never goes to these cached workers: they outlive the call, so a
secret key sent to one could outlive the key-deletion step. Under ``inline`` and
``thread`` it runs in-process (:meth:`Executor.run_secret`); under ``process`` the
data parties use scoped workers (:mod:`mpcactors.actors.secret_pool`) that all end
before the key is destroyed.

``auto`` (the default) decides per party once it knows how much work it has
(:meth:`Executor.sized`): ``process`` for a table of at least
:data:`AUTO_PROCESS_MIN_ROWS` rows on a machine with more than one core, else
``inline``. Below that size the process policy's fixed costs (starting workers, a
fixed-base table per worker and key) outweigh what the extra cores save
(``docs/benchmarks.md``, "Executor policy by table size").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import trio

__all__ = ["AUTO_PROCESS_MIN_ROWS", "POLICIES", "Executor"]

T = TypeVar("T")
POLICIES = ("auto", "inline", "thread", "process")
#: ``auto`` uses worker processes from this many rows (a party's table; the TTP's
#: intersection), measured on 2 cores: see the module docstring.
AUTO_PROCESS_MIN_ROWS = 2048


class Executor:
    """A policy for where crypto runs, and the number of worker processes or threads.

    ``workers`` caps the work running at once (default: one per core); it is the pool
    size of the ``process`` policy and of the scoped secret-key workers.
    """

    def __init__(
        self, policy: Literal["auto", "inline", "thread", "process"] = "auto", *, workers: int | None = None
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"executor policy must be one of {POLICIES}, got {policy!r}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.requested = policy
        #: the policy in force: ``auto`` runs inline until :meth:`sized` picks one
        self.policy = "inline" if policy == "auto" else policy
        self.workers = workers
        self._limiter: trio.CapacityLimiter | None = None

    def sized(self, rows: int) -> Executor:
        """The executor for a job of ``rows`` rows: ``auto`` resolved, any other policy as is."""
        if self.requested != "auto":
            return self
        cores = self.workers or os.cpu_count() or 1
        policy = "process" if rows >= AUTO_PROCESS_MIN_ROWS and cores > 1 else "inline"
        return Executor(policy, workers=self.workers)  # type: ignore[arg-type]

    def _capacity(self) -> trio.CapacityLimiter | None:
        if self.workers is None:
            return None
        if self._limiter is None:
            self._limiter = trio.CapacityLimiter(self.workers)
        return self._limiter

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run public-data work ``fn(*args)`` under the policy (``fn`` must be picklable for ``process``)."""
        if self.policy == "inline":
            await trio.lowlevel.checkpoint()
            return fn(*args)
        if self.policy == "thread":
            return await trio.to_thread.run_sync(fn, *args, limiter=self._capacity())
        import trio_parallel

        return await trio_parallel.run_sync(fn, *args, limiter=self._capacity())

    async def run_secret(self, fn: Callable[..., T], *args: Any) -> T:
        """Run secret-key work in this process (inline, or a thread under ``thread``/``process``)."""
        if self.policy == "inline":
            await trio.lowlevel.checkpoint()
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args)
