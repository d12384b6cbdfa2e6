"""Secret-key workers started by the forkserver: forked from a fresh interpreter, never
from this process, so a worker holds its own key only, and none outlives its scope."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio_parallel

from mpcactors.actors.secret_pool import open_secret_key_workers
from mpcactors.crypto import paillier


def parent_of(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def keys():
    return paillier.generate_keypair(1024, context=b"forkserver test", _allow_insecure_test_size=True)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads parent ids from /proc (Linux)")
async def test_forkserver_workers_are_not_forks_of_this_process_and_end_with_the_scope():
    public, secret = keys()
    values = [0, 1, 2**40, -(2**40)]
    async with open_secret_key_workers(secret, workers=2, worker_type=trio_parallel.WorkerType.FORKSERVER) as pool:
        ciphertexts = await pool.encrypt_raw(values)
        assert secret.decrypt_raw(ciphertexts) == values
        assert await pool.decrypt_raw(ciphertexts) == values
        pids = pool.worker_pids
        assert pids and os.getpid() not in pids
        # a fork of this process would be its child and carry every key it holds
        assert all(parent_of(pid) != os.getpid() for pid in pids)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_secret_key_workers_never_start_by_fork():
    _, secret = keys()
    with pytest.raises(ValueError, match="never by fork"):
        async with open_secret_key_workers(secret, worker_type=trio_parallel.WorkerType.FORK):
            pytest.fail("started workers by fork")
