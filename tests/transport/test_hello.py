"""The application hello without any I/O: every decision of the judge, and the control frames.

One test per decision of :meth:`Hello.judge`. The same refusals are checked end to end
(over TLS, on both sides) in ``test_tls.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from mpcactors.codec import PROTOCOL_VERSION, Envelope, encode, encode_envelope
from mpcactors.errors import AbortedError, PeerProtocolError, TLSError
from mpcactors.transport.hello import (
    MAX_CONTROL_BYTES,
    Hello,
    Verdict,
    ack_frame,
    decode_control,
    is_control,
    refusal_error,
    refuse_frame,
)

SESSION = bytes(range(16))
OTHER = bytes(16)
DIGEST = b"\xaa" * 32
PLAN = bytes.fromhex("3fa2") + b"\x01" * 30


def their_hello(**changes: Any) -> dict[str, Any]:
    """The insurer's hello as the hospital decodes it, with ``changes`` applied."""
    item = decode_control(Hello("insurer", SESSION, parameters=DIGEST).frame(), "insurer")
    item.update(changes)
    return item


def judge(ours: Hello, **changes: Any) -> Verdict:
    return ours.judge(their_hello(**changes), peer_role="insurer")


# ---- the judge: accepted ------------------------------------------------------------------------


def test_a_hello_of_the_same_run_is_accepted_with_the_shared_session() -> None:
    verdict = judge(Hello("hospital", SESSION, parameters=DIGEST))
    assert verdict == Verdict("run", SESSION) and verdict.accepted


def test_a_party_without_a_session_adopts_the_peers() -> None:
    assert judge(Hello("hospital", None, parameters=DIGEST)) == Verdict("run", SESSION)


def test_a_peer_without_a_session_is_given_ours() -> None:
    assert judge(Hello("hospital", SESSION, parameters=DIGEST), session=None) == Verdict("run", SESSION)


def test_no_parameter_digest_of_ours_skips_the_comparison() -> None:
    assert judge(Hello("hospital", SESSION), parameters=b"\xbb" * 32) == Verdict("run", SESSION)


@pytest.mark.parametrize("ours, theirs", [("check", "run"), ("run", "check"), ("check", "check")])
def test_a_check_link_needs_no_session_nor_equal_parameters_and_either_side_can_ask_for_it(ours: str, theirs: str) -> None:
    verdict = judge(Hello("hospital", None, ours, DIGEST), purpose=theirs, session=None, parameters=b"\xbb" * 32)
    assert verdict == Verdict("check", None) and verdict.accepted


# ---- the judge: refused -------------------------------------------------------------------------


def refused(verdict: Verdict) -> str:
    assert not verdict.accepted and verdict.purpose == "" and verdict.session is None
    return verdict.reason


def test_a_hello_from_another_application_is_refused() -> None:
    assert refused(judge(Hello("hospital", SESSION), app="other")) == "the peer is not an mpcactors party"


def test_another_protocol_version_is_refused() -> None:
    assert refused(judge(Hello("hospital", SESSION), version=PROTOCOL_VERSION + 1)) == (
        f"protocol version mismatch: the peer speaks {PROTOCOL_VERSION + 1!r}, we speak {PROTOCOL_VERSION}"
    )


def test_a_hello_claiming_another_role_than_its_certificate_proves_is_refused() -> None:
    assert refused(judge(Hello("hospital", SESSION), role="ttp")) == (
        "the peer's hello claims role 'ttp' but its certificate identifies it as insurer"
    )


def test_an_unknown_link_purpose_is_refused() -> None:
    assert refused(judge(Hello("hospital", SESSION), purpose="spy")) == "unknown link purpose 'spy'"


@pytest.mark.parametrize("session", [bytes(15), bytes(17), "0123456789abcdef", 16])
def test_a_malformed_session_id_is_refused(session: object) -> None:
    assert refused(judge(Hello("hospital", SESSION), session=session)) == "the session id must be 16 bytes"


def test_different_parameter_digests_are_refused() -> None:
    assert refused(judge(Hello("hospital", SESSION, parameters=b"\xbb" * 32))) == (
        "the [protocol] parameters differ (digest aaaaaaaaaaaa at insurer, bbbbbbbbbbbb here); "
        "all three parties' [protocol] sections must be identical"
    )
    assert "(digest (none) at insurer" in refused(judge(Hello("hospital", SESSION, parameters=DIGEST), parameters=None))


def test_different_plan_digests_are_refused_naming_both() -> None:
    ours = Hello("hospital", SESSION, parameters=DIGEST, plan=PLAN)
    assert refused(judge(ours, plan=b"\x91\xbc" + bytes(30))) == (
        "plan digests differ: ours 3fa2010101010101..., theirs 91bc000000000000... at insurer; "
        "every party must sign off the same plan ([plan] file), or all none"
    )
    # the plan is compared before the parameters, which cover it (so a plan difference changes both)
    assert refused(judge(ours, plan=None, parameters=b"\xbb" * 32)).startswith(
        "plan digests differ: ours 3fa2010101010101..., theirs (none: the default plan) at insurer;"
    )
    assert "theirs (malformed) at insurer" in refused(judge(ours, plan="3fa2"))
    assert "ours (none: the default plan), theirs 3fa2010101010101..." in refused(
        judge(Hello("hospital", SESSION, parameters=DIGEST), plan=PLAN)
    )


