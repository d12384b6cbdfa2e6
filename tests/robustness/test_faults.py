"""Fault injection: every step, every party that acts in it, every fault class.

Each case runs the three parties over in-memory links with one fault applied to one
party's links (:func:`mpcactors.testing.run_with_faults`). Unlike ``simulate``, a
failing party does not cancel the others here: each must notice the failure by
itself (an ``abort`` message, a closed link or a step deadline), as separate daemons
would. Every case must end with:

* all three parties stopped, none with a result (step 9, the confirmation, is why: a
  party returns only once both peers confirmed, so one that failed leaves none behind);
* a root cause of the fault's class, with that class's exit code, naming the party
  and the step;
* every party's error naming a step, and no echo hiding the reason (an abort carries
  the step and cause, never "internal error (ExceptionGroup)" or "step 0");
* every key destroyed (``destroyed`` is true, then no reference survives the run) and
  every share list cleared.

The clock is trio's ``MockClock`` with autojump (the ``autojump_clock`` fixture), so
deadlines and delays cost no wall time and cannot flake under load; the whole test is
still bounded by an absolute ``fail_after`` (virtual seconds: a party that waits with
no deadline makes the clock jump straight to it).
"""

from __future__ import annotations

import dataclasses
import gc
import re
import sys
import warnings

import pytest
import trio

from mpcactors.errors import AbortedError, MpcactorsError, PeerProtocolError, StepTimeout, TransportError
from mpcactors.protocol.roster import Roster, default_names
from mpcactors.protocol.steps import Step, StepTable
from mpcactors.testing import (
    FAULT_ACTIONS,
    Fault,
    Faults,
    InjectedCrash,
    KeyWatcher,
    fast_config,
    party_tables,
    run_with_faults,
    tables_for,
)

ROLES = Roster().members
CONFIRM = Step.CONFIRM
STEPS_OF = {role: StepTable().steps_of(role) for role in ROLES}



DEADLINE = 10.0  # virtual seconds per step (plus the step number, see DEADLINES)
#: Increasing with the step: computation takes no virtual time, so without this a party
#: stuck at step s and a party that went on to step s + 1 at the same virtual instant
#: would time out in the same tick, and which one reports first would be down to chance.
#: With it, the parties at the stalled step time out first, and name the stalled link.
DEADLINES = {s: DEADLINE + s for s in range(1, 10)}
ABSOLUTE = 10 * 9 * DEADLINE  # far above the sum of all step deadlines

#: The root cause each fault class must produce, and the command line's exit code for it.
EXPECTED = {
    "kill": (InjectedCrash, 1),  # a crash is not an MpcactorsError: the CLI's "internal error" code
    "drop": (TransportError, 4),
    "delay": (StepTimeout, 6),
    "duplicate": (PeerProtocolError, 4),
    "reorder": (PeerProtocolError, 4),
    "wrong_kind": (PeerProtocolError, 4),
    "wrong_session": (PeerProtocolError, 4),
}

#: Reorders that cannot happen: the receiver must answer the held message before its
#: sender produces the next one on that link, so holding it back is a stall, and the
#: honest outcome is a step timeout. (step, party) -> why.
REORDER_STALLS = {
    (3, "hospital"): "the insurer waits for the hospital's public key before step 4; the next hospital->insurer message is at step 7",
    (3, "insurer"): "the mirror image of the hospital's case",
    (4, "ttp"): "the parties wait for the intersection size; the TTP's next message to them is at step 6",
    (7, "insurer"): "the TTP waits for the insurer's only step-7 message before the next round",
    (7, "ttp"): "the TTP receives (it sends nothing at step 7): the insurer's next message needs the TTP's step-8 reply",
    (8, "hospital"): "step 8 opens the cohort's means to the recipients only: the hospital's share goes to the insurer "
                     "alone, and its next message to the insurer needs rounds the insurer joins only after that one",
    (8, "ttp"): "the TTP sends its share of the means and receives nothing; its next message needs the parties' replies",
}


