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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import trio

__all__ = ["POLICIES", "Executor"]

T = TypeVar("T")
POLICIES = ("inline", "thread", "process")


class Executor:
    def __init__(self, policy: Literal["inline", "thread", "process"] = "inline", *, workers: int | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"executor policy must be one of {POLICIES}, got {policy!r}")
        self.policy = policy
        self.workers = workers
        self._limiter: trio.CapacityLimiter | None = None
        self.calls = 0

    def _capacity(self) -> trio.CapacityLimiter | None:
        if self.workers is None:
            return None
        if self._limiter is None:
            self._limiter = trio.CapacityLimiter(self.workers)
        return self._limiter

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run public-data work ``fn(*args)`` under the policy (``fn`` must be picklable for ``process``)."""
        self.calls += 1
        if self.policy == "inline":
            await trio.lowlevel.checkpoint()
            return fn(*args)
        if self.policy == "thread":
            return await trio.to_thread.run_sync(fn, *args, limiter=self._capacity())
        import trio_parallel

        return await trio_parallel.run_sync(fn, *args, limiter=self._capacity())

    async def run_secret(self, fn: Callable[..., T], *args: Any) -> T:
        """Run secret-key work in this process (inline, or a thread under ``thread``/``process``)."""
        self.calls += 1
        if self.policy == "inline":
            await trio.lowlevel.checkpoint()
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args)
