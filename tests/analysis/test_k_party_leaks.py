"""The leak analysis with three data parties: hospital and insurer compute with the TTP in
steps 7 and 8, the CBS-like register is outside the computation (it deals its additive share
in step 7, then holds nothing, and receives the model in step 8).

Views for all four members, the outside party's holdings at steps 7, 8 and 9, every coalition
of two, the broken variants still caught, and the report and ``mpcactors analyze --parties 3``.
Like ``test_attacks.py``, the "no advantage" assertions are one-sided tests at ``ALPHA = 1e-4``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from itertools import combinations

import pytest
from click.testing import CliRunner

from mpcactors.analysis import attacks, report, variants
from mpcactors.analysis.attacks import AFTER_RUN
from mpcactors.analysis.views import LIFETIMES, coalition_view, party_view, record_run
from mpcactors.cli import main
from mpcactors.data import plaintext_join
from mpcactors.protocol.roster import TTP, default_names
from mpcactors.synth import cohort_tables_by_party, make_cohort
from mpcactors.testing import fast_config

HOSPITAL, INSURER, CBS = default_names(3)
MEMBERS = (HOSPITAL, INSURER, CBS, TTP)
COMPUTE = (HOSPITAL, INSURER, TTP)
ID_SPACE = 20_000
ROWS = 120


@pytest.fixture(scope="module")
def tables():
    return cohort_tables_by_party(make_cohort(ROWS, 0.5, 11, parties=3, id_space=ID_SPACE), min_rows=2)


def config_for(tables, **changes):
    hospital, insurer = tables[HOSPITAL], tables[INSURER]
    return replace(fast_config(hospital, insurer, **changes), columns={name: t.columns for name, t in tables.items()})


@pytest.fixture(scope="module")
def honest(tables):
    """One complete run with three data parties (steps 1 to 9)."""
    return record_run(tables, config_for(tables), id_space=ID_SPACE)


@pytest.fixture(scope="module")
def results(honest):
    return attacks.run_all(honest)


# ---- the recorded run and its ground truth ---------------------------------------------------------


def test_the_run_carries_its_roster_and_every_table(honest, tables):
    assert honest.roster.members == MEMBERS and honest.roster.compute_parties == COMPUTE
    assert honest.outside == (CBS,) and [honest.kind_of(r) for r in MEMBERS] == ["data", "data", "outside", "ttp"]
    assert list(honest.tables) == [HOSPITAL, INSURER, CBS] and honest.rows == {n: len(t) for n, t in tables.items()}
    assert set(honest.handed) == set(MEMBERS)
    # the ground truth is the three-way join, in the joined table's column order
    _, expected = plaintext_join(*tables.values())
    assert Counter(map(tuple, honest.joined_values().tolist())) == Counter(map(tuple, expected.tolist()))
    assert honest.intersection_size == len(expected) == honest.simulation.intersection_size
    assert all(len(row) == 3 for row in honest.joined_rows())
    assert honest.intersection_ids() == set.intersection(*(set(t.ids) for t in tables.values()))
    for role in (HOSPITAL, INSURER, CBS):
        assert sorted(honest.send_order(role)) == sorted(tables[role].ids)


def test_a_run_is_recorded_from_tables_by_name_or_in_roster_order(tables):
    config = config_for(tables)
    with pytest.raises(TypeError, match="RunConfig"):
        record_run(tables)
    with pytest.raises(ValueError, match="the roster has 3 data parties"):
        record_run([tables[HOSPITAL], tables[INSURER]], config)  # two tables for three parties
    with pytest.raises(ValueError, match="roster's data parties"):
        record_run({HOSPITAL: tables[HOSPITAL], INSURER: tables[INSURER]}, config)


# ---- views: every member, every step -----------------------------------------------------------------


def test_views_for_all_four_members_follow_the_lifetimes(honest):
    for step in range(1, 10):
        for role in MEMBERS:
            view = party_view(honest, role, step)
            assert view.parties == (role,) and set(view.holds) == {role}
            assert all(e.receiver == role and e.step == step for e in view.received)
        # the TTP never holds the hashing key or a Paillier secret key, nor sees the key contributions
        ttp = party_view(honest, TTP, step, retained=True)
        assert ttp.keys[TTP] == (["mpc_state"] if step >= 7 else [])
        assert "hash_contribution" not in {e.kind for e in ttp.received_so_far}
    for role in (HOSPITAL, INSURER, CBS):
        alive = [s for s in range(1, 10) if "paillier_secret" in party_view(honest, role, s).keys[role]]
        assert alive == [3, 4, 5, 6]
        # step 2: a key contribution from each of the two other data parties
        received = party_view(honest, role, 2).received
        assert sorted(e.sender for e in received) == sorted(p for p in (HOSPITAL, INSURER, CBS) if p != role)
    # the TTP holds the three parties' hashed ids during step 4 only
    assert [s for s in range(1, 10) if party_view(honest, TTP, s).has("hashed_ids")] == [4]
    assert [len(d) for d in party_view(honest, TTP, 4).get(TTP, "hashed_ids")] == list(honest.rows.values())
    # a coalition view of any set of members is the union of their views
    everyone = coalition_view(honest, MEMBERS, 7)
    for role in MEMBERS:
        assert everyone.holds[role] == party_view(honest, role, 7).holds[role]
    with pytest.raises(ValueError, match="distinct members"):
        coalition_view(honest, (CBS, "party4"), 7)


def test_the_party_outside_the_computation_holds_nothing_after_dealing_and_receives_the_output(honest):
    assert "shamir_shares" not in LIFETIMES["outside"] and "mpc_state" not in LIFETIMES["outside"]
    assert honest.last_step_of(CBS, "additive_shares") == 7 and honest.deleted_at(CBS)["additive_shares"] == 7
    shares = {"additive_shares", "shamir_shares"}
    # step 7: it still has its additive share while it deals it; it receives nothing and sends only dealt shares
    seven = party_view(honest, CBS, 7)
    assert "additive_shares" in seven.holds[CBS] and "shamir_shares" not in seven.holds[CBS]
    assert seven.keys[CBS] == [] and seven.received == []
    sent = honest.transcript.sent_by(CBS, step=7)
    assert {e.kind for e in sent} == {"dealt", "dealt_end"} and {e.receiver for e in sent} == set(COMPUTE)
    # step 8: no share, no key, no MPC state: the same model from each compute party
    eight = party_view(honest, CBS, 8)
    assert not shares & set(eight.holds[CBS]) and eight.keys[CBS] == []
    assert sorted((e.sender, e.kind) for e in eight.received) == [(p, "delivered") for p in sorted(COMPUTE)]
    assert eight.get(CBS, "result")["lasso"] == honest.simulation.result
    # step 9: the digests of the outcome it holds; even a party that keeps everything never had a Shamir share
    nine = party_view(honest, CBS, 9)
    assert {e.kind for e in nine.received} == {"done"} and len(nine.received) == 3
    assert set(nine.holds[CBS]) == {"input", "public_keys", "intersection_size", "result"}
    assert "shamir_shares" not in party_view(honest, CBS, 9, retained=True).holds[CBS]
    # ... unlike a compute party, which holds its Shamir share and MPC state in step 8
    assert "shamir_shares" in party_view(honest, HOSPITAL, 8).holds[HOSPITAL]
    assert party_view(honest, HOSPITAL, 8).keys[HOSPITAL] == ["mpc_state"]


# ---- attacks: every party alone, every coalition of two ------------------------------------------------


def test_no_single_party_beats_guessing(results, tables):
    alone = [r for r in results if "+" not in r.party_or_coalition]
    assert {(r.name, r.party_or_coalition) for r in alone} >= {
        *((name, role) for name in ("masked_value_linking", "membership_inference") for role in (HOSPITAL, INSURER, CBS)),
        ("ttp_dictionary_attack", TTP), ("ttp_side_channel_inference", TTP),
        *(("coalition_reconstruction", role) for role in MEMBERS),
    }
    assert [r for r in alone if r.succeeded] == [], [r.explanation for r in alone if r.succeeded]
    side = next(r for r in alone if r.name == "ttp_side_channel_inference")
    assert side.details["rules"] == 6 * sum(len(t.columns) for t in tables.values())  # observables x attributes
    linking = next(r for r in alone if r.name == "masked_value_linking" and r.party_or_coalition == CBS)
    assert linking.details["estimated_mask_bits"] == 85 and linking.details["repeated_mask_rows"] <= 2


@pytest.mark.parametrize("pair", list(combinations(MEMBERS, 2)), ids="+".join)
def test_every_coalition_of_two(honest, results, pair):
    two_shares = sum(p in COMPUTE for p in pair) == 2
    found = {(r.step, bool(r.details.get("retained"))): r for r in results
             if r.name == "coalition_reconstruction" and r.party_or_coalition == "+".join(pair)}
    assert found[(7, False)].success_rate == (1.0 if two_shares else 0.0), found[(7, False)].explanation
    assert found[(AFTER_RUN, False)].success_rate == 0.0
    assert found[(AFTER_RUN, True)].success_rate == (1.0 if two_shares else 0.0)
    if TTP in pair:  # with the TTP in step 4: which of the data party's rows are in every table
        role = next(p for p in pair if p != TTP)
        membership = next(r for r in results if r.name == "coalition_membership" and r.party_or_coalition == "+".join(pair))
        assert membership.success_rate == 1.0
        kept = attacks.ttp_dictionary_attack(honest, attackers=pair, retained=True, unkeyed=False)
        assert kept.success_rate == 1.0  # a data party's step-2 messages hold every contribution
        deleted = attacks.ttp_dictionary_attack(honest, attackers=pair, retained=False, unkeyed=False)
        assert deleted.success_rate == 0.0 and role in kept.party_or_coalition


# ---- the broken variants are still caught -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("variant", [variants.keep_hash_key(), variants.forward_unmasked(), variants.short_masks(),
                                     variants.no_row_shuffle()], ids=lambda v: v.name)
def test_the_broken_variants_are_caught_with_three_parties(tables, variant):
    inputs = dict(tables)
    if variant.name == "no_row_shuffle":
        inputs[HOSPITAL] = variants.sorted_table(inputs[HOSPITAL], "age")
    run = record_run(inputs, config_for(tables, lasso=False), variant=variant, id_space=ID_SPACE)
    caught = attacks.run_named(run, variant.caught_by)
    assert len(caught) == (3 if variant.caught_by in ("masked_value_linking", "membership_inference") else 1)
    assert all(r.succeeded for r in caught), [r.explanation for r in caught]


# ---- the report -------------------------------------------------------------------------------------------


def test_the_report_explains_what_each_of_the_four_parties_learns(honest, results, tmp_path):
    document = report.build_report(honest, results, attacks.disclosures(honest, leave_one_out=10, seed=1))
    assert sorted((e["step"], e["party"]) for e in document["steps"]) == sorted(
        (s, p) for s in range(1, 10) for p in MEMBERS)
    assert document["run"]["outside"] == [CBS] and document["run"]["compute_parties"] == list(COMPUTE)
    assert [p["party"] for p in document["parties"]] == list(MEMBERS)
    cbs = next(p for p in document["parties"] if p["party"] == CBS)
    assert cbs["kind"] == "outside" and "outside the computation" in cbs["is"]
    assert set(cbs["learns_by_design"]) == {"intersection size m", "column counts and names", "the lasso model"}
    assert len(cbs["steps"]) == 9 and not cbs["own_attacks_that_succeeded"]

    def entry(step, party):
        return next(e for e in document["steps"] if e["step"] == step and e["party"] == party)

    assert [h["item"] for h in entry(7, CBS)["holds"]] == ["additive_shares", "input", "intersection_size", "public_keys"]
    assert entry(7, CBS)["deleted_at_end"] == ["additive_shares"] and entry(7, CBS)["received"] == []
    assert entry(7, CBS)["questions"]["link"]["evidence"] == ["coalition_reconstruction/cbs/step-7"]
    assert {r["kind"] for r in entry(8, CBS)["received"]} == {"delivered"}
    assert entry(8, CBS)["questions"]["single out"]["answer"] == "no"
    assert entry(8, CBS)["questions"]["infer"]["answer"] == "aggregate only"
    assert "holds no share" in entry(8, CBS)["questions"]["link"]["why"]
    assert entry(9, CBS)["questions"]["link"]["answer"] == "no"
    # every pair of the four members in the coalition table, and what larger coalitions give
    assert {c["coalition"] for c in document["coalitions"]} == {"+".join(p) for p in combinations(MEMBERS, 2)}
    assert "2 of the 3 compute parties" in document["larger_coalitions"][0]
    assert any("outside the computation (cbs) with one compute party cannot" in line
               for line in document["larger_coalitions"])
    assert any("cbs is outside the computation" in line for line in document["summary"])
    sizes = next(d for d in document["disclosures"] if d["item"] == "table sizes")
    assert sizes["learned_by"] == [TTP] and sizes["value"] == honest.rows
    paths = report.write_report(document, tmp_path)
    markdown, page = paths["md"].read_text(), paths["html"].read_text()
    for text in ("### cbs", "## What each party learns", "Rows: hospital", "Larger coalitions"):
        assert text in markdown
    assert "<h3>cbs</h3>" in page


@pytest.mark.slow
def test_analyze_with_three_parties_writes_the_report(tmp_path):
    out = tmp_path / "analysis"
    result = CliRunner().invoke(main, ["analyze", "--parties", "3", "--rows", "60", "--id-space", str(ID_SPACE),
                                       "--no-controls", "--min-intersection", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "report.json").read_text())
    assert document["run"]["completed"] and list(document["run"]["rows"]) == [HOSPITAL, INSURER, CBS]
    assert {e["party"] for e in document["steps"]} == set(MEMBERS) and {e["reached"] for e in document["steps"]} == {True}
    assert f"all {ID_SPACE:,} nine-digit ids" in document["run"]["dictionary_searched"]
    assert [a for a in document["attacks"] if a["verdict"] == "succeeds" and "+" not in a["party_or_coalition"]] == []
    assert {a["party_or_coalition"] for a in document["attacks"] if a["name"] == "masked_value_linking"} == {
        HOSPITAL, INSURER, CBS}
    assert "cbs is outside the computation" in result.output
