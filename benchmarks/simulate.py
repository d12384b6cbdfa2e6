"""The one-process benchmark: ``mpcactors simulate --rows N --verify`` at 3072 and 2048 bits.

Runs the real command in a subprocess (so peak memory is the whole simulation's,
three parties in one process), and prints per step the slowest party's seconds, the
bytes sent by all parties, plus wall time and peak RSS. The reference is the Paillier
work alone, measured in the same run: the same number of encryptions, decryptions and
re-randomisations done back to back on one core with the library's own primitives.

    python benchmarks/simulate.py [--rows 10000] [--bits 3072 2048] [--executor inline]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict

from _common import machine_line  # benchmarks/ is on sys.path when run as a script


def run_simulation(rows: int, bits: int, executor: str) -> tuple[dict, float, float]:
    command = [sys.executable, "-m", "mpcactors", "simulate", "--rows", str(rows), "--key-bits", str(bits),
               "--verify", "--json", "--executor", executor]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if completed.returncode != 0:
        raise SystemExit(f"simulate failed ({completed.returncode}): {completed.stderr[-2000:]}")
    # ru_maxrss of children is the max over all children so far; runs go largest first
    return json.loads(completed.stdout), wall, max(peak_kib, before) / 1024


def paillier_reference(doc: dict, bits: int) -> float:
    """Seconds of one core for the run's Paillier work alone (encrypt, re-randomise, decrypt)."""
    from mpcactors.crypto import paillier

    rows = doc["rows"]
    m = doc["intersection_size"]
    encryptions = rows["hospital"] + rows["insurer"] + 2 * m  # own rows, then masks
    rerandomisations = 2 * m
    decryptions = 2 * m
    public, secret = paillier.generate_keypair(bits, context=b"benchmark")
    sample = 200
    wire = public.to_wire()
    paillier.encrypt_raw(wire, [1])  # build the fixed-base table outside the timing
    started = time.perf_counter()
    ciphertexts = paillier.encrypt_raw(wire, list(range(sample)))
    t_enc = (time.perf_counter() - started) / sample
    started = time.perf_counter()
    paillier.rerandomize_raw(wire, ciphertexts)
    t_rr = (time.perf_counter() - started) / sample
    started = time.perf_counter()
    secret.decrypt_raw(ciphertexts)
    t_dec = (time.perf_counter() - started) / sample
    return encryptions * t_enc + rerandomisations * t_rr + decryptions * t_dec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--bits", type=int, nargs="+", default=[3072, 2048])
    parser.add_argument("--executor", default="inline", choices=["inline", "thread", "process"])
    args = parser.parse_args()
    print(f"# mpcactors simulate --rows {args.rows} --verify --executor {args.executor}")
    print(f"machine: {machine_line()}; date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load average before: {os.getloadavg()[0]:.2f}\n")
    for bits in args.bits:
        doc, wall, peak_mib = run_simulation(args.rows, bits, args.executor)
        seconds: dict[int, float] = defaultdict(float)
        sent: dict[int, int] = defaultdict(int)
        for entry in doc["steps"]:
            seconds[entry["step"]] = max(seconds[entry["step"]], entry["seconds"])
            sent[entry["step"]] += entry["bytes_sent"]
        reference = paillier_reference(doc, bits)
        print(f"## {bits}-bit keys: m = {doc['intersection_size']}, verified = {doc['verified']}\n")
        print("| step | seconds (slowest party) | bytes sent (all parties) |")
        print("|---|---:|---:|")
        for step in sorted(seconds):
            print(f"| {step} | {seconds[step]:.2f} | {sent[step]:,} |")
        print(f"\nwall time {wall:.1f} s (protocol {doc['seconds']:.1f} s); peak memory {peak_mib:.0f} MiB; "
              f"Paillier work alone on one core (same run): {reference:.1f} s; "
              f"ratio protocol / Paillier work = {doc['seconds'] / reference:.2f}\n")


if __name__ == "__main__":
    main()
