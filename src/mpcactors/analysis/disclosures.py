"""What the protocol reveals on purpose, and what that discloses (computed, not an attack).

:func:`disclosures` lists the table sizes, ``m``, the column counts and the model,
each with who learns it and what it says about persons; :func:`leave_one_out_influence`
measures how far one person moves each published coefficient (scikit-learn on the
plaintext join, which the leak analysis has); :func:`plan_disclosures` lists, per
analysis of the study plan, what is opened to whom and what that discloses, measured.
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..plan import OTHER, Describe, Lasso, Plan
from ..protocol.roster import TTP
from .stats import subsample
from .views import RecordedRun

__all__ = ["Disclosure", "disclosures", "lasso_fit_plaintext", "leave_one_out_influence", "plan_disclosures"]


@dataclass(frozen=True)
class Disclosure:
    """One thing the protocol reveals by design, to whom, and what that discloses."""

    item: str
    learned_by: tuple[str, ...]
    value: Any
    discloses: str

    def document(self) -> dict[str, Any]:
        d = asdict(self)
        d["learned_by"] = list(self.learned_by)
        return d


def lasso_fit_plaintext(x: np.ndarray, y: np.ndarray, alpha: float, *, iterations: int = 5000, tol: float = 1e-10) -> tuple[np.ndarray, float]:
    """Lasso with intercept by coordinate descent (scikit-learn's objective and alpha).

    Minimises ``||y - b0 - x b||^2 / (2m) + alpha * ||b||_1``. Plain numpy, for the
    disclosure analysis (how much one person moves the model), not for the protocol.
    """
    m, d = x.shape
    mean_x, mean_y = x.mean(axis=0), y.mean()
    xc, yc = x - mean_x, y - mean_y
    norms = (xc * xc).sum(axis=0) / m
    beta = np.zeros(d)
    residual = yc.copy()
    for _ in range(iterations):
        largest = 0.0
        for j in range(d):
            if norms[j] == 0:
                continue
            old = beta[j]
            rho = xc[:, j] @ residual / m + norms[j] * old
            new = math.copysign(max(abs(rho) - alpha, 0.0), rho) / norms[j]
            if new != old:
                residual -= xc[:, j] * (new - old)
                beta[j] = new
                largest = max(largest, abs(new - old))
        if largest < tol:
            break
    return beta, float(mean_y - mean_x @ beta)


def disclosures(run: RecordedRun, *, leave_one_out: int = 100, seed: int | None = None) -> list[Disclosure]:
    """What ``m``, the table sizes, the column counts and the output disclose (computed).

    Figures come from the transcript (what was actually sent) and the ground truth.
    ``leave_one_out`` rows (a random sample) are each left out of a plaintext lasso fit
    on the joined table, to measure how far one person moves the published model.
    """
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    t = run.transcript
    data, everyone = run.data_parties, run.roster.members
    out: list[Disclosure] = []
    sizes = {}
    for role in data:
        end = t.select(step=4, sender=role, receiver=TTP, kind="rows_end")
        sizes[role] = int(end[-1].body["rows"]) if end else len(run.tables[role])
    out.append(Disclosure(
        "table sizes", (TTP,), sizes,
        "The TTP learns how many usable rows each data party has (after rows with missing values were dropped). "
        "The data parties do not learn each other's size from the protocol.",
    ))
    announced = t.select(step=4, kind="intersection")
    m = int(announced[0].body["size"]) if announced else run.intersection_size
    shares = ", ".join(f"{m / n:.1%} of the {role}'s rows" for role, n in sizes.items() if n)
    first, two = data[0], len(data) == 2
    out.append(Disclosure(
        "intersection size m", everyone, m,
        f"All {len(everyone)} parties learn that {m} persons are in {'both tables' if two else f'all {len(data)} tables'}: "
        f"{shares}. For a given own patient, the {first}'s best guess that the person is also in "
        f"{'the other table' if two else 'every other table'} is right with probability {m / max(sizes[first], 1):.3f} "
        "(the same for every patient: m says nothing about who). Repeated runs on inputs that differ in one person "
        "would turn m into a membership test for that person, so re-runs must be controlled organisationally.",
    ))
    columns = {e.sender: int(e.body["columns"]) for e in t.select(step=3, kind="public_key")}
    out.append(Disclosure(
        "column counts and names", everyone,
        {**{party: len(columns) for party, columns in run.config.columns.items()},
         "announced_in_step_3": columns},
        "Column names and counts are public metadata agreed in the run configuration; they describe the data set, "
        "not any person.",
    ))
    result = run.simulation.result if run.simulation is not None else None
    if result is not None:
        model = {
            "coefficients": dict(zip(run.config.features, (float(c) for c in result.coefficients), strict=True)),
            "intercept": float(result.intercept), "r2": float(result.r2), "iterations": int(result.iterations),
        }
        sensitivity = _leave_one_out(run, leave_one_out, rng)
        opened: dict[str, int] = {}
        for analysis, label, count in getattr(run.simulation.parties[run.roster.compute_parties[0]], "revealed", []):
            key = f"{analysis}: {label}"
            opened[key] = opened.get(key, 0) + int(count)
        model["opened_in_clear"] = opened
        opened_text = (
            "During step 8 the compute parties opened in clear only: "
            + ", ".join(f"{count} value(s) labelled '{label}'" for label, count in opened.items())
            + " (the convergence checks are the iteration count; the rest is the output). "
        ) if opened else ""
        sent = (
            f"The compute parties send the opened model to {', '.join(run.outside)} (outside the computation) in "
            "step 8. " if run.outside else ""
        )
        out.append(Disclosure(
            "the lasso model", everyone, model,
            opened_text + sent
            + f"The published output: one coefficient per feature, the intercept, R^2 and the number of iterations. "
            f"These are aggregates over all {m} joined persons. Leaving one person out of the data (tried for "
            f"{sensitivity['rows_tried']} persons) changes a coefficient by at most {sensitivity['max_change']:.3g} "
            f"({sensitivity['max_relative_change']:.2%} of the largest coefficient): that is how much any one person "
            "can move what is published, and why a model trained on very few persons should not be released.",
        ))
        out[-1].value["leave_one_out"] = sensitivity
    return out


def _leave_one_out(run: RecordedRun, count: int, rng: random.Random) -> dict[str, Any]:
    config = run.config
    joined = _joined(run)
    features = [c for c in config.joined_columns if c != config.target]
    influence = leave_one_out_influence(np.column_stack([joined[c] for c in features]), joined[config.target],
                                        config.alpha, rows=subsample(range(len(joined[config.target])), count, rng))
    largest = max(influence["max_change"], default=0.0)
    scale = max((abs(c) for c in influence["coefficients"]), default=0.0) or 1.0
    return {"rows_tried": influence["rows_tried"], "max_change": largest, "max_relative_change": largest / scale}


def _joined(run: RecordedRun) -> dict[str, np.ndarray]:
    """The plaintext joined table, decoded, by column (the leak analysis's ground truth)."""
    values = run.joined_values().astype(np.float64) / float(1 << run.config.params.frac_bits)
    return {column: values[:, j] for j, column in enumerate(run.config.joined_columns)}


def _sklearn_lasso() -> Any:
    try:
        from sklearn.linear_model import Lasso
    except ImportError:  # an optional dependency: the leak analysis measures with the reference
        raise ConfigError("the leave-one-out influence is measured with scikit-learn: "
                          "install mpcactors[verify] (or [test])") from None
    return Lasso


def leave_one_out_influence(x: np.ndarray, y: np.ndarray, alpha: float, *, rows: Sequence[int] | None = None,
                            max_iter: int = 100_000) -> dict[str, Any]:
    """How far one person moves each coefficient of scikit-learn's ``Lasso(alpha)`` of ``y`` on ``x``.

    For each row ``i`` of ``rows`` (default: every row) the model is refitted without it;
    per coefficient ``j`` the result holds ``max_i |coef_j(all) - coef_j(all but i)|``
    (``max_change``), that change relative to ``|coef_j|`` (``None`` for a coefficient
    the lasso set to 0) and in standard units (``max_change * sd(x_j) / sd(y)``: the
    change of a standardised coefficient, defined for a zero one too). The intercept's
    largest change is ``intercept_change``. The fits are tight (``tol = 1e-12``) so that
    the changes, of order ``1/m``, are not solver noise.
    """
    Lasso = _sklearn_lasso()
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    m = len(y)
    rows = list(range(m)) if rows is None else list(rows)
    full = Lasso(alpha=alpha, tol=1e-12, max_iter=max_iter).fit(x, y)
    again = Lasso(alpha=alpha, tol=1e-12, max_iter=max_iter, warm_start=True)
    change = np.zeros(x.shape[1])
    intercept = 0.0
    for r in rows:
        keep = np.ones(m, dtype=bool)
        keep[r] = False
        again.coef_ = full.coef_.copy()
        again.fit(x[keep], y[keep])
        change = np.maximum(change, np.abs(again.coef_ - full.coef_))
        intercept = max(intercept, abs(float(again.intercept_ - full.intercept_)))
    sd_y = float(np.std(y, ddof=1)) or 1.0
    return {
        "rows_tried": len(rows),
        "coefficients": [float(c) for c in full.coef_],
        "intercept": float(full.intercept_),
        "max_change": [float(c) for c in change],
        "relative_change": [float(c / abs(b)) if b != 0 else None for c, b in zip(change, full.coef_, strict=True)],
        "standardised_change": [float(c * np.std(x[:, j], ddof=1) / sd_y) for j, c in enumerate(change)],
        "intercept_change": intercept,
    }


#: At most this many persons are left out one at a time per model (a random sample above it).
LEAVE_ONE_OUT_ROWS = 200


def plan_disclosures(run: RecordedRun, plan: Plan, *, leave_one_out: int = LEAVE_ONE_OUT_ROWS,
                     seed: int | None = None) -> dict[str, Any]:
    """Per analysis of ``plan``: what is opened to whom (:meth:`Plan.manifest`) and the disclosure, measured.

    describe: the small-cell rule, the plan's differencing warnings, and for every pair
    of describe analyses that count one column over different levels, the differencing
    attack run on what ``describe_fit`` really opens on this run's joined column (when
    the column is in the joined table). lasso: :func:`leave_one_out_influence` on the
    plaintext join. Compute parties receive the control openings too.
    """
    from .attacks.differencing import differencing_attack, run_describe_pair

    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    joined = _joined(run)
    computes = tuple(run.roster.compute_parties)
    manifest = plan.manifest()
    warnings = list(plan.warnings)
    shown: list[dict[str, Any]] = []
    describes = [a for a in plan.analyses if isinstance(a.method, Describe)]
    for i, first in enumerate(describes):
        for second in describes[i + 1:]:
            levels = dict(second.method.categorical)  # type: ignore[union-attr]
            for column, mine in first.method.categorical:  # type: ignore[union-attr]
                if column not in levels or levels[column] == mine:
                    continue
                shown.append(_differencing_shown(joined, plan, first.name, second.name, column, mine, levels[column],
                                                 differencing_attack, run_describe_pair))
    analyses = []
    for a in plan.analyses:
        opened = [{"output": o.output, "shape": list(o.shape), "values": o.size, "label": o.label,
                   "to": list(dict.fromkeys((*o.recipients, *computes))) if o.control else list(o.recipients),
                   "control": o.control} for o in manifest if o.analysis == a.name]
        entry: dict[str, Any] = {"analysis": a.name, "kind": a.kind, "recipients": list(a.recipients),
                                 "opened": opened, "warnings": [w for w in warnings if f"{a.name!r}" in w]}
        if isinstance(a.method, Describe):
            entry["measured"] = _describe_text(plan, a.name, a.method, shown)
        else:
            entry.update(_lasso_measured(joined, a.method, leave_one_out, rng))
        analyses.append(entry)
    return {"title": plan.title, "digest": plan.digest.hex(), "min_cell": plan.min_cell, "warnings": warnings,
            "analyses": analyses, "differencing": shown}


def _differencing_shown(joined: dict[str, np.ndarray], plan: Plan, first: str, second: str, column: str,
                        levels: tuple[int, ...], others: tuple[int, ...], attack: Any, run_pair: Any) -> dict[str, Any]:
    """The differencing attack on two describe analyses of ``column``, run on this run's joined column."""
    out: dict[str, Any] = {"analyses": [first, second], "column": column, "levels": [list(levels), list(others)]}
    values = joined.get(column)
    if values is None or not np.allclose(values, np.round(values)):
        out["shown"] = False
        out["text"] = (f"{column!r} is not an integer-coded column of this run's joined table, so the attack was not "
                       "run here; tests/analysis/test_differencing.py runs it on describe's real openings")
        return out
    codes = [int(v) for v in np.round(values)]
    a, b, _ = run_pair(codes, levels, others, min_cell=plan.min_cell, column=column)
    found = attack(a.m, column, a.categorical[column], b.categorical[column])
    truth = {level: codes.count(level) for level in found.levels}
    cells = []
    for (k, level), count in found.recovered.items():
        declared = (levels, others)[k]
        actual = (sum(1 for c in codes if c not in declared) if level == OTHER else codes.count(level))
        cells.append({"analysis": (first, second)[k], "level": str(level), "recovered": count, "actual": actual})
    out.update(shown=True, recovered=cells, levels_recovered={str(k): v for k, v in found.levels.items()},
               exact=all(c["recovered"] == c["actual"] for c in cells) and all(found.levels[k] == truth[k] for k in truth))
    if cells:
        listed = "; ".join(f"{c['level']} in {c['analysis']!r}: {c['recovered']} (actual {c['actual']})" for c in cells)
        out["text"] = (f"Shown on this run: {first!r} counts {column!r} over {list(levels)} and {second!r} over "
                       f"{list(others)}; a recipient of both solves the opened cells and m for counts that min_cell = "
                       f"{plan.min_cell} suppressed: {listed}.")
    else:
        out["text"] = (f"Run on this run's data, the two outputs of {column!r} determine no suppressed count (no level "
                       "happened to be small in the right place); on other data they can, which is why the plan warns.")
    return out


def _describe_text(plan: Plan, name: str, method: Describe, shown: list[dict[str, Any]]) -> list[str]:
    lines = [f"Means, standard deviations and correlations are aggregates over all m persons of the join."]
    for column, levels in method.categorical:
        lines.append(f"{column!r}: the count of each of {len(levels)} levels and 'other'; a count below min_cell = "
                     f"{plan.min_cell} is suppressed (only the bit 'below min_cell' is opened, to the compute parties "
                     "too), and so is its complement when one level alone is small; an empty 'other' is shown as 0.")
    lines += [d["text"] for d in shown if name in d["analyses"]]
    return lines


def _lasso_measured(joined: dict[str, np.ndarray], method: Lasso, count: int, rng: random.Random) -> dict[str, Any]:
    if any(c not in joined for c in (method.target, *method.features)):
        return {"measured": ["the model's columns are not all in this run's joined table: not measured"]}
    x = np.column_stack([joined[c] for c in method.features])
    y = joined[method.target]
    influence = leave_one_out_influence(x, y, method.alpha, rows=subsample(range(len(y)), count, rng),
                                        max_iter=max(method.max_iter, 100_000))
    largest = max(range(len(method.features)), key=lambda j: influence["standardised_change"][j])
    relative = [r for r in influence["relative_change"] if r is not None]
    text = (
        f"Leaving one person out ({influence['rows_tried']} tried, of {len(y)}) moves a coefficient by at most "
        f"{max(influence['standardised_change']):.3g} in standard units (coefficient of "
        f"{method.features[largest]!r}), {max(relative, default=0.0):.2%} of a non-zero coefficient's value at most. "
        "A party that receives the model learns about an individual only through this influence: the model "
        "fitted with and without any one person differs by at most this much. A small change means no one person "
        "shows in the model; a large one (relative to a small coefficient, or in a small cohort) means a recipient "
        "who knows everyone else's data could learn something about the person who moved it."
    )
    return {"measured": [text], "leave_one_out": {"features": list(method.features), **influence}}
