"""Where step 8's rounds go: per lasso phase, per engine primitive, per iteration.

Usage::

    python benchmarks/step8_rounds.py                 # the pilot's joined table (5,000 rows per party)
    python benchmarks/step8_rounds.py --rows 1000     # smaller (the round counts do not depend on m)

Runs the secure lasso in one process (``mpc.engine.run_local``, three engines) on Shamir
shares of the pilot's plaintext join (``mpcactors.synth``, the data ``pilot.py`` and
``wan.py`` use; owners, private scales, alpha and max_iter as a daemon run has them).
Every exchange is attributed to the chain of engine primitives it happens in (``ltz >
_bit_lt > mul``, ``trunc_fast > open``, ...) by wrapping the primitives of an
:class:`~mpcactors.mpc.engine.Engine` subclass in this script; the engine itself is not
changed, and the program's own count (``Engine.statistics()``, per label) is printed next
to it as a cross-check. A round here is one exchange of the program: every party takes the
same sequence, so it is the number a network's one-way latency multiplies.

Prints markdown tables (phase x primitive, one iteration's rounds in order, the
convergence check's) and one JSON line with the totals.
"""

from __future__ import annotations

import argparse
import inspect
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

from mpcactors.crypto import shamir  # noqa: E402
from mpcactors.crypto.fixedpoint import Params  # noqa: E402
from mpcactors.data import plaintext_join  # noqa: E402
from mpcactors.mpc.engine import Engine, run_local  # noqa: E402
from mpcactors.mpc.lasso import CHECK_EVERY, lasso_fit  # noqa: E402
from mpcactors.synth import cohort_tables_by_party, make_cohort  # noqa: E402

#: the engine's programs that communicate; each call pushes (name, label) while it runs
PRIMITIVES = (
    "input", "open", "reveal", "reshare", "mul", "dot", "random_bits", "random_bit_pairs", "prefetch_bits",
    "_fill_bits", "trunc", "trunc_fast", "ltz", "dot_ltz", "dot_trunc_ltz", "_bit_lt", "mul_trunc", "dot_trunc",
    "pow2_normalise",
    "reciprocal", "inv_sqrt",
)
#: the labels the lasso's loop passes (everything else is one-off)
LOOP_LABELS = ("iterate", "soft", "check", "converged")


