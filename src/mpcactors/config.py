"""Run configuration: the public parameters all parties must agree on.

A :class:`RunConfig` holds only *public* metadata (the roster, column names, key size,
bit budgets, deadlines). It is what a party's TOML file (see :mod:`mpcactors.daemon`) and
the simulator's options both turn into, so the actors never care where it came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from .crypto import paillier
from .crypto.fixedpoint import Params
from .crypto.hashing import IdFold, id_normaliser
from .errors import ConfigError
from .protocol.roster import DEFAULT_DATA_PARTIES, Roster
from .protocol.steps import Step

__all__ = ["DEFAULT_DEADLINES", "RunConfig"]

#: Seconds a party waits at each step before raising StepTimeout. Steps 3 to 6 carry the
#: Paillier work of the whole table, so they get the most; step 8 iterates.
DEFAULT_DEADLINES: Mapping[int, float] = MappingProxyType(
    {int(step): 1800.0 if step == Step.ANALYSIS else 60.0 if step <= Step.KEYED_HASHING else 600.0
     for step in Step if step != Step.DONE}
)


@dataclass(frozen=True)
class RunConfig:
    """Public parameters of one protocol run.

    Attributes:
        columns: each data party's attribute names, in order, keyed by party name; the
            keys' order is the roster's order and the joined table's column order.
        target: the regression target; a column of exactly one party's table.
        compute: the two data parties that compute with the TTP in steps 7 and 8
            (default: the first two).
        key_bits: Paillier modulus size (:data:`mpcactors.crypto.paillier.SECURE_KEY_BITS`;
            test sizes only with ``allow_test_key_sizes``).
        params: fixed-point, mask and field parameters (:class:`Params`).
        min_intersection: abort cleanly if the intersection is smaller.
        chunk_rows: at most this many rows per bulk message (memory stays bounded).
        alpha: the lasso penalty, as scikit-learn's ``Lasso(alpha)``.
        max_iter: iteration cap of the secure lasso.
        deadlines: per-step timeout in seconds, keyed by step number.
        lasso: run step 8 (False stops after step 7, e.g. for join benchmarks).
        id_fold: how ids are case-folded before hashing (:class:`~mpcactors.crypto.hashing.IdFold`);
            every data party must use the same, so it is part of the agreed parameters.
        plan_digest: the SHA-256 digest of the study plan the parties signed off
            (:attr:`mpcactors.plan.Plan.digest`), or ``None`` for the default plan, which
            follows from the parameters above.
    """

    columns: Mapping[str, Sequence[str]]
    target: str = "hospital_days"
    compute: Sequence[str] | None = None
    key_bits: int = 3072
    params: Params = field(default_factory=Params)
    min_intersection: int = 10
    chunk_rows: int = 4096
    alpha: float = 0.1
    max_iter: int = 1000
    deadlines: Mapping[int, float] = field(default_factory=lambda: DEFAULT_DEADLINES)
    lasso: bool = True
    allow_test_key_sizes: bool = False
    id_fold: str = IdFold.CASEFOLD.value
    plan_digest: bytes | None = None

    def __post_init__(self) -> None:
        columns = {str(party): tuple(names) for party, names in self.columns.items()}
        object.__setattr__(self, "columns", MappingProxyType(columns))
        object.__setattr__(self, "deadlines", MappingProxyType(dict(self.deadlines)))
        roster = Roster.of(tuple(columns), self.compute)
        object.__setattr__(self, "compute", roster.compute)
        allowed = paillier.allowed_key_bits(allow_insecure_test_size=self.allow_test_key_sizes)
        if self.key_bits not in allowed:
            raise ConfigError(f"key_bits must be one of {sorted(allowed)}, got {self.key_bits}")
        joined = self.joined_columns
        if len(set(joined)) != len(joined):
            dup = sorted({c for c in joined if joined.count(c) > 1})
            raise ConfigError(f"column names must be unique across all parties; repeated: {dup}")
        if self.lasso:
            if self.target not in joined:
                owned = ", ".join(f"{party}: {list(names)}" for party, names in columns.items())
                where = "neither party's" if len(columns) == 2 else "no party's"
                raise ConfigError(f"target column {self.target!r} is in {where} columns ({owned})")
            if len(joined) < 2:
                raise ConfigError("the lasso needs at least one feature besides the target")
        if self.min_intersection < 1:
            raise ConfigError("min_intersection must be at least 1")
        if not 1 <= self.chunk_rows <= 65536:
            raise ConfigError("chunk_rows must be between 1 and 65536")
        if not self.alpha > 0:
            raise ConfigError("alpha must be positive")
        if self.max_iter < 1:
            raise ConfigError("max_iter must be positive")
        id_normaliser(self.id_fold)  # a ConfigError naming the allowed values
        if self.plan_digest is not None and len(self.plan_digest) != 32:
            raise ConfigError("plan_digest must be a SHA-256 digest (32 bytes)")
        object.__setattr__(self, "id_fold", IdFold(self.id_fold).value)

    @classmethod
    def for_parties(cls, *tables_columns: Sequence[str], **changes: object) -> RunConfig:
        """A config for the default data parties (``hospital``, ``insurer``), given their columns in order."""
        return cls(dict(zip(DEFAULT_DATA_PARTIES, tables_columns, strict=True)), **changes)  # type: ignore[arg-type]

    @property
    def roster(self) -> Roster:
        """The session's members: the data parties in :attr:`columns` order, and the TTP."""
        return Roster.of(tuple(self.columns), self.compute)

    @property
    def session_creator(self) -> str:
        """The party that draws the session id (the roster's first data party); the others learn it in the hello."""
        return self.roster.data_parties[0]

    @property
    def target_owner(self) -> str:
        """The data party whose table holds the target column."""
        return self.owner_of(self.target)

    def owner_of(self, column: str) -> str:
        """The data party whose table holds ``column``."""
        for party, names in self.columns.items():
            if column in names:
                return party
        raise KeyError(column)

    @property
    def joined_columns(self) -> tuple[str, ...]:
        """Columns of the joined table in its public order: each party's, in roster order."""
        return tuple(c for names in self.columns.values() for c in names)

    @property
    def features(self) -> tuple[str, ...]:
        """The lasso's feature columns: every joined column except the target."""
        return tuple(c for c in self.joined_columns if c != self.target)

    def deadline(self, step: int) -> float:
        return float(self.deadlines.get(step, 600))

    def columns_of(self, party: str) -> tuple[str, ...]:
        """``party``'s columns (none for the TTP)."""
        return tuple(self.columns.get(party, ()))
