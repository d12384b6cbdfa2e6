"""Step 2: joint key derivation and keyed hashing of ids.

The oracle is Python's own ``hmac`` module, fed with the HMAC input exactly as the
module documents it (tag, 8-byte big-endian length, UTF-8 bytes), built here
independently of the implementation.
"""

from __future__ import annotations

import copy
import gc
import hmac
import os
import pickle
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpcactors.crypto.hashing import (
    DOMAIN_TAG,
    IdFold,
    JointKey,
    contribution,
    id_normaliser,
    normalise_id,
)
from mpcactors.errors import ConfigError, KeyDestroyedError, PeerProtocolError

MINE = bytes(range(32))
THEIRS = bytes(range(100, 132))


def expected_key(mine: bytes, theirs: bytes) -> bytes:
    total = int.from_bytes(mine, "big") + int.from_bytes(theirs, "big")
    return (total % 2**256).to_bytes(32, "big")


def hmac_input(id_: str) -> bytes:
    data = id_.encode("utf-8")
    return DOMAIN_TAG + len(data).to_bytes(8, "big") + data


def reference_digest(key: bytes, id_: str) -> bytes:
    return hmac.new(key, hmac_input(id_), "sha256").digest()


def test_contribution_is_32_fresh_random_bytes() -> None:
    a, b = contribution(), contribution()
    assert isinstance(a, bytes) and len(a) == 32
    assert a != b  # equal only with probability 2**-256


def test_known_answer_against_stdlib_hmac() -> None:
    key = JointKey.from_contributions(MINE, THEIRS)
    ids = ["000000001", "123456789", "", "é", "a" * 1000, "patiënt-7"]
    assert key.hash_ids(ids) == [reference_digest(expected_key(MINE, THEIRS), i) for i in ids]


def test_domain_tag_is_part_of_the_input() -> None:
    # Without the tag (or the length prefix) the digest would differ: pins the encoding.
    key_bytes = expected_key(MINE, THEIRS)
    digest = JointKey.from_contributions(MINE, THEIRS).hash_ids(["42"])[0]
    assert digest != hmac.new(key_bytes, b"42", "sha256").digest()
    assert digest != hmac.new(key_bytes, DOMAIN_TAG + b"42", "sha256").digest()


def test_contribution_order_does_not_matter() -> None:
    a, b = contribution(), contribution()
    ids = ["000000001", "000000002"]
    assert JointKey.from_contributions(a, b).hash_ids(ids) == JointKey.from_contributions(
        b, a
    ).hash_ids(ids)


def test_key_is_the_sum_modulo_2_to_the_256() -> None:
    # (2**256 - 1) + 2 wraps to 1.
    mine = (2**256 - 1).to_bytes(32, "big")
    theirs = (2).to_bytes(32, "big")
    digest = JointKey.from_contributions(mine, theirs).hash_ids(["x"])
    assert digest == [reference_digest((1).to_bytes(32, "big"), "x")]


def test_different_keys_give_different_digests() -> None:
    other = bytes(range(1, 33))
    ids = ["000000001"]
    assert JointKey.from_contributions(MINE, THEIRS).hash_ids(ids) != JointKey.from_contributions(
        other, THEIRS
    ).hash_ids(ids)


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33)])
def test_own_contribution_of_wrong_size_is_a_value_error(bad: bytes) -> None:
    with pytest.raises(ValueError, match="must be 32 bytes"):
        JointKey.from_contributions(bad, THEIRS)


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(64), "x" * 32, 12345])
def test_bad_peer_contribution_is_a_peer_protocol_error(bad: object) -> None:
    with pytest.raises(PeerProtocolError, match="peer's key contribution must be 32 bytes"):
        JointKey.from_contributions(MINE, bad)  # type: ignore[arg-type]


def test_destroy_makes_every_use_fail() -> None:
    key = JointKey.from_contributions(MINE, THEIRS)
    assert not key.destroyed
    key.destroy()
    assert key.destroyed
    with pytest.raises(KeyDestroyedError):
        key.hash_ids(["1"])
    key.destroy()  # idempotent
    assert key.destroyed


def test_repr_shows_no_key_material() -> None:
    key = JointKey.from_contributions(MINE, THEIRS)
    text = repr(key) + str(key)
    joint = expected_key(MINE, THEIRS)
    for secret in (MINE, THEIRS, joint):
        assert secret.hex() not in text
        assert repr(secret) not in text
    assert "destroyed=False" in text


