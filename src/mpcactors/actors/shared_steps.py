"""Steps 7 to 9, which every party takes: to Shamir shares, the secure analysis, confirm.

Step 7 turns the data parties' additive shares into 3-party Shamir shares held by the
compute parties (the TTP and two data parties): those two convert theirs with the TTP,
and every data party outside the computation deals Shamir shares of its own to the
three, with its private column scales, then holds nothing. Step 8 runs the analysis
among the compute parties and sends its opened output to the parties outside. Step 9
checks that every party computed the same outcome before any of them returns it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict

from ..errors import PeerProtocolError
from ..mpc.convert import to_shamir
from ..mpc.engine import Engine
from ..mpc.lasso import CHECK_EVERY, DEALT, LassoResult, lasso_fit, scale_inputs
from ..protocol import messages as msg
from ..protocol.steps import STEP_NAMES, Group, Step
from ..protocol.wire import BigIntArray
from .actor import Actor, chunks
from .hooks import Held

__all__ = ["SharedSteps"]


class SharedSteps:
    """Steps 7, 8 and 9 of any party, over its :class:`Actor`."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        roster = actor.roster
        self.outside = Group.OUTSIDE.members(roster)
        self.computes = actor.role in roster.compute_parties
        #: per party outside the computation: our shares of the scale inputs it dealt
        self.dealt_scales: dict[str, list[int]] = {}

    async def run(self) -> None:
        a = self.actor
        await a.in_step(Step.TO_SHAMIR, self.to_shamir if self.computes else self.deal)
        if a.config.lasso:
            await a.in_step(Step.ANALYSIS, self.lasso if self.computes else self.receive_output)
        await a.in_step(Step.CONFIRM, self.confirm)

    # ---- step 7 ---------------------------------------------------------------------------
    def _feature_index(self) -> list[int]:
        config = self.actor.config
        return [i for i, c in enumerate(config.joined_columns) if c != config.target]

    def _scale_keys(self, party: str) -> list[int]:
        """The scale keys (feature index, or ``d`` and ``d + 1`` for the target) ``party`` owns."""
        config = self.actor.config
        columns = config.joined_columns
        features = self._feature_index()
        keys = [j for j, c in enumerate(features) if config.owner_of(columns[c]) == party]
        if config.target_owner == party:
            keys += [len(features), len(features) + 1]
        return keys

    def _own_scales(self) -> dict[int, float]:
        """Private preconditioning: our max-abs of each column we own (whole local table),
        and the target's under key ``d``; never sent in clear (input as shares)."""
        a = self.actor
        config = a.config
        columns = config.joined_columns
        own = config.columns_of(a.role)
        values = a.table.values
        scale = float(1 << a.params.frac_bits)

        def max_abs(column: str) -> float:
            top = float(abs(values[:, own.index(column)]).max()) / scale if len(values) else 0.0
            return top if top > 0 else 1.0

        features = self._feature_index()
        scales = {j: max_abs(columns[c]) for j, c in enumerate(features) if columns[c] in own}
        if config.target in own:
            scales[len(features)] = max_abs(config.target)
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
            scales = len(self._scale_keys(party)) if a.config.lasso else 0
            dealt = await self._receive_dealt(party, m * width + scales)
            p = a.params.prime
            shamir = [(s + t) % p for s, t in zip(shamir, dealt[: m * width], strict=True)]
            self.dealt_scales[party] = dealt[m * width :]
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
        width = (p.bit_length() + 7) // 8
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
        if a.config.lasso:
            inputs = scale_inputs(a.params, self._own_scales(), len(self._feature_index()))
            await send([inputs[k] for k in self._scale_keys(a.role)])
        for party in computes:
            await a.send(party, msg.DealtEnd(m))
        a.vault.destroy("additive_shares")

    def _finish_mpc(self) -> None:
        vault = self.actor.vault
        vault.destroy("shamir_shares")
        vault.destroy("mpc_state")

    # ---- step 8 ---------------------------------------------------------------------------
    async def lasso(self) -> None:
        """Step 8: the secure lasso; opens the model and the convergence bits, nothing else,
        and sends the model to the parties outside the computation."""
        a = self.actor
        config, roster = a.config, a.roster
        columns = config.joined_columns
        width = len(columns)
        m = a.intersection_size
        shares = a.vault["shamir_shares"]
        target = columns.index(config.target)
        feature_index = self._feature_index()
        d = len(feature_index)
        x = [[shares[r * width + c] for c in feature_index] for r in range(m)]
        y = [shares[r * width + target] for r in range(m)]

        def index_of(owner: str) -> int:
            return roster.index(owner) if owner in roster.compute_parties else DEALT

        owners = [index_of(config.owner_of(columns[c])) for c in feature_index]
        dealt = {k: v for party in self.outside for k, v in zip(self._scale_keys(party), self.dealt_scales[party])}
        engine = a.vault["mpc_state"]
        program = lasso_fit(
            engine, x, y, m=m, d=d, owners=owners, scales=self._own_scales() if a.table is not None else {},
            alpha=config.alpha, max_iter=config.max_iter, check_every=CHECK_EVERY,
            target_owner=index_of(config.target_owner), dealt=dealt,
        )
        a.result = await a.run_program(program, progress=("converged", CHECK_EVERY, config.max_iter))
        x.clear()
        y.clear()
        a.hold(Held.RESULT, a.result)
        a.revealed = list(engine.revealed)  # (label, count) of every output opened in clear
        self._finish_mpc()
        values = asdict(a.result)
        values["coefficients"] = list(values["coefficients"])
        for party in self.outside:
            await a.send(party, msg.Output("lasso", values))

    async def receive_output(self) -> None:
        """Step 8 outside the computation: the model from each compute party; all must agree."""
        a = self.actor
        received = [await a.expect(party, msg.Output) for party in a.roster.compute_parties]
        if any(r.values != received[0].values or r.name != "lasso" for r in received):
            raise PeerProtocolError(f"{a.role}: at step 8: the compute parties sent different outputs")
        values = dict(received[0].values)
        values["coefficients"] = tuple(values["coefficients"])
        try:
            a.result = LassoResult(**values)
        except TypeError:
            raise PeerProtocolError(f"{a.role}: at step 8: the lasso output has fields {sorted(values)}") from None
        a.hold(Held.RESULT, a.result)

    # ---- step 9 ---------------------------------------------------------------------------
    def outcome_digest(self) -> bytes:
        """SHA-256 of what this run produced: session, intersection size and the opened model.

        Equal at every party exactly when they computed the same result (the model's
        values come from the same opened field elements at every party).
        """
        a = self.actor
        r = a.result
        model = None if r is None else [list(r.coefficients), r.intercept, r.r2, r.iterations, r.converged]
        outcome = [a.scheduler.session.hex(), a.intersection_size, list(a.config.features), model]
        return hashlib.sha256(json.dumps(outcome, separators=(",", ":")).encode()).digest()

    async def confirm(self) -> None:
        """Step 9: send every peer our digest, then wait for theirs; return only if all agree.

        Every secret is gone before this step begins (:data:`~mpcactors.protocol.steps.SECRETS`).
        The run's result is returned, and so written, only after every peer confirmed: a
        party that failed anywhere before never confirms, and its peers fail here
        instead of finishing alone.
        """
        a = self.actor
        digest = self.outcome_digest()
        peers = sorted(a.links)
        for peer in peers:
            await a.send(peer, msg.Done(digest))
        for peer in peers:
            theirs = await a.expect(peer, msg.Done)
            if theirs.digest != digest:
                raise PeerProtocolError(
                    f"{a.role}: at step {int(Step.CONFIRM)} ({STEP_NAMES[Step.CONFIRM]}): {peer} computed a different "
                    "result (its outcome digest differs from ours)"
                )
