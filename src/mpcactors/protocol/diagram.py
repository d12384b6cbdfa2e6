"""Generate the protocol diagram in ``docs/protocol.md`` from the step table.

``python -m mpcactors.protocol.diagram`` prints a Mermaid sequence diagram built only
from a :class:`~mpcactors.protocol.steps.StepTable` (the legal messages and the
deletion preconditions), so the picture cannot drift from what the scheduler enforces
(a test compares it with the committed document).
"""

from __future__ import annotations

from .steps import Flow, Step, StepTable

__all__ = ["mermaid"]


def _labels(members: tuple[str, ...]) -> dict[str, str]:
    initials = {m: m[0].upper() for m in members}
    return initials if len(set(initials.values())) == len(members) else {m: m for m in members}


def mermaid(table: StepTable | None = None) -> str:
    """The Mermaid sequence diagram of ``table`` (default: the two-party roster)."""
    table = table if table is not None else StepTable()
    roster = table.roster
    label = _labels(roster.members)
    first, last = label[roster.members[0]], label[roster.members[-1]]
    data = roster.data_parties
    lines = ["sequenceDiagram"]
    lines += [f"    participant {label[r]} as {r}" for r in roster.members]
    for step in Step:
        for role in roster.members:
            needed = table.requires_deleted(role).get(step)
            if needed:
                where = "before the end" if step == Step.DONE else f"before step {int(step)}"
                lines.append(f"    Note over {label[role]}: {where}: deleted {', '.join(sorted(needed))}")
        if step == Step.DONE:
            break
        lines.append("    rect rgba(127,127,127,0.08)")
        lines.append(f"    Note over {first},{last}: step {int(step)}: {step.title}")
        rules = table.messages_for(step)
        if not rules:
            lines.append(f"    Note over {label[data[0]]},{label[data[-1]]}: local work only")
        for rule in rules:
            suffix = {Flow.SINGLE: "", Flow.STREAM: " (chunks, then _end)", Flow.ROUNDS: " (rounds)"}[rule.flow]
            lines.append(f"    {label[rule.sender]}->>{label[rule.receiver]}: {rule.kind}{suffix}")
        lines.append("    end")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(mermaid(), end="")
