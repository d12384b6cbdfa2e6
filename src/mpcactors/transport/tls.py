"""Mutual-TLS transport: envelopes in length-prefixed frames over ``trio.SSLStream``.

General theory of operation
---------------------------

:func:`open_tls_link` turns a connected byte stream (TCP in deployment, a memory
stream in tests) into a :class:`TLSChannel`, the same :class:`trio.abc.Channel` of
envelopes as the in-memory transport, so actors never know which one they hold.
It does three things, all under one ``handshake_timeout``:

1. **The TLS handshake**, mutual: both sides present a certificate and require one
   (``CERT_REQUIRED`` both ways), TLS 1.2 at least and 1.3 when both support it
   (OpenSSL's default preference), and the client checks the server's certificate
   against the identity it expects (``check_hostname``).
2. **Identity to role**: the peer certificate's subjectAltName entries are mapped to
   a role through the configured ``role_by_identity`` allow-list. A certificate that
   maps to no role, to several roles, or to a role other than the one expected on this
   link is refused: "peer presented SAN X, expected role Y".
3. **The application hello**: each side sends ``{role, protocol version, session id,
   purpose, parameter digest}`` and then a verdict (``ack`` or ``refuse`` with a short
   readable reason). This is not decoration. In TLS 1.3 the client's handshake
   finishes *before* the server has checked the client's certificate, so without a
   round trip of application data a rejected client would only learn it was rejected
   on its first read, somewhere in step 1 of the protocol (python/cpython#110197).
   The hello also makes a misconfigured peer (wrong role, other protocol version,
   other run, different ``[protocol]`` parameters) fail at once, on both sides, with a
   message that says why.

Control frames vs envelopes
---------------------------

Every frame body is msgpack. Envelopes are 7-element arrays; control frames (hello,
ack, refuse) are maps, so the first byte tells them apart. After the hello, a
``refuse`` frame is how a transport-level refusal (e.g. "your frame is above my cap")
reaches the peer as a readable reason rather than a reset connection.

When a handshake fails, trio marks the stream broken without sending the TLS alert
OpenSSL produced; we flush that alert ourselves so the *other* side sees "alert unknown
ca" or "alert certificate expired" instead of an unexplained EOF. That reads trio's
private ``_outgoing`` BIO, guarded with ``getattr``: if trio changes, the peer's
message gets vaguer but nothing breaks (the tests check the messages). The sentences
that explain a failed handshake are in :mod:`mpcactors.transport._tls_errors`.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from ..codec import MAX_MESSAGE_BYTES, PROTOCOL_VERSION, ROLES, Envelope, decode, encode
from ..errors import (
    AbortedError,
    CodecError,
    MpcactorsError,
    PeerProtocolError,
    StepTimeout,
    TLSError,
    TransportError,
)
from ._tls_errors import describe_tls_failure, why_broken
from .base import EnvelopeChannel, Recorder
from .framing import FrameReceiver, FrameTooLarge, send_frame

__all__ = [
    "PURPOSES",
    "PeerCertificate",
    "TLSChannel",
    "identify_peer",
    "make_ssl_context",
    "open_tls_link",
]

log = structlog.get_logger(__name__)

#: ``"run"``: a protocol link. ``"check"``: a connectivity check (``mpcactors check``);
#: a link is a check link if either side says so, and carries no envelopes.
PURPOSES = ("run", "check")

_APP = "mpcactors"
_MAX_CONTROL_BYTES = 4096
_MAX_REASON = 500
#: How long a refusing side keeps reading (and discarding) after its refusal, so the
#: peer's unread bytes do not turn our close into a TCP reset that eats the refusal.
_LINGER = 2.0
_CLOSE_TIMEOUT = 2.0

# refusal codes -> the error class the refused side raises
_REFUSAL_ERRORS: dict[str, type[MpcactorsError]] = {
    "identity": TLSError,
    "hello": PeerProtocolError,
    "frame": PeerProtocolError,
    "abort": AbortedError,
}


# ---- certificates and contexts ---------------------------------------------------------


def make_ssl_context(*, certificate: str | os.PathLike[str], key: str | os.PathLike[str], ca: str | os.PathLike[str], server_side: bool) -> ssl.SSLContext:
    """An mTLS context: our certificate and key, only ``ca`` trusted, peers must present one.

    Raises:
        ssl.SSLError, OSError: unreadable or mismatched files (the daemon turns these
            into :class:`~mpcactors.errors.ConfigError` naming the file).
    """
    purpose = ssl.Purpose.CLIENT_AUTH if server_side else ssl.Purpose.SERVER_AUTH
    context = ssl.create_default_context(purpose, cafile=os.fspath(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = not server_side
    context.options |= ssl.OP_NO_COMPRESSION  # |=, keeping the defaults
    context.load_cert_chain(os.fspath(certificate), os.fspath(key))
    return context


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """What we learnt about the peer's certificate (public; safe to log)."""

    #: subjectAltName values (DNS names, IP addresses, ...)
    sans: tuple[str, ...]
    #: SHA-256 of the DER certificate, hex with colons
    fingerprint: str
    not_after: str
    tls_version: str | None


