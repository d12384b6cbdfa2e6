"""Attacks as code: what a party or a coalition can learn, measured against ground truth.

Each attack plays one party (or several pooling their views) with the data that party
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
coalition_reconstruction       single    any set, 7 / after   threshold 2 of 3, deletion
=============================  ========  ===================  ==========================

:func:`disclosures` is not an attack: it lists what the protocol reveals on purpose
(table sizes, ``m``, the model) and what that discloses.

The attacks are grouped by attacker: :mod:`.ttp`, :mod:`.data_party` and
:mod:`.coalition`; this package runs them (:func:`run_all`, :func:`run_named`) and
re-exports the statistics (:mod:`mpcactors.analysis.stats`, standard library only: no
SciPy at run time) and the disclosures (:mod:`mpcactors.analysis.disclosures`).
"""

from __future__ import annotations

from itertools import combinations

from ...protocol.roster import TTP
from ..disclosures import Disclosure, disclosures, lasso_fit_plaintext
from ..stats import ALPHA, binomial_threshold, hypergeometric_threshold, ks_uniform_pvalue
from ..views import RecordedRun
from ._common import AFTER_RUN, INFER, LINK, SINGLE_OUT, AttackResult
from .coalition import coalition_membership, coalition_reconstruction
from .data_party import masked_value_linking, membership_inference
from .ttp import DICTIONARY_LIMIT, dictionary_for, ttp_dictionary_attack, ttp_side_channel_inference

__all__ = [
    "AFTER_RUN",
    "ALPHA",
    "DICTIONARY_LIMIT",
    "INFER",
    "LINK",
    "SINGLE_OUT",
    "AttackResult",
    "Disclosure",
    "binomial_threshold",
    "coalition_membership",
    "coalition_reconstruction",
    "dictionary_for",
    "disclosures",
    "hypergeometric_threshold",
    "ks_uniform_pvalue",
    "larger_coalitions",
    "lasso_fit_plaintext",
    "masked_value_linking",
    "membership_inference",
    "run_all",
    "run_named",
    "ttp_dictionary_attack",
    "ttp_side_channel_inference",
]


def run_named(run: RecordedRun, name: str) -> list[AttackResult]:
    """The single-party attack ``name`` (for each data party where it applies):
    what a control run of a broken variant needs."""
    if name in ("masked_value_linking", "membership_inference"):
        attack = masked_value_linking if name == "masked_value_linking" else membership_inference
        return [attack(run, role) for role in run.data_parties]
    if name == "ttp_dictionary_attack":
        return [ttp_dictionary_attack(run)]
    if name == "ttp_side_channel_inference":
        return [ttp_side_channel_inference(run)]
    raise ValueError(f"no single-party attack named {name!r}")


def larger_coalitions(run: RecordedRun) -> list[tuple[str, ...]]:
    """The largest coalitions without two compute parties, when they have more than two
    members (from k = 4 on): every data party outside the computation with one compute
    party, for each compute party. Any coalition with two compute parties holds two
    Shamir shares during steps 7 and 8, so these are the ones whose failure says something."""
    outside = run.outside
    if len(outside) < 2:
        return []
    return [(*outside, party) for party in run.roster.compute_parties]


def run_all(run: RecordedRun, *, coalition_retained: bool = True) -> list[AttackResult]:
    """Every attack that applies to ``run`` (steps it did not reach are skipped): the
    single-party attacks for every data party and the TTP, and every coalition of two
    (plus :func:`larger_coalitions` in step 7)."""
    data, members = run.data_parties, run.roster.members
    results = [ttp_dictionary_attack(run)]
    if run.last_step >= 6 and "row_pairs" in run.god_view.held[TTP]:
        for role in data:
            results.append(masked_value_linking(run, role))
            results.append(membership_inference(run, role))
    results.append(ttp_side_channel_inference(run))
    for role in data:
        results.append(coalition_membership(run, role))
    for role in data:
        results.append(ttp_dictionary_attack(run, attackers=(role, TTP), retained=True, unkeyed=False))
    computes = run.roster.compute_parties
    if run.last_step >= 7 and all("shamir_shares" in run.god_view.held[r] for r in computes):
        for role in members:
            results.append(coalition_reconstruction(run, (role,), 7))
        pairs = list(combinations(members, 2))
        for pair in pairs:
            results.append(coalition_reconstruction(run, pair, 7))
        for coalition in larger_coalitions(run):
            results.append(coalition_reconstruction(run, coalition, 7))
        if run.completed:
            for pair in pairs:
                results.append(coalition_reconstruction(run, pair, AFTER_RUN))
            if coalition_retained:
                for pair in pairs:
                    results.append(coalition_reconstruction(run, pair, AFTER_RUN, retained=True))
    return results
