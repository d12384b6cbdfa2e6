"""Where CPU-heavy crypto runs: inline, in a thread, or in worker processes.

The policy is a setting because the right answer depends on the job: tests want
``inline`` (deterministic, no process start-up), a laptop simulation wants
``process`` for public-key work on every core. gmpy2 holds the GIL, so ``thread``
mostly keeps the event loop responsive rather than adding speed.

Two doors, the same under every policy:

* :meth:`Executor.run` for public-data work (the TTP's re-randomisation);
* :meth:`Executor.secret_key_scope` for work with a secret key or on secret values:
  inside the scope, ``encrypt_raw``/``decrypt_raw`` (our key) and ``encrypt_under``
  (another party's key, secret plaintexts such as masks) run in this process under
  ``inline`` and ``thread`` and in scoped worker processes
  (:mod:`mpcactors.actors.secret_pool`) under ``process``; those workers all end when
  the scope closes, before the key is destroyed. Nothing derived from a secret reaches
  the cached public workers, which outlive every call. :meth:`Executor.run_secret`
  runs other secret work in this process.

How work is batched for a policy (:meth:`Executor.batch_rows`, :meth:`Executor.inflight`)
is decided here too, so callers never compare policy names.

``auto`` (the default) decides per party once it knows how much work it has
(:meth:`Executor.sized`): ``process`` for a table of at least
:data:`AUTO_PROCESS_MIN_ROWS` rows on a machine with more than one core, else
``inline``. Below that size the process policy's fixed costs (starting workers, a
fixed-base table per worker and key) outweigh what the extra cores save
(``docs/benchmarks.md``, "Executor policy by table size").
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

import trio

from ..crypto import paillier
from ..crypto.paillier import SecretKey
from .secret_pool import open_secret_key_workers

__all__ = ["AUTO_PROCESS_MIN_ROWS", "POLICIES", "Executor", "SecretKeyWork"]

T = TypeVar("T")
Policy = Literal["auto", "inline", "thread", "process"]
POLICIES: tuple[Policy, ...] = ("auto", "inline", "thread", "process")
#: ``auto`` uses worker processes from this many rows (a party's table; the TTP's
#: intersection), measured on 2 cores: see the module docstring.
AUTO_PROCESS_MIN_ROWS = 2048
#: Rows per job when work is spread over workers: small enough to keep every core
#: busy, big enough (>= ~1 ms of crypto) to amortise the dispatch.
_PARALLEL_BATCH_ROWS = 64


class SecretKeyWork(Protocol):
    """Secret-key Paillier work, wherever the policy runs it (see :meth:`Executor.secret_key_scope`)."""

    async def encrypt_raw(self, plaintexts: Sequence[int]) -> list[int]: ...

    async def decrypt_raw(self, values: Sequence[int], *, below_half_p: bool = False) -> list[int]: ...

    async def encrypt_under(self, public_wire: dict[str, int], plaintexts: Sequence[int]) -> list[int]: ...


class _InProcess:
    """Secret-key work in this process (inline, or a thread)."""

    def __init__(self, executor: Executor, secret: SecretKey) -> None:
        self._executor = executor
        self._secret = secret

    async def encrypt_raw(self, plaintexts: Sequence[int]) -> list[int]:
        return await self._executor.run_secret(self._secret.encrypt_raw, plaintexts)

    async def decrypt_raw(self, values: Sequence[int], *, below_half_p: bool = False) -> list[int]:
        return await self._executor.run_secret(partial(self._secret.decrypt_raw, values, below_half_p=below_half_p))

    async def encrypt_under(self, public_wire: dict[str, int], plaintexts: Sequence[int]) -> list[int]:
        return await self._executor.run_secret(paillier.encrypt_raw, public_wire, plaintexts)


class Executor:
    """A policy for where crypto runs, and the number of worker processes or threads.

    ``workers`` caps the work running at once (default: one per core); it is the pool
    size of the ``process`` policy and of the scoped secret-key workers.
    """

    def __init__(self, policy: Policy = "auto", *, workers: int | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"executor policy must be one of {POLICIES}, got {policy!r}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.requested = policy
        #: the policy in force: ``auto`` runs inline until :meth:`sized` picks one
        self.policy: Policy = "inline" if policy == "auto" else policy
        self.workers = workers
        self._limiter: trio.CapacityLimiter | None = None

    def sized(self, rows: int) -> Executor:
        """The executor for a job of ``rows`` rows: ``auto`` resolved, any other policy as is."""
        if self.requested != "auto":
            return self
        cores = self.workers or os.cpu_count() or 1
        policy: Policy = "process" if rows >= AUTO_PROCESS_MIN_ROWS and cores > 1 else "inline"
        return Executor(policy, workers=self.workers)

    @property
    def pool_size(self) -> int:
        """Work running at once: the ``workers`` setting, else one per core."""
        return self.workers or os.cpu_count() or 2

    def batch_rows(self, chunk_rows: int) -> int:
        """Rows per job: a whole chunk inline, small batches when workers share the work."""
        return chunk_rows if self.policy == "inline" else min(chunk_rows, _PARALLEL_BATCH_ROWS)

    def inflight(self) -> int:
        """Jobs in flight at once: enough to keep every worker busy, bounded for memory."""
        return 1 if self.policy == "inline" else 2 * self.pool_size

    @asynccontextmanager
    async def secret_key_scope(
        self, secret: SecretKey, *, retired: Callable[[Any], None] | None = None
    ) -> AsyncIterator[SecretKeyWork]:
        """Secret-key work for ``secret`` until the scope closes.

        Under ``process``, scoped worker processes hold the key and all end when the
        scope closes (close it before destroying the key); then ``retired(workers)`` is
        called with the closed :class:`~.secret_pool.SecretKeyWorkers`. Otherwise the
        work runs in this process.
        """
        if self.policy == "process":
            async with open_secret_key_workers(secret, workers=self.pool_size) as workers:
                yield workers
            if retired is not None:
                retired(workers)
        else:
            yield _InProcess(self, secret)

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
