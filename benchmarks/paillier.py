"""Paillier speed: mpcactors against python-paillier (``phe``), in one run, on one core.

Usage::

    python benchmarks/paillier.py            # 2048 and 3072 bits, 9 rounds
    python benchmarks/paillier.py --quick    # 3 rounds, smaller batches

Both libraries use the same primes (phe keys are built from ours) and the same gmpy2.
The machine may be shared, so the comparison is interleaved finely: within a round,
small chunks of our operations and of phe's alternate (and alternate which goes
first), so a load change hits both sides alike. Each round gives one time per
operation and library; the table shows the median over rounds and the ratio of the
medians (phe time / our time: above 1 means we are faster).

The phe reference is its lean raw path (``raw_encrypt`` / ``raw_decrypt`` on ints),
faster than its object API, so the ratios are conservative; encryption through phe's
object API and additions (object APIs on both sides) are shown too.

Packed rows: ``d = 5`` values per row, one plaintext per row (fixed-point slots of
``Params().slot_bits`` bits, see ``mpcactors.crypto.packing``); the per-value cost is
packing plus encrypting a row (or decrypting plus unpacking a masked row) divided by
5, against phe encrypting (decrypting) one value per ciphertext.

The key owner's fast paths (second table), interleaved the same way in the same run:

* owner encryption (``SecretKey.encrypt_raw``: per-prime fixed-base tables and the
  CRT) against our public encryption, phe, and, as the alternative that was not
  chosen, plain exponentiation ``h**a`` modulo ``p**2`` and ``q**2`` with the CRT;
* half-CRT decryption (``decrypt_raw(below_half_p=True)``) against our full CRT
  decryption and phe, on plaintexts below the half-CRT bound (masked packed rows).

The worker pool (third table): the same owner encryption and decryptions through
``mpcactors.actors.secret_pool`` with ``--workers`` processes (default 2), against
the same work in this process on one core, alternating pool and in-process runs;
the pool's start-up (spawning, key install, table build) is reported separately.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import secrets
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable

import gmpy2
import phe
import trio

from mpcactors.actors.secret_pool import open_secret_key_workers
from mpcactors.crypto import paillier
from mpcactors.crypto.fixedpoint import Params
from mpcactors.crypto.packing import Packing

PACKED_VALUES = 5
#: targets at 3072 bits (ratio = phe time / our time)
TARGETS = {
    "encrypt": 10.0,
    "decrypt": 0.9,
    "packed encrypt, per value": 50.0,
    "packed decrypt, per value": 4.0,
}


def seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def interleaved(
    chunks: int, first: int, steps: dict[str, Callable[[int], object]]
) -> dict[str, float]:
    """Run ``steps[name](k)`` for every chunk ``k``, alternating the order; total seconds."""
    totals = dict.fromkeys(steps, 0.0)
    names = list(steps)
    for k in range(chunks):
        for name in names if (first + k) % 2 == 0 else reversed(names):
            totals[name] += seconds(lambda: steps[name](k))  # noqa: B023 - called at once
    return totals


def machine() -> str:
    """``lscpu``'s model name and the number of CPUs."""
    try:
        lines = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
    except OSError:
        lines = []
    model = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")),
        platform.processor() or "unknown",
    )
    return f"{model}, nproc {os.cpu_count()}"


