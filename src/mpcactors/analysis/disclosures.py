"""What the protocol reveals on purpose, and what that discloses (computed, not an attack).

:func:`disclosures` lists the table sizes, ``m``, the column counts and the model,
each with who learns it and what it says about persons; :func:`lasso_fit_plaintext`
measures how far one person moves the published model.
"""

from __future__ import annotations

import math
import random
import secrets
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..protocol.roster import TTP
from .stats import subsample
from .views import RecordedRun

__all__ = ["Disclosure", "disclosures", "lasso_fit_plaintext"]


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
    joined = run.joined_values().astype(np.float64) / float(1 << config.params.frac_bits)
    target = config.joined_columns.index(config.target)
    features = [i for i in range(joined.shape[1]) if i != target]
    x, y = joined[:, features], joined[:, target]
    full, _ = lasso_fit_plaintext(x, y, config.alpha)
    rows = subsample(range(len(y)), count, rng)
    largest = 0.0
    for r in rows:
        keep = np.ones(len(y), dtype=bool)
        keep[r] = False
        beta, _ = lasso_fit_plaintext(x[keep], y[keep], config.alpha)
        largest = max(largest, float(np.max(np.abs(beta - full))))
    scale = float(np.max(np.abs(full))) or 1.0
    return {"rows_tried": len(rows), "max_change": largest, "max_relative_change": largest / scale}
