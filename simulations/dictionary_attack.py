"""The TTP's dictionary attack on hashed ids (step 4), with the protocol and with a kept key.

The TTP hashes every id of the public id space with every hash function it can build
(unkeyed SHA-256, an all-zero HMAC key, keys from step-2 messages it saw, keys handed to
it) and looks up the hashed ids it holds. With the protocol the step-2 key never reaches
it: it names nobody. When a data party does not delete the key and it reaches the TTP
(``variants.keep_hash_key``), it names everybody. A TTP colluding with a data party that
kept its step-2 messages does the same.

    python simulations/dictionary_attack.py [--rows 300] [--id-space 100000] [--seed 0]
"""

from __future__ import annotations

from mpcactors.analysis import attacks, variants
from mpcactors.analysis.views import record_run
from mpcactors.protocol.roster import DEFAULT_DATA_PARTIES, TTP
from mpcactors.testing import fast_config

import _common  # this folder; see _common.py

INSURER = DEFAULT_DATA_PARTIES[1]


def show(label: str, result: attacks.AttackResult) -> None:
    print(f"{label:55s} named correctly: {result.success_rate:6.1%} of {result.trials} hashed ids "
          f"(guessing {result.baseline:.2g}, bound {result.confidence_bound:.2g}) -> {result.verdict}")


def main() -> None:
    args, hospital, insurer = _common.synthetic_tables(__doc__, id_space=100_000)
    config = fast_config(hospital, insurer, lasso=False)

    honest = record_run(hospital, insurer, config, id_space=args.id_space)
    result = attacks.ttp_dictionary_attack(honest)
    print(f"dictionary: {result.details['dictionary']}")
    show("TTP alone, protocol as specified", result)
    show("insurer + TTP, insurer kept its step-2 messages",
         attacks.ttp_dictionary_attack(honest, attackers=(INSURER, TTP), retained=True, unkeyed=False))
    show("insurer + TTP, step-2 messages deleted",
         attacks.ttp_dictionary_attack(honest, attackers=(INSURER, TTP), retained=False, unkeyed=False))

    leaky = record_run(hospital, insurer, config, variant=variants.keep_hash_key(), id_space=args.id_space)
    show("TTP alone, the hashing key is kept and reaches it", attacks.ttp_dictionary_attack(leaky))


if __name__ == "__main__":
    main()
