"""Recorded runs, party views and coalition views: what each party could know, per step.

A :class:`RecordedRun` is one simulation run with everything the leak analysis needs:

* the run's **roster** (``config.roster``): k >= 2 named data parties and the TTP; the
  first two data parties (or the configured ones) compute with the TTP in steps 7 and 8,
  every other data party is *outside the computation* (it deals its additive share in
  step 7, then holds nothing, and receives the output in step 8);
* the **transcript** of every message (:class:`~mpcactors.analysis.transcript.Transcript`);
* the **god view**: a copy of what each party held, and when (an
  :class:`AnalysisObserver`, a :class:`~mpcactors.sim.GodView`);
* the **ground truth** only the simulation knows: every input table, which hashed id
  belongs to which person, and which input rows the TTP joined into which row.

From those, :func:`party_view` answers "what does party X have during step N": the
items it holds (its own input, hashed ids, ciphertexts, masked values, shares, the
result), the secret keys alive in it, and the messages it received. A
:func:`coalition_view` is the union of the views of any set of members: what they
would have if they pooled everything.

Two readings of "has", because the protocol's last line of defence is deletion:

* ``retained=False`` (the protocol as specified): an item is gone once the step that
  ends its life is over: the TTP drops the hashed ids after matching (step 4), the
  additive shares die in step 7, the Shamir shares at the end of the run. Deletions
  the parties report (:attr:`PartyResult.steps`) take precedence over the table
  :data:`LIFETIMES` below.
* ``retained=True``: the party kept a copy of everything it ever held or received.
  That is the *view* of cryptography's semi-honest model, and what a party that
  ignores the deletion rule has. Python cannot prove that memory was wiped
  (``docs/threat-model.md``), so the analysis reports both.

Ground truth is collected without keeping secrets alive: the observer hashes each
party's own ids with the step-2 key at the moment the key is created (a lookup table
digest -> id, the mapping the party itself computes a moment later) and keeps only a
weak reference to the key, like the god view it extends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from ..actors import DEFAULT_HOOKS, Executor, Held
from ..config import RunConfig
from ..data import PartyTable
from ..errors import MpcactorsError
from ..protocol.roster import TTP, Roster
from ..protocol.steps import SECRETS, Group, Step
from ..sim import GodView, Simulation, simulate, tables_by_party
from .transcript import Entry, Transcript

__all__ = [
    "AnalysisObserver",
    "DESCRIPTIONS",
    "KEY_DESCRIPTIONS",
    "LIFETIMES",
    "PartyView",
    "RecordedRun",
    "coalition_view",
    "describe",
    "kind_of",
    "party_view",
    "record",
    "record_run",
]

# Every party is named by the run's roster (:attr:`RecordedRun.roster`), never here.
CONFIRM = int(Step.CONFIRM)
#: The protocol's steps and the end-of-run confirmation (step 9).
STEPS = tuple(int(s) for s in Step if s != Step.DONE)

#: What an observer is told a data party holds (:class:`~mpcactors.actors.Held`), and the
#: last step during which it still has it (``None``: kept for good).
_DATA_ITEMS: dict[str, int | None] = {
    Held.INPUT: None,
    Held.HASHED_IDS: 4,  # sent to the TTP in step 4, then dropped
    Held.PUBLIC_KEYS: None,
    Held.OWN_CIPHERTEXTS: 4,
    Held.INTERSECTION_SIZE: None,
    Held.MASKS: 6,  # become the party's additive share of the other parties' columns
    Held.MASKED_VALUES: 6,  # become the party's additive share of its own columns
    Held.RESULT: None,
}


def _secrets_of(*groups: Group) -> dict[str, int | None]:
    return {s.name: s.last_step for s in SECRETS if s.holders in groups}


#: The last step during which a party of each kind still has each item when every
#: party follows the protocol (``None``: kept for good: own input, public values,
#: the output). Reported deletions override these. The kinds (:func:`kind_of`):
#: ``"data"``, a data party that computes in steps 7 and 8; ``"outside"``, a data party
#: outside the computation (no Shamir shares, no MPC state: its additive shares die in
#: step 7 when it deals them, and it receives the output in step 8); ``"ttp"``.
#: Secrets' lifetimes come from the protocol's table (:data:`~mpcactors.protocol.steps.SECRETS`).
LIFETIMES: dict[str, dict[str, int | None]] = {
    "data": {**_DATA_ITEMS, **_secrets_of(Group.DATA, Group.COMPUTE)},
    "outside": {**_DATA_ITEMS, **_secrets_of(Group.DATA, Group.OUTSIDE)},
    "ttp": {
        Held.ROW_PAIRS: 6,  # the TTP's state is cleared when step 6 ends
        Held.INTERSECTION_SIZE: None,
        Held.RESULT: None,
        **_secrets_of(Group.TTP, Group.COMPUTE),
    },
}


def kind_of(roster: Roster, role: str) -> str:
    """``"ttp"``, ``"data"`` (a compute data party) or ``"outside"`` (see :data:`LIFETIMES`)."""
    if role == TTP:
        return "ttp"
    return "data" if role in roster.compute_parties else "outside"


#: Plain-language descriptions of held items, for the report.
DESCRIPTIONS: dict[str, str] = {
    "input": "its own input table (ids and attribute values of its own patients or clients)",
    "hashed_ids": "keyed hashes (HMAC-SHA256) of its own ids",
    "public_keys": "every data party's Paillier public key (its own and the others')",
    "own_ciphertexts": "its own attribute values, Paillier-encrypted under its own key",
    "intersection_size": "m, the number of persons in every table",
    "masks": "the random masks it drew for the other parties' columns (its additive share of those columns)",
    "masked_values": "its own columns of the joined rows minus the other parties' masks (x - r), decrypted",
    "additive_shares": "its additive share of the joined table",
    "shamir_shares": "its Shamir share of the joined table (threshold 2 of 3)",
    "row_pairs": "which arriving row of each data party was joined with which, in the joined table's random order",
    "result": "the lasso output: coefficients, intercept, R^2 and the iteration count",
}

#: Descriptions that differ for the TTP.
TTP_DESCRIPTIONS: dict[str, str] = {
    "hashed_ids": "every data party's hashed ids (keyed HMAC-SHA256; it never has the key)",
    "shamir_shares": "its Shamir share of the joined table (threshold 2 of 3; pseudo-random on its own)",
}


#: Descriptions that differ for a data party outside the computation.
OUTSIDE_DESCRIPTIONS: dict[str, str] = {
    "additive_shares": "its additive share of the joined table, until it deals it to the compute parties as "
                       "Shamir shares (step 7) and deletes it",
    "result": "the lasso output the compute parties sent it: coefficients, intercept, R^2 and the iteration count",
}


def describe(role: str, name: str, kind: str | None = None) -> str:
    """A plain-language description of item ``name`` as held by ``role`` (of ``kind``, see :func:`kind_of`)."""
    if role == TTP and name in TTP_DESCRIPTIONS:
        return TTP_DESCRIPTIONS[name]
    if kind == "outside" and name in OUTSIDE_DESCRIPTIONS:
        return OUTSIDE_DESCRIPTIONS[name]
    return DESCRIPTIONS.get(name, name)


#: The secrets that are key objects (the others are share lists, reported as held items).
_KEYS = ("hash_key", "paillier_secret", "mpc_state")
KEY_DESCRIPTIONS: dict[str, str] = {s.name: s.description for s in SECRETS if s.name in _KEYS}

_KEY_STEPS = {s.name: int(s.created) for s in SECRETS if s.name in _KEYS}


class AnalysisObserver(GodView):
    """The god view plus the hash oracle: ``digest -> id`` for each data party's ids.

    When a data party creates its step-2 key, the observer hashes that party's own
    ids with it (exactly what the party does next) and keeps the lookup table; it
    keeps only a weak reference to the key object, so deletion is unaffected.
    """

    def __init__(self, tables: Mapping[str, PartyTable]) -> None:
        super().__init__()
        self._tables = dict(tables)
        self.digest_to_id: dict[str, dict[bytes, str]] = {role: {} for role in self._tables}

    def key_created(self, role: str, name: str, key: Any) -> None:
        super().key_created(role, name, key)
        if name == "hash_key" and role in self._tables:
            ids = self._tables[role].ids
            self.digest_to_id[role] = dict(zip(key.hash_ids(ids), ids, strict=True))


@dataclass
class RecordedRun:
    """One simulated run with its transcript, god view and ground truth.

    Attributes:
        config: the run's public parameters (:attr:`roster` is ``config.roster``).
        tables: every data party's input table by name, in roster order (ground truth).
        transcript: every message of the run.
        god_view: what each party held and when, plus the hash oracle.
        simulation: the finished :class:`~mpcactors.sim.Simulation`, or ``None`` if
            the run stopped early (see ``error``).
        error: the error that stopped the run, if any (a broken variant may break a
            later step; the views up to that step remain valid).
        variant: the deliberately broken variant the run used, or ``None``.
        id_space: the public id space, if known: synthetic ids are 9-digit strings
            drawn from ``range(id_space)``.
        handed: items a broken variant handed to a party outside the protocol
            (``{role: {name: value}}``, every member), e.g. a leaked hashing key.
    """

    config: RunConfig
    tables: dict[str, PartyTable]
    transcript: Transcript
    god_view: AnalysisObserver
    simulation: Simulation | None = None
    error: BaseException | None = None
    variant: Any = None
    id_space: int | None = None
    handed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for role in self.roster.members:
            self.handed.setdefault(role, {})

    # ---- run facts ----------------------------------------------------------------
    @property
    def roster(self) -> Roster:
        return self.config.roster

    @property
    def data_parties(self) -> tuple[str, ...]:
        return self.roster.data_parties

    @property
    def outside(self) -> tuple[str, ...]:
        """The data parties outside the computation (none with two data parties)."""
        return Group.OUTSIDE.members(self.roster)

    def kind_of(self, role: str) -> str:
        """``"data"``, ``"outside"`` or ``"ttp"`` (:func:`kind_of`)."""
        return kind_of(self.roster, role)

    @property
    def variant_name(self) -> str:
        return "protocol as specified" if self.variant is None else self.variant.name

    @property
    def last_step(self) -> int:
        """The last protocol step any party reached (8 for a complete run with the lasso).

        Step 9's confirmation digests are not counted: they carry nothing a party does not
        already hold, and a run without the lasso must still read as ending at step 7.
        """
        steps = [s for held in self.god_view.held_at.values() for s in held.values()]
        steps += [e.step for e in self.transcript if e.step != CONFIRM]
        return max(steps, default=0)

    def reached(self, step: int) -> bool:
        """Whether any party got to ``step`` (step 9: whether any confirmation was sent)."""
        if step == CONFIRM:
            return any(e.step == CONFIRM for e in self.transcript)
        return step <= self.last_step

    @property
    def completed(self) -> bool:
        return self.simulation is not None and self.error is None

    @property
    def intersection_size(self) -> int:
        return int(self.god_view.held[TTP]["intersection_size"])

    @property
    def rows(self) -> dict[str, int]:
        return {role: len(self.tables[role]) for role in self.data_parties}

    def deleted_at(self, role: str) -> dict[str, int]:
        """``{item or key name: step}`` for each deletion ``role`` reported."""
        if self.simulation is None:
            return {}
        out: dict[str, int] = {}
        for step, stats in self.simulation.parties[role].steps.items():
            for name in stats.deleted:
                out.setdefault(name, step)
        return out

    def last_step_of(self, role: str, name: str) -> int | None:
        """The last step during which ``role`` has ``name`` under the protocol's deletions."""
        reported = self.deleted_at(role)
        if name in reported:
            return reported[name]
        last = LIFETIMES[self.kind_of(role)].get(name)
        if last == 8:  # lives to the end of the run, which is step 7 without the lasso
            return self.config_last_step
        return last

    @property
    def config_last_step(self) -> int:
        return 8 if self.config.lasso else 7

    # ---- ground truth ---------------------------------------------------------------
    def send_order(self, role: str) -> list[str]:
        """The ids of ``role`` in the order it hashed and sent them (ground truth)."""
        oracle = self.god_view.digest_to_id[role]
        return [oracle[d] for d in self.god_view.held[role]["hashed_ids"]]

    def row_of(self, role: str) -> dict[str, int]:
        """``{id: row index in the input table}`` for a data party."""
        return {id_: k for k, id_ in enumerate(self.tables[role].ids)}

    def arrival_rows(self, role: str) -> list[int]:
        """For each row the TTP received from ``role``, in arrival order: its input-table row."""
        row = self.row_of(role)
        return [row[id_] for id_ in self.send_order(role)]

    def joined_rows(self) -> list[tuple[int, ...]]:
        """For each row of the joined table, in the TTP's random order: the input-table
        row of each data party, in roster order (``(hospital row, insurer row)`` for two)."""
        pairs = self.god_view.held[TTP]["row_pairs"]
        arrivals = [self.arrival_rows(role) for role in self.data_parties]
        return [tuple(rows[k] for rows, k in zip(arrivals, pair, strict=True)) for pair in pairs]

    def joined_values(self) -> np.ndarray:
        """The joined table (encoded ints, each data party's columns in roster order), in the TTP's order."""
        pairs = self.joined_rows()
        width = len(self.config.joined_columns)
        if not pairs:
            return np.zeros((0, width), dtype=np.int64)
        parts = [self.tables[role].values[[p[k] for p in pairs]] for k, role in enumerate(self.data_parties)]
        return np.concatenate(parts, axis=1)

    def intersection_ids(self) -> set[str]:
        """The ids in every data party's table (the persons the TTP joins)."""
        return set.intersection(*(set(self.tables[role].ids) for role in self.data_parties))


