"""Fixed-point encoding and the bit budgets every step relies on."""

from __future__ import annotations

import math

import gmpy2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpcactors.crypto.fixedpoint import LASSO_MAX_COLUMNS, MIN_SIGMA, PRIME_192, OutOfBoundError, Params
from mpcactors.errors import ConfigError

P = Params()


def test_the_default_prime_is_prime_and_3_mod_4():
    assert gmpy2.is_prime(PRIME_192, 50)
    assert PRIME_192 % 4 == 3  # square roots take one exponentiation (shared random bits)
    assert PRIME_192 == 2**192 - 237


def test_default_budgets():
    assert P.value_bits == 20 + 24 + 1
    assert P.offset == 2**44
    assert P.mask_bits == 45 + 40
    assert P.slot_bits == 86
    assert P.slots(2048) == 23 and P.slots(3072) == 35
    # a Gram sum of products of two values over max_rows rows
    assert P.gram_bits == 2 * 44 + 21
    # the widest step-8 operation (the output noise truncation, 143 bits) plus sigma + 3
    assert P.required_field_bits == 143 + 40 + 3
    assert P.field_bits == 191 >= P.required_field_bits


def test_the_worst_gram_sum_fits_the_budget():
    """The worst Gram sum (every value at the bound, max_rows rows) fits the budget exactly."""
    worst_value = P.offset - 1  # |v| < 2**44
    worst_sum = worst_value * worst_value * P.max_rows
    assert worst_sum < 2**P.gram_bits
    assert worst_sum + 2 ** (P.gram_bits + P.sigma + 2) < P.prime // 2  # plus truncation/comparison masks


def test_a_prime_too_small_for_step_8_is_refused():
    with pytest.raises(ConfigError, match=r"prime above 2\*\*186 .* prime has 127 bits"):
        Params(prime=2**128 - 159)
    with pytest.raises(ConfigError, match="max_rows"):
        Params(max_rows=2**70)


@pytest.mark.parametrize("name", ["frac_bits", "int_bits", "sigma", "max_rows"])
@pytest.mark.parametrize("value", [0, True, 24.0])
def test_parameters_must_be_positive_integers(name, value):
    with pytest.raises(ConfigError, match=name):
        Params(**{name: value})


# (parameters, None if accepted else the parameter the error must name). The first six
# rows refused are the review's (2026-12) combinations that constructed fine and then
# failed inside step 8 after all the Paillier work, or weakened every mask.
PARAMETER_TABLE = [
    ({"frac_bits": 8}, "frac_bits"),  # was: trunc needs 0 < m < k, got m=-8
    ({"frac_bits": 12}, "frac_bits"),  # was: m=0, k=66
    ({"frac_bits": 16}, "frac_bits"),  # the target's Jacobi factors need 23 fractional bits
    ({"frac_bits": 30}, "frac_bits"),  # was: trunc on 154-bit values needs a prime above 2**197
    ({"int_bits": 24}, "int_bits"),  # was: 150-bit values need 2**193
    ({"sigma": 1}, "sigma"),  # was accepted: masks of value_bits + 1 bits
    ({"sigma": 20}, "sigma"),
    ({"sigma": MIN_SIGMA - 1}, "sigma"),
    ({"sigma": 46}, "sigma"),  # above the floor, but the noise truncation no longer fits
    ({"int_bits": 8}, "int_bits"),  # frac_bits + int_bits = 32: the owner scaling shifts by 0
    ({"frac_bits": 22}, "frac_bits"),
    ({"frac_bits": 28}, "frac_bits"),
    ({"frac_bits": 38, "int_bits": 1}, "frac_bits"),  # alpha = 2**-38 overflows its truncation
    ({"frac_bits": 31, "int_bits": 1}, "int_bits"),
    ({"max_rows": 2**28}, "max_rows"),  # the centring truncation of m**2 cov grows with m
    ({"sigma": 4, "allow_insecure_sigma": 1}, "sigma"),  # the switch is a bool, not truthy
    ({}, None),
    ({"sigma": MIN_SIGMA}, None),
    ({"sigma": 45}, None),
    ({"sigma": 4, "allow_insecure_sigma": True}, None),
    ({"frac_bits": 23}, None),
    ({"frac_bits": 27}, None),
    ({"int_bits": 9}, None),
    ({"int_bits": 23}, None),
    ({"frac_bits": 32, "int_bits": 1}, None),
    ({"frac_bits": 37, "int_bits": 1}, None),
    ({"max_rows": 2**28 - 1}, None),
]