def identify_peer(sans: Collection[str], role_by_identity: Mapping[str, str]) -> str:
    """The role whose configured identity appears among ``sans``.

    DNS names compare case-insensitively. Raises :class:`TLSError` if no SAN is a
    configured identity or if the SANs name more than one role (a certificate must not
    be able to act as two parties).
    """
    table = {identity.lower(): role for identity, role in role_by_identity.items()}
    roles = sorted({table[s.lower()] for s in sans if s.lower() in table})
    shown = ", ".join(sans) or "(none)"
    if not roles:
        configured = ", ".join(f"{i} -> {r}" for i, r in sorted(role_by_identity.items()))
        raise TLSError(f"peer presented SAN {shown}, which is not a configured identity (configured: {configured})")
    if len(roles) > 1:
        raise TLSError(f"peer presented SAN {shown}, which names several roles ({', '.join(roles)}); refused")
    return roles[0]


def _sans_of(cert: Mapping[str, Any] | None) -> tuple[str, ...]:
    if not cert:
        return ()
    return tuple(str(value) for _kind, value in cert.get("subjectAltName", ()))


def _fingerprint(der: bytes | None) -> str:
    if not der:
        return ""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


# ---- control frames --------------------------------------------------------------------------


def _is_control(frame: bytes) -> bool:
    """Control frames are msgpack maps; envelopes are arrays."""
    return bool(frame) and (0x80 <= frame[0] <= 0x8F or frame[0] in (0xDE, 0xDF))


def _clean_reason(text: object) -> str:
    printable = set(string.printable) - set("\r\n\t\x0b\x0c")
    return "".join(c if c in printable else "?" for c in str(text))[:_MAX_REASON]


def _decode_control(frame: bytes, who: str) -> dict[str, Any]:
    try:
        item = decode(frame, max_bytes=_MAX_CONTROL_BYTES)
    except CodecError as exc:
        raise PeerProtocolError(f"{who} sent an undecodable control frame: {exc}") from None
    if not isinstance(item, dict) or item.get("type") not in ("hello", "ack", "refuse"):
        raise PeerProtocolError(f"{who} sent a control frame of unknown type")
    return item


def _refusal_error(item: Mapping[str, Any], who: str, *, during_hello: bool = True) -> MpcactorsError:
    code = item.get("code")
    cls = _REFUSAL_ERRORS.get(code if isinstance(code, str) else "", PeerProtocolError)
    what = "refused the connection" if during_hello else "closed the link"
    return cls(f"{who} {what}: {_clean_reason(item.get('reason', ''))}")


def _short(session: bytes | None) -> str:
    return session.hex()[:8] if session else "(none)"


