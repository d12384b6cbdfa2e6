"""Local simulation: every party of a session in one trio run, over in-memory links.

The links encode every message to msgpack bytes (as TLS would), so a simulation
exercises the real codec and can record a byte-exact transcript. The optional *god
view* (:class:`GodView`) is for teaching and testing only: it collects what each
party holds, reconstructs the Shamir-shared table and compares it with the plaintext
join. It exists only here; a deployed daemon has no way to see other parties' state.
"""

from __future__ import annotations

import secrets
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from .actors import DEFAULT_HOOKS, Executor, Hooks, PartyResult, run_party
from .actors.failures import first_cause
from .config import RunConfig
from .crypto import shamir
from .data import PartyTable, plaintext_join
from .protocol.roster import TTP
from .transport.base import Recorder
from .transport.memory import memory_mesh

__all__ = ["GodView", "Simulation", "simulate"]


class GodView:
    """Simulation-only observer of every party (never available to a daemon).

    Keeps *copies* of what parties hold (they clear their own lists on deletion) and
    only weak references to key objects, so it cannot keep a deleted key alive.
    """

    def __init__(self, *, keep: Callable[[str, int, str], bool] | None = None) -> None:
        self.held: dict[str, dict[str, Any]] = defaultdict(dict)
        self.held_at: dict[str, dict[str, int]] = defaultdict(dict)
        self.keys: list[tuple[str, str, weakref.ref[Any]]] = []
        self.destroyed: list[tuple[str, str, bool]] = []
        self._keep = keep

    def hold(self, role: str, step: int, name: str, value: Any) -> None:
        if self._keep is not None and not self._keep(role, step, name):
            return
        self.held[role][name] = list(value) if isinstance(value, list) else value
        self.held_at[role][name] = step

    def key_created(self, role: str, name: str, key: Any) -> None:
        self.keys.append((role, name, weakref.ref(key)))

    def key_destroyed(self, role: str, name: str, key: Any) -> None:
        self.destroyed.append((role, name, bool(getattr(key, "destroyed", False))))

    def joined_table(self, config: RunConfig) -> np.ndarray:
        """Reconstruct the Shamir-shared joined table (encoded ints) from two compute parties' shares."""
        roster = config.roster
        first, second = roster.compute_parties[:2]
        shares = {roster.index(p): self.held[p]["shamir_shares"] for p in (first, second)}
        values = shamir.reconstruct(shares, config.params.prime)
        width = len(config.joined_columns)
        centred = [config.params.centred(v) for v in values]
        return np.array(centred, dtype=np.int64).reshape(-1, width)


@dataclass
class Simulation:
    """The outcome of a simulated run: every party's result plus run facts."""

    config: RunConfig
    parties: dict[str, PartyResult]
    seconds: float
    verified: bool | None = None
    verification: dict[str, Any] = field(default_factory=dict)
    god_view: GodView | None = None

    @property
    def intersection_size(self) -> int:
        return self.parties[TTP].intersection_size

    @property
    def _first(self) -> PartyResult:
        return self.parties[self.config.roster.data_parties[0]]

    @property
    def result(self) -> Any:
        return self._first.result

    def document(self) -> dict[str, Any]:
        data_parties = self.config.roster.data_parties
        doc: dict[str, Any] = {
            "intersection_size": self.intersection_size,
            "result": self._first.result_document(),
            "rows": {r: self.parties[r].rows for r in data_parties},
            "dropped_missing": {r: self.parties[r].dropped_missing for r in data_parties},
            "seconds": round(self.seconds, 3),
            "parameters": {
                "key_bits": self.config.key_bits,
                "alpha": self.config.alpha,
                "target": self.config.target,
                "frac_bits": self.config.params.frac_bits,
                "sigma": self.config.params.sigma,
                "min_intersection": self.config.min_intersection,
                "chunk_rows": self.config.chunk_rows,
            },
            "steps": [entry for role in self.config.roster.members for entry in self.parties[role].document()["steps"]],
        }
        if self.verified is not None:
            doc["verified"] = self.verified
            doc["verification"] = self.verification
        return doc


def tables_by_party(tables: Mapping[str, PartyTable] | Sequence[PartyTable], config: RunConfig) -> dict[str, PartyTable]:
    """The data parties' tables by name: a mapping as given, or a sequence in roster order."""
    names = config.roster.data_parties
    by_name = dict(tables) if isinstance(tables, Mapping) else dict(zip(names, tables, strict=True))
    if set(by_name) != set(names):
        raise ValueError(f"tables for {sorted(by_name)} given, the roster's data parties are {list(names)}")
    return {name: by_name[name] for name in names}


