"""The eight-step protocol as data: every legal message and every deletion rule.

Step 9 (``confirm``) is ours, not the paper's: once every secret is destroyed, each
party sends both peers a digest of what it computed (:class:`~.messages.Done`) and
returns its result only when both peers' digests arrived and match. A fault anywhere
in steps 1 to 8 therefore leaves no party with a result, and the three results that
are written are known to be the same. No finite exchange can close the last window
(the two generals): a fault in a step-9 message itself can still leave one party
failing while the others finish (``docs/threat-model.md``).

Rule 1 (after h11's ``_state.py``): everything that decides whether a protocol move
is legal lives in this file. The scheduler (:mod:`.scheduler`) only interprets these
tables, and ``docs/protocol.md``'s diagram is generated from them
(``python -m mpcactors.protocol.diagram``).

Rule 2: a message is identified by ``(step, sender, receiver, kind)``. A *single*
message must arrive exactly once in its step. A *stream* (bulk rows) is any number of
``kind`` messages closed by exactly one ``kind + "_end"``. *Rounds* (MPC traffic) is any
number of ``kind`` messages; the step ends when the local computation says so.

Rule 3: deletion is a precondition, not a promise. :data:`REQUIRES_DELETED` lists, per
role, what must have been destroyed (and proven destroyed) before a step may begin;
``DONE`` is the final "step".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "CONFIRM",
    "DONE",
    "HOSPITAL",
    "INSURER",
    "MESSAGES",
    "REQUIRES_DELETED",
    "ROLES",
    "STEP_NAMES",
    "TTP",
    "Flow",
    "MessageRule",
    "messages_for",
]

HOSPITAL, INSURER, TTP = "hospital", "insurer", "ttp"
ROLES = (HOSPITAL, INSURER, TTP)
#: The end-of-run agreement (not in the paper): digests of the outcome, all pairs.
CONFIRM = 9
#: The pseudo-step after the confirmation: the run is over.
DONE = 10

STEP_NAMES = {
    1: "prepare",
    2: "keyed hashing",
    3: "encrypt",
    4: "intersect",
    5: "masks",
    6: "mask and forward",
    7: "to Shamir",
    8: "secure lasso",
    CONFIRM: "confirm",
    DONE: "done",
}


class Flow(Enum):
    SINGLE = "single"
    STREAM = "stream"
    ROUNDS = "rounds"


@dataclass(frozen=True, slots=True)
class MessageRule:
    step: int
    sender: str
    receiver: str
    kind: str
    flow: Flow


def _both(step: int, kind: str, flow: Flow, *pairs: tuple[str, str]) -> list[MessageRule]:
    return [MessageRule(step, s, r, kind, flow) for s, r in pairs]


_H_I = ((HOSPITAL, INSURER), (INSURER, HOSPITAL))
_TO_T = ((HOSPITAL, TTP), (INSURER, TTP))
_FROM_T = ((TTP, HOSPITAL), (TTP, INSURER))
_ALL_PAIRS = tuple((a, b) for a in ROLES for b in ROLES if a != b)

#: Every legal message of the protocol. ``abort`` is legal at any step from anyone.
MESSAGES: tuple[MessageRule, ...] = tuple(
    _both(2, "hash_contribution", Flow.SINGLE, *_H_I)
    + _both(3, "public_key", Flow.SINGLE, *_H_I)
    + _both(4, "public_key", Flow.SINGLE, *_TO_T)
    + _both(4, "rows", Flow.STREAM, *_TO_T)
    + _both(4, "intersection", Flow.SINGLE, *_FROM_T)
    + _both(5, "masks", Flow.STREAM, *_TO_T)
    + _both(6, "masked", Flow.STREAM, *_FROM_T)
    + _both(7, "mpc", Flow.ROUNDS, *_ALL_PAIRS)
    + _both(8, "mpc", Flow.ROUNDS, *_ALL_PAIRS)
    + _both(CONFIRM, "done", Flow.SINGLE, *_ALL_PAIRS)
)

#: What each role must have destroyed before it may begin a step. The names are the
#: secrets the actors create: ``hash_key`` (step 2's joint HMAC key), ``paillier_secret``
#: (step 3's secret key), ``hashed_ids`` (the TTP's copy of both hashed id columns),
#: ``additive_shares`` (step 6's integer shares), ``shamir_shares`` and ``mpc_state``
#: (step 7-8 shares, PRSS keys and randomness). Everything dies before the confirmation,
#: so a party that never hears its peers' digests has nothing left to delete.
REQUIRES_DELETED: dict[str, dict[int, frozenset[str]]] = {
    HOSPITAL: {
        3: frozenset({"hash_key"}),
        7: frozenset({"paillier_secret"}),
        8: frozenset({"additive_shares"}),
        CONFIRM: frozenset({"shamir_shares", "mpc_state"}),
    },
    INSURER: {
        3: frozenset({"hash_key"}),
        7: frozenset({"paillier_secret"}),
        8: frozenset({"additive_shares"}),
        CONFIRM: frozenset({"shamir_shares", "mpc_state"}),
    },
    TTP: {
        5: frozenset({"hashed_ids"}),
        CONFIRM: frozenset({"shamir_shares", "mpc_state"}),
    },
}

#: The steps each role takes part in, in order (the TTP joins at step 4). Every run
#: ends with :data:`CONFIRM`, also a run without step 8 (``lasso = false``).
STEPS_OF: dict[str, tuple[int, ...]] = {
    HOSPITAL: (1, 2, 3, 4, 5, 6, 7, 8, CONFIRM),
    INSURER: (1, 2, 3, 4, 5, 6, 7, 8, CONFIRM),
    TTP: (4, 5, 6, 7, 8, CONFIRM),
}


def messages_for(step: int, *, sender: str | None = None, receiver: str | None = None) -> list[MessageRule]:
    """The rules of ``step``, optionally filtered by sender and/or receiver."""
    return [
        rule
        for rule in MESSAGES
        if rule.step == step
        and (sender is None or rule.sender == sender)
        and (receiver is None or rule.receiver == receiver)
    ]
