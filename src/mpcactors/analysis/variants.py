"""Deliberately broken protocol variants: the controls of the leak analysis.

An attack that reports "no advantage" is only evidence if the same attack, on the
same data, reports success when the protection it tests is removed. Each variant
here removes exactly one protection, for one simulation only, by patching one seam
of the actor code while :func:`mpcactors.analysis.views.record` runs, and restores it
afterwards (also on error):

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

Patches are process-wide while installed: run variants one at a time, with an
``inline`` or ``thread`` executor (a ``process`` worker would not see the patch).
These functions exist for analysis and teaching only; nothing in the library
imports this module.
"""

from __future__ import annotations

import contextlib
import secrets
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..actors import party as party_module
from ..crypto import hashing, paillier
from ..crypto.fixedpoint import Params
from ..data import PartyTable
from ..protocol.steps import TTP

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
    _install: Any = None

    @contextlib.contextmanager
    def installed(self, run: Any) -> Iterator[None]:
        """Patch the seam for the duration of one recorded run."""
        with self._install(run):
            yield


@contextlib.contextmanager
def _patched(target: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, original)


def keep_hash_key() -> Variant:
    """The step-2 key survives "deletion" and reaches the TTP.

    ``JointKey.destroy`` is patched to copy the key's HMAC state (which is as good as
    the key: it is what hashing uses) into ``run.handed["ttp"]["hash_keys"]`` before
    destroying the object, as if a careless backup or a log line carried it to the TTP.
    """

    @contextlib.contextmanager
    def install(run: Any) -> Iterator[None]:
        leaked: list[hashing.JointKey] = run.handed[TTP].setdefault("hash_keys", [])
        original = hashing.JointKey.destroy

        def destroy(self: hashing.JointKey) -> None:
            if self._inner is not None and self._outer is not None:
                leaked.append(_key_from_state(self._inner.copy(), self._outer.copy()))
            original(self)

        with _patched(hashing.JointKey, "destroy", destroy):
            yield

    return Variant(
        "keep_hash_key",
        "the step-2 hashing key is not deleted: a copy reaches the TTP",
        "ttp_dictionary_attack",
        install,
    )


def _key_from_state(inner: Any, outer: Any) -> hashing.JointKey:
    key = object.__new__(hashing.JointKey)
    object.__setattr__(key, "_inner", inner)
    object.__setattr__(key, "_outer", outer)
    return key


def forward_unmasked() -> Variant:
    """In step 6 the TTP only re-randomises the ciphertexts: it forgets the masks.

    The data party then decrypts its own joined values minus the constant
    ``2**mask_bits`` (the packing offset that the masks would have cancelled).
    """

    def unmasked(public_wire: dict[str, int], own: list[int], masks: list[int]) -> list[int]:
        return paillier.rerandomize_raw(public_wire, own)

    @contextlib.contextmanager
    def install(run: Any) -> Iterator[None]:
        with _patched(party_module, "_mask_and_rerandomise", unmasked):
            yield

    return Variant(
        "forward_unmasked",
        "the TTP forwards the data parties' ciphertexts in step 6 without adding the other party's masks",
        "masked_value_linking",
        install,
    )


def short_masks(bits: int | None = None) -> Variant:
    """Masks drawn from ``[0, 2**bits)`` instead of ``[0, 2**(value_bits + sigma))``.

    The default ``bits = frac_bits + 4`` makes a mask span only 16 units of an
    attribute (the protocol's span ``2**(int_bits + 1 + sigma)`` units), so ``x - r``
    still places ``x`` within 16 units: the kind of mistake a mis-set ``sigma`` or a
    mask drawn in real units instead of encoded ones would make.
    """

    @contextlib.contextmanager
    def install(run: Any) -> Iterator[None]:
        width = run.config.params.frac_bits + 4 if bits is None else bits

        def masks(self: Params, count: int) -> list[int]:
            return [secrets.randbits(width) for _ in range(count)]

        with _patched(Params, "masks", masks):
            yield

    return Variant(
        "short_masks",
        f"the step-5 masks are {'frac_bits + 4' if bits is None else bits} bits wide instead of value_bits + sigma",
        "membership_inference",
        install,
    )


class _NoShuffle:
    def shuffle(self, items: list[Any]) -> None:
        return None


def no_row_shuffle() -> Variant:
    """Nobody shuffles: data parties send rows in file order, the TTP keeps join order."""

    @contextlib.contextmanager
    def install(run: Any) -> Iterator[None]:
        shim = types.ModuleType("secrets")
        shim.__dict__.update({k: v for k, v in vars(secrets).items() if not k.startswith("__")})
        shim.SystemRandom = _NoShuffle  # type: ignore[attr-defined]
        with _patched(party_module, "secrets", shim):
            yield

    return Variant(
        "no_row_shuffle",
        "rows are not shuffled before sending (step 1) nor after matching (step 4)",
        "ttp_side_channel_inference",
        install,
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
