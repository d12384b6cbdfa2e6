"""Attacks by a data party alone, on the masked rows it decrypts in step 6."""

from __future__ import annotations

import math
import random
import secrets
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..stats import binomial_threshold, hypergeometric_threshold, ks_uniform_pvalue, subsample
from ..views import RecordedRun, party_view
from ._common import INFER, LINK, AttackResult, attack_result

__all__ = ["masked_value_linking", "membership_inference"]


def _masked_inputs(run: RecordedRun, role: str) -> tuple[np.ndarray, list[list[int]], list[int]]:
    """(own input values, decrypted masked rows, true own row of each joined row)."""
    if role not in run.data_parties:
        raise ValueError(f"only the data parties {list(run.data_parties)} decrypt masked values, not {role!r}")
    view = party_view(run, role, 6)
    own = np.asarray(view.get(role, "input").values, dtype=np.int64)
    masked = [list(map(int, row)) for row in view.get(role, "masked_values")]
    column = run.data_parties.index(role)
    truth = [pair[column] for pair in run.joined_rows()]
    return own, masked, truth


def _maskers(run: RecordedRun) -> int:
    """How many masks each decrypted value carries: one from every other data party."""
    return len(run.data_parties) - 1


def _irwin_hall_cdf(u: float, n: int) -> float:
    """``P(U_1 + ... + U_n <= u)`` for independent ``U_i`` uniform on ``[0, 1)``."""
    if u <= 0:
        return 0.0
    if u >= n:
        return 1.0
    total = sum((-1) ** j * math.comb(n, j) * (u - j) ** n for j in range(int(u) + 1))
    return min(max(total / math.factorial(n), 0.0), 1.0)



_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _compatible(own: np.ndarray, s: Sequence[int], top: int) -> np.ndarray:
    """Boolean per own row: is ``x - s`` a possible mask (in ``[0, top)``) in every column?"""
    ok = np.ones(len(own), dtype=bool)
    for c, value in enumerate(s):
        low = min(max(value, _INT64_MIN), _INT64_MAX)
        high = min(max(value + top, _INT64_MIN), _INT64_MAX)
        column = own[:, c]
        ok &= (column >= low) & (column < high)
    return ok


def _mask_width(own: np.ndarray, masked: list[list[int]], rows: Sequence[int], declared_bits: int,
                maskers: int = 1) -> int:
    """The narrowest mask range ``[0, 2**b)`` under which every decrypted row has a
    compatible own row (its value minus the sum of ``maskers`` masks, so a candidate
    total mask in ``[0, maskers * 2**b)``): the maximum-likelihood width (a narrower
    range explains the data with higher likelihood, ``2**-b`` per value, until some row
    has no possible source). Under the protocol this is the declared width; a short
    mask shows here.
    """
    def explains(bits: int) -> bool:
        top = maskers << bits
        return all(_compatible(own, masked[j], top).any() for j in rows)

    low, high = 1, declared_bits + 1  # widths above the declared one cannot help: search up to it + 1
    if not explains(high):
        return declared_bits
    while low < high:
        mid = (low + high) // 2
        if explains(mid):
            high = mid
        else:
            low = mid + 1
    return min(low, declared_bits) if low <= declared_bits else declared_bits


def _repeated_mask(
    own: np.ndarray, masked: list[list[int]], rows: Sequence[int], rng: random.Random
) -> tuple[tuple[int, ...], int]:
    """The candidate mask vector ``x_i - s_j`` shared by the most decrypted rows ``j``.

    Vectors are compared through a random linear projection (64-bit random weights),
    so each pair ``(i, j)`` costs one integer; two different vectors project to the
    same number with probability about ``2**-64``. Fresh uniform masks make every
    candidate distinct: two decrypted rows share one only if ``s_j - s_k`` equals a
    difference of own rows, a chance of about ``2**-40`` per coordinate and pair.
    Returns ``(vector, number of decrypted rows it occurs for)``.
    """
    if not rows or len(own) == 0:
        return (), 0
    weights = [rng.getrandbits(64) | 1 for _ in range(own.shape[1])]
    own_rows = {tuple(map(int, row)) for row in own.tolist()}
    projected = {sum(w * x for w, x in zip(weights, row)): row for row in own_rows}
    counts: Counter[int] = Counter()
    for j in rows:
        t = sum(w * v for w, v in zip(weights, masked[j]))
        counts.update(z - t for z in projected)
    value, count = counts.most_common(1)[0]
    for j in rows:
        t = sum(w * v for w, v in zip(weights, masked[j]))
        row = projected.get(value + t)
        if row is not None:
            return tuple(a - b for a, b in zip(row, masked[j])), count
    return (), 0


