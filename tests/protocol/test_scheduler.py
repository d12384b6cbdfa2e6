"""The step table, driven directly (no event loop), h11 style.

Every legal path through the table reaches DONE; every illegal event in every state
raises the right error (ours: StepOrderError, a peer's: PeerProtocolError), moves to
ERROR and changes nothing else; deletion is a precondition of the next step.
"""

from __future__ import annotations

import copy
import itertools

import pytest

from mpcactors.errors import PeerProtocolError, StepOrderError
from mpcactors.protocol.scheduler import StepScheduler
from mpcactors.protocol.steps import Flow, Step, StepTable
from mpcactors.protocol.wire import Envelope

SESSION = b"S" * 16
TABLE = StepTable()
MESSAGES = TABLE.messages
ROLES = TABLE.roster.members
STEPS_OF = {role: TABLE.steps_of(role) for role in ROLES}
REQUIRES_DELETED = {role: TABLE.requires_deleted(role) for role in ROLES}
CONFIRM, DONE = Step.CONFIRM, Step.DONE
messages_for = TABLE.messages_for
ALL_KINDS = sorted({r.kind for r in MESSAGES} | {r.kind + "_end" for r in MESSAGES if r.flow is Flow.STREAM})


class Peer:
    """Builds envelopes as a well-behaved peer would (per-link sequence numbers)."""

    def __init__(self) -> None:
        self.seq: dict[str, int] = {}

    def envelope(self, sender: str, step: int, kind: str, *, session: bytes = SESSION) -> Envelope:
        seq = self.seq.get(sender, 0)
        self.seq[sender] = seq + 1
        return Envelope(session, step, sender, seq, kind, {})


def kinds_for(rule, chunks: int) -> list[str]:
    if rule.flow is Flow.SINGLE:
        return [rule.kind]
    if rule.flow is Flow.STREAM:
        return [rule.kind] * chunks + [rule.kind + "_end"]
    return [rule.kind] * chunks


def secrets_created(role: str, step: int) -> set[str]:
    """The secrets a role creates during a step (the protocol's table says which)."""
    return {secret.name for secret in TABLE.secrets_of(role) if secret.created == step}


def run_legal_path(role: str, chunks: int = 2, *, lasso: bool = True):
    """Drive a scheduler along a legal path; yields (scheduler, peer, step) before each step's traffic."""
    scheduler = StepScheduler(role, SESSION, last_step=Step.ANALYSIS if lasso else Step.TO_SHAMIR)
    peer = Peer()
    for step in STEPS_OF[role] if lasso else [s for s in STEPS_OF[role] if s != Step.ANALYSIS]:
        for name in REQUIRES_DELETED[role].get(step, ()):  # delete what must be gone
            if name in scheduler.alive_secrets:
                scheduler.destroyed(name)
        scheduler.begin_step(step)
        for name in secrets_created(role, step):
            scheduler.created(name)
        yield scheduler, peer, step
        for rule in messages_for(step, sender=role):
            for kind in kinds_for(rule, chunks):
                env = scheduler.outgoing(rule.receiver, kind, {})
                assert (env.step, env.sender, env.kind) == (step, role, kind)
        for rule in messages_for(step, receiver=role):
            for kind in kinds_for(rule, chunks):
                scheduler.incoming(peer.envelope(rule.sender, step, kind))
        assert scheduler.step_complete()
    for name in list(scheduler.alive_secrets):
        scheduler.destroyed(name)
    scheduler.finish()
    yield scheduler, peer, DONE


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("chunks", [0, 1, 3])
def test_every_legal_path_reaches_done(role, chunks):
    *_, (scheduler, _, step) = run_legal_path(role, chunks)
    assert step == DONE and scheduler.state == "DONE"
    assert scheduler.alive_secrets == frozenset()


def snapshot(scheduler: StepScheduler) -> dict:
    state = copy.deepcopy(scheduler.__dict__)
    state.pop("step")
    state.pop("error")
    return state


