"""The anonymity report: per step and party, the three questions answered with evidence.

:func:`build_report` turns a recorded run, its attack results and disclosures (and
optionally the control runs of broken variants) into one JSON-able document;
:func:`render_markdown` and :func:`render_html` present the same document for people
(the HTML is self-contained: inline CSS, no scripts, no external assets), and
:func:`write_report` writes all three to a directory.

Every figure in the report is computed from the run it describes: bytes from the
transcript, ``m`` and sizes from the messages, success rates from the attacks. The
answers to the three questions are derived from the attack verdicts, so a broken
protocol produces a report that says "yes" (the tests check this).
"""

from __future__ import annotations

import datetime
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from itertools import combinations

from ..protocol.roster import TTP
from ..protocol.steps import STEP_NAMES
from .attacks import ALPHA, AFTER_RUN, AttackResult, Disclosure
from .views import CONFIRM, KEY_DESCRIPTIONS, STEPS, RecordedRun, describe, party_view

__all__ = ["attack_id", "build_report", "render_html", "render_markdown", "write_report"]

QUESTIONS = ("single out", "link", "infer")
QUESTION_TEXT = {
    "single out": "Can it isolate the records of one person it is not meant to see?",
    "link": "Can it link records of the same person (e.g. a hashed id to a name, a masked row to an input row)?",
    "infer": "Can it deduce an attribute of such a person, or whether the person is in the other party's data?",
}
#: What each party is, by kind (:func:`~mpcactors.analysis.views.kind_of`).
KIND_TEXT = {
    "data": "a data party that computes with the TTP in steps 7 and 8 (it holds a Shamir share of the joined table)",
    "outside": "a data party outside the computation: in step 7 it deals its additive share to the compute parties "
               "as Shamir shares and then holds nothing of the joined table; in step 8 it receives the model",
    "ttp": "the trusted third party: it matches hashed ids (step 4), masks and forwards (steps 5-6), and holds a "
           "Shamir share of the joined table in steps 7 and 8",
}


def attack_id(result: AttackResult) -> str:
    """A stable identifier: ``name/attacker/step`` (``/kept`` when deleted data was kept)."""
    kept = "/kept" if result.details.get("retained") and result.name == "coalition_reconstruction" else ""
    step = "after-run" if result.step == AFTER_RUN else f"step-{result.step}"
    return f"{result.name}/{result.party_or_coalition}/{step}{kept}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


# ---- building ------------------------------------------------------------------------------


def _by_attacker(results: Sequence[AttackResult]) -> dict[tuple[str, str], list[AttackResult]]:
    out: dict[tuple[str, str], list[AttackResult]] = {}
    for r in results:
        out.setdefault((r.name, r.party_or_coalition), []).append(r)
    return out


def _answer(answer: str, why: str, evidence: Sequence[AttackResult] = ()) -> dict[str, Any]:
    return {"answer": answer, "why": why, "evidence": [attack_id(r) for r in evidence]}


def _from_attacks(evidence: list[AttackResult], protected: str, broken: str) -> dict[str, Any]:
    """'no' if every attack found no advantage, 'YES' if one succeeded."""
    evidence = [r for r in evidence if r is not None]
    if not evidence:
        return _answer("not measured", "the attack that answers this did not run (the run stopped earlier)")
    failed = [r for r in evidence if r.succeeded]
    if failed:
        figures = "; ".join(f"{attack_id(r)}: {_pct(r.success_rate)} vs {_pct(r.baseline)} by guessing" for r in failed)
        return _answer("YES", f"{broken} ({figures})", evidence)
    figures = "; ".join(
        f"{attack_id(r)}: {_pct(r.success_rate)}, guessing {_pct(r.baseline)}, bound {_pct(r.confidence_bound)}"
        for r in evidence
    )
    return _answer("no", f"{protected} ({figures})", evidence)


def _the(names: Sequence[str]) -> str:
    """``"the insurer"``, ``"the insurer and the cbs"``, ``"the a, the b and the c"``."""
    named = [f"the {n}" for n in names]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]