def bench_size(bits: int, rounds: int, chunks: int) -> list[tuple[str, float, float]]:
    """(operation, our seconds per op, phe seconds per op): medians over ``rounds``.

    Per round and chunk: 8 of our encryptions or decryptions against 1 of phe's
    encryptions (they are about 10 times slower) or 8 of phe's decryptions.
    """
    start = time.perf_counter()
    public, secret = paillier.generate_keypair(bits, context=b"benchmark")
    keygen = time.perf_counter() - start
    phe_public = phe.PaillierPublicKey(public.n)
    phe_secret = phe.PaillierPrivateKey(phe_public, secret.p, secret.q)
    start = time.perf_counter()
    public.encrypt_raw([0])  # builds the fixed-base table
    table = time.perf_counter() - start
    print(f"  {bits} bits: key generation {keygen:.2f} s, fixed-base table {table:.2f} s")

    n = public.n
    packing = Packing(Params(), bits)
    params = packing.params
    assert packing.plaintexts_per_row(PACKED_VALUES) == 1
    per_chunk = 8
    count = chunks * per_chunk

    samples: dict[str, list[tuple[float, float]]] = {}

    def record(name: str, ours: float, theirs: float) -> None:
        samples.setdefault(name, []).append((ours, theirs))

    for round_index in range(rounds):
        values = [secrets.randbelow(2**64) - 2**63 for _ in range(count)]
        rows = [
            [secrets.randbelow(2 * params.offset - 1) - params.offset + 1 for _ in range(5)]
            for _ in range(count)
        ]
        masks = [params.masks(PACKED_VALUES) for _ in rows]

        def part(seq: list, k: int) -> list:
            return seq[k * per_chunk : (k + 1) * per_chunk]

        # -- encryption: ours (object and raw API, packed rows) against phe
        t = interleaved(
            chunks,
            round_index,
            {
                "ours": lambda k: public.encrypt(part(values, k)),
                "ours raw": lambda k: public.encrypt_raw(part(values, k)),
                "ours packed": lambda k: public.encrypt_raw(packing.pack_values(part(rows, k))),
                "phe raw": lambda k: phe_public.raw_encrypt(values[k] % n),
                "phe object": lambda k: phe_public.encrypt(values[k]),
            },
        )
        phe_encrypt = t["phe raw"] / chunks
        record("encrypt", t["ours"] / count, phe_encrypt)
        record("encrypt (raw ints)", t["ours raw"] / count, phe_encrypt)
        record("encrypt (phe object API)", t["ours"] / count, t["phe object"] / chunks)
        packed_values = count * PACKED_VALUES
        record("packed encrypt, per value", t["ours packed"] / packed_values, phe_encrypt)

        # -- decryption: same ciphertexts for both; packed rows masked as in step 6
        ciphertexts = public.encrypt(values)
        raw = [int(c) for c in ciphertexts]
        masked = public.add_raw(
            public.encrypt_raw(packing.pack_values(rows)),
            public.encrypt_raw(packing.pack_masks(masks)),
        )
        t = interleaved(
            chunks,
            round_index,
            {
                "ours": lambda k: secret.decrypt(part(ciphertexts, k)),
                "ours raw": lambda k: secret.decrypt_raw(part(raw, k)),
                "ours packed": lambda k: packing.unpack_shares(
                    secret.decrypt_raw(part(masked, k)), PACKED_VALUES
                ),
                "phe raw": lambda k: [phe_secret.raw_decrypt(c) for c in part(raw, k)],
            },
        )
        phe_decrypt = t["phe raw"] / count
        record("decrypt", t["ours"] / count, phe_decrypt)
        record("decrypt (raw ints)", t["ours raw"] / count, phe_decrypt)
        record("packed decrypt, per value", t["ours packed"] / packed_values, phe_decrypt)

        # -- addition: ours Ciphertext + against phe EncryptedNumber +; our raw-int path
        adds = 50 * per_chunk
        left, right = ciphertexts[0], ciphertexts[1]
        phe_left, phe_right = phe_public.encrypt(1), phe_public.encrypt(2)
        t = interleaved(
            chunks,
            round_index,
            {
                "ours": lambda k: [left + right for _ in range(adds)],
                "ours raw": lambda k: public.add_raw(raw[:adds], raw[:adds]),
                "phe": lambda k: [phe_left + phe_right for _ in range(adds)],
            },
        )
        raw_adds = min(adds, len(raw))
        record("add (object API)", t["ours"] / (chunks * adds), t["phe"] / (chunks * adds))
        record(
            "add (raw ints vs phe object API)",
            t["ours raw"] / (chunks * raw_adds),
            t["phe"] / (chunks * adds),
        )
    return [
        (name, statistics.median(o for o, _ in pairs), statistics.median(p for _, p in pairs))
        for name, pairs in samples.items()
    ]


