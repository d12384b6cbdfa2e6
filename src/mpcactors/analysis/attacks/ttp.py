"""Attacks by the TTP alone (or with a data party's retained messages): hashed ids and side channels in step 4."""

from __future__ import annotations

import hashlib
import math
import random
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ...protocol.wire import BigIntArray
from ...crypto import hashing
from ...protocol.messages import HASH_BYTES
from ...protocol.roster import TTP
from ..stats import ALPHA, binomial_threshold
from ..views import RecordedRun, coalition_view
from ._common import INFER, LINK, AttackResult, attack_result

__all__ = ["DICTIONARY_LIMIT", "dictionary_for", "ttp_dictionary_attack", "ttp_side_channel_inference"]

#: Largest id space the dictionary attack enumerates in full.
DICTIONARY_LIMIT = 2_000_000


# ---- attack 1: the TTP's dictionary attack on hashed ids ----------------------------------


def dictionary_for(run: RecordedRun, limit: int = DICTIONARY_LIMIT) -> tuple[list[str], str]:
    """The ids the dictionary attack tries, and a sentence saying what they are.

    The whole public id space when it is known and at most ``limit`` ids; otherwise
    every real id of every table (an attacker with a perfect shortlist). The two give
    the same success rate: a candidate that is not a real id can only match a digest
    by a SHA-256 collision.
    """
    if run.id_space is not None and run.id_space <= limit:
        return [f"{k:09d}" for k in range(run.id_space)], (
            f"the whole id space: all {run.id_space:,} nine-digit ids 000000000 to {run.id_space - 1:09d}"
        )
    ids = sorted(set().union(*(run.tables[role].ids for role in run.data_parties)))
    why = "the id space is not known" if run.id_space is None else f"the id space ({run.id_space:,} ids) is too large to enumerate here"
    return ids, (
        f"a perfect shortlist: the {len(ids):,} ids that really occur in some table ({why}; "
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
    """The TTP (optionally with data parties) tries to name the person behind each hashed id.

    It holds every data party's hashed ids during step 4. It hashes every id of the
    dictionary with every hash function it can build: unkeyed SHA-256 (plain, and
    with the protocol's domain tag), HMAC with an all-zero key, HMAC with the key it
    can form when the step-2 key contributions of every data party are in its
    members' messages (sent or received; the key is their sum), and any key a broken
    variant handed it. A digest found in one of those tables is named; the name is
    scored against the hash oracle (ground truth).

    Expected: 0 for the TTP alone (it is on none of the data parties' links and never
    holds the key); 1 with :func:`~mpcactors.analysis.variants.keep_hash_key`, and 1
    for any data party + TTP if that party kept its step-2 messages (``retained``: it
    sent its own contribution and received every other's).
    ``unkeyed=False`` skips the three key-less guesses (a coalition's TTP has already
    tried them alone; each costs one hash per dictionary word).
    """
    members = tuple(attackers)
    if TTP not in members:
        raise ValueError("the dictionary attack needs the TTP (it holds the other party's hashed ids)")
    view = coalition_view(run, members, 4, retained=retained)
    held = view.get(TTP, "hashed_ids", [[] for _ in run.data_parties])
    targets = [(role, d) for role, digests in zip(run.data_parties, held, strict=True) for d in digests]
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
    by_sender = {
        e.sender: e.body["value"] for e in run.transcript
        if retained and e.kind == "hash_contribution" and (e.receiver in members or e.sender in members)
    }
    contributions = sorted(set(by_sender.values()))
    if set(by_sender) == set(run.data_parties):  # the key is the sum of every data party's contribution
        first, *rest = (by_sender[role] for role in run.data_parties)
        hashers.append(("HMAC with a key built from step-2 contributions in the view",
                        hashing.JointKey.from_contributions(first, *rest).hash_ids))
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
    return attack_result(
        run, "ttp_dictionary_attack", LINK, members, 4, correct, trials, baseline,
        binomial_threshold(trials, baseline), explanation,
        dictionary=searched, dictionary_size=len(words), hash_functions_tried=len(hashers),
        contributions_in_view=len(contributions), named=named, worked=dict(worked), retained=retained,
        unkeyed_tried=unkeyed,
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
    For every (sending data party, observable, attribute) it is given an oracle advantage:
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
    for role in run.data_parties:
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
    return attack_result(
        run, "ttp_side_channel_inference", INFER, (TTP,), 4, hits, n, 0.5, threshold, explanation,
        rules=len(tests), best_rule=rule, constant_observables=sorted(constant),
        top_rules=sorted(rules, key=lambda r: -r["held_out_accuracy"])[:10],
    )
