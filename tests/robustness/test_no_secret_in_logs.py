"""A run that fails anywhere writes no secret into the log, at debug level, in JSON or on a console.

Canaries are planted in a data party's input (one cell), in its step-5 masks (every mask
is one fixed value, drawn once) and so in its additive shares. Each case makes the run
fail with an internal error (not an MpcactorsError): at the start of each step through
the run hooks, and while the party holds each of its items (an observer that raises,
so the item is a local of a failing frame). The failure is then reported exactly as the
daemon's command line reports a bug: a debug log line with the exception, then the
one-line error. None of the canaries may appear in anything written.
"""

from __future__ import annotations

import dataclasses

import pytest
import structlog
import trio

from mpcactors.actors import DEFAULT_HOOKS, Held
from mpcactors.cli.daemon import _fail
from mpcactors.crypto.fixedpoint import Params
from mpcactors.data import table_from_rows
from mpcactors.logs import configure_logging
from mpcactors.protocol.steps import Step
from mpcactors.sim import GodView, simulate
from mpcactors.testing import fast_config

ROWS = 30
CANARY_CELL = "98765.4321"
PARAMS = Params()
CANARY_MASK = PARAMS.masks(1)[0] | 1 << (PARAMS.mask_bits - 1)  # full width: 60+ digits


class InjectedBug(RuntimeError):
    """An internal error, raised inside a party."""


def tables():
    hospital = table_from_rows(
        "hospital.csv", ["id", "age", "creatinine"],
        [[f"P{n:03d}", CANARY_CELL if n == 7 else str(40 + n), str(60 + n)] for n in range(ROWS)], min_rows=1,
    )
    insurer = table_from_rows(
        "insurer.csv", ["id", "gp_visits", "hospital_days"],
        [[f"P{n:03d}", str(n % 7), str(n % 5 + 1)] for n in range(ROWS)], min_rows=1,
    )
    return hospital, insurer


def canaries() -> list[str]:
    encoded = PARAMS.encode([float(CANARY_CELL)])[0]
    return [CANARY_CELL, str(encoded), hex(encoded), str(CANARY_MASK), str(CANARY_MASK)[:30], hex(CANARY_MASK)[:30]]


class FailWhileHolding(GodView):
    def __init__(self, role: str, name: str) -> None:
        super().__init__()
        self.role, self.name = role, name

    def hold(self, role, step, name, value):
        super().hold(role, step, name, value)
        if role == self.role and name == self.name:
            raise InjectedBug(f"{role} failed while holding {name}")


def fail_at(role: str, step: int):
    def at_step(who: str, current: int) -> None:
        if who == role and current == step:
            raise InjectedBug(f"{who} failed at the start of step {current}")

    return at_step


HOOK_CASES = [("hospital", int(s)) for s in Step if s != Step.DONE] + [("ttp", s) for s in (4, 5, 6, 7, 8, 9)]
HOLD_CASES = [("hospital", h.value) for h in Held if h not in (Held.ROW_PAIRS,)] + [("ttp", Held.ROW_PAIRS.value)]


def run_and_report(json_mode: bool, *, hooks, observer, capsys) -> str:
    saved = structlog.get_config()
    configure_logging(json=json_mode, level="debug")
    hospital, insurer = tables()
    config = fast_config(hospital, insurer, max_iter=10)
    try:
        with pytest.raises(BaseException) as info:
            trio.run(lambda: simulate((hospital, insurer), config, hooks=hooks, observer=observer))
        with pytest.raises(SystemExit) as code:
            _fail(info.value)  # what `mpcactors party` does with an unexpected error
        assert code.value.code == 1
        del info
    finally:
        structlog.configure(**saved)
    captured = capsys.readouterr()
    return captured.out + captured.err


def masks_of(params: Params, count: int) -> list[int]:
    return [CANARY_MASK] * count


@pytest.mark.slow
@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "console"])
@pytest.mark.parametrize(("role", "step"), HOOK_CASES, ids=[f"{r}-step{s}" for r, s in HOOK_CASES])
def test_a_failure_at_any_step_logs_no_canary(role, step, json_mode, capsys):
    hooks = dataclasses.replace(DEFAULT_HOOKS, draw_masks=masks_of, at_step=fail_at(role, step))
    text = run_and_report(json_mode, hooks=hooks, observer=None, capsys=capsys)
    assert "InjectedBug" in text  # the failure was reported...
    leaked = [c for c in canaries() if c in text]
    assert leaked == [], f"secrets in the log: {leaked}"  # ...and nothing it had in hand


@pytest.mark.slow
@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "console"])
@pytest.mark.parametrize(("role", "name"), HOLD_CASES, ids=[f"{r}-{n}" for r, n in HOLD_CASES])
def test_a_failure_while_holding_any_item_logs_no_canary(role, name, json_mode, capsys):
    hooks = dataclasses.replace(DEFAULT_HOOKS, draw_masks=masks_of)
    text = run_and_report(json_mode, hooks=hooks, observer=FailWhileHolding(role, name), capsys=capsys)
    assert "InjectedBug" in text
    leaked = [c for c in canaries() if c in text]
    assert leaked == [], f"secrets in the log: {leaked}"


def test_the_canaries_are_where_the_cases_look_for_them():
    # the planted values really reach the party's input, masks and shares: without this,
    # a canary that never entered the run would make every case above pass vacuously
    hospital, insurer = tables()
    assert str(PARAMS.encode([float(CANARY_CELL)])[0]) in str(hospital.values.tolist())
    watch = GodView()
    hooks = dataclasses.replace(DEFAULT_HOOKS, draw_masks=masks_of)
    trio.run(lambda: simulate((hospital, insurer), fast_config(hospital, insurer, lasso=False), hooks=hooks, observer=watch))
    assert all(v == CANARY_MASK for row in watch.held["hospital"]["masks"] for v in row)
    assert any(CANARY_MASK in row for row in watch.held["hospital"]["additive_shares"])
