"""The application hello after the TLS handshake, sans I/O.

After the handshake each side sends a :class:`Hello` ``{role, protocol version, session
id, purpose, parameter digest, plan digest}``, judges the peer's (:meth:`Hello.judge`, a
:class:`Verdict`), and answers with an ``ack`` naming the agreed session or a
``refuse`` frame with a code and one readable reason. This module builds and reads
those frames and makes every decision; it does no I/O (h11 style), so
:func:`~mpcactors.transport.tls.open_tls_link` only moves bytes and the decisions are
tested without a connection.

Control frames vs envelopes
---------------------------

Every frame body is msgpack. Envelopes are 7-element arrays; control frames (hello,
ack, refuse) are maps, so the first byte tells them apart. After the hello, a
``refuse`` frame is how a transport-level refusal (e.g. "your frame is above my cap")
reaches the peer as a readable reason rather than a reset connection.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..codec import PROTOCOL_VERSION, decode, encode
from ..errors import AbortedError, CodecError, MpcactorsError, PeerProtocolError, TLSError

__all__ = [
    "MAX_CONTROL_BYTES",
    "PURPOSES",
    "Hello",
    "Verdict",
    "ack_frame",
    "decode_control",
    "is_control",
    "refusal_error",
    "refuse_frame",
    "short_session",
]

#: ``"run"``: a protocol link. ``"check"``: a connectivity check (``mpcactors check``);
#: a link is a check link if either side says so, and carries no envelopes.
PURPOSES = ("run", "check")
#: The cap on one control frame, and so on everything a peer may send before its hello is judged.
MAX_CONTROL_BYTES = 4096

_APP = "mpcactors"
_MAX_REASON = 500

# refusal codes -> the error class the refused side raises
_REFUSAL_ERRORS: dict[str, type[MpcactorsError]] = {
    "identity": TLSError,
    "hello": PeerProtocolError,
    "frame": PeerProtocolError,
    "abort": AbortedError,
}


def is_control(frame: bytes) -> bool:
    """Control frames are msgpack maps; envelopes are arrays."""
    return bool(frame) and (0x80 <= frame[0] <= 0x8F or frame[0] in (0xDE, 0xDF))


def _clean_reason(text: object) -> str:
    printable = set(string.printable) - set("\r\n\t\x0b\x0c")
    return "".join(c if c in printable else "?" for c in str(text))[:_MAX_REASON]


def decode_control(frame: bytes, who: str) -> dict[str, Any]:
    """The control frame ``frame`` from ``who``: a map whose ``type`` is hello, ack or refuse.

    Raises:
        PeerProtocolError: undecodable, or of an unknown type.
    """
    try:
        item = decode(frame, max_bytes=MAX_CONTROL_BYTES)
    except CodecError as exc:
        raise PeerProtocolError(f"{who} sent an undecodable control frame: {exc}") from None
    if not isinstance(item, dict) or item.get("type") not in ("hello", "ack", "refuse"):
        raise PeerProtocolError(f"{who} sent a control frame of unknown type")
    return item


def refuse_frame(code: str, reason: str) -> bytes:
    """A ``refuse`` frame: ``code`` picks the error the peer raises, ``reason`` is shown to it."""
    return encode({"type": "refuse", "code": code, "reason": _clean_reason(reason)})


def ack_frame(session: bytes | None) -> bytes:
    """An ``ack`` frame naming the agreed session."""
    return encode({"type": "ack", "session": session})


def refusal_error(item: Mapping[str, Any], who: str, *, during_hello: bool = True) -> MpcactorsError:
    """The error to raise for the ``refuse`` frame ``item`` that ``who`` sent."""
    code = item.get("code")
    cls = _REFUSAL_ERRORS.get(code if isinstance(code, str) else "", PeerProtocolError)
    what = "refused the connection" if during_hello else "closed the link"
    return cls(f"{who} {what}: {_clean_reason(item.get('reason', ''))}")


def short_session(session: bytes | None) -> str:
    """A session id as messages show it: its first 8 hex digits."""
    return session.hex()[:8] if session else "(none)"


def _short_plan(digest: object) -> str:
    """A plan digest as refusals show it: its first 16 hex digits."""
    if digest is None:
        return "(none: the default plan)"
    return f"{digest.hex()[:16]}..." if isinstance(digest, bytes) and len(digest) == 32 else "(malformed)"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Our judgement of the peer's hello.

    Accepted when ``reason`` is empty: ``purpose`` is then the link's purpose and
    ``session`` the agreed session id (``None`` on a check link). Refused otherwise:
    ``reason`` says why, in words for both operators.
    """

    purpose: str = ""
    session: bytes | None = None
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return not self.reason


