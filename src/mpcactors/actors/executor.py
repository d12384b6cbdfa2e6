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

A simulation runs every party in one process, so it decides once for the whole run
(:meth:`Executor.shared`): one executor for every party, sized by the run's total
rows (:data:`AUTO_SHARED_MIN_ROWS`) on the cores this process may use, with public-key
worker pools that end with the run
and one limit of ``pool_size`` jobs at once across all parties' public and secret-key
work; each key's work stays on ``pool_size // data parties`` workers, so its
fixed-base tables are built in few processes. Its worker
processes are forked from a forkserver that is started early (while the parties
generate their keys) and has imported the crypto once, so a worker costs milliseconds
instead of a fresh interpreter: that is what makes every core pay off on a small run.
The forkserver is a fresh interpreter, not a copy of this process, and never holds a
key; secret-key workers still get the key only through the scoped handoff.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

import trio
import trio_parallel

from ..crypto import paillier
from ..crypto.paillier import SecretKey
from .secret_pool import open_secret_key_workers

__all__ = [
    "AUTO_PROCESS_MIN_ROWS",
    "AUTO_SHARED_MIN_ROWS",
    "POLICIES",
    "Executor",
    "SecretKeyWork",
    "machine_cores",
]

T = TypeVar("T")
Policy = Literal["auto", "inline", "thread", "process"]
POLICIES: tuple[Policy, ...] = ("auto", "inline", "thread", "process")
#: ``auto`` uses worker processes from this many rows (a party's table; the TTP's
#: intersection), measured on 2 cores: see the module docstring.
AUTO_PROCESS_MIN_ROWS = 2048
#: ``auto`` in a simulation (:meth:`Executor.shared`) uses worker processes from this
#: many rows in all data parties' tables together, counted at 2048 bits (a row at
#: ``b`` bits counts ``(b / 2048)**3``, as Paillier's cost grows), measured on 2 cores
#: (``docs/benchmarks.md``, "Every core in one process").
AUTO_SHARED_MIN_ROWS = 300
#: Modules the forkserver imports once, so a forked worker starts with them loaded:
#: every job a run sends (the secret-key jobs, the TTP's default combination
#: :func:`~mpcactors.crypto.paillier.mask_and_rerandomise`) and trio-parallel's worker
#: loop, and nothing else (no actors, numpy or CLI), so the forkserver is ready about
#: twice as soon (``docs/benchmarks.md``, "Every core in one process").
_FORKSERVER_PRELOAD = ("mpcactors.crypto.workers", "trio_parallel._proc")
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
        #: set by :meth:`shared`: the run's public-key pool and how its workers start
        self._context: trio_parallel.WorkerContext | None = None
        self._worker_type = trio_parallel.WorkerType.SPAWN
        self._per_key_workers: int | None = None
        #: under :meth:`shared`: a public-key pool per ``affinity`` of :meth:`run`
        self._stack: AsyncExitStack | None = None
        self._affine: dict[Hashable, tuple[trio_parallel.WorkerContext, trio.CapacityLimiter]] = {}
        self._affine_lock = trio.Lock()

    def sized(self, rows: int) -> Executor:
        """The executor for a job of ``rows`` rows: ``auto`` resolved, any other policy as is."""
        if self.requested != "auto":
            return self
        return Executor(self._resolved(rows, AUTO_PROCESS_MIN_ROWS), workers=self.workers)

    def _resolved(self, rows: int, threshold: int, cores: int | None = None) -> Policy:
        if self.requested != "auto":
            return self.policy
        cores = self.workers or (machine_cores() if cores is None else cores)
        return "process" if rows >= threshold and cores > 1 else "inline"

    def shared_policy(self, rows: int, *, key_bits: int = 2048, cores: int | None = None) -> Policy:
        """The policy :meth:`shared` runs a whole run of ``rows`` rows at ``key_bits`` under.

        ``auto``: ``process`` from :data:`AUTO_SHARED_MIN_ROWS` rows counted at 2048
        bits (a row at ``b`` bits counts ``(b / 2048)**3``) on more than one core; any
        other policy as it is. ``cores`` defaults to this process's (:func:`machine_cores`).
        The machine's load is not consulted: the load average counts the user's own
        previous runs too, and a run switched to inline by it was 1.4 times slower
        (``docs/benchmarks.md``, "Every core in one process").
        """
        work = math.ceil(rows * (key_bits / 2048) ** 3)
        return self._resolved(work, AUTO_SHARED_MIN_ROWS, cores)

    @asynccontextmanager
    async def shared(self, rows: int, *, key_bits: int = 2048, keys: int = 1) -> AsyncIterator[Executor]:
        """One executor for every party of a run in this process, until the scope closes.

        ``rows`` is the run's whole table work (all data parties' rows) at
        ``key_bits``, and ``keys`` the number of secret keys that work at the same time
        (the data parties); ``auto`` resolves once (:meth:`shared_policy`). Under
        ``process``, every party shares one limit of :attr:`pool_size` jobs at once
        (public and secret-key work together, so the parties never oversubscribe the
        cores), and public-key work goes to worker pools that end with the scope (one
        per :meth:`run` ``affinity``); workers are forked from a forkserver started
        here, in the background. Secret-key work still runs in each
        key's own scoped workers (:meth:`secret_key_scope`), ``pool_size // keys`` of
        them (at least one): the keys work side by side, so fewer workers per key keep
        the cores as busy while each builds that key's tables once. The returned
        executor's :meth:`sized` keeps it as it is.
        """
        executor = Executor(self.shared_policy(rows, key_bits=key_bits), workers=self.workers)
        if executor.policy != "process":
            yield executor
            return
        executor._limiter = trio.CapacityLimiter(executor.pool_size)
        executor._per_key_workers = max(1, executor.pool_size // max(keys, 1))
        if _start_forkserver():
            executor._worker_type = trio_parallel.WorkerType.FORKSERVER
        async with AsyncExitStack() as stack:
            executor._context = await stack.enter_async_context(
                trio_parallel.open_worker_context(worker_type=executor._worker_type, idle_timeout=math.inf)
            )
            executor._stack = stack
            try:
                yield executor
            finally:
                executor._stack = None

    @property
    def pool_size(self) -> int:
        """Work running at once: the ``workers`` setting, else one per core."""
        return self.workers or machine_cores()

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
            async with open_secret_key_workers(
                secret, workers=self._per_key_workers or self.pool_size, limiter=self._limiter,
                worker_type=self._worker_type,
            ) as workers:
                yield workers
            if retired is not None:
                retired(workers)
        else:
            yield _InProcess(self, secret)

    def _capacity(self) -> trio.CapacityLimiter | None:
        if self._limiter is None and self.workers is not None:
            self._limiter = trio.CapacityLimiter(self.workers)
        return self._limiter

    async def _affine_pool(self, affinity: Hashable) -> tuple[trio_parallel.WorkerContext, trio.CapacityLimiter]:
        async with self._affine_lock:
            if affinity not in self._affine:
                assert self._stack is not None
                context = await self._stack.enter_async_context(
                    trio_parallel.open_worker_context(worker_type=self._worker_type, idle_timeout=math.inf)
                )
                self._affine[affinity] = (context, trio.CapacityLimiter(self._per_key_workers or self.pool_size))
            return self._affine[affinity]

    async def run(self, fn: Callable[..., T], *args: Any, affinity: Hashable | None = None) -> T:
        """Run public-data work ``fn(*args)`` under the policy (``fn`` must be picklable for ``process``).

        ``affinity`` (e.g. a public key's fingerprint) names what the work's per-process
        state is built for: under :meth:`shared`, jobs with the same affinity go to the
        same few workers (``pool_size // keys``), so a per-key fixed-base table is built
        in as few processes as keep the cores busy. Elsewhere it is ignored.
        """
        if self.policy == "inline":
            await trio.lowlevel.checkpoint()
            return fn(*args)
        if self.policy == "thread":
            return await trio.to_thread.run_sync(fn, *args, limiter=self._capacity())
        if self._context is not None:
            if affinity is not None and self._stack is not None:
                context, own = await self._affine_pool(affinity)
                async with own:
                    return await context.run_sync(fn, *args, limiter=self._capacity())
            return await self._context.run_sync(fn, *args, limiter=self._capacity())
        return await trio_parallel.run_sync(fn, *args, limiter=self._capacity())

    async def run_secret(self, fn: Callable[..., T], *args: Any) -> T:
        """Run secret-key work in this process (inline, or a thread under ``thread``/``process``)."""
        if self.policy == "inline":
            await trio.lowlevel.checkpoint()
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args)


def machine_cores() -> int:
    """The cores this process may run on: its CPU affinity (which ``taskset``, cgroup
    cpusets and containers narrow), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


def _start_forkserver() -> bool:
    """Start multiprocessing's forkserver now (it imports in the background); False if unavailable.

    The forkserver is a fresh interpreter (not a fork of this process, so it holds
    none of its keys or data) that imports the crypto modules once; workers forked
    from it start in milliseconds. Starting it early lets its imports overlap the
    parties' key generation.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    from multiprocessing import forkserver

    forkserver.set_forkserver_preload(["__main__", *_FORKSERVER_PRELOAD])
    forkserver.ensure_running()
    return True
