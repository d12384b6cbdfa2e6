"""Can the TTP infer attribute values from sizes, timing or order of what it receives?

Ciphertexts travel at a fixed width and every party shuffles its rows before sending, so
no observable predicts an attribute, even for an attacker tuned on the true values. With
a hospital export sorted by age and no shuffling (``variants.no_row_shuffle``), the
arrival order gives age away.

    python simulations/ttp_side_channels.py [--rows 300] [--seed 0]
"""

from __future__ import annotations

from mpcactors.analysis import attacks, variants
from mpcactors.analysis.views import record_run
from mpcactors.testing import fast_config

import _common  # this folder; see _common.py


def main() -> None:
    _, hospital, insurer = _common.synthetic_tables(__doc__)
    config = fast_config(hospital, insurer, lasso=False)
    for variant in (None, variants.no_row_shuffle()):
        table = hospital if variant is None else variants.sorted_table(hospital, "age")
        run = record_run(table, insurer, config, variant=variant)
        r = attacks.ttp_side_channel_inference(run)
        print(f"\n== {run.variant_name} (hospital file sorted by age: {variant is not None})")
        print(f"  best rule: {r.details['best_rule']}")
        print(f"  success {r.success_rate:.1%}  guessing {r.baseline:.0%}  bound {r.confidence_bound:.1%}  -> {r.verdict}")
        print(f"  constant for every row: {', '.join(r.details['constant_observables'])}")


if __name__ == "__main__":
    main()