def cases(parties: int = 2) -> list[tuple[int, str, str]]:
    """(step, party, action) for steps 1 to 8, every party acting in it, every fault class.

    Step 1 (prepare) has no traffic, so only a crash during the party's own work applies.
    Step 9 (the confirmation) has its own, weaker, guarantee: see ``CONFIRM_CASES``.
    """
    table = StepTable(Roster(default_names(parties)))
    out = []
    for step in range(1, 9):
        for party in table.roster.members:
            if step not in table.steps_of(party) or not (
                table.messages_for(step, sender=party) or table.messages_for(step, receiver=party) or step == 1
            ):
                continue
            for action in FAULT_ACTIONS:
                if step == 1 and action != "kill":
                    continue
                out.append((step, party, action))
    return out


CASES = cases()


@pytest.fixture(scope="module")
def tables():
    return tables_for(40, 0.5, seed=5)


def clean_trace(tables) -> list[tuple[int, str, str, str]]:
    """The messages of one clean run: (step, sender, receiver, kind), in send order."""
    records = []
    config = fast_config(tables, max_iter=5)
    run = trio.run(lambda: run_with_faults(tables, config, Faults(), recorder=records.append))
    assert not run.errors, run.errors  # the fault-free run succeeds, or the matrix proves nothing
    return [(r.step, r.sender, r.receiver, r.kind) for r in records]


@pytest.fixture(scope="module")
def trace(tables):
    return clean_trace(tables)


def fault_for(step: int, party: str, action: str, trace) -> Fault:
    """The fault at ``party``'s first message of ``step``: one it sends, else one it receives."""
    sent = [t for t in trace if t[0] == step and t[1] == party]
    if sent:
        _, _, peer, kind = sent[0]
        return Fault(action, party, step, kind=kind, peer=peer, direction="send", delay=10 * DEADLINE)
    received = [t for t in trace if t[0] == step and t[2] == party]
    if received:
        _, peer, _, kind = received[0]
        return Fault(action, party, step, kind=kind, peer=peer, direction="receive", delay=10 * DEADLINE)
    assert step == 1 and action == "kill", (step, party, action)
    return Fault("kill", party, step, direction="local")


def names_a_step(message: str) -> list[int]:
    return [int(s) for s in re.findall(r"\bstep (\d+)\b", message)]


async def run_case(tables, fault: Fault):
    config = fast_config(tables, max_iter=5, deadlines=DEADLINES)
    watcher = KeyWatcher()
    with trio.fail_after(ABSOLUTE):
        run = await run_with_faults(tables, config, Faults(fault), observer=watcher)
    return run, watcher


def check_clean_end(run, watcher: KeyWatcher, step: int, members=ROLES, computed: bool = False) -> None:
    """All stopped, nothing computed past the failure (unless ``computed``: the model was
    opened before the fault, but nobody returns it), every key destroyed."""
    assert set(run.outcomes) == set(members)
    assert run.results == {}, f"parties finished with a result despite the fault: {sorted(run.results)}"
    if not computed:
        assert all("result" not in watcher.held[role] for role in members)
    if step >= 3:  # from step 3 on, some party holds a Paillier secret key: deletion is really tested
        assert "paillier_secret" in watcher.created, watcher.created
    watcher.assert_destroyed()


def check_errors(run, fault: Fault, step: int, party: str, action: str, stalls=None, abort_by: int = 8) -> None:
    """The party that detects the fault reports its class, exit code, link and step; every
    other party's error carries that cause; the run's root cause is that error (or a
    peer's abort quoting it). Peers abort by step ``abort_by`` at the latest."""
    expected_type, expected_code = EXPECTED[action]
    stall = action == "reorder" and (step, party) in (REORDER_STALLS if stalls is None else stalls)
    if stall:
        expected_type, expected_code = StepTimeout, 6
    sender, receiver = (party, fault.peer) if fault.direction != "receive" else (fault.peer, party)
    errors = {role: (error, str(error)) for role, error in run.errors.items()}

    detected = [(e, t) for e, t in errors.values() if isinstance(e, expected_type)]
    assert detected, f"no party reports a {expected_type.__name__}: {errors}"
    assert all(getattr(e, "exit_code", 1) == expected_code for e, _ in detected)
    # at least one of them names the link (both ends) and a step at or after the fault;
    # faults that are caught where they happen name exactly that step
    late = action in ("delay", "duplicate") or stall
    precise = [
        t for _, t in detected
        if sender in t and (receiver is None or receiver in t)
        and any(step <= s <= abort_by for s in names_a_step(t)) and (late or step in names_a_step(t))
    ]
    assert precise, f"no error names {sender} -> {receiver} at step {step}: {[t for _, t in detected]}"

    for role, (error, text) in errors.items():
        assert isinstance(error, MpcactorsError | InjectedCrash), f"{role}: {type(error).__name__}: {text}"
        assert names_a_step(text) and 0 not in names_a_step(text), f"{role}: {text}"
        assert "ExceptionGroup" not in text and "internal error (" not in text.replace("internal error (InjectedCrash)", ""), text
        if isinstance(error, AbortedError):
            assert re.search(rf"(hospital|insurer|cbs|ttp) aborted the run at step [1-{abort_by}]: \w+", text), text

    cause = run.cause
    assert isinstance(cause, expected_type) or (
        isinstance(cause, AbortedError) and expected_type.__name__ in str(cause)
    ), f"{type(cause).__name__}: {cause}"


