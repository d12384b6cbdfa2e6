"""Attacks as code: what a party or a coalition can learn, measured against ground truth.

Each attack plays one party (or two pooling their views) with the data that party
really has in a recorded run (:mod:`mpcactors.analysis.views`), makes its best
guesses, and is scored against the ground truth that only the simulation knows.
It returns an :class:`AttackResult` with the measured success rate, what blind
guessing achieves (the *baseline*), and a *confidence bound*: the highest success
rate that blind guessing reaches with probability at least ``1 - ALPHA`` on this many
trials. A success rate at or below the bound is "no advantage over guessing"; above
it, the attack has learnt something (the chance of a false alarm is at most ``ALPHA``
per verdict, ``1 in 10 000``).

The three questions of the Article 29 Working Party (Opinion 05/2014) that the
attacks answer:

* **single out**: can the attacker isolate the records of one person in the data
  set it is meant not to see?
* **link**: can it link two records of the same person (e.g. a hashed id to a name,
  a masked row to its own input row)?
* **infer**: can it deduce an attribute (or membership) of a person?

=============================  ========  ===================  ==========================
attack                         question  attacker, step       protection it tests
=============================  ========  ===================  ==========================
ttp_dictionary_attack          link      TTP, 4               keyed hashing (step 2)
masked_value_linking           link      data party, 6        masks + re-randomisation
membership_inference           infer     data party, 6        masks (statistical width)
ttp_side_channel_inference     infer     TTP, 4               constant widths, shuffling
coalition_membership           infer     data party + TTP, 4  (none: needs no collusion)
coalition_reconstruction       single    any two, 7 / after   threshold 2, deletion
=============================  ========  ===================  ==========================

:func:`disclosures` is not an attack: it lists what the protocol reveals on purpose
(table sizes, ``m``, the model) and what that discloses.

All statistics are computed here with the standard library (no SciPy at run time).
"""

from __future__ import annotations

import hashlib
import math
import random
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..codec import BigIntArray
from ..crypto import hashing, shamir
from ..protocol.messages import HASH_BYTES
from .views import HOSPITAL, INSURER, TTP
from .views import RecordedRun, coalition_view, party_view

__all__ = [
    "ALPHA",
    "AttackResult",
    "Disclosure",
    "binomial_threshold",
    "coalition_membership",
    "coalition_reconstruction",
    "dictionary_for",
    "disclosures",
    "hypergeometric_threshold",
    "ks_uniform_pvalue",
    "lasso_fit_plaintext",
    "masked_value_linking",
    "membership_inference",
    "run_all",
    "run_named",
    "ttp_dictionary_attack",
    "ttp_side_channel_inference",
]

#: False-alarm probability of one "attack succeeds" verdict when it has no advantage.
ALPHA = 1e-4
#: Largest id space the dictionary attack enumerates in full.
DICTIONARY_LIMIT = 2_000_000
#: Steps after which nothing but the output should remain (9 = after the run).
AFTER_RUN = 9

SINGLE_OUT, LINK, INFER = "single out", "link", "infer"


@dataclass(frozen=True)
class AttackResult:
    """One attack's measured outcome.

    Attributes:
        name: the attack function's name.
        question: ``"single out"``, ``"link"`` or ``"infer"``.
        party_or_coalition: the attacker: one role, or ``"hospital+ttp"`` for a coalition.
        step: the step whose view the attacker used (9: after the run).
        success_rate: the fraction of trials the attacker got right.
        baseline: what blind guessing achieves on average.
        trials: how many guesses were scored.
        confidence_bound: blind guessing stays at or below this with probability
            ``1 - ALPHA`` (for ``trials`` trials).
        verdict: ``"no advantage"`` or ``"succeeds"``.
        explanation: what the attacker tried and what the numbers mean, in words.
        variant: the run's protocol (``"protocol as specified"`` or a broken variant).
        details: further measured figures (JSON-able).
    """

    name: str
    question: str
    party_or_coalition: str
    step: int
    success_rate: float
    baseline: float
    trials: int
    confidence_bound: float
    verdict: str
    explanation: str
    variant: str = "protocol as specified"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.verdict == "succeeds"

    def document(self) -> dict[str, Any]:
        return asdict(self)


