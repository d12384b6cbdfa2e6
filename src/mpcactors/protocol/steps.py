"""The protocol as data: its steps, every legal message, every secret and its lifetime.

Step 9 (``confirm``) is ours, not the paper's: once every secret is destroyed, each
party sends every peer a digest of what it computed (:class:`~.messages.Done`) and
returns its result only when all peers' digests arrived and match. A fault anywhere
in steps 1 to 8 therefore leaves no party with a result. No finite exchange can close
the last window (the two generals): a fault in a step-9 message itself can still leave
one party failing while the others finish (``docs/threat-model.md``).

Rule 1 (after h11's ``_state.py``): everything that decides whether a protocol move
is legal lives in this file. The rules name *groups* of parties (every data party, the
TTP, the compute parties); a :class:`StepTable` expands them for one
:class:`~.roster.Roster`. The scheduler only interprets a step table, and
``docs/protocol.md``'s diagram is generated from it.

Rule 2: a message is identified by ``(step, sender, receiver, kind)``. A *single*
message must arrive exactly once in its step. A *stream* (bulk rows) is any number of
``kind`` messages closed by exactly one ``kind + "_end"``. *Rounds* (MPC traffic) is any
number of ``kind`` messages; the step ends when the local computation says so.
``abort`` is legal at any step from anyone.

Rule 3: deletion is a precondition, not a promise. :data:`SECRETS` says which parties
create each secret, at which step, and before which step it must be gone; the
scheduler refuses to begin that step until the secret is proven destroyed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum

from .roster import TTP, Roster

__all__ = [
    "RULES",
    "SECRETS",
    "STEP_NAMES",
    "Flow",
    "Group",
    "MessageRule",
    "Rule",
    "Secret",
    "Step",
    "StepTable",
]


class Step(IntEnum):
    """The protocol's steps; the number is what envelopes carry."""

    PREPARE = 1
    KEYED_HASHING = 2
    ENCRYPT = 3
    INTERSECT = 4
    MASKS = 5
    MASK_AND_FORWARD = 6
    TO_SHAMIR = 7
    ANALYSIS = 8
    #: the end-of-run agreement (not in the paper): digests of the outcome, all pairs
    CONFIRM = 9
    #: the pseudo-step after the confirmation: the run is over
    DONE = 10

    @property
    def title(self) -> str:
        return _TITLES[self]

    @property
    def label(self) -> str:
        """``"step 4 (intersect)"``: how messages name a step."""
        return f"step {int(self)} ({self.title})"


_TITLES = {
    Step.PREPARE: "prepare",
    Step.KEYED_HASHING: "keyed hashing",
    Step.ENCRYPT: "encrypt",
    Step.INTERSECT: "intersect",
    Step.MASKS: "masks",
    Step.MASK_AND_FORWARD: "mask and forward",
    Step.TO_SHAMIR: "to Shamir",
    Step.ANALYSIS: "the plan's analyses",
    Step.CONFIRM: "confirm",
    Step.DONE: "done",
}
#: ``{step number: title}``, for reports and tables.
STEP_NAMES: dict[int, str] = {int(step): step.title for step in Step}


class Flow(Enum):
    SINGLE = "single"
    STREAM = "stream"
    ROUNDS = "rounds"


class Group(Enum):
    """A set of roster members that a rule or a secret names."""

    DATA = "every data party"
    TTP = "the TTP"
    COMPUTE = "the compute parties"
    #: data parties that deal their shares in step 7 and then only receive outputs
    OUTSIDE = "the data parties outside the computation"
    ANY = "every member"

    def members(self, roster: Roster) -> tuple[str, ...]:
        if self is Group.DATA:
            return roster.data_parties
        if self is Group.TTP:
            return (TTP,)
        if self is Group.COMPUTE:
            return tuple(m for m in roster.members if m in roster.compute_parties)
        if self is Group.OUTSIDE:
            return tuple(m for m in roster.data_parties if m not in roster.compute_parties)
        return roster.members


@dataclass(frozen=True, slots=True)
class Rule:
    """A legal message: ``kind`` from each of ``senders`` to each other of ``receivers`` at ``step``."""

    step: Step
    kind: str
    flow: Flow
    senders: Group
    receivers: Group