@dataclass(frozen=True, slots=True)
class Hello:
    """Our side of the hello: what we announce, and the judge of what the peer announces.

    Attributes:
        role: our role.
        session: our session id, or ``None`` if we have yet to learn it from the peer.
        purpose: ``"run"`` or ``"check"`` (see :data:`PURPOSES`).
        parameters: digest of the public run parameters; a peer with another digest is
            refused (``None`` skips the comparison, the plan's too).
        plan: digest of the study plan the parties signed off (``None``: the default plan,
            which the parameters imply). It is one of the parameters; the hello carries it
            on its own so that a refusal names both plans' digests. A peer that sends none
            (an older version) has the default plan.

    Raises:
        ValueError: an unknown purpose, or a session id that is not 16 bytes.
    """

    role: str
    session: bytes | None
    purpose: str = "run"
    parameters: bytes | None = None
    plan: bytes | None = None

    def __post_init__(self) -> None:
        if self.purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {PURPOSES}, got {self.purpose!r}")
        if self.session is not None and len(self.session) != 16:
            raise ValueError("the session id must be 16 bytes")

    def frame(self) -> bytes:
        """Our hello as a control frame."""
        return encode({
            "type": "hello",
            "app": _APP,
            "version": PROTOCOL_VERSION,
            "role": self.role,
            "session": self.session,
            "purpose": self.purpose,
            "parameters": self.parameters,
            "plan": self.plan,
        })

    def judge(self, hello: Mapping[str, Any], *, peer_role: str) -> Verdict:
        """Check the peer's decoded ``hello``; its certificate proved it is ``peer_role``.

        A check link needs no session; a run link adopts ours or the peer's session id,
        and refuses two different ones, or none at all.
        """
        if hello.get("app") != _APP:
            return Verdict(reason="the peer is not an mpcactors party")
        version = hello.get("version")
        if version != PROTOCOL_VERSION:
            return Verdict(reason=f"protocol version mismatch: the peer speaks {version!r}, we speak {PROTOCOL_VERSION}")
        if hello.get("role") != peer_role:
            return Verdict(reason=f"the peer's hello claims role {hello.get('role')!r} but its certificate identifies it as {peer_role}")
        their_purpose = hello.get("purpose")
        if their_purpose not in PURPOSES:
            return Verdict(reason=f"unknown link purpose {their_purpose!r}")
        link_purpose = "check" if "check" in (self.purpose, their_purpose) else "run"
        theirs = hello.get("session")
        if theirs is not None and (not isinstance(theirs, bytes) or len(theirs) != 16):
            return Verdict(reason="the session id must be 16 bytes")
        if link_purpose == "check":
            return Verdict(link_purpose)
        their_parameters, their_plan = hello.get("parameters"), hello.get("plan")
        if self.parameters is not None and their_plan != self.plan:
            return Verdict(reason=(
                f"plan digests differ: ours {_short_plan(self.plan)}, theirs {_short_plan(their_plan)} at {peer_role}; "
                "every party must sign off the same plan ([plan] file), or all none"
            ))
        if self.parameters is not None and their_parameters != self.parameters:
            ours = self.parameters.hex()[:12]
            shown = their_parameters.hex()[:12] if isinstance(their_parameters, bytes) else "(none)"
            return Verdict(reason=(
                f"the [protocol] parameters differ (digest {shown} at {peer_role}, {ours} here); "
                "all three parties' [protocol] sections must be identical"
            ))
        if self.session is not None and theirs is not None and self.session != theirs:
            return Verdict(reason=(
                f"session mismatch: {peer_role} is in session {short_session(theirs)}, we are in {short_session(self.session)} "
                "(is one party left over from another run?)"
            ))
        if self.session is None and theirs is None:
            return Verdict(reason=(
                "neither side knows the session id (the roster's first data party creates it; the others "
                "learn it from that party or from a party that already did: check the dial directions)"
            ))
        return Verdict(link_purpose, self.session or theirs)