#: The fast lane (``-m "not slow"``) runs the crash and the drop of every step and party;
#: the whole matrix runs in the full suite.
FAST_ACTIONS = {"kill", "drop"}


def lane(cases: list[tuple], action_index: int = 2) -> list:
    return [c if c[action_index] in FAST_ACTIONS else pytest.param(*c, marks=pytest.mark.slow) for c in cases]


@pytest.mark.parametrize(("step", "party", "action"), lane(CASES), ids=[f"step{s}-{p}-{a}" for s, p, a in CASES])
async def test_fault_stops_everyone_cleanly(step, party, action, tables, trace, autojump_clock):
    fault = fault_for(step, party, action, trace)
    run, watcher = await run_case(tables, fault)
    assert len(run.faults.fired) == 1, f"the fault never fired: {fault.describe()}"
    check_errors(run, fault, step, party, action)
    check_clean_end(run, watcher, step)
    del run  # the errors' tracebacks may hold frames; the run is over once they are gone
    watcher.assert_nothing_survives()


#: The three-party matrix (hospital and insurer compute with the TTP, cbs deals and receives).
CASES_3 = cases(3)
#: Reorders that stall with three data parties, as REORDER_STALLS for two: the receiver
#: must answer the held message before its sender produces the next one on that link.
REORDER_STALLS_3 = {
    (3, "hospital"): "every data party waits for every other's public key before step 4",
    (3, "insurer"): "the same",
    (3, "cbs"): "the same",
    (4, "ttp"): "the parties wait for the intersection size; the TTP's next message to them is at step 6",
    (7, "insurer"): "the TTP waits for the insurer's only step-7 conversion message before the next round",
    (7, "ttp"): "the TTP receives the conversion and the dealt shares; its next message needs them",
    (8, "hospital"): "as for two: the means go to the recipients only, the next message needs the receiver's answer",
    (8, "ttp"): "the same",
}


#: A duplicate of the last output message to the party outside the computation is read
#: only at step 9, after that party sent its confirmation: the same window as a fault in a
#: step-9 message. The party reports it; the others may finish, with the same model.
OUTSIDE_WINDOW = {(8, "cbs", "duplicate")}


@pytest.fixture(scope="module")
def tables_3():
    return party_tables(40, 0.5, seed=5, parties=3)


@pytest.fixture(scope="module")
def trace_3(tables_3):
    return clean_trace(tables_3)


@pytest.mark.slow
@pytest.mark.parametrize(("step", "party", "action"), CASES_3, ids=[f"k3-step{s}-{p}-{a}" for s, p, a in CASES_3])
async def test_with_three_data_parties_a_fault_stops_everyone_cleanly(step, party, action, tables_3, trace_3, autojump_clock):
    fault = fault_for(step, party, action, trace_3)
    run, watcher = await run_case(tables_3, fault)
    assert len(run.faults.fired) == 1, f"the fault never fired: {fault.describe()}"
    # a party outside the computation gets the model last: the compute parties have moved
    # on to step 9, where they wait for its confirmation, and abort there instead
    outside = party == "cbs" or fault.peer == "cbs"
    check_errors(run, fault, step, party, action, stalls=REORDER_STALLS_3, abort_by=9 if outside and step == 8 else 8)
    if (step, party, action) in OUTSIDE_WINDOW:
        # the copy arrives after the last output, when the party has already confirmed:
        # step 9's window (docs/protocol.md); whoever finished holds the one model
        documents = {role: r.result_document() for role, r in run.results.items() if role != "ttp"}  # not a recipient
        assert len({repr(d) for d in documents.values()}) <= 1 and "cbs" in run.errors, documents
        watcher.assert_destroyed()
    else:
        check_clean_end(run, watcher, step, members=Roster(default_names(3)).members, computed=outside and step == 8)
    del run
    watcher.assert_nothing_survives()