def _questions(run: RecordedRun, role: str, step: int, index: dict[tuple[str, str], list[AttackResult]],
               view_names: set[str], received_kinds: list[str]) -> dict[str, dict[str, Any]]:
    def one(name: str, who: str) -> list[AttackResult]:
        return [r for r in index.get((name, who), []) if not r.details.get("retained")] or index.get((name, who), [])

    others = [p for p in run.data_parties if p != role]
    several = len(others) > 1
    if step == CONFIRM and not view_names & {"additive_shares", "shamir_shares"}:
        nothing = _answer("no", "every share and key was deleted before step 9; it receives only its peers' "
                                "SHA-256 digests of the outcome it already holds")
        infer = _answer("aggregate only", "it keeps the published model from step 8 (see disclosures); the "
                                          "digests add nothing to it") if "result" in view_names else nothing
        return {"single out": nothing, "link": nothing, "infer": infer}
    if role == TTP:
        dictionary = one("ttp_dictionary_attack", TTP)
        side = one("ttp_side_channel_inference", TTP)
        if step < 4:
            nothing = _answer("no", "the TTP has received nothing yet")
            return {q: nothing for q in QUESTIONS}
        infer = _from_attacks(
            side,
            "it holds only ciphertexts under keys it never has; sizes, timing and order of what it receives "
            "predict no attribute", "sizes, timing or order predicted attribute values",
        )
        if step == 4:
            link = _from_attacks(
                dictionary,
                f"it links the {len(run.data_parties)} tables' records of the same person by their hashed ids (that is "
                "its job), but cannot tie a hashed id to an identity: the dictionary attack named nobody",
                "the dictionary attack tied hashed ids to identities",
            )
            single = _from_attacks(
                dictionary,
                "it can isolate pseudonymous records (a hashed id with ciphertexts) but cannot attach one to a person",
                "the dictionary attack tied hashed ids to identities",
            )
            infer["why"] += "; it learns the table sizes, m and which hashed ids are equal (see disclosures)"
            return {"single out": single, "link": link, "infer": infer}
        if step in (5, 6):
            why = ("the hashed ids were deleted after matching in step 4; it holds ciphertext rows in a random order "
                   "and their pairing, tied to no id, until step 6 ends")
            answer = _answer("no", why, dictionary)
            return {"single out": answer, "link": answer, "infer": infer}
        return _share_questions(role, step, index, view_names)

    # a data party
    if step in (1, 2, 3):
        why = {
            1: "it has received nothing; it only prepares (and shuffles) its own table",
            2: (f"it has received only the 256-bit key contributions of {_the(others)}: random numbers that depend on "
                "no person" if several else
                f"it has received only {_the(others)}'s 256-bit key contribution: a random number that depends on no person"),
            3: (f"it has received only the Paillier public keys and column counts of {_the(others)}: public values "
                "that depend on no person" if several else
                f"it has received only {_the(others)}'s Paillier public key and column count: public values that "
                "depend on no person"),
        }[step]
        answer = _answer("no", why)
        return {q: answer for q in QUESTIONS}
    if step in (4, 5):
        keys = f"{_the(others)}'s key" if not several else "the other data parties' keys"
        why = ("it has received only m, the number of persons in every table (an aggregate, see disclosures)"
               if step == 4 else f"it receives nothing in step 5 (it sends masks encrypted under {keys})")
        answer = _answer("no", why)
        infer = _answer("aggregate only", "it learns m: the share of its own rows that are also in every other table, "
                        "the same for every person (see disclosures)") if step == 4 else answer
        return {"single out": answer, "link": answer, "infer": infer}
    if step == 6:
        linking = one("masked_value_linking", role)
        membership = one("membership_inference", role)
        masks = "the other data parties' random numbers" if several else "the other party's random numbers"
        link = _from_attacks(linking, f"the values it decrypts are masked by {masks} and "
                             "re-randomised: it cannot tell which of its rows each one came from",
                             "it tied decrypted rows to its own input rows")
        infer = _from_attacks(membership, "it cannot tell which of its own rows are in the intersection",
                              "it told which of its rows are in the intersection")
        single = _from_attacks(linking + membership, "no decrypted row can be tied to a person",
                               "decrypted rows were tied to persons")
        return {"single out": single, "link": link, "infer": infer}
    if run.kind_of(role) == "outside":
        return _outside_questions(role, step, index, view_names)
    return _share_questions(role, step, index, view_names)


def _outside_questions(role: str, step: int, index: dict[tuple[str, str], list[AttackResult]],
                       view_names: set[str]) -> dict[str, dict[str, Any]]:
    """Steps 7 and 8 of a data party outside the computation: it deals, then only receives the output."""
    alone = [r for r in index.get(("coalition_reconstruction", role), []) if r.step == 7]
    if step == 7:
        answer = _from_attacks(
            alone, "its additive share is its own columns minus every other party's masks, and its own masks for "
            "the others' columns: reading it as the table matched no entry. It deals it to the three compute parties "
            "as Shamir shares (each uniformly random) and deletes it; it receives nothing in step 7",
            "its additive share revealed entries of the joined table",
        )
        return {q: answer for q in QUESTIONS}
    answer = _answer("no", "it holds no share of the joined table and no MPC state after step 7; in step 8 it "
                           "receives only the opened model, the same from each compute party", alone)
    if "result" in view_names:
        infer = _answer("aggregate only", "it learns the published model (coefficients, intercept, R^2, iterations): "
                        "aggregates over all m persons (see disclosures)", alone)
        return {"single out": answer, "link": answer, "infer": infer}
    return {q: answer for q in QUESTIONS}


def _share_questions(role: str, step: int, index: dict[tuple[str, str], list[AttackResult]],
                     view_names: set[str]) -> dict[str, dict[str, Any]]:
    """Steps 7 and 8 of a compute party: one Shamir share each (and, in step 8, the output)."""
    alone = [r for r in index.get(("coalition_reconstruction", role), []) if r.step == 7]
    answer = _from_attacks(
        alone, "its Shamir share alone is a uniformly random field element: reading it as the value matched no entry; "
        "only two compute parties together can interpolate (see the coalition table)",
        "its own share revealed entries of the joined table",
    )
    if step == 8 and "result" in view_names and answer["answer"] == "no":
        infer = _answer("aggregate only", "it learns the published model (coefficients, intercept, R^2, iterations): "
                        "aggregates over all m persons (see disclosures)", alone)
        return {"single out": answer, "link": answer, "infer": infer}
    return {q: answer for q in QUESTIONS}


_PHASES = [
    ("during steps 4-6: membership of the data party's rows", "coalition_membership", None, False),
    ("during step 4: names behind the hashed ids (if the data party kept its step-2 messages)",
     "ttp_dictionary_attack", None, True),
    ("during step 7: the joined table from what they hold", "coalition_reconstruction", 7, False),
    ("after the run, shares deleted as the protocol requires", "coalition_reconstruction", AFTER_RUN, False),
    ("after the run, if the parties kept copies of their shares", "coalition_reconstruction", AFTER_RUN, True),
]