def test_equal_plan_digests_are_accepted_and_no_parameter_digest_skips_the_plans_too() -> None:
    assert judge(Hello("hospital", SESSION, parameters=DIGEST, plan=PLAN), plan=PLAN) == Verdict("run", SESSION)
    assert judge(Hello("hospital", SESSION, plan=PLAN)) == Verdict("run", SESSION)


def test_a_hello_of_an_older_version_without_a_plan_field_has_the_default_plan() -> None:
    older = their_hello()
    del older["plan"]
    assert Hello("hospital", SESSION, parameters=DIGEST).judge(older, peer_role="insurer") == Verdict("run", SESSION)


def test_two_different_sessions_are_refused() -> None:
    assert refused(judge(Hello("hospital", OTHER, parameters=DIGEST))) == (
        "session mismatch: insurer is in session 00010203, we are in 00000000 (is one party left over from another run?)"
    )


def test_a_run_link_where_neither_side_knows_the_session_is_refused() -> None:
    assert refused(judge(Hello("hospital", None, parameters=DIGEST), session=None)).startswith(
        "neither side knows the session id (the roster's first data party creates it;"
    )


# ---- our hello ---------------------------------------------------------------------------------


def test_our_hello_is_a_control_frame_carrying_everything_the_peer_judges() -> None:
    frame = Hello("hospital", SESSION, "check", DIGEST, PLAN).frame()
    assert is_control(frame) and len(frame) <= MAX_CONTROL_BYTES
    assert decode_control(frame, "hospital") == {
        "type": "hello", "app": "mpcactors", "version": PROTOCOL_VERSION, "role": "hospital",
        "session": SESSION, "purpose": "check", "parameters": DIGEST, "plan": PLAN,
    }


def test_a_hello_with_an_unknown_purpose_or_a_malformed_session_cannot_be_made() -> None:
    with pytest.raises(ValueError, match=r"purpose must be one of \('run', 'check'\), got 'spy'"):
        Hello("hospital", SESSION, "spy")
    with pytest.raises(ValueError, match="the session id must be 16 bytes"):
        Hello("hospital", bytes(8))


# ---- control frames ----------------------------------------------------------------------------


def test_envelopes_are_not_control_frames() -> None:
    envelope = encode_envelope(Envelope(SESSION, 1, "hospital", 0, "hash_contribution", {"value": bytes(32)}))
    assert not is_control(envelope) and not is_control(b"")
    assert is_control(ack_frame(SESSION)) and is_control(refuse_frame("abort", "why"))


@pytest.mark.parametrize(
    "frame, message",
    [
        (b"\x81\xa4type\xa3bye", "insurer sent a control frame of unknown type"),
        (encode({"kind": "hello"}), "insurer sent a control frame of unknown type"),
        (b"\x81\xa4type", "insurer sent an undecodable control frame: "),
    ],
)
def test_a_control_frame_of_unknown_type_or_undecodable_is_a_protocol_error(frame: bytes, message: str) -> None:
    with pytest.raises(PeerProtocolError) as caught:
        decode_control(frame, "insurer")
    assert str(caught.value).startswith(message)


def test_the_ack_names_the_agreed_session() -> None:
    assert decode_control(ack_frame(SESSION), "hospital") == {"type": "ack", "session": SESSION}


@pytest.mark.parametrize(
    "code, error",
    [("identity", TLSError), ("hello", PeerProtocolError), ("frame", PeerProtocolError), ("abort", AbortedError),
     ("unknown", PeerProtocolError)],
)
def test_a_refusal_raises_the_error_of_its_code_with_the_peers_reason(code: str, error: type) -> None:
    item = decode_control(refuse_frame(code, "insurer refuses: because"), "insurer")
    during = refusal_error(item, "insurer")
    after = refusal_error(item, "insurer", during_hello=False)
    assert type(during) is error and type(after) is error
    assert str(during) == "insurer refused the connection: insurer refuses: because"
    assert str(after) == "insurer closed the link: insurer refuses: because"


def test_a_refusal_reason_is_printable_and_short_on_both_ends() -> None:
    item = decode_control(refuse_frame("abort", "line\nbreak\x1b[31m" + "x" * 1000), "insurer")
    assert item["reason"].startswith("line?break?[31m") and len(item["reason"]) == 500
    hostile = {"type": "refuse", "code": 7, "reason": "\r" * 1000}
    assert str(refusal_error(hostile, "insurer")) == "insurer refused the connection: " + "?" * 500
