"""The sans-I/O step scheduler: one per party, no sockets, no trio.

The actor tells the scheduler every move it makes or observes:

* :meth:`StepScheduler.begin_step` before it starts a step: refused unless the
  previous step is complete and every deletion the table requires has been proven;
* :meth:`StepScheduler.outgoing` for each message it is about to send: returns the
  envelope (with the right step and sequence number) or raises :class:`StepOrderError`;
* :meth:`StepScheduler.incoming` for each envelope that arrives: raises
  :class:`PeerProtocolError` if the peer's move is illegal here;
* :meth:`StepScheduler.created` / :meth:`StepScheduler.destroyed` for secrets;
* :meth:`StepScheduler.finish` at the end, refused while any secret is alive;
* :meth:`StepScheduler.fail` when the party stops for any other reason.

:meth:`StepScheduler.link` gives the per-peer view (:class:`PeerSession`) the actor
uses: typed messages in, envelopes out, the abort envelope.

Any refused move puts the scheduler in the terminal ``ERROR`` state, in which every
further call raises, so a half-failed party cannot carry on by accident. A refused
move changes nothing else (tests check this).
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..errors import PeerProtocolError, StepOrderError
from . import messages as msg
from .steps import STEP_NAMES, Flow, MessageRule, Step, StepTable
from .wire import Envelope

__all__ = ["ERROR", "PeerSession", "StepScheduler"]

M = TypeVar("M", bound=msg.Message)

#: The terminal error state.
ERROR = -1
_NOT_STARTED = 0


class StepScheduler:
    """Tracks one party's position in the protocol and refuses illegal moves."""

    def __init__(
        self, role: str, session: bytes, *, table: StepTable | None = None, last_step: Step = Step.ANALYSIS
    ) -> None:
        self.table = table if table is not None else StepTable()
        if role not in self.table.roster.members:
            raise ValueError(f"unknown role {role!r}")
        self.role = role
        self.session = session
        self.step: int = _NOT_STARTED
        self.error: BaseException | None = None
        # a run without step 8 still ends with the confirmation
        self._steps = self.table.steps_of(role, last_step=last_step)
        self._requires_deleted = self.table.requires_deleted(role)
        self._created: set[str] = set()
        self._deleted: set[str] = set()
        self._seq_out: dict[str, int] = {}
        self._seq_in: dict[str, int] = {}
        self._reset_step_progress()

    # ---- state ------------------------------------------------------------------
    @property
    def state(self) -> str:
        if self.step == ERROR:
            return "ERROR"
        if self.step == Step.DONE:
            return "DONE"
        if self.step == _NOT_STARTED:
            return "NOT_STARTED"
        return f"STEP_{self.step}"

    @property
    def alive_secrets(self) -> frozenset[str]:
        return frozenset(self._created - self._deleted)

    def _reset_step_progress(self) -> None:
        # (direction, peer, kind) -> count of messages; "ended" for closed streams
        self._count: dict[tuple[str, str, str], int] = {}
        self._ended: set[tuple[str, str, str]] = set()

    def _fail(self, exc: BaseException) -> BaseException:
        self.step = ERROR
        self.error = exc
        return exc

    def _check_alive(self) -> None:
        if self.step == ERROR:
            raise StepOrderError(f"{self.role}: the protocol already failed ({self.error})")
        if self.step == Step.DONE:
            raise StepOrderError(f"{self.role}: the protocol is already done")

    # ---- steps ------------------------------------------------------------------
    def _next_step(self) -> int:
        if self.step == _NOT_STARTED:
            return self._steps[0]
        later = [s for s in self._steps if s > self.step]
        return later[0] if later else Step.DONE

    def step_complete(self) -> bool:
        """True when every single message and stream of the current step is through.

        ``ROUNDS`` flows (MPC) have no count; their step ends when the computation
        does, which the actor signals by calling :meth:`begin_step` or :meth:`finish`.
        """
        if self.step in (_NOT_STARTED, ERROR, Step.DONE):
            return self.step != ERROR
        for direction, rules in (
            ("out", self.table.messages_for(self.step, sender=self.role)),
            ("in", self.table.messages_for(self.step, receiver=self.role)),
        ):
            for rule in rules:
                peer = rule.receiver if direction == "out" else rule.sender
                key = (direction, peer, rule.kind)
                if rule.flow is Flow.SINGLE and self._count.get(key, 0) != 1:
                    return False
                if rule.flow is Flow.STREAM and key not in self._ended:
                    return False
        return True

    def begin_step(self, step: int) -> None:
        """Enter ``step``. Raises :class:`StepOrderError` if that is not legal now."""
        self._check_alive()
        expected = self._next_step()
        if step != expected:
            raise self._fail(StepOrderError(f"{self.role}: cannot begin step {step}; the next step is {expected}"))
        if not self.step_complete():
            raise self._fail(StepOrderError(f"{self.role}: step {self.step} is not complete"))
        missing = self._requires_deleted.get(Step(step), frozenset()) - self._deleted
        if step == Step.DONE:
            missing = missing | (self._created - self._deleted)
        if missing:
            raise self._fail(
                StepOrderError(
                    f"{self.role}: cannot begin {'the end' if step == Step.DONE else f'step {step}'} "
                    f"before deleting {', '.join(sorted(missing))}"
                )
            )
        self.step = step
        self._reset_step_progress()

    def finish(self) -> None:
        """Move to ``DONE``: the last step is complete and no secret is alive."""
        self.begin_step(Step.DONE)

    def fail(self, exc: BaseException) -> None:
        """Move to ``ERROR`` because the party stopped (its own error, a peer's, a timeout).

        Idempotent, and a no-op once the run is ``DONE``.
        """
        if self.step not in (ERROR, Step.DONE):
            self._fail(exc)

    # ---- secrets ----------------------------------------------------------------
    def created(self, name: str) -> None:
        """Record that the secret ``name`` now exists."""
        self._check_alive()
        self._created.add(name)
        self._deleted.discard(name)

    def destroyed(self, name: str, *objects: Any) -> None:
        """Record that ``name`` was destroyed; each object given must report ``destroyed``.

        Passing the key objects makes the proof concrete: a key whose ``destroy()`` was
        not called (or did not take) is refused, and the run fails.
        """
        for obj in objects:
            if obj is not None and not getattr(obj, "destroyed", False):
                raise self._fail(StepOrderError(f"{self.role}: {name} was reported deleted but is still alive"))
        self._deleted.add(name)

    # ---- messages ---------------------------------------------------------------
    def _rule(self, step: int, sender: str, receiver: str, kind: str) -> MessageRule | None:
        base = kind[: -len("_end")] if kind.endswith("_end") else kind
        for rule in self.table.messages_for(step, sender=sender, receiver=receiver):
            if rule.kind == kind or (rule.flow is Flow.STREAM and rule.kind == base):
                return rule
        return None

    def _advance(self, direction: str, peer: str, kind: str, error_type: type[Exception]) -> None:
        if kind == "abort":
            return
        sender, receiver = (self.role, peer) if direction == "out" else (peer, self.role)
        rule = self._rule(self.step, sender, receiver, kind)
        if rule is None:
            raise self._fail(
                error_type(f"{sender} -> {receiver}: message {kind!r} is not legal at step {self.step} ({self.state})")
            )
        key = (direction, peer, rule.kind)
        if key in self._ended:
            raise self._fail(error_type(f"{sender} -> {receiver}: {kind!r} after the {rule.kind} stream ended"))
        if rule.flow is Flow.SINGLE and self._count.get(key, 0) >= 1:
            raise self._fail(error_type(f"{sender} -> {receiver}: a second {kind!r} message at step {self.step}"))
        self._count[key] = self._count.get(key, 0) + 1
        if rule.flow is Flow.STREAM and kind.endswith("_end"):
            self._ended.add(key)

    def outgoing(self, receiver: str, kind: str, body: dict[str, Any]) -> Envelope:
        """Validate a move of ours and wrap it in an envelope."""
        self._check_alive()
        self._advance("out", receiver, kind, StepOrderError)
        seq = self._seq_out.get(receiver, 0)
        self._seq_out[receiver] = seq + 1
        return Envelope(self.session, self.step, self.role, seq, kind, body)

    def abort_envelope(self, receiver: str, reason: str, step: int) -> Envelope:
        """The ``abort`` envelope for ``receiver``: legal in any state, ``ERROR`` included."""
        seq = self._seq_out.get(receiver, 0)
        self._seq_out[receiver] = seq + 1
        return Envelope(self.session, step, self.role, seq, "abort", msg.Abort(reason[: msg.MAX_REASON]).body())

    def link(self, peer: str) -> PeerSession:
        """The per-peer view of this scheduler (see :class:`PeerSession`)."""
        if peer == self.role or peer not in self.table.roster.members:
            raise ValueError(f"{peer!r} is not a peer of {self.role}")
        return PeerSession(self, peer)

    def incoming(self, envelope: Envelope) -> Envelope:
        """Validate a peer's move. Raises :class:`PeerProtocolError` if it is illegal."""
        if self.step == ERROR:
            raise StepOrderError(f"{self.role}: the protocol already failed ({self.error})")
        sender = envelope.sender
        if sender == self.role or sender not in self.table.roster.members:
            raise self._fail(PeerProtocolError(f"message claims to come from {sender!r}"))
        if envelope.session != self.session:
            raise self._fail(PeerProtocolError(f"{sender} sent a message from another session"))
        expected_seq = self._seq_in.get(sender, 0)
        if envelope.seq != expected_seq:
            raise self._fail(
                PeerProtocolError(
                    f"{sender} sent message number {envelope.seq} where {expected_seq} was expected "
                    "(duplicated, dropped or reordered)"
                )
            )
        if envelope.kind == "abort":
            self._seq_in[sender] = expected_seq + 1
            return envelope
        if envelope.step != self.step:
            raise self._fail(
                PeerProtocolError(
                    f"{sender} sent {envelope.kind!r} for step {envelope.step} while {self.role} is at step {self.step}"
                )
            )
        self._advance("in", sender, envelope.kind, PeerProtocolError)
        self._seq_in[sender] = expected_seq + 1
        return envelope