def _coalitions(run: RecordedRun, results: Sequence[AttackResult]) -> list[dict[str, Any]]:
    """One row per coalition of two (every pair of members) and phase, then the larger coalitions measured."""
    rows = []
    pairs = list(combinations(run.roster.members, 2))
    larger = sorted({r.party_or_coalition for r in results
                     if r.name == "coalition_reconstruction" and r.party_or_coalition.count("+") > 1})
    for who in ["+".join(pair) for pair in pairs] + larger:
        for label, name, step, kept in _PHASES:
            match = [
                r for r in results
                if r.name == name and r.party_or_coalition == who and (step is None or r.step == step)
                and bool(r.details.get("retained")) == kept
            ]
            if name == "ttp_dictionary_attack":
                match = [r for r in results if r.name == name and r.party_or_coalition == who]
            if not match:
                if TTP not in who.split("+") and who.count("+") == 1 and name in ("coalition_membership", "ttp_dictionary_attack"):
                    rows.append({"coalition": who, "phase": label, "success_rate": None, "evidence": None,
                                 "finding": "not applicable: two data parties own their inputs anyway; two "
                                            "controllers who collude need no protocol to share their files"})
                continue
            r = match[0]
            rows.append({"coalition": who, "phase": label, "success_rate": r.success_rate, "evidence": attack_id(r),
                         "finding": r.explanation})
    return rows


def _rate(results: Sequence[AttackResult]) -> str:
    return ", ".join(f"{r.party_or_coalition}: {_pct(r.success_rate)}" for r in results)


def _larger_coalitions(run: RecordedRun, results: Sequence[AttackResult]) -> list[str]:
    """What coalitions of more than two members give, in words, with the measured figures that back it."""
    computes = run.roster.compute_parties
    during = [r for r in results if r.name == "coalition_reconstruction" and r.step == 7 and "+" in r.party_or_coalition]
    two = [r for r in during if sum(p in computes for p in r.party_or_coalition.split("+")) >= 2]
    fewer = [r for r in during if r not in two]
    lines = [
        f"The threshold is 2 of the 3 compute parties ({', '.join(computes)}): any coalition, of any size, that "
        "contains two of them holds two Shamir shares during steps 7 and 8 and rebuilds the whole joined table"
        + (f" (measured for the pairs: {_rate(two)})." if two else "."),
    ]
    if run.outside:
        lines.append(
            f"A coalition of data parties outside the computation ({', '.join(run.outside)}) with one compute party "
            "cannot: it holds one Shamir share and additive shares that do not add up (the missing compute data "
            "party's share masks every entry)"
            + (f" (measured: {_rate(fewer)})." if fewer else ".")
            + " Only all data parties together, while they still hold their additive shares (steps 6 and 7), add "
            "them up to the table, and that coalition contains two compute parties anyway."
        )
    lines.append(
        "A coalition with the TTP during step 4 sees the hashed ids of its members next to every other data party's: "
        "it learns, for each of its members' rows, whether that person is in each other table (coalition_membership); "
        "adding more data parties to it only adds their own rows. If any one data party in it kept its step-2 "
        "messages (each data party sends its key contribution to, and receives one from, every other), the coalition "
        "rebuilds the hashing key and names the person behind every hashed id (ttp_dictionary_attack)."
    )
    lines.append(
        "After the run every share is deleted: no coalition of any size rebuilds an entry, unless two compute parties "
        "kept their Shamir shares, or all data parties kept their additive shares (or masks and decrypted values)."
    )
    return lines


