"""What a party ends with: public outputs and run statistics, never a secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import RunConfig
from ..mpc.describe import Description
from ..mpc import linear, logistic
from ..mpc.lasso import LassoResult
from ..mpc.lasso_cv import LassoCVResult
from ..mpc.linear import LinearResult
from ..mpc.logistic import LogisticResult
from ..plan import Analysis, Describe, Lasso, Linear, Logistic
from ..protocol.steps import STEP_NAMES

__all__ = ["PartyResult", "StepStats", "output_document"]


def output_document(analysis: Analysis, output: Any, config: RunConfig) -> dict[str, Any]:
    """The JSON form of one analysis's output (``--json``'s ``outputs[name]``, the audit's
    output digests, step 9's outcome digest): plain numbers, lists and maps, in a fixed order.

    describe: ``{"kind", "n", "columns": {col: {"count", "mean", "sd"}}, "correlation":
    {"columns", "matrix"}, "frequencies": {col: {level: count or None if suppressed}}}``.
    lasso: ``{"kind", "target", "alpha", "coefficients", "owners", "intercept", "r2",
    "iterations", "converged"}``, with cross-validation also ``"folds"`` and ``"cv_error":
    {alpha: mean validation error}`` (``alpha`` is then the chosen one). logistic: ``{"kind", "target", "n", "coefficients": {col:
    {"estimate", "se", "z", "p", "ci_low", "ci_high"}} (the estimate only with l2 > 0),
    "intercept": {same}, "owners", "l2", "loglik", "iterations", "converged"}``. linear: ``{"kind", "target", "n", "ridge",
    "coefficients": {col: {"estimate", "se", "t", "p", "ci_low", "ci_high"}} (the estimate
    only with ridge), "intercept", "owners", "r2", "r2_adj", "sigma2", "df_resid"}``.
    """
    method = analysis.method
    if isinstance(method, Describe):
        assert isinstance(output, Description)
        return {
            "kind": "describe",
            "n": output.m,
            "columns": {c.name: {"count": c.count, "mean": c.mean, "sd": c.sd} for c in output.numeric},
            "correlation": {"columns": list(method.columns), "matrix": [list(row) for row in output.correlation]},
            "frequencies": {
                column: {str(level.level): level.count for level in levels} for column, levels in output.categorical.items()
            },
        }
    if isinstance(method, Linear):
        assert isinstance(output, LinearResult)
        document: dict[str, Any] = {"kind": "linear", "target": method.target, "n": output.n, "ridge": method.ridge}
        keys = ("estimate", "se", "t", "p", "ci_low", "ci_high")
        if method.ridge > 0:  # no standard errors: a biased estimator (docs/linear.md)
            rows = [{"estimate": b} for b in (*output.coefficients, output.intercept)]
        else:
            rows = [dict(zip(keys, r, strict=True)) for r in linear.inference(output)]
        document["coefficients"] = dict(zip(method.features, rows[:-1], strict=True))
        document["intercept"] = rows[-1]
        document["owners"] = {c: config.owner_of(c) for c in method.features}
        document.update(r2=output.r2, r2_adj=output.r2_adj, sigma2=output.sigma2, df_resid=output.df_resid)
        return document
    if isinstance(method, Logistic):
        assert isinstance(output, LogisticResult)
        if method.l2 > 0:  # no standard errors: a penalised, biased estimator (docs/logistic.md)
            coefficients = [{"estimate": b} for b in output.coefficients]
            intercept = {"estimate": output.intercept}
        else:
            stats = logistic.inference(output)

            def row(s: logistic.Inference) -> dict[str, float]:
                return {"estimate": s.estimate, "se": s.se, "z": s.z, "p": s.p, "ci_low": s.ci_low, "ci_high": s.ci_high}

            coefficients = [row(v) for v in stats["coefficients"]]  # type: ignore[union-attr]
            intercept = row(stats["intercept"])  # type: ignore[arg-type]
        return {
            "kind": "logistic", "target": method.target, "n": output.n,
            "coefficients": dict(zip(method.features, coefficients, strict=True)),
            "intercept": intercept,
            "owners": {c: config.owner_of(c) for c in method.features},
            "l2": method.l2,
            "loglik": output.loglik, "iterations": output.iterations, "converged": output.converged,
        }
    assert isinstance(method, Lasso)
    if isinstance(output, LassoCVResult):
        return {
            "kind": "lasso", "target": method.target, "alpha": output.alpha, "folds": method.folds,
            "cv_error": {repr(a): e for a, e in zip(output.alphas, output.cv_error, strict=True)},
            **_lasso_document(output.model, method.features, config),
        }
    assert isinstance(output, LassoResult)
    return {"kind": "lasso", "target": method.target, "alpha": method.alpha, **_lasso_document(output, method.features, config)}


def _lasso_document(r: LassoResult, features: tuple[str, ...], config: RunConfig) -> dict[str, Any]:
    return {
        "coefficients": dict(zip(features, (float(c) for c in r.coefficients), strict=True)),
        "owners": {c: config.owner_of(c) for c in features},
        "intercept": float(r.intercept),
        "r2": float(r.r2),
        "iterations": int(r.iterations),
        "converged": bool(r.converged),
    }


@dataclass
class StepStats:
    step: int
    seconds: float = 0.0
    bytes_sent: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    messages_received: int = 0
    #: MPC communication rounds this party took in the step (steps 7 and 8; 0 elsewhere)
    rounds: int = 0
    deleted: list[str] = field(default_factory=list)


@dataclass
class PartyResult:
    """What one party ends with: public outputs and run statistics, no secrets."""

    role: str
    intersection_size: int
    #: the first lasso of the plan this party received (the default plan's ``lasso``), or None
    result: LassoResult | None
    #: that lasso's features and their owners
    features: tuple[str, ...]
    owners: tuple[str, ...]
    steps: dict[int, StepStats]
    rows: int = 0
    dropped_missing: int = 0
    #: every value step 8 opened, as ``(analysis, label, count)``, whoever received it
    revealed: list[tuple[str, str, int]] = field(default_factory=list)
    #: hex of this party's outcome digest (``SharedSteps.outcome_digest``: every output it received)
    outcome_digest: str | None = None
    #: the outputs this party received, by analysis name: :func:`output_document` of each
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def result_document(self) -> dict[str, Any] | None:
        """The alias lasso's output as ``--json``'s ``result`` (without ``kind``, as before plans)."""
        if self.result is None:
            return None
        document = next(d for d in self.outputs.values() if d["kind"] == "lasso")
        return {k: v for k, v in document.items() if k not in ("kind", "target", "alpha")}

    def document(self) -> dict[str, Any]:
        """The JSON-able run document (``simulate --json`` merges every party's)."""
        return {
            "party": self.role,
            "intersection_size": self.intersection_size,
            "result": self.result_document(),
            "outputs": self.outputs,
            "rows": self.rows,
            "dropped_missing": self.dropped_missing,
            "steps": [
                {
                    "step": s.step,
                    "name": STEP_NAMES[s.step],
                    "party": self.role,
                    "seconds": round(s.seconds, 4),
                    "bytes_sent": s.bytes_sent,
                    "messages_sent": s.messages_sent,
                    "rounds": s.rounds,
                    "deleted": s.deleted,
                }
                for s in sorted(self.steps.values(), key=lambda s: s.step)
            ],
        }
