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
from .data import PartyTable, check_binary, with_indicators
from .errors import ConfigError
from .plan import Plan, default_plan, indicator_columns
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
        columns: each data party's attribute names (its input's columns), in order, keyed
            by party name; the keys' order is the roster's order. The joined table has
            these and, per categorical column of the plan, its one-hot columns
            (:meth:`columns_of`).
        target: the default plan's lasso target; a column of exactly one party's table.
        compute: the two data parties that compute with the TTP in steps 7 and 8
            (default: the first two).
        key_bits: Paillier modulus size (:data:`mpcactors.crypto.paillier.SECURE_KEY_BITS`;
            test sizes only with ``allow_test_key_sizes``).
        params: fixed-point, mask and field parameters (:class:`Params`).
        min_intersection: abort cleanly if the intersection is smaller.
        chunk_rows: at most this many rows per bulk message (memory stays bounded).
        alpha: the default plan's lasso penalty, as scikit-learn's ``Lasso(alpha)``.
        max_iter: iteration cap of the default plan's lasso.
        deadlines: per-step timeout in seconds, keyed by step number.
        lasso: run step 8, the plan's analyses (False stops after step 7, e.g. for join
            benchmarks).
        id_fold: how ids are case-folded before hashing (:class:`~mpcactors.crypto.hashing.IdFold`);
            every data party must use the same, so it is part of the agreed parameters.
        plan: the study plan the parties signed off (:func:`mpcactors.plan.load_plan`,
            validated against these columns), or ``None`` for the default plan, which
            follows from the parameters above (:attr:`study_plan`).
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
    plan: Plan | None = None

    def __post_init__(self) -> None:
        columns = {str(party): tuple(names) for party, names in self.columns.items()}
        object.__setattr__(self, "columns", MappingProxyType(columns))
        object.__setattr__(self, "deadlines", MappingProxyType(dict(self.deadlines)))
        roster = Roster.of(tuple(columns), self.compute)
        object.__setattr__(self, "compute", roster.compute)
        allowed = paillier.allowed_key_bits(allow_insecure_test_size=self.allow_test_key_sizes)
        if self.key_bits not in allowed:
            raise ConfigError(f"key_bits must be one of {sorted(allowed)}, got {self.key_bits}")
        joined = self.input_columns
        if len(set(joined)) != len(joined):
            dup = sorted({c for c in joined if joined.count(c) > 1})
            raise ConfigError(f"column names must be unique across all parties; repeated: {dup}")
        if self.lasso and self.plan is None:
            if self.target not in joined:
                owned = ", ".join(f"{party}: {list(names)}" for party, names in columns.items())
                where = "neither party's" if len(columns) == 2 else "no party's"
                raise ConfigError(f"target column {self.target!r} is in {where} columns ({owned})")
            if len(joined) < 2:
                raise ConfigError("the lasso needs at least one feature besides the target")
        if self.plan is not None:
            encoded = self.joined_columns
            taken = sorted({c for c in encoded if encoded.count(c) > 1})
            if taken:
                raise ConfigError(f"the plan's one-hot columns {taken} have the names of input columns; rename those")
        if self.min_intersection < 1:
            raise ConfigError("min_intersection must be at least 1")
        if not 1 <= self.chunk_rows <= 65536:
            raise ConfigError("chunk_rows must be between 1 and 65536")
        if not self.alpha > 0:
            raise ConfigError("alpha must be positive")
        if self.max_iter < 1:
            raise ConfigError("max_iter must be positive")
        id_normaliser(self.id_fold)  # a ConfigError naming the allowed values
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
        for party in self.columns:
            if column in self.columns_of(party):
                return party
        raise KeyError(column)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The data parties' input columns, in roster order (what a plan names)."""
        return tuple(c for names in self.columns.values() for c in names)

    @property
    def joined_columns(self) -> tuple[str, ...]:
        """Columns of the joined table in its public order: each party's (:meth:`columns_of`), in roster order."""
        return tuple(c for party in self.columns for c in self.columns_of(party))

    @property
    def features(self) -> tuple[str, ...]:
        """The default plan's lasso features: every input column except the target."""
        return tuple(c for c in self.input_columns if c != self.target)

    def deadline(self, step: int) -> float:
        return float(self.deadlines.get(step, 600))

    def columns_of(self, party: str) -> tuple[str, ...]:
        """``party``'s columns in the joined table (none for the TTP): its input's, then the
        one-hot columns of its categorical columns (:meth:`indicators_of`)."""
        own = tuple(self.columns.get(party, ()))
        return own + tuple(c for column, levels in self.indicators_of(party).items() for c in indicator_columns(column, levels))

    def indicators_of(self, party: str) -> dict[str, tuple[int, ...]]:
        """``party``'s categorical columns in the plan, with their levels: the party
        one-hot encodes each before step 3 (:func:`mpcactors.data.with_indicators`)."""
        own = self.columns.get(party, ())
        if self.plan is None:  # the default plan counts no categorical column
            return {}
        return {c: levels for c, levels in self.plan.categorical_levels.items() if c in own}

    def encode_table(self, party: str, table: PartyTable) -> PartyTable:
        """``party``'s input table with the one-hot columns of its categorical columns
        appended (:meth:`indicators_of`), as it enters step 3; a table that has them
        already is returned as it is.

        Raises:
            InputError: a categorical column holds a value that is not a whole number, or
                a logistic regression's target a value that is not 0 or 1.
        """
        if self.plan is not None:
            check_binary(table, [c for c in self.plan.binary_columns if c in self.columns.get(party, ())], self.params)
        if tuple(table.columns) == self.columns_of(party):
            return table
        return with_indicators(table, self.indicators_of(party), indicator_columns, self.params)

    @property
    def study_plan(self) -> Plan:
        """The plan in force: :attr:`plan`, or the default plan of these parameters."""
        return default_plan(self) if self.plan is None else self.plan

    @property
    def plan_digest(self) -> bytes | None:
        """The signed-off plan's digest (the hello compares it); ``None`` for the default plan."""
        return None if self.plan is None else self.plan.digest
