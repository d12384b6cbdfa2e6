"""Protocol rules that judge public values (no I/O, no state)."""

from __future__ import annotations

from ..errors import IntersectionTooSmall, PeerProtocolError

__all__ = ["check_intersection"]


def check_intersection(m: int, rows: int, minimum: int, role: str) -> None:
    """Step 4: every party checks the intersection size ``m`` against what it knows.

    Raises:
        PeerProtocolError: ``m`` exceeds the ``rows`` a data party sent (a lying or
            corrupt TTP: step 5 would build ``m`` mask rows, unbounded).
        IntersectionTooSmall: ``m`` is below ``min_intersection``; every party stops.
    """
    if m > rows:
        raise PeerProtocolError(
            f"{role}: at step 4 ttp announced an intersection of {m} rows, more than the {rows} rows sent"
        )
    if m < minimum:
        raise IntersectionTooSmall(
            f"{role}: the intersection has {m} rows, below the minimum of {minimum}; "
            "every party stops and nothing is computed"
        )