def plain_crt_encrypt(secret: paillier.SecretKey, values: list[int]) -> list[int]:
    """The rejected owner alternative: ``(1 + m*n) * h**a`` by plain powmod mod p**2, q**2."""
    public = secret.public
    n, h = gmpy2.mpz(public.n), gmpy2.mpz(public.h)
    p, q = gmpy2.mpz(secret.p), gmpy2.mpz(secret.q)
    psquare, qsquare = p * p, q * q
    h_p, h_q = h % psquare, h % qsquare
    inverse = gmpy2.invert(psquare, qsquare)
    exponent_bits = 8 * -(-math.ceil(public.bits / 2) // 8)
    out = []
    for m in values:
        a = secrets.randbits(exponent_bits)
        start = 1 + (m % n) * n
        c_p = start * gmpy2.powmod(h_p, a, psquare) % psquare
        c_q = start * gmpy2.powmod(h_q, a, qsquare) % qsquare
        out.append(int(c_p + psquare * ((c_q - c_p) * inverse % qsquare)))
    return out


def bench_owner(bits: int, rounds: int, chunks: int) -> list[tuple[str, str, float, float]]:
    """(operation, reference, our seconds per op, reference seconds per op): medians.

    Per chunk: 8 owner / public encryptions, 2 plain-powmod encryptions, 1 phe
    encryption; 8 half-CRT / full / phe decryptions.
    """
    public, secret = paillier.generate_keypair(bits, context=b"benchmark")
    phe_public = phe.PaillierPublicKey(public.n)
    phe_secret = phe.PaillierPrivateKey(phe_public, secret.p, secret.q)
    public.encrypt_raw([0])
    start = time.perf_counter()
    secret.encrypt_raw([0])  # builds the per-prime tables
    print(f"  {bits} bits: owner (per-prime) tables {time.perf_counter() - start:.2f} s")
    n = public.n
    bound = 1 << paillier.half_crt_plaintext_bits(bits)
    per_chunk = 8
    count = chunks * per_chunk
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def record(name: str, reference: str, ours: float, theirs: float) -> None:
        samples.setdefault((name, reference), []).append((ours, theirs))

    def part(seq: list, k: int, size: int = per_chunk) -> list:
        return seq[k * size : (k + 1) * size]

    for round_index in range(rounds):
        values = [secrets.randbelow(2**64) - 2**63 for _ in range(count)]
        t = interleaved(
            chunks,
            round_index,
            {
                "owner": lambda k: secret.encrypt_raw(part(values, k)),
                "public": lambda k: public.encrypt_raw(part(values, k)),
                "plain": lambda k: plain_crt_encrypt(secret, part(values, k, 2)),
                "phe": lambda k: phe_public.raw_encrypt(values[k] % n),
            },
        )
        owner = t["owner"] / count
        record("owner encrypt (CRT tables)", "our public encrypt", owner, t["public"] / count)
        record("owner encrypt (CRT tables)", "phe raw_encrypt", owner, t["phe"] / chunks)
        record(
            "owner encrypt (CRT tables)",
            "owner encrypt, plain powmod CRT",
            owner,
            t["plain"] / (2 * chunks),
        )

        small = [secrets.randbelow(bound) for _ in range(count)]
        ciphertexts = secret.encrypt_raw(small)
        t = interleaved(
            chunks,
            round_index,
            {
                "half": lambda k: secret.decrypt_raw(part(ciphertexts, k), below_half_p=True),
                "full": lambda k: secret.decrypt_raw(part(ciphertexts, k)),
                "phe": lambda k: [phe_secret.raw_decrypt(c) for c in part(ciphertexts, k)],
            },
        )
        half = t["half"] / count
        record("half-CRT decrypt", "our full CRT decrypt", half, t["full"] / count)
        record("half-CRT decrypt", "phe raw_decrypt", half, t["phe"] / count)
    return [
        (
            name,
            reference,
            statistics.median(o for o, _ in pairs),
            statistics.median(r for _, r in pairs),
        )
        for (name, reference), pairs in samples.items()
    ]


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a live process, from ``/proc`` (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_pool_async(
    bits: int, rounds: int, count: int, workers: int, batch_size: int
) -> tuple[float, list[tuple[str, float, float, float, float]]]:
    """Pool start-up seconds and, per operation, medians over rounds of
    (pool wall s/op, in-process wall s/op, pool CPU s/op, in-process CPU s/op).

    Pool CPU is the workers' CPU time (``/proc``) plus this process's during the call
    (validation, pickling, dispatch); in-process CPU is ``time.process_time``.
    """
    public, secret = paillier.generate_keypair(bits, context=b"benchmark")
    bound = 1 << paillier.half_crt_plaintext_bits(bits)
    secret.encrypt_raw([0])  # in-process tables, so neither side pays a build below
    samples: dict[str, list[tuple[float, float, float, float]]] = {}
    async with open_secret_key_workers(secret, workers=workers, batch_size=batch_size) as pool:
        start = time.perf_counter()
        await pool.encrypt_raw([0] * workers)  # spawn, install the key, build tables
        await pool.encrypt_raw([0] * workers * 2)
        startup = time.perf_counter() - start
        pids = sorted(pool.worker_pids)

        async def pooled_run(action: Callable[[], Awaitable[object]]) -> tuple[float, float]:
            cpu = process_cpu_seconds
            before = sum(cpu(pid) for pid in pids) + time.process_time()
            begin = time.perf_counter()
            await action()
            wall = time.perf_counter() - begin
            return wall, sum(cpu(pid) for pid in pids) + time.process_time() - before

        def inline_run(action: Callable[[], object]) -> tuple[float, float]:
            before = time.process_time()
            begin = time.perf_counter()
            action()
            return time.perf_counter() - begin, time.process_time() - before

        for round_index in range(rounds):
            values = [secrets.randbelow(bound) for _ in range(count)]
            ciphertexts = secret.encrypt_raw(values)
            jobs = {
                "owner encrypt (CRT tables)": (
                    lambda: secret.encrypt_raw(values),
                    lambda: pool.encrypt_raw(values),
                ),
                "half-CRT decrypt": (
                    lambda: secret.decrypt_raw(ciphertexts, below_half_p=True),
                    lambda: pool.decrypt_raw(ciphertexts, below_half_p=True),
                ),
                "full CRT decrypt": (
                    lambda: secret.decrypt_raw(ciphertexts),
                    lambda: pool.decrypt_raw(ciphertexts),
                ),
            }
            for name, (inline, pooled) in jobs.items():
                if round_index % 2 == 0:
                    inline_times = inline_run(inline)
                    pool_times = await pooled_run(pooled)
                else:
                    pool_times = await pooled_run(pooled)
                    inline_times = inline_run(inline)
                samples.setdefault(name, []).append(
                    (
                        pool_times[0] / count,
                        inline_times[0] / count,
                        pool_times[1] / count,
                        inline_times[1] / count,
                    )
                )
        if sorted(pool.worker_pids) != pids:
            print("  note: the pool replaced a worker during the run")
    results = [
        (
            name,
            statistics.median(sample[0] for sample in per_round),
            statistics.median(sample[1] for sample in per_round),
            statistics.median(sample[2] for sample in per_round),
            statistics.median(sample[3] for sample in per_round),
        )
        for name, per_round in samples.items()
    ]
    return startup, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, smaller batches")
    parser.add_argument(
        "--bits", type=int, nargs="+", default=[2048, 3072], help="modulus sizes to measure"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the pool")
    parser.add_argument("--batch-size", type=int, default=32, help="values per pool job")
    args = parser.parse_args()
    rounds, chunks = (3, 2) if args.quick else (9, 5)
    pool_count = 64 if args.quick else 256

    load_before = os.getloadavg()
    print(f"# Paillier benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(
        f"  machine: {machine()}; Python {platform.python_version()}, "
        f"gmpy2 {gmpy2.version()}, phe {getattr(phe, '__version__', '?')}"
    )
    print(
        f"  {rounds} rounds; per round {chunks * 8} of our encryptions/decryptions, "
        f"{chunks} phe encryptions, {chunks * 8} phe decryptions"
    )
    results = {bits: bench_size(bits, rounds, chunks) for bits in args.bits}
    owner_results = {bits: bench_owner(bits, rounds, chunks) for bits in args.bits}
    pool_results = {
        bits: trio.run(
            bench_pool_async, bits, max(3, rounds // 3), pool_count, args.workers, args.batch_size
        )
        for bits in args.bits
    }
    load_after = os.getloadavg()
    print(
        f"  load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"on {os.cpu_count()} CPUs"
    )
    print()
    print("| bits | operation | ours (ops/s) | phe (ops/s) | ratio (phe time / ours) | target |")
    print("|---:|---|---:|---:|---:|---|")
    for bits, rows in results.items():
        for name, ours, theirs in rows:
            target = TARGETS.get(name) if bits == 3072 else None
            verdict = ""
            if target is not None:
                verdict = f">= {target:g}x: {'met' if theirs / ours >= target else 'MISSED'}"
            print(
                f"| {bits} | {name} | {1 / ours:,.0f} | {1 / theirs:,.0f} "
                f"| {theirs / ours:.2f}x | {verdict} |"
            )
    print()
    print(
        "| bits | operation | ours (ops/s) | reference | reference (ops/s) "
        "| ratio (reference time / ours) |"
    )
    print("|---:|---|---:|---|---:|---:|")
    for bits, owner_rows in owner_results.items():
        for name, reference, ours, theirs in owner_rows:
            print(
                f"| {bits} | {name} | {1 / ours:,.0f} | {reference} | {1 / theirs:,.0f} "
                f"| {theirs / ours:.2f}x |"
            )
    print()
    print(
        f"Pool: {args.workers} worker processes, batches of at most {args.batch_size}, "
        f"{pool_count} values per operation; in-process = the same call on one core."
    )
    print()
    print(
        "| bits | operation | pool (ops/s) | in-process (ops/s) | speed-up (wall) "
        "| CPU per op, pool / in-process | cores used by the pool | pool start-up (s) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for bits, (startup, pool_rows) in pool_results.items():
        for name, pooled, inline, pool_cpu, inline_cpu in pool_rows:
            print(
                f"| {bits} | {name} | {1 / pooled:,.0f} | {1 / inline:,.0f} "
                f"| {inline / pooled:.2f}x | {pool_cpu / inline_cpu:.2f} "
                f"| {pool_cpu / pooled:.2f} | {startup:.2f} |"
            )


if __name__ == "__main__":
    main()
