"""Deliberately broken protocol variants: the controls of the leak analysis.

An attack that reports "no advantage" is only evidence if the same attack, on the
same data, reports success when the protection it tests is removed. Each variant
here removes exactly one protection, for one simulation only, by replacing one of the
run's :class:`~mpcactors.actors.Hooks` (the protocol's choices as values); nothing is
patched, so variants can run side by side:

=====================  =============================================  ==============================
variant                what breaks                                    caught by
=====================  =============================================  ==============================
``keep_hash_key``      a data party does not delete the step-2 key;   ``ttp_dictionary_attack``
                       it reaches the TTP (a side channel)
``forward_unmasked``   the TTP forwards the step-4 ciphertexts        ``masked_value_linking``
                       without adding the masks in step 6
``short_masks``        masks much narrower than ``value_bits +        ``membership_inference``
                       sigma`` (default: 16 attribute units)
``no_row_shuffle``     nobody shuffles rows (step 1, step 4), so      ``ttp_side_channel_inference``
                       the arrival order is the file's order
=====================  =============================================  ==============================

These functions exist for analysis and teaching only; nothing in the library
imports this module.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..actors import DEFAULT_HOOKS, Hooks
from ..crypto import hashing, paillier
from ..crypto.fixedpoint import Params
from ..data import PartyTable
from ..protocol.roster import TTP

__all__ = [
    "Variant",
    "forward_unmasked",
    "keep_hash_key",
    "no_row_shuffle",
    "short_masks",
    "sorted_table",
]


@dataclass(frozen=True)
class Variant:
    """One deliberately broken protocol.

    Attributes:
        name: short identifier (``"forward_unmasked"``).
        description: what is broken, in one sentence.
        caught_by: the attack that must detect it.
    """

    name: str
    description: str
    caught_by: str
    _hooks: Callable[[Any], Hooks] | None = None

    def hooks(self, run: Any) -> Hooks:
        """The run's hooks with this variant's one change (``run`` receives what leaks)."""
        return self._hooks(run) if self._hooks is not None else DEFAULT_HOOKS


def keep_hash_key() -> Variant:
    """The step-2 key survives "deletion" and reaches the TTP.

    Just before a data party destroys its key, a copy of the key's HMAC state (which is
    as good as the key: it is what hashing uses) goes to ``run.handed["ttp"]["hash_keys"]``,
    as if a careless backup or a log line carried it to the TTP.
    """

    def hooks(run: Any) -> Hooks:
        leaked: list[hashing.JointKey] = run.handed[TTP].setdefault("hash_keys", [])

        def before_destroy(role: str, name: str, key: Any) -> None:
            if name == "hash_key" and key._inner is not None and key._outer is not None:
                leaked.append(_key_from_state(key._inner.copy(), key._outer.copy()))

        return replace(DEFAULT_HOOKS, before_destroy=before_destroy)

    return Variant(
        "keep_hash_key",
        "the step-2 hashing key is not deleted: a copy reaches the TTP",
        "ttp_dictionary_attack",
        hooks,
    )


def _key_from_state(inner: Any, outer: Any) -> hashing.JointKey:
    key = object.__new__(hashing.JointKey)
    object.__setattr__(key, "_inner", inner)
    object.__setattr__(key, "_outer", outer)
    return key


def _unmasked(public_wire: dict[str, int], own: list[int], masks: list[list[int]]) -> list[int]:
    return paillier.rerandomize_raw(public_wire, own)


def forward_unmasked() -> Variant:
    """In step 6 the TTP only re-randomises the ciphertexts: it forgets the masks.

    The data party then decrypts its own joined values minus the constant
    ``2**mask_bits`` (the packing offset that the masks would have cancelled).
    """
    return Variant(
        "forward_unmasked",
        "the TTP forwards the data parties' ciphertexts in step 6 without adding the other party's masks",
        "masked_value_linking",
        lambda run: replace(DEFAULT_HOOKS, combine=_unmasked),
    )


def short_masks(bits: int | None = None) -> Variant:
    """Masks drawn from ``[0, 2**bits)`` instead of ``[0, 2**(value_bits + sigma))``.

    The default ``bits = frac_bits + 4`` makes a mask span only 16 units of an
    attribute (the protocol's span ``2**(int_bits + 1 + sigma)`` units), so ``x - r``
    still places ``x`` within 16 units: the kind of mistake a mis-set ``sigma`` or a
    mask drawn in real units instead of encoded ones would make.
    """

    def hooks(run: Any) -> Hooks:
        width = run.config.params.frac_bits + 4 if bits is None else bits

        def draw_masks(params: Params, count: int) -> list[int]:
            return [secrets.randbits(width) for _ in range(count)]

        return replace(DEFAULT_HOOKS, draw_masks=draw_masks)

    return Variant(
        "short_masks",
        f"the step-5 masks are {'frac_bits + 4' if bits is None else bits} bits wide instead of value_bits + sigma",
        "membership_inference",
        hooks,
    )


def _keep_order(items: list[Any]) -> None:
    return None


def no_row_shuffle() -> Variant:
    """Nobody shuffles: data parties send rows in file order, the TTP keeps join order."""
    return Variant(
        "no_row_shuffle",
        "rows are not shuffled before sending (step 1) nor after matching (step 4)",
        "ttp_side_channel_inference",
        lambda run: replace(DEFAULT_HOOKS, shuffle=_keep_order),
    )


def sorted_table(table: PartyTable, column: str) -> PartyTable:
    """The same table with its rows sorted by ``column`` (like an export sorted by age).

    Harmless under the protocol (step 1 shuffles); with :func:`no_row_shuffle` the
    order the TTP sees then carries the column's ranks.
    """
    order = np.argsort(table.values[:, table.columns.index(column)], kind="stable")
    return PartyTable(
        table.source,
        tuple(table.ids[i] for i in order.tolist()),
        table.columns,
        np.array(table.values[order]),
        table.dropped_missing,
    )