def _source_posterior(compat: np.ndarray, m: int, iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Posterior that own row ``i`` is the source of decrypted row ``j``, and that ``i`` is a member.

    ``compat[i, j]`` says whether row ``i`` could be the source of row ``j``; under
    uniform masks every compatible row is equally likely a priori, weighted by its
    prior probability of being in the intersection (``m / n`` to start). A few
    expectation-maximisation rounds update that prior from the posteriors
    (each decrypted row has exactly one source; ``m`` rows have one each).
    """
    n, k = compat.shape
    weights = compat.astype(np.float64)
    prior = np.full(n, m / n if n else 0.0)
    posterior = np.zeros_like(weights)
    for _ in range(iterations):
        joint = weights * prior[:, None]
        totals = joint.sum(axis=0)
        posterior = np.divide(joint, totals, out=np.zeros_like(joint), where=totals > 0)
        prior = np.clip(posterior.sum(axis=1) * (m / k if k else 0.0), 1e-9, 1.0)
    return posterior, prior


def masked_value_linking(run: RecordedRun, role: str, *, sample: int = 200, seed: int | None = None) -> AttackResult:
    """A data party tries to find, for each row it decrypts in step 6, its own input row.

    Each decrypted row is ``s = x - r`` for one of its own rows ``x`` and the other
    party's masks ``r``. For every decrypted row ``j`` and own row ``i`` the attack
    forms the candidate mask ``r_ij = x_i - s_j``:

    * **structure test**: if the same candidate mask vector occurs for three or more
      decrypted rows, the masks are not fresh (a constant, e.g. no mask at all), and
      each row is linked to the own row that gives that vector;
    * otherwise, the **maximum-posterior guess**: with masks uniform on ``[0, 2**bits)``
      (``bits`` estimated from the data, :func:`_mask_width`), every own row whose
      candidate mask lies in that range is equally likely up to its probability of
      being in the intersection (:func:`_source_posterior`); the attack picks the most
      probable one (at random among ties). With k data parties each value carries
      ``k - 1`` masks, so the candidate total mask ranges over ``[0, (k - 1) * 2**bits)``.

    Scored on up to ``sample`` decrypted rows against the true source row (two own
    rows with identical values both count as right). Baseline: a random own row.
    A Kolmogorov-Smirnov test of ``-s / 2**mask_bits`` (through the Irwin-Hall
    distribution function of ``k - 1`` uniforms: the identity for two parties) against
    Uniform(0, 1) is reported too: fresh full-width masks make it uniform.
    """
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    own, masked, truth = _masked_inputs(run, role)
    declared, maskers = run.config.params.mask_bits, _maskers(run)
    rows = subsample(range(len(masked)), sample, rng)
    width = _mask_width(own, masked, rows, declared, maskers)
    top = maskers << width
    own_tuples = [tuple(map(int, x)) for x in own.tolist()]
    by_value: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(own_tuples):
        by_value.setdefault(x, []).append(i)
    mode, mode_rows = _repeated_mask(own, masked, rows, rng)
    structured = mode_rows >= 3
    compat = np.stack([_compatible(own, masked[j], top) for j in rows], axis=1) if rows else np.zeros((len(own), 0), bool)
    posterior, _ = _source_posterior(compat, len(masked))
    successes = linked_by_structure = 0
    for column, j in enumerate(rows):
        s = masked[j]
        guess: int | None = None
        if structured:
            x = tuple(a + b for a, b in zip(s, mode))
            if x in by_value:
                guess = by_value[x][0]
                linked_by_structure += 1
        if guess is None:
            p = posterior[:, column]
            top_rows = np.flatnonzero(p >= p.max() - 1e-12) if p.max() > 0 else np.arange(len(own_tuples))
            guess = int(rng.choice(top_rows.tolist()))
        if own_tuples[guess] == own_tuples[truth[j]]:
            successes += 1
    trials = len(rows)
    baseline = (sum(len(by_value[own_tuples[truth[j]]]) for j in rows) / (trials * len(own_tuples))) if trials else 0.0
    scaled = [_irwin_hall_cdf(-v / (1 << declared), maskers) for j in rows for v in masked[j]]
    d_stat, p_value = ks_uniform_pvalue(scaled)
    explanation = (
        f"The {role} compared each of {trials} decrypted rows with all {len(own_tuples)} of its own rows. "
        f"The most frequent candidate mask occurred for {mode_rows} decrypted row(s) "
        f"({'a repeated mask: the masks are not fresh' if structured else 'no structure: every candidate mask is different'}). "
        f"The masks look {width} bits wide (the protocol draws {declared}-bit masks"
        f"{f', {maskers} per value' if maskers > 1 else ''}). "
        f"Its guess was the true source row for {successes} of {trials} rows; a random guess is right "
        f"{baseline:.4f} of the time. Uniformity of the decrypted values: Kolmogorov-Smirnov "
        f"D = {d_stat:.3f}, p = {p_value:.3g}."
    )
    return attack_result(
        run, "masked_value_linking", LINK, (role,), 6, successes, trials, baseline,
        binomial_threshold(trials, baseline), explanation,
        repeated_mask_rows=mode_rows, linked_by_structure=linked_by_structure, estimated_mask_bits=width,
        ks_statistic=d_stat, ks_pvalue=p_value, own_rows=len(own_tuples), decrypted_rows=len(masked),
    )


def membership_inference(run: RecordedRun, role: str, *, sample: int = 200, seed: int | None = None) -> AttackResult:
    """A data party tries to tell which of its own rows are in the intersection.

    It knows ``m`` and the ``m`` rows it decrypted in step 6. Own row ``i`` is
    *compatible* with decrypted row ``j`` if ``x_i - s_j`` is a possible mask in every
    column (the likelihood of ``s_j`` given source ``i`` is ``2**-bits`` per value if
    so and 0 otherwise, with the mask width estimated from the data). From the
    compatibilities it computes each row's posterior probability of being a source
    (:func:`_source_posterior`), adds certainty for rows linked by a repeated mask
    (see :func:`masked_value_linking`), and claims the ``m`` most probable rows
    (ties broken at random).

    Success: the fraction of claimed rows that really are in the intersection.
    Baseline: ``m / rows`` (claiming ``m`` rows at random). The bound is the
    hypergeometric tail of random claims.
    """
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    own, masked, _ = _masked_inputs(run, role)
    members_ids = run.intersection_ids()
    ids = run.tables[role].ids
    n, m = len(own), len(masked)
    truth = [ids[i] in members_ids for i in range(n)]
    rows = subsample(range(m), sample, rng)
    maskers = _maskers(run)
    width = _mask_width(own, masked, rows, run.config.params.mask_bits, maskers)
    top = maskers << width
    mode, mode_rows = _repeated_mask(own, masked, rows, rng)
    index: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(own.tolist()):
        index.setdefault(tuple(x), []).append(i)
    compat = np.stack([_compatible(own, masked[j], top) for j in rows], axis=1) if rows else np.zeros((n, 0), bool)
    _, score = _source_posterior(compat, m)
    score = score.copy()
    if mode_rows >= 3:
        for j in rows:
            for i in index.get(tuple(a + b for a, b in zip(masked[j], mode)), []):
                score[i] += 2.0  # linked by a repeated mask: certainly a member
    score = np.round(score, 9)
    ties = [rng.random() for _ in range(n)]
    claimed = sorted(range(n), key=lambda i: (-score[i], ties[i]))[:m]
    successes = sum(1 for i in claimed if truth[i])
    baseline = m / n if n else 0.0
    distinct_scores = len(set(score.tolist()))
    explanation = (
        f"The {role} estimated the masks to be {width} bits wide, scored its {n} rows by compatibility with "
        f"{len(rows)} of the {m} rows it decrypted "
        f"({distinct_scores} distinct score(s)) and claimed the top {m} as members of the intersection. "
        f"{successes} of its {m} claims were right; {m} random claims get {baseline:.3f} of them right on average."
    )
    return attack_result(
        run, "membership_inference", INFER, (role,), 6, successes, m, baseline,
        hypergeometric_threshold(n, sum(truth), m), explanation,
        own_rows=n, intersection_size=m, distinct_scores=distinct_scores, scored_against=len(rows),
        estimated_mask_bits=width,
    )
