"""Run configuration: the public parameters all three parties must agree on.

A :class:`RunConfig` holds only *public* metadata (column names, key size, bit
budgets, deadlines). It is what a party's TOML file (see :mod:`mpcactors.daemon`) and
the simulator's options both turn into, so the actors never care where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .crypto.fixedpoint import Params
from .errors import ConfigError

__all__ = ["DEFAULT_DEADLINES", "RunConfig"]

#: Seconds a party waits at each step before raising StepTimeout. Steps 3 to 6 carry the
#: Paillier work of the whole table, so they scale with the table size; see
#: :meth:`RunConfig.deadline`.
DEFAULT_DEADLINES: dict[int, float] = {1: 60, 2: 60, 3: 600, 4: 600, 5: 600, 6: 600, 7: 600, 8: 1800, 9: 600}


@dataclass(frozen=True)
class RunConfig:
    """Public parameters of one protocol run.

    Attributes:
        hospital_columns: attribute names of the hospital's table, in order.
        insurer_columns: attribute names of the insurer's table, in order.
        target: the regression target; a column of exactly one of the two tables.
        key_bits: Paillier modulus size (3072 default; 2048 allowed; 1024 only in tests).
        params: fixed-point, mask and field parameters (:class:`Params`).
        min_intersection: abort cleanly if the intersection is smaller.
        chunk_rows: at most this many rows per bulk message (memory stays bounded).
        alpha: the lasso penalty, as scikit-learn's ``Lasso(alpha)``.
        max_iter: iteration cap of the secure lasso.
        deadlines: per-step timeout in seconds.
        lasso: run step 8 (False stops after step 7, e.g. for join benchmarks).
    """

    hospital_columns: tuple[str, ...]
    insurer_columns: tuple[str, ...]
    target: str = "hospital_days"
    key_bits: int = 3072
    params: Params = field(default_factory=Params)
    min_intersection: int = 10
    chunk_rows: int = 4096
    alpha: float = 0.1
    max_iter: int = 1000
    deadlines: dict[int, float] = field(default_factory=lambda: dict(DEFAULT_DEADLINES))
    lasso: bool = True
    allow_test_key_sizes: bool = False

    def __post_init__(self) -> None:
        allowed = {2048, 3072} | ({1024} if self.allow_test_key_sizes else set())
        if self.key_bits not in allowed:
            raise ConfigError(f"key_bits must be one of {sorted(allowed)}, got {self.key_bits}")
        both = list(self.hospital_columns) + list(self.insurer_columns)
        if len(set(both)) != len(both):
            dup = sorted({c for c in both if both.count(c) > 1})
            raise ConfigError(f"column names must be unique across both parties; repeated: {dup}")
        if self.lasso:
            if self.target not in both:
                raise ConfigError(
                    f"target column {self.target!r} is in neither party's columns "
                    f"(hospital: {list(self.hospital_columns)}, insurer: {list(self.insurer_columns)})"
                )
            if len(both) < 2:
                raise ConfigError("the lasso needs at least one feature besides the target")
        if self.min_intersection < 1:
            raise ConfigError("min_intersection must be at least 1")
        if not 1 <= self.chunk_rows <= 65536:
            raise ConfigError("chunk_rows must be between 1 and 65536")
        if not self.alpha > 0:
            raise ConfigError("alpha must be positive")
        if self.max_iter < 1:
            raise ConfigError("max_iter must be positive")

    @property
    def target_owner(self) -> str:
        """``"hospital"`` or ``"insurer"``: whose table holds the target column."""
        return "hospital" if self.target in self.hospital_columns else "insurer"

    @property
    def joined_columns(self) -> tuple[str, ...]:
        """Columns of the joined table in its public order: hospital's, then insurer's."""
        return self.hospital_columns + self.insurer_columns

    @property
    def features(self) -> tuple[str, ...]:
        """The lasso's feature columns: every joined column except the target."""
        return tuple(c for c in self.joined_columns if c != self.target)

    def deadline(self, step: int) -> float:
        return float(self.deadlines.get(step, 600))

    def columns_of(self, role: str) -> tuple[str, ...]:
        if role == "hospital":
            return self.hospital_columns
        if role == "insurer":
            return self.insurer_columns
        return ()
