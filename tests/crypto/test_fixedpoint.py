"""Fixed-point encoding and the bit budgets every step relies on."""

from __future__ import annotations

import math

import gmpy2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpcactors.crypto.fixedpoint import PRIME_192, OutOfBoundError, Params
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
    # the largest step-8 intermediate: a Gram sum of products of two values over max_rows rows
    assert P.gram_bits == 2 * 44 + 21
    assert P.required_field_bits == P.gram_bits + 40 + 3 == 152
    assert P.field_bits == 191 >= P.required_field_bits


def test_the_worst_gram_sum_fits_the_budget():
    """The worst Gram sum (every value at the bound, max_rows rows) fits the budget exactly."""
    worst_value = P.offset - 1  # |v| < 2**44
    worst_sum = worst_value * worst_value * P.max_rows
    assert worst_sum < 2**P.gram_bits
    assert worst_sum + 2 ** (P.gram_bits + P.sigma + 2) < P.prime // 2  # plus truncation/comparison masks


def test_a_prime_too_small_for_step_8_is_refused():
    with pytest.raises(ConfigError, match="step 8 needs 152"):
        Params(prime=2**128 - 159)
    with pytest.raises(ConfigError, match="max_rows"):
        Params(max_rows=2**70)


@pytest.mark.parametrize("name", ["frac_bits", "int_bits", "sigma", "max_rows"])
def test_parameters_must_be_positive_integers(name):
    with pytest.raises(ConfigError, match=name):
        Params(**{name: 0})


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
