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
from .plan import OTHER, Describe, Lasso, Linear, Logistic
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
        """The first lasso of the plan (the default plan's ``lasso``), from a party that received it."""
        return next((p.result for p in self.parties.values() if p.result is not None), None)

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        """Every analysis's output by name, in the plan's order, as its recipients received it
        (step 9 confirmed that every two recipients hold the same)."""
        found: dict[str, dict[str, Any]] = {}
        for analysis in self.config.study_plan.analyses:
            holder = next((r for r in analysis.recipients if analysis.name in self.parties[r].outputs), None)
            if holder is not None:
                found[analysis.name] = self.parties[holder].outputs[analysis.name]
        return found

    def document(self) -> dict[str, Any]:
        data_parties = self.config.roster.data_parties
        plan = self.config.study_plan
        holder = next((self.parties[r] for r in data_parties if self.parties[r].result is not None), self._first)
        doc: dict[str, Any] = {
            "intersection_size": self.intersection_size,
            "plan": {"title": plan.title, "digest": plan.digest.hex(),
                     "recipients": {a.name: list(a.recipients) for a in plan.analyses}},
            "outputs": self.outputs,
            "result": holder.result_document(),
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
    """God view: the shared table equals the plaintext join (as a multiset of rows), and
    every output equals its plaintext oracle (numpy for describe, scikit-learn for lasso)."""
    config = simulation.config
    assert simulation.god_view is not None
    encoded = {name: config.encode_table(name, table) for name, table in tables.items()}
    columns, expected = plaintext_join(*encoded.values())
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
    if not config.lasso:
        return
    # the shared table's row order is the TTP's, which the cross-validation folds follow
    data = actual.astype(np.float64) / float(1 << config.params.frac_bits)
    outputs = simulation.outputs
    checks: dict[str, Any] = {}
    for analysis in config.study_plan.analyses:
        if analysis.name not in outputs:
            continue
        method = analysis.method
        if isinstance(method, Describe):
            checks[analysis.name] = compare_with_numpy(outputs[analysis.name], method, data, columns,
                                                       config.study_plan.min_cell)
        elif isinstance(method, Linear | Logistic):
            checks[analysis.name] = compare_with_statsmodels(outputs[analysis.name], method, data, columns)
        else:
            checks[analysis.name] = compare_with_sklearn(outputs[analysis.name], method, data, columns)
    simulation.verification["analyses"] = checks
    first_lasso = next((n for n, c in checks.items() if outputs[n]["kind"] == "lasso"), None)
    if first_lasso is not None:
        simulation.verification["lasso"] = checks[first_lasso]
    simulation.verified = simulation.verified and all(c["within_tolerance"] for c in checks.values())


#: describe's means, SDs and correlations against numpy (docs/describe.md: the error is far below)
DESCRIBE_TOLERANCE = 1e-6


def compare_with_numpy(
    output: dict[str, Any], method: Describe, data: np.ndarray, columns: Sequence[str], min_cell: int,
) -> dict[str, Any]:
    """numpy's mean, SD (``ddof=1``), correlation and level counts on the plaintext join,
    and the largest relative difference from ours; the counts must be exact and suppressed
    exactly where the rules say (below ``min_cell``, an empty ``other`` shown as 0, and one
    complement)."""
    x = data[:, [columns.index(c) for c in method.columns]]
    means, sds = x.mean(axis=0), x.std(axis=0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(x.T).reshape(len(method.columns), len(method.columns)) if len(method.columns) else np.zeros((0, 0))
    ours = output["columns"]
    worst = 0.0

    def relative(a: float, b: float) -> float:
        return abs(a - b) / max(abs(b), 1e-300) if b != 0 else abs(a)

    for j, name in enumerate(method.columns):
        worst = max(worst, relative(ours[name]["mean"], means[j]), relative(ours[name]["sd"], sds[j]))
        for k in range(len(method.columns)):
            mine = output["correlation"]["matrix"][j][k]
            if mine is not None and sds[j] > 0 and sds[k] > 0:
                worst = max(worst, abs(mine - corr[j, k]))
    counts: dict[str, dict[str, int]] = {}
    exact = True
    for column, levels in method.categorical:
        codes = data[:, columns.index(column)]
        true = {str(v): int(np.sum(codes == v)) for v in levels}
        true[OTHER] = int(len(codes) - sum(true.values()))
        counts[column] = true
        shown = output["frequencies"][column]
        # `other` is small only when it is not empty (empty, it is shown as 0)
        small = [level for level, n in true.items() if n < min_cell and (level != OTHER or n > 0)]
        for level, n in true.items():
            if shown[level] is not None and (shown[level] != n or level in small):
                exact = False
        # one complement protects a lone small level, or a small level beside a small
        # `other` (which everyone who knows the code list may take to be empty)
        lone = len(small) == 1 or (len(small) == 2 and OTHER in small)
        if sum(v is None for v in shown.values()) != len(small) + (lone and len(true) > len(small)):
            exact = False
    return {
        "numpy": {
            "columns": {name: {"mean": float(means[j]), "sd": float(sds[j])} for j, name in enumerate(method.columns)},
            "correlation": [[None if np.isnan(v) else float(v) for v in row] for row in corr.tolist()] if len(method.columns) else [],
            "frequencies": counts,
        },
        "max_relative_difference": worst,
        "counts_exact": exact,
        "tolerance": DESCRIBE_TOLERANCE,
        "within_tolerance": worst <= DESCRIBE_TOLERANCE and exact,
    }


def compare_with_sklearn(
    output: dict[str, Any], method: Lasso, data: np.ndarray, columns: Sequence[str], tolerance: float = 1e-3,
) -> dict[str, Any]:
    """Fit scikit-learn's ``Lasso`` on the plaintext join; report the largest difference.

    The tolerance is relative to the largest coefficient (docs/lasso.md).
    """
    from sklearn.linear_model import Lasso as SklearnLasso

    features = [columns.index(c) for c in method.features]
    target = columns.index(method.target)
    cv: dict[str, Any] = {}
    alpha = method.alpha
    if isinstance(alpha, tuple):  # the same folds: by position in the shared (the TTP's) row order
        from sklearn.model_selection import KFold

        errors = []
        for a in alpha:
            per_fold = []
            for train, test in KFold(n_splits=method.folds).split(data):
                fit = SklearnLasso(alpha=a, tol=1e-12, max_iter=1_000_000).fit(data[train][:, features], data[train, target])
                per_fold.append(float(np.mean((fit.predict(data[test][:, features]) - data[test, target]) ** 2)))
            errors.append(float(np.mean(per_fold)))
        alpha = alpha[min(range(len(alpha)), key=lambda k: (errors[k], -alpha[k]))]
        cv_rel = max(abs(output["cv_error"][repr(a)] - e) / e for a, e in zip(method.alpha, errors))
        cv = {"cv_error": {repr(a): e for a, e in zip(method.alpha, errors)}, "alpha": alpha,
              "cv_max_relative_difference": cv_rel, "same_alpha": alpha == output["alpha"]}
    model = SklearnLasso(alpha=alpha, tol=1e-12, max_iter=1_000_000)
    model.fit(data[:, features], data[:, target])
    r2 = float(model.score(data[:, features], data[:, target]))
    ours = [output["coefficients"][c] for c in method.features]
    ref = [float(c) for c in model.coef_]
    diffs = [abs(a - b) for a, b in zip(ours, ref, strict=True)]
    largest = max(max(abs(c) for c in ref), 1e-12)
    worst = max(diffs + [abs(output["intercept"] - float(model.intercept_)), abs(output["r2"] - r2)])
    within = worst / largest <= tolerance
    if cv:  # docs/lasso.md: the CV errors within 1e-4 relative, the same chosen alpha
        within = within and cv["same_alpha"] and cv["cv_max_relative_difference"] <= 1e-4
    return {
        "sklearn": {
            "coefficients": dict(zip(method.features, ref, strict=True)),
            "intercept": float(model.intercept_),
            "r2": r2,
            **cv,
        },
        "max_abs_difference": worst,
        "max_relative_difference": worst / largest,
        "tolerance": tolerance,
        "within_tolerance": within,
    }


def compare_with_statsmodels(
    output: dict[str, Any], method: Linear | Logistic, data: np.ndarray, columns: Sequence[str],
) -> dict[str, Any]:
    """Fit statsmodels' ``Logit`` or ``OLS`` with an intercept on the plaintext join (for
    ridge, scikit-learn's ``Ridge``; for ``l2 > 0``, its ``LogisticRegression(C=1/l2)``);
    report the largest relative difference of the estimates and standard errors
    (docs/logistic.md: 1e-4; docs/linear.md: 1e-6)."""
    import statsmodels.api as sm

    features = data[:, [columns.index(c) for c in method.features]]
    y = data[:, columns.index(method.target)]
    x = sm.add_constant(features, has_constant="add")
    ridge = isinstance(method, Linear) and method.ridge > 0
    if ridge:
        from sklearn.linear_model import Ridge

        model = Ridge(alpha=method.ridge).fit(features, y)
        params, bse = np.concatenate([[model.intercept_], model.coef_]), None
        extra: dict[str, float] = {}
    elif isinstance(method, Logistic) and method.l2 > 0:
        from sklearn.linear_model import LogisticRegression

        # the exact Newton solver: lbfgs stops 1e-3 to 1e-4 away on raw columns
        penalised = LogisticRegression(C=1 / method.l2, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(features, y)
        params, bse = np.concatenate([penalised.intercept_, penalised.coef_[0]]), None
        prob = penalised.predict_proba(features)[:, 1]
        extra = {"loglik": float(np.sum(y * np.log(prob) + (1 - y) * np.log1p(-prob)))}
    elif isinstance(method, Logistic):
        fit = sm.Logit(y, x).fit(disp=0, maxiter=100)
        params, bse, extra = fit.params, fit.bse, {"loglik": float(fit.llf)}
    else:
        fit = sm.OLS(y, x).fit()
        params, bse, extra = fit.params, fit.bse, {"r2": float(fit.rsquared), "sigma2": float(fit.scale)}
    ours = [output["intercept"]] + [output["coefficients"][c] for c in method.features]

    def rel(a: float, b: float) -> float:
        return abs(a - b) / max(abs(b), 1e-12)

    worst = max(rel(o["estimate"], b) for o, b in zip(ours, params, strict=True))
    if bse is not None:
        worst = max(worst, max(rel(o["se"], s) for o, s in zip(ours, bse, strict=True)))
    for key, value in extra.items():
        worst = max(worst, rel(output["loglik" if key == "loglik" else key], value))

    def row(j: int) -> dict[str, float]:
        return {"estimate": float(params[j]), **({} if bse is None else {"se": float(bse[j])})}

    tolerance = 1e-4 if isinstance(method, Logistic) else 1e-6
    return {
        "statsmodels": {"coefficients": {c: row(j + 1) for j, c in enumerate(method.features)}, "intercept": row(0), **extra},
        "max_relative_difference": worst,
        "tolerance": tolerance,
        "within_tolerance": worst <= tolerance,
    }
