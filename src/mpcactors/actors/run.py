"""Run one party to the end: the one-for-all failure semantics in one place.

Any error stops the party, which tells its peers (an ``abort`` message, best effort)
and, in a shielded ``finally``, destroys every key and clears every share it holds.
Nothing partial is returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
import trio

from ..config import RunConfig
from ..errors import AbortedError, MpcactorsError
from ..protocol.roster import TTP
from ..protocol.steps import Step
from ..protocol.wire import Envelope
from .actor import Actor
from .data_party import DataParty
from .executor import Executor
from .failures import first_cause
from .hooks import DEFAULT_HOOKS, Hooks, Observer
from ..plan import Lasso
from .results import PartyResult, output_document
from .shared_steps import SharedSteps
from .ttp import Ttp

__all__ = ["run_party"]


def _reason(exc: BaseException) -> str:
    """What we tell peers: our error's class and message, or only the class of a bug."""
    if isinstance(exc, MpcactorsError):
        return f"{type(exc).__name__}: {exc}"
    return f"internal error ({type(exc).__name__})"


async def _run(actor: Actor, task_status: trio.TaskStatus[None]) -> PartyResult:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(party=actor.role, session=actor.scheduler.session.hex()[:8])
    failure: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            actor.open_mailboxes(nursery)
            task_status.started()
            steps = Ttp(actor) if actor.role == TTP else DataParty(actor)
            await steps.run()
            shared = SharedSteps(actor)
            await shared.run()
            actor.begin(Step.DONE)
            nursery.cancel_scope.cancel()
    except BaseException as exc:
        failure = exc
        raise
    finally:
        with trio.CancelScope(shield=True):
            actor.vault.destroy_all()
            if failure is not None:
                cause = first_cause(failure)
                if isinstance(cause, MpcactorsError) and cause.step is None:
                    cause.step = max(actor.stats, default=None)  # the last step this party began
                actor.scheduler.fail(cause)
                if not isinstance(cause, AbortedError | trio.Cancelled):
                    await actor.abort_peers(_reason(cause))
            for link in actor.links.values():
                with trio.move_on_after(1):
                    await link.aclose()
    actor.collect_link_stats()
    config, table = actor.config, actor.table
    plan = config.study_plan
    lasso = next((a for a in plan.analyses if a.name in actor.outputs and isinstance(a.method, Lasso)), None)
    features = lasso.method.features if lasso is not None else ()  # type: ignore[union-attr]
    return PartyResult(
        role=actor.role,
        intersection_size=actor.intersection_size,
        result=getattr(actor.outputs[lasso.name], "model", actor.outputs[lasso.name]) if lasso is not None else None,
        features=features,
        owners=tuple(config.owner_of(c) for c in features),
        outputs={n: output_document(plan.analysis(n), v, config) for n, v in actor.outputs.items()},
        steps=actor.stats,
        rows=len(table) if table is not None else 0,
        dropped_missing=getattr(table, "dropped_missing", 0) if table is not None else 0,
        revealed=actor.revealed,
        outcome_digest=shared.outcome_digest().hex(),
    )


async def run_party(
    role: str,
    links: Mapping[str, trio.abc.Channel[Envelope]],
    *,
    session: bytes,
    config: RunConfig,
    table: Any = None,
    executor: Executor | None = None,
    observer: Observer | None = None,
    hooks: Hooks = DEFAULT_HOOKS,
    progress: Any = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> PartyResult:
    """Run one party of the protocol to the end over the given links.

    Args:
        role: a member of ``config.roster``: a data party's name or ``"ttp"``.
        links: one :class:`trio.abc.Channel` of envelopes per peer (memory or TLS).
        session: the 16-byte session id every message is bound to.
        config: the public run parameters (all parties must agree).
        table: this party's validated :class:`~mpcactors.data.PartyTable` (``None`` for the TTP).
        executor: where crypto runs (default: ``auto``, sized by this party's work).
        observer: simulation-only hooks that see what this party holds.
        hooks: the protocol's choices (default: the protocol; see :class:`Hooks`).
        progress: ``progress(role, step, done, total, unit)`` for long steps.

    Raises:
        MpcactorsError: a subclass naming the party, step and cause; every key and
            share this party held is destroyed before it propagates.
    """
    config.roster.check_member(role)
    if (role == TTP) != (table is None):
        raise ValueError("the TTP has no input table; the data parties must have one")
    if table is not None:
        table = config.encode_table(role, table)
    executor = executor or Executor()
    # a data party sizes its crypto by its own table; the TTP, whose only heavy work is
    # step 6, by the intersection once step 4 has told it
    actor = Actor(
        role, links, session=session, config=config, table=table,
        executor=executor.sized(len(table)) if table is not None else executor,
        observer=observer, hooks=hooks, progress=progress,
    )
    try:
        return await _run(actor, task_status)
    except BaseExceptionGroup as group:
        raise first_cause(group) from None