def _judge_hello(
    hello: Mapping[str, Any],
    *,
    peer_role: str,
    session: bytes | None,
    parameters: bytes | None,
    purpose: str,
) -> tuple[str, bytes | None, str]:
    """Check the peer's hello. Returns ``(purpose of the link, agreed session, "")`` or
    ``("", None, reason)`` for a refusal. Pure: no I/O."""
    if hello.get("app") != _APP:
        return "", None, "the peer is not an mpcactors party"
    version = hello.get("version")
    if version != PROTOCOL_VERSION:
        return "", None, f"protocol version mismatch: the peer speaks {version!r}, we speak {PROTOCOL_VERSION}"
    if hello.get("role") != peer_role:
        return "", None, f"the peer's hello claims role {hello.get('role')!r} but its certificate identifies it as {peer_role}"
    their_purpose = hello.get("purpose")
    if their_purpose not in PURPOSES:
        return "", None, f"unknown link purpose {their_purpose!r}"
    link_purpose = "check" if "check" in (purpose, their_purpose) else "run"
    theirs = hello.get("session")
    if theirs is not None and (not isinstance(theirs, bytes) or len(theirs) != 16):
        return "", None, "the session id must be 16 bytes"
    if link_purpose == "check":
        return link_purpose, None, ""
    their_parameters = hello.get("parameters")
    if parameters is not None and their_parameters != parameters:
        ours = parameters.hex()[:12]
        shown = their_parameters.hex()[:12] if isinstance(their_parameters, bytes) else "(none)"
        return "", None, (
            f"the [protocol] parameters differ (digest {shown} at {peer_role}, {ours} here); "
            "all three parties' [protocol] sections must be identical"
        )
    if session is not None and theirs is not None and session != theirs:
        return "", None, (
            f"session mismatch: {peer_role} is in session {_short(theirs)}, we are in {_short(session)} "
            "(is one party left over from another run?)"
        )
    if session is None and theirs is None:
        return "", None, (
            "neither side knows the session id (the hospital creates it; the others learn it "
            "from the hospital or from a party that already did: check the dial directions)"
        )
    return link_purpose, session or theirs, ""


# ---- the channel -----------------------------------------------------------------------------


class TLSChannel(EnvelopeChannel):
    """Envelopes over one authenticated TLS connection to one peer.

    Built by :func:`open_tls_link`, never directly. Sends are serialised by a lock (an
    :class:`trio.SSLStream` allows one sender at a time); receives must come from one
    task at a time, as on any trio channel.

    Attributes:
        session: the agreed session id (``None`` on a check link).
        purpose: ``"run"`` or ``"check"``.
        peer_certificate: the peer's SAN, fingerprint and expiry.
        address: how the peer was reached (for messages), if known.
    """

    def __init__(
        self,
        local: str,
        peer: str,
        stream: trio.SSLStream[Any],
        receiver: FrameReceiver,
        *,
        session: bytes | None,
        purpose: str,
        peer_certificate: PeerCertificate,
        address: str | None = None,
        read_timeout: float | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        recorder: Recorder | None = None,
    ) -> None:
        super().__init__(local, peer, max_message_bytes=max_message_bytes, recorder=recorder)
        self.stream = stream
        self.session = session
        self.purpose = purpose
        self.peer_certificate = peer_certificate
        self.address = address
        self.read_timeout = read_timeout
        self._receiver = receiver
        self._send_lock = trio.Lock()
        self._closed = False

    async def _send_bytes(self, data: bytes) -> None:
        try:
            async with self._send_lock:
                await send_frame(self.stream, data, max_frame_bytes=self.max_message_bytes)
        except trio.ClosedResourceError:
            raise TransportError(f"the link from {self.local} to {self.peer} is closed") from None
        except trio.BrokenResourceError as exc:
            raise TransportError(f"the connection to {self.peer} broke while sending ({why_broken(exc, self.peer)})") from None

    async def _receive_bytes(self) -> bytes:
        try:
            if self.read_timeout is None:
                frame = await self._receiver.receive_frame()
            else:
                with trio.fail_after(self.read_timeout):
                    frame = await self._receiver.receive_frame()
        except trio.TooSlowError:
            raise StepTimeout(f"no data from {self.peer} for {self.read_timeout:g} s (link read timeout)") from None
        except trio.EndOfChannel:
            raise TransportError(f"{self.peer} closed the link to {self.local}") from None
        except trio.ClosedResourceError:
            raise TransportError(f"the link from {self.local} to {self.peer} is closed") from None
        except trio.BrokenResourceError as exc:
            raise TransportError(f"the connection to {self.peer} broke ({why_broken(exc, self.peer)})") from None
        except FrameTooLarge as exc:
            await self._refuse_and_close(
                "frame", f"{self.local} refuses a frame of {exc.size} bytes, above its cap of {exc.limit} bytes"
            )
            raise
        if _is_control(frame):
            item = _decode_control(frame, self.peer)
            if item["type"] == "refuse":
                await self.aclose()
                raise _refusal_error(item, self.peer, during_hello=False)
            raise PeerProtocolError(f"{self.peer} sent a {item['type']!r} control frame after the hello")
        return frame

    async def receive(self) -> Envelope:
        envelope = await super().receive()
        if self.session is not None and envelope.session != self.session:
            raise PeerProtocolError(
                f"{self.peer} sent a message of session {_short(envelope.session)} on a link of session {_short(self.session)}"
            )
        return envelope

    async def refuse(self, reason: str, *, code: str = "abort") -> None:
        """Tell the peer, in one readable sentence, why we are closing; then close.

        Best effort and bounded in time: the link may already be broken.
        """
        await self._refuse_and_close(code, reason)

    async def _refuse_and_close(self, code: str, reason: str) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        with trio.move_on_after(_CLOSE_TIMEOUT) as scope:
            scope.shield = True
            try:
                async with self._send_lock:
                    await send_frame(self.stream, _refuse_frame(code, reason))
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                pass
        # keep reading (and discarding) briefly, so that closing with unread bytes does
        # not become a TCP reset that destroys the refusal before the peer reads it
        await _linger_and_close(self.stream, _LINGER)

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        with trio.move_on_after(_CLOSE_TIMEOUT) as scope:
            scope.shield = True
            try:
                await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        if scope.cancelled_caught:  # the graceful close hung: drop the transport
            await trio.aclose_forcefully(self.stream.transport_stream)