def illegal_incoming(role: str, step: int):
    legal = {(r.sender, k) for r in messages_for(step, receiver=role) for k in kinds_for(r, 1)}
    for sender, kind in itertools.product([r for r in ROLES if r != role], ALL_KINDS):
        if (sender, kind) not in legal:
            yield sender, kind


def illegal_outgoing(role: str, step: int):
    legal = {(r.receiver, k) for r in messages_for(step, sender=role) for k in kinds_for(r, 1)}
    for receiver, kind in itertools.product([r for r in ROLES if r != role], ALL_KINDS):
        if (receiver, kind) not in legal:
            yield receiver, kind


@pytest.mark.parametrize("role", ROLES)
def test_every_illegal_event_in_every_state_moves_to_error_and_nothing_else(role):
    checked = 0
    for scheduler, peer, step in run_legal_path(role):
        if step == DONE:
            with pytest.raises(StepOrderError):
                copy.deepcopy(scheduler).outgoing("ttp" if role != "ttp" else "hospital", "mpc", {})
            continue
        for sender, kind in illegal_incoming(role, step):
            trial, trial_peer = copy.deepcopy(scheduler), copy.deepcopy(peer)
            before = snapshot(trial)
            with pytest.raises(PeerProtocolError):
                trial.incoming(trial_peer.envelope(sender, step, kind))
            assert trial.state == "ERROR"
            assert snapshot(trial) == before
            with pytest.raises(StepOrderError):  # terminal: nothing works afterwards
                trial.begin_step(step + 1)
            checked += 1
        for receiver, kind in illegal_outgoing(role, step):
            trial = copy.deepcopy(scheduler)
            before = snapshot(trial)
            with pytest.raises(StepOrderError):
                trial.outgoing(receiver, kind, {})
            assert trial.state == "ERROR" and snapshot(trial) == before
            checked += 1
        # a message for another step (e.g. a fast peer's next step) is refused too
        for rule in messages_for(step + 1, receiver=role)[:1]:
            trial, trial_peer = copy.deepcopy(scheduler), copy.deepcopy(peer)
            with pytest.raises(PeerProtocolError, match="while .* is at step"):
                trial.incoming(trial_peer.envelope(rule.sender, step + 1, rule.kind))
            assert trial.state == "ERROR"
    assert checked > 50


@pytest.mark.parametrize("role", ["hospital", "insurer"])
def test_single_messages_twice_and_stream_after_end_are_refused(role):
    other = "insurer" if role == "hospital" else "hospital"
    for scheduler, peer, step in run_legal_path(role):
        if step == 2:
            scheduler.incoming(peer.envelope(other, 2, "hash_contribution"))
            with pytest.raises(PeerProtocolError, match="second"):
                scheduler.incoming(peer.envelope(other, 2, "hash_contribution"))
            break
    for scheduler, peer, step in run_legal_path(role):
        if step == 6:
            scheduler.incoming(peer.envelope("ttp", 6, "masked_end"))
            with pytest.raises(PeerProtocolError, match="after the masked stream ended"):
                scheduler.incoming(peer.envelope("ttp", 6, "masked"))
            break


def test_a_sender_outside_the_roster_is_refused():
    # the codec accepts any well-formed party name; membership is the session's business
    for scheduler, peer, step in run_legal_path("ttp"):
        if step == 4:
            with pytest.raises(PeerProtocolError, match="claims to come from 'mallory'"):
                scheduler.incoming(peer.envelope("mallory", 4, "rows"))
            assert scheduler.state == "ERROR"
            break


def test_sequence_numbers_catch_duplicates_drops_and_reordering():
    for scheduler, peer, step in run_legal_path("ttp"):
        if step == 4:
            scheduler.incoming(peer.envelope("hospital", 4, "public_key"))
            replay = Envelope(SESSION, 4, "hospital", 0, "rows", {})
            with pytest.raises(PeerProtocolError, match="duplicated, dropped or reordered"):
                scheduler.incoming(replay)
            break


