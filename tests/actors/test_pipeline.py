"""run_ordered: results arrive in job order, at most `limit` jobs are pending, errors propagate."""

import pytest
import trio

from mpcactors.actors.pipeline import run_ordered


@pytest.mark.parametrize("limit", [1, 2, 5])
async def test_results_in_order_and_bounded(limit, autojump_clock):
    pending = 0
    peak = 0
    out = []

    def job(i):
        async def run():
            nonlocal pending, peak
            pending += 1
            peak = max(peak, pending)
            await trio.sleep((7 * i) % 5)  # finish out of order
            return i

        return run

    async def consume(value):
        nonlocal pending
        pending -= 1
        out.append(value)

    await run_ordered((job(i) for i in range(20)), consume, limit=limit)
    assert out == list(range(20))
    assert peak <= limit
    if limit > 1:
        assert peak > 1  # it really overlaps


async def test_async_job_source_and_error_propagation():
    async def jobs():
        for i in range(3):
            async def run(i=i):
                if i == 2:
                    raise ValueError("boom")
                return i
            yield run

    seen = []

    async def consume(v):
        seen.append(v)

    with pytest.raises(ValueError, match="boom"):  # the job's own error, not a group around it
        await run_ordered(jobs(), consume, limit=2)
    assert seen == [0, 1][: len(seen)]  # an in-order prefix; the failed job is never consumed