@dataclass(frozen=True)
class PartyView:
    """What one party (or a coalition) has during one step.

    Attributes:
        parties: the role, or the roles of a coalition.
        step: the protocol step (1 to 9).
        retained: whether deleted items and old messages are kept (see module doc).
        holds: ``{role: {item name: value}}``: items each member has during the step.
        keys: ``{role: [key name]}``: secret keys alive in each member during the step.
        received: messages the members received during this step.
        received_so_far: messages received up to and including this step (a member
            that keeps its messages has all of them; under ``retained=False`` only
            those of this step are still in memory).
        handed: items a broken variant handed to the members outside the protocol.
    """

    parties: tuple[str, ...]
    step: int
    retained: bool
    holds: dict[str, dict[str, Any]]
    keys: dict[str, list[str]]
    received: list[Entry]
    received_so_far: list[Entry]
    handed: dict[str, dict[str, Any]]

    def has(self, name: str) -> bool:
        return any(name in items for items in self.holds.values())

    def get(self, role: str, name: str, default: Any = None) -> Any:
        return self.holds.get(role, {}).get(name, default)

    def messages(self) -> list[Entry]:
        """The messages this view still has: all so far if retained, else this step's."""
        return self.received_so_far if self.retained else self.received

    def summary(self) -> dict[str, Any]:
        """A JSON-able description (names and sizes, never values)."""
        return {
            "parties": list(self.parties),
            "step": self.step,
            "holds": {role: sorted(items) for role, items in self.holds.items()},
            "keys": self.keys,
            "received": _message_summary(self.received),
            "handed": {role: sorted(items) for role, items in self.handed.items() if items},
        }