def build_report(
    run: RecordedRun,
    results: Sequence[AttackResult],
    disclosures: Sequence[Disclosure],
    *,
    controls: Sequence[tuple[RecordedRun, Sequence[AttackResult]]] = (),
    plan: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report document (JSON-able). ``controls`` pairs each broken-variant run with its results;
    ``plan`` is :func:`~mpcactors.analysis.disclosures.plan_disclosures` of the study plan
    (what each analysis opens to whom, measured), shown as its own section."""
    index = _by_attacker(results)
    transcript = run.transcript
    per_party = transcript.bytes_by_party()
    steps: list[dict[str, Any]] = []
    last = run.last_step
    for step in STEPS:
        for role in run.roster.members:
            reached = run.reached(step)
            view = party_view(run, role, step)
            names = set(view.holds[role])
            received = view.received
            kinds = list(dict.fromkeys(e.kind for e in received))
            deleted = [n for n, s in run.deleted_at(role).items() if s == step]
            entry = {
                "step": step,
                "name": STEP_NAMES[step],
                "party": role,
                "reached": bool(reached),
                "holds": [{"item": n, "description": describe(role, n, run.kind_of(role))} for n in sorted(names)],
                "keys": [{"key": k, "description": KEY_DESCRIPTIONS.get(k, k)} for k in view.keys[role]],
                "received": [
                    {"from": e["from"], "kind": e["kind"], "messages": e["messages"], "bytes": e["bytes"]}
                    for e in view.summary()["received"]
                ],
                "bytes_sent": per_party.get(role, {}).get("sent", {}).get(step, 0),
                "bytes_received": per_party.get(role, {}).get("received", {}).get(step, 0),
                "deleted_at_end": deleted,
                "questions": _questions(run, role, step, index, names, kinds),
            }
            steps.append(entry)
    dictionary = next((r.details.get("dictionary") for r in results if r.name == "ttp_dictionary_attack"), None)
    sim = run.simulation
    control_rows = []
    honest = {(r.name, r.party_or_coalition, r.step): r for r in results}
    for control_run, control_results in controls:
        variant = control_run.variant
        for r in control_results:
            if r.name != variant.caught_by or "+" in r.party_or_coalition:
                continue
            reference = honest.get((r.name, r.party_or_coalition, r.step))
            control_rows.append({
                "variant": variant.name,
                "breaks": variant.description,
                "attack": attack_id(r),
                "success_rate": r.success_rate,
                "confidence_bound": r.confidence_bound,
                "caught": r.succeeded,
                "success_rate_with_the_protocol": None if reference is None else reference.success_rate,
                "explanation": r.explanation,
            })
    summary = _summary(run, results, disclosures, control_rows)
    return {
        "title": "Anonymity report: what each party can learn, step by step",
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": {
            "protocol": run.variant_name,
            "completed": run.completed,
            "error": None if run.error is None else f"{type(run.error).__name__}: {run.error}",
            "last_step": last,
            "rows": run.rows,
            "data_parties": list(run.data_parties),
            "compute_parties": list(run.roster.compute_parties),
            "outside": list(run.outside),
            "intersection_size": run.intersection_size,
            "columns": {party: list(columns) for party, columns in run.config.columns.items()},
            "target": run.config.target,
            "key_bits": run.config.key_bits,
            "sigma": run.config.params.sigma,
            "mask_bits": run.config.params.mask_bits,
            "id_space": run.id_space,
            "dictionary_searched": dictionary,
            "seconds": None if sim is None else round(sim.seconds, 3),
            "alpha": ALPHA,
        },
        "summary": summary,
        "parties": _parties(run, steps, results, disclosures),
        "steps": steps,
        "attacks": [{"id": attack_id(r), **r.document()} for r in results],
        "controls": control_rows,
        "coalitions": _coalitions(run, results),
        "larger_coalitions": _larger_coalitions(run, results),
        "disclosures": [d.document() for d in disclosures],
        "plan": plan,
        "bytes": {
            "by_step": {str(k): v for k, v in transcript.bytes_by_step().items()},
            "messages_by_step": {str(k): v for k, v in transcript.messages_by_step().items()},
            "by_party": {role: {d: {str(k): v for k, v in per.items()} for d, per in dirs.items()}
                         for role, dirs in per_party.items()},
            "traffic": transcript.traffic(),
            "total": sum(e.size for e in transcript),
        },
    }


def _parties(run: RecordedRun, steps: Sequence[dict[str, Any]], results: Sequence[AttackResult],
             disclosures: Sequence[Disclosure]) -> list[dict[str, Any]]:
    """Per member: what it is, what it learns by design, what it keeps, and its steps in one line each."""
    out = []
    for role in run.roster.members:
        kind = run.kind_of(role)
        own = [r for r in results if r.party_or_coalition == role]
        broken = [attack_id(r) for r in own if r.succeeded]
        kept = sorted(name for name in run.god_view.held.get(role, {}) if run.last_step_of(role, name) is None)
        lines = []
        for e in (e for e in steps if e["party"] == role and e["reached"]):
            received = ", ".join(dict.fromkeys(f"{r['kind']} from {r['from']}" for r in e["received"]
                                               if not r["kind"].endswith("_end"))) or "nothing"
            holds = ", ".join(h["item"] for h in e["holds"]) or "nothing"
            answers = "; ".join(f"{q}: {e['questions'][q]['answer']}" for q in QUESTIONS)
            lines.append(f"step {e['step']} ({e['name']}): receives {received}; holds {holds} ({answers})")
        out.append({
            "party": role,
            "kind": kind,
            "is": KIND_TEXT[kind],
            "learns_by_design": [d.item for d in disclosures if role in d.learned_by],
            "keeps_after_the_run": [describe(role, name, kind) for name in kept],
            "own_attacks": len(own),
            "own_attacks_that_succeeded": broken,
            "steps": lines,
        })
    return out


def _summary(run: RecordedRun, results: Sequence[AttackResult], disclosures: Sequence[Disclosure],
             controls: Sequence[dict[str, Any]]) -> list[str]:
    alone = [r for r in results if "+" not in r.party_or_coalition]
    broken = [r for r in alone if r.succeeded]
    computes = run.roster.compute_parties
    lines = []
    if not broken:
        lines.append(
            f"No single party could single out, link or infer: all {len(alone)} single-party attacks stayed at the "
            "level of blind guessing (within the stated bounds)."
        )
    else:
        lines.append(
            "A single party learnt something it should not: "
            + "; ".join(f"{attack_id(r)} reached {_pct(r.success_rate)} (guessing: {_pct(r.baseline)})" for r in broken)
            + "."
        )
    during7 = [r for r in results if r.name == "coalition_reconstruction" and r.step == 7 and "+" in r.party_or_coalition]
    two = [r for r in during7 if sum(p in computes for p in r.party_or_coalition.split("+")) >= 2]
    fewer = [r for r in during7 if r not in two]
    if two:
        lines.append(
            f"Any two compute parties ({', '.join(computes)}) that pool their Shamir shares during step 7 rebuild the "
            f"joined table ({_rate(two)}): the threshold is 2 of 3 by design, so the protection rests on the parties "
            "not colluding."
        )
    if fewer:
        lines.append(
            f"A data party outside the computation with one compute party rebuilds "
            f"{_pct(max(r.success_rate for r in fewer))} of it at best ({_rate(fewer)})."
        )
    after = [r for r in results if r.name == "coalition_reconstruction" and r.step == AFTER_RUN and not r.details.get("retained")]
    kept = [r for r in results if r.name == "coalition_reconstruction" and r.step == AFTER_RUN and r.details.get("retained")]
    if after:
        lines.append(
            "After the run, with every share deleted as the protocol requires, no pair rebuilds any entry "
            f"(best: {_pct(max(r.success_rate for r in after))}); only the published model remains."
            + (f" If parties kept copies despite the deletion rule, pairs rebuild {_pct(max(r.success_rate for r in kept))}:"
               " deletion is an organisational promise Python cannot prove." if kept else "")
        )
    membership = [r for r in results if r.name == "coalition_membership"]
    if membership:
        lines.append(
            "A data party colluding with the TTP learns which of its rows are shared "
            f"({_rate(membership)}); if it also kept its step-2 messages, the pair can name every person behind the "
            "other parties' hashed ids."
        )
    for role in run.outside:
        received = sorted({e.sender for e in run.transcript.select(step=8, receiver=role, kind="delivered")})
        lines.append(
            f"The {role} is outside the computation: it dealt its additive share to the compute parties in step 7 "
            "and holds nothing of the joined table after that"
            + (f"; in step 8 it received only the outputs it is a recipient of (from {', '.join(received)})."
               if received else ".")
        )
    m = run.intersection_size
    lines.append(
        f"Disclosed on purpose: the table sizes (to the TTP), m = {m} (to all), the column names, and the model."
    )
    if controls:
        caught = sum(1 for c in controls if c["caught"])
        variants = len({c["variant"] for c in controls})
        lines.append(
            f"Controls: with one protection deliberately removed ({variants} broken variants), the matching attack "
            f"succeeded in {caught} of {len(controls)} cases: the attacks above can fail, so their 'no' means something."
        )
    return lines


# ---- rendering ------------------------------------------------------------------------------

_INTRO = [
    "This report follows the protocol step by step and asks, for each party, the three questions of the EU "
    "Article 29 Working Party (Opinion 05/2014 on anonymisation): can the party **single out** a person, "
    "**link** records about a person, or **infer** information about a person? The persons in question are those "
    "whose data the party is *not* meant to see: the other data parties' patients or clients, and everybody in "
    "the joined data set. (A hospital can of course single out its own patients in its own table.)",
    "Each answer is backed by an attack that was run on this very simulation: the attacker is given exactly what "
    "that party holds and receives, makes its best guesses, and is scored against the truth (which only the "
    "simulation knows). 'Guessing' is what blind guessing achieves; the 'bound' is the highest success rate that "
    f"blind guessing reaches except with probability {ALPHA:g}. A success rate at or below the bound means the "
    "party learnt nothing beyond guessing.",
    "The protocol assumes semi-honest parties (each follows the protocol) that do not collude; "
    "the coalition table shows what two colluding parties could do, and the paragraphs after it what larger "
    "coalitions could. See docs/threat-model.md.",
]


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown (tables for steps, attacks, coalitions, controls and bytes)."""
    run = report["run"]
    out: list[str] = [f"# {report['title']}", ""]
    out += [f"Generated {report['generated']}. Protocol: **{run['protocol']}**.", ""]
    out += ["## How to read this report", ""] + [p + "\n" for p in _INTRO]
    out += ["## Summary", ""] + [f"- {line}" for line in report["summary"]] + [""]
    out += ["## The run", ""]
    out += [
        f"- {_roster_text(run)}",
        f"- Rows: {_rows_text(run)}; persons in every table (m): {run['intersection_size']}",
        f"- Columns: {_columns_text(run)} (target: {run['target']})",
        f"- Paillier keys: {run['key_bits']} bits; masks: {run['mask_bits']} bits (sigma = {run['sigma']})",
        f"- Dictionary searched by the hashed-id attacks: {run['dictionary_searched']}",
        f"- Completed: {'yes' if run['completed'] else 'no'} (last step reached: {run['last_step']})"
        + (f"; stopped by {run['error']}" if run["error"] else ""),
        "",
    ]
    out += ["## What each party learns", ""]
    for party in report["parties"]:
        out += [f"### {party['party']}", "", f"The {party['party']} is {party['is']}.", ""]
        out.append(f"- Learns by design: {', '.join(party['learns_by_design']) or 'nothing'} (see 'Disclosed on purpose').")
        out.append(f"- Keeps after the run: {'; '.join(party['keeps_after_the_run']) or 'nothing'}.")
        out.append(f"- Attacks by this party alone: {party['own_attacks']}, "
                   + (f"succeeded: {', '.join(party['own_attacks_that_succeeded'])}." if party["own_attacks_that_succeeded"]
                      else "none beat guessing."))
        out += [f"- {_md_escape(line)}" for line in party["steps"]] + [""]
    out += ["## Step by step", ""]
    for step in STEPS:
        entries = [e for e in report["steps"] if e["step"] == step]
        out += [f"### Step {step}: {entries[0]['name']}", ""]
        out += ["| party | holds during this step | received | bytes sent / received | single out | link | infer |",
                "|---|---|---|---|---|---|---|"]
        for e in entries:
            holds = "; ".join(h["description"] for h in e["holds"]) or "nothing"
            if e["keys"]:
                holds += "; keys: " + ", ".join(k["description"] for k in e["keys"])
            if e["deleted_at_end"]:
                holds += f" (deleted at the end: {', '.join(e['deleted_at_end'])})"
            received = "; ".join(f"{r['messages']} {r['kind']} from {r['from']} ({r['bytes']:,} B)" for r in e["received"]) or "-"
            answers = [f"**{e['questions'][q]['answer']}**: {e['questions'][q]['why']}" for q in QUESTIONS]
            out.append("| " + " | ".join(_md_escape(x) for x in [
                e["party"], holds, received, f"{e['bytes_sent']:,} / {e['bytes_received']:,}", *answers]) + " |")
        out.append("")
    out += ["## Attacks", "",
            "| attack | question | attacker | step | success | guessing | bound | verdict | what was tried |",
            "|---|---|---|---|---|---|---|---|---|"]
    for a in report["attacks"]:
        out.append("| " + " | ".join(_md_escape(x) for x in [
            a["id"], a["question"], a["party_or_coalition"], "after run" if a["step"] == AFTER_RUN else a["step"],
            _pct(a["success_rate"]), _pct(a["baseline"]), _pct(a["confidence_bound"]), a["verdict"],
            a["explanation"]]) + " |")
    out.append("")
    if report["controls"]:
        out += ["## Controls: the attacks can fail", "",
                "Each control reruns the simulation with one protection deliberately removed. The matching attack "
                "must then succeed; otherwise its 'no' above would prove nothing.", "",
                "| broken variant | what breaks | attack | success when broken | with the protocol | caught |",
                "|---|---|---|---|---|---|"]
        for c in report["controls"]:
            honest = "-" if c["success_rate_with_the_protocol"] is None else _pct(c["success_rate_with_the_protocol"])
            out.append("| " + " | ".join(_md_escape(x) for x in [
                c["variant"], c["breaks"], c["attack"], _pct(c["success_rate"]), honest,
                "yes" if c["caught"] else "NO"]) + " |")
        out.append("")
    out += [f"## {_COALITIONS}", "",
            "| coalition | when | success | finding |", "|---|---|---|---|"]
    for c in report["coalitions"]:
        rate = "-" if c["success_rate"] is None else _pct(c["success_rate"])
        out.append("| " + " | ".join(_md_escape(x) for x in [c["coalition"], c["phase"], rate, c["finding"]]) + " |")
    out += ["", "Larger coalitions:", ""] + [f"- {line}" for line in report["larger_coalitions"]]
    out.append("")
    out += _plan_markdown(report.get("plan"))
    out += ["## Disclosed on purpose", "", "| what | learnt by | value | what it discloses |", "|---|---|---|---|"]
    for d in report["disclosures"]:
        out.append("| " + " | ".join(_md_escape(x) for x in [
            d["item"], ", ".join(d["learned_by"]), _value_text(d["value"]), d["discloses"]]) + " |")
    out.append("")
    b = report["bytes"]
    out += ["## Bytes exchanged", "", "| step | messages | bytes |", "|---|---|---|"]
    for step, size in b["by_step"].items():
        out.append(f"| {step} {STEP_NAMES[int(step)]} | {b['messages_by_step'][step]:,} | {size:,} |")
    out.append(f"| total | {sum(b['messages_by_step'].values()):,} | {b['total']:,} |")
    out += ["", "| step | from | to | kind | messages | bytes |", "|---|---|---|---|---|---|"]
    for t in b["traffic"]:
        out.append(f"| {t['step']} | {t['sender']} | {t['receiver']} | {t['kind']} | {t['messages']:,} | {t['bytes']:,} |")
    out.append("")
    return "\n".join(out)


_COALITIONS = "Coalitions: parties pooling what they have"
_PLAN = "Per analysis of the study plan: what is opened to whom"


def _plan_intro(plan: dict[str, Any]) -> str:
    return (f"Plan {plan['title']!r} (digest {plan['digest'][:16]}..., min_cell = {plan['min_cell']}). Each output "
            "reaches only its recipients; a control output (it steers the computation) reaches the compute parties "
            "too. Below each table: the disclosure, measured on this run.")


def _opened_rows(analysis: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(o["output"] + ("" if o["label"] else " (follows from the above; nothing more is opened)"),
             "x".join(map(str, o["shape"])) or "1", ", ".join(o["to"])) for o in analysis["opened"]]


def _plan_markdown(plan: dict[str, Any] | None) -> list[str]:
    if not plan:
        return []
    out = [f"## {_PLAN}", "", _plan_intro(plan), ""]
    for a in plan["analyses"]:
        out += [f"### {a['analysis']} ({a['kind']})", "", "| output | shape | opened to |", "|---|---|---|"]
        out += ["| " + " | ".join(_md_escape(x) for x in row) + " |" for row in _opened_rows(a)]
        out += [""] + [f"- {_md_escape(line)}" for line in a["measured"]]
        out += [f"- **The plan validator warns:** {_md_escape(w)}" for w in a["warnings"]] + [""]
    return out


def _plan_html(plan: dict[str, Any] | None) -> list[str]:
    if not plan:
        return []
    p = [f"<h2>{_h(_PLAN)}</h2><p>{_h(_plan_intro(plan))}</p>"]
    for a in plan["analyses"]:
        p.append(f"<h3>{_h(a['analysis'])} ({_h(a['kind'])})</h3><table><tr><th>output</th><th>shape</th>"
                 "<th>opened to</th></tr>"
                 + "".join(f"<tr><td><code>{_h(o)}</code></td><td>{_h(s)}</td><td>{_h(t)}</td></tr>"
                           for o, s, t in _opened_rows(a)) + "</table><ul>"
                 + "".join(f"<li>{_inline(line)}</li>" for line in a["measured"])
                 + "".join(f'<li><span class="yes">The plan validator warns:</span> {_h(w)}</li>' for w in a["warnings"])
                 + "</ul>")
    return p


def _roster_text(run: dict[str, Any]) -> str:
    text = (f"Data parties: {', '.join(run['data_parties'])}; compute parties of steps 7 and 8: "
            f"{', '.join(run['compute_parties'])}")
    if run["outside"]:
        text += f"; outside the computation (deal in step 7, receive the model in step 8): {', '.join(run['outside'])}"
    return text


def _rows_text(run: dict[str, Any]) -> str:
    return ", ".join(f"{party} {rows}" for party, rows in run["rows"].items())


def _columns_text(run: dict[str, Any]) -> str:
    return "; ".join(f"{party} {', '.join(columns)}" for party, columns in run["columns"].items())


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if isinstance(v, dict):
                inner = ", ".join(f"{ik} = {_number(iv)}" for ik, iv in v.items() if not isinstance(iv, dict))
                parts.append(f"{k}: {inner}")
            else:
                parts.append(f"{k} = {_number(v)}")
        return "; ".join(parts)
    return _number(value)


def _number(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#1b1b1b;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:2px solid #ddd;padding-bottom:.2em}h3{margin-top:1.5em}
table{border-collapse:collapse;width:100%;max-width:100%;table-layout:fixed;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.35em .5em;vertical-align:top;text-align:left;overflow-wrap:anywhere;
word-break:break-word;hyphens:auto}
th{background:#f2f2f2}td.num{text-align:right}code{overflow-wrap:anywhere}
.no{color:#0a6b2d;font-weight:600}.yes{color:#b00020;font-weight:700}.agg{color:#8a5a00;font-weight:600}
.muted{color:#666}.summary li{margin:.3em 0}code{background:#f4f4f4;padding:0 .2em}
"""


def _h(text: Any) -> str:
    return html.escape(str(text))


_STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_EM = re.compile(r"(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])")
_CODE = re.compile(r"`([^`]+)`")


def _inline(text: Any) -> str:
    """Escaped text with the report's inline Markdown as HTML: ``**strong**``, ``*emphasis*``
    and ```code```, so the page never shows the markup as typed."""
    out = _CODE.sub(r"<code>\1</code>", _h(text))
    out = _STRONG.sub(r"<b>\1</b>", out)
    return _EM.sub(r"<em>\1</em>", out)


def _answer_class(answer: str) -> str:
    return {"no": "no", "YES": "yes"}.get(answer, "agg")


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (inline CSS, no scripts or external assets)."""
    run = report["run"]
    p: list[str] = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_h(report['title'])}</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>{_h(report['title'])}</h1>",
        f"<p class=\"muted\">Generated {_h(report['generated'])}. Protocol: <b>{_h(run['protocol'])}</b>.</p>",
        "<h2>How to read this report</h2>",
    ]
    for para in _INTRO:
        p.append(f"<p>{_inline(para)}</p>")
    p.append('<h2>Summary</h2><ul class="summary">' + "".join(f"<li>{_inline(s)}</li>" for s in report["summary"]) + "</ul>")
    p.append("<h2>The run</h2><ul>")
    p.append(f"<li>{_h(_roster_text(run))}</li>")
    p.append(f"<li>Rows: {_h(_rows_text(run))}; persons in every table (m): <b>{run['intersection_size']}</b></li>")
    p.append(f"<li>Columns: {_h(_columns_text(run))} (target: {_h(run['target'])})</li>")
    p.append(f"<li>Paillier keys: {run['key_bits']} bits; masks: {run['mask_bits']} bits (sigma = {run['sigma']})</li>")
    p.append(f"<li>Dictionary searched by the hashed-id attacks: {_h(run['dictionary_searched'])}</li>")
    p.append(f"<li>Completed: {'yes' if run['completed'] else 'no'} (last step reached: {run['last_step']})"
             + (f"; stopped by {_h(run['error'])}" if run["error"] else "") + "</li></ul>")
    p.append("<h2>What each party learns</h2>")
    for party in report["parties"]:
        succeeded = party["own_attacks_that_succeeded"]
        p.append(f"<h3>{_h(party['party'])}</h3><p>The {_h(party['party'])} is {_h(party['is'])}.</p><ul>"
                 f"<li>Learns by design: {_h(', '.join(party['learns_by_design']) or 'nothing')} "
                 "(see 'Disclosed on purpose').</li>"
                 f"<li>Keeps after the run: {_h('; '.join(party['keeps_after_the_run']) or 'nothing')}.</li>"
                 f"<li>Attacks by this party alone: {party['own_attacks']}, "
                 + (f"<span class=\"yes\">succeeded: {_h(', '.join(succeeded))}</span>" if succeeded
                    else "none beat guessing") + ".</li>"
                 + "".join(f"<li>{_inline(line)}</li>" for line in party["steps"]) + "</ul>")
    p.append("<h2>Step by step</h2>")
    for step in STEPS:
        entries = [e for e in report["steps"] if e["step"] == step]
        p.append(f"<h3>Step {step}: {_h(entries[0]['name'])}</h3><table><tr><th>party</th><th>holds during this step</th>"
                 "<th>received</th><th>bytes sent / received</th><th>single out</th><th>link</th><th>infer</th></tr>")
        for e in entries:
            holds = "<br>".join(_h(h["description"]) for h in e["holds"]) or "nothing"
            if e["keys"]:
                holds += "<br><i>keys:</i> " + _h(", ".join(k["description"] for k in e["keys"]))
            if e["deleted_at_end"]:
                holds += f"<br><i>deleted at the end:</i> {_h(', '.join(e['deleted_at_end']))}"
            received = "<br>".join(
                _h(f"{r['messages']} {r['kind']} from {r['from']} ({r['bytes']:,} B)") for r in e["received"]) or "-"
            cells = []
            for q in QUESTIONS:
                a = e["questions"][q]
                cells.append(f'<td><span class="{_answer_class(a["answer"])}">{_h(a["answer"])}</span>: {_inline(a["why"])}</td>')
            p.append(f"<tr><td>{_h(e['party'])}</td><td>{holds}</td><td>{received}</td>"
                     f"<td class=\"num\">{e['bytes_sent']:,} / {e['bytes_received']:,}</td>{''.join(cells)}</tr>")
        p.append("</table>")
    p.append("<h2>Attacks</h2><table><tr><th>attack</th><th>question</th><th>attacker</th><th>step</th><th>success</th>"
             "<th>guessing</th><th>bound</th><th>verdict</th><th>what was tried</th></tr>")
    for a in report["attacks"]:
        verdict = "yes" if a["verdict"] == "succeeds" else "no"
        p.append(
            f"<tr><td><code>{_h(a['id'])}</code></td><td>{_h(a['question'])}</td><td>{_h(a['party_or_coalition'])}</td>"
            f"<td>{'after run' if a['step'] == AFTER_RUN else a['step']}</td><td class=\"num\">{_pct(a['success_rate'])}</td>"
            f"<td class=\"num\">{_pct(a['baseline'])}</td><td class=\"num\">{_pct(a['confidence_bound'])}</td>"
            f"<td class=\"{verdict}\">{_h(a['verdict'])}</td><td>{_inline(a['explanation'])}</td></tr>")
    p.append("</table>")
    if report["controls"]:
        p.append("<h2>Controls: the attacks can fail</h2><p>Each control reruns the simulation with one protection "
                 "deliberately removed. The matching attack must then succeed; otherwise its 'no' above would prove "
                 "nothing.</p><table><tr><th>broken variant</th><th>what breaks</th><th>attack</th>"
                 "<th>success when broken</th><th>with the protocol</th><th>caught</th></tr>")
        for c in report["controls"]:
            honest = "-" if c["success_rate_with_the_protocol"] is None else _pct(c["success_rate_with_the_protocol"])
            p.append(f"<tr><td>{_h(c['variant'])}</td><td>{_h(c['breaks'])}</td><td><code>{_h(c['attack'])}</code></td>"
                     f"<td class=\"num\">{_pct(c['success_rate'])}</td><td class=\"num\">{honest}</td>"
                     f"<td class=\"{'no' if c['caught'] else 'yes'}\">{'yes' if c['caught'] else 'NO'}</td></tr>")
        p.append("</table>")
    p.append(f"<h2>{_COALITIONS}</h2><table><tr><th>coalition</th><th>when</th>"
             "<th>success</th><th>finding</th></tr>")
    for c in report["coalitions"]:
        rate = "-" if c["success_rate"] is None else _pct(c["success_rate"])
        p.append(f"<tr><td>{_h(c['coalition'])}</td><td>{_h(c['phase'])}</td><td class=\"num\">{rate}</td>"
                 f"<td>{_inline(c['finding'])}</td></tr>")
    p.append("</table><p>Larger coalitions:</p><ul>" + "".join(f"<li>{_inline(line)}</li>" for line in report["larger_coalitions"])
             + "</ul>")
    p += _plan_html(report.get("plan"))
    p.append("<h2>Disclosed on purpose</h2><table><tr><th>what</th><th>learnt by</th><th>value</th>"
             "<th>what it discloses</th></tr>")
    for d in report["disclosures"]:
        p.append(f"<tr><td>{_h(d['item'])}</td><td>{_h(', '.join(d['learned_by']))}</td>"
                 f"<td>{_h(_value_text(d['value']))}</td><td>{_inline(d['discloses'])}</td></tr>")
    p.append("</table>")
    b = report["bytes"]
    p.append("<h2>Bytes exchanged</h2><table><tr><th>step</th><th>messages</th><th>bytes</th></tr>")
    for step, size in b["by_step"].items():
        p.append(f"<tr><td>{step} {_h(STEP_NAMES[int(step)])}</td><td class=\"num\">{b['messages_by_step'][step]:,}</td>"
                 f"<td class=\"num\">{size:,}</td></tr>")
    p.append(f"<tr><th>total</th><th class=\"num\">{sum(b['messages_by_step'].values()):,}</th>"
             f"<th class=\"num\">{b['total']:,}</th></tr></table>")
    p.append("<table><tr><th>step</th><th>from</th><th>to</th><th>kind</th><th>messages</th><th>bytes</th></tr>")
    for t in b["traffic"]:
        p.append(f"<tr><td>{t['step']}</td><td>{_h(t['sender'])}</td><td>{_h(t['receiver'])}</td><td>{_h(t['kind'])}</td>"
                 f"<td class=\"num\">{t['messages']:,}</td><td class=\"num\">{t['bytes']:,}</td></tr>")
    p.append("</table></body></html>")
    return "\n".join(p)


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``report.json`` into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "report.md", "html": out / "report.html", "json": out / "report.json"}
    paths["md"].write_text(render_markdown(report), encoding="utf-8")
    paths["html"].write_text(render_html(report), encoding="utf-8")
    paths["json"].write_text(json.dumps(report, indent=2, default=_json_default), encoding="utf-8")
    return paths


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")