@pytest.mark.parametrize("changes,key", PARAMETER_TABLE, ids=[str(c) for c, _ in PARAMETER_TABLE])
def test_parameters_are_checked_when_built(changes, key):
    if key is None:
        Params(**changes)
    else:
        with pytest.raises(ConfigError, match=key):
            Params(**changes)


def test_every_accepted_parameter_set_fits_every_lasso_operation():
    """What Params promises, against the engine's own rules for each operation."""
    for changes, key in PARAMETER_TABLE:
        if key is not None:
            continue
        params = Params(**changes)
        for rows in (4, 1000, params.max_rows):
            for alpha in (2.0**-params.frac_bits, 1.0, 2.0**params.int_bits * 0.999):
                layout = params.lasso_layout(rows=rows, columns=LASSO_MAX_COLUMNS, alpha=alpha, target_scaled=False)
                for label, kind, shift, bits in layout.operations():
                    assert shift is None or 0 < shift < bits, (changes, label)
                    assert bits + (kind == "trunc_fast") + params.sigma + 3 <= params.field_bits, (changes, label)


def test_a_packed_row_stays_below_half_the_modulus():
    """Every slot value is in [1, 2**slot_bits); a full row of slots stays below n/2."""
    for bits in (2048, 3072):
        n_min = 2 ** (bits - 1) + 1  # the smallest n with exactly `bits` bits
        packed_max = 2 ** (P.slots(bits) * P.slot_bits) - 1
        assert packed_max < n_min // 2


def test_masked_slot_values_never_carry_or_borrow():
    low = (-P.offset + 1) + P.offset + 2**P.mask_bits - (2**P.mask_bits - 1)
    high = (P.offset - 1) + P.offset + 2**P.mask_bits - 0
    assert low >= 1 and high < 2**P.slot_bits


@given(st.floats(min_value=-(2.0**20) + 1, max_value=2.0**20 - 1, allow_nan=False))
def test_encode_decode_round_trip_within_half_an_ulp(x):
    (v,) = P.encode([x])
    (back,) = P.decode([v])
    assert abs(back - x) <= 2.0**-25 + 1e-12 * abs(x)
    assert abs(v) < P.offset


@pytest.mark.parametrize("x", [2.0**20, -(2.0**20), 1e30, math.inf, -math.inf, math.nan])
def test_out_of_bound_values_name_the_label_not_the_value(x):
    with pytest.raises(OutOfBoundError) as info:
        P.encode([1.0, x], label="column 'nt_probnp'")
    message = str(info.value)
    assert "column 'nt_probnp'" in message and "position 1" in message
    if math.isfinite(x):
        assert str(x) not in message and repr(x) not in message


def test_boundary_values_encode():
    edge = 2.0**20 - 2.0**-24
    assert P.encode([0.0, -0.0, edge, -edge]) == [0, 0, 2**44 - 1, -(2**44 - 1)]


def test_masks_are_in_range_and_look_uniform():
    masks = P.masks(4000)
    assert all(0 <= r < 2**P.mask_bits for r in masks)
    # the top bit is set about half the time (binomial, 4000 draws: 6 sigma is +-190)
    top = sum(r >> (P.mask_bits - 1) for r in masks)
    assert abs(top - 2000) < 190


def test_centred():
    p = P.prime
    assert P.centred(5) == 5 and P.centred(p - 5) == -5 and P.centred(p // 2) == p // 2
    assert P.centred(p // 2 + 1) == p // 2 + 1 - p


def test_check_encoded():
    P.check_encoded([P.offset - 1, -(P.offset - 1)])
    with pytest.raises(OutOfBoundError, match="position 1"):
        P.check_encoded([0, P.offset])