def _result(
    run: RecordedRun, name: str, question: str, who: Sequence[str], step: int, successes: int, trials: int,
    baseline: float, bound_successes: int, explanation: str, **details: Any,
) -> AttackResult:
    rate = successes / trials if trials else 0.0
    bound = bound_successes / trials if trials else 0.0
    verdict = "succeeds" if trials and successes > bound_successes else "no advantage"
    return AttackResult(
        name=name, question=question, party_or_coalition="+".join(who), step=step,
        success_rate=rate, baseline=baseline, trials=trials, confidence_bound=bound, verdict=verdict,
        explanation=explanation, variant=run.variant_name,
        details={"successes": successes, "alpha": ALPHA, **details},
    )


# ---- statistics (standard library only) ------------------------------------------------


def _log_binomial_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def _upper_threshold(log_pmf: Any, low: int, high: int, alpha: float) -> int:
    """Smallest ``t`` in ``[low, high]`` with ``P(X > t) <= alpha``."""
    tail = 0.0
    for k in range(high, low - 1, -1):
        mass = math.exp(log_pmf(k))
        if tail + mass > alpha:
            return k
        tail += mass
    return low


def binomial_threshold(n: int, p: float, alpha: float = ALPHA) -> int:
    """Smallest ``t`` with ``P(Binomial(n, p) > t) <= alpha``."""
    if n <= 0:
        return 0
    return _upper_threshold(lambda k: _log_binomial_pmf(k, n, p), 0, n, alpha)


def hypergeometric_threshold(population: int, good: int, draws: int, alpha: float = ALPHA) -> int:
    """Smallest ``t`` with ``P(X > t) <= alpha`` for ``X`` the good items in ``draws``
    drawn without replacement from ``population`` items of which ``good`` are good."""
    low, high = max(0, draws + good - population), min(draws, good)

    def log_comb(a: int, b: int) -> float:
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    total = log_comb(population, draws)
    return _upper_threshold(lambda k: log_comb(good, k) + log_comb(population - good, draws - k) - total, low, high, alpha)


def ks_uniform_pvalue(samples: Sequence[float]) -> tuple[float, float]:
    """Kolmogorov-Smirnov test of ``samples`` against Uniform(0, 1): ``(D, p-value)``.

    Uses the asymptotic Kolmogorov distribution with Stephens' small-sample
    correction, accurate to a few percent for ``n >= 5`` (enough for a verdict).
    """
    xs = sorted(samples)
    n = len(xs)
    if n == 0:
        return 0.0, 1.0
    d = max(max((i + 1) / n - x, x - i / n) for i, x in enumerate(xs))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    if lam < 0.2:
        return d, 1.0
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(max(p, 0.0), 1.0)


# ---- attack 1: the TTP's dictionary attack on hashed ids ----------------------------------


def dictionary_for(run: RecordedRun, limit: int = DICTIONARY_LIMIT) -> tuple[list[str], str]:
    """The ids the dictionary attack tries, and a sentence saying what they are.

    The whole public id space when it is known and at most ``limit`` ids; otherwise
    every real id of both tables (an attacker with a perfect shortlist). The two give
    the same success rate: a candidate that is not a real id can only match a digest
    by a SHA-256 collision.
    """
    if run.id_space is not None and run.id_space <= limit:
        return [f"{k:09d}" for k in range(run.id_space)], (
            f"the whole id space: all {run.id_space:,} nine-digit ids 000000000 to {run.id_space - 1:09d}"
        )
    ids = sorted(set(run.tables[HOSPITAL].ids) | set(run.tables[INSURER].ids))
    why = "the id space is not known" if run.id_space is None else f"the id space ({run.id_space:,} ids) is too large to enumerate here"
    return ids, (
        f"a perfect shortlist: the {len(ids):,} ids that really occur in either table ({why}; "
        "a larger dictionary cannot match more digests, because a non-occurring id only matches by a SHA-256 collision)"
    )


def _unkeyed_sha256(ids: Iterable[str]) -> list[bytes]:
    return [hashlib.sha256(i.encode()).digest() for i in ids]


def _unkeyed_tagged(ids: Iterable[str]) -> list[bytes]:
    out = []
    for i in ids:
        data = i.encode()
        out.append(hashlib.sha256(hashing.DOMAIN_TAG + len(data).to_bytes(8, "big") + data).digest())
    return out


