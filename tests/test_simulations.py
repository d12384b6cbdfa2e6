"""The attack scripts in ``simulations/`` run as a reader would run them, and say what they should.

Each runs in its own interpreter (``python simulations/NAME.py --rows 40``, 1024-bit test
keys, a few seconds each). The expected lines are the scripts' findings that do not depend
on the sample: the protocol as specified gives no attack an advantage, and the broken
variants each script shows are caught.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SIMULATIONS = Path(__file__).resolve().parent.parent / "simulations"

#: script -> lines (substrings) its output must contain
EXPECTED = {
    "masked_values": ["== protocol as specified", "-> no advantage", "== forward_unmasked", "== short_masks", "-> succeeds"],
    "dictionary_attack": [
        "TTP alone, protocol as specified", "-> no advantage", "insurer kept its step-2 messages", "-> succeeds",
    ],
    "ttp_side_channels": ["== protocol as specified", "-> no advantage"],
    "coalitions": ["hospital alone during step 7: 0% of the entries", "ttp alone during step 7: 0% of the entries"],
    "disclosure": ["intersection size m (learnt by hospital, insurer, ttp)", "table sizes (learnt by ttp)"],
    "k_parties": [
        "compute parties: hospital, insurer, ttp", "masked_value_linking         cbs", "-> no advantage",
        "== cbs outside the computation", "step 7: holds additive_shares", "receives delivered from hospital",
        "hospital+insurer                  n/a           100%", "cbs+ttp                          100%             0%",
    ],
}


def test_every_script_is_covered():
    assert {p.stem for p in SIMULATIONS.glob("[a-z]*.py")} == set(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_simulation_script_runs_and_reports_its_findings(name):
    done = subprocess.run(
        [sys.executable, str(SIMULATIONS / f"{name}.py"), "--rows", "40"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for line in EXPECTED[name]:
        assert line in done.stdout, f"{name}: {line!r} missing from:\n{done.stdout}"
