"""The seams of a run: what an observer sees, and the choices a variant may change.

An :class:`Observer` (simulation only: the god view, leak analysis, fault injection)
is told what a party holds and when, by the names of :class:`Held`. :class:`Hooks`
are the protocol's random and combining choices as values, so the analysis's
deliberately broken variants replace a hook instead of patching module globals; the
defaults are the protocol.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Generator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from ..crypto.fixedpoint import Params
from ..crypto.paillier import mask_and_rerandomise

__all__ = ["DEFAULT_HOOKS", "Held", "Hooks", "Observer", "mask_and_rerandomise"]


class Held(StrEnum):
    """What a party holds at some point of a run, as an observer is told it."""

    INPUT = "input"
    HASHED_IDS = "hashed_ids"
    PUBLIC_KEYS = "public_keys"
    OWN_CIPHERTEXTS = "own_ciphertexts"
    INTERSECTION_SIZE = "intersection_size"
    ROW_PAIRS = "row_pairs"
    MASKS = "masks"
    MASKED_VALUES = "masked_values"
    ADDITIVE_SHARES = "additive_shares"
    SHAMIR_SHARES = "shamir_shares"
    RESULT = "result"


class Observer(Protocol):
    """Simulation-only hooks (god view, leak analysis).

    An observer is handed to one party's actor and sees only what that party holds:
    in a deployment each daemon has at most its own. It must keep only weak
    references to key objects, or it would itself keep a deleted key alive.
    """

    def hold(self, role: str, step: int, name: str, value: Any) -> None: ...

    def key_created(self, role: str, name: str, key: Any) -> None: ...

    def key_destroyed(self, role: str, name: str, key: Any) -> None: ...


def _shuffle(items: list[Any]) -> None:
    secrets.SystemRandom().shuffle(items)


def _draw_masks(params: Params, count: int) -> list[int]:
    return params.masks(count)


def _no_retention(role: str, name: str, key: Any) -> None:
    return None


def _as_planned(role: str, analysis: str, engine: Any, program: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    return program


@dataclass(frozen=True, slots=True)
class Hooks:
    """The protocol's choices, one value each; the defaults are the protocol.

    Attributes:
        shuffle: shuffles a list in place (step 1's row order, step 4's joined order).
        draw_masks: ``draw_masks(params, count)``: one row of step-5 masks.
        combine: the TTP's step-6 combination ``combine(public_wire, own, masks)``, with one
            list of encrypted masks per other data party; it runs on the executor, so
            under the ``process`` policy it must be picklable.
        before_destroy: ``before_destroy(role, name, key)`` is called just before a
            key object is destroyed (the protocol does nothing there).
        at_step: ``at_step(role, step)`` is called as each step begins (fault injection).
        program: ``program(role, analysis, engine, program)`` returns the MPC program a
            compute party runs on ``engine`` for one analysis of the plan in step 8 (the
            plan's, unchanged; a test wraps it to attempt an opening the manifest does
            not list).
    """

    shuffle: Callable[[list[Any]], None] = _shuffle
    draw_masks: Callable[[Params, int], list[int]] = _draw_masks
    combine: Callable[[dict[str, int], list[int], list[list[int]]], list[int]] = mask_and_rerandomise
    before_destroy: Callable[[str, str, Any], None] = _no_retention
    at_step: Callable[[str, int], None] | None = None
    program: Callable[[str, str, Any, Generator[Any, Any, Any]], Generator[Any, Any, Any]] = _as_planned


DEFAULT_HOOKS = Hooks()
