"""Every attack scored against ground truth: it fails on the protocol, and it succeeds on the
deliberately broken variant that removes the protection it tests.

The "no advantage" assertions are statistical: each verdict is a one-sided test at
``ALPHA = 1e-4`` (a false alarm in one of 10 000 runs), so this module raises a false
alarm in roughly one of 1 000 runs. The "succeeds" assertions are exact (success 1)
where the broken variant makes the attack deterministic.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from mpcactors.analysis import attacks, variants
from mpcactors.analysis.attacks import AFTER_RUN, ALPHA
from mpcactors.analysis.views import coalition_view, party_view, record_run
from mpcactors.data import plaintext_join
from mpcactors.protocol.roster import DEFAULT_DATA_PARTIES, TTP
from mpcactors.testing import fast_config, tables_for

HOSPITAL, INSURER = DEFAULT_DATA_PARTIES

ID_SPACE = 20_000
ROWS = 240


@pytest.fixture(scope="module")
def tables():
    return tables_for(ROWS, 0.5, seed=11, id_space=ID_SPACE)


@pytest.fixture(scope="module")
def honest(tables):
    """One complete run of the protocol as specified (steps 1 to 8)."""
    hospital, insurer = tables
    return record_run(hospital, insurer, fast_config(hospital, insurer), id_space=ID_SPACE)


def broken(tables, variant, *, sort_by: str | None = None):
    hospital, insurer = tables
    if sort_by is not None:
        hospital = variants.sorted_table(hospital, sort_by)
    return record_run(hospital, insurer, fast_config(hospital, insurer, lasso=False), variant=variant, id_space=ID_SPACE)


# ---- the ground truth the attacks are scored against ----------------------------------------------


def test_ground_truth_is_the_plaintext_join(honest):
    _, expected = plaintext_join(honest.tables[HOSPITAL], honest.tables[INSURER])
    actual = honest.joined_values()
    assert Counter(map(tuple, actual.tolist())) == Counter(map(tuple, expected.tolist()))
    assert honest.intersection_size == len(expected) == honest.simulation.intersection_size
    # the hash oracle names each data party's ids in the order they were sent
    for role in (HOSPITAL, INSURER):
        assert sorted(honest.send_order(role)) == sorted(honest.tables[role].ids)
        assert honest.send_order(role) != list(honest.tables[role].ids)  # step 1 shuffled (fails with probability 1/n!)


def test_views_follow_the_protocols_lifetimes(honest):
    # the TTP never holds the hashing key or a Paillier secret key, nor sees the key contributions
    for step in range(1, 9):
        view = party_view(honest, TTP, step, retained=True)
        assert view.keys[TTP] == (["mpc_state"] if step >= 7 else [])
        assert "hash_contribution" not in {e.kind for e in view.received_so_far}
    # the hospital's Paillier secret key lives from step 3 to step 6
    alive = [s for s in range(1, 9) if "paillier_secret" in party_view(honest, HOSPITAL, s).keys[HOSPITAL]]
    assert alive == [3, 4, 5, 6]
    # the TTP's hashed ids exist during step 4 only, unless it keeps them
    assert [s for s in range(1, 9) if party_view(honest, TTP, s).has("hashed_ids")] == [4]
    assert party_view(honest, TTP, 8, retained=True).has("hashed_ids")
    # a coalition view is the union of its members' views
    pair = coalition_view(honest, (HOSPITAL, TTP), 7)
    assert pair.holds[HOSPITAL] == party_view(honest, HOSPITAL, 7).holds[HOSPITAL]
    assert pair.holds[TTP] == party_view(honest, TTP, 7).holds[TTP]


# ---- attack 1: the TTP's dictionary attack ------------------------------------------------------


def test_dictionary_attack_over_the_whole_id_space_names_nobody(honest):
    result = attacks.ttp_dictionary_attack(honest)
    assert result.details["dictionary_size"] == ID_SPACE  # the whole space, not a shortlist
    assert result.trials == sum(honest.rows.values())
    assert result.details["named"] == 0 and result.success_rate == 0.0
    assert result.verdict == "no advantage" and result.question == "link"


def test_dictionary_attack_names_everybody_when_the_key_is_kept(tables):
    run = broken(tables, variants.keep_hash_key())
    assert run.handed[TTP]["hash_keys"]  # the variant did hand a key over
    result = attacks.ttp_dictionary_attack(run)
    assert result.success_rate == 1.0 and result.succeeded
    # and without the side channel the same run's digests stay anonymous
    run.handed[TTP].clear()
    assert attacks.ttp_dictionary_attack(run).success_rate == 0.0


def test_dictionary_attack_by_the_ttp_with_a_data_party_depends_on_kept_messages(honest):
    kept = attacks.ttp_dictionary_attack(honest, attackers=(INSURER, TTP), retained=True, unkeyed=False)
    assert kept.success_rate == 1.0  # the insurer's step-2 messages rebuild the key
    deleted = attacks.ttp_dictionary_attack(honest, attackers=(INSURER, TTP), retained=False, unkeyed=False)
    assert deleted.success_rate == 0.0


# ---- attack 2: a data party against what it decrypts ----------------------------------------------


@pytest.mark.parametrize("role", [HOSPITAL, INSURER])
def test_masked_values_cannot_be_linked_to_own_rows(honest, role):
    result = attacks.masked_value_linking(honest, role)
    assert result.trials == honest.intersection_size  # all rows scored (below the sample cap)
    assert result.baseline == pytest.approx(1 / honest.rows[role], rel=0.5)
    assert result.success_rate <= result.confidence_bound and result.verdict == "no advantage"
    assert result.details["repeated_mask_rows"] <= 2  # no mask vector repeats
    assert result.details["estimated_mask_bits"] == honest.config.params.mask_bits
    # fresh full-width masks make -s / 2**mask_bits uniform
    assert result.details["ks_pvalue"] > ALPHA


@pytest.mark.parametrize("role", [HOSPITAL, INSURER])
def test_membership_cannot_be_inferred_from_masked_values(honest, role):
    result = attacks.membership_inference(honest, role)
    assert result.trials == honest.intersection_size
    assert result.baseline == pytest.approx(honest.intersection_size / honest.rows[role])
    assert result.success_rate <= result.confidence_bound and result.verdict == "no advantage"


def test_unmasked_forwarding_is_caught(tables):
    run = broken(tables, variants.forward_unmasked())
    for role in (HOSPITAL, INSURER):
        linking = attacks.masked_value_linking(run, role)
        assert linking.success_rate == 1.0 and linking.succeeded
        assert linking.details["ks_pvalue"] < ALPHA
        assert attacks.membership_inference(run, role).success_rate == 1.0


def test_short_masks_are_caught(tables):
    run = broken(tables, variants.short_masks())
    for role in (HOSPITAL, INSURER):
        membership = attacks.membership_inference(run, role)
        assert membership.succeeded, membership.explanation
        assert membership.details["estimated_mask_bits"] == run.config.params.frac_bits + 4
        assert attacks.masked_value_linking(run, role).succeeded


# ---- attack 3: the TTP against sizes, timing and order ----------------------------------------------


def test_sizes_timing_and_order_predict_no_attribute(honest):
    result = attacks.ttp_side_channel_inference(honest)
    assert result.success_rate <= result.confidence_bound and result.verdict == "no advantage"
    # ciphertexts travel at a fixed width: the width is the same for every row
    assert "ciphertext width (bytes)" in result.details["constant_observables"]
    assert result.details["rules"] == 6 * (7 + 6)  # observables x the attributes of both parties


def test_unshuffled_sorted_input_is_caught(tables):
    run = broken(tables, variants.no_row_shuffle(), sort_by="age")
    result = attacks.ttp_side_channel_inference(run)
    assert result.succeeded
    assert result.details["best_rule"]["observable"] == "arrival position"
    assert result.details["best_rule"]["column"] == "age"
    assert result.success_rate >= 0.95


# ---- attack 4: coalitions ---------------------------------------------------------------------------


@pytest.mark.parametrize("pair", [(HOSPITAL, INSURER), (HOSPITAL, TTP), (INSURER, TTP)])
def test_any_two_parties_rebuild_the_table_in_step_7_and_nothing_after_the_run(honest, pair):
    during = attacks.coalition_reconstruction(honest, pair, 7)
    assert during.success_rate == 1.0  # threshold 2, as the paper says
    after = attacks.coalition_reconstruction(honest, pair, AFTER_RUN)
    assert after.success_rate == 0.0 and after.verdict == "no advantage"
    assert set().union(*after.details["held"].values()) <= {"input", "public_keys", "intersection_size", "result"}
    kept = attacks.coalition_reconstruction(honest, pair, AFTER_RUN, retained=True)
    assert kept.success_rate == 1.0  # deletion is what protects the table after the run


@pytest.mark.parametrize("role", [HOSPITAL, INSURER, TTP])
def test_one_share_alone_reveals_no_entry(honest, role):
    assert attacks.coalition_reconstruction(honest, (role,), 7).success_rate == 0.0


@pytest.mark.parametrize("role", [HOSPITAL, INSURER])
def test_a_data_party_with_the_ttp_learns_membership(honest, role):
    result = attacks.coalition_membership(honest, role)
    assert result.success_rate == 1.0 and result.succeeded


# ---- what is disclosed on purpose ----------------------------------------------------------------


def test_disclosures_state_the_run_s_figures(honest):
    found = {d.item: d for d in attacks.disclosures(honest, leave_one_out=20, seed=1)}
    assert found["table sizes"].value == honest.rows
    assert found["intersection size m"].value == honest.simulation.intersection_size
    model = found["the lasso model"].value
    assert model["coefficients"] == dict(zip(honest.config.features, honest.simulation.result.coefficients))
    assert model["leave_one_out"]["rows_tried"] == 20
    # step 8 opened the default plan's description, then one convergence bit per check and
    # the lasso's output values, nothing else
    opened = model["opened_in_clear"]
    assert set(opened) <= {"cohort: mean", "cohort: sd", "cohort: correlation", "lasso: converged", "lasso: result"}
    assert opened["lasso: result"] == len(honest.config.features) + 2  # coefficients, intercept, R^2


def test_plaintext_lasso_matches_scikit_learn(honest):
    from sklearn.linear_model import Lasso

    config = honest.config
    data = honest.joined_values().astype(np.float64) / 2**config.params.frac_bits
    target = config.joined_columns.index(config.target)
    x, y = np.delete(data, target, axis=1), data[:, target]
    ours, intercept = attacks.lasso_fit_plaintext(x, y, config.alpha)
    reference = Lasso(alpha=config.alpha, tol=1e-12, max_iter=1_000_000).fit(x, y)
    # both solve the same convex problem to ~1e-10; 1e-6 leaves room for solver tolerance
    np.testing.assert_allclose(ours, reference.coef_, atol=1e-6)
    assert intercept == pytest.approx(reference.intercept_, abs=1e-6)


# ---- the statistics, against SciPy ---------------------------------------------------------------


@pytest.mark.parametrize(("n", "p"), [(50, 0.5), (140, 0.0035), (577, 1 / 20_000), (1000, 0.3)])
def test_binomial_threshold_matches_scipy(n, p):
    from scipy.stats import binom

    t = attacks.binomial_threshold(n, p, ALPHA)
    assert binom.sf(t, n, p) <= ALPHA * (1 + 1e-9)
    assert t == 0 or binom.sf(t - 1, n, p) > ALPHA


@pytest.mark.parametrize(("population", "good", "draws"), [(286, 140, 140), (100, 10, 30), (50, 50, 50)])
def test_hypergeometric_threshold_matches_scipy(population, good, draws):
    from scipy.stats import hypergeom

    t = attacks.hypergeometric_threshold(population, good, draws, ALPHA)
    assert hypergeom.sf(t, population, good, draws) <= ALPHA * (1 + 1e-9)
    assert t == max(0, draws + good - population) or hypergeom.sf(t - 1, population, good, draws) > ALPHA


def test_ks_test_matches_scipy():
    from scipy.stats import kstest

    rng = random.Random(5)
    for sample in ([rng.random() for _ in range(200)], [rng.random() ** 1.3 for _ in range(300)]):
        d, p = attacks.ks_uniform_pvalue(sample)
        reference = kstest(sample, "uniform")
        assert d == pytest.approx(reference.statistic)
        # asymptotic with Stephens' correction vs SciPy's exact distribution
        assert p == pytest.approx(reference.pvalue, rel=0.1, abs=1e-3)