def ttp_dictionary_attack(
    run: RecordedRun,
    *,
    attackers: Sequence[str] = (TTP,),
    retained: bool = True,
    dictionary: Sequence[str] | None = None,
    unkeyed: bool = True,
) -> AttackResult:
    """The TTP (optionally with a data party) tries to name the person behind each hashed id.

    It holds both parties' hashed ids during step 4. It hashes every id of the
    dictionary with every hash function it can build: unkeyed SHA-256 (plain, and
    with the protocol's domain tag), HMAC with an all-zero key, HMAC with every key it
    can form from step-2 key contributions in its members' messages (sent or
    received), and any key a broken variant handed it. A digest found in one of those
    tables is named; the name is scored against the hash oracle (ground truth).

    Expected: 0 for the TTP alone (it is not on the hospital-insurer link and never
    holds the key); 1 with :func:`~mpcactors.analysis.variants.keep_hash_key`, and 1
    for the insurer + TTP if the insurer kept its step-2 messages (``retained``).
    ``unkeyed=False`` skips the three key-less guesses (a coalition's TTP has already
    tried them alone; each costs one hash per dictionary word).
    """
    members = tuple(attackers)
    if TTP not in members:
        raise ValueError("the dictionary attack needs the TTP (it holds the other party's hashed ids)")
    view = coalition_view(run, members, 4, retained=retained)
    h_digests, i_digests = view.get(TTP, "hashed_ids", ([], []))
    targets = [(HOSPITAL, d) for d in h_digests] + [(INSURER, d) for d in i_digests]
    if dictionary is None:
        words, searched = dictionary_for(run)
    else:
        words, searched = list(dictionary), f"a given dictionary of {len(dictionary):,} ids"

    hashers: list[tuple[str, Any]] = [
        ("unkeyed SHA-256", _unkeyed_sha256),
        ("unkeyed SHA-256 with the protocol's tag", _unkeyed_tagged),
        ("HMAC with an all-zero key", hashing.JointKey.from_contributions(bytes(32), bytes(32)).hash_ids),
    ] if unkeyed else []
    # step-2 messages are gone by step 4 unless a member kept them
    contributions = sorted({
        e.body["value"] for e in run.transcript
        if retained and e.kind == "hash_contribution" and (e.receiver in members or e.sender in members)
    })
    for a in contributions:  # the key is the sum of two different contributions
        for b in contributions:
            if a < b:
                hashers.append(("HMAC with a key built from step-2 contributions in the view",
                                hashing.JointKey.from_contributions(a, b).hash_ids))
    for role in members:
        for key in view.handed.get(role, {}).get("hash_keys", []):
            hashers.append(("HMAC with a key a broken variant handed over", key.hash_ids))

    wanted = {d for _, d in targets}
    found: dict[bytes, str] = {}
    worked: Counter[str] = Counter()
    for label, fn in hashers:
        for digest, word in zip(fn(words), words, strict=True):
            if digest in wanted and digest not in found:
                found[digest] = word
                worked[label] += 1
    oracle = run.god_view.digest_to_id
    correct = sum(1 for role, d in targets if found.get(d) is not None and found[d] == oracle[role].get(d))
    named = sum(1 for _, d in targets if d in found)
    trials = len(targets)
    baseline = 1 / max(len(words), 1)
    who = " and ".join(members)
    explanation = (
        f"The {who} hashed {searched} with {len(hashers)} candidate hash functions"
        f"{'' if unkeyed else ' built from keys (the key-less guesses are the TTP-alone attack)'} "
        f"({len(contributions)} step-2 key contributions in its view) and looked up the "
        f"{trials:,} hashed ids the TTP holds in step 4. It named {named:,} of them, {correct:,} correctly."
    )
    return _result(
        run, "ttp_dictionary_attack", LINK, members, 4, correct, trials, baseline,
        binomial_threshold(trials, baseline), explanation,
        dictionary=searched, dictionary_size=len(words), hash_functions_tried=len(hashers),
        contributions_in_view=len(contributions), named=named, worked=dict(worked), retained=retained,
        unkeyed_tried=unkeyed,
    )


# ---- attack 2: a data party against what it decrypts in step 6 ------------------------------


def _masked_inputs(run: RecordedRun, role: str) -> tuple[np.ndarray, list[list[int]], list[int]]:
    """(own input values, decrypted masked rows, true own row of each joined row)."""
    if role not in (HOSPITAL, INSURER):
        raise ValueError("only the hospital and the insurer decrypt masked values")
    view = party_view(run, role, 6)
    own = np.asarray(view.get(role, "input").values, dtype=np.int64)
    masked = [list(map(int, row)) for row in view.get(role, "masked_values")]
    column = 0 if role == HOSPITAL else 1
    truth = [pair[column] for pair in run.joined_rows()]
    return own, masked, truth


