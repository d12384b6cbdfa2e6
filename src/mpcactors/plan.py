"""The study plan: the analyses a study runs, what each opens, and to whom.

A study team writes ``plan.toml`` (see ``docs/plan.md``); every party reviews it and
signs it off by naming the same file in its configuration. :func:`load_plan` reads and
validates it against the session's roster and columns (errors name the file and the
key); :attr:`Plan.digest` is the SHA-256 of its canonical form, which the parties compare
before any data moves; :meth:`Plan.manifest` lists every value each analysis opens, and
:func:`manifest_allows` answers whether one opening of the MPC engine is among them.

Without a plan file a run has :func:`default_plan`: a description of every column and
the lasso of the run's target, to every data party.

Differencing: :attr:`Plan.warnings` names pairs of outputs that together could reveal a
count that ``min_cell`` suppresses (the rules are in its docstring).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from .crypto.fixedpoint import LASSO_MAX_COLUMNS
from .errors import ConfigError, UndeclaredOpening
from .mpc.engine import Delivery
from .mpc import lasso_cv, linear, logistic
from .mpc.lasso import CHECK_EVERY
from .protocol.roster import Roster

__all__ = [
    "CHECK_EVERY",
    "DEFAULT_MIN_CELL",
    "KINDS",
    "Analysis",
    "Describe",
    "Gate",
    "Lasso",
    "Linear",
    "Logistic",
    "Opening",
    "Plan",
    "default_plan",
    "indicator_columns",
    "load_plan",
    "manifest_allows",
]

#: The version of the canonical form; part of the digest.
FORMAT = 1
#: The analysis kinds a plan may name.
KINDS = ("describe", "lasso", "linear", "logistic")
#: Counts below this are suppressed unless a plan says otherwise.
DEFAULT_MIN_CELL = 10
DEFAULT_MAX_ITER = 1000
#: The most levels a categorical column may declare.
MAX_LEVELS = 64
#: The counts of values outside a categorical column's declared levels.
OTHER = "other"
_NAME = re.compile(r"[a-z0-9_-]{1,32}")
_TOP_KEYS = {"title", "min_cell", "analysis"}
_KEYS = {
    "describe": {"name", "kind", "recipients", "columns", "categorical", "levels"},
    "lasso": {"name", "kind", "recipients", "target", "alpha", "features", "max_iter", "folds"},
    "linear": {"name", "kind", "recipients", "target", "features", "ridge"},
    "logistic": {"name", "kind", "recipients", "target", "features", "max_iter", "l2"},
}


# ---- the value types -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Describe:
    """Mean, standard deviation and pairwise correlations of ``columns``; per level of each
    categorical column, whether its count is below ``min_cell`` and, if not, the count.

    Attributes:
        columns: the described columns, in the order of the outputs.
        categorical: ``(column, levels)`` pairs: integer-coded columns and their declared
            levels (sorted). Values outside the levels are counted as :data:`OTHER`.
    """

    kind: ClassVar[str] = "describe"
    columns: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def document(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "categorical": [[c, list(levels)] for c, levels in self.categorical]}

    def openings(self, check_every: int) -> list[_Entry]:
        c = len(self.columns)
        found: list[_Entry] = []
        if c:
            found += [("mean", (c,), "mean", 1, False), ("sd", (c,), "sd", 1, False)]
        if c > 1:
            found.append(("correlation", (c * (c - 1) // 2,), "correlation", 1, False))
        found += [(f"small_cell:{col}", (len(lv) + 1,), "small_cell", 1, True) for col, lv in self.categorical]
        found += [(f"count:{col}", (len(lv) + 1,), "count", 1, False) for col, lv in self.categorical]
        return found


@dataclass(frozen=True, slots=True)
class Lasso:
    """scikit-learn's ``Lasso(alpha)`` of ``target`` on ``features`` (step 8).

    With ``folds`` (K >= 2), ``alpha`` is a tuple of candidate penalties and the one with
    the smallest mean K-fold validation error is chosen (``mpc/lasso_cv.py``; folds by
    position in the TTP's random row order), then fitted on all rows.
    """

    kind: ClassVar[str] = "lasso"
    target: str
    alpha: float | tuple[float, ...]
    features: tuple[str, ...]
    max_iter: int = DEFAULT_MAX_ITER
    folds: int | None = None

    def document(self) -> dict[str, Any]:
        alpha = [float(a) for a in self.alpha] if isinstance(self.alpha, tuple) else float(self.alpha)
        document = {"target": self.target, "alpha": alpha, "features": list(self.features), "max_iter": self.max_iter}
        if self.folds is not None:  # absent without cross-validation, so older plans keep their digests
            document["folds"] = self.folds
        return document

    def openings(self, check_every: int) -> list[_Entry]:
        if isinstance(self.alpha, tuple):
            found = lasso_cv.cv_openings(len(self.features), len(self.alpha), max_iter=self.max_iter, check_every=check_every)
            return [(output, shape, label, reveals, label in lasso_cv.CONTROL) for output, shape, label, reveals in found]
        checks = math.ceil(self.max_iter / check_every)
        return [
            ("converged", (checks,), "converged", checks, True),
            ("coefficients", (len(self.features),), "result", 1, False),
            ("intercept", (), "result", 1, False),
            ("r2", (), "result", 1, False),
            ("iterations", (), None, 1, False),
        ]


@dataclass(frozen=True, slots=True)
class Linear:
    """Ordinary least squares of ``target`` on ``features`` with an intercept and standard
    errors (``mpc/linear.py``; statsmodels' ``OLS``), or ridge with penalty ``ridge``
    (scikit-learn's ``Ridge(alpha=ridge)``, no standard errors)."""

    kind: ClassVar[str] = "linear"
    target: str
    features: tuple[str, ...]
    ridge: float = 0.0

    def document(self) -> dict[str, Any]:
        return {"target": self.target, "features": list(self.features), "ridge": float(self.ridge)}

    def openings(self, check_every: int) -> list[_Entry]:
        return _from_program(linear.openings(len(self.features), ridge=self.ridge > 0), linear.CONTROL)


@dataclass(frozen=True, slots=True)
class Logistic:
    """Logistic regression of the 0/1 ``target`` on ``features`` by Newton's method, with
    standard errors (``mpc/logistic.py``; statsmodels' ``Logit``), or with the L2 penalty
    ``l2`` (scikit-learn's ``LogisticRegression(C=1/l2)``; the scales are opened, no
    standard errors)."""

    kind: ClassVar[str] = "logistic"
    target: str
    features: tuple[str, ...]
    max_iter: int = logistic.DEFAULT_MAX_ITER
    l2: float = 0.0

    def document(self) -> dict[str, Any]:
        document = {"target": self.target, "features": list(self.features), "max_iter": self.max_iter}
        if self.l2 > 0:  # absent without a penalty, so older plans keep their digests
            document["l2"] = self.l2
        return document

    def openings(self, check_every: int) -> list[_Entry]:
        found = logistic.openings(len(self.features), max_iter=self.max_iter, l2=self.l2)
        return _from_program(found, logistic.CONTROL)


#: ``(output, shape, label, reveals, control)``: one entry of a kind's openings
_Entry = tuple[str, tuple[int, ...], str | None, int, bool]


def _from_program(entries: Sequence[tuple[str, tuple[int, ...], str | None, int]], control: Collection[str]) -> list[_Entry]:
    """A program module's ``openings()`` (``shape`` per reveal) as manifest entries (``shape``
    of all reveals together; derived outputs counted once)."""
    found: list[_Entry] = []
    for output, shape, label, reveals in entries:
        if label is None:
            found.append((output, shape, None, 1, False))
        elif reveals > 1:
            found.append((output, (reveals * math.prod(shape),), label, reveals, label in control))
        else:
            found.append((output, shape, label, 1, label in control))
    return found


@dataclass(frozen=True, slots=True)
class Analysis:
    """One analysis of a plan: its unique name, what it computes, and who receives its outputs."""

    name: str
    method: Describe | Lasso | Linear | Logistic
    recipients: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.method.kind


@dataclass(frozen=True, slots=True)
class Opening:
    """One output an analysis opens: an entry of :meth:`Plan.manifest`.

    Attributes:
        analysis: the analysis's name.
        output: what the values are (``mean``, ``count:nyha_class``, ``coefficients``, ...).
        shape: the output's shape (``()`` for one value).
        recipients: who receives it.
        label: the :meth:`Engine.reveal <mpcactors.mpc.engine.Engine.reveal>` label that
            opens it; outputs with the same label are opened together, in manifest
            order. ``None``: derived from other openings (nothing is opened for it).
        reveals: how many reveals open it, each ``size // reveals`` values (the lasso's
            convergence bits: one per check, at most this many).
        control: the value steers the computation (a convergence bit, a small-cell bit),
            so it is opened to the three compute parties as well as to the recipients;
            any other output reaches the recipients only.
    """

    analysis: str
    output: str
    shape: tuple[int, ...]
    recipients: tuple[str, ...]
    label: str | None
    reveals: int = 1
    control: bool = False

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def per_reveal(self) -> int:
        return self.size // self.reveals


def manifest_allows(manifest: Sequence[Opening], analysis: str, label: str, count: int) -> bool:
    """True if one reveal of ``count`` values labelled ``label`` is an opening ``analysis`` declares.

    The reveal must open exactly the outputs the manifest gives that label (their
    :attr:`~Opening.per_reveal` values together). How often a label may be revealed is
    the entries' :attr:`~Opening.reveals`; counting reveals is the caller's.
    """
    declared = [o for o in manifest if o.analysis == analysis and o.label == label]
    return bool(declared) and count == sum(o.per_reveal for o in declared)


class Gate:
    """The engine's gate (:class:`mpcactors.mpc.engine.Gate`) for one analysis of a plan.

    It admits exactly the openings the manifest lists for the analysis, each label at
    most as often as declared, and sends each to its recipients among the compute
    parties: a control opening to all three, any other output only to the recipients
    (none, if they are all outside the computation). When a recipient is outside the
    computation, every opening is kept for it (:attr:`Delivery.keep`).
    """

    def __init__(self, manifest: Sequence[Opening], analysis: Analysis, roster: Roster) -> None:
        self.analysis = analysis
        self.declared = [o for o in manifest if o.analysis == analysis.name and o.label is not None]
        computes = roster.compute_parties
        self.to = frozenset(roster.index(r) for r in analysis.recipients if r in computes)
        self.keep = any(r not in computes for r in analysis.recipients)
        self.count: dict[str, int] = {}

    def admit(self, label: str, count: int) -> Delivery:
        name = self.analysis.name
        entries = [o for o in self.declared if o.label == label]
        if not manifest_allows(self.declared, name, label, count):
            listed = ", ".join(sorted({f"{o.label}[{o.per_reveal}]" for o in self.declared})) or "nothing"
            raise UndeclaredOpening(
                f"step 8: analysis {name!r} tried to open {count} values labelled {label!r}; the plan's "
                f"manifest lists only {listed} for it, so nothing was sent"
            )
        done = self.count[label] = self.count.get(label, 0) + 1
        if done > entries[0].reveals:
            raise UndeclaredOpening(
                f"step 8: analysis {name!r} tried to open {label!r} a {done}th time; the plan's manifest "
                f"allows {entries[0].reveals}, so nothing was sent"
            )
        control = any(o.control for o in entries)
        return Delivery(frozenset((1, 2, 3)) if control else self.to, self.keep)


@dataclass(frozen=True)
class Plan:
    """A study plan: built by :func:`load_plan` (validated) or :func:`default_plan`.

    Attributes:
        title: one line naming the study.
        analyses: in the order they run.
        min_cell: the smallest count a describe analysis opens; smaller ones are suppressed.
    """

    title: str
    analyses: tuple[Analysis, ...]
    min_cell: int = DEFAULT_MIN_CELL

    def document(self) -> dict[str, Any]:
        """The canonical form: every default filled in, recipients in roster order, levels sorted."""
        return {
            "format": FORMAT,
            "title": self.title,
            "min_cell": self.min_cell,
            "analyses": [
                {"name": a.name, "kind": a.kind, "recipients": list(a.recipients), **a.method.document()}
                for a in self.analyses
            ],
        }

    def canonical_json(self) -> bytes:
        return json.dumps(self.document(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def digest(self) -> bytes:
        """SHA-256 of :meth:`canonical_json`: equal for files that mean the same plan."""
        return hashlib.sha256(self.canonical_json()).digest()

    def analysis(self, name: str) -> Analysis:
        for analysis in self.analyses:
            if analysis.name == name:
                return analysis
        raise KeyError(name)

    def manifest(self, *, check_every: int = CHECK_EVERY) -> tuple[Opening, ...]:
        """Every output every analysis opens, in order (see :class:`Opening`).

        describe: ``mean`` and ``sd`` per column, ``correlation`` (the upper triangle,
        row by row), per categorical column ``small_cell:<column>`` (one bit per level
        and :data:`OTHER`: the count is below ``min_cell``, for :data:`OTHER` below it and
        not 0; one reveal for all columns,
        a control opening) and ``count:<column>`` (the counts, 0 where suppressed; one
        reveal for all columns). lasso: one ``converged`` bit per check (control), then
        ``coefficients``, ``intercept`` and ``r2`` in one reveal (``result``), and
        ``iterations``, which follows from the bits.
        """
        entries = [
            Opening(a.name, output, shape, a.recipients, label, reveals, control)
            for a in self.analyses
            for output, shape, label, reveals, control in a.method.openings(check_every)
        ]
        return tuple(entries)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Differencing: outputs that together could reveal a count below ``min_cell``.

        Every analysis runs over the same rows (the whole intersection), so two rules:

        1. A categorical column counted in two describe analyses with different level
           sets: a level declared in one only is part of the other's :data:`OTHER` cell,
           so one analysis's cells minus the other's can isolate a count that
           suppression hides.
        2. A categorical column with at most three levels counted in one describe
           analysis and among the ``columns`` (mean and sd) of one: the row count, the
           mean and the sd are three equations that give each of three counts.
        """
        describes = [(a.name, a.method) for a in self.analyses if isinstance(a.method, Describe)]
        counted: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        for name, method in describes:
            for column, levels in method.categorical:
                counted.setdefault(column, []).append((name, levels))
        found = []
        for column, uses in counted.items():
            (first, levels), *rest = uses
            other = next(((name, lv) for name, lv in rest if lv != levels), None)
            if other is not None:
                found.append(
                    f"differencing: {column!r} is counted over levels {list(levels)} in {first!r} and "
                    f"{list(other[1])} in {other[0]!r}; cells of one minus cells of the other can reveal a "
                    f"count below min_cell = {self.min_cell}: count it over the same levels"
                )
            moments = next((name for name, method in describes if column in method.columns), None)
            small = next(((name, lv) for name, lv in uses if len(lv) <= 3), None)
            if moments is not None and small is not None:
                found.append(
                    f"differencing: {column!r} has {len(small[1])} levels in {small[0]!r} and its mean and sd "
                    f"are opened in {moments!r}; with the row count they give every level's count, whatever "
                    f"min_cell = {self.min_cell} suppresses: leave it out of the columns of {moments!r}"
                )
        return tuple(found)

    @property
    def categorical_levels(self) -> dict[str, tuple[int, ...]]:
        """Every categorical column any describe analysis counts, with the union of the
        levels declared for it (sorted): its owner one-hot encodes it over these levels
        and :data:`OTHER` before step 3 (:func:`indicator_columns`)."""
        union: dict[str, set[int]] = {}
        for a in self.analyses:
            if isinstance(a.method, Describe):
                for column, levels in a.method.categorical:
                    union.setdefault(column, set()).update(levels)
        return {column: tuple(sorted(levels)) for column, levels in union.items()}

    @property
    def binary_columns(self) -> tuple[str, ...]:
        """The targets of the logistic regressions: their owners check they are 0 or 1 before step 3."""
        return tuple(dict.fromkeys(a.method.target for a in self.analyses if isinstance(a.method, Logistic)))

    def summary(self) -> list[str]:
        """Lines for people: the title, the digest, and what each analysis opens to whom."""
        lines = [f"plan {self.title!r}", f"  digest {self.digest.hex()}", f"  min_cell {self.min_cell}"]
        manifest = self.manifest()
        for number, a in enumerate(self.analyses, 1):
            opened = ", ".join(f"{o.output}[{o.size}]" for o in manifest if o.analysis == a.name and not o.control)
            lines.append(f"  {number}. {a.name} ({a.kind}) to {', '.join(a.recipients)}: {opened}")
            control = ", ".join(f"{o.output}[{o.size}]" for o in manifest if o.analysis == a.name and o.control)
            if control:
                lines.append(f"     and to the compute parties too, as they steer the computation: {control}")
        return lines


def indicator_columns(column: str, levels: Sequence[int]) -> tuple[str, ...]:
    """The one-hot columns of a categorical ``column``: ``column=level`` per level, then ``column=other``."""
    return (*(f"{column}={level}" for level in levels), f"{column}={OTHER}")


# ---- the default plan ----------------------------------------------------------------------------


class _Run(Protocol):
    """What :func:`default_plan` reads of a :class:`~mpcactors.config.RunConfig` (a layer beside)."""

    @property
    def roster(self) -> Roster: ...
    @property
    def input_columns(self) -> tuple[str, ...]: ...
    target: str
    alpha: float
    max_iter: int
    lasso: bool


def default_plan(run: _Run) -> Plan:
    """The plan of a run without a plan file: a description of every column, and the
    run's lasso (unless ``run.lasso`` is off), both to every data party."""
    joined, recipients = tuple(run.input_columns), tuple(run.roster.data_parties)
    analyses = [Analysis("cohort", Describe(joined), recipients)]
    if run.lasso:
        features = tuple(c for c in joined if c != run.target)
        analyses.append(Analysis("lasso", Lasso(run.target, float(run.alpha), features, run.max_iter), recipients))
        title = f"Cohort description and the lasso of {run.target}"
    else:
        title = "Cohort description"
    return Plan(title, tuple(analyses))


# ---- reading plan.toml ---------------------------------------------------------------------------


def _what(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}
    shown = f" ({value!r})" if isinstance(value, bool | int | float | str) else ""
    return names.get(type(value), type(value).__name__) + shown


class _Table:
    """Typed keys of one table of a plan file; errors say ``<where> <key>: <problem>``."""

    def __init__(self, path: Path, table: str, data: Mapping[str, Any], known: set[str], known_text: str) -> None:
        self.where, self.data = f"{path}: {table}".rstrip() if table else f"{path}:", data
        for key in data:
            if key not in known:
                named = f"{table} {key}" if table else key
                raise ConfigError(f"{path}: unknown key {named} ({known_text}: {', '.join(sorted(known))})")

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where} {key}: {problem}")

    def get(self, key: str, why: str = "") -> Any:
        if why and key not in self.data:
            raise ConfigError(f"{self.where} {key} is required{why}")
        return self.data.get(key)

    def whole(self, key: str, default: int, low: int) -> int:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise self.error(key, f"must be an integer of at least {low}, got {_what(value)}")
        return value

    def penalty(self, key: str, zero: str) -> float:
        """A finite number of at least 0 (default 0, which ``zero`` says the meaning of)."""
        value = self.get(key)
        value = 0.0 if value is None else value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise self.error(key, f"must be a number of at least 0 (0: {zero}), got {_what(value)}")
        return float(value)

    def names(self, key: str, allowed: Sequence[str], owner: str, *, default: Sequence[str] = ()) -> tuple[str, ...]:
        """A list of distinct strings, each in ``allowed`` (else '<name>' is <owner>)."""
        value = self.get(key)
        if value is None:
            return tuple(default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"must be a list of non-empty strings, got {_what(value)}")
        for name in value:
            if name not in allowed:
                raise self.error(key, f"{name!r} is {owner}")
            if value.count(name) > 1:
                raise self.error(key, f"lists {name!r} twice")
        return tuple(value)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: the plan file does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the plan file is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: the plan file cannot be read ({exc.strerror})") from None


def load_plan(path: str | os.PathLike[str], *, roster: Roster, columns: Mapping[str, Sequence[str]]) -> Plan:
    """Read and validate ``plan.toml`` for a session of ``roster`` whose data parties have ``columns``.

    Raises:
        ConfigError: naming the file and the key
            (``plan.toml: [[analysis]] 2 (days) target: 'x' is no party's column``).
    """
    path = Path(path)
    top = _Table(path, "", _read(path), _TOP_KEYS, "known keys")
    title = top.get("title", " (one line naming the study)")
    if not isinstance(title, str) or not title.strip():
        raise top.error("title", f"must be a non-empty string, got {_what(title)}")
    min_cell = top.whole("min_cell", DEFAULT_MIN_CELL, 1)
    tables = top.get("analysis")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: [[analysis]] is required: one table per analysis (a plan has at least one)")
    owned = "; ".join(f"{party}: {', '.join(names)}" for party, names in columns.items())
    context = _Context(path, roster, tuple(c for names in columns.values() for c in names), f"no party's column ({owned})")
    analyses: list[Analysis] = []
    for number, data in enumerate(tables, 1):
        analysis = context.analysis(number, data)
        taken = next((n for n, a in enumerate(analyses, 1) if a.name == analysis.name), None)
        if taken is not None:
            raise ConfigError(f"{path}: [[analysis]] {number} ({analysis.name}) name: "
                              f"{analysis.name!r} is the name of [[analysis]] {taken} too")
        analyses.append(analysis)
    return Plan(title, tuple(analyses), min_cell)


@dataclass(frozen=True)
class _Context:
    path: Path
    roster: Roster
    joined: tuple[str, ...]
    unknown: str  # why a name is not a column

    def analysis(self, number: int, data: Mapping[str, Any]) -> Analysis:
        where = f"[[analysis]] {number}"
        name = data.get("name")
        if name is None:
            raise ConfigError(f"{self.path}: {where} name is required")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{self.path}: {where} name: must be 1 to 32 of a-z, 0-9, '_' and '-', got {_what(name)}")
        where += f" ({name})"
        kind = data.get("kind")
        if kind is None:
            raise ConfigError(f"{self.path}: {where} kind is required ({' or '.join(KINDS)})")
        if kind not in KINDS:
            raise ConfigError(f"{self.path}: {where} kind: must be one of {', '.join(KINDS)}, got {_what(kind)}")
        table = _Table(self.path, where, data, _KEYS[kind], f"known keys for kind {kind}")
        members = self.roster.members
        recipients = table.names("recipients", members, f"not in the roster ({', '.join(members)})",
                                 default=self.roster.data_parties)
        if not recipients:
            raise table.error("recipients", "must name at least one member")
        method = {"describe": self._describe, "lasso": self._lasso, "linear": self._linear, "logistic": self._logistic}[kind](table)
        return Analysis(name, method, tuple(m for m in members if m in recipients))

    def _describe(self, table: _Table) -> Describe:
        columns = table.names("columns", self.joined, self.unknown, default=self.joined)
        categorical = table.names("categorical", self.joined, self.unknown)
        if not columns and not categorical:
            raise table.error("columns", "the analysis describes nothing: give columns or categorical")
        levels = table.get("levels")
        levels = {} if levels is None else levels
        if not isinstance(levels, dict):
            raise table.error("levels", f"must be a table of level lists by column, got {_what(levels)}")
        for column in levels:
            if column not in categorical:
                raise table.error(f"levels.{column}", f"{column!r} is not in categorical")
        pairs = []
        for column in categorical:
            if column not in levels:
                raise table.error("levels", f"give the levels of the categorical column {column!r} "
                                  f"(e.g. levels = {{ {column} = [1, 2, 3] }}): they are public and fix what is opened")
            value = levels[column]
            if (not isinstance(value, list) or not value or len(value) > MAX_LEVELS
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
                raise table.error(f"levels.{column}", f"must be a list of 1 to {MAX_LEVELS} integers, got {_what(value)}")
            if len(set(value)) != len(value):
                raise table.error(f"levels.{column}", "lists a level twice")
            pairs.append((column, tuple(sorted(value))))
        return Describe(columns, tuple(pairs))

    def _model(self, table: _Table, what: str) -> tuple[str, tuple[str, ...]]:
        """A model's ``target`` and ``features`` (default: every other column)."""
        target = table.get("target", f" (the column the {what} predicts)")
        if not isinstance(target, str) or target not in self.joined:
            raise table.error("target", f"{target!r} is {self.unknown}" if isinstance(target, str)
                              else f"must be a column name, got {_what(target)}")
        if isinstance(given := table.get("features"), list) and target in given:
            raise table.error("features", f"{target!r} is the target; it cannot be a feature too")
        others = tuple(c for c in self.joined if c != target)
        features = table.names("features", others, self.unknown, default=others)
        if not features or len(features) > LASSO_MAX_COLUMNS:
            raise table.error("features", f"must name 1 to {LASSO_MAX_COLUMNS} columns besides the target")
        return target, features

    def _linear(self, table: _Table) -> Linear:
        target, features = self._model(table, "linear model")
        return Linear(target, features, table.penalty("ridge", "ordinary least squares"))

    def _logistic(self, table: _Table) -> Logistic:
        target, features = self._model(table, "logistic regression")
        max_iter = table.whole("max_iter", logistic.DEFAULT_MAX_ITER, 1)
        return Logistic(target, features, max_iter, table.penalty("l2", "maximum likelihood with standard errors"))

    def _lasso(self, table: _Table) -> Lasso:
        target, features = self._model(table, "lasso")
        alpha = table.get("alpha", " (the penalty, as scikit-learn's Lasso(alpha), or a list of them with folds)")
        max_iter = table.whole("max_iter", DEFAULT_MAX_ITER, 1)

        def penalty(value: Any) -> bool:
            return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value > 0

        folds = table.get("folds")
        if folds is None:
            if not penalty(alpha):
                raise table.error("alpha", f"must be a positive number (a list needs folds = K), got {_what(alpha)}")
            return Lasso(target, float(alpha), features, max_iter)
        if not isinstance(folds, int) or isinstance(folds, bool) or not 2 <= folds <= 20:
            raise table.error("folds", f"must be an integer from 2 to 20, got {_what(folds)}")
        if not isinstance(alpha, list) or not 2 <= len(alpha) <= 20 or not all(penalty(a) for a in alpha):
            raise table.error("alpha", f"with folds, must be a list of 2 to 20 positive numbers, got {_what(alpha)}")
        if len(set(alpha)) != len(alpha):
            raise table.error("alpha", "lists a penalty twice")
        return Lasso(target, tuple(float(a) for a in alpha), features, max_iter, folds)
