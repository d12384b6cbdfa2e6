"""What every attack shares: the result type, its questions, and how a score becomes a verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ...protocol.steps import Step
from ..stats import ALPHA
from ..views import RecordedRun


#: The view "after the run" (``Step.DONE``): nothing but the output should remain.
AFTER_RUN = int(Step.DONE)

SINGLE_OUT, LINK, INFER = "single out", "link", "infer"


@dataclass(frozen=True)
class AttackResult:
    """One attack's measured outcome.

    Attributes:
        name: the attack function's name.
        question: ``"single out"``, ``"link"`` or ``"infer"``.
        party_or_coalition: the attacker: one role, or ``"hospital+ttp"`` for a coalition.
        step: the step whose view the attacker used (:data:`AFTER_RUN`: after the run).
        success_rate: the fraction of trials the attacker got right.
        baseline: what blind guessing achieves on average.
        trials: how many guesses were scored.
        confidence_bound: blind guessing stays at or below this with probability
            ``1 - ALPHA`` (for ``trials`` trials).
        verdict: ``"no advantage"`` or ``"succeeds"``.
        explanation: what the attacker tried and what the numbers mean, in words.
        variant: the run's protocol (``"protocol as specified"`` or a broken variant).
        details: further measured figures (JSON-able).
    """

    name: str
    question: str
    party_or_coalition: str
    step: int
    success_rate: float
    baseline: float
    trials: int
    confidence_bound: float
    verdict: str
    explanation: str
    variant: str = "protocol as specified"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.verdict == "succeeds"

    def document(self) -> dict[str, Any]:
        return asdict(self)


def attack_result(
    run: RecordedRun, name: str, question: str, who: Sequence[str], step: int, successes: int, trials: int,
    baseline: float, bound_successes: int, explanation: str, **details: Any,
) -> AttackResult:
    rate = successes / trials if trials else 0.0
    bound = bound_successes / trials if trials else 0.0
    verdict = "succeeds" if trials and successes > bound_successes else "no advantage"
    return AttackResult(
        name=name, question=question, party_or_coalition="+".join(who), step=step,
        success_rate=rate, baseline=baseline, trials=trials, confidence_bound=bound, verdict=verdict,
        explanation=explanation, variant=run.variant_name,
        details={"successes": successes, "alpha": ALPHA, **details},
    )
