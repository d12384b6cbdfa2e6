"""What the protocol reveals on purpose: table sizes, m, column counts and the model.

For the model, it also measures how far one person can move a published coefficient
(leaving each of a sample of persons out of a plaintext fit on the joined table).

    python simulations/disclosure.py [--rows 300] [--seed 0]
"""

from __future__ import annotations

import json

from mpcactors.analysis import attacks
from mpcactors.analysis.views import record_run
from mpcactors.testing import fast_config

import _common  # this folder; see _common.py


def main() -> None:
    _, hospital, insurer = _common.synthetic_tables(__doc__)
    run = record_run(hospital, insurer, fast_config(hospital, insurer))
    for d in attacks.disclosures(run):
        print(f"\n{d.item} (learnt by {', '.join(d.learned_by)}):")
        print(f"  value: {json.dumps(d.value, default=str)}")
        print(f"  {d.discloses}")


if __name__ == "__main__":
    main()
