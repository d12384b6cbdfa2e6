"""The three actors: hospital, insurer and TTP as trio tasks.

An actor is thin. It owns a :class:`~mpcactors.protocol.scheduler.StepScheduler`
(which refuses illegal moves and unproven deletions), one transport per peer, one
bounded mailbox per peer fed by a reader task, and an :class:`Executor` for crypto.
The protocol's arithmetic lives in :mod:`mpcactors.crypto` and :mod:`mpcactors.mpc`;
this module only sequences it, applies per-step deadlines and cleans up.

Failure semantics (one-for-all): any error stops the party, which tells its peers
(an ``abort`` message, best effort) and, in a shielded ``finally``, destroys every key
and clears every share it holds. Nothing partial is returned.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from dataclasses import dataclass, field
from typing import Any, Protocol

import gmpy2
import structlog
import trio

from ..codec import BigIntArray, Envelope
from ..config import RunConfig
from ..crypto import hashing, paillier
from ..crypto.packing import Packing
from ..errors import AbortedError, InputError, MpcactorsError, PeerProtocolError, StepTimeout, TransportError
from ..protocol import messages as msg
from ..protocol.scheduler import StepScheduler
from ..protocol.steps import CONFIRM, DONE, HOSPITAL, INSURER, STEP_NAMES, TTP
from .executor import Executor
from .failures import first_cause
from .pipeline import run_ordered

__all__ = ["IntersectionTooSmall", "Observer", "PartyResult", "StepStats", "first_cause", "run_party"]

log = structlog.get_logger(__name__)

PARTY_INDEX = {HOSPITAL: 1, INSURER: 2, TTP: 3}
ROLE_OF = {v: k for k, v in PARTY_INDEX.items()}
MAILBOX_SIZE = 8
#: Iterations between the lasso's convergence checks (one revealed bit each).
LASSO_CHECK_EVERY = 5
#: Seconds to wait for a peer's abort reason when a link breaks (see ``_send``).
ABORT_GRACE = 1.0


class IntersectionTooSmall(MpcactorsError):
    """The intersection is below ``min_intersection``: every party stops, nothing is computed."""

    exit_code = 3


class Observer(Protocol):
    """Simulation-only hooks (god view, leak analysis).

    An observer is handed to one party's actor and sees only what that party holds:
    in a deployment each daemon has at most its own. It must keep only weak
    references to key objects, or it would itself keep a deleted key alive.
    """

    def hold(self, role: str, step: int, name: str, value: Any) -> None: ...

    def key_created(self, role: str, name: str, key: Any) -> None: ...

    def key_destroyed(self, role: str, name: str, key: Any) -> None: ...


@dataclass
class StepStats:
    step: int
    seconds: float = 0.0
    bytes_sent: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    messages_received: int = 0
    deleted: list[str] = field(default_factory=list)


@dataclass
class PartyResult:
    """What one party ends with: public outputs and run statistics, no secrets."""

    role: str
    intersection_size: int
    result: Any  # mpc.lasso.LassoResult | None
    features: tuple[str, ...]
    owners: tuple[str, ...]
    steps: dict[int, StepStats]
    rows: int = 0
    dropped_missing: int = 0
    #: every value step 8 opened in clear, as ``(label, count)``: the convergence bits and the result
    revealed: list[tuple[str, int]] = field(default_factory=list)

    def result_document(self) -> dict[str, Any] | None:
        if self.result is None:
            return None
        r = self.result
        return {
            "coefficients": dict(zip(self.features, (float(c) for c in r.coefficients), strict=True)),
            "owners": dict(zip(self.features, self.owners, strict=True)),
            "intercept": float(r.intercept),
            "r2": float(r.r2),
            "iterations": int(r.iterations),
            "converged": bool(r.converged),
        }

    def document(self) -> dict[str, Any]:
        """The JSON-able run document (``simulate --json`` merges all three parties')."""
        return {
            "party": self.role,
            "intersection_size": self.intersection_size,
            "result": self.result_document(),
            "rows": self.rows,
            "dropped_missing": self.dropped_missing,
            "steps": [
                {
                    "step": s.step,
                    "name": STEP_NAMES[s.step],
                    "party": self.role,
                    "seconds": round(s.seconds, 4),
                    "bytes_sent": s.bytes_sent,
                    "messages_sent": s.messages_sent,
                    "deleted": s.deleted,
                }
                for s in sorted(self.steps.values(), key=lambda s: s.step)
            ],
        }


def _chunks(n: int, size: int) -> list[range]:
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


class _Party:
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
        progress: Any,
    ) -> None:
        self.role = role
        self.links = dict(links)
        self.config = config
        self.params = config.params
        self.table = table
        # a data party sizes its crypto by its own table; the TTP, whose only heavy work is
        # step 6, by the intersection once step 4 has told it (see _run_ttp)
        self.executor = executor.sized(len(table)) if table is not None else executor
        self.observer = observer
        self.progress = progress
        self.scheduler = StepScheduler(role, session, last_step=8 if config.lasso else 7)
        self.stats: dict[int, StepStats] = {}
        self._mailbox_send: dict[str, trio.MemorySendChannel[Envelope]] = {}
        self._mailbox: dict[str, trio.MemoryReceiveChannel[Envelope]] = {}
        # what each task is blocked on, by peer (the TTP waits for both parties at once)
        self._waiting: dict[str, str] = {}
        self._sending: dict[str, str] = {}
        self._last_progress: dict[str, int] = {}
        self._link_error: dict[str, TransportError] = {}
        self._step_started = 0.0
        # secrets (each is destroyed by the step that ends its life, and in cleanup)
        self._hash_key: hashing.JointKey | None = None
        self._secret: paillier.SecretKey | None = None
        self._additive: list[list[int]] | None = None
        self._shamir: list[int] | None = None
        self._engine: Any = None
        self._masks: list[list[int]] | None = None
        self.intersection_size = 0
        self.result: Any = None
        self.revealed: list[tuple[str, int]] = []

    # ---- plumbing ---------------------------------------------------------------
    def _hold(self, name: str, value: Any) -> None:
        if self.observer is not None:
            self.observer.hold(self.role, self.scheduler.step, name, value)

    async def _reader(self, peer: str) -> None:
        link = self.links[peer]
        send = self._mailbox_send[peer]
        # a synchronous close: `async with` would checkpoint while a PeerProtocolError
        # unwinds, the closed mailbox would wake _expect, and the cancellation it causes
        # would replace the peer's error by "the link ended"
        with send:
            while True:
                try:
                    envelope = await link.receive()
                except TransportError as exc:
                    # The link ended (a clean close, a break, or a readable refusal). That is
                    # only an error if we still need a message from this peer: _expect then
                    # raises it, with the step it happened at.
                    self._link_error[peer] = exc
                    return
                except PeerProtocolError as exc:  # undecodable bytes: say who noticed, and when
                    exc.args = (f"{self.role}: at step {self.scheduler.step}: {exc}",)
                    raise
                if envelope.kind == "abort":
                    # a peer's words end up on our terminal and in our logs: printable only
                    reason = "".join(c if c.isprintable() else "?" for c in msg.parse(envelope).reason)  # type: ignore[attr-defined]
                    raise AbortedError(f"{peer} aborted the run at step {envelope.step}: {reason}")
                await send.send(envelope)

    async def _send(self, peer: str, message: msg.Message) -> None:
        envelope = self.scheduler.outgoing(peer, message.kind, message.body())
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

    async def _expect(self, peer: str, kind: str) -> msg.Message:
        """Wait for the next message from ``peer``; it must be legal here and of ``kind``."""
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
        step = self.scheduler.step
        try:
            self.scheduler.incoming(envelope)
            message = msg.parse(envelope)
        except PeerProtocolError as exc:  # the scheduler's words lack who noticed, and when
            raise PeerProtocolError(f"{self.role}: at step {step} ({STEP_NAMES.get(step, step)}): {exc}") from None
        if message.kind != kind and not (message.kind == kind + "_end"):
            raise PeerProtocolError(f"{peer} sent {message.kind!r} at step {envelope.step} where {kind!r} was expected")
        return message

    def _begin(self, step: int) -> None:
        now = time.perf_counter()
        if self.scheduler.step in self.stats:
            self.stats[self.scheduler.step].seconds = now - self._step_started
        self.scheduler.begin_step(step)
        self._step_started = now
        if step != DONE:
            self.stats[step] = StepStats(step)
            structlog.contextvars.bind_contextvars(step=step)
            log.info("step begins", step_name=STEP_NAMES[step])

    def _deleted(self, name: str, *objects: Any) -> None:
        self.scheduler.destroyed(name, *objects)
        self.stats[self.scheduler.step].deleted.append(name)
        if self.observer is not None:
            for obj in objects:
                self.observer.key_destroyed(self.role, name, obj)

    def _created(self, name: str, key: Any = None) -> None:
        self.scheduler.created(name)
        if self.observer is not None and key is not None:
            self.observer.key_created(self.role, name, key)

    def _report(self, done: int, total: int, unit: str) -> None:
        """Progress of a long step: to the progress callback, and to the log in ~10% steps."""
        if self.progress is not None:
            self.progress(self.role, self.scheduler.step, done, total, unit)
        tenth = max(total // 10, 1)
        if done == total or done // tenth != self._last_progress.get(unit, -1):
            self._last_progress[unit] = done // tenth
            log.info("progress", unit=unit, done=done, total=total)

    async def _in_step(self, step: int, body: Any) -> None:
        self._begin(step)
        try:
            with trio.fail_after(self.config.deadline(step)):
                await body()
        except trio.TooSlowError:
            what = " and ".join(
                [f"waiting for {kind} from {peer}" for peer, kind in self._waiting.items()]
                + [f"sending {kind} to {peer}" for peer, kind in self._sending.items()]
            ) or "computing"
            raise StepTimeout(
                f"{self.role}: {what} at step {step} ({STEP_NAMES[step]}) took longer than "
                f"{self.config.deadline(step):g} s"
            ) from None

    # ---- streaming bulk steps (3 to 6) ----------------------------------------------
    def _batch_rows(self) -> int:
        """Rows per executor job: small enough to spread over cores, big enough (>= ~1 ms) to amortise dispatch."""
        return self.config.chunk_rows if self.executor.policy == "inline" else min(self.config.chunk_rows, 64)

    def _inflight(self) -> int:
        """Jobs in flight at once: enough to keep every worker busy, bounded for memory."""
        if self.executor.policy == "inline":
            return 1
        return 2 * (self.executor.workers or os.cpu_count() or 2)

    async def _stream_rows(
        self,
        peer: str,
        rows: int,
        compute: Callable[[range], Awaitable[list[int]]],
        message: Callable[[range, list[int]], msg.Message],
        unit: str,
    ) -> None:
        """Compute ``rows`` in batches on the executor and send them in chunks, in order.

        Batch k+1 is computed while chunk k is being sent; at most :meth:`_inflight`
        batches exist at once, so memory does not grow with the table.
        """
        batch = self._batch_rows()
        plan = [(chunk, sub) for chunk in _chunks(rows, self.config.chunk_rows)
                for sub in _chunks(len(chunk), batch)]
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
                await self._send(peer, message(chunk, out))
                self._report(chunk.stop, rows, unit)

        await run_ordered((job(c, s) for c, s in plan), consume, limit=self._inflight())

    async def _decrypt(self, values: list[int], half_crt: bool, pool: Any) -> list[int]:
        try:
            if pool is not None:
                return await pool.decrypt_raw(values, below_half_p=half_crt)
            return await self.executor.run_secret(
                partial(self._secret.decrypt_raw, values, below_half_p=half_crt)  # type: ignore[union-attr]
            )
        except ValueError as exc:  # e.g. a value outside (0, n^2): the TTP's fault, not our bug
            raise PeerProtocolError(
                f"{self.role}: at step {self.scheduler.step}: ttp sent masked values that do not decrypt: {exc}"
            ) from None

    @asynccontextmanager
    async def _secret_key_workers(self) -> AsyncIterator[Any]:
        """Worker processes holding our Paillier secret key, for steps 4 to 6 (process policy).

        The scope ends before the key is destroyed, and ending it ends every worker that
        held the key; under the other policies secret-key work stays in this process.
        """
        if self.executor.policy != "process":
            yield None
            return
        from .secret_pool import open_secret_key_workers

        async with open_secret_key_workers(
            self._secret, workers=self.executor.workers or os.cpu_count() or 2  # type: ignore[arg-type]
        ) as pool:
            yield pool
        if self.observer is not None:
            self.observer.key_destroyed(self.role, "secret_key_workers", pool)

    # ---- MPC driver (steps 7 and 8) -----------------------------------------------
    async def _run_program(
        self, program: Generator[Any, dict[int, list[int]], Any], *, progress: tuple[str, int, int] | None = None
    ) -> Any:
        """Drive a sans-I/O MPC program over the links, one exchange per round.

        ``progress = (label, per_round, total)`` reports ``per_round`` units each time a
        round with that label completes (e.g. lasso iterations at each convergence check).
        """
        width = (self.params.prime.bit_length() + 7) // 8
        done = 0
        try:
            request = next(program)
        except StopIteration as stop:
            return stop.value
        round_no = 0
        while True:
            for peer_index, values in request.send.items():
                await self._send(ROLE_OF[peer_index], msg.Mpc(round_no, request.label, BigIntArray(tuple(values), width)))
            received: dict[int, list[int]] = {}
            for peer_index in sorted(request.expect):
                peer = ROLE_OF[peer_index]
                message = await self._expect(peer, "mpc")
                assert isinstance(message, msg.Mpc)
                if message.round != round_no or message.label != request.label:
                    raise PeerProtocolError(
                        f"{peer} sent MPC round {message.round} ({message.label}) where round {round_no} "
                        f"({request.label}) was expected"
                    )
                received[peer_index] = list(message.values)
            round_no += 1
            if progress is not None and request.label == progress[0]:
                done = min(done + progress[1], progress[2])
                self._report(done, progress[2], "lasso iterations (at most)")
            try:
                request = program.send(received)
            except StopIteration as stop:
                return stop.value

    # ---- cleanup ----------------------------------------------------------------
    def _destroy_everything(self) -> None:
        """Destroy every secret still alive (idempotent; used on success and failure)."""
        if self._hash_key is not None:
            self._hash_key.destroy()
            self._hash_key = None
        if self._secret is not None:
            self._secret.destroy()
            self._secret = None
        if self._engine is not None:
            self._engine.destroy()
            self._engine = None
        for name in ("_additive", "_shamir", "_masks"):
            value = getattr(self, name)
            if isinstance(value, list):
                value.clear()
            setattr(self, name, None)

    async def _abort_peers(self, reason: str, step: int) -> None:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            for peer, link in self.links.items():
                try:
                    envelope = Envelope(self.scheduler.session, step, self.role,
                                        self.scheduler.next_seq(peer), "abort", {"reason": reason[:500]})
                    await link.send(envelope)
                except Exception:  # best effort: the peer may already be gone
                    pass
            # let peers read the abort before our side of the links closes under them
            await trio.sleep(ABORT_GRACE / 2)

    # ---- the run ----------------------------------------------------------------
    async def run(self, task_status: trio.TaskStatus[None]) -> PartyResult:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(party=self.role, session=self.scheduler.session.hex()[:8])
        failure: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                for peer in self.links:
                    send, receive = trio.open_memory_channel[Envelope](MAILBOX_SIZE)
                    self._mailbox_send[peer], self._mailbox[peer] = send, receive
                    nursery.start_soon(self._reader, peer)
                task_status.started()
                if self.role == TTP:
                    await self._run_ttp()
                else:
                    await self._run_data_party()
                await self._in_step(CONFIRM, self._confirm)
                self._begin(DONE)
                nursery.cancel_scope.cancel()
        except BaseException as exc:
            failure = exc
            raise
        finally:
            with trio.CancelScope(shield=True):
                self._destroy_everything()
                if failure is not None:
                    failed_at = self.scheduler.step
                    if failed_at not in (-1, DONE):
                        self.scheduler.step = -1
                    cause = first_cause(failure)
                    if not isinstance(cause, AbortedError | trio.Cancelled):
                        # the last step begun: the scheduler is already at ERROR (-1) when it
                        # refused a peer's message itself
                        await self._abort_peers(_reason(cause), max(self.stats, default=0))
                for link in self.links.values():
                    with trio.move_on_after(1):
                        await link.aclose()
        self._collect_link_stats()
        return PartyResult(
            role=self.role,
            intersection_size=self.intersection_size,
            result=self.result,
            features=self.config.features,
            owners=tuple(self._owner_of(c) for c in self.config.features),
            steps=self.stats,
            rows=len(self.table) if self.table is not None else 0,
            dropped_missing=getattr(self.table, "dropped_missing", 0) if self.table is not None else 0,
            revealed=self.revealed,
        )

    def _owner_of(self, column: str) -> str:
        return HOSPITAL if column in self.config.hospital_columns else INSURER

    def _collect_link_stats(self) -> None:
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

    # ---- hospital and insurer ---------------------------------------------------
    async def _run_data_party(self) -> None:
        role = self.role
        other = INSURER if role == HOSPITAL else HOSPITAL
        config, params = self.config, self.params
        own_columns = config.columns_of(role)
        other_columns = config.columns_of(other)
        if tuple(self.table.columns) != tuple(own_columns):
            raise InputError(f"{role}'s table has columns {list(self.table.columns)}, the run expects {list(own_columns)}")
        state: dict[str, Any] = {}

        async def step1() -> None:
            # prepare: the table was validated before the run; shuffle with a CSPRNG so
            # the TTP cannot learn anything from the order rows arrive in.
            order = list(range(len(self.table)))
            secrets.SystemRandom().shuffle(order)
            state["order"] = order
            self._hold("input", self.table)

        async def step2() -> None:
            mine = hashing.contribution()
            await self._send(other, msg.HashContribution(mine))
            theirs = await self._expect(other, "hash_contribution")
            self._hash_key = hashing.JointKey.from_contributions(mine, theirs.value)  # type: ignore[attr-defined]
            self._created("hash_key", self._hash_key)
            ids = self.table.ids
            ordered = [ids[i] for i in state["order"]]
            state["hashes"] = await self.executor.run_secret(self._hash_key.hash_ids, ordered)
            self._hold("hashed_ids", state["hashes"])
            self._hash_key.destroy()
            self._deleted("hash_key", self._hash_key)
            self._hash_key = None

        async def step3() -> None:
            # keys only: encryption streams into step 4's transfer, so the table is never
            # held encrypted in memory and cores encrypt while bytes move
            public, secret = await self.executor.run_secret(
                lambda: paillier.generate_keypair(bits=config.key_bits, _allow_insecure_test_size=config.allow_test_key_sizes)
            )
            self._secret = secret
            self._created("paillier_secret", secret)
            state["public"] = public
            await self._send(other, msg.PublicKey(public.to_wire(), len(own_columns)))
            theirs = await self._expect(other, "public_key")
            other_public = paillier.PublicKey.from_wire(theirs.key, _allow_insecure_test_size=config.allow_test_key_sizes)  # type: ignore[attr-defined]
            if theirs.columns != len(other_columns):  # type: ignore[attr-defined]
                raise PeerProtocolError(f"{other} announced {theirs.columns} columns, the run expects {len(other_columns)}")  # type: ignore[attr-defined]
            state["other_public"] = other_public
            self._hold("public_keys", (public.to_wire(), other_public.to_wire()))
            state["packing"] = Packing(params, public.n.bit_length())
            state["per_row"] = state["packing"].plaintexts_per_row(len(own_columns))

        async def step4() -> None:
            public, packing = state["public"], state["packing"]
            await self._send(TTP, msg.PublicKey(public.to_wire(), len(own_columns)))
            hashes, order, values = state.pop("hashes"), state["order"], self.table.values
            width = (2 * public.n.bit_length() + 7) // 8
            kept: list[int] | None = [] if self.observer is not None else None

            async def encrypt(rows: range) -> list[int]:
                # our own key: the owner's CRT path (same ciphertexts, ~1.5x faster)
                plain = packing.pack_values(values[[order[i] for i in rows]])
                pool = state.get("pool")
                if pool is not None:
                    return await pool.encrypt_raw(plain)
                return await self.executor.run_secret(self._secret.encrypt_raw, plain)  # type: ignore[union-attr]

            def message(rows: range, ciphertexts: list[int]) -> msg.Message:
                if kept is not None:
                    kept.extend(ciphertexts)
                return msg.Rows(b"".join(hashes[i] for i in rows), BigIntArray(tuple(ciphertexts), width))

            await self._stream_rows(TTP, len(hashes), encrypt, message, "rows encrypted and sent")
            await self._send(TTP, msg.RowsEnd(len(hashes)))
            if kept is not None:
                self._hold("own_ciphertexts", kept)
            reply = await self._expect(TTP, "intersection")
            self.intersection_size = m = reply.size  # type: ignore[attr-defined]
            self._hold("intersection_size", m)
            _check_intersection(m, len(hashes), config.min_intersection, role)

        async def step5() -> None:
            m = self.intersection_size
            other_public = state["other_public"]
            packing = Packing(params, other_public.n.bit_length())
            masks = [params.masks(len(other_columns)) for _ in range(m)]
            self._masks = masks
            self._hold("masks", masks)
            wire = other_public.to_wire()
            width = (2 * other_public.n.bit_length() + 7) // 8

            async def encrypt(rows: range) -> list[int]:
                return await self.executor.run(paillier.encrypt_raw, wire, packing.pack_masks(masks[rows.start : rows.stop]))

            def message(rows: range, ciphertexts: list[int]) -> msg.Message:
                return msg.Masks(BigIntArray(tuple(ciphertexts), width))

            await self._stream_rows(TTP, m, encrypt, message, "masks encrypted and sent")
            await self._send(TTP, msg.MasksEnd(m))

        async def step6() -> None:
            m = self.intersection_size
            packing, per_row = state["packing"], state["per_row"]
            d_own = len(own_columns)
            own_shares: list[list[int]] = []
            announced: list[int] = []
            batch = self._batch_rows() * per_row
            half_crt = packing.fits_half_crt(d_own)  # masked rows are far below p/2: half the work

            async def jobs():  # decryption jobs, as masked chunks arrive
                received = 0
                while True:
                    message = await self._expect(TTP, "masked")
                    if isinstance(message, msg.MaskedEnd):
                        announced.append(message.rows)
                        return
                    values = list(message.ciphertexts)  # type: ignore[attr-defined]
                    received += len(values)
                    if len(values) % per_row or received > m * per_row:
                        raise PeerProtocolError("ttp sent a masked chunk of the wrong size")
                    for start in range(0, len(values), batch):
                        part = values[start : start + batch]
                        yield partial(self._decrypt, part, half_crt, state.get("pool"))

            async def unpack(plain: list[int]) -> None:
                try:
                    own_shares.extend(packing.unpack_shares(plain, d_own))
                except ValueError as exc:
                    raise PeerProtocolError(f"ttp sent masked values that do not unpack: {exc}") from None
                self._report(len(own_shares), m, "rows decrypted")

            await run_ordered(jobs(), unpack, limit=self._inflight())
            if announced != [m] or len(own_shares) != m:
                raise PeerProtocolError(f"ttp sent {len(own_shares)} masked rows, announced {announced}, expected {m}")
            self._hold("masked_values", own_shares)
            # the additive sharing of the joined table: own columns from the decryption,
            # the other party's columns are our own masks (hospital columns come first)
            masks = self._masks or []
            if role == HOSPITAL:
                additive = [own + mask for own, mask in zip(own_shares, masks, strict=True)]
            else:
                additive = [mask + own for own, mask in zip(own_shares, masks, strict=True)]
            self._masks = None
            self._additive = additive
            self._created("additive_shares")
            self._hold("additive_shares", additive)

        await self._in_step(1, step1)
        await self._in_step(2, step2)
        await self._in_step(3, step3)
        async with self._secret_key_workers() as state["pool"]:
            await self._in_step(4, step4)
            await self._in_step(5, step5)
            await self._in_step(6, step6)
            state.pop("pool")
        # still step 6: the key dies once no worker process holds it any more
        self._secret.destroy()  # type: ignore[union-attr]
        self._deleted("paillier_secret", self._secret)
        self._secret = None
        await self._in_step(7, self._step7)
        if config.lasso:
            await self._in_step(8, self._step8)

    # ---- TTP ----------------------------------------------------------------------
    async def _run_ttp(self) -> None:
        config = self.config
        state: dict[str, Any] = {}
        d = {HOSPITAL: len(config.hospital_columns), INSURER: len(config.insurer_columns)}

        async def receive_table(party: str) -> None:
            key = await self._expect(party, "public_key")
            public = paillier.PublicKey.from_wire(key.key, _allow_insecure_test_size=config.allow_test_key_sizes)  # type: ignore[attr-defined]
            if key.columns != d[party]:  # type: ignore[attr-defined]
                raise PeerProtocolError(f"{party} announced {key.columns} columns, the run expects {d[party]}")  # type: ignore[attr-defined]
            per_row = Packing(self.params, public.n.bit_length()).plaintexts_per_row(d[party])
            index: dict[bytes, int] = {}
            ciphertexts: list[int] = []
            while True:
                message = await self._expect(party, "rows")
                if isinstance(message, msg.RowsEnd):
                    if message.rows != len(index):
                        raise PeerProtocolError(f"{party} announced {message.rows} rows but sent {len(index)}")
                    break
                hashes = message.hashes  # type: ignore[attr-defined]
                count = len(hashes) // msg.HASH_BYTES
                values = list(message.ciphertexts)  # type: ignore[attr-defined]
                if len(values) != count * per_row:
                    raise PeerProtocolError(f"{party} sent {len(values)} ciphertexts for {count} rows")
                for i in range(count):
                    digest = hashes[i * 32 : (i + 1) * 32]
                    if digest in index:
                        raise PeerProtocolError(f"{party} sent the same hashed id twice")
                    index[digest] = len(index)
                ciphertexts.extend(values)
            state[party] = {"public": public, "index": index, "ciphertexts": ciphertexts, "per_row": per_row}

        async def step4() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive_table, HOSPITAL)
                nursery.start_soon(receive_table, INSURER)
            h_index, i_index = state[HOSPITAL]["index"], state[INSURER]["index"]
            self._created("hashed_ids")
            self._hold("hashed_ids", (list(h_index), list(i_index)))
            pairs = [(h_row, i_index[digest]) for digest, h_row in h_index.items() if digest in i_index]
            secrets.SystemRandom().shuffle(pairs)  # the joined table's row order
            state["pairs"] = pairs
            self._hold("row_pairs", pairs)  # (hospital arrival index, insurer arrival index) per joined row
            rows = {HOSPITAL: len(h_index), INSURER: len(i_index)}
            # drop the hashed-id columns: only the row pairing survives matching
            h_index.clear()
            i_index.clear()
            del state[HOSPITAL]["index"], state[INSURER]["index"]
            self._deleted("hashed_ids")
            self.intersection_size = m = len(pairs)
            self._hold("intersection_size", m)
            for party in (HOSPITAL, INSURER):
                await self._send(party, msg.Intersection(m))
            _check_intersection(m, min(rows.values()), config.min_intersection, TTP)

        async def receive_masks(party: str, under: str) -> None:
            # masks from `party` are encrypted under the other party's (`under`) key
            m = self.intersection_size
            per_row = state[under]["per_row"]
            masks: list[int] = []
            while True:
                message = await self._expect(party, "masks")
                if isinstance(message, msg.MasksEnd):
                    if message.rows != m or len(masks) != m * per_row:
                        raise PeerProtocolError(f"{party} sent masks for {len(masks) // per_row} rows, expected {m}")
                    break
                masks.extend(message.ciphertexts)  # type: ignore[attr-defined]
                if len(masks) > m * per_row:
                    raise PeerProtocolError(f"{party} sent more masks than the intersection has rows")
            state[under]["masks"] = masks

        async def step5() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive_masks, HOSPITAL, INSURER)
                nursery.start_soon(receive_masks, INSURER, HOSPITAL)

        async def forward(party: str, column: int) -> None:
            s = state[party]
            public, per_row, ciphertexts, masks = s["public"], s["per_row"], s["ciphertexts"], s.pop("masks")
            width = (2 * public.n.bit_length() + 7) // 8
            pairs = state["pairs"]
            wire = public.to_wire()

            async def combine(rows: range) -> list[int]:
                own = []
                for j in rows:
                    row = pairs[j][column]
                    own.extend(ciphertexts[row * per_row : (row + 1) * per_row])
                mask = masks[rows.start * per_row : rows.stop * per_row]
                return await self.executor.run(_mask_and_rerandomise, wire, own, mask)

            def message(rows: range, combined: list[int]) -> msg.Message:
                return msg.Masked(BigIntArray(tuple(combined), width))

            await self._stream_rows(party, len(pairs), combine, message, f"rows re-randomised for {party}")
            await self._send(party, msg.MaskedEnd(len(pairs)))
            s["ciphertexts"] = None

        async def step6() -> None:
            self.executor = self.executor.sized(self.intersection_size)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(forward, HOSPITAL, 0)
                nursery.start_soon(forward, INSURER, 1)
            state.clear()

        await self._in_step(4, step4)
        await self._in_step(5, step5)
        await self._in_step(6, step6)
        await self._in_step(7, self._step7)
        if config.lasso:
            await self._in_step(8, self._step8)

    # ---- steps 7 and 8 (all three parties) -----------------------------------------
    async def _step7(self) -> None:
        from ..mpc.convert import to_shamir
        from ..mpc.engine import Engine

        m = self.intersection_size
        width = len(self.config.joined_columns)
        self._engine = Engine(PARTY_INDEX[self.role], self.params)
        self._created("mpc_state", self._engine)
        await self._run_program(self._engine.setup())
        shamir: list[int] = []
        additive = self._additive
        for chunk in _chunks(m, self.config.chunk_rows):
            flat = None if additive is None else [v for i in chunk for v in additive[i]]
            shamir.extend(await self._run_program(to_shamir(self._engine, flat, len(chunk) * width)))
            self._report(chunk.stop, m, "rows converted")
        self._shamir = shamir
        self._created("shamir_shares")
        self._hold("shamir_shares", shamir)
        if additive is not None:
            additive.clear()
            self._additive = None
            self._deleted("additive_shares")
        if not self.config.lasso:
            self._finish_mpc()

    def _finish_mpc(self) -> None:
        if self._shamir is not None:
            self._shamir.clear()
            self._shamir = None
        self._deleted("shamir_shares")
        engine, self._engine = self._engine, None
        engine.destroy()
        self._deleted("mpc_state", engine)

    async def _step8(self) -> None:
        from ..mpc.lasso import lasso_fit

        config = self.config
        columns = config.joined_columns
        width = len(columns)
        m = self.intersection_size
        shares = self._shamir or []
        target = columns.index(config.target)
        feature_index = [i for i, c in enumerate(columns) if c != config.target]
        x = [[shares[r * width + c] for c in feature_index] for r in range(m)]
        y = [shares[r * width + target] for r in range(m)]
        owners = [PARTY_INDEX[self._owner_of(columns[c])] for c in feature_index]
        scales: dict[int, float] = {}
        if self.table is not None:
            # private preconditioning: each owner's max-abs of its own columns (whole local
            # table), and the target's under key d; never sent in clear (input as shares)
            own = config.columns_of(self.role)
            values = self.table.values
            scale = float(1 << self.params.frac_bits)

            def max_abs(column: str) -> float:
                top = float(abs(values[:, own.index(column)]).max()) / scale if len(values) else 0.0
                return top if top > 0 else 1.0

            for j, c in enumerate(feature_index):
                if columns[c] in own:
                    scales[j] = max_abs(columns[c])
            if config.target in own:
                scales[len(feature_index)] = max_abs(config.target)
        program = lasso_fit(
            self._engine, x, y, m=m, d=len(feature_index), owners=owners, scales=scales,
            alpha=config.alpha, max_iter=config.max_iter, check_every=LASSO_CHECK_EVERY,
            target_owner=PARTY_INDEX[config.target_owner],
        )
        self.result = await self._run_program(
            program, progress=("converged", LASSO_CHECK_EVERY, config.max_iter)
        )
        x.clear()
        y.clear()
        self._hold("result", self.result)
        self.revealed = list(self._engine.revealed)  # (label, count) of every output opened in clear
        self._finish_mpc()

    # ---- step 9: the end-of-run agreement ---------------------------------------------
    def _outcome_digest(self) -> bytes:
        """SHA-256 of what this run produced: session, intersection size and the opened model.

        Equal at all three parties exactly when they computed the same result (the
        model's values come from the same opened field elements at every party).
        """
        r = self.result
        model = None if r is None else [list(r.coefficients), r.intercept, r.r2, r.iterations, r.converged]
        outcome = [self.scheduler.session.hex(), self.intersection_size, list(self.config.features), model]
        return hashlib.sha256(json.dumps(outcome, separators=(",", ":")).encode()).digest()

    async def _confirm(self) -> None:
        """Send both peers our digest, then wait for theirs; return only if all three agree.

        Every secret is gone before this step begins (``REQUIRES_DELETED``). The run's
        result is returned, and so written, only after both peers confirmed: a party that
        failed anywhere before never confirms, and its peers fail here instead of
        finishing alone.
        """
        digest = self._outcome_digest()
        peers = sorted(self.links)
        for peer in peers:
            await self._send(peer, msg.Done(digest))
        for peer in peers:
            theirs = await self._expect(peer, "done")
            if theirs.digest != digest:  # type: ignore[attr-defined]
                raise PeerProtocolError(
                    f"{self.role}: at step {CONFIRM} ({STEP_NAMES[CONFIRM]}): {peer} computed a different "
                    "result (its outcome digest differs from ours)"
                )