def _sample(indices: Sequence[int], size: int, rng: random.Random) -> list[int]:
    return list(indices) if len(indices) <= size else rng.sample(list(indices), size)


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


def _mask_width(own: np.ndarray, masked: list[list[int]], rows: Sequence[int], declared_bits: int) -> int:
    """The narrowest mask range ``[0, 2**b)`` under which every decrypted row has a
    compatible own row: the maximum-likelihood width (a narrower range explains the
    data with higher likelihood, ``2**-b`` per value, until some row has no possible
    source). Under the protocol this is the declared width; a short mask shows here.
    """
    def explains(bits: int) -> bool:
        top = 1 << bits
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
      probable one (at random among ties).

    Scored on up to ``sample`` decrypted rows against the true source row (two own
    rows with identical values both count as right). Baseline: a random own row.
    A Kolmogorov-Smirnov test of ``-s / 2**mask_bits`` against Uniform(0, 1) is
    reported too: fresh full-width masks make it uniform.
    """
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    own, masked, truth = _masked_inputs(run, role)
    declared = run.config.params.mask_bits
    rows = _sample(range(len(masked)), sample, rng)
    width = _mask_width(own, masked, rows, declared)
    top = 1 << width
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
    scaled = [min(max(-v / (1 << declared), 0.0), 1.0) for j in rows for v in masked[j]]
    d_stat, p_value = ks_uniform_pvalue(scaled)
    explanation = (
        f"The {role} compared each of {trials} decrypted rows with all {len(own_tuples)} of its own rows. "
        f"The most frequent candidate mask occurred for {mode_rows} decrypted row(s) "
        f"({'a repeated mask: the masks are not fresh' if structured else 'no structure: every candidate mask is different'}). "
        f"The masks look {width} bits wide (the protocol draws {declared}-bit masks). "
        f"Its guess was the true source row for {successes} of {trials} rows; a random guess is right "
        f"{baseline:.4f} of the time. Uniformity of the decrypted values: Kolmogorov-Smirnov "
        f"D = {d_stat:.3f}, p = {p_value:.3g}."
    )
    return _result(
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
    rows = _sample(range(m), sample, rng)
    width = _mask_width(own, masked, rows, run.config.params.mask_bits)
    top = 1 << width
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
    return _result(
        run, "membership_inference", INFER, (role,), 6, successes, m, baseline,
        hypergeometric_threshold(n, sum(truth), m), explanation,
        own_rows=n, intersection_size=m, distinct_scores=distinct_scores, scored_against=len(rows),
        estimated_mask_bits=width,
    )


# ---- attack 3: the TTP against sizes, timing and order ----------------------------------------


def _row_observables(run: RecordedRun, role: str) -> dict[str, list[float]]:
    """What the TTP can measure about each row it receives from ``role`` in step 4."""
    obs: dict[str, list[float]] = {
        "arrival position": [], "chunk number": [], "chunk arrival time": [], "chunk bytes": [],
        "ciphertext width (bytes)": [], "ciphertext bit length": [],
    }
    messages = run.transcript.select(step=4, sender=role, receiver=TTP, kind="rows")
    start = messages[0].time if messages else 0.0
    position = 0
    for number, entry in enumerate(messages):
        hashes = entry.body["hashes"]
        ciphertexts: BigIntArray = entry.body["ciphertexts"]
        count = len(hashes) // HASH_BYTES
        per_row = len(ciphertexts) // count if count else 0
        for r in range(count):
            obs["arrival position"].append(position)
            obs["chunk number"].append(number)
            obs["chunk arrival time"].append(entry.time - start)
            obs["chunk bytes"].append(entry.size)
            obs["ciphertext width (bytes)"].append(ciphertexts.width)
            obs["ciphertext bit length"].append(max(int(c).bit_length() for c in ciphertexts[r * per_row:(r + 1) * per_row]))
            position += 1
    return obs


def _balanced_labels(values: np.ndarray, rng: random.Random) -> list[int]:
    """1 for the upper half of ``values`` by rank (ties broken at random), else 0."""
    keys = sorted(range(len(values)), key=lambda i: (values[i], rng.random()))
    labels = [0] * len(values)
    for rank, i in enumerate(keys):
        labels[i] = 1 if rank >= len(values) / 2 else 0
    return labels


def _best_threshold_rule(x: Sequence[float], y: Sequence[int]) -> tuple[float, int]:
    """``(t, flip)`` maximising the accuracy of predicting ``y`` as ``(x >= t) xor flip``."""
    pairs = sorted(zip(x, y))
    n, ones = len(pairs), sum(y)
    best = (-1.0, math.inf, 0)

    def consider(t: float, ones_above: int, count_above: int) -> None:
        nonlocal best
        correct = ones_above + (n - count_above) - (ones - ones_above)  # predict 1 at or above t
        for accuracy, flip in ((correct / n, 0), (1 - correct / n, 1)):
            if accuracy > best[0]:
                best = (accuracy, t, flip)

    consider(math.inf, 0, 0)
    ones_above = count_above = 0
    for k in range(n - 1, -1, -1):
        ones_above += pairs[k][1]
        count_above += 1
        if k == 0 or pairs[k - 1][0] != pairs[k][0]:
            consider(pairs[k][0], ones_above, count_above)
    return best[1], best[2]


def ttp_side_channel_inference(run: RecordedRun, *, seed: int | None = None) -> AttackResult:
    """The TTP tries to infer attribute values from what it can see besides the plaintext.

    For every row it receives in step 4 it measures: arrival position, chunk number,
    chunk arrival time, chunk size, ciphertext width and each ciphertext's bit length.
    For every (sending party, observable, attribute) it is given an oracle advantage:
    it learns the best threshold rule "observable >= t means the attribute is in the
    upper half" on a random half of the rows *using the true values*, and is scored on
    the other half. An attacker who knew the data owner's habits (files sorted by age,
    say) could do no better than this oracle-tuned rule.

    Success: the held-out accuracy of the rule that beats its bound by most (the best
    rule); baseline 0.5 (labels are balanced by rank). Each rule's bound is
    Bonferroni-corrected for the number of rules tried.
    """
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    constant: set[str] = set()
    tests: list[tuple[str, str, str, list[float], list[int], list[int], list[int]]] = []
    observables = 0
    for role in (HOSPITAL, INSURER):
        obs = _row_observables(run, role)
        observables = len(obs)
        rows = run.arrival_rows(role)
        table = run.tables[role]
        if len(rows) < 2:
            continue
        index = list(range(len(rows)))
        rng.shuffle(index)
        half = len(index) // 2
        train, test = index[:half], index[half:]
        for column_number, column in enumerate(table.columns):
            labels = _balanced_labels(table.values[rows, column_number], rng)
            for name, xs in obs.items():
                if len(set(xs)) == 1:
                    constant.add(name)
                tests.append((role, column, name, xs, labels, train, test))
    k = max(len(tests), 1)
    rules: list[dict[str, Any]] = []
    best: tuple[float, int, int, int, dict[str, Any]] | None = None
    for role, column, name, xs, labels, train, test in tests:
        t, flip = _best_threshold_rule([xs[i] for i in train], [labels[i] for i in train])
        hits = sum(1 for i in test if (int(xs[i] >= t) ^ flip) == labels[i])
        threshold = binomial_threshold(len(test), 0.5, ALPHA / k)
        rule = {"party": role, "column": column, "observable": name, "held_out_accuracy": hits / len(test),
                "bound": threshold / len(test)}
        rules.append(rule)
        margin = (hits - threshold) / len(test)
        if best is None or margin > best[0]:
            best = (margin, hits, len(test), threshold, rule)
    _, hits, n, threshold, rule = best if best is not None else (0.0, 0, 0, 0, {})
    explanation = (
        f"The TTP tried {k} threshold rules (each party's {observables} observables against each of its attributes), "
        f"each tuned on half of the rows with the true values. The best, '{rule.get('observable', '-')}' for the "
        f"{rule.get('party', '-')}'s '{rule.get('column', '-')}', was right for {hits} of {n} held-out rows "
        f"(guessing: half). Constant for every row, so carrying no information at all: "
        f"{', '.join(sorted(constant)) or 'none'}."
    )
    return _result(
        run, "ttp_side_channel_inference", INFER, (TTP,), 4, hits, n, 0.5, threshold, explanation,
        rules=len(tests), best_rule=rule, constant_observables=sorted(constant),
        top_rules=sorted(rules, key=lambda r: -r["held_out_accuracy"])[:10],
    )


# ---- attack 4: coalitions -----------------------------------------------------------------------


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
    return _result(
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
    return _result(
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


# ---- what the protocol reveals on purpose --------------------------------------------------------


@dataclass(frozen=True)
class Disclosure:
    """One thing the protocol reveals by design, to whom, and what that discloses."""

    item: str
    learned_by: tuple[str, ...]
    value: Any
    discloses: str

    def document(self) -> dict[str, Any]:
        d = asdict(self)
        d["learned_by"] = list(self.learned_by)
        return d


def lasso_fit_plaintext(x: np.ndarray, y: np.ndarray, alpha: float, *, iterations: int = 5000, tol: float = 1e-10) -> tuple[np.ndarray, float]:
    """Lasso with intercept by coordinate descent (scikit-learn's objective and alpha).

    Minimises ``||y - b0 - x b||^2 / (2m) + alpha * ||b||_1``. Plain numpy, for the
    disclosure analysis (how much one person moves the model), not for the protocol.
    """
    m, d = x.shape
    mean_x, mean_y = x.mean(axis=0), y.mean()
    xc, yc = x - mean_x, y - mean_y
    norms = (xc * xc).sum(axis=0) / m
    beta = np.zeros(d)
    residual = yc.copy()
    for _ in range(iterations):
        largest = 0.0
        for j in range(d):
            if norms[j] == 0:
                continue
            old = beta[j]
            rho = xc[:, j] @ residual / m + norms[j] * old
            new = math.copysign(max(abs(rho) - alpha, 0.0), rho) / norms[j]
            if new != old:
                residual -= xc[:, j] * (new - old)
                beta[j] = new
                largest = max(largest, abs(new - old))
        if largest < tol:
            break
    return beta, float(mean_y - mean_x @ beta)


def disclosures(run: RecordedRun, *, leave_one_out: int = 100, seed: int | None = None) -> list[Disclosure]:
    """What ``m``, the table sizes, the column counts and the output disclose (computed).

    Figures come from the transcript (what was actually sent) and the ground truth.
    ``leave_one_out`` rows (a random sample) are each left out of a plaintext lasso fit
    on the joined table, to measure how far one person moves the published model.
    """
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    t = run.transcript
    out: list[Disclosure] = []
    sizes = {}
    for role in (HOSPITAL, INSURER):
        end = t.select(step=4, sender=role, receiver=TTP, kind="rows_end")
        sizes[role] = int(end[-1].body["rows"]) if end else len(run.tables[role])
    out.append(Disclosure(
        "table sizes", (TTP,), sizes,
        "The TTP learns how many usable rows each party has (after rows with missing values were dropped). "
        "The data parties do not learn each other's size from the protocol.",
    ))
    announced = t.select(step=4, kind="intersection")
    m = int(announced[0].body["size"]) if announced else run.intersection_size
    n_h, n_i = sizes[HOSPITAL], sizes[INSURER]
    out.append(Disclosure(
        "intersection size m", (HOSPITAL, INSURER, TTP), m,
        f"All three learn that {m} persons are in both tables: {m / n_h:.1%} of the hospital's rows and "
        f"{m / n_i:.1%} of the insurer's. For a given own patient, the hospital's best guess that the person is "
        f"also in the insurer's table is right with probability {m / n_h:.3f} (the same for every patient: m says "
        "nothing about who). Repeated runs on inputs that differ in one person would turn m into a membership "
        "test for that person, so re-runs must be controlled organisationally.",
    ))
    columns = {e.sender: int(e.body["columns"]) for e in t.select(step=3, kind="public_key")}
    out.append(Disclosure(
        "column counts and names", (HOSPITAL, INSURER, TTP),
        {**{party: len(columns) for party, columns in run.config.columns.items()},
         "announced_in_step_3": columns},
        "Column names and counts are public metadata agreed in the run configuration; they describe the data set, "
        "not any person.",
    ))
    result = run.simulation.result if run.simulation is not None else None
    if result is not None:
        model = {
            "coefficients": dict(zip(run.config.features, (float(c) for c in result.coefficients), strict=True)),
            "intercept": float(result.intercept), "r2": float(result.r2), "iterations": int(result.iterations),
        }
        sensitivity = _leave_one_out(run, leave_one_out, rng)
        opened: dict[str, int] = {}
        for label, count in getattr(run.simulation.parties[HOSPITAL], "revealed", []):
            opened[label] = opened.get(label, 0) + int(count)
        model["opened_in_clear"] = opened
        opened_text = (
            "During step 8 the parties opened in clear only: "
            + ", ".join(f"{count} value(s) labelled '{label}'" for label, count in opened.items())
            + " (the convergence checks are the iteration count; the rest is the output). "
        ) if opened else ""
        out.append(Disclosure(
            "the lasso model", (HOSPITAL, INSURER, TTP), model,
            opened_text
            + f"The published output: one coefficient per feature, the intercept, R^2 and the number of iterations. "
            f"These are aggregates over all {m} joined persons. Leaving one person out of the data (tried for "
            f"{sensitivity['rows_tried']} persons) changes a coefficient by at most {sensitivity['max_change']:.3g} "
            f"({sensitivity['max_relative_change']:.2%} of the largest coefficient): that is how much any one person "
            "can move what is published, and why a model trained on very few persons should not be released.",
        ))
        out[-1].value["leave_one_out"] = sensitivity
    return out


def _leave_one_out(run: RecordedRun, count: int, rng: random.Random) -> dict[str, Any]:
    config = run.config
    joined = run.joined_values().astype(np.float64) / float(1 << config.params.frac_bits)
    target = config.joined_columns.index(config.target)
    features = [i for i in range(joined.shape[1]) if i != target]
    x, y = joined[:, features], joined[:, target]
    full, _ = lasso_fit_plaintext(x, y, config.alpha)
    rows = _sample(range(len(y)), count, rng)
    largest = 0.0
    for r in rows:
        keep = np.ones(len(y), dtype=bool)
        keep[r] = False
        beta, _ = lasso_fit_plaintext(x[keep], y[keep], config.alpha)
        largest = max(largest, float(np.max(np.abs(beta - full))))
    scale = float(np.max(np.abs(full))) or 1.0
    return {"rows_tried": len(rows), "max_change": largest, "max_relative_change": largest / scale}


# ---- running attacks ------------------------------------------------------------------------


def run_named(run: RecordedRun, name: str) -> list[AttackResult]:
    """The single-party attack ``name`` (for each data party where it applies):
    what a control run of a broken variant needs."""
    if name in ("masked_value_linking", "membership_inference"):
        attack = masked_value_linking if name == "masked_value_linking" else membership_inference
        return [attack(run, role) for role in (HOSPITAL, INSURER)]
    if name == "ttp_dictionary_attack":
        return [ttp_dictionary_attack(run)]
    if name == "ttp_side_channel_inference":
        return [ttp_side_channel_inference(run)]
    raise ValueError(f"no single-party attack named {name!r}")


def run_all(run: RecordedRun, *, coalition_retained: bool = True) -> list[AttackResult]:
    """Every attack that applies to ``run`` (steps it did not reach are skipped)."""
    results = [ttp_dictionary_attack(run)]
    if run.last_step >= 6 and "row_pairs" in run.god_view.held[TTP]:
        for role in (HOSPITAL, INSURER):
            results.append(masked_value_linking(run, role))
            results.append(membership_inference(run, role))
    results.append(ttp_side_channel_inference(run))
    for role in (HOSPITAL, INSURER):
        results.append(coalition_membership(run, role))
    results.append(ttp_dictionary_attack(run, attackers=(INSURER, TTP), retained=True, unkeyed=False))
    results.append(ttp_dictionary_attack(run, attackers=(HOSPITAL, TTP), retained=True, unkeyed=False))
    if run.last_step >= 7 and all("shamir_shares" in run.god_view.held[r] for r in (HOSPITAL, INSURER, TTP)):
        for role in (HOSPITAL, INSURER, TTP):
            results.append(coalition_reconstruction(run, (role,), 7))
        pairs = ((HOSPITAL, INSURER), (HOSPITAL, TTP), (INSURER, TTP))
        for pair in pairs:
            results.append(coalition_reconstruction(run, pair, 7))
        if run.completed:
            for pair in pairs:
                results.append(coalition_reconstruction(run, pair, AFTER_RUN))
            if coalition_retained:
                for pair in pairs:
                    results.append(coalition_reconstruction(run, pair, AFTER_RUN, retained=True))
    return results