def _message_summary(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], list[int]] = {}
    for e in entries:
        row = rows.setdefault((e.sender, e.kind), [0, 0])
        row[0] += 1
        row[1] += e.size
    return [{"from": s, "kind": k, "messages": n, "bytes": b} for (s, k), (n, b) in rows.items()]


def party_view(run: RecordedRun, role: str, step: int, *, retained: bool = False) -> PartyView:
    """What ``role`` has during ``step`` (see the module doc for ``retained``)."""
    return coalition_view(run, (role,), step, retained=retained)


def coalition_view(run: RecordedRun, parties: Iterable[str], step: int, *, retained: bool = False) -> PartyView:
    """The union of the views of ``parties`` (any set of the run's members) during ``step``:
    what they have if they pool."""
    members = tuple(parties)
    roles = run.roster.members
    if not members or any(p not in roles for p in members) or len(set(members)) != len(members):
        raise ValueError(f"parties must be distinct members of {roles}, got {members!r}")
    if step not in STEPS:
        raise ValueError(f"step must be 1 to {CONFIRM}, got {step!r}")
    holds: dict[str, dict[str, Any]] = {}
    keys: dict[str, list[str]] = {}
    for role in members:
        items: dict[str, Any] = {}
        for name, value in run.god_view.held[role].items():
            since = run.god_view.held_at[role][name]
            until = None if retained else run.last_step_of(role, name)
            if since <= step and (until is None or step <= until):
                items[name] = value
        holds[role] = items
        alive = []
        created = {name for r, name, _ in run.god_view.keys if r == role}
        for name in ("hash_key", "paillier_secret", "mpc_state"):
            if name not in created:
                continue
            until = None if retained else run.last_step_of(role, name)
            if _KEY_STEPS[name] <= step and (until is None or step <= until):
                alive.append(name)
        keys[role] = alive
    received = [e for e in run.transcript if e.receiver in members and e.step == step]
    so_far = [e for e in run.transcript if e.receiver in members and e.step <= step]
    handed = {role: dict(run.handed.get(role, {})) for role in members}
    return PartyView(members, step, retained, holds, keys, received, so_far, handed)