class PeerSession:
    """One peer link's protocol, without I/O: typed messages in, envelopes out.

    Every move goes through the scheduler, so the step table, sequence numbers and
    session binding are checked in one place; this object adds parsing and the
    check that the message is the one the actor waits for.
    """

    def __init__(self, scheduler: StepScheduler, peer: str) -> None:
        self.scheduler = scheduler
        self.peer = peer

    def send(self, message: msg.Message) -> Envelope:
        """The envelope for our ``message``; :class:`StepOrderError` if it is not legal now."""
        return self.scheduler.outgoing(self.peer, message.kind, message.body())

    def receive(self, envelope: Envelope, expected: type[M] | tuple[type[M], ...]) -> M:
        """The peer's message in ``envelope``, which must be legal now and of an ``expected`` type.

        Raises:
            PeerProtocolError: naming this party, the step and what was wrong.
        """
        scheduler = self.scheduler
        step = scheduler.step
        try:
            scheduler.incoming(envelope)
            message = msg.parse(envelope)
        except PeerProtocolError as exc:  # the scheduler's words lack who noticed, and when
            raise PeerProtocolError(f"{scheduler.role}: at step {step} ({STEP_NAMES.get(step, step)}): {exc}") from None
        if not isinstance(message, expected):
            wanted = expected if isinstance(expected, tuple) else (expected,)
            raise PeerProtocolError(
                f"{self.peer} sent {message.kind!r} at step {envelope.step} where {wanted[0].kind!r} was expected"
            )
        return message

    def abort(self, reason: str, step: int) -> Envelope:
        """The ``abort`` envelope telling the peer why we stopped (best effort, any state)."""
        return self.scheduler.abort_envelope(self.peer, reason, step)
