"""The actor core: one party's mailboxes, typed messages, deadlines, streaming and MPC driver.

An :class:`Actor` owns a :class:`~mpcactors.protocol.scheduler.StepScheduler` (which
refuses illegal moves and unproven deletions), one :class:`PeerSession` and one
transport per peer, one bounded mailbox per peer fed by a reader task, a
:class:`~.vault.SecretVault` and an :class:`~.executor.Executor`. It has no step
bodies: :mod:`.data_party`, :mod:`.ttp` and :mod:`.shared_steps` use it, and
:mod:`.run` runs it to the end.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, TypeVar

import structlog
import trio

from ..config import RunConfig
from ..crypto import paillier
from ..errors import AbortedError, PeerProtocolError, StepTimeout, TransportError
from ..protocol import messages as msg
from ..protocol.scheduler import StepScheduler
from ..protocol.steps import STEP_NAMES, Step, StepTable
from ..protocol.wire import BigIntArray, Envelope
from .executor import Executor
from .hooks import Held, Hooks, Observer
from .pipeline import run_ordered
from .results import StepStats
from .vault import SecretVault

__all__ = ["Actor", "chunks"]

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=msg.Message)
MAILBOX_SIZE = 8
#: Seconds to wait for a peer's abort reason when a link breaks (see :meth:`Actor.send`).
ABORT_GRACE = 1.0


def chunks(n: int, size: int) -> list[range]:
    """``range(n)`` cut into consecutive ranges of at most ``size``."""
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


class Actor:
    """One party's plumbing for the duration of one run."""

    def __init__(
        self,
        role: str,
        links: Mapping[str, trio.abc.Channel[Envelope]],
        *,
        session: bytes,
        config: RunConfig,
        table: Any,
        executor: Executor,
        observer: Observer | None,
        hooks: Hooks,
        progress: Any,
    ) -> None:
        self.role = role
        self.links = dict(links)
        self.config = config
        self.params = config.params
        self.table = table
        self.roster = config.roster
        self.executor = executor
        self.observer = observer
        self.hooks = hooks
        self.progress = progress
        last = Step.ANALYSIS if config.lasso else Step.TO_SHAMIR
        self.scheduler = StepScheduler(role, session, table=StepTable(self.roster), last_step=last)
        self.peers = {peer: self.scheduler.link(peer) for peer in self.links}
        self.stats: dict[int, StepStats] = {}
        self.vault = SecretVault(
            role, self.scheduler, observer=observer, hooks=hooks,
            deleted=lambda name: self.stats[self.scheduler.step].deleted.append(name),
        )
        self.intersection_size = 0
        #: the step-8 outputs this party received, by analysis name (the plan's order)
        self.outputs: dict[str, Any] = {}
        #: every value step 8 opened, as ``(analysis, label, count)``, to whomever the plan says
        self.revealed: list[tuple[str, str, int]] = []
        self._mailbox_send: dict[str, trio.MemorySendChannel[Envelope]] = {}
        self._mailbox: dict[str, trio.MemoryReceiveChannel[Envelope]] = {}
        # what each task is blocked on, by peer (the TTP waits for several parties at once)
        self._waiting: dict[str, str] = {}
        self._sending: dict[str, str] = {}
        self._last_progress: dict[str, int] = {}
        self._link_error: dict[str, TransportError] = {}
        self._step_started = 0.0

    # ---- what the observer sees -------------------------------------------------
    def hold(self, name: Held, value: Any) -> None:
        if self.observer is not None:
            self.observer.hold(self.role, self.scheduler.step, name, value)

    @property
    def observed(self) -> bool:
        return self.observer is not None

    # ---- messages ---------------------------------------------------------------
    def open_mailboxes(self, nursery: trio.Nursery) -> None:
        for peer in self.links:
            send, receive = trio.open_memory_channel[Envelope](MAILBOX_SIZE)
            self._mailbox_send[peer], self._mailbox[peer] = send, receive
            nursery.start_soon(self._reader, peer)

    async def _reader(self, peer: str) -> None:
        link = self.links[peer]
        send = self._mailbox_send[peer]
        # a synchronous close: `async with` would checkpoint while a PeerProtocolError
        # unwinds, the closed mailbox would wake `expect`, and the cancellation it causes
        # would replace the peer's error by "the link ended"
        with send:
            while True:
                try:
                    envelope = await link.receive()
                except TransportError as exc:
                    # The link ended (a clean close, a break, or a readable refusal). That is
                    # only an error if we still need a message from this peer: `expect` then
                    # raises it, with the step it happened at.
                    self._link_error[peer] = exc
                    return
                except PeerProtocolError as exc:  # undecodable bytes: say who noticed, and when
                    exc.args = (f"{self.role}: at step {self.scheduler.step}: {exc}",)
                    raise
                if envelope.kind == "abort":
                    abort = msg.parse(envelope)
                    assert isinstance(abort, msg.Abort)
                    raise AbortedError(f"{peer} aborted the run at step {envelope.step}: {abort.printable_reason}")
                await send.send(envelope)

    async def send(self, peer: str, message: msg.Message) -> None:
        envelope = self.peers[peer].send(message)
        try:
            self._sending[peer] = message.kind
            await self.links[peer].send(envelope)
            del self._sending[peer]
        except TransportError as exc:
            # A peer that aborts sends its reason, then closes; our send can break before
            # our reader has seen that reason. Give the reader a moment: if an abort
            # arrives, it cancels this task and the run reports the peer's reason.
            with trio.move_on_after(ABORT_GRACE):
                await trio.sleep_forever()
            # same class (a TLSError keeps its exit code); say who was sending what, when
            exc.args = (f"{self.role}: sending {message.kind} to {peer} at step {envelope.step}: {exc}",)
            raise

    async def expect(self, peer: str, *expected: type[M]) -> M:
        """Wait for the next message from ``peer``; it must be legal here and one of ``expected``."""
        kind = expected[0].kind
        self._waiting[peer] = kind
        try:
            envelope = await self._mailbox[peer].receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            cause = self._link_error.get(peer)
            detail = f": {cause}" if cause is not None else ""
            error_type = type(cause) if isinstance(cause, TransportError) else TransportError
            raise error_type(
                f"{self.role}: waiting for {kind} from {peer} at step {self.scheduler.step}, the link ended{detail}"
            ) from None
        self._waiting.pop(peer, None)
        return self.peers[peer].receive(envelope, expected)

    async def abort_peers(self, reason: str) -> None:
        """Tell every peer why we stopped (best effort, shielded, bounded)."""
        step = max(self.stats, default=0)
        with trio.move_on_after(1) as scope:
            scope.shield = True
            for peer, link in self.links.items():
                try:
                    await link.send(self.peers[peer].abort(reason, step))
                except Exception:  # best effort: the peer may already be gone
                    pass
            # let peers read the abort before our side of the links closes under them
            await trio.sleep(ABORT_GRACE / 2)

    def public_key_of(self, peer: str, wire: dict[str, int]) -> paillier.PublicKey:
        """``peer``'s Paillier public key: the agreed size, and the DJN base this session derives.

        Raises:
            PeerProtocolError: naming the peer and the step; the key is not used.
        """
        config = self.config
        try:
            return paillier.PublicKey.from_wire(
                wire, context=self.scheduler.session, expected_bits=config.key_bits,
                _allow_insecure_test_size=config.allow_test_key_sizes,
            )
        except paillier.InvalidPublicKey as exc:
            raise PeerProtocolError(
                f"{self.role}: at step {self.scheduler.step}: {peer} sent a Paillier public key that is refused: {exc}"
            ) from None

    # ---- steps ------------------------------------------------------------------
    def begin(self, step: Step) -> None:
        now = time.perf_counter()
        if self.scheduler.step in self.stats:
            self.stats[self.scheduler.step].seconds = now - self._step_started
        self.scheduler.begin_step(step)
        self._step_started = now
        if step != Step.DONE:
            self.stats[step] = StepStats(step)
            structlog.contextvars.bind_contextvars(step=int(step))
            log.info("step begins", step_name=STEP_NAMES[step])
            if self.hooks.at_step is not None:
                self.hooks.at_step(self.role, step)

    async def in_step(self, step: Step, body: Callable[[], Awaitable[None]]) -> None:
        """Begin ``step`` and run ``body`` within the step's deadline."""
        self.begin(step)
        try:
            with trio.fail_after(self.config.deadline(step)):
                await body()
        except trio.TooSlowError:
            what = " and ".join(
                [f"waiting for {kind} from {peer}" for peer, kind in self._waiting.items()]
                + [f"sending {kind} to {peer}" for peer, kind in self._sending.items()]
            ) or "computing"
            raise StepTimeout(
                f"{self.role}: {what} at step {int(step)} ({STEP_NAMES[step]}) took longer than "
                f"{self.config.deadline(step):g} s"
            ) from None

    def report(self, done: int, total: int, unit: str) -> None:
        """Progress of a long step: to the progress callback, and to the log in ~10% steps."""
        if self.progress is not None:
            self.progress(self.role, self.scheduler.step, done, total, unit)
        tenth = max(total // 10, 1)
        if done == total or done // tenth != self._last_progress.get(unit, -1):
            self._last_progress[unit] = done // tenth
            log.info("progress", unit=unit, done=done, total=total)

    # ---- streaming bulk steps (3 to 6) ------------------------------------------------
    async def stream_rows(
        self,
        peer: str,
        rows: int,
        compute: Callable[[range], Awaitable[list[int]]],
        message: Callable[[range, list[int]], msg.Message],
        unit: str,
    ) -> None:
        """Compute ``rows`` in batches on the executor and send them in chunks, in order.

        Batch k+1 is computed while chunk k is being sent; at most
        :meth:`Executor.inflight` batches exist at once, so memory does not grow with
        the table.
        """
        batch = self.executor.batch_rows(self.config.chunk_rows)
        plan = [(chunk, sub) for chunk in chunks(rows, self.config.chunk_rows) for sub in chunks(len(chunk), batch)]
        buffer: list[int] = []

        def job(chunk: range, sub: range) -> Callable[[], Awaitable[tuple[range, range, list[int]]]]:
            part = range(chunk.start + sub.start, chunk.start + sub.stop)

            async def run() -> tuple[range, range, list[int]]:
                return chunk, part, await compute(part)

            return run

        async def consume(item: tuple[range, range, list[int]]) -> None:
            chunk, part, values = item
            buffer.extend(values)
            if part.stop == chunk.stop:
                out = list(buffer)
                buffer.clear()
                await self.send(peer, message(chunk, out))
                self.report(chunk.stop, rows, unit)

        await run_ordered((job(c, s) for c, s in plan), consume, limit=self.executor.inflight())

    # ---- MPC driver (steps 7 and 8) ---------------------------------------------------
    async def run_program(
        self, program: Generator[Any, dict[int, list[int]], Any], *, progress: tuple[str, int, int, str] | None = None
    ) -> Any:
        """Drive a sans-I/O MPC program over the links, one exchange per round.

        ``progress = (label, per_round, total, unit)`` reports ``per_round`` units each time a
        round with that label completes (e.g. lasso iterations at each convergence check).
        """
        width = self.params.field_bytes
        done = 0
        try:
            request = next(program)
        except StopIteration as stop:
            return stop.value
        round_no = 0
        while True:
            for peer_index, values in request.send.items():
                await self.send(
                    self.roster.name_of(peer_index), msg.Mpc(round_no, request.label, BigIntArray(tuple(values), width))
                )
            received: dict[int, list[int]] = {}
            for peer_index in sorted(request.expect):
                peer = self.roster.name_of(peer_index)
                message = await self.expect(peer, msg.Mpc)
                if message.round != round_no or message.label != request.label:
                    raise PeerProtocolError(
                        f"{peer} sent MPC round {message.round} ({message.label}) where round {round_no} "
                        f"({request.label}) was expected"
                    )
                received[peer_index] = list(message.values)
            round_no += 1
            self.stats[self.scheduler.step].rounds += 1
            if progress is not None and request.label == progress[0]:
                done = min(done + progress[1], progress[2])
                self.report(done, progress[2], progress[3])
            try:
                request = program.send(received)
            except StopIteration as stop:
                return stop.value

    # ---- statistics --------------------------------------------------------------------
    def collect_link_stats(self) -> None:
        for link in self.links.values():
            stats = getattr(link, "statistics", None)
            if stats is None:
                continue
            s = stats()
            for step, count in s.sent_messages.items():
                if step in self.stats:
                    self.stats[step].messages_sent += count
                    self.stats[step].bytes_sent += s.sent_bytes[step]
            for step, count in s.received_messages.items():
                if step in self.stats:
                    self.stats[step].messages_received += count
                    self.stats[step].bytes_received += s.received_bytes[step]
