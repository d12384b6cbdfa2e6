"""Generate the protocol diagram in ``docs/protocol.md`` from the step table.

``python -m mpcactors.protocol.diagram`` prints a Mermaid sequence diagram built only
from :data:`~mpcactors.protocol.steps.MESSAGES` and
:data:`~mpcactors.protocol.steps.REQUIRES_DELETED`, so the picture cannot drift from
what the scheduler enforces (a test compares it with the committed document).
"""

from __future__ import annotations

from .steps import DONE, MESSAGES, REQUIRES_DELETED, ROLES, STEP_NAMES, Flow

__all__ = ["mermaid"]

_LABEL = {"hospital": "H", "insurer": "I", "ttp": "T"}


def mermaid() -> str:
    lines = ["sequenceDiagram"]
    lines += [f"    participant {_LABEL[r]} as {r}" for r in ROLES]
    for step in range(1, DONE + 1):
        for role in ROLES:
            needed = REQUIRES_DELETED[role].get(step)
            if needed:
                where = "before the end" if step == DONE else f"before step {step}"
                lines.append(f"    Note over {_LABEL[role]}: {where}: deleted {', '.join(sorted(needed))}")
        if step == DONE:
            break
        lines.append("    rect rgba(127,127,127,0.08)")
        lines.append(f"    Note over H,T: step {step}: {STEP_NAMES[step]}")
        rules = [r for r in MESSAGES if r.step == step]
        if not rules:
            lines.append("    Note over H,I: local work only")
        for rule in rules:
            suffix = {Flow.SINGLE: "", Flow.STREAM: " (chunks, then _end)", Flow.ROUNDS: " (rounds)"}[rule.flow]
            lines.append(f"    {_LABEL[rule.sender]}->>{_LABEL[rule.receiver]}: {rule.kind}{suffix}")
        lines.append("    end")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(mermaid(), end="")
