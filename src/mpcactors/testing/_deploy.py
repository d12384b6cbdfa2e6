"""Every member of a deployment as a daemon, in one process (tests and scripts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio


async def run_deployment(configs: Mapping[str, Any], *, timeout: float = 300.0) -> dict[str, Any]:
    """Run :func:`mpcactors.daemon.run_configured_party` for every member's loaded config
    at once (by role), as the members' daemons would; their results by role.

    Raises:
        trio.TooSlowError: the run took longer than ``timeout`` seconds.
    """
    from ..daemon import run_configured_party

    results: dict[str, Any] = {}

    async def one(role: str) -> None:
        results[role] = await run_configured_party(configs[role])

    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            for role in configs:
                nursery.start_soon(one, role)
    return results
