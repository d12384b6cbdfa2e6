"""Several masked fixed-point values in one Paillier plaintext (steps 3 to 6).

A plaintext holds ``slots`` slots of ``params.slot_bits`` bits, slot ``i`` at bit
offset ``i * slot_bits`` (slot 0 in the least significant bits). A row of ``d``
values takes ``ceil(d / slots)`` plaintexts; the last one of a row holds the
remainder. The data owner packs ``v + offset`` per slot (:meth:`Packing.pack_values`),
the masking party packs ``2**mask_bits - r`` (:meth:`Packing.pack_masks`); the
homomorphic sum of the two encryptions decrypts to slots ``u = v + offset +
2**mask_bits - r``. With ``|v| < offset`` and ``0 <= r < 2**mask_bits``,

    2 <= u <= 2**mask_bits + 2*offset - 1 < 2**slot_bits,

so no carry or borrow crosses slots and :meth:`Packing.unpack_shares` reads off the
integer share ``s = u - offset - 2**mask_bits = v - r`` exactly.

With more than two data parties each of the owner's columns is masked by every other
data party (``maskers`` of them): the slot then holds ``v + offset + sum(2**mask_bits -
r_i)``, at most ``maskers * 2**mask_bits + 2*offset - 1``, so a slot grows by
``ceil(log2(maskers))`` bits and the share is ``v - sum(r_i)``. One masker is the
two-party layout above, unchanged. A packed plaintext
stays below ``2**(slots * slot_bits) <= 2**(modulus_bits - 2) <= n/2``, inside the
centred plaintext range (see :meth:`~mpcactors.crypto.fixedpoint.Params.slots`).

The bounds are the whole safety argument: a value out of range would silently
corrupt its neighbour, so packing validates every value and mask, and unpacking
rejects any slot outside the range above (a corrupted or mis-packed plaintext).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .fixedpoint import OutOfBoundError, Params
from .paillier import half_crt_plaintext_bits

__all__ = ["Packing"]


def _as_int_rows(rows: Any, what: str) -> list[list[int]]:
    """Rows as lists of Python ints; a numpy integer matrix is converted via tolist()."""
    dtype = getattr(rows, "dtype", None)
    if dtype is not None:
        if dtype.kind not in "iu" or getattr(rows, "ndim", 2) != 2:
            raise TypeError(f"{what} must be a 2-D integer matrix, got dtype {dtype}")
        return rows.tolist()  # type: ignore[no-any-return]
    out = []
    for row_index, row in enumerate(rows):
        try:
            out.append([operator.index(v) for v in row])
        except TypeError:
            raise TypeError(f"{what} row {row_index} holds a non-integer entry") from None
    return out


def _width(rows: list[list[int]], what: str) -> int:
    if not rows:
        return 0
    d = len(rows[0])
    for row_index, row in enumerate(rows):
        if len(row) != d:
            raise ValueError(f"{what} row {row_index} has {len(row)} entries, row 0 has {d}")
    return d


@dataclass(frozen=True, slots=True)
class Packing:
    """Packs rows of fixed-point values (or masks) into Paillier plaintexts.

    Attributes:
        params: the run's numeric parameters (slot width, offset, mask size).
        modulus_bits: bit length of the Paillier modulus ``n`` the plaintexts are for.
    """

    params: Params
    modulus_bits: int
    #: how many parties mask each value (the other data parties): 1 with two data parties
    maskers: int = 1

    def __post_init__(self) -> None:
        if self.maskers < 1:
            raise ValueError(f"a masked value needs at least one masker, got {self.maskers}")
        self.params.slots(self.modulus_bits)  # raises ConfigError if not one slot fits
        if self.slots < 1:
            raise ConfigError(
                f"a {self.modulus_bits}-bit Paillier modulus cannot hold one {self.slot_bits}-bit slot "
                f"({self.maskers} maskers)"
            )

    @classmethod
    def for_public_key(cls, params: Params, public: Any) -> Packing:
        """The packing for plaintexts of ``public`` (anything with an ``n`` attribute)."""
        return cls(params, int(public.n).bit_length())

    @property
    def slot_bits(self) -> int:
        """Bits per slot: the two-party slot, grown by ``ceil(log2(maskers))``."""
        return self.params.slot_bits + (self.maskers - 1).bit_length()

    @property
    def slots(self) -> int:
        """Values per plaintext."""
        return (self.modulus_bits - 2) // self.slot_bits

    def plaintexts_per_row(self, d: int) -> int:
        """Plaintexts one row of ``d`` values needs: ``ceil(d / slots)`` (at least 1)."""
        if d < 1:
            raise ValueError(f"a row needs at least one value, got d={d}")
        return -(-d // self.slots)

    def fits_half_crt(self, d: int) -> bool:
        """Whether masked rows of ``d`` values may be decrypted with half-CRT decryption.

        Each plaintext of such a row holds at most ``min(d, slots)`` slots, each below
        ``2**slot_bits`` (see the module docstring), so the decrypted sum of packed
        values and packed masks is non-negative and below
        ``2**(min(d, slots) * slot_bits)``. When that is at most
        ``2**half_crt_plaintext_bits(modulus_bits)`` the caller may pass
        ``below_half_p=True`` to :meth:`~mpcactors.crypto.paillier.SecretKey.decrypt_raw`.
        With the default parameters (86-bit slots): up to 17 values at 3072 bits, up
        to 11 at 2048 bits.

        Raises:
            ValueError: ``d < 1``.
        """
        if d < 1:
            raise ValueError(f"a row needs at least one value, got d={d}")
        used_bits = min(d, self.slots) * self.slot_bits
        return used_bits <= half_crt_plaintext_bits(self.modulus_bits)

    def _pack(self, rows: list[list[int]], d: int, shift: int) -> list[int]:
        """Pack ``entry + shift`` per slot, row-major; entries are already validated."""
        bits = self.slot_bits
        slots = self.slots
        out = []
        for row in rows:
            for start in range(0, d, slots):
                packed = 0
                for entry in reversed(row[start : start + slots]):
                    packed = (packed << bits) | (entry + shift)
                out.append(packed)
        return out

    def pack_values(self, rows: Sequence[Sequence[int]] | Any) -> list[int]:
        """Pack encoded signed values ``v`` (``|v| < offset``) as ``v + offset`` per slot.

        ``rows`` is a sequence of equal-length integer rows or a 2-D numpy integer
        matrix. Returns ``plaintexts_per_row(d)`` plaintexts per row, row-major.

        Raises:
            OutOfBoundError: a value has ``|v| >= offset`` (row and column named, not the value).
            TypeError: an entry is not an integer.
            ValueError: rows of different lengths.
        """
        int_rows = _as_int_rows(rows, "values")
        d = _width(int_rows, "values")
        limit = self.params.offset
        for row_index, row in enumerate(int_rows):
            for column, v in enumerate(row):
                if not -limit < v < limit:
                    raise OutOfBoundError(
                        f"value at row {row_index}, column {column} is outside the encoded "
                        f"bound |v| < 2**{self.params.value_bits - 1}"
                    )
        return self._pack(int_rows, d, limit) if d else []

    def pack_masks(self, masks: Sequence[Sequence[int]] | Any) -> list[int]:
        """Pack masks ``r`` in ``[0, 2**mask_bits)`` as ``2**mask_bits - r`` per slot.

        Same layout as :meth:`pack_values`, so the two plaintexts add slot by slot.

        Raises:
            OutOfBoundError: a mask is outside ``[0, 2**mask_bits)`` (position named).
        """
        int_rows = _as_int_rows(masks, "masks")
        d = _width(int_rows, "masks")
        top = 1 << self.params.mask_bits
        for row_index, row in enumerate(int_rows):
            for column, r in enumerate(row):
                if not 0 <= r < top:
                    raise OutOfBoundError(
                        f"mask at row {row_index}, column {column} is outside "
                        f"[0, 2**{self.params.mask_bits})"
                    )
        # 2**mask_bits - r == (-r) + 2**mask_bits
        return self._pack([[-r for r in row] for row in int_rows], d, top) if d else []

    def unpack_shares(self, plaintexts: Sequence[int], d: int) -> list[list[int]]:
        """Read the shares ``s = v - r`` out of decrypted sums of packed values and masks.

        ``plaintexts`` holds ``plaintexts_per_row(d)`` decrypted plaintexts per row,
        row-major, each the decryption of ``Enc(pack_values(x)) * Enc(pack_masks(r))``.
        Returns one list of ``d`` integers per row with ``s + r == v`` exactly.

        Raises:
            ValueError: the number of plaintexts is not a multiple of the per-row count,
                or a plaintext or slot lies outside what packing can produce (a corrupted
                or mis-packed plaintext; the message names its position, not its value).
        """
        per_row = self.plaintexts_per_row(d)
        if len(plaintexts) % per_row:
            raise ValueError(
                f"{len(plaintexts)} plaintexts do not split into rows of {per_row} plaintexts"
            )
        params = self.params
        bits = self.slot_bits
        slot_mask = (1 << bits) - 1
        slots = self.slots
        masks = self.maskers << params.mask_bits
        low = 1 + self.maskers
        high = masks + 2 * params.offset - 1
        shift = params.offset + masks
        rows: list[list[int]] = []
        row: list[int] = []
        for index, value in enumerate(plaintexts):
            packed = operator.index(value)
            first = (index % per_row) * slots
            count = min(slots, d - first)
            if not 0 <= packed < 1 << (count * bits):
                raise ValueError(f"plaintext {index} does not fit {count} packed slots")
            for slot in range(count):
                u = packed & slot_mask
                packed >>= bits
                if not low <= u <= high:
                    raise ValueError(
                        f"plaintext {index}, slot {slot} holds a value that no masked "
                        "packing can produce"
                    )
                row.append(u - shift)
            if index % per_row == per_row - 1:
                rows.append(row)
                row = []
        return rows

