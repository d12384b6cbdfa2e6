"""Scoped worker processes for a party's secret-key Paillier work (steps 3 and 6).

Public-key work can go to trio-parallel's shared, cached workers
(:class:`~mpcactors.actors.executor.Executor`), but those outlive any call, so a
secret key sent to one could outlive the key-deletion step. Secret-key work goes to
the workers of :func:`open_secret_key_workers` instead:

* a private trio-parallel worker context, opened with the key's handoff
  (:func:`mpcactors.crypto.workers.secret_key_handoff`) as its ``init``, so each
  worker receives ``(n, h, p, q)`` once, when it starts;
* at most ``workers`` processes, started on first use and kept while the scope is
  open (the owner-encryption tables are built once per worker);
* when the scope closes (the actor closes it at the key-deletion step, and on any
  error or cancellation), trio-parallel ends every worker and waits for it
  (``grace_period``, then SIGKILL), and the handoff is revoked so no process can get
  the key afterwards. Jobs cancelled mid-flight kill their worker at once.

Lists are split into about equal batches of at most ``batch_size`` values (and into
at least ``workers`` batches when there are enough values), each batch one job: at
3072 bits a batch of 64 is roughly 0.3 s of decryption or 0.1 s of encryption, far
above trio-parallel's ~1 ms dispatch cost.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio
import trio_parallel

from ..crypto import workers as crypto_workers
from ..crypto.paillier import SecretKey
from ..errors import KeyDestroyedError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SecretKeyWorkers",
    "SecretWorkerStatistics",
    "open_secret_key_workers",
]

#: Values per job when none is given (see the module docstring).
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True, slots=True)
class SecretWorkerStatistics:
    """What :meth:`SecretKeyWorkers.statistics` reports.

    Attributes:
        workers: the maximum number of worker processes.
        worker_pids: ids of the processes that ran at least one job (so held the key).
        jobs: jobs completed.
        values: ciphertexts and plaintexts processed by completed jobs.
        idle_workers: live workers waiting for a job (trio-parallel's count).
        running_workers: workers running a job now.
        closed: whether the scope has closed (every worker ended).
    """

    workers: int
    worker_pids: frozenset[int]
    jobs: int
    values: int
    idle_workers: int
    running_workers: int
    closed: bool


def split_batches(count: int, *, batch_size: int, workers: int) -> list[tuple[int, int]]:
    """``(start, stop)`` ranges covering ``range(count)`` in about equal batches.

    At most ``batch_size`` per batch; at least ``min(workers, count)`` batches so
    every worker gets a share of a short list.
    """
    if count <= 0:
        return []
    batches = max(math.ceil(count / batch_size), min(workers, count))
    base, extra = divmod(count, batches)
    ranges = []
    start = 0
    for index in range(batches):
        stop = start + base + (1 if index < extra else 0)
        ranges.append((start, stop))
        start = stop
    return ranges


class SecretKeyWorkers:
    """Worker processes that hold one Paillier secret key; valid inside its scope only.

    Get one from :func:`open_secret_key_workers`. Methods mirror
    :meth:`SecretKey.decrypt_raw` and :meth:`SecretKey.encrypt_raw` and return the
    same results (in input order).
    """

    def __init__(
        self,
        secret: SecretKey,
        context: trio_parallel.WorkerContext,
        *,
        workers: int,
        batch_size: int,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        """Internal: use :func:`open_secret_key_workers`."""
        self._secret = secret
        self._fingerprint = secret.public.fingerprint()
        self._context = context
        self._workers = workers
        self._batch_size = batch_size
        # at most `workers` jobs (so processes) for this key; `shared` also caps the
        # jobs of every scope together (one simulation's parties on one machine)
        self._limiter = trio.CapacityLimiter(workers)
        self._shared = limiter if limiter is not None else trio.CapacityLimiter(workers)
        self._pids: set[int] = set()
        self._jobs = 0
        self._values = 0
        self._closed = False

    @property
    def worker_pids(self) -> frozenset[int]:
        """Process ids of the workers that ran at least one job (each held the key)."""
        return frozenset(self._pids)

    def statistics(self) -> SecretWorkerStatistics:
        """Counts for logs and tests (trio convention)."""
        if self._closed:
            idle = running = 0
        else:
            context_stats = self._context.statistics()
            idle, running = context_stats.idle_workers, context_stats.running_workers
        return SecretWorkerStatistics(
            workers=self._workers,
            worker_pids=self.worker_pids,
            jobs=self._jobs,
            values=self._values,
            idle_workers=idle,
            running_workers=running,
            closed=self._closed,
        )

    def _check_usable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the secret-key workers were closed")
        if self._secret.destroyed:
            raise KeyDestroyedError(
                f"Paillier secret key {self._fingerprint} was destroyed and cannot be used"
            )

    async def decrypt_raw(
        self, values: Sequence[int], *, below_half_p: bool = False
    ) -> list[int]:
        """:meth:`SecretKey.decrypt_raw` across the workers.

        Raises:
            KeyDestroyedError: the key was destroyed.
            trio.ClosedResourceError: the scope has closed.
            ValueError | TypeError: as :meth:`SecretKey.decrypt_raw` (positions in
                ``values``); values are validated before any job starts.
        """
        self._check_usable()
        checked = crypto_workers.checked_ciphertexts(self._secret.public, values)
        return await self._map(
            crypto_workers.decrypt_batch,
            checked,
            lambda batch, start: (self._fingerprint, batch, below_half_p, start),
        )

    async def encrypt_raw(self, plaintexts: Sequence[int]) -> list[int]:
        """Owner encryption (:meth:`SecretKey.encrypt_raw`) across the workers.

        Raises:
            KeyDestroyedError: the key was destroyed.
            trio.ClosedResourceError: the scope has closed.
            ValueError | TypeError: as :meth:`SecretKey.encrypt_raw` (positions named).
        """
        self._check_usable()
        checked = crypto_workers.checked_plaintexts(self._secret.public, plaintexts)
        return await self._map(
            crypto_workers.encrypt_batch,
            checked,
            lambda batch, start: (self._fingerprint, batch, start),
        )

    async def encrypt_under(self, public_wire: dict[str, int], plaintexts: Sequence[int]) -> list[int]:
        """Encryption under another key (``public_wire``) of secret plaintexts, across the workers.

        Raises:
            KeyDestroyedError: our key was destroyed (the scope's life is over).
            trio.ClosedResourceError: the scope has closed.
        """
        self._check_usable()
        values = [int(v) for v in plaintexts]
        return await self._map(
            crypto_workers.encrypt_under_batch, values, lambda batch, start: (public_wire, batch, start)
        )

    async def _map(
        self,
        job: Callable[..., tuple[int, list[int]]],
        items: list[int],
        arguments: Callable[[list[int], int], tuple[Any, ...]],
    ) -> list[int]:
        ranges = split_batches(len(items), batch_size=self._batch_size, workers=self._workers)
        results: list[list[int]] = [[] for _ in ranges]
        failures: dict[int, Exception] = {}

        async def run_one(index: int, start: int, stop: int) -> None:
            try:
                async with self._limiter:
                    pid, out = await self._context.run_sync(
                        job,
                        *arguments(items[start:stop], start),
                        kill_on_cancel=True,
                        limiter=self._shared,
                    )
            except Exception as error:
                # Report the first failing batch as a plain exception (not a group)
                # and stop the others: their workers are killed, new ones start on
                # the next call.
                failures[index] = error
                nursery.cancel_scope.cancel()
                return
            self._pids.add(pid)
            self._jobs += 1
            self._values += stop - start
            results[index] = out

        async with trio.open_nursery() as nursery:
            for index, (start, stop) in enumerate(ranges):
                nursery.start_soon(run_one, index, start, stop)
        if failures:
            raise failures[min(failures)]
        if not ranges:
            await trio.lowlevel.checkpoint()
        return [value for batch in results for value in batch]


@asynccontextmanager
async def open_secret_key_workers(
    secret: SecretKey,
    *,
    workers: int = 2,
    batch_size: int = DEFAULT_BATCH_SIZE,
    grace_period: float = 10.0,
    limiter: trio.CapacityLimiter | None = None,
    worker_type: trio_parallel.WorkerType = trio_parallel.WorkerType.SPAWN,
) -> AsyncIterator[SecretKeyWorkers]:
    """Open worker processes for ``secret``'s work; all of them end when the scope closes.

    Close the scope at the key-deletion step (before or together with
    :meth:`SecretKey.destroy`). Leaving the scope waits for running jobs unless they
    are cancelled (cancelled jobs kill their worker), then ends every worker, waiting
    up to ``grace_period`` seconds before killing it.

    Args:
        secret: the live secret key; only ``(n, h, p, q)`` reaches the workers, through
            :func:`mpcactors.crypto.workers.secret_key_handoff`.
        workers: the maximum number of worker processes (the pool-size setting).
        batch_size: the maximum number of values per job.
        grace_period: seconds to wait for a worker to exit before killing it.
        limiter: also caps the jobs running at once, together with other users of
            the same limiter: a simulation passes one limiter shared by every party,
            so all of them together use the cores once. ``workers`` still caps this
            scope's processes.
        worker_type: how workers start: ``SPAWN`` (a fresh interpreter) or
            ``FORKSERVER`` (forked from a fresh interpreter that already imported the
            crypto, never from this process, so a worker holds no other key).

    Raises:
        KeyDestroyedError: the key was already destroyed.
        ValueError: ``workers`` or ``batch_size`` is below 1, or ``worker_type`` is ``FORK``.
        trio_parallel.BrokenWorkerError: a worker had to be killed at exit.
    """
    if workers < 1 or batch_size < 1:
        raise ValueError(
            f"workers and batch_size must be at least 1, got {workers} and {batch_size}"
        )
    if worker_type == trio_parallel.WorkerType.FORK:
        # a fork of this process would carry every key and table it holds into the worker
        raise ValueError("secret-key workers start by spawn or forkserver, never by fork")
    handoff = crypto_workers.secret_key_handoff(secret)
    pool: SecretKeyWorkers | None = None
    try:
        async with trio_parallel.open_worker_context(
            init=handoff, idle_timeout=math.inf, grace_period=grace_period, worker_type=worker_type
        ) as context:
            pool = SecretKeyWorkers(secret, context, workers=workers, batch_size=batch_size, limiter=limiter)
            yield pool
    finally:
        # Reached only after trio-parallel has ended (or killed) every worker.
        handoff.revoke()
        if pool is not None:
            pool._closed = True