def test_the_three_party_matrix_covers_every_step_party_and_fault_class():
    table = StepTable(Roster(default_names(3)))
    covered = {(s, p) for s, p, _ in CASES_3}
    assert covered == {(s, p) for p in table.roster.members for s in table.steps_of(p) if s != CONFIRM}
    assert {a for _, _, a in CASES_3} == set(FAULT_ACTIONS)


def test_matrix_covers_every_step_party_and_fault_class():
    covered = {(s, p) for s, p, _ in CASES} | {(CONFIRM, p) for p, _ in CONFIRM_CASES}
    assert covered == {(s, p) for p in ROLES for s in STEPS_OF[p]}
    assert {a for _, _, a in CASES} == set(FAULT_ACTIONS)
    # 2 crashes at step 1 + 7 classes x (2 parties x steps 2-3 + 3 parties x steps 4-8)
    assert len(CASES) == 2 + 7 * (2 * 2 + 3 * 5) == 135


async def test_faults_fire_only_where_planned(tables, autojump_clock):
    """A plan for the wrong step never fires, and the run then succeeds: the wrapper is inert."""
    hospital, insurer = tables
    config = fast_config(hospital, insurer, lasso=False)
    fault = Fault("drop", "ttp", 2, direction="send")  # the TTP sends nothing at step 2
    with trio.fail_after(ABSOLUTE):
        run = await run_with_faults((hospital, insurer), config, Faults(fault))
    assert run.faults.fired == []
    assert run.errors == {}
    assert {r.intersection_size for r in run.results.values()} == {len(set(hospital.ids) & set(insurer.ids))}


def test_a_pipeline_that_fails_mid_stream_leaves_no_unfinished_generator(monkeypatch):
    from mpcactors.actors.pipeline import run_ordered

    async def main():
        async def jobs():
            for i in range(100):
                async def job(i=i):
                    await trio.sleep(0)
                    return i
                yield job

        async def consume(value):
            if value == 3:
                raise PeerProtocolError("a peer's bad chunk")

        with pytest.raises(PeerProtocolError):
            await run_ordered(jobs(), consume, limit=2)

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)  # not the module's ignore: this test is about it
        trio.run(main)
        gc.collect()
    assert [str(u.exc_value) for u in unraisable] == []


class LateCorruption(Faults):
    """The receiver of step 8's last message gets it late (1 virtual second) and corrupt.

    By then the other two parties have finished step 8 (in an MPC round every party sends
    before it receives) and wait at step 9 for the receiver's confirmation, so the outcome
    is deterministic: the receiver's abort reaches both.
    """

    def __init__(self, sender: str, receiver: str, step: int, nth: int) -> None:
        super().__init__()
        self.sender, self.receiver, self.step, self.nth = sender, receiver, step, nth
        self.late: list[str] = []

    def wrap(self, role, peer, link):
        if (role, peer) != (self.receiver, self.sender):
            return link
        outer = self

        class Late(trio.abc.Channel):
            seen = 0

            async def send(self, value):
                await link.send(value)

            async def receive(self):
                envelope = await link.receive()
                if envelope.kind == "mpc" and envelope.step == outer.step:
                    Late.seen += 1
                    if Late.seen == outer.nth:
                        await trio.sleep(1)
                        outer.late.append(f"{envelope.kind} seq {envelope.seq}")
                        return dataclasses.replace(envelope, session=bytes(16))
                return envelope

            def statistics(self):
                return link.statistics()

            async def aclose(self):
                await link.aclose()

        return Late()


