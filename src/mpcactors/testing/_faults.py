"""Fault injection: runs of the three parties in which one thing goes wrong, on purpose.

A fault plan is applied to one party's links (and, for a crash during a step without
traffic, to its observer hook). Each fault fires at most once, at the n-th message of a
given kind, step and direction, so a test names exactly what goes wrong and where.
The wrapped links are ordinary ``trio.abc.Channel[Envelope]`` objects: the actors do not
know they are being tested.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from typing import Any

import trio

from ..actors.failures import first_cause
from ..actors import run_party
from ..protocol.wire import Envelope
from ..sim import tables_by_party
from ..config import RunConfig
from ..transport.memory import memory_mesh


#: Every fault class a :class:`Fault` can inject.
FAULT_ACTIONS = ("kill", "drop", "delay", "duplicate", "reorder", "wrong_kind", "wrong_session")
#: Hostile-input actions (for fuzzing): raw bytes on the wire, or a rewritten envelope.
HOSTILE_ACTIONS = ("garbage", "tamper")


class InjectedCrash(RuntimeError):
    """A party crashed (test-only): raised *inside* the party by a ``kill`` fault.

    A crash is not an :class:`~mpcactors.errors.MpcactorsError`: from the party's point
    of view it is an unexpected failure (the command line's exit code 1), while its
    peers must see a clean :class:`~mpcactors.errors.AbortedError`.
    """


@dataclasses.dataclass(frozen=True)
class Fault:
    """One fault: what goes wrong, at which party, step and message.

    Attributes:
        action: one of :data:`FAULT_ACTIONS`:

            * ``kill``: raise :class:`InjectedCrash` inside the party (in its main task
              when it sends, in its reader task when it receives, or when it reports
              holding something with ``direction="local"``, for steps without traffic);
            * ``drop``: close the link (both directions) instead of moving the message;
            * ``delay``: hold the message for ``delay`` seconds (past the step deadline);
            * ``duplicate``: deliver the message twice;
            * ``reorder``: deliver the *next* message on the link before this one;
            * ``wrong_kind``: change the envelope's kind to one that is illegal here;
            * ``wrong_session``: change the envelope's session id to a fresh random one;
            * ``garbage`` (send only, over an :class:`~mpcactors.transport.base.EnvelopeChannel`):
              put ``payload`` on the wire instead of the encoded envelope;
            * ``tamper``: replace the envelope by ``tamper(envelope)`` (e.g. a hostile body
              under a valid header, to reach the checks behind the scheduler).
        party: the role whose links carry the fault.
        step: the envelope step (or, for ``direction="local"``, the party's step).
        kind: the message kind to match (``None``: any kind except ``abort``).
        peer: the link to match (``None``: any of the party's links).
        direction: ``"send"`` (a message the party sends), ``"receive"`` (one it
            receives) or ``"local"`` (``kill`` only: the party's own work at ``step``).
        nth: fire at the n-th matching message (1-based).
        delay: seconds a ``delay`` fault holds the message.
        payload: the bytes a ``garbage`` fault sends.
        tamper: the rewrite a ``tamper`` fault applies.
    """

    action: str
    party: str
    step: int
    kind: str | None = None
    peer: str | None = None
    direction: str = "send"
    nth: int = 1
    delay: float = 3600.0
    payload: bytes = b""
    tamper: Any = None

    def __post_init__(self) -> None:
        if self.action not in FAULT_ACTIONS + HOSTILE_ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; choose from {FAULT_ACTIONS + HOSTILE_ACTIONS}")
        if self.action == "garbage" and self.direction != "send":
            raise ValueError("garbage is injected on the sending side (it replaces the encoded bytes)")
        if self.action == "tamper" and not callable(self.tamper):
            raise ValueError("a tamper fault needs tamper=callable(envelope) -> envelope")
        if self.direction not in ("send", "receive", "local"):
            raise ValueError(f"direction must be 'send', 'receive' or 'local', got {self.direction!r}")
        if self.direction == "local" and self.action != "kill":
            raise ValueError("only a kill can be injected into a party's local work")
        if self.nth < 1:
            raise ValueError("nth counts from 1")

    def describe(self) -> str:
        what = self.kind or "any message"
        where = "its own work" if self.direction == "local" else (
            f"{what} #{self.nth} {'to' if self.direction == 'send' else 'from'} {self.peer or 'any peer'}"
        )
        return f"{self.action} at {self.party}, step {self.step}, {where}"


class _Trigger:
    """Counts the messages that match one fault across a party's links; fires once."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.seen = 0
        self.fired: str | None = None

    def hit(self, direction: str, peer: str, envelope: Envelope) -> bool:
        f = self.fault
        if self.fired is not None or direction != f.direction or envelope.kind == "abort":
            return False
        if envelope.step != f.step or (f.kind is not None and envelope.kind != f.kind):
            return False
        if f.peer is not None and peer != f.peer:
            return False
        self.seen += 1
        if self.seen != f.nth:
            return False
        self.fired = f"{f.action} at {f.party}, step {envelope.step}, {envelope.kind} seq {envelope.seq} " + (
            f"to {peer}" if direction == "send" else f"from {peer}"
        )
        return True


def _wrong_kind(kind: str) -> str:
    """A real message kind that is illegal wherever ``kind`` was legal."""
    return "masked" if kind == "mpc" else "mpc"


def _corrupt(action: str, envelope: Envelope) -> Envelope:
    if action == "wrong_kind":
        return dataclasses.replace(envelope, kind=_wrong_kind(envelope.kind))
    fresh = secrets.token_bytes(len(envelope.session))
    return dataclasses.replace(envelope, session=fresh)


class FaultyChannel(trio.abc.Channel[Envelope]):
    """Wraps one party's link to one peer and injects the faults of a plan (tests only).

    Works around any ``trio.abc.Channel[Envelope]`` (the in-memory and TLS transports
    alike). ``abort`` messages always pass untouched, so the party's clean-up path is
    exercised as it would run in production. ``statistics()`` is forwarded.
    """

    def __init__(self, inner: trio.abc.Channel[Envelope], *, local: str, peer: str, triggers: Sequence[_Trigger]) -> None:
        self.inner = inner
        self.local = local
        self.peer = peer
        self._triggers = list(triggers)
        self._held_out: Envelope | None = None  # reorder on send: waits for the next message
        self._pending_in: list[Envelope] = []  # duplicate/reorder on receive: delivered next

    def statistics(self) -> object:
        return self.inner.statistics()  # type: ignore[attr-defined]

    def _fired(self, direction: str, envelope: Envelope) -> Fault | None:
        for trigger in self._triggers:
            if trigger.hit(direction, self.peer, envelope):
                return trigger.fault
        return None

    def _crash(self, fault: Fault, envelope: Envelope, verb: str) -> InjectedCrash:
        return InjectedCrash(
            f"{self.local}: injected crash at step {envelope.step} while {verb} {envelope.kind!r} "
            f"{'to' if verb == 'sending' else 'from'} {self.peer}"
        )

    async def send(self, value: Envelope) -> None:
        fault = self._fired("send", value)
        if fault is None:
            await self.inner.send(value)
            if self._held_out is not None and value.kind != "abort":
                held, self._held_out = self._held_out, None
                await self.inner.send(held)
            return
        action = fault.action
        if action == "kill":
            raise self._crash(fault, value, "sending")
        if action == "drop":
            await self.inner.aclose()
            await self.inner.send(value)  # the transport reports the broken link
        elif action == "delay":
            await trio.sleep(fault.delay)
            await self.inner.send(value)
        elif action == "duplicate":
            await self.inner.send(value)
            await self.inner.send(value)
        elif action == "reorder":
            self._held_out = value
        elif action == "garbage":
            await self.inner._send_bytes(fault.payload)  # type: ignore[attr-defined]
        elif action == "tamper":
            await self.inner.send(fault.tamper(value))
        else:
            await self.inner.send(_corrupt(action, value))

    async def receive(self) -> Envelope:
        if self._pending_in:
            return self._pending_in.pop(0)
        value = await self.inner.receive()
        fault = self._fired("receive", value)
        if fault is None:
            return value
        action = fault.action
        if action == "kill":
            raise self._crash(fault, value, "receiving")
        if action == "drop":
            await self.inner.aclose()
            return await self.inner.receive()  # the transport reports the broken link
        if action == "delay":
            await trio.sleep(fault.delay)
            return value
        if action == "duplicate":
            self._pending_in.append(value)
            return value
        if action == "reorder":
            later = await self.inner.receive()
            self._pending_in.append(value)
            return later
        if action == "tamper":
            return fault.tamper(value)  # type: ignore[no-any-return]
        return _corrupt(action, value)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _CrashingObserver:
    """Forwards to an observer; raises :class:`InjectedCrash` for ``direction="local"`` kills."""

    def __init__(self, inner: object | None, triggers: Sequence[_Trigger]) -> None:
        self.inner = inner
        self._triggers = [t for t in triggers if t.fault.direction == "local"]

    def hold(self, role: str, step: int, name: str, value: object) -> None:
        if self.inner is not None:
            self.inner.hold(role, step, name, value)  # type: ignore[attr-defined]
        for trigger in self._triggers:
            f = trigger.fault
            if trigger.fired is None and role == f.party and step == f.step:
                trigger.seen += 1
                if trigger.seen == f.nth:
                    trigger.fired = f"kill at {role}, step {step}, during its own work"
                    raise InjectedCrash(f"{role}: injected crash at step {step} while holding {name}")

    def key_created(self, role: str, name: str, key: object) -> None:
        if self.inner is not None:
            self.inner.key_created(role, name, key)  # type: ignore[attr-defined]

    def key_destroyed(self, role: str, name: str, key: object) -> None:
        if self.inner is not None:
            self.inner.key_destroyed(role, name, key)  # type: ignore[attr-defined]


class Faults:
    """A fault plan: a few :class:`Fault` objects, and the means to apply them.

    ``wrap(role, peer, link)`` returns the link itself for unaffected parties, or a
    :class:`FaultyChannel`; ``fired`` lists what actually happened (a test should
    check that its fault fired, or it would pass without testing anything).
    """

    def __init__(self, *faults: Fault) -> None:
        self.faults = tuple(faults)
        self._triggers = [_Trigger(f) for f in faults]

    @property
    def fired(self) -> list[str]:
        return [t.fired for t in self._triggers if t.fired is not None]

    def wrap(self, role: str, peer: str, link: trio.abc.Channel[Envelope]) -> trio.abc.Channel[Envelope]:
        mine = [t for t in self._triggers if t.fault.party == role and t.fault.direction != "local"]
        if not mine:
            return link
        return FaultyChannel(link, local=role, peer=peer, triggers=mine)

    def observer(self, role: str, inner: object | None) -> object | None:
        local = [t for t in self._triggers if t.fault.party == role and t.fault.direction == "local"]
        return _CrashingObserver(inner, local) if local else inner


@dataclasses.dataclass
class FaultRun:
    """What each party ended with in a run under a fault plan.

    ``outcomes[role]`` is the party's :class:`~mpcactors.actors.party.PartyResult`, or
    the error it stopped with (the root cause of its exception group, as the command
    line would show it).
    """

    outcomes: dict[str, Any]
    faults: Faults
    observer: Any

    @property
    def errors(self) -> dict[str, BaseException]:
        return {r: o for r, o in self.outcomes.items() if isinstance(o, BaseException)}

    @property
    def results(self) -> dict[str, Any]:
        return {r: o for r, o in self.outcomes.items() if not isinstance(o, BaseException)}

    @property
    def cause(self) -> BaseException | None:
        """The run's root cause as :func:`mpcactors.sim.simulate` would raise it."""
        errors = list(self.errors.values())
        return first_cause(BaseExceptionGroup("run failed", errors)) if errors else None


async def run_with_faults(
    tables: Any,
    config: RunConfig,
    faults: Faults,
    *,
    observer: Any = None,
    executor: Any = None,
    recorder: Any = None,
    buffer: int = 4,
) -> FaultRun:
    """Run every party over in-memory links with ``faults`` applied (tests only).

    ``tables`` are the data parties' tables, by name or in roster order (as for
    :func:`mpcactors.sim.simulate`).

    Unlike :func:`mpcactors.sim.simulate`, a failing party does not cancel the other
    two: each party runs in its own task until it stops by itself, exactly as three
    separate daemons would (through an ``abort`` message, a closed link or a step
    deadline). So a party that cannot notice a failure hangs here, and the caller's
    ``trio.fail_after`` catches it. Never raises a party's error: see
    :attr:`FaultRun.outcomes`.
    """
    session = secrets.token_bytes(16)
    members = config.roster.members
    raw = memory_mesh(members, recorder=recorder, buffer=buffer)
    tables = tables_by_party(tables, config)
    outcomes: dict[str, Any] = {}

    async def one(role: str) -> None:
        links = {peer: faults.wrap(role, peer, link) for peer, link in raw[role].items()}
        try:
            outcomes[role] = await run_party(
                role, links, session=session, config=config, table=tables.get(role),
                executor=executor, observer=faults.observer(role, observer),
            )
        except Exception as exc:  # noqa: BLE001 - recorded per party; Cancelled propagates
            outcomes[role] = first_cause(exc)

    async with trio.open_nursery() as nursery:
        for role in members:
            nursery.start_soon(one, role)
    return FaultRun(outcomes, faults, observer)