async def simulate(
    tables: Mapping[str, PartyTable] | Sequence[PartyTable],
    config: RunConfig,
    *,
    executor: Executor | None = None,
    recorder: Recorder | None = None,
    observer: GodView | None = None,
    hooks: Hooks = DEFAULT_HOOKS,
    progress: Any = None,
    verify: bool = False,
    session: bytes | None = None,
) -> Simulation:
    """Run every party of ``config.roster`` to the end in this trio run.

    Args:
        tables: each data party's table, by name or in roster order.
        session: the 16-byte session id (default: a fresh random one).
        executor: where crypto runs (default ``auto``): one executor shared by every
            party, its policy decided once by the whole run's rows
            (:meth:`Executor.shared`).

    Raises:
        MpcactorsError: the root cause if any party fails (every party is stopped and
            every key and share destroyed first).
    """
    inputs = tables_by_party(tables, config)
    if verify and observer is None:
        observer = GodView()
    session = session or secrets.token_bytes(16)
    members = config.roster.members
    links = memory_mesh(members, recorder=recorder)
    # one executor for the whole run: every party's Paillier work shares the cores
    executor = executor or Executor()
    results: dict[str, PartyResult] = {}

    async def one(role: str, shared: Executor) -> None:
        results[role] = await run_party(
            role, links[role], session=session, config=config, table=inputs.get(role),
            executor=shared, observer=observer, hooks=hooks, progress=progress,
        )

    started = time.perf_counter()
    try:
        rows = sum(len(t) for t in inputs.values())
        run_executor = executor.shared(rows, key_bits=config.key_bits, keys=len(inputs))
        async with run_executor as shared, trio.open_nursery() as nursery:
            for role in members:
                nursery.start_soon(one, role, shared)
    except BaseExceptionGroup as group:
        cause = first_cause(group)
        raise cause from None
    simulation = Simulation(config, results, time.perf_counter() - started, god_view=observer)
    if verify:
        _verify(simulation, inputs)
    return simulation


def _verify(simulation: Simulation, tables: dict[str, PartyTable]) -> None:
    """God view: the shared table equals the plaintext join (as a multiset of rows)."""
    config = simulation.config
    assert simulation.god_view is not None
    columns, expected = plaintext_join(*tables.values())
    if tuple(columns) != config.joined_columns:
        raise AssertionError(f"join columns {columns} differ from the run's {config.joined_columns}")
    actual = simulation.god_view.joined_table(config)
    same = Counter(map(tuple, expected.tolist())) == Counter(map(tuple, actual.tolist()))
    simulation.verified = bool(same and len(actual) == simulation.intersection_size)
    simulation.verification = {
        "plaintext_join_rows": int(len(expected)),
        "shared_rows": int(len(actual)),
        "table_matches": bool(same),
    }
    if config.lasso and simulation.result is not None:
        simulation.verification["lasso"] = compare_with_sklearn(simulation, expected)
        simulation.verified = simulation.verified and simulation.verification["lasso"]["within_tolerance"]


def compare_with_sklearn(simulation: Simulation, joined: np.ndarray, tolerance: float = 1e-3) -> dict[str, Any]:
    """Fit scikit-learn's ``Lasso`` on the plaintext join; report the largest difference.

    The tolerance is relative to the largest coefficient (docs/lasso.md).
    """
    from sklearn.linear_model import Lasso

    config = simulation.config
    scale = float(1 << config.params.frac_bits)
    columns = config.joined_columns
    data = joined.astype(np.float64) / scale
    target = columns.index(config.target)
    features = [i for i in range(len(columns)) if i != target]
    model = Lasso(alpha=config.alpha, tol=1e-12, max_iter=1_000_000)
    model.fit(data[:, features], data[:, target])
    r2 = float(model.score(data[:, features], data[:, target]))
    ours = simulation.result
    ref = [float(c) for c in model.coef_]
    diffs = [abs(a - b) for a, b in zip(ours.coefficients, ref, strict=True)]
    largest = max(max(abs(c) for c in ref), 1e-12)
    worst = max(diffs + [abs(ours.intercept - float(model.intercept_)), abs(ours.r2 - r2)])
    return {
        "sklearn": {
            "coefficients": dict(zip(config.features, ref, strict=True)),
            "intercept": float(model.intercept_),
            "r2": r2,
        },
        "max_abs_difference": worst,
        "max_relative_difference": worst / largest,
        "tolerance": tolerance,
        "within_tolerance": worst / largest <= tolerance,
    }