async def test_a_fault_in_the_last_message_of_step_8_leaves_no_party_with_a_result(tables, trace, autojump_clock):
    """The run's last model message arrives corrupt: its receiver fails, and the two parties
    that already hold the model do not finish without it (they wait at step 9 for its
    confirmation, and get its abort instead)."""
    last = [t for t in trace if t[0] == 8][-1]
    step, sender, receiver, kind = last
    assert kind == "mpc"
    nth = sum(1 for t in trace if t == last)
    faults = LateCorruption(sender, receiver, step, nth)
    hospital, insurer = tables
    config = fast_config(hospital, insurer, max_iter=5, deadlines=DEADLINES)
    watcher = KeyWatcher()
    with trio.fail_after(ABSOLUTE):
        run = await run_with_faults((hospital, insurer), config, faults, observer=watcher)
    assert faults.late, "the last message never arrived"
    assert isinstance(run.errors.get(receiver), PeerProtocolError), run.errors
    assert run.results == {}, f"{sorted(run.results)} finished with a result while {sorted(run.errors)} failed"
    for role, error in run.errors.items():
        if role != receiver:
            assert isinstance(error, AbortedError) and f"{receiver} aborted the run at step 8" in str(error), error
    watcher.assert_destroyed()


#: Step 9 faults, at each party's first confirmation: (party, action).
CONFIRM_CASES = [(party, action) for party in ROLES for action in FAULT_ACTIONS]
#: Faults after which the party's confirmation reaches nobody (it dies, its link dies, or
#: it is held past the deadline before the second copy is sent): nobody finishes. The
#: others can catch the sender's confirmation only after it was sent to both peers, so
#: the receiver may be the only one to fail (the two generals' window, documented in
#: docs/protocol.md); there the guarantee is that every result that exists is the same.
CONFIRM_REACHES_NOBODY = {"kill", "drop", "delay"}


@pytest.mark.parametrize(("party", "action"), lane(CONFIRM_CASES, 1), ids=[f"step9-{p}-{a}" for p, a in CONFIRM_CASES])
async def test_a_fault_in_the_confirmation_ends_cleanly_and_any_results_agree(party, action, tables, trace, autojump_clock):
    fault = fault_for(CONFIRM, party, action, trace)
    assert fault.kind == "done" and fault.direction == "send"
    run, watcher = await run_case(tables, fault)
    assert len(run.faults.fired) == 1, f"the fault never fired: {fault.describe()}"
    assert set(run.outcomes) == set(ROLES)
    for role, error in run.errors.items():
        text = str(error)
        assert isinstance(error, MpcactorsError | InjectedCrash), f"{role}: {type(error).__name__}: {text}"
        assert CONFIRM in names_a_step(text), f"{role}: {text}"
        assert "ExceptionGroup" not in text, text
    if action in CONFIRM_REACHES_NOBODY:
        assert run.results == {}, f"{sorted(run.results)} finished although {party}'s confirmation reached nobody"
        expected_type, expected_code = EXPECTED[action]
        assert isinstance(run.cause, expected_type) or expected_type.__name__ in str(run.cause), run.cause
    # the same model wherever one exists; the default plan's recipients are the data parties
    documents = {role: result.result_document() for role, result in run.results.items() if role != "ttp"}
    assert len({repr(d) for d in documents.values()}) <= 1, documents
    assert all(d is not None for d in documents.values())
    watcher.assert_destroyed()  # every secret died before step 9 began, whatever happened there
    del run
    watcher.assert_nothing_survives()


async def test_parties_that_computed_different_results_refuse_to_finish(tables, autojump_clock):
    """A party whose outcome differs (here: the insurer's confirmation carries another digest)
    makes both its peers stop with an error naming it; they write nothing."""
    from mpcactors.protocol import messages as msg

    class Other(Faults):
        def wrap(self, role, peer, link):
            if role != "insurer":
                return link

            class Tampered(trio.abc.Channel):
                async def send(self, value):
                    if value.kind == "done":
                        value = dataclasses.replace(value, body=msg.Done(bytes(32)).body())
                    await link.send(value)

                async def receive(self):
                    return await link.receive()

                def statistics(self):
                    return link.statistics()

                async def aclose(self):
                    await link.aclose()

            return Tampered()

    hospital, insurer = tables
    config = fast_config(hospital, insurer, max_iter=5, deadlines=DEADLINES)
    with trio.fail_after(ABSOLUTE):
        run = await run_with_faults((hospital, insurer), config, Other())
    for role in ("hospital", "ttp"):
        error = run.errors.get(role)
        assert isinstance(error, PeerProtocolError | AbortedError), run.outcomes
    assert any(
        isinstance(e, PeerProtocolError) and "insurer computed a different result" in str(e) for e in run.errors.values()
    ), run.errors
    assert "hospital" not in run.results and "ttp" not in run.results
