"""Attacks by two parties pooling what they hold (and one party alone against its shares)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...crypto import shamir
from ..views import HOSPITAL, INSURER, TTP
from ..stats import binomial_threshold
from ..views import RecordedRun, coalition_view
from ._common import AFTER_RUN, INFER, SINGLE_OUT, AttackResult, attack_result

__all__ = ["coalition_membership", "coalition_reconstruction"]


def coalition_membership(run: RecordedRun, role: str) -> AttackResult:
    """A data party and the TTP pool their step-4 views: which of its rows are shared?

    The party knows which of its rows each of its hashed ids came from (it computed
    them); the TTP holds the other party's hashed ids. A row is a member iff its
    digest is among the other party's. The protocol does not protect against this
    collusion (``docs/threat-model.md``); the attack shows what it would expose.
    """
    if role not in (HOSPITAL, INSURER):
        raise ValueError("the coalition is a data party with the TTP")
    other = INSURER if role == HOSPITAL else HOSPITAL
    view = coalition_view(run, (role, TTP), 4)
    h_digests, i_digests = view.get(TTP, "hashed_ids", ([], []))
    others = set(i_digests if role == HOSPITAL else h_digests)
    own_digests = view.get(role, "hashed_ids", [])
    send_order = run.send_order(role)
    members = run.intersection_ids()
    hits = sum(1 for d, id_ in zip(own_digests, send_order, strict=True) if (d in others) == (id_ in members))
    n = len(own_digests)
    m = run.intersection_size
    baseline = max(m, n - m) / n if n else 0.0
    explanation = (
        f"The {role} and the TTP matched the {role}'s {n} hashed ids (each tied to one of its rows) against the "
        f"{other}'s hashed ids held by the TTP in step 4: right about membership for {hits} of {n} rows. "
        f"Without pooling, the best guess (all rows in, or all out) is right for {baseline:.3f} of them."
    )
    return attack_result(
        run, "coalition_membership", INFER, (role, TTP), 4, hits, n, baseline,
        binomial_threshold(n, baseline), explanation,
    )


def coalition_reconstruction(
    run: RecordedRun, coalition: Sequence[str], step: int, *, retained: bool = False
) -> AttackResult:
    """Parties pool what they hold at ``step`` (7, or 9 for after the run) and try to
    rebuild the joined table (one party alone can be given as a one-member coalition).

    With two parties' Shamir shares (threshold 2) Lagrange interpolation gives every
    entry; during steps 6 and 7 the hospital's and the insurer's additive shares also
    add up to it. After the run the protocol has deleted every share, so only the
    output is left, which contains no entry of the table (``retained=True`` models
    parties that kept copies despite the deletion rule: it must succeed).

    Success: the fraction of the joined table's entries (``m`` rows x all columns, in
    the TTP's order) reconstructed exactly; baseline 0 (guessing a 45-bit encoded
    value exactly).
    """
    members = tuple(coalition)
    view_step = min(step, 8)
    if step == AFTER_RUN:
        view = _after_run_view(run, members, retained)
    else:
        view = coalition_view(run, members, view_step, retained=retained)
    truth = run.joined_values()
    m, width = truth.shape
    entries = m * width
    params = run.config.params
    index = {HOSPITAL: 1, INSURER: 2, TTP: 3}
    shares = {index[r]: view.holds[r]["shamir_shares"] for r in members if "shamir_shares" in view.holds[r]}
    how = "nothing to combine"
    guess: np.ndarray | None = None
    if len(shares) >= 2:
        values = shamir.reconstruct(shares, params.prime)
        guess = np.array([params.centred(v) for v in values], dtype=object).reshape(m, width)
        how = "Lagrange interpolation of two Shamir shares"
    elif len(shares) == 1:
        (only,) = shares.values()
        guess = np.array([params.centred(v) for v in only], dtype=object).reshape(m, width)
        how = "reading its one Shamir share as the value (right only if the sharing were degenerate)"
    elif all("additive_shares" in view.holds.get(r, {}) for r in (HOSPITAL, INSURER)):
        a, b = view.holds[HOSPITAL]["additive_shares"], view.holds[INSURER]["additive_shares"]
        guess = np.array([[x + y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)], dtype=object)
        how = "adding the two additive shares"
    successes = int(sum(1 for g, t in zip(guess.ravel(), truth.ravel()) if int(g) == int(t))) if guess is not None else 0
    when = "after the run" if step == AFTER_RUN else f"during step {step}"
    held = {r: sorted(view.holds[r]) for r in members}
    explanation = (
        f"{' and '.join(members)} {'pooled' if len(members) > 1 else 'used'} what {'they' if len(members) > 1 else 'it'} "
        f"{'kept' if retained else 'held'} {when} "
        f"({'; '.join(f'{r}: ' + (', '.join(h) or 'nothing') for r, h in held.items())}) and tried "
        f"{how}: {successes:,} of the {entries:,} entries of the joined table came out exactly right."
    )
    return attack_result(
        run, "coalition_reconstruction", SINGLE_OUT, members, step, successes, entries, 0.0, 0, explanation,
        method=how, retained=retained, held=held,
    )


def _after_run_view(run: RecordedRun, members: Sequence[str], retained: bool) -> Any:
    view = coalition_view(run, members, 8 if run.config.lasso else 7, retained=retained)
    if retained:
        return view
    holds = {
        r: {name: v for name, v in items.items() if run.last_step_of(r, name) is None}
        for r, items in view.holds.items()
    }
    return type(view)(view.parties, AFTER_RUN, retained, holds, {r: [] for r in members}, [], [], view.handed)
