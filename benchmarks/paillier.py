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
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import secrets
import statistics
import subprocess
import time
from collections.abc import Callable

import gmpy2
import phe

from mpcactors.crypto import paillier
from mpcactors.crypto.fixedpoint import Params
from mpcactors.crypto.packing import Packing

PACKED_VALUES = 5
#: issue targets at 3072 bits (ratio = phe time / our time)
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
    public, secret = paillier.generate_keypair(bits)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, smaller batches")
    parser.add_argument(
        "--bits", type=int, nargs="+", default=[2048, 3072], help="modulus sizes to measure"
    )
    args = parser.parse_args()
    rounds, chunks = (3, 2) if args.quick else (9, 5)

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


if __name__ == "__main__":
    main()
