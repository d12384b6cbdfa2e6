"""Steps 7 to 9, which every party takes: to Shamir shares, the secure analysis, confirm.

Step 7 turns the data parties' additive shares into 3-party Shamir shares held by
the compute parties; step 8 runs the analysis on them and opens its output; step 9
checks that every party computed the same outcome before any of them returns it.
"""

from __future__ import annotations

import hashlib
import json

from ..errors import PeerProtocolError
from ..mpc.convert import to_shamir
from ..mpc.engine import Engine
from ..mpc.lasso import lasso_fit
from ..protocol import messages as msg
from ..protocol.steps import STEP_NAMES, Step
from .actor import Actor, chunks
from .hooks import Held

__all__ = ["LASSO_CHECK_EVERY", "SharedSteps"]

#: Iterations between the lasso's convergence checks (one revealed bit each).
LASSO_CHECK_EVERY = 5


class SharedSteps:
    """Steps 7, 8 and 9 of any party, over its :class:`Actor`."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    async def run(self) -> None:
        a = self.actor
        await a.in_step(Step.TO_SHAMIR, self.to_shamir)
        if a.config.lasso:
            await a.in_step(Step.ANALYSIS, self.lasso)
        await a.in_step(Step.CONFIRM, self.confirm)

    async def to_shamir(self) -> None:
        """Step 7: Shamir-share every additive share; the additive shares die here."""
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
        a.vault.create("shamir_shares", shamir)
        a.hold(Held.SHAMIR_SHARES, shamir)
        if additive is not None:
            a.vault.destroy("additive_shares")
        if not a.config.lasso:
            self._finish_mpc()

    def _finish_mpc(self) -> None:
        vault = self.actor.vault
        vault.destroy("shamir_shares")
        vault.destroy("mpc_state")

    async def lasso(self) -> None:
        """Step 8: the secure lasso; opens the model and the convergence bits, nothing else."""
        a = self.actor
        config = a.config
        columns = config.joined_columns
        width = len(columns)
        m = a.intersection_size
        shares = a.vault["shamir_shares"]
        target = columns.index(config.target)
        feature_index = [i for i, c in enumerate(columns) if c != config.target]
        x = [[shares[r * width + c] for c in feature_index] for r in range(m)]
        y = [shares[r * width + target] for r in range(m)]
        owners = [a.roster.index(config.owner_of(columns[c])) for c in feature_index]
        scales: dict[int, float] = {}
        if a.table is not None:
            # private preconditioning: each owner's max-abs of its own columns (whole local
            # table), and the target's under key d; never sent in clear (input as shares)
            own = config.columns_of(a.role)
            values = a.table.values
            scale = float(1 << a.params.frac_bits)

            def max_abs(column: str) -> float:
                top = float(abs(values[:, own.index(column)]).max()) / scale if len(values) else 0.0
                return top if top > 0 else 1.0

            for j, c in enumerate(feature_index):
                if columns[c] in own:
                    scales[j] = max_abs(columns[c])
            if config.target in own:
                scales[len(feature_index)] = max_abs(config.target)
        engine = a.vault["mpc_state"]
        program = lasso_fit(
            engine, x, y, m=m, d=len(feature_index), owners=owners, scales=scales,
            alpha=config.alpha, max_iter=config.max_iter, check_every=LASSO_CHECK_EVERY,
            target_owner=a.roster.index(config.target_owner),
        )
        a.result = await a.run_program(program, progress=("converged", LASSO_CHECK_EVERY, config.max_iter))
        x.clear()
        y.clear()
        a.hold(Held.RESULT, a.result)
        a.revealed = list(engine.revealed)  # (label, count) of every output opened in clear
        self._finish_mpc()

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
