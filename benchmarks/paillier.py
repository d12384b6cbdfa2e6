"""Paillier speed: mpcactors against python-paillier (``phe``), in one run, on one core.

Usage::

    python benchmarks/paillier.py            # 2048 and 3072 bits, 9 rounds
    python benchmarks/paillier.py --quick    # fewer rounds and operations

Both libraries use the same primes (phe keys are built from ours) and the same gmpy2.
Each round times a batch of every operation for both libraries back to back, so a
busy or throttled machine slows both sides alike; the table reports the median
per-operation time over rounds and the ratio of the medians. The phe reference is
its lean raw path (``raw_encrypt`` / ``raw_decrypt`` on ints), which is faster than
its object API, so the ratios are conservative; phe's object API is shown too.

Packed rows: ``d = 5`` values per row, one plaintext per row (fixed-point slots of
``Params().slot_bits`` bits, see ``mpcactors.crypto.packing``); per-value cost is the
cost of packing plus encrypting (or decrypting plus unpacking) a row, divided by 5,
compared with phe encrypting (decrypting) one value per ciphertext.
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


def timed(action: Callable[[], object], count: int) -> float:
    """Seconds per operation for ``action``, which performs ``count`` operations."""
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) / count


def machine() -> str:
    try:
        model = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        model_name = next(
            (line.split(":", 1)[1].strip() for line in model if line.startswith("Model name")),
            platform.processor() or "unknown",
        )
    except OSError:
        model_name = platform.processor() or "unknown"
    return f"{model_name}, nproc {os.cpu_count()}"


def bench_size(bits: int, rounds: int, scale: int) -> list[tuple[str, float, float]]:
    """Return (operation, our seconds per op, phe seconds per op) medians for ``bits``."""
    start = time.perf_counter()
    public, secret = paillier.generate_keypair(bits)
    keygen = time.perf_counter() - start
    phe_public = phe.PaillierPublicKey(public.n)
    phe_secret = phe.PaillierPrivateKey(phe_public, secret.p, secret.q)
    start = time.perf_counter()
    public.encrypt_raw([0])  # builds the fixed-base table
    table = time.perf_counter() - start
    print(f"  {bits} bits: key generation {keygen:.2f} s, fixed-base table {table:.2f} s")

    ours_count = 8 * scale
    phe_count = max(2, scale)
    packing = Packing(Params(), bits)
    assert packing.plaintexts_per_row(PACKED_VALUES) == 1
    params = packing.params

    def fresh_values(count: int) -> list[int]:
        return [secrets.randbelow(2**64) - 2**63 for _ in range(count)]

    samples: dict[str, list[tuple[float, float]]] = {}

    def record(name: str, ours: float, theirs: float) -> None:
        samples.setdefault(name, []).append((ours, theirs))

    for round_index in range(rounds):
        # Within a round the two libraries alternate which goes first, so neither
        # systematically gets the warmer (or the cooler) half of a round.
        def pair(ours: Callable[[], float], theirs: Callable[[], float]) -> tuple[float, float]:
            if round_index % 2:
                their_time = theirs()
                return ours(), their_time
            return ours(), theirs()

        values = fresh_values(ours_count)
        phe_values = values[:phe_count]
        # -- encryption
        ours_enc, phe_raw_enc = pair(
            lambda: timed(lambda: public.encrypt(values), ours_count),
            lambda: timed(
                lambda: [phe_public.raw_encrypt(v % public.n) for v in phe_values], phe_count
            ),
        )
        ours_raw_enc, phe_obj_enc = pair(
            lambda: timed(lambda: public.encrypt_raw(values), ours_count),
            lambda: timed(lambda: [phe_public.encrypt(v) for v in phe_values], phe_count),
        )
        record("encrypt", ours_enc, phe_raw_enc)
        record("encrypt (raw ints)", ours_raw_enc, phe_raw_enc)
        record("encrypt (phe object API)", ours_enc, phe_obj_enc)
        # -- decryption
        ciphertexts = public.encrypt(values)
        raw = [int(c) for c in ciphertexts]
        ours_dec, phe_dec = pair(
            lambda: timed(lambda: secret.decrypt(ciphertexts), ours_count),
            lambda: timed(lambda: [phe_secret.raw_decrypt(c) for c in raw], ours_count),
        )
        ours_raw_dec = timed(lambda: secret.decrypt_raw(raw), ours_count)
        record("decrypt", ours_dec, phe_dec)
        record("decrypt (raw ints)", ours_raw_dec, phe_dec)
        # -- addition (object APIs: ours Ciphertext +, phe EncryptedNumber +)
        adds = 50 * ours_count
        left, right = ciphertexts[0], ciphertexts[1]
        phe_left, phe_right = phe_public.encrypt(1), phe_public.encrypt(2)
        ours_add, phe_add = pair(
            lambda: timed(lambda: [left + right for _ in range(adds)], adds),
            lambda: timed(lambda: [phe_left + phe_right for _ in range(adds)], adds),
        )
        record("add (object API)", ours_add, phe_add)
        ours_add_raw = timed(lambda: public.add_raw(raw, raw), ours_count)
        record("add (raw ints vs phe object API)", ours_add_raw, phe_add)
        # -- packed rows: 5 values per ciphertext (phe: one value per ciphertext)
        rows = [
            [secrets.randbelow(2 * params.offset - 1) - params.offset + 1 for _ in range(5)]
            for _ in range(ours_count)
        ]
        per_value = ours_count * PACKED_VALUES
        ours_packed_enc = timed(
            lambda: public.encrypt_raw(packing.pack_values(rows)), per_value
        )
        masks = [params.masks(PACKED_VALUES) for _ in rows]
        combined = public.add_raw(
            public.encrypt_raw(packing.pack_values(rows)),
            public.encrypt_raw(packing.pack_masks(masks)),
        )
        ours_packed_dec = timed(
            lambda: packing.unpack_shares(secret.decrypt_raw(combined), PACKED_VALUES),
            per_value,
        )
        record("packed encrypt, per value", ours_packed_enc, phe_raw_enc)
        record("packed decrypt, per value", ours_packed_dec, phe_dec)
    return [
        (
            name,
            statistics.median(o for o, _ in pairs),
            statistics.median(t for _, t in pairs),
        )
        for name, pairs in samples.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and operations")
    parser.add_argument(
        "--bits", type=int, nargs="+", default=[2048, 3072], help="modulus sizes to measure"
    )
    args = parser.parse_args()
    rounds, scale = (3, 2) if args.quick else (9, 5)

    load_before = os.getloadavg()
    print(f"# Paillier benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}")
    phe_version = getattr(phe, "__version__", "?")
    print(f"  machine: {machine()}; Python {platform.python_version()}, "
          f"gmpy2 {gmpy2.version()}, phe {phe_version}")
    print(f"  rounds {rounds}, {8 * scale} ops per batch (phe encrypt: {max(2, scale)})")
    results = {bits: bench_size(bits, rounds, scale) for bits in args.bits}
    load_after = os.getloadavg()
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"(1 min; 2 cores shared with other work)")
    print()
    print("| bits | operation | ours (ops/s) | phe (ops/s) | ratio ours/phe | target |")
    print("|---:|---|---:|---:|---:|---|")
    for bits, rows in results.items():
        for name, ours, theirs in rows:
            target = TARGETS.get(name) if bits == 3072 else None
            verdict = ""
            if target is not None:
                ratio = theirs / ours
                verdict = f">= {target:g}x: {'met' if ratio >= target else 'MISSED'}"
            print(
                f"| {bits} | {name} | {1 / ours:,.0f} | {1 / theirs:,.0f} "
                f"| {theirs / ours:.2f}x | {verdict} |"
            )


if __name__ == "__main__":
    main()
