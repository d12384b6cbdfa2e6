"""docs/protocol.md carries the diagram generated from the step table, not a stale copy."""

from pathlib import Path

from mpcactors.protocol.diagram import mermaid
from mpcactors.protocol.steps import StepTable

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_docs_diagram_is_generated_from_the_table():
    text = DOC.read_text()
    start = text.index("```mermaid\n") + len("```mermaid\n")
    end = text.index("```", start)
    assert text[start:end] == mermaid(), "regenerate with: python -m mpcactors.protocol.diagram"


def test_every_rule_appears_in_the_diagram():
    short = {"hospital": "H", "insurer": "I", "ttp": "T"}
    lines = mermaid().splitlines()
    for rule in StepTable().messages:
        arrow = f"    {short[rule.sender]}->>{short[rule.receiver]}: {rule.kind}"
        assert any(line.startswith(arrow) for line in lines), arrow
