"""Attacks by parties pooling what they hold (and one party alone against its shares)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...crypto import shamir
from ...protocol.roster import TTP
from ..stats import binomial_threshold
from ..views import RecordedRun, coalition_view
from ._common import AFTER_RUN, INFER, SINGLE_OUT, AttackResult, attack_result

__all__ = ["coalition_membership", "coalition_reconstruction"]


def coalition_membership(run: RecordedRun, role: str) -> AttackResult:
    """A data party and the TTP pool their step-4 views: which of its rows are shared?

    The party knows which of its rows each of its hashed ids came from (it computed
    them); the TTP holds every other data party's hashed ids. A row is a member of the
    joined table iff its digest is among every other party's (and the pair sees, row by
    row, which of the other parties have the person). The protocol does not protect
    against this collusion (``docs/threat-model.md``); the attack shows what it would
    expose.
    """
    if role not in run.data_parties:
        raise ValueError(f"the coalition is a data party with the TTP; {role!r} is not one of {list(run.data_parties)}")
    others = [p for p in run.data_parties if p != role]
    view = coalition_view(run, (role, TTP), 4)
    held = dict(zip(run.data_parties, view.get(TTP, "hashed_ids", [[] for _ in run.data_parties]), strict=True))
    theirs = [set(held[p]) for p in others]
    own_digests = view.get(role, "hashed_ids", [])
    send_order = run.send_order(role)
    members = run.intersection_ids()
    hits = sum(
        1 for d, id_ in zip(own_digests, send_order, strict=True)
        if all(d in digests for digests in theirs) == (id_ in members)
    )
    seen_by = {p: sum(1 for d in own_digests if d in digests) for p, digests in zip(others, theirs, strict=True)}
    n = len(own_digests)
    m = run.intersection_size
    baseline = max(m, n - m) / n if n else 0.0
    explanation = (
        f"The {role} and the TTP matched the {role}'s {n} hashed ids (each tied to one of its rows) against the "
        f"hashed ids of the {', '.join(others)} held by the TTP in step 4: right about membership for {hits} of {n} "
        f"rows (and, per row, which other party has the person: "
        f"{', '.join(f'{p} {c}' for p, c in seen_by.items())} of its rows). "
        f"Without pooling, the best guess (all rows in, or all out) is right for {baseline:.3f} of them."
    )
    return attack_result(
        run, "coalition_membership", INFER, (role, TTP), 4, hits, n, baseline,
        binomial_threshold(n, baseline), explanation, rows_seen_by=seen_by,
    )


def _guesses(run: RecordedRun, view: Any, members: Sequence[str], shape: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    """Every way the coalition can combine what it holds into a guess of the joined table."""
    params, roster = run.config.params, run.roster
    shares = {roster.index(r): view.holds[r]["shamir_shares"] for r in members if "shamir_shares" in view.holds[r]}
    additive = [view.holds[r]["additive_shares"] for r in run.data_parties
                if r in members and "additive_shares" in view.holds[r]]
    out: list[tuple[str, np.ndarray]] = []
    if len(shares) >= 2:
        values = shamir.reconstruct(shares, params.prime)
        out.append(("Lagrange interpolation of two Shamir shares",
                    np.array([params.centred(v) for v in values], dtype=object).reshape(shape)))
    elif len(shares) == 1:
        (only,) = shares.values()
        out.append(("reading its one Shamir share as the value (right only if the sharing were degenerate)",
                    np.array([params.centred(v) for v in only], dtype=object).reshape(shape)))
    if additive:
        k = len(run.data_parties)
        total = np.array([[sum(vs) for vs in zip(*rows, strict=True)] for rows in zip(*additive, strict=True)],
                         dtype=object).reshape(shape)
        out.append((f"adding the additive shares of all {k} data parties" if len(additive) == k else
                    f"adding the additive shares it holds ({len(additive)} of {k}: right only where the missing "
                    "shares were zero)", total))
    return out


def coalition_reconstruction(
    run: RecordedRun, coalition: Sequence[str], step: int, *, retained: bool = False
) -> AttackResult:
    """Parties pool what they hold at ``step`` (7, or 9 for after the run) and try to
    rebuild the joined table (one party alone can be given as a one-member coalition).

    With two compute parties' Shamir shares (threshold 2 of 3) Lagrange interpolation
    gives every entry; during steps 6 and 7 the additive shares of *all* data parties
    also add up to it. A coalition with fewer (one compute party and any data parties
    outside the computation) holds one Shamir share and some additive shares: each
    uniformly random on its own. Every applicable combination is tried and the best
    reported. After the run the protocol has deleted every share, so only the output
    is left, which contains no entry of the table (``retained=True`` models parties
    that kept copies despite the deletion rule: it must succeed for two compute parties).

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
    how, successes = "nothing to combine", 0
    for method, guess in _guesses(run, view, members, (m, width)):
        right = int(sum(1 for g, t in zip(guess.ravel(), truth.ravel()) if int(g) == int(t)))
        if how == "nothing to combine" or right > successes:
            how, successes = method, right
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
