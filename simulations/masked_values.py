"""What a data party can learn from the masked values it decrypts in step 6.

Two attacks: linking each decrypted row to the own input row it came from, and telling
which own rows are in the intersection. With fresh full-width masks both stay at the
level of guessing. They succeed when the TTP forgets the masks
(``variants.forward_unmasked``) or when the masks are too narrow (``variants.short_masks``).

    python simulations/masked_values.py [--rows 300] [--seed 0]
"""

from __future__ import annotations

from mpcactors.analysis import attacks, variants
from mpcactors.analysis.views import record_run
from mpcactors.protocol.roster import DEFAULT_DATA_PARTIES
from mpcactors.testing import fast_config

import _common  # this folder; see _common.py

HOSPITAL, INSURER = DEFAULT_DATA_PARTIES


def main() -> None:
    _, hospital, insurer = _common.synthetic_tables(__doc__)
    config = fast_config(hospital, insurer, lasso=False)
    for variant in (None, variants.forward_unmasked(), variants.short_masks()):
        run = record_run(hospital, insurer, config, variant=variant)
        print(f"\n== {run.variant_name}" + (f": {variant.description}" if variant else ""))
        for role in (HOSPITAL, INSURER):
            for attack in (attacks.masked_value_linking, attacks.membership_inference):
                r = attack(run, role)
                print(f"  {r.name:22s} {role:9s} success {r.success_rate:6.1%}  guessing {r.baseline:6.1%}  "
                      f"bound {r.confidence_bound:6.1%}  -> {r.verdict}")


if __name__ == "__main__":
    main()