def _mask_and_rerandomise(public_wire: dict[str, int], own: list[int], masks: list[int]) -> list[int]:
    """TTP, step 6: ``Enc(x) * Enc(2^k - r)`` re-randomised, so the key owner cannot link it to its row."""
    nsquare = gmpy2.mpz(public_wire["n"]) ** 2
    combined = [int(gmpy2.mpz(a) * b % nsquare) for a, b in zip(own, masks, strict=True)]
    return paillier.rerandomize_raw(public_wire, combined)


def _check_intersection(m: int, rows: int, minimum: int, role: str) -> None:
    if m > rows:  # a lying or corrupt TTP: step 5 would build m mask rows, unbounded and uninterruptible
        raise PeerProtocolError(
            f"{role}: at step 4 ttp announced an intersection of {m} rows, more than the {rows} rows sent"
        )
    if m < minimum:
        raise IntersectionTooSmall(
            f"{role}: the intersection has {m} rows, below the minimum of {minimum}; "
            "every party stops and nothing is computed"
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MpcactorsError):
        return f"{type(exc).__name__}: {exc}"
    return f"internal error ({type(exc).__name__})"


async def run_party(
    role: str,
    links: Mapping[str, trio.abc.Channel[Envelope]],
    *,
    session: bytes,
    config: RunConfig,
    table: Any = None,
    executor: Executor | None = None,
    observer: Observer | None = None,
    progress: Any = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> PartyResult:
    """Run one party of the protocol to the end over the given links.

    Args:
        role: ``"hospital"``, ``"insurer"`` or ``"ttp"``.
        links: one :class:`trio.abc.Channel` of envelopes per peer role (memory or TLS).
        session: the 16-byte session id every message is bound to.
        config: the public run parameters (all parties must agree).
        table: this party's validated :class:`~mpcactors.data.PartyTable` (``None`` for the TTP).
        executor: where crypto runs (default: ``auto``, sized by this party's work).
        observer: simulation-only hooks that see what this party holds.
        progress: ``progress(role, step, done, total, unit)`` for long steps.

    Raises:
        MpcactorsError: a subclass naming the party, step and cause; every key and
            share this party held is destroyed before it propagates.
    """
    if (role == TTP) != (table is None):
        raise ValueError("the TTP has no input table; the data parties must have one")
    party = _Party(
        role, links, session=session, config=config, table=table,
        executor=executor or Executor(), observer=observer, progress=progress,
    )
    try:
        return await party.run(task_status)
    except BaseExceptionGroup as group:
        raise first_cause(group) from None
