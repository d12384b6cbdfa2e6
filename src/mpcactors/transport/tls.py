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
2. **Identity to role**: the peer certificate's DNS-name and IP-address subjectAltName
   entries are mapped to a role through the configured ``role_by_identity`` allow-list
   (e-mail, URI, directory-name and other SANs never identify a party: a CA that also
   serves other projects may put anything there). A certificate that maps to no role,
   to several roles, or to a role other than the one expected on this link is refused:
   "peer presented SAN X, expected role Y". If the configuration pins that role's
   certificate (``pins``, from ``[peers.NAME] fingerprint``), the certificate's
   SHA-256 must also be the pinned one: a CA that serves other projects too could
   otherwise issue a certificate for a party's identity to someone else.
3. **The application hello**: each side sends ``{role, protocol version, session id,
   purpose, parameter digest}`` and then a verdict (``ack`` or ``refuse`` with a short
   readable reason). This is not decoration. In TLS 1.3 the client's handshake
   finishes *before* the server has checked the client's certificate, so without a
   round trip of application data a rejected client would only learn it was rejected
   on its first read, somewhere in step 1 of the protocol (python/cpython#110197).
   The hello also makes a misconfigured peer (wrong role, other protocol version,
   other run, different ``[protocol]`` parameters) fail at once, on both sides, with a
   message that says why. The frames and every decision about them are sans-I/O, in
   :mod:`mpcactors.transport.hello`; this module moves their bytes.

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
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from ..certs import pin_of
from ..codec import MAX_MESSAGE_BYTES, Envelope
from ..errors import MpcactorsError, PeerProtocolError, StepTimeout, TLSError, TransportError
from ._tls_errors import describe_tls_failure, why_broken
from .base import EnvelopeChannel, Recorder
from .framing import FrameReceiver, FrameTooLarge, send_frame
from .hello import (
    MAX_CONTROL_BYTES,
    PURPOSES,
    Hello,
    ack_frame,
    decode_control,
    is_control,
    refusal_error,
    refuse_frame,
    short_session,
)

__all__ = [
    "PURPOSES",
    "PeerCertificate",
    "TLSChannel",
    "identify_peer",
    "make_ssl_context",
    "open_tls_link",
]

log = structlog.get_logger(__name__)

#: How long a refusing side keeps reading (and discarding) after its refusal, so the
#: peer's unread bytes do not turn our close into a TCP reset that eats the refusal.
_LINGER = 2.0
_CLOSE_TIMEOUT = 2.0


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

    #: the subjectAltName DNS names and IP addresses: the SANs that identify a party
    sans: tuple[str, ...]
    #: SHA-256 of the DER certificate, hex with colons
    fingerprint: str
    not_after: str
    tls_version: str | None
    #: the other subjectAltName entries as ``type:value`` (``email:...``, ``URI:...``); shown, never matched
    other_sans: tuple[str, ...] = ()

    @property
    def pin(self) -> str:
        """The certificate as ``[peers.NAME] fingerprint`` pins it (``sha256:<hex>``)."""
        return pin_of(self.fingerprint)


#: The subjectAltName types that may identify a party, as :meth:`ssl.SSLSocket.getpeercert` names them.
_IDENTITY_SAN_TYPES = ("DNS", "IP Address")


def identify_peer(sans: Collection[str], role_by_identity: Mapping[str, str], *, ignored: Collection[str] = ()) -> str:
    """The role whose configured identity appears among ``sans`` (DNS names and IP addresses).

    DNS names compare case-insensitively. ``ignored`` (SANs of other types) is only
    shown in the refusal. Raises :class:`TLSError` if no SAN is a configured identity
    or if the SANs name more than one role (a certificate must not be able to act as
    two parties).
    """
    table = {identity.lower(): role for identity, role in role_by_identity.items()}
    roles = sorted({table[s.lower()] for s in sans if s.lower() in table})
    shown = ", ".join([*sans, *ignored]) or "(none)"
    if not roles:
        configured = ", ".join(f"{i} -> {r}" for i, r in sorted(role_by_identity.items()))
        hint = "; only DNS-name and IP-address SANs identify a party" if ignored else ""
        raise TLSError(f"peer presented SAN {shown}, which is not a configured identity (configured: {configured}){hint}")
    if len(roles) > 1:
        raise TLSError(f"peer presented SAN {shown}, which names several roles ({', '.join(roles)}); refused")
    return roles[0]


def _sans_of(cert: Mapping[str, Any] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The certificate's identities (DNS-name and IP-address SANs), and its other SANs as ``type:value``."""
    identities: list[str] = []
    others: list[str] = []
    for kind, value in cert.get("subjectAltName", ()) if cert else ():
        if kind in _IDENTITY_SAN_TYPES:
            identities.append(str(value))
        elif isinstance(value, tuple):  # a directory name: RDNs of (attribute, value) pairs
            others.append(f"{kind}:" + ", ".join(f"{name}={text}" for rdn in value for name, text in rdn))
        else:
            others.append(f"{kind}:{value}")
    return tuple(identities), tuple(others)


def _fingerprint(der: bytes | None) -> str:
    if not der:
        return ""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _peer_certificate(stream: trio.SSLStream[Any]) -> PeerCertificate:
    cert = stream.getpeercert()
    sans, other_sans = _sans_of(cert)
    return PeerCertificate(
        sans=sans,
        fingerprint=_fingerprint(stream.getpeercert(binary_form=True)),
        not_after=str(cert.get("notAfter", "")) if cert else "",
        tls_version=stream.version(),
        other_sans=other_sans,
    )


def _role_on_link(
    peer: PeerCertificate, role_by_identity: Mapping[str, str], pins: Mapping[str, str], expected: set[str], local_role: str
) -> str:
    """The peer's role if its certificate names one of ``expected`` (never our own) and
    is the pinned one, if that role is pinned; else TLSError."""
    peer_role = identify_peer(peer.sans, role_by_identity, ignored=peer.other_sans)
    presented = f"peer presented SAN {', '.join(peer.sans)} (role {peer_role})"
    if peer_role not in expected or peer_role == local_role:
        wanted = " or ".join(sorted(expected - {local_role})) or "another party"
        raise TLSError(f"{presented}, expected role {wanted}")
    pinned = pins.get(peer_role)
    if pinned is not None and peer.pin != pinned:
        raise TLSError(f"{presented} with fingerprint {peer.pin}, but [peers.{peer_role}] fingerprint pins {pinned}")
    return peer_role


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
        if is_control(frame):
            item = decode_control(frame, self.peer)
            if item["type"] == "refuse":
                await self.aclose()
                raise refusal_error(item, self.peer, during_hello=False)
            raise PeerProtocolError(f"{self.peer} sent a {item['type']!r} control frame after the hello")
        return frame

    async def receive(self) -> Envelope:
        envelope = await super().receive()
        if self.session is not None and envelope.session != self.session:
            raise PeerProtocolError(
                f"{self.peer} sent a message of session {short_session(envelope.session)} on a link of session {short_session(self.session)}"
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
                    await send_frame(self.stream, refuse_frame(code, reason))
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
        await _close(self.stream)


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
                    if is_control(frame) and decode_control(frame, receiver.peer)["type"] == "refuse":
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
    plan: bytes | None = None,
    peer_address: str | None = None,
    recorder: Recorder | None = None,
    pins: Mapping[str, str] | None = None,
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
            then know it). The session creator (the first data party) always passes its own.
        handshake_timeout: seconds for the TLS handshake and the hello together.
        read_timeout: optional idle limit on each later read (``None``: the actors'
            step deadlines apply instead, since steps may compute for minutes).
        max_frame_bytes: hard cap on one frame, both directions.
        purpose: ``"run"`` or ``"check"`` (see :data:`PURPOSES`).
        parameters: digest of the public run parameters; a peer with another digest is
            refused (``None`` skips the comparison).
        plan: digest of the signed-off study plan (``None``: the default plan); compared
            with the parameters, and a refusal names both plans' digests.
        peer_address: how to name the peer before it is identified ("10.0.0.2:4433").
        pins: role -> the ``sha256:<hex>`` its certificate must have
            (:func:`mpcactors.certs.parse_pin`); an unpinned role is checked by CA and
            SAN only. Checked right after the handshake, before the hello.

    Returns:
        ``(channel, session)``: ``session`` is the agreed session id (``None`` for a
        check link).

    Raises:
        TLSError: the handshake failed, the peer's identity is not the expected one or
            its certificate is not the pinned one (on either side: the peer's refusal
            reaches us as its reason).
        PeerProtocolError: the hello failed (version, role, session or parameters).
        TransportError: the connection broke.

        Every error raised carries ``peer_role``: the role the peer's certificate proved,
        or ``None`` if it failed before that (so a listener can tell a misconfigured
        peer from a stranger).
    """
    ours = Hello(local_role, session, purpose, parameters, plan)
    expected = {expected_peer_role} if isinstance(expected_peer_role, str) else set(expected_peer_role)
    roles = sorted(set(role_by_identity.values()))  # the configured peers, whatever the roster
    unknown = expected - set(roles)
    if unknown or not expected:
        raise ValueError(f"expected_peer_role must name roles among {roles}, got {sorted(unknown) or 'nothing'}")
    who = f"the peer at {peer_address}" if peer_address else "the peer"
    if not server_side and len(expected) == 1:
        who = f"{next(iter(expected))} at {peer_address}" if peer_address else next(iter(expected))
    ssl_stream = trio.SSLStream(stream, ssl_context, server_side=server_side, server_hostname=server_hostname)
    identified: str | None = None  # the peer's role once its certificate proved it
    receiver = FrameReceiver(ssl_stream, max_frame_bytes=min(max_frame_bytes, MAX_CONTROL_BYTES), peer=who)
    try:
        try:
            with trio.fail_after(handshake_timeout):
                # 1. TLS
                try:
                    await ssl_stream.do_handshake()
                except trio.BrokenResourceError as exc:
                    await _flush_alert_and_close(ssl_stream, _LINGER)
                    raise TLSError(describe_tls_failure(exc, who=who, identity=server_hostname)) from None
                peer_certificate = _peer_certificate(ssl_stream)
                # 2. identity -> role, and the pin
                try:
                    peer_role = _role_on_link(peer_certificate, role_by_identity, pins or {}, expected, local_role)
                except TLSError as exc:
                    # our reason, and the same fact phrased for the peer's operator
                    mine = str(exc).replace("peer presented", f"{who} presented", 1)
                    theirs = str(exc).replace("peer presented", "we presented", 1)
                    await _refuse_hello(ssl_stream, receiver, "identity", f"{local_role} refuses: {theirs}")
                    raise TLSError(mine) from None
                identified = peer_role
                who = f"{peer_role} at {peer_address}" if peer_address else peer_role
                receiver.peer = who
                # 3. hello, both directions
                await send_frame(ssl_stream, ours.frame())
                item = await _receive_control(ssl_stream, receiver, who)
                if item["type"] != "hello":
                    raise PeerProtocolError(f"{who} sent {item['type']!r} where its hello was expected")
                verdict = ours.judge(item, peer_role=peer_role)
                if not verdict.accepted:
                    await _refuse_hello(ssl_stream, receiver, "hello", f"{local_role} refuses: {verdict.reason}")
                    raise PeerProtocolError(f"{who}: {verdict.reason}")
                await send_frame(ssl_stream, ack_frame(verdict.session))
                reply = await _receive_control(ssl_stream, receiver, who)
                if reply["type"] != "ack" or reply.get("session") != verdict.session:
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
        purpose=verdict.purpose,
        tls=peer_certificate.tls_version,
        peer_san=list(peer_certificate.sans),
        peer_fingerprint=peer_certificate.fingerprint,
    )
    channel = TLSChannel(
        local_role,
        peer_role,
        ssl_stream,
        receiver,
        session=verdict.session,
        purpose=verdict.purpose,
        peer_certificate=peer_certificate,
        address=peer_address,
        read_timeout=read_timeout,
        max_message_bytes=max_frame_bytes,
        recorder=recorder,
    )
    return channel, verdict.session


async def _refuse_hello(stream: trio.SSLStream[Any], receiver: FrameReceiver, code: str, reason: str) -> None:
    """Send a refusal during the hello (best effort), then linger until the peer is done and close."""
    try:
        await send_frame(stream, refuse_frame(code, reason))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    await _linger_and_close(stream, _LINGER, receiver)


async def _receive_control(stream: trio.SSLStream[Any], receiver: FrameReceiver, who: str) -> dict[str, Any]:
    """The peer's next control frame during the hello; a refusal closes ``stream`` and raises its reason."""
    try:
        frame = await receiver.receive_frame()
    except FrameTooLarge:
        raise PeerProtocolError(f"{who} sent an oversized hello; it is not an mpcactors party of this version") from None
    if not is_control(frame):
        raise PeerProtocolError(f"{who} sent protocol data before completing the hello")
    item = decode_control(frame, who)
    if item["type"] == "refuse":
        await _close(stream)
        raise refusal_error(item, who)
    return item