# ---- running ----------------------------------------------------------------------------


def _tables_and_config(args: Sequence[Any]) -> tuple[dict[str, PartyTable], RunConfig]:
    """``(tables, config)`` or ``(table, table, ..., config)``: the tables by name, in roster order."""
    if len(args) < 2 or not isinstance(args[-1], RunConfig):
        raise TypeError("give the tables (by name, or in roster order) and then the RunConfig")
    *tables, config = args
    given = tables[0] if len(tables) == 1 else tables
    names = config.roster.data_parties
    if not isinstance(given, Mapping) and len(given) != len(names):
        raise ValueError(f"{len(given)} table(s) given, the roster has {len(names)} data parties: {list(names)}")
    return tables_by_party(given, config), config


async def record(
    *args: Any,
    variant: Any = None,
    id_space: int | None = None,
    executor: Executor | None = None,
    allow_failure: bool = False,
) -> RecordedRun:
    """Simulate one run with a transcript and the analysis observer.

    ``record(tables, config)`` with every data party's table by name (a mapping) or in
    roster order (a sequence); ``record(hospital, insurer, config)`` (the tables as
    positional arguments, in roster order) does the same.

    Args:
        variant: a deliberately broken protocol from :mod:`mpcactors.analysis.variants`,
            installed for this run only.
        id_space: the public id space of the input (for the dictionary attack).
        executor: ``inline`` (default) or ``thread``; a variant's hooks are closures
            that a ``process`` executor's workers could not receive.
        allow_failure: return the partial run if a party fails (a broken variant can
            break a later step); otherwise the error propagates.
    """
    tables, config = _tables_and_config(args)
    if executor is not None and executor.policy == "process":
        raise ValueError("analysis runs need an inline or thread executor (a variant's hooks stay in this process)")
    transcript = Transcript(roster=config.roster)
    observer = AnalysisObserver(tables)
    run = RecordedRun(config, tables, transcript, observer, variant=variant, id_space=id_space)
    hooks = DEFAULT_HOOKS if variant is None else variant.hooks(run)
    try:
        run.simulation = await simulate(
            tables, config, executor=executor, recorder=transcript, observer=observer, hooks=hooks
        )
    except MpcactorsError as exc:
        if not allow_failure:
            raise
        run.error = exc
    return run


def record_run(*args: Any, **kwargs: Any) -> RecordedRun:
    """:func:`record` from synchronous code (its own ``trio.run``): ``record_run(tables, config, ...)``."""

    async def go() -> RecordedRun:
        return await record(*args, **kwargs)

    return trio.run(go)
