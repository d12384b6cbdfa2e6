"""Differencing: two ``describe`` outputs over the same rows that together give a suppressed count.

A plan's describe analyses all run over the same rows (the whole intersection). When
they count one categorical column over different level sets, a level declared in one
only is part of the other's :data:`~mpcactors.plan.OTHER` cell, and the opened cells of
the two are linear equations in the same unknown counts: solving them can give a count
that ``min_cell`` suppressed in both. :func:`differencing_attack` plays a recipient of
both outputs: it sets up every equation the opened cells (and the public ``m``) give and
returns every suppressed cell they determine exactly. :func:`run_describe_pair` runs
the two analyses for real (``describe_fit`` on Shamir shares, three local engines) so
the attack works on what is actually opened. ``Plan.warnings`` names such pairs before
anything runs (rule 1); see ``docs/threat-model.md``.

Example (``min_cell = 10``; the true counts of levels 1, 2, 3 are 40, 4, 30, none
outside): ``[1, 2, 3]`` opens 1 and ``other`` (2 is small, 3 its complement), ``[1, 3]``
opens 1, 3 and ``other`` = 4 + 0: level 2's count is ``other`` of the second minus
``other`` of the first.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...crypto import shamir
from ...crypto.fixedpoint import Params
from ...mpc.describe import Description, LevelCount, describe_fit
from ...mpc.engine import Engine, run_local
from ...plan import OTHER

__all__ = ["Differencing", "differencing_attack", "run_describe_pair"]

#: The unknown "rows whose value neither analysis declares".
_OUTSIDE = ("outside both",)


@dataclass(frozen=True)
class Differencing:
    """What two describe outputs of one column give away.

    Attributes:
        column: the categorical column.
        recovered: ``(analysis index 0 or 1, level) -> count`` for every cell suppressed
            in that analysis whose count the two outputs and ``m`` determine exactly.
        hidden: the suppressed cells they do not determine.
        levels: ``level -> count`` for every declared level whose own count (not a sum
            with others) the equations determine, suppressed or not.
    """

    column: str
    recovered: dict[tuple[int, Hashable], int]
    hidden: tuple[tuple[int, Hashable], ...]
    levels: dict[Hashable, int]

    def document(self) -> dict[str, Any]:
        return {"column": self.column,
                "recovered": [{"analysis": a, "level": str(level), "count": c} for (a, level), c in self.recovered.items()],
                "hidden": [{"analysis": a, "level": str(level)} for a, level in self.hidden],
                "levels": {str(level): c for level, c in self.levels.items()}}


def _cells(counts: Sequence[LevelCount], atoms: list[Hashable]) -> list[tuple[Hashable, np.ndarray, int | None]]:
    """Each cell of one output as (level, which unknowns it sums, opened count or None)."""
    declared = {c.level for c in counts if c.level != OTHER}
    out = []
    for cell in counts:
        if cell.level == OTHER:
            row = np.array([1.0 if a not in declared else 0.0 for a in atoms])
        else:
            row = np.array([1.0 if a == cell.level else 0.0 for a in atoms])
        out.append((cell.level, row, cell.count))
    return out


def differencing_attack(m: int, column: str, first: Sequence[LevelCount], second: Sequence[LevelCount], *,
                        closed: bool = False) -> Differencing:
    """Solve the two outputs' opened cells of ``column`` (and the row count ``m``) for the suppressed ones.

    ``closed``: the attacker knows that no value lies outside both level sets (a public
    code list, e.g. NYHA classes 1 to 4): one more equation.

    Unknowns: the count of every level declared in either output, and of the rows
    outside both. A cell is determined iff its indicator lies in the row space of the
    equations (it is orthogonal to their null space); its count is then the exact
    integer the least-squares solution rounds to.
    """
    levels = list(dict.fromkeys(c.level for c in (*first, *second) if c.level != OTHER))
    atoms: list[Hashable] = [*levels, _OUTSIDE]
    cells = [(k, *cell) for k, counts in enumerate((first, second)) for cell in _cells(counts, atoms)]
    rows = [row for _, _, row, count in cells if count is not None] + [np.ones(len(atoms))]
    values = [float(count) for _, _, _, count in cells if count is not None] + [float(m)]
    if closed:
        rows.append(np.eye(len(atoms))[-1])
        values.append(0.0)
    a, b = np.vstack(rows), np.array(values)
    solution, *_ = np.linalg.lstsq(a, b, rcond=None)
    _, singular, vt = np.linalg.svd(a)
    rank = int(np.sum(singular > 1e-9 * singular[0]))
    null = vt[rank:]  # a basis of the null space: what the equations leave free

    def determined(row: np.ndarray) -> bool:
        return null.size == 0 or bool(np.allclose(null @ row, 0.0, atol=1e-9))

    recovered: dict[tuple[int, Hashable], int] = {}
    hidden = []
    for k, level, row, count in cells:
        if count is None and determined(row):
            recovered[(k, level)] = int(round(float(row @ solution)))
        elif count is None:
            hidden.append((k, level))
    unit = np.eye(len(atoms))
    found = {level: int(round(float(solution[j]))) for j, level in enumerate(levels) if determined(unit[j])}
    return Differencing(column, recovered, tuple(hidden), found)


def run_describe_pair(
    codes: Sequence[int], first_levels: Sequence[int], second_levels: Sequence[int], *,
    min_cell: int, column: str = "c", params: Params | None = None, seed: int = 0,
) -> tuple[Description, Description, list[list[tuple[str, int]]]]:
    """Run two describe analyses of one integer-coded column for real and return what they open.

    The owner one-hot encodes ``codes`` over each level set plus :data:`OTHER` (as the
    plan's indicator columns are); the indicators are Shamir-shared and
    :func:`~mpcactors.mpc.describe.describe_fit` runs at three local engines. Returns
    both descriptions (checked identical at the three parties) and, per analysis, the
    engine's ``revealed`` record (label, count): everything that was opened.
    """
    params = params or Params()
    rng = random.Random(seed)
    m = len(codes)
    outputs: list[Description] = []
    revealed: list[list[tuple[str, int]]] = []
    for number, levels in enumerate((first_levels, second_levels)):
        declared = list(levels)
        flags = [[1 if code == level else 0 for level in declared] + [0 if code in declared else 1] for code in codes]
        width = len(declared) + 1
        flat = shamir.share([v for row in flags for v in row], rng, params.prime)
        shares = {i: [flat[i][r * width:(r + 1) * width] for r in range(m)] for i in (1, 2, 3)}
        engines = {i: Engine(i, params, f"differencing {number}".encode()) for i in (1, 2, 3)}
        run_local({i: e.setup() for i, e in engines.items()})
        results = run_local({
            i: describe_fit(engines[i], [[] for _ in range(m)], m=m, columns=[], indicators=shares[i],
                            categorical={column: [*declared, OTHER]}, min_cell=min_cell, indicator_frac_bits=0)
            for i in (1, 2, 3)
        })
        if not results[1] == results[2] == results[3]:
            raise AssertionError("the three parties opened different descriptions")
        outputs.append(results[1])
        revealed.append([(label, int(count)) for label, count in engines[1].revealed])
    return outputs[0], outputs[1], revealed