class CountingEngine(Engine):
    """An engine that records, per exchange, the primitive calls it happens in.

    Under :meth:`Engine.together` the two programs' exchanges travel as one round: the
    second program's exchanges are recorded as riding along (not a round of their own)
    while the first program still runs, so ``rounds`` counts the exchanges the parties
    really send; the round is attributed to the first program's chain."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stack: tuple[tuple[str, str], ...] = ()
        self.riding = False
        #: per exchange: (primitive chain, label, rides along with another program's round)
        self.trace: list[tuple[tuple[tuple[str, str], ...], str, bool]] = []

    def _exchange(self, send: Any, expect: Any, label: str) -> Generator[Any, Any, Any]:
        self.trace.append((self.stack, label, self.riding))
        return (yield from super()._exchange(send, expect, label))

    def together(self, first: Any, second: Any) -> Generator[Any, Any, Any]:
        first_done = [False]

        def lead() -> Generator[Any, Any, Any]:
            try:
                return (yield from first)
            finally:
                first_done[0] = True

        ride = _resumed_with(self, "riding", lambda outer: outer or not first_done[0], second)
        return (yield from super().together(lead(), ride))


def _resumed_with(engine: CountingEngine, attr: str, state: Any, program: Any) -> Generator[Any, Any, Any]:
    """Pass ``program``'s exchanges through with ``engine.<attr>`` set to ``state(outer value)``
    around every resume: interleaved programs (``together``) each keep their own state."""
    value = None
    while True:
        outer = getattr(engine, attr)
        setattr(engine, attr, state(outer))
        try:
            exchange = program.send(value)
        except StopIteration as stop:
            return stop.value
        finally:
            setattr(engine, attr, outer)
        value = yield exchange


def _wrap(name: str) -> None:
    original = getattr(Engine, name)
    signature = inspect.signature(original)

    def wrapper(self: CountingEngine, *args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        frame = (name, str(bound.arguments.get("label", "")))
        chain: list[tuple[tuple[str, str], ...]] = []  # the caller's chain and this call, fixed at the first resume

        def state(outer: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
            if not chain:
                chain.append((*outer, frame))
            return chain[0]

        return (yield from _resumed_with(self, "stack", state, original(self, *args, **kwargs)))

    wrapper.__name__ = name
    setattr(CountingEngine, name, wrapper)


for _name in PRIMITIVES:
    _wrap(_name)


def pilot_problem(rows: int, seed: int, params: Params) -> dict[str, Any]:
    """The pilot's joined table as a daemon run's step 8 sees it: columns, owners, scales."""
    cohort = make_cohort(rows, 0.5, seed, hospital_attributes=15, insurer_attributes=15, missing_rate=0.0, parties=2,
                         intervention=False)
    tables = cohort_tables_by_party(cohort, params=params)
    hospital, insurer = tables["hospital"], tables["insurer"]
    columns, matrix = plaintext_join(hospital, insurer)
    target = columns.index("hospital_days")
    features = [c for c in range(len(columns)) if c != target]
    owner_of = {c: 1 for c in hospital.columns} | {c: 2 for c in insurer.columns}
    scale = float(1 << params.frac_bits)

    def max_abs(table: Any, column: str) -> float:
        top = float(np.abs(table.values[:, table.columns.index(column)]).max()) / scale
        return top if top > 0 else 1.0

    d = len(features)
    scales: dict[int, dict[int, float]] = {1: {}, 2: {}, 3: {}}
    for j, c in enumerate(features):
        owner = owner_of[columns[c]]
        scales[owner][j] = max_abs(hospital if owner == 1 else insurer, columns[c])
    scales[2][d] = max_abs(insurer, "hospital_days")
    return {
        "x": matrix[:, features].tolist(), "y": matrix[:, target].tolist(), "d": d,
        "owners": [owner_of[columns[c]] for c in features], "scales": scales,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--max-iter", type=int, default=1000)
    args = parser.parse_args()

    params = Params()
    problem = pilot_problem(args.rows, args.seed, params)
    x, y, d = problem["x"], problem["y"], problem["d"]
    m = len(y)
    p = params.prime
    flat = shamir.share([v for row in x for v in row] + y, random.Random(args.seed), p)
    engines = {i: CountingEngine(i, params, b"step8 rounds") for i in (1, 2, 3)}
    run_local({i: e.setup() for i, e in engines.items()})
    for e in engines.values():
        e.trace.clear()
        e._stats.clear()  # count step 8 only (setup is step 7's)
    started = time.perf_counter()
    results = run_local({
        i: lasso_fit(
            engines[i], [flat[i][r * d : (r + 1) * d] for r in range(m)], flat[i][m * d :], m=m, d=d,
            owners=problem["owners"], scales=problem["scales"][i], alpha=args.alpha, max_iter=args.max_iter,
            check_every=CHECK_EVERY, target_owner=2,
        )
        for i in (1, 2, 3)
    })
    seconds = time.perf_counter() - started
    result = results[1]

    def phase(stack: tuple[tuple[str, str], ...], label: str) -> str:
        return stack[0][1] if stack else label

    def chain(stack: tuple[tuple[str, str], ...]) -> str:
        names = [n for n, _ in stack]
        # the pool refill happens inside whichever call ran it dry: name it on its own
        if "prefetch_bits" in names:
            return "prefetch_bits (pool refill ahead)"
        if "random_bits" in names or "random_bit_pairs" in names:
            return f"{names[0]} > random_bits (pool refill)"
        return " > ".join(names) or "-"

    full = engines[1].trace
    assert all(len(e.trace) == len(full) for e in engines.values()), "parties took different round counts"
    riding = Counter((phase(s, lbl), chain(s)) for s, lbl, rides in full if rides)
    trace = [(s, lbl) for s, lbl, rides in full if not rides]
    iterations = result.iterations
    checks = -(-iterations // CHECK_EVERY)

    by_phase = Counter(phase(s, lbl) for s, lbl in trace)
    by_chain = Counter((phase(s, lbl) in LOOP_LABELS, phase(s, lbl), chain(s)) for s, lbl in trace)
    loop = sum(n for (inside, _, _), n in by_chain.items() if inside)
    one_off = len(trace) - loop

    stats = engines[1].statistics()
    print(f"# Step 8 rounds, {common.now()}: {args.rows:,} rows per party (m = {m:,}), d = {d}, "
          f"{iterations} iterations ({checks} checks), alpha {args.alpha}; commit {common.git_commit()}; "
          f"{seconds:.1f} s in one process")
    print(f"\nrounds: {len(trace)} = {one_off} one-off + {loop} in the loop "
          f"({loop / iterations:.2f} per iteration, checks included)\n")
    rows = [[("loop" if inside else "one-off"), ph, ch, n, f"{n / iterations:.2f}" if inside else "-"]
            for (inside, ph, ch), n in sorted(by_chain.items(), key=lambda kv: (kv[0][0], -kv[1]))]
    print(common.markdown_table(["part", "phase (label)", "primitive chain", "rounds", "per iteration"], rows,
                                "lllrr"))
    # one iteration in the middle of the run, and one check, in order
    first_iterate = [k for k, (s, lbl) in enumerate(trace) if phase(s, lbl) == "iterate"]
    mid = first_iterate[len(first_iterate) // 2 - (len(first_iterate) // 2) % 2]
    sequence = []
    for s, lbl in trace[mid:]:
        if sequence and phase(s, lbl) == "iterate" and sequence[-1][0] != "iterate":
            break
        sequence.append((phase(s, lbl), chain(s)))
    print("\none iteration, in order (round: phase, primitive chain):\n")
    for k, (ph, ch) in enumerate(sequence, 1):
        print(f"{k:3d}  {ph:10s} {ch}")
    print("\nexchanges riding along with another program's rounds (Engine.together), not rounds of their own:\n")
    print(common.markdown_table(["phase (label)", "primitive chain", "exchanges"],
                                [[ph, ch, n] for (ph, ch), n in sorted(riding.items(), key=lambda kv: -kv[1])],
                                "llr"))
    print("\nEngine.statistics() of party 1, per label (rounds, bytes sent):\n")
    print(common.markdown_table(["label", "rounds", "bytes sent"],
                                [[lbl, s["rounds"], f"{s['bytes']:,}"] for lbl, s in stats.items()]))
    print(json.dumps({
        "rows": args.rows, "m": m, "d": d, "iterations": iterations, "checks": checks,
        "rounds": len(trace), "one_off": one_off, "loop": loop,
        "statistics_rounds": sum(v["rounds"] for v in stats.values()),
        "by_phase": dict(by_phase), "engine_statistics_rounds": {k: v["rounds"] for k, v in stats.items()},
        "r2": result.r2,
    }))


if __name__ == "__main__":
    main()