def _refuse_frame(code: str, reason: str) -> bytes:
    return encode({"type": "refuse", "code": code, "reason": _clean_reason(reason)})


# ---- opening a link ------------------------------------------------------------------------


async def _flush_alert_and_close(stream: trio.SSLStream[Any], linger: float) -> None:
    """After a failed handshake: send the TLS alert OpenSSL produced, then close.

    trio marks the stream broken without flushing the alert; sending it tells the peer
    *why* (e.g. "alert unknown ca"). We then half-close and drain briefly so our close
    does not become a TCP reset that discards the alert before the peer reads it.
    """
    transport = stream.transport_stream
    with trio.move_on_after(linger) as scope:
        scope.shield = True
        try:
            outgoing = getattr(stream, "_outgoing", None)
            pending = outgoing.read() if outgoing is not None else b""
            if pending:
                await transport.send_all(pending)
            send_eof = getattr(transport, "send_eof", None)
            if send_eof is not None:
                await send_eof()
            while await transport.receive_some(65536):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError, OSError):
            pass
    await trio.aclose_forcefully(transport)


async def _linger_and_close(stream: trio.SSLStream[Any], linger: float, receiver: FrameReceiver | None = None) -> None:
    """After sending a refusal: read and discard until the peer is done, then close.

    Closing a TCP socket with unread bytes makes the kernel send a reset, which can
    destroy our refusal before the peer reads it. So we keep reading until the peer
    closes, or (with ``receiver``, during the hello) until it refuses too: then it reads
    nothing more from us either, and both sides would otherwise wait for each other.
    """
    with trio.move_on_after(linger) as scope:
        scope.shield = True
        try:
            if receiver is None:
                while await stream.receive_some(65536):
                    pass
            else:
                while True:
                    frame = await receiver.receive_frame()
                    if _is_control(frame) and _decode_control(frame, receiver.peer)["type"] == "refuse":
                        break
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError, trio.EndOfChannel, MpcactorsError):
            pass
    await _close(stream)


async def _close(stream: trio.SSLStream[Any]) -> None:
    """Graceful close (close_notify) within a bounded time, then drop the transport."""
    with trio.move_on_after(_CLOSE_TIMEOUT) as scope:
        scope.shield = True
        try:
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    await trio.aclose_forcefully(stream.transport_stream)


