"""Steps 7 to 9, which every party takes: to Shamir shares, the plan's analyses, confirm.

Step 7 turns the data parties' additive shares into 3-party Shamir shares held by the
compute parties (the TTP and two data parties): those two convert theirs with the TTP,
and every data party outside the computation deals Shamir shares of its own to the
three, with its private column scales for each lasso of the plan, then holds nothing.

Step 8 runs the study plan's analyses in order among the compute parties. The engine's
gate (:class:`mpcactors.plan.Gate`) admits only the openings the plan's manifest lists
and sends each output to its recipients only; a data party outside the computation
that is a recipient gets the values (or the three parties' shares of them) in one
:class:`~mpcactors.protocol.messages.Delivered` message per compute party and decodes
them by replaying the analysis (:mod:`mpcactors.mpc.replay`). Step 9 checks, pairwise,
that every two parties computed the same outputs they both received before either
returns them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from typing import Any

from ..crypto.shamir import reconstruct
from ..errors import PeerProtocolError
from ..mpc.convert import to_shamir
from ..mpc.describe import describe_fit
from ..mpc.engine import Engine, Program
from ..mpc.lasso import CHECK_EVERY, DEALT, lasso_fit, scale_inputs
from ..mpc.lasso_cv import lasso_cv_fit
from ..mpc.linear import linear_fit
from ..mpc.logistic import logistic_fit
from ..mpc.replay import ReplayEngine, replay
from ..plan import OTHER, Analysis, Describe, Gate, Lasso, Linear, Logistic, indicator_columns
from ..protocol import messages as msg
from ..protocol.steps import STEP_NAMES, Group, Step
from ..protocol.wire import BigIntArray
from .actor import Actor, chunks
from .hooks import Held
from .results import output_document

__all__ = ["SharedSteps"]


class SharedSteps:
    """Steps 7, 8 and 9 of any party, over its :class:`Actor`."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        roster = actor.roster
        self.outside = Group.OUTSIDE.members(roster)
        self.computes = actor.role in roster.compute_parties
        self.plan = actor.config.study_plan
        self.lassos = [a.method for a in self.plan.analyses if isinstance(a.method, Lasso)] if actor.config.lasso else []
        #: per party outside the computation: our shares of the scale inputs it dealt, per lasso
        self.dealt_scales: dict[str, list[dict[int, int]]] = {}

    async def run(self) -> None:
        a = self.actor
        await a.in_step(Step.TO_SHAMIR, self.to_shamir if self.computes else self.deal)
        if a.config.lasso:
            await a.in_step(Step.ANALYSIS, self.analyse if self.computes else self.receive_outputs)
        await a.in_step(Step.CONFIRM, self.confirm)

    # ---- step 7 ---------------------------------------------------------------------------
    def _scale_keys(self, party: str, lasso: Lasso) -> list[int]:
        """The scale keys (feature index, or ``d`` and ``d + 1`` for the target) ``party`` owns."""
        config = self.actor.config
        d = len(lasso.features)
        keys = [j for j, c in enumerate(lasso.features) if config.owner_of(c) == party]
        if config.owner_of(lasso.target) == party:
            keys += [d, d + 1]
        return keys

    def _own_scales(self, lasso: Lasso) -> dict[int, float]:
        """Private preconditioning: our max-abs of each column we own (whole local table),
        and the target's under key ``d``; never sent in clear (input as shares)."""
        a = self.actor
        own = a.config.columns_of(a.role)
        values = a.table.values
        scale = float(1 << a.params.frac_bits)

        def max_abs(column: str) -> float:
            top = float(abs(values[:, own.index(column)]).max()) / scale if len(values) else 0.0
            return top if top > 0 else 1.0

        scales = {j: max_abs(c) for j, c in enumerate(lasso.features) if c in own}
        if lasso.target in own:
            scales[len(lasso.features)] = max_abs(lasso.target)
        return scales

    async def to_shamir(self) -> None:
        """Step 7 at a compute party: convert, add the dealt shares; the additive shares die here."""
        a = self.actor
        m = a.intersection_size
        width = len(a.config.joined_columns)
        engine = a.vault.create("mpc_state", Engine(a.roster.index(a.role), a.params))
        await a.run_program(engine.setup())
        shamir: list[int] = []
        additive = a.vault["additive_shares"] if "additive_shares" in a.vault else None
        for chunk in chunks(m, a.config.chunk_rows):
            flat = None if additive is None else [v for i in chunk for v in additive[i]]
            shamir.extend(await a.run_program(to_shamir(engine, flat, len(chunk) * width)))
            a.report(chunk.stop, m, "rows converted")
        for party in self.outside:
            keys = [self._scale_keys(party, lasso) for lasso in self.lassos]
            dealt = await self._receive_dealt(party, m * width + sum(map(len, keys)))
            p = a.params.prime
            shamir = [(s + t) % p for s, t in zip(shamir, dealt[: m * width], strict=True)]
            tail = iter(dealt[m * width :])
            self.dealt_scales[party] = [{k: next(tail) for k in lasso_keys} for lasso_keys in keys]
        a.vault.create("shamir_shares", shamir)
        a.hold(Held.SHAMIR_SHARES, shamir)
        if additive is not None:
            a.vault.destroy("additive_shares")
        if not a.config.lasso:
            self._finish_mpc()

    async def _receive_dealt(self, party: str, count: int) -> list[int]:
        a = self.actor
        values: list[int] = []
        while True:
            message = await a.expect(party, msg.Dealt, msg.DealtEnd)
            if isinstance(message, msg.DealtEnd):
                if message.rows != a.intersection_size or len(values) != count:
                    raise PeerProtocolError(f"{party} dealt {len(values)} shares, expected {count}")
                return values
            values.extend(message.values)
            if len(values) > count:
                raise PeerProtocolError(f"{party} dealt more shares than the joined table has entries")

    async def deal(self) -> None:
        """Step 7 outside the computation: Shamir-share our additive share (and our private
        column scales) to the three compute parties, then hold nothing.

        Each value ``s`` becomes ``f(i) = s + a i mod p`` for a fresh uniform ``a``: any one
        share is uniform, so no single compute party learns anything from it.
        """
        a = self.actor
        p = a.params.prime
        width = a.params.field_bytes
        m = a.intersection_size
        additive = a.vault["additive_shares"]
        computes = a.roster.compute_parties

        async def send(values: list[int]) -> None:
            slopes = [secrets.randbelow(p) for _ in values]
            for index, party in enumerate(computes, start=1):
                shares = [(v + r * index) % p for v, r in zip(values, slopes)]
                await a.send(party, msg.Dealt(BigIntArray(tuple(shares), width)))

        for chunk in chunks(m, a.config.chunk_rows):
            await send([v for i in chunk for v in additive[i]])
            a.report(chunk.stop, m, "rows dealt")
        for lasso in self.lassos:
            inputs = scale_inputs(a.params, self._own_scales(lasso), len(lasso.features))
            if values := [inputs[k] for k in self._scale_keys(a.role, lasso)]:
                await send(values)
        for party in computes:
            await a.send(party, msg.DealtEnd(m))
        a.vault.destroy("additive_shares")

    def _finish_mpc(self) -> None:
        vault = self.actor.vault
        vault.destroy("shamir_shares")
        vault.destroy("mpc_state")

    # ---- step 8 ---------------------------------------------------------------------------
    def _program(self, analysis: Analysis, engine: Engine, dealt: dict[str, dict[int, int]] | None) -> Program[Any]:
        """The MPC program of one analysis on our shares; with ``dealt`` ``None``, on zeros
        (a replay at a party outside the computation, which holds no shares)."""
        a = self.actor
        config, roster = a.config, a.roster
        columns = config.joined_columns
        width = len(columns)
        m = a.intersection_size
        shares = a.vault["shamir_shares"] if dealt is not None else None

        def rows(names: Sequence[str]) -> list[list[int]]:
            index = [columns.index(c) for c in names]
            if shares is None:
                return [[0] * len(index) for _ in range(m)]
            return [[shares[r * width + c] for c in index] for r in range(m)]

        method = analysis.method
        if isinstance(method, Describe):
            indicators: list[list[int]] = [[] for _ in range(m)]
            categorical: dict[str, tuple[Any, ...]] = {}
            p = a.params.prime
            for column, levels in method.categorical:
                union = config.indicators_of(config.owner_of(column))[column]
                hot = rows(indicator_columns(column, union))  # one per union level, then other
                rest = [i for i, level in enumerate(union) if level not in levels] + [len(union)]
                keep = [union.index(level) for level in levels]
                for row, h in zip(indicators, hot):
                    row.extend(h[i] for i in keep)
                    row.append(sum(h[i] for i in rest) % p)
                categorical[column] = (*levels, OTHER)
            return describe_fit(
                engine, rows(method.columns), m=m, columns=method.columns, indicators=indicators if categorical else (),
                categorical=categorical, min_cell=self.plan.min_cell,
            )
        x = rows(method.features)
        y = [row[0] for row in rows((method.target,))]
        if isinstance(method, Linear):
            return linear_fit(engine, x, y, m=m, d=len(method.features), min_cell=self.plan.min_cell, ridge=method.ridge)
        if isinstance(method, Logistic):
            return logistic_fit(engine, x, y, m=m, d=len(method.features), min_cell=self.plan.min_cell,
                                max_iter=method.max_iter, l2=method.l2)
        assert isinstance(method, Lasso)

        def index_of(owner: str) -> int:
            return roster.index(owner) if owner in roster.compute_parties else DEALT

        owners = [index_of(config.owner_of(c)) for c in method.features]
        target_owner = index_of(config.owner_of(method.target))
        number = self.lassos.index(method)
        if dealt is None:  # replay: zeros under the keys of every column dealt from outside
            outside = {k for party in self.outside for k in self._scale_keys(party, method)}
            dealt_shares, scales = dict.fromkeys(outside, 0), {}
        else:
            dealt_shares = {k: v for party in self.outside for k, v in dealt[party][number].items()}
            scales = self._own_scales(method) if a.table is not None else {}
        common = dict(m=m, d=len(method.features), owners=owners, scales=scales, max_iter=method.max_iter,
                      check_every=CHECK_EVERY, target_owner=target_owner, dealt=dealt_shares)
        if isinstance(method.alpha, tuple):
            assert method.folds is not None
            return lasso_cv_fit(engine, x, y, alphas=method.alpha, folds=method.folds, **common)  # type: ignore[arg-type]
        return lasso_fit(engine, x, y, alpha=method.alpha, **common)  # type: ignore[arg-type]

    async def analyse(self) -> None:
        """Step 8 at a compute party: the plan's analyses in order, each behind its gate;
        then every party outside the computation gets what it is a recipient of."""
        a = self.actor
        engine = a.vault["mpc_state"]
        manifest = self.plan.manifest(check_every=CHECK_EVERY)
        kept: dict[str, list[tuple[str, bool, list[int]]]] = {}
        for analysis in self.plan.analyses:
            engine.gate = Gate(manifest, analysis, a.roster)
            before = len(engine.revealed)
            program = a.hooks.program(a.role, analysis.name, engine, self._program(analysis, engine, self.dealt_scales))
            progress = None
            if isinstance(analysis.method, Lasso):
                progress = ("converged", CHECK_EVERY, analysis.method.max_iter, f"{analysis.name}: lasso iterations (at most)")
            result = await a.run_program(program, progress=progress)
            if a.role in analysis.recipients:
                a.outputs[analysis.name] = result
            a.revealed.extend((analysis.name, label, n) for label, n in engine.revealed[before:])
            kept[analysis.name], engine.kept = engine.kept, []
        engine.gate = None
        a.hold(Held.RESULT, dict(a.outputs))
        self._finish_mpc()
        width = a.params.field_bytes
        for party in self.outside:
            entries = [(name, *entry) for name, reveals in kept.items()
                       if party in self.plan.analysis(name).recipients for entry in reveals]
            await a.send(party, msg.Delivered(
                [e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries],
                [BigIntArray.of(e[3], signed=True) if e[2] else BigIntArray(tuple(e[3]), width) for e in entries],
            ))

    async def receive_outputs(self) -> None:
        """Step 8 outside the computation: the openings of every analysis we are a recipient
        of, from each compute party; decoded by replaying the analysis on them."""
        a = self.actor
        computes = a.roster.compute_parties
        where = f"{a.role}: at step {int(Step.ANALYSIS)}"
        received = {party: await a.expect(party, msg.Delivered) for party in computes}
        p = a.params.prime
        mine = [analysis for analysis in self.plan.analyses if a.role in analysis.recipients]
        for party, delivered in received.items():
            unknown = set(delivered.analyses) - {analysis.name for analysis in mine}
            if unknown:
                raise PeerProtocolError(f"{where}: {party} delivered outputs of {sorted(unknown)}, which are not ours")
        for analysis in mine:
            entries = {
                party: [(label, clear, list(values)) for name, label, clear, values in
                        zip(d.analyses, d.labels, d.clear, d.values, strict=True) if name == analysis.name]
                for party, d in received.items()
            }
            first = entries[computes[0]]
            if any([(lb, c, len(v)) for lb, c, v in e] != [(lb, c, len(v)) for lb, c, v in first] for e in entries.values()):
                raise PeerProtocolError(f"{where}: the compute parties delivered different openings of {analysis.name!r}")
            opened = []
            for k, (label, clear, values) in enumerate(first):
                if clear:
                    if any(e[k][2] != values for e in entries.values()):
                        raise PeerProtocolError(f"{where}: the compute parties delivered different values of {analysis.name!r}")
                else:
                    if any(v < 0 or v >= p for e in entries.values() for v in e[k][2]):
                        raise PeerProtocolError(f"{where}: a share of {analysis.name!r} is not a field element")
                    whole = reconstruct({n: entries[party][k][2] for n, party in enumerate(computes, 1)}, p)
                    values = [a.params.centred(v) for v in whole]
                opened.append((label, values))
            engine = ReplayEngine(a.params, opened)
            try:
                a.outputs[analysis.name] = replay(self._program(analysis, engine, None), engine)
            except PeerProtocolError as exc:
                raise PeerProtocolError(f"{where}: the openings of {analysis.name!r} do not fit it: {exc}") from None
            a.revealed.extend((analysis.name, label, len(values)) for label, values in opened)
        a.hold(Held.RESULT, dict(a.outputs))

    # ---- step 9 ---------------------------------------------------------------------------
    def outcome_digest(self, peer: str | None = None) -> bytes:
        """SHA-256 of what this run produced: session, intersection size, plan and outputs.

        With ``peer``, only the outputs both of us received: equal at the two exactly
        when they computed the same (every output comes from the same opened field
        elements at every recipient). Without, every output we received.
        """
        a = self.actor
        names = [n for n in a.outputs if peer is None or peer in self.plan.analysis(n).recipients]
        documents = [[n, output_document(self.plan.analysis(n), a.outputs[n], a.config)] for n in names]
        outcome = [a.scheduler.session.hex(), a.intersection_size, self.plan.digest.hex(), documents]
        return hashlib.sha256(json.dumps(outcome, separators=(",", ":")).encode()).digest()

    async def confirm(self) -> None:
        """Step 9: send every peer the digest of what we both received, then wait for
        theirs; return only if all agree.

        Every secret is gone before this step begins (:data:`~mpcactors.protocol.steps.SECRETS`).
        The run's result is returned, and so written, only after every peer confirmed: a
        party that failed anywhere before never confirms, and its peers fail here
        instead of finishing alone.
        """
        a = self.actor
        ours = {peer: self.outcome_digest(peer) for peer in sorted(a.links)}
        for peer, digest in ours.items():
            await a.send(peer, msg.Done(digest))
        for peer, digest in ours.items():
            theirs = await a.expect(peer, msg.Done)
            if theirs.digest != digest:
                raise PeerProtocolError(
                    f"{a.role}: at step {int(Step.CONFIRM)} ({STEP_NAMES[Step.CONFIRM]}): {peer} computed a different "
                    "result (its outcome digest differs from ours)"
                )