def test_key_cannot_be_pickled_or_copied() -> None:
    key = JointKey.from_contributions(MINE, THEIRS)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(TypeError):
        copy.copy(key)
    with pytest.raises(TypeError):
        copy.deepcopy(key)


def test_non_string_id_is_a_type_error_naming_the_position() -> None:
    key = JointKey.from_contributions(MINE, THEIRS)
    with pytest.raises(TypeError, match="position 1"):
        key.hash_ids(["a", 7])  # type: ignore[list-item]


@given(st.lists(st.text(), min_size=2, max_size=20, unique=True))
def test_distinct_ids_never_share_an_hmac_input_or_digest(ids: list[str]) -> None:
    ids = [i for i in ids if not any(0xD800 <= ord(c) <= 0xDFFF for c in i)]
    inputs = [hmac_input(i) for i in ids]
    # The documented encoding is injective: the id is recovered from the input alone,
    # so even ids that are prefixes or concatenations of each other cannot collide.
    for id_, data in zip(ids, inputs, strict=True):
        rest = data[len(DOMAIN_TAG) :]
        length = int.from_bytes(rest[:8], "big")
        assert len(rest) == 8 + length
        assert rest[8:].decode("utf-8") == id_
    digests = JointKey.from_contributions(MINE, THEIRS).hash_ids(ids)
    assert len(set(digests)) == len(ids)
    assert digests == [reference_digest(expected_key(MINE, THEIRS), i) for i in ids]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("  AB123 \t\n", "ab123"),
        ("000000042", "000000042"),
        ("Straße", "strasse"),  # casefold, not lower
        ("e\u0301", "\u00e9"),  # decomposed accent composes (NFC)
        ("\u00c9LISE", "\u00e9lise"),
        ("\u00a0x\u3000", "x"),  # non-ASCII whitespace is stripped too
        ("AB 123", "ab 123"),  # internal whitespace is kept
        ("", ""),
    ],
)
def test_normalise_id_examples(raw: str, canonical: str) -> None:
    assert normalise_id(raw) == canonical


def test_ids_equal_after_normalisation_hash_equal() -> None:
    key = JointKey.from_contributions(MINE, THEIRS)
    a, b = key.hash_ids([normalise_id(" Ke\u0301vin "), normalise_id("K\u00c9VIN")])
    assert a == b


# The documented contract of normalise_id: (id a, id b, same person under casefold,
# same person under fold="none"). "Same person" means equal canonical forms, hence equal
# HMAC digests under any key.
CANONICALISATION_TABLE = [
    # whitespace
    ("AB123", "  AB123 \t\n", True, True),
    ("AB123", "\u00a0AB123\u3000", True, True),  # NO-BREAK and IDEOGRAPHIC SPACE are stripped
    ("AB123", "AB\u200b123", False, False),  # ZERO WIDTH SPACE is not whitespace
    ("AB123", "AB 123", False, False),  # internal whitespace is kept
    ("AB-123", "AB123", False, False),  # so is punctuation
    # leading zeros: digits are characters, not numbers
    ("000042", "42", False, False),
    ("000042", " 000042", True, True),
    # fullwidth and other compatibility forms: NFC, not NFKC
    ("123", "\uff11\uff12\uff13", False, False),
    ("AB", "\uff21\uff22", False, False),
    ("fi7", "\ufb017", True, False),  # the ligature only merges through full case folding
    # composed and decomposed characters: canonical equivalence always merges
    ("\u00e9lise", "e\u0301lise", True, True),
    ("\u00c9LISE", "E\u0301LISE", True, True),
    ("\u00c5", "\u212b", True, True),  # ANGSTROM SIGN is canonically A with ring
    ("K9", "\u212a9", True, True),  # KELVIN SIGN is canonically K
    # case
    ("aB3x", "Ab3X", True, False),
    ("Stra\u00dfe1", "STRASSE1", True, False),  # sharp s folds to ss
    ("\u1e9e", "ss", True, False),  # capital sharp s too
    ("\u03c212", "\u03a312", True, False),  # final sigma and capital sigma
    ("\u03c312", "\u03c212", True, False),  # small and final sigma
    ("\u00e9lise", "\u00c9LISE", True, False),
    ("\u01c5", "\u01c6", True, False),  # title-case digraph DZ with caron
]


