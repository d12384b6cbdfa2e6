"""The secret-key handoff into worker processes, exercised in this process.

What the worker side relies on: the handoff carries exactly one key (checked against
phe), is used once, can be revoked, never shows the primes, and refuses keys that are
already destroyed. ``pickle`` here stands in for trio-parallel's transport (it is
what carries the handoff to a spawned worker); the real processes are tested in
``tests/actors/test_secret_pool.py``.
"""

from __future__ import annotations

import pickle

import phe
import pytest

from mpcactors.crypto import paillier, workers
from mpcactors.errors import KeyDestroyedError

TEST_BITS = 1024


@pytest.fixture
def keys():
    public, secret = paillier.generate_keypair(TEST_BITS, context=b"workers test", _allow_insecure_test_size=True)
    yield public, secret
    # forget whatever a test installed in this process's registry
    for fingerprint in workers.installed_fingerprints():
        workers._installed.pop(fingerprint).destroy()


def test_handoff_installs_a_working_key_through_pickling(keys):
    public, secret = keys
    handoff = workers.secret_key_handoff(secret)
    assert workers.installed_fingerprints() == []
    arrived = pickle.loads(pickle.dumps(handoff))  # what a spawned worker receives
    assert arrived() is True
    assert arrived.revoked  # the worker's copy drops the material once installed
    fingerprint = public.fingerprint()
    assert workers.installed_fingerprints() == [fingerprint]

    phe_public = phe.PaillierPublicKey(public.n)
    values = [0, 5, 2**70, public.n // 2]
    theirs = [phe_public.raw_encrypt(v) for v in values]
    pid, plaintexts = workers.decrypt_batch(fingerprint, theirs, False, 0)
    assert plaintexts == values and isinstance(pid, int)
    _, plaintexts = workers.decrypt_batch(fingerprint, theirs[:3], True, 0)
    assert plaintexts == values[:3]
    _, ciphertexts = workers.encrypt_batch(fingerprint, [-3, 4], 0)
    phe_secret = phe.PaillierPrivateKey(phe_public, secret.p, secret.q)
    assert [phe_secret.raw_decrypt(c) for c in ciphertexts] == [public.n - 3, 4]


def test_batch_errors_name_positions_in_the_whole_list(keys):
    public, secret = keys
    pickle.loads(pickle.dumps(workers.secret_key_handoff(secret)))()
    fingerprint = public.fingerprint()
    with pytest.raises(ValueError, match="position 42 "):
        workers.decrypt_batch(fingerprint, secret.encrypt_raw([1, -1]), True, 41)
    with pytest.raises(ValueError, match="position 11 "):
        workers.decrypt_batch(fingerprint, [1, 0], False, 10)
    with pytest.raises(ValueError, match="position 8 "):
        workers.encrypt_batch(fingerprint, [1, public.n], 7)


def test_handoff_is_single_use_and_revocable(keys):
    _, secret = keys
    handoff = workers.secret_key_handoff(secret)
    arrived = pickle.loads(pickle.dumps(handoff))
    arrived()
    with pytest.raises(KeyDestroyedError):
        arrived()  # a second install from the same copy
    handoff.revoke()
    assert handoff.revoked
    with pytest.raises(KeyDestroyedError):
        pickle.dumps(handoff)  # no new worker can receive it
    handoff.revoke()  # idempotent


def test_jobs_for_a_key_not_installed_here_fail(keys):
    public, secret = keys
    with pytest.raises(KeyDestroyedError, match="no Paillier secret key"):
        workers.decrypt_batch(public.fingerprint(), secret.encrypt_raw([1]), False, 0)
    with pytest.raises(KeyDestroyedError):
        workers.encrypt_batch(public.fingerprint(), [1], 0)


def test_a_destroyed_key_cannot_be_handed_off(keys):
    _, secret = keys
    secret.destroy()
    with pytest.raises(KeyDestroyedError):
        workers.secret_key_handoff(secret)


def test_a_handoff_with_the_wrong_fingerprint_is_refused(keys):
    public, secret = keys
    other_public, _ = paillier.generate_keypair(TEST_BITS, context=b"workers test", _allow_insecure_test_size=True)
    forged = workers.SecretKeyHandoff(
        other_public.fingerprint(), (public.n, public.h, secret.p, secret.q)
    )
    with pytest.raises(ValueError, match="fingerprint"):
        forged()
    assert workers.installed_fingerprints() == []


def test_handoff_repr_shows_the_fingerprint_only(keys):
    public, secret = keys
    handoff = workers.secret_key_handoff(secret)
    text = repr(handoff)
    assert public.fingerprint() in text and "live" in text
    for value in (secret.p, secret.q):
        assert str(value)[:12] not in text and hex(value)[2:14] not in text
    handoff.revoke()
    assert "revoked" in repr(handoff)


def test_parent_side_validation_names_positions(keys):
    public, _ = keys
    with pytest.raises(ValueError, match="position 1 "):
        workers.checked_ciphertexts(public, [1, public.n**2])
    with pytest.raises(TypeError, match="position 0 "):
        workers.checked_plaintexts(public, [1.5])
    assert workers.checked_plaintexts(public, [3, -4]) == [3, -4]
