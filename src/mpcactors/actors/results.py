"""What a party ends with: public outputs and run statistics, never a secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..protocol.steps import STEP_NAMES

__all__ = ["PartyResult", "StepStats"]


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
    result: Any  # mpc.lasso.LassoResult | None
    features: tuple[str, ...]
    owners: tuple[str, ...]
    steps: dict[int, StepStats]
    rows: int = 0
    dropped_missing: int = 0
    #: every value step 8 opened in clear, as ``(label, count)``: the convergence bits and the result
    revealed: list[tuple[str, int]] = field(default_factory=list)
    #: hex of the step-9 outcome digest every party confirmed (``SharedSteps.outcome_digest``)
    outcome_digest: str | None = None

    def result_document(self) -> dict[str, Any] | None:
        if self.result is None:
            return None
        r = self.result
        return {
            "coefficients": dict(zip(self.features, (float(c) for c in r.coefficients), strict=True)),
            "owners": dict(zip(self.features, self.owners, strict=True)),
            "intercept": float(r.intercept),
            "r2": float(r.r2),
            "iterations": int(r.iterations),
            "converged": bool(r.converged),
        }

    def document(self) -> dict[str, Any]:
        """The JSON-able run document (``simulate --json`` merges every party's)."""
        return {
            "party": self.role,
            "intersection_size": self.intersection_size,
            "result": self.result_document(),
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
