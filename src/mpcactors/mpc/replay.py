"""Decoding outputs without the computation: an engine that replays delivered openings.

A data party outside the three compute parties receives, for each analysis it is a
recipient of, the values of every reveal (step 8, :class:`~mpcactors.protocol.messages.Delivered`).
To turn them into the analysis's result it runs the analysis program itself on a
:class:`ReplayEngine`: every round is answered with zeros at once, and every reveal
returns the next delivered values. The engine's rule (control flow and results depend
only on public values and revealed values) makes the program's result the one the
compute parties got; the replay checks that the program asks for exactly the delivered
reveals, in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any

from ..crypto.fixedpoint import Params
from ..errors import PeerProtocolError
from .engine import Engine, Exchange, Program

__all__ = ["ReplayEngine", "replay"]

#: The TTP's engine index: a party that owns no column, so a program asks it for no input.
_PARTY = 3


class ReplayEngine(Engine):
    """An engine without peers that returns ``delivered`` from its reveals, in order."""

    def __init__(self, params: Params, delivered: Iterable[tuple[str, Sequence[int]]]) -> None:
        super().__init__(_PARTY, params, rng_seed_material=b"replay")
        self._keys = {peer: bytes(16) for peer in self.peers}
        self._delivered = deque((label, list(values)) for label, values in delivered)

    def _exchange(
        self, send: Mapping[int, list[int]], expect: Mapping[int, int], label: str
    ) -> Generator[Exchange, dict[int, list[int]], dict[int, list[int]]]:
        return {peer: [0] * n for peer, n in expect.items()}
        yield  # a generator that never yields: the round completes at once

    def reveal(self, a: Sequence[int], label: str) -> Program[list[int]]:
        if not self._delivered:
            raise PeerProtocolError(f"the compute parties delivered fewer openings than the analysis makes ({label!r} missing)")
        got, values = self._delivered.popleft()
        if got != label or len(values) != len(a):
            raise PeerProtocolError(
                f"the compute parties delivered {len(values)} values labelled {got!r} where the analysis "
                f"opens {len(a)} labelled {label!r}"
            )
        self.revealed.append((label, len(a)))
        return values
        yield  # noqa: B901  (a program, like Engine.reveal)

    @property
    def exhausted(self) -> bool:
        return not self._delivered


def replay(program: Program[Any], engine: ReplayEngine) -> Any:
    """Run ``program`` (built on ``engine``) to its result; every delivered opening must be used."""
    try:
        next(program)
    except StopIteration as stop:
        if not engine.exhausted:
            raise PeerProtocolError("the compute parties delivered more openings than the analysis makes") from None
        return stop.value
    raise AssertionError("a replayed program yielded a round")  # _exchange never yields
