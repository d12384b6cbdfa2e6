"""What each party learns with more than two data parties: every party alone, every pair.

The first two data parties compute with the TTP in steps 7 and 8; every other data party
is outside the computation: in step 7 it deals its additive share to the three compute
parties as Shamir shares and then holds nothing of the joined table, and in step 8 it
receives the model. No party alone beats guessing; a pair rebuilds the joined table in
step 7 only if it holds two of the three compute parties' Shamir shares.

    python simulations/k_parties.py [--parties 3] [--rows 200] [--seed 0]
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

from mpcactors.analysis import attacks
from mpcactors.analysis.attacks import AFTER_RUN
from mpcactors.analysis.views import party_view, record_run
from mpcactors.protocol.roster import TTP
from mpcactors.testing import fast_config

import _common  # this folder; see _common.py


def main() -> None:
    args, tables = _common.synthetic_tables_by_party(__doc__, rows=200, id_space=100_000, parties=3)
    first, second = list(tables.values())[:2]
    config = replace(fast_config(first, second), columns={name: t.columns for name, t in tables.items()})
    run = record_run(tables, config, id_space=args.id_space)
    print(f"data parties: {', '.join(run.data_parties)}; compute parties: {', '.join(run.roster.compute_parties)}; "
          f"m = {run.intersection_size}")

    print("\n== every party alone")
    for r in attacks.run_all(run, coalition_retained=False):
        if "+" not in r.party_or_coalition:
            print(f"  {r.name:28s} {r.party_or_coalition:9s} step {r.step}  success {r.success_rate:6.1%}  "
                  f"bound {r.confidence_bound:6.1%}  -> {r.verdict}")

    for role in run.outside:
        print(f"\n== {role} outside the computation")
        for step in (7, 8, 9):
            view = party_view(run, role, step)
            received = sorted({f"{e.kind} from {e.sender}" for e in view.received}) or ["nothing"]
            print(f"  step {step}: holds {', '.join(sorted(view.holds[role]))}; receives {', '.join(received)}")

    print("\n== every coalition of two")
    print(f"  {'coalition':18s} {'step 4 membership':>18s} {'during step 7':>14s} {'after the run':>14s}")
    for pair in combinations(run.roster.members, 2):
        data_party = next(p for p in pair if p != TTP) if TTP in pair else None
        membership = f"{attacks.coalition_membership(run, data_party).success_rate:.0%}" if data_party else "n/a"
        during = attacks.coalition_reconstruction(run, pair, 7).success_rate
        after = attacks.coalition_reconstruction(run, pair, AFTER_RUN).success_rate
        print(f"  {'+'.join(pair):18s} {membership:>18s} {during:>14.0%} {after:>14.0%}")


if __name__ == "__main__":
    main()
