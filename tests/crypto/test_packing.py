"""Slot packing: packed values plus packed masks unpack to integer shares with s + r == v.

The oracle is plain integer arithmetic on the unpacked values: for every entry the
share plus its mask must give back the value exactly. Paillier addition of two
plaintexts is integer addition as long as the sum stays below n/2, which the
packing guarantees; the end-to-end test checks that through real 1024-bit keys.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mpcactors.crypto import paillier
from mpcactors.crypto.fixedpoint import OutOfBoundError, Params
from mpcactors.crypto.packing import Packing
from mpcactors.errors import ConfigError

PARAMS = Params()
OFFSET = PARAMS.offset
MASK_TOP = 1 << PARAMS.mask_bits


@pytest.fixture(scope="module")
def keys():
    return paillier.generate_keypair(1024, context=b"packing test", _allow_insecure_test_size=True)


def add_plaintexts(packing: Packing, values, masks) -> list[int]:
    """What decrypting Enc(pack_values) * Enc(pack_masks) yields: the integer sums."""
    return [x + r for x, r in zip(packing.pack_values(values), packing.pack_masks(masks))]


values_in_bound = st.one_of(
    st.integers(min_value=-(OFFSET - 1), max_value=OFFSET - 1),
    st.sampled_from([OFFSET - 1, -(OFFSET - 1), 0, 1, -1]),
)
masks_in_range = st.one_of(
    st.integers(min_value=0, max_value=MASK_TOP - 1), st.sampled_from([0, 1, MASK_TOP - 1])
)


@st.composite
def matrices(draw):
    """(modulus_bits, values, masks): up to 4 rows of d entries, d also above the slot count."""
    modulus_bits = draw(st.sampled_from([1024, 2048, 3072]))
    slots = PARAMS.slots(modulus_bits)
    d = draw(st.one_of(st.integers(1, 3), st.integers(slots - 1, 2 * slots + 1)))
    rows = draw(st.integers(1, 4))
    values = [[draw(values_in_bound) for _ in range(d)] for _ in range(rows)]
    masks = [[draw(masks_in_range) for _ in range(d)] for _ in range(rows)]
    return modulus_bits, values, masks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=matrices())
@example(case=(1024, [[OFFSET - 1] * 12, [-(OFFSET - 1)] * 12], [[0] * 12, [MASK_TOP - 1] * 12]))
@example(case=(1024, [[-(OFFSET - 1)] * 11], [[0] * 11]))
@example(case=(1024, [[OFFSET - 1] * 11], [[MASK_TOP - 1] * 11]))
def test_shares_plus_masks_give_back_the_values(case):
    modulus_bits, values, masks = case
    packing = Packing(PARAMS, modulus_bits)
    d = len(values[0])
    plaintexts = add_plaintexts(packing, values, masks)
    assert len(plaintexts) == len(values) * packing.plaintexts_per_row(d)
    # no plaintext leaves the range the centred decryption returns unchanged
    assert all(0 <= pt < 2 ** (modulus_bits - 2) for pt in plaintexts)
    shares = packing.unpack_shares(plaintexts, d)
    assert [[s + r for s, r in zip(srow, rrow)] for srow, rrow in zip(shares, masks)] == values


def test_slot_count_follows_params_and_rows_split_over_plaintexts():
    packing = Packing(PARAMS, 3072)
    assert packing.slots == PARAMS.slots(3072) == (3072 - 2) // PARAMS.slot_bits
    slots = packing.slots
    counts = [packing.plaintexts_per_row(d) for d in (1, slots, slots + 1, 2 * slots)]
    assert counts == [1, 1, 2, 2]
    with pytest.raises(ValueError):
        packing.plaintexts_per_row(0)


def test_end_to_end_through_paillier_with_more_values_than_slots(keys):
    public, secret = keys
    packing = Packing.for_public_key(PARAMS, public)
    d = packing.slots + 3  # two plaintexts per row
    values = np.array(
        [[(-1) ** j * (OFFSET - 1 - 1000 * i - j) for j in range(d)] for i in range(3)],
        dtype=np.int64,
    )
    masks = PARAMS.masks(3 * d)
    mask_rows = [masks[i * d : (i + 1) * d] for i in range(3)]
    encrypted_values = public.encrypt_raw(packing.pack_values(values))
    encrypted_masks = public.encrypt_raw(packing.pack_masks(mask_rows))
    combined = public.rerandomize_raw(public.add_raw(encrypted_values, encrypted_masks))
    assert len(combined) == 3 * 2
    shares = packing.unpack_shares(secret.decrypt_raw(combined), d)
    recovered = [[s + r for s, r in zip(srow, rrow)] for srow, rrow in zip(shares, mask_rows)]
    assert recovered == values.tolist()


def test_numpy_and_list_rows_pack_identically():
    packing = Packing(PARAMS, 2048)
    rows = [[1, -2, 3], [OFFSET - 1, 0, -(OFFSET - 1)]]
    assert packing.pack_values(np.array(rows, dtype=np.int64)) == packing.pack_values(rows)
    # (masks have mask_bits = 85 bits, beyond int64: they stay Python ints)


@pytest.mark.parametrize("bad", [OFFSET, -OFFSET, OFFSET * 4])
def test_values_outside_the_encoded_bound_are_refused(bad):
    packing = Packing(PARAMS, 2048)
    with pytest.raises(OutOfBoundError, match="row 1, column 2") as info:
        packing.pack_values([[0, 0, 0], [0, 0, bad]])
    assert str(bad) not in str(info.value)


@pytest.mark.parametrize("bad", [-1, MASK_TOP, MASK_TOP * 2])
def test_masks_outside_their_range_are_refused(bad):
    packing = Packing(PARAMS, 2048)
    with pytest.raises(OutOfBoundError, match="row 0, column 1"):
        packing.pack_masks([[0, bad]])


def test_non_integer_entries_are_refused():
    packing = Packing(PARAMS, 2048)
    with pytest.raises(TypeError):
        packing.pack_values([[0.5, 1]])
    with pytest.raises(TypeError):
        packing.pack_values(np.zeros((2, 2), dtype=np.float64))
    with pytest.raises(ValueError, match="row 1 has 1 entries"):
        packing.pack_values([[1, 2], [3]])


def test_corrupted_plaintexts_are_refused_on_unpack():
    packing = Packing(PARAMS, 1024)
    bits = PARAMS.slot_bits
    good = add_plaintexts(packing, [[5, -5, 0]], [[1, 2, 3]])
    assert packing.unpack_shares(good, 3) == [[4, -7, -3]]
    with pytest.raises(ValueError, match="do not split"):
        packing.unpack_shares(good * 3, packing.slots + 1)  # rows of 2 plaintexts
    with pytest.raises(ValueError, match="does not fit"):
        packing.unpack_shares([good[0] + (1 << (3 * bits))], 3)  # a fourth slot in use
    with pytest.raises(ValueError, match="does not fit"):
        packing.unpack_shares([-good[0]], 3)  # negative: the centred decryption wrapped
    with pytest.raises(ValueError, match="slot 1 "):
        packing.unpack_shares([good[0] & ~(((1 << bits) - 1) << bits)], 3)  # slot 1 zeroed
    with pytest.raises(ValueError, match="slot 0 "):
        packing.unpack_shares([good[0] | ((1 << bits) - 1)], 3)  # slot 0 all ones


def test_a_modulus_too_small_for_one_slot_is_a_config_error():
    with pytest.raises(ConfigError):
        Packing(PARAMS, PARAMS.slot_bits)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    maskers=st.integers(1, 6),
    extreme=st.sampled_from(["low", "high", "random"]),
    d=st.integers(1, 12),
    data=st.data(),
)
def test_with_several_maskers_the_share_is_the_value_minus_every_mask(maskers, extreme, d, data):
    # k data parties: each column is masked by the k - 1 others; the sums of their packed
    # masks and the packed value must unpack to v - sum(r) without a carry between slots
    packing = Packing(PARAMS, 2048, maskers=maskers)
    if extreme == "low":  # the smallest slot: the most negative value, every mask at its top
        values, masks = [[-(OFFSET - 1)] * d], [[[MASK_TOP - 1] * d] for _ in range(maskers)]
    elif extreme == "high":  # the largest slot: the largest value, every mask zero
        values, masks = [[OFFSET - 1] * d], [[[0] * d] for _ in range(maskers)]
    else:
        values = [[data.draw(values_in_bound) for _ in range(d)]]
        masks = [[[data.draw(masks_in_range) for _ in range(d)]] for _ in range(maskers)]
    sums = packing.pack_values(values)
    for mask in masks:
        sums = [a + b for a, b in zip(sums, packing.pack_masks(mask))]
    assert all(0 <= s < 2 ** (2048 - 2) for s in sums)  # a valid plaintext, below n/2
    shares = packing.unpack_shares(sums, d)
    expected = [v - sum(m[0][j] for m in masks) for j, v in enumerate(values[0])]
    assert shares == [expected]


def test_more_maskers_widen_the_slots_and_one_masker_is_the_two_party_layout():
    two_party = Packing(PARAMS, 3072)
    assert two_party.slot_bits == PARAMS.slot_bits and two_party.slots == PARAMS.slots(3072)
    assert Packing(PARAMS, 3072, maskers=2).slot_bits == PARAMS.slot_bits + 1
    assert Packing(PARAMS, 3072, maskers=4).slot_bits == PARAMS.slot_bits + 2
    assert Packing(PARAMS, 3072, maskers=5).slot_bits == PARAMS.slot_bits + 3
    with pytest.raises(ValueError):
        Packing(PARAMS, 3072, maskers=0)