#: Every legal message of the protocol.
RULES: tuple[Rule, ...] = (
    Rule(Step.KEYED_HASHING, "hash_contribution", Flow.SINGLE, Group.DATA, Group.DATA),
    Rule(Step.ENCRYPT, "public_key", Flow.SINGLE, Group.DATA, Group.DATA),
    Rule(Step.INTERSECT, "public_key", Flow.SINGLE, Group.DATA, Group.TTP),
    Rule(Step.INTERSECT, "rows", Flow.STREAM, Group.DATA, Group.TTP),
    Rule(Step.INTERSECT, "intersection", Flow.SINGLE, Group.TTP, Group.DATA),
    Rule(Step.MASKS, "masks", Flow.STREAM, Group.DATA, Group.TTP),
    Rule(Step.MASK_AND_FORWARD, "masked", Flow.STREAM, Group.TTP, Group.DATA),
    Rule(Step.TO_SHAMIR, "mpc", Flow.ROUNDS, Group.COMPUTE, Group.COMPUTE),
    Rule(Step.TO_SHAMIR, "dealt", Flow.STREAM, Group.OUTSIDE, Group.COMPUTE),
    Rule(Step.ANALYSIS, "mpc", Flow.ROUNDS, Group.COMPUTE, Group.COMPUTE),
    Rule(Step.ANALYSIS, "delivered", Flow.SINGLE, Group.COMPUTE, Group.OUTSIDE),
    Rule(Step.CONFIRM, "done", Flow.SINGLE, Group.ANY, Group.ANY),
)


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret: who creates it, when, and the step that may not begin while it lives."""

    name: str
    holders: Group
    created: Step
    gone_before: Step
    description: str

    @property
    def last_step(self) -> int:
        """The last step during which a party following the protocol still holds it."""
        return int(self.gone_before) - 1


#: Every secret the parties create. Everything dies before the confirmation, so a
#: party that never hears its peers' digests has nothing left to delete.
SECRETS: tuple[Secret, ...] = (
    Secret("hash_key", Group.DATA, Step.KEYED_HASHING, Step.ENCRYPT, "the step-2 HMAC key"),
    Secret("paillier_secret", Group.DATA, Step.ENCRYPT, Step.TO_SHAMIR, "its Paillier secret key"),
    Secret("hashed_ids", Group.TTP, Step.INTERSECT, Step.MASKS, "the data parties' hashed id columns"),
    Secret("additive_shares", Group.DATA, Step.MASK_AND_FORWARD, Step.ANALYSIS, "its additive share of the joined table"),
    Secret("shamir_shares", Group.COMPUTE, Step.TO_SHAMIR, Step.CONFIRM, "its Shamir share of the joined table"),
    Secret("mpc_state", Group.COMPUTE, Step.TO_SHAMIR, Step.CONFIRM, "MPC randomness keys (pseudo-random sharing)"),
)

#: The steps each group takes part in: data parties from step 1, the TTP from step 4.
_FIRST_STEP = {Group.DATA: Step.PREPARE, Group.TTP: Step.INTERSECT}


@dataclass(frozen=True, slots=True)
class MessageRule:
    """One rule expanded for a roster: ``kind`` from ``sender`` to ``receiver`` at ``step``."""

    step: Step
    sender: str
    receiver: str
    kind: str
    flow: Flow


@dataclass(frozen=True)
class StepTable:
    """The rules and secrets of :data:`RULES` and :data:`SECRETS` for one roster (a value)."""

    roster: Roster = field(default_factory=Roster)
    #: every legal message, in rule order and roster order within a rule
    messages: tuple[MessageRule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        roster = self.roster
        messages = tuple(
            MessageRule(rule.step, sender, receiver, rule.kind, rule.flow)
            for rule in RULES
            for sender in rule.senders.members(roster)
            for receiver in rule.receivers.members(roster)
            if sender != receiver
        )
        object.__setattr__(self, "messages", messages)

    def messages_for(self, step: int, *, sender: str | None = None, receiver: str | None = None) -> list[MessageRule]:
        """The rules of ``step``, optionally filtered by sender and/or receiver."""
        return [
            rule
            for rule in self.messages
            if rule.step == step
            and (sender is None or rule.sender == sender)
            and (receiver is None or rule.receiver == receiver)
        ]

    def secrets_of(self, party: str) -> tuple[Secret, ...]:
        """The secrets ``party`` creates during a run."""
        return tuple(s for s in SECRETS if party in s.holders.members(self.roster))

    def requires_deleted(self, party: str) -> dict[Step, frozenset[str]]:
        """What ``party`` must have destroyed before it may begin each step."""
        out: dict[Step, set[str]] = {}
        for secret in self.secrets_of(party):
            out.setdefault(secret.gone_before, set()).add(secret.name)
        return {step: frozenset(names) for step, names in sorted(out.items())}

    def steps_of(self, party: str, *, last_step: Step = Step.ANALYSIS) -> tuple[Step, ...]:
        """The steps ``party`` takes, in order. Every run ends with :attr:`Step.CONFIRM`,
        also one that stops before step 8 (``last_step = Step.TO_SHAMIR``)."""
        first = _FIRST_STEP[Group.DATA if self.roster.is_data_party(party) else Group.TTP]
        return tuple(s for s in Step if first <= s <= last_step) + (Step.CONFIRM,)