def test_messages_from_another_session_are_refused():
    for scheduler, peer, step in run_legal_path("insurer"):
        if step == 2:
            with pytest.raises(PeerProtocolError, match="another session"):
                scheduler.incoming(peer.envelope("hospital", 2, "hash_contribution", session=b"X" * 16))
            assert scheduler.state == "ERROR"
            break


@pytest.mark.parametrize(
    ("role", "step", "secret"),
    [(r, s, name) for r in ROLES for s, names in REQUIRES_DELETED[r].items() if s != DONE for name in sorted(names)],
)
def test_deletion_is_a_precondition_of_the_next_step(role, step, secret):
    for scheduler, peer, current in run_legal_path(role):
        if current == STEPS_OF[role][STEPS_OF[role].index(step) - 1]:
            break
    # complete the current step legally but keep the secret alive
    for rule in messages_for(current, sender=role):
        for kind in kinds_for(rule, 1):
            scheduler.outgoing(rule.receiver, kind, {})
    for rule in messages_for(current, receiver=role):
        for kind in kinds_for(rule, 1):
            scheduler.incoming(peer.envelope(rule.sender, current, kind))
    scheduler.created(secret)
    for name in REQUIRES_DELETED[role][step] - {secret}:
        scheduler.destroyed(name)
    with pytest.raises(StepOrderError, match=f"before deleting {secret}"):
        scheduler.begin_step(step)
    assert scheduler.state == "ERROR"


def test_the_confirmation_refuses_to_begin_while_any_share_is_alive():
    for scheduler, peer, step in run_legal_path("ttp"):
        if step == 8:
            break
    scheduler.destroyed("mpc_state")
    with pytest.raises(StepOrderError, match="before deleting shamir_shares"):
        scheduler.begin_step(CONFIRM)
    assert scheduler.state == "ERROR"


def test_finish_refuses_while_any_secret_is_alive():
    for scheduler, peer, step in run_legal_path("ttp"):
        if step == CONFIRM:
            break
    for rule in messages_for(CONFIRM, sender="ttp"):
        scheduler.outgoing(rule.receiver, "done", {})
    for rule in messages_for(CONFIRM, receiver="ttp"):
        scheduler.incoming(peer.envelope(rule.sender, CONFIRM, "done"))
    scheduler.created("an_undeclared_secret")  # not in REQUIRES_DELETED: the end still checks it
    with pytest.raises(StepOrderError, match="before deleting an_undeclared_secret"):
        scheduler.finish()


def test_a_run_without_the_lasso_still_ends_with_the_confirmation():
    steps = [step for _, _, step in run_legal_path("ttp", lasso=False)]
    assert steps == [4, 5, 6, 7, CONFIRM, DONE]
    for scheduler, _, step in run_legal_path("hospital", lasso=False):
        if step == 7:
            break
    with pytest.raises(StepOrderError, match="the next step is 9"):
        scheduler.begin_step(8)


def test_a_deletion_claim_for_a_live_key_is_refused():
    class Key:
        destroyed = False

    scheduler = StepScheduler("hospital", SESSION)
    scheduler.begin_step(1)
    scheduler.begin_step(2)
    scheduler.created("hash_key")
    with pytest.raises(StepOrderError, match="still alive"):
        scheduler.destroyed("hash_key", Key())
    assert scheduler.state == "ERROR"


def test_steps_cannot_be_skipped_or_repeated():
    scheduler = StepScheduler("hospital", SESSION)
    with pytest.raises(StepOrderError, match="next step is 1"):
        scheduler.begin_step(2)
    scheduler = StepScheduler("hospital", SESSION)
    scheduler.begin_step(1)
    with pytest.raises(StepOrderError):
        scheduler.begin_step(1)


def test_an_incomplete_step_cannot_be_left():
    scheduler = StepScheduler("hospital", SESSION)
    scheduler.begin_step(1)
    scheduler.begin_step(2)
    scheduler.outgoing("insurer", "hash_contribution", {})
    with pytest.raises(StepOrderError, match="step 2 is not complete"):
        scheduler.begin_step(3)