@pytest.mark.parametrize(
    ("a", "b", "same_casefold", "same_none"),
    CANONICALISATION_TABLE,
    ids=[ascii(a) + "~" + ascii(b) for a, b, _, _ in CANONICALISATION_TABLE],
)
def test_which_ids_are_the_same_person(a: str, b: str, same_casefold: bool, same_none: bool) -> None:
    key = JointKey.from_contributions(MINE, THEIRS)
    for fold, same in ((IdFold.CASEFOLD, same_casefold), ("none", same_none)):
        canonical = [normalise_id(a, fold), normalise_id(b, fold)]
        assert (canonical[0] == canonical[1]) is same, (fold, canonical)
        digests = key.hash_ids(canonical)
        assert (digests[0] == digests[1]) is same
    assert normalise_id(a) == normalise_id(a, "casefold")  # the default is unchanged


def test_case_is_kept_without_folding_and_the_rest_still_applies() -> None:
    assert normalise_id(" Ae\u0301C\t", fold="none") == "A\u00e9C"
    assert normalise_id(" Ae\u0301C\t") == "a\u00e9c"
    assert id_normaliser("none")("AbC ") == "AbC"
    assert id_normaliser()("AbC ") == "abc"


@pytest.mark.parametrize("fold", ["upper", "NONE", "", None, "nfkc"])
def test_an_unknown_fold_is_a_config_error_naming_the_choices(fold: object) -> None:
    with pytest.raises(ConfigError, match="'casefold', 'none'"):
        normalise_id("x", fold)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="id fold"):
        id_normaliser(fold)  # type: ignore[arg-type]


@given(st.text(), st.sampled_from(list(IdFold)))
def test_normalise_id_is_idempotent_and_nfc(raw: str, fold: IdFold) -> None:
    once = normalise_id(raw, fold)
    assert normalise_id(once, fold) == once
    assert unicodedata.is_normalized("NFC", once)
    assert once == once.strip()


def occurrences_in_process_memory(needles: dict[str, bytes]) -> dict[str, int]:
    """How often each byte string occurs in this process's readable memory (Linux)."""
    found = dict.fromkeys(needles, 0)
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            address, permissions = line.split()[:2]
            if "r" not in permissions or "[vvar]" in line or "[vsyscall]" in line:
                continue
            low, high = (int(x, 16) for x in address.split("-"))
            try:
                mem.seek(low)
                data = mem.read(high - low)
            except (OSError, ValueError, OverflowError):
                continue
            for name, needle in needles.items():
                found[name] += data.count(needle)
    return found


@pytest.mark.skipif(not os.access("/proc/self/mem", os.R_OK), reason="needs Linux /proc/self/mem")
@pytest.mark.slow
def test_no_copy_of_the_key_or_its_pads_outlives_destroy() -> None:
    """The key and the two HMAC pads live only in buffers that are zeroed: after
    destroy() the only copies in memory are the ones this test builds to search for.
    (The contributions themselves belong to the caller and are not searched.) Three
    rounds, because freed memory that happens to be reused would hide a stale copy."""
    for _ in range(3):
        a, b = contribution(), contribution()
        key = JointKey.from_contributions(a, b)
        key.hash_ids(["ab123", "cd456"])
        key.destroy()
        del key
        gc.collect()
        joint = expected_key(a, b)  # the needles: one copy each, made only now
        needles = {
            "key": joint,
            "key XOR ipad": bytes(x ^ 0x36 for x in joint),
            "key XOR opad": bytes(x ^ 0x5C for x in joint),
        }
        assert occurrences_in_process_memory(needles) == dict.fromkeys(needles, 1)


def test_with_k_data_parties_the_key_is_the_sum_of_every_contribution() -> None:
    contributions = [contribution() for _ in range(5)]
    total = sum(int.from_bytes(c, "big") for c in contributions) % 2**256
    expected = total.to_bytes(32, "big")
    ids = ["000000001", "patiënt-7"]
    for first in range(5):  # every party passes its own first, the others in any order
        mine, theirs = contributions[first], contributions[:first] + contributions[first + 1 :]
        key = JointKey.from_contributions(mine, *reversed(theirs))
        assert key.hash_ids(ids) == [reference_digest(expected, i) for i in ids]
    with pytest.raises(ValueError, match="at least one peer"):
        JointKey.from_contributions(contributions[0])
