"""An ordered, bounded pipeline: overlap computing batch k+1 with sending batch k.

Steps 3 to 6 move whole tables. Doing them as "compute everything, then send
everything" leaves cores idle while bytes move and holds the whole table in memory.
:func:`run_ordered` instead starts up to ``limit`` jobs at once (on an executor, so
they run on other cores), and hands results to ``consume`` strictly in job order as
they complete. Memory stays bounded by ``limit`` batches in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from contextlib import aclosing
from typing import Any, Generic, TypeVar

import trio

from .failures import leaves

__all__ = ["run_ordered"]

T = TypeVar("T")


class _Slot(Generic[T]):
    __slots__ = ("done", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: Any = None

    async def fill(self, job: Callable[[], Awaitable[T]]) -> None:
        self.value = await job()
        self.done.set()


class _Jobs:
    """Iterate sync or async jobs; ``aclose`` finishes an async generator source.

    A failure mid-stream must not leave the caller's async generator suspended: trio
    warns when such a generator is garbage-collected later, far from the cause.
    """

    def __init__(self, jobs: Iterable[Any] | AsyncIterable[Any]) -> None:
        self._jobs = jobs
        self._iterator: Any = jobs.__aiter__() if isinstance(jobs, AsyncIterable) else iter(jobs)

    def __aiter__(self) -> _Jobs:
        return self

    async def __anext__(self) -> Any:
        if isinstance(self._jobs, AsyncIterable):
            return await self._iterator.__anext__()
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        close = getattr(self._iterator, "aclose", None)
        if close is not None:
            await close()


async def run_ordered(
    jobs: Iterable[Callable[[], Awaitable[T]]] | AsyncIterable[Callable[[], Awaitable[T]]],
    consume: Callable[[T], Awaitable[None]],
    *,
    limit: int = 4,
) -> None:
    """Run ``jobs`` with at most ``limit`` pending; ``await consume(result)`` in order.

    Any exception in a job or in ``consume`` cancels the rest and propagates.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    send, receive = trio.open_memory_channel[_Slot[T]](limit - 1)
    try:
        await _run(jobs, consume, send, receive)
    except BaseExceptionGroup as group:
        # one failing job is the usual case: show that error, not a group around it
        real = [e for e in leaves(group) if not isinstance(e, trio.Cancelled)]
        if len(real) == 1:
            raise real[0] from None
        raise


async def _run(jobs: Any, consume: Any, send: Any, receive: Any) -> None:
    async with trio.open_nursery() as nursery:

        async def produce() -> None:
            async with send, aclosing(_Jobs(jobs)) as source:
                async for job in source:
                    slot: _Slot[T] = _Slot()
                    await send.send(slot)  # blocks while `limit` results are pending
                    nursery.start_soon(slot.fill, job)

        nursery.start_soon(produce)
        async with receive:
            async for slot in receive:
                await slot.done.wait()
                value, slot.value = slot.value, None
                await consume(value)
