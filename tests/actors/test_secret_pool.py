"""Secret-key worker processes: right answers, and no worker outlives its scope.

Two proofs that the processes holding the key are gone when the scope closes (the
key-deletion step): every process id that ran a job no longer exists
(``os.kill(pid, 0)`` raises ``ProcessLookupError``; trio-parallel joins its workers,
so they are not zombies), and no child process started inside the scope is alive
(``multiprocessing.active_children``, which also sees workers killed before they
returned anything). Results are checked against phe and against in-process
decryption. Each test starts at most two worker processes.
"""

from __future__ import annotations

import multiprocessing
import os

import phe
import pytest
import trio

from mpcactors.actors.secret_pool import open_secret_key_workers, split_batches
from mpcactors.crypto import paillier
from mpcactors.errors import KeyDestroyedError

TEST_BITS = 1024


def make_keys():
    public, secret = paillier.generate_keypair(TEST_BITS, context=b"secret pool test", _allow_insecure_test_size=True)
    phe_public = phe.PaillierPublicKey(public.n)
    phe_secret = phe.PaillierPrivateKey(phe_public, secret.p, secret.q)
    return public, secret, phe_public, phe_secret


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def child_pids() -> set[int]:
    return {child.pid for child in multiprocessing.active_children() if child.pid is not None}


@pytest.mark.slow
async def test_workers_compute_like_the_key_and_all_end_with_the_scope():
    public, secret, phe_public, phe_secret = make_keys()
    n = public.n
    bound = 1 << paillier.half_crt_plaintext_bits(public.bits)
    before = child_pids()
    values = [0, 1, -1, 2**64, -(2**70), n // 2, -(n // 2)] + list(range(-20, 20))
    small = [0, 1, bound - 1] + list(range(100, 137))

    async with open_secret_key_workers(secret, workers=2, batch_size=8) as pool:
        # owner encryption in the workers: phe decrypts it
        ciphertexts = await pool.encrypt_raw(values)
        assert len(set(ciphertexts)) == len(values)
        assert [phe_secret.raw_decrypt(c) for c in ciphertexts] == [v % n for v in values]
        # decryption in the workers of phe's ciphertexts, full and half-CRT
        assert await pool.decrypt_raw([phe_public.raw_encrypt(v % n) for v in values]) == values
        theirs = [phe_public.raw_encrypt(v) for v in small]
        assert await pool.decrypt_raw(theirs, below_half_p=True) == small
        assert await pool.decrypt_raw(theirs) == secret.decrypt_raw(theirs)
        assert await pool.decrypt_raw([]) == [] and await pool.encrypt_raw([]) == []

        stats = pool.statistics()
        assert stats.workers == 2 and not stats.closed
        assert stats.values == 2 * len(values) + 2 * len(small)
        pids = pool.worker_pids
        assert len(pids) == 2 and os.getpid() not in pids
        assert all(alive(pid) for pid in pids)
        assert pids <= child_pids() - before
        started = child_pids() - before

        # errors name positions in the caller's list, not in a batch
        with pytest.raises(ValueError, match="position 1 "):
            await pool.decrypt_raw([ciphertexts[0], 0])
        with pytest.raises(ValueError, match="position 2 "):
            await pool.encrypt_raw([1, 2, n])
        mixed = theirs[:30] + [phe_public.raw_encrypt(bound)]
        with pytest.raises(ValueError, match="position 30 "):
            await pool.decrypt_raw(mixed, below_half_p=True)
        started |= child_pids() - before  # a failed batch kills its sibling's worker

    assert pool.statistics().closed
    # the proof: no process that held the key outlives the scope
    assert started and pool.worker_pids <= started
    for pid in started | pool.worker_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (child_pids() & started)
    with pytest.raises(trio.ClosedResourceError):
        await pool.decrypt_raw(ciphertexts[:1])
    # the parent's key is untouched by the pool: destroying it is the actor's step
    assert not secret.destroyed and secret.decrypt_raw(ciphertexts[:2]) == values[:2]


@pytest.mark.slow
async def test_cancelled_jobs_kill_their_worker_and_errors_still_end_the_scope():
    public, secret, _, _ = make_keys()
    before = child_pids()
    (ciphertext,) = secret.encrypt_raw([3])

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with open_secret_key_workers(secret, workers=1, batch_size=100_000) as pool:
            assert await pool.decrypt_raw([ciphertext]) == [3]  # the worker is up
            (first,) = pool.worker_pids
            # a job of many seconds, cancelled after a moment: its worker is killed
            with trio.move_on_after(0.5) as scope:
                await pool.decrypt_raw([ciphertext] * 50_000)
            assert scope.cancelled_caught
            assert not alive(first)
            # the key is destroyed (the actor's deletion step) while the scope is open
            secret.destroy()
            with pytest.raises(KeyDestroyedError):
                await pool.decrypt_raw([ciphertext])
            started = child_pids() - before
            raise Abort
    assert pool.statistics().closed
    assert not alive(first)
    assert not (child_pids() & started)


async def test_a_destroyed_key_starts_no_workers():
    _, secret, _, _ = make_keys()
    secret.destroy()
    before = child_pids()
    with pytest.raises(KeyDestroyedError):
        async with open_secret_key_workers(secret, workers=2):
            pytest.fail("opened workers for a destroyed key")
    assert child_pids() == before


async def test_invalid_pool_settings_are_refused():
    _, secret, _, _ = make_keys()
    for settings in ({"workers": 0}, {"batch_size": 0}):
        with pytest.raises(ValueError, match="at least 1"):
            async with open_secret_key_workers(secret, **settings):
                pytest.fail("accepted an invalid setting")


@pytest.mark.parametrize(
    ("count", "batch_size", "workers"),
    [(0, 8, 2), (1, 8, 2), (2, 8, 2), (7, 8, 2), (17, 8, 2), (100, 64, 2), (5, 1, 4), (9, 100, 4)],
)
def test_batches_cover_the_list_evenly(count, batch_size, workers):
    ranges = split_batches(count, batch_size=batch_size, workers=workers)
    covered = [i for start, stop in ranges for i in range(start, stop)]
    assert covered == list(range(count))
    sizes = [stop - start for start, stop in ranges]
    assert all(0 < size <= batch_size for size in sizes)
    if sizes:
        assert max(sizes) - min(sizes) <= 1
        assert len(sizes) >= min(workers, count)
