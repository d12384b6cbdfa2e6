"""Two parties pooling their views: step 4 membership, step 7 shares, and after the run.

Shamir sharing with threshold 2 means any two parties reconstruct the joined table
during step 7 (as the paper says). After the run every share is deleted and only the
model remains, unless a party kept copies. A data party with the TTP learns which of its
rows are shared already in step 4.

    python simulations/coalitions.py [--rows 200] [--seed 0]
"""

from __future__ import annotations

from mpcactors.analysis import attacks
from mpcactors.analysis.attacks import AFTER_RUN
from mpcactors.analysis.views import record_run
from mpcactors.protocol.roster import DEFAULT_DATA_PARTIES, TTP
from mpcactors.testing import fast_config

import _common  # this folder; see _common.py

HOSPITAL, INSURER = DEFAULT_DATA_PARTIES


def main() -> None:
    _, hospital, insurer = _common.synthetic_tables(__doc__, rows=200)
    run = record_run(hospital, insurer, fast_config(hospital, insurer))
    print(f"{'coalition':18s} {'step 4 membership':>18s} {'during step 7':>14s} {'after the run':>14s} {'after, kept':>12s}")
    for pair in ((HOSPITAL, INSURER), (HOSPITAL, TTP), (INSURER, TTP)):
        data_party = next((p for p in pair if p != TTP), None) if TTP in pair else None
        membership = f"{attacks.coalition_membership(run, data_party).success_rate:.0%}" if data_party else "n/a"
        during = attacks.coalition_reconstruction(run, pair, 7).success_rate
        after = attacks.coalition_reconstruction(run, pair, AFTER_RUN).success_rate
        kept = attacks.coalition_reconstruction(run, pair, AFTER_RUN, retained=True).success_rate
        print(f"{'+'.join(pair):18s} {membership:>18s} {during:>14.0%} {after:>14.0%} {kept:>12.0%}")
    for role in (HOSPITAL, INSURER, TTP):
        alone = attacks.coalition_reconstruction(run, (role,), 7)
        print(f"{role} alone during step 7: {alone.success_rate:.0%} of the entries")


if __name__ == "__main__":
    main()