async def open_tls_link(
    stream: trio.abc.Stream,
    *,
    local_role: str,
    expected_peer_role: str | Collection[str],
    ssl_context: ssl.SSLContext,
    server_side: bool,
    server_hostname: str | None,
    role_by_identity: Mapping[str, str],
    session: bytes | None,
    handshake_timeout: float,
    read_timeout: float | None = None,
    max_frame_bytes: int = MAX_MESSAGE_BYTES,
    purpose: str = "run",
    parameters: bytes | None = None,
    peer_address: str | None = None,
    recorder: Recorder | None = None,
) -> tuple[TLSChannel, bytes | None]:
    """Authenticate the peer on ``stream`` and agree on the session: a ready channel.

    Args:
        stream: a connected byte stream; it is owned (and closed on failure) from now on.
        local_role: our role.
        expected_peer_role: the role this link must lead to; a listener that accepts
            several peers passes the set of roles that dial it.
        ssl_context: from :func:`make_ssl_context` with the matching ``server_side``.
        server_hostname: on the client, the identity the server must present (checked
            by OpenSSL's hostname check); ``None`` on the server.
        role_by_identity: certificate identity (SAN) -> role, for every peer.
        session: our session id, or ``None`` if we have yet to learn it (the peer must
            then know it). The hospital always passes its own.
        handshake_timeout: seconds for the TLS handshake and the hello together.
        read_timeout: optional idle limit on each later read (``None``: the actors'
            step deadlines apply instead, since steps may compute for minutes).
        max_frame_bytes: hard cap on one frame, both directions.
        purpose: ``"run"`` or ``"check"`` (see :data:`PURPOSES`).
        parameters: digest of the public run parameters; a peer with another digest is
            refused (``None`` skips the comparison).
        peer_address: how to name the peer before it is identified ("10.0.0.2:4433").

    Returns:
        ``(channel, session)``: ``session`` is the agreed session id (``None`` for a
        check link).

    Raises:
        TLSError: the handshake failed or the peer's identity is not the expected one
            (on either side: the peer's refusal reaches us as its reason).
        PeerProtocolError: the hello failed (version, role, session or parameters).
        TransportError: the connection broke.

        Every error raised carries ``peer_role``: the role the peer's certificate proved,
        or ``None`` if it failed before that (so a listener can tell a misconfigured
        peer from a stranger).
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    if session is not None and len(session) != 16:
        raise ValueError("the session id must be 16 bytes")
    expected = {expected_peer_role} if isinstance(expected_peer_role, str) else set(expected_peer_role)
    unknown = expected - set(ROLES)
    if unknown or not expected:
        raise ValueError(f"expected_peer_role must name roles among {ROLES}, got {sorted(unknown) or 'nothing'}")
    who = f"the peer at {peer_address}" if peer_address else "the peer"
    if not server_side and len(expected) == 1:
        who = f"{next(iter(expected))} at {peer_address}" if peer_address else next(iter(expected))
    ssl_stream = trio.SSLStream(stream, ssl_context, server_side=server_side, server_hostname=server_hostname)
    identified: str | None = None  # the peer's role once its certificate proved it
    receiver = FrameReceiver(ssl_stream, max_frame_bytes=min(max_frame_bytes, _MAX_CONTROL_BYTES), peer=who)
    try:
        try:
            with trio.fail_after(handshake_timeout):
                # 1. TLS
                try:
                    await ssl_stream.do_handshake()
                except trio.BrokenResourceError as exc:
                    await _flush_alert_and_close(ssl_stream, _LINGER)
                    raise TLSError(describe_tls_failure(exc, who=who, identity=server_hostname)) from None
                cert = ssl_stream.getpeercert()
                peer_certificate = PeerCertificate(
                    sans=_sans_of(cert),
                    fingerprint=_fingerprint(ssl_stream.getpeercert(binary_form=True)),
                    not_after=str(cert.get("notAfter", "")) if cert else "",
                    tls_version=ssl_stream.version(),
                )
                # 2. identity -> role
                try:
                    peer_role = identify_peer(peer_certificate.sans, role_by_identity)
                    if peer_role not in expected or peer_role == local_role:
                        wanted = " or ".join(sorted(expected - {local_role})) or "another party"
                        raise TLSError(
                            f"peer presented SAN {', '.join(peer_certificate.sans)} (role {peer_role}), expected role {wanted}"
                        )
                except TLSError as exc:
                    # our reason, and the same fact phrased for the peer's operator
                    mine = str(exc).replace("peer presented", f"{who} presented", 1)
                    theirs = str(exc).replace("peer presented", "we presented", 1)
                    await _send_quietly(ssl_stream, _refuse_frame("identity", f"{local_role} refuses: {theirs}"))
                    await _linger_and_close(ssl_stream, _LINGER, receiver)
                    raise TLSError(mine) from None
                identified = peer_role
                who = f"{peer_role} at {peer_address}" if peer_address else peer_role
                receiver.peer = who
                # 3. hello, both directions
                hello = {
                    "type": "hello",
                    "app": _APP,
                    "version": PROTOCOL_VERSION,
                    "role": local_role,
                    "session": session,
                    "purpose": purpose,
                    "parameters": parameters,
                }
                await send_frame(ssl_stream, encode(hello))
                item = await _receive_control(receiver, who)
                if item["type"] == "refuse":
                    await _close(ssl_stream)
                    raise _refusal_error(item, who)
                if item["type"] != "hello":
                    raise PeerProtocolError(f"{who} sent {item['type']!r} where its hello was expected")
                link_purpose, agreed, reason = _judge_hello(
                    item, peer_role=peer_role, session=session, parameters=parameters, purpose=purpose
                )
                if reason:
                    await _send_quietly(ssl_stream, _refuse_frame("hello", f"{local_role} refuses: {reason}"))
                    await _linger_and_close(ssl_stream, _LINGER, receiver)
                    raise PeerProtocolError(f"{who}: {reason}")
                await send_frame(ssl_stream, encode({"type": "ack", "session": agreed}))
                verdict = await _receive_control(receiver, who)
                if verdict["type"] == "refuse":
                    await _close(ssl_stream)
                    raise _refusal_error(verdict, who)
                if verdict["type"] != "ack" or verdict.get("session") != agreed:
                    raise PeerProtocolError(f"{who} acknowledged a different session than agreed")
        except trio.TooSlowError:
            raise TLSError(f"no TLS handshake and hello from {who} within {handshake_timeout:g} s") from None
        except trio.BrokenResourceError as exc:
            raise TLSError(describe_tls_failure(exc, who=who, identity=server_hostname)) from None
        except trio.EndOfChannel:
            raise TLSError(f"{who} closed the connection during the hello") from None
    except MpcactorsError as exc:
        await trio.aclose_forcefully(ssl_stream)
        exc.peer_role = identified  # type: ignore[attr-defined]
        raise
    except (trio.Cancelled, KeyboardInterrupt):
        await trio.aclose_forcefully(ssl_stream)
        raise
    receiver.max_frame_bytes = max_frame_bytes
    log.info(
        "link_open",
        peer=peer_role,
        purpose=link_purpose,
        tls=peer_certificate.tls_version,
        peer_san=list(peer_certificate.sans),
        peer_fingerprint=peer_certificate.fingerprint,
    )
    channel = TLSChannel(
        local_role,
        peer_role,
        ssl_stream,
        receiver,
        session=agreed,
        purpose=link_purpose,
        peer_certificate=peer_certificate,
        address=peer_address,
        read_timeout=read_timeout,
        max_message_bytes=max_frame_bytes,
        recorder=recorder,
    )
    return channel, agreed


async def _send_quietly(stream: trio.SSLStream[Any], data: bytes) -> None:
    try:
        await send_frame(stream, data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _receive_control(receiver: FrameReceiver, who: str) -> dict[str, Any]:
    try:
        frame = await receiver.receive_frame()
    except FrameTooLarge:
        raise PeerProtocolError(f"{who} sent an oversized hello; it is not an mpcactors party of this version") from None
    if not _is_control(frame):
        raise PeerProtocolError(f"{who} sent protocol data before completing the hello")
    return _decode_control(frame, who)
