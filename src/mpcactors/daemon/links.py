"""Connections to every peer: dial, accept, retry, and ``mpcactors check``.

Connection establishment (:func:`establish_links`) dials the peers we dial and accepts
the peers that dial us, concurrently, all within the ``[deadlines] connect`` budget:

* a dial that fails at the TCP level (port closed, host unreachable, peer not started
  yet) is retried with exponential back-off until the budget is spent; a TLS or hello
  failure is *not* retried, since it is a misconfiguration that retrying cannot fix;
* a failed incoming connection (a port scanner, a peer with the wrong CA) is logged
  and remembered, and the listener keeps listening; if the budget runs out, the error
  names the peers still missing and the last failure seen;
* the session id is the session creator's (``RunConfig.session_creator``, the first
  data party): it creates it, the others learn it in the hello from the creator or
  from a party that already learnt it; so a party that does not know the session yet
  dials its other peers only once it does, and hellos are run one at a time so the
  session adopted by one link is the one checked on the next;
* this cannot deadlock, whatever the number of parties and the dial directions: every
  member has a link with the creator, which never waits (it dials at once and answers
  every hello); a party that does not know the session dials nobody but the creator,
  so each hello it runs under its lock is with the creator or with a party that knows
  the session, and neither waits on it;
* a link whose other side is running ``mpcactors check`` is answered and closed, and
  establishment carries on (a dial is retried).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from ..actors.failures import leaves
from ..errors import ConfigError, MpcactorsError, PeerProtocolError, StepTimeout
from ..transport.tls import TLSChannel, open_tls_link
from .config import PartyConfig, PeerConfig, _format_address, parameters_digest

__all__ = ["CheckReport", "check_peers", "establish_links"]

log = structlog.get_logger(__name__)

_BACKOFF_FIRST = 0.1
#: One TCP connect attempt gives up after this long (a dropped SYN never fails by itself).
_CONNECT_ATTEMPT = 10.0
_NO_ANSWER = "no answer (a firewall may be silently dropping the connection)"
_BACKOFF_MAX = 5.0


@dataclass
class _Attempts:
    """What happened while connecting to one peer (for errors and ``check``)."""

    tries: int = 0
    last_error: str | None = None
    error: MpcactorsError | None = None


@dataclass
class CheckReport:
    """Per peer: did TCP, TLS and the hello work, and what did the peer present."""

    role: str
    dial: bool
    address: str
    ok: bool = False
    error: str | None = None
    tries: int = 0
    peer_sans: tuple[str, ...] = ()
    peer_fingerprint: str = ""
    peer_not_after: str = ""
    tls_version: str | None = None
    exit_code: int = 0

    def document(self) -> dict[str, Any]:
        return {
            "peer": self.role,
            "direction": "we dial" if self.dial else "it dials us",
            "address": self.address,
            "ok": self.ok,
            "error": self.error,
            "attempts": self.tries,
            "peer_san": list(self.peer_sans),
            "peer_fingerprint_sha256": self.peer_fingerprint,
            "peer_certificate_expires": self.peer_not_after,
            "tls_version": self.tls_version,
        }


class _Establisher:
    """Dials and accepts until every peer has a link (see the module docstring)."""

    def __init__(
        self,
        config: PartyConfig,
        *,
        session: bytes | None,
        purpose: str,
        open_stream: Callable[[str, int], Any],
    ) -> None:
        self.config = config
        self.purpose = purpose
        self.session = session
        self.session_known = trio.Event()
        if session is not None:
            self.session_known.set()
        self.links: dict[str, TLSChannel] = {}
        self.attempts: dict[str, _Attempts] = {role: _Attempts() for role in config.peers}
        self.reports = {
            role: CheckReport(role, peer.dial, peer.address_text) for role, peer in config.peers.items()
        }
        self.hello_lock = trio.Lock()
        self.done = trio.Event()
        self.last_incoming_failure: str | None = None
        self.open_stream = open_stream
        self.digest = parameters_digest(config.run)
        self.client_context = config.ssl_context(server_side=False)
        self.server_context = config.ssl_context(server_side=True)

    # -- shared
    def _settled(self, role: str) -> None:
        if all(role in self.links or self.attempts[role].error is not None for role in self.config.peers):
            self.done.set()

    def _link_up(self, channel: TLSChannel, session: bytes | None) -> None:
        role = channel.peer
        report = self.reports[role]
        report.ok, report.error = True, None
        report.peer_sans = channel.peer_certificate.sans
        report.peer_fingerprint = channel.peer_certificate.fingerprint
        report.peer_not_after = channel.peer_certificate.not_after
        report.tls_version = channel.peer_certificate.tls_version
        report.tries = self.attempts[role].tries
        if session is not None and self.session is None:
            self.session = session
            self.session_known.set()
        self.links[role] = channel
        self._settled(role)

    def _fatal(self, role: str, error: MpcactorsError) -> None:
        self.attempts[role].error = error
        self.reports[role].ok, self.reports[role].error = False, str(error)
        self.reports[role].exit_code = error.exit_code
        self.reports[role].tries = self.attempts[role].tries
        if self.purpose == "run":  # the run cannot happen without this peer: stop now
            self.done.set()
        self._settled(role)

    async def _hello(self, stream: trio.abc.Stream, *, server_side: bool, expected: Any, peer: PeerConfig | None, address: str) -> tuple[TLSChannel, bytes | None]:
        # Only a party that has yet to learn the session runs its hellos one at a time
        # (so the session the first link brings is the one the next link is checked
        # against). The session creator never waits here, so no cycle of dials can deadlock.
        if self.purpose == "check" or self.session is not None:
            return await self._open(stream, server_side=server_side, expected=expected, peer=peer, address=address)
        async with self.hello_lock:
            return await self._open(stream, server_side=server_side, expected=expected, peer=peer, address=address)

    async def _open(self, stream: trio.abc.Stream, *, server_side: bool, expected: Any, peer: PeerConfig | None, address: str) -> tuple[TLSChannel, bytes | None]:
        return await open_tls_link(
                stream,
                local_role=self.config.role,
                expected_peer_role=expected,
                ssl_context=self.server_context if server_side else self.client_context,
                server_side=server_side,
                server_hostname=None if server_side else peer.identity,  # type: ignore[union-attr]
                role_by_identity=self.config.role_by_identity,
                pins=self.config.pins,
                session=self.session if self.purpose == "run" else None,
                handshake_timeout=self.config.handshake_deadline,
                max_frame_bytes=self.config.max_frame_bytes,
                purpose=self.purpose,
                parameters=self.digest,
                plan=self.config.run.plan_digest,
                peer_address=address,
            )

    # -- dialing
    async def dial(self, peer: PeerConfig) -> None:
        assert peer.address is not None
        host, port = peer.address
        address = _format_address(peer.address)
        attempts = self.attempts[peer.role]
        if self.purpose == "run" and peer.role != self.config.run.session_creator and not self.session_known.is_set():
            log.info("waiting for the session id before dialing", peer=peer.role)
            await self.session_known.wait()
        delay = _BACKOFF_FIRST
        while True:
            attempts.tries += 1
            stream = None
            try:
                with trio.move_on_after(_CONNECT_ATTEMPT):
                    stream = await self.open_stream(host, port)
                if stream is None:
                    attempts.last_error = _NO_ANSWER
            except OSError as exc:
                attempts.last_error = _describe_os_error(exc)
            if stream is None:
                log.info("connect failed; retrying", peer=peer.role, address=address, error=attempts.last_error, retry_in=delay)
            else:
                try:
                    channel, session = await self._hello(stream, server_side=False, expected=peer.role, peer=peer, address=address)
                except MpcactorsError as exc:
                    self._fatal(peer.role, exc)
                    return
                if channel.purpose == "check" and self.purpose == "run":
                    attempts.last_error = f"{peer.role} is running `mpcactors check`, not a party"
                    log.info("the peer is running a check; retrying", peer=peer.role, retry_in=delay)
                    await channel.aclose()
                else:
                    self._link_up(channel, session)
                    return
            await trio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)

    # -- listening
    async def serve(self, listeners: list[trio.SocketListener], nursery: trio.Nursery) -> None:
        async def accept(listener: trio.SocketListener) -> None:
            while True:
                stream = await listener.accept()
                nursery.start_soon(self.handle, stream)

        async with trio.open_nursery() as inner:
            for listener in listeners:
                inner.start_soon(accept, listener)

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
            address = _format_address((host, port))
        except OSError:
            address = "an unknown address"
        waiting_for = {role for role, peer in self.config.peers.items() if not peer.dial and role not in self.links}
        if not waiting_for:
            await trio.aclose_forcefully(stream)
            return
        try:
            channel, session = await self._hello(stream, server_side=True, expected=waiting_for, peer=None, address=address)
        except PeerProtocolError as exc:
            # an identified peer whose hello does not match ours (other parameters,
            # other session, other version): retrying cannot fix it
            role = getattr(exc, "peer_role", None)
            if role in waiting_for:
                self._fatal(role, exc)
                return
            self.last_incoming_failure = str(exc)
            log.warning("refused an incoming connection", address=address, error=str(exc))
            return
        except MpcactorsError as exc:
            # not (yet) an identified peer: a scanner, or a peer with the wrong
            # certificate, who is told why; keep listening for the real one
            self.last_incoming_failure = str(exc)
            log.warning("refused an incoming connection", address=address, error=str(exc))
            return
        if channel.purpose == "check" and self.purpose == "run":
            log.info("answered a connectivity check", peer=channel.peer, address=address)
            await channel.aclose()
            return
        self.attempts[channel.peer].tries += 1
        self._link_up(channel, session)

    # -- all of it
    async def run(self) -> None:
        config = self.config
        listeners: list[trio.SocketListener] = []
        if any(not p.dial for p in config.peers.values()):
            assert config.listen is not None
            host, port = config.listen
            try:
                listeners = await trio.open_tcp_listeners(port, host=host or None)
            except OSError as exc:
                raise ConfigError(
                    f"{config.path}: [party] listen: cannot listen on {_format_address(config.listen)} ({exc.strerror or exc})"
                ) from None
        try:
            async with trio.open_nursery() as nursery:
                if listeners:
                    nursery.start_soon(self.serve, listeners, nursery)
                for peer in config.peers.values():
                    if peer.dial:
                        nursery.start_soon(self.dial, peer)
                await self.done.wait()
                nursery.cancel_scope.cancel()
        finally:
            for listener in listeners:  # no further connections once every peer is linked
                await trio.aclose_forcefully(listener)

    def missing(self) -> list[str]:
        return [role for role in self.config.peers if role not in self.links]

    def timeout_message(self, roles: list[str] | None = None) -> str:
        parts = []
        awaited = False
        for role in self.missing() if roles is None else roles:
            peer = self.config.peers[role]
            attempts = self.attempts[role]
            if peer.dial and attempts.tries == 0:
                parts.append(
                    f"did not dial {role} at {peer.address_text}: still waiting to learn the session id "
                    f"from the {self.config.run.session_creator}"
                )
            elif peer.dial:
                last = f": {attempts.last_error or _NO_ANSWER}"
                parts.append(f"could not reach {role} at {peer.address_text} ({attempts.tries} attempts{last})")
            else:
                awaited = True
                listen = _format_address(self.config.listen) if self.config.listen else "?"
                parts.append(f"{role} did not connect to {listen}")
        if awaited and self.last_incoming_failure:
            parts.append(f"the last refused incoming connection: {self.last_incoming_failure}")
        return "; ".join(parts)


def _describe_os_error(exc: OSError) -> str:
    """"Connection refused" rather than trio's "all attempts to connect to ... failed"."""
    causes = [leaf for leaf in leaves(exc.__cause__) if isinstance(leaf, OSError)] if exc.__cause__ else []
    chosen = causes[0] if causes else exc
    if chosen.errno:
        return os.strerror(chosen.errno)
    return str(chosen.strerror or chosen)


async def _unwrapped(coroutine: Any) -> None:
    """Await; an exception group holding one error of ours becomes that error."""
    try:
        await coroutine
    except BaseExceptionGroup as group:
        found = leaves(group)
        ours = [e for e in found if isinstance(e, MpcactorsError)]
        if ours and all(isinstance(e, MpcactorsError | trio.Cancelled) for e in found):
            raise ours[0] from None
        raise


async def _open_tcp(host: str, port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream(host, port)


async def establish_links(
    config: PartyConfig,
    *,
    session: bytes | None,
    purpose: str = "run",
    open_stream: Callable[[str, int], Any] = _open_tcp,
) -> tuple[dict[str, TLSChannel], bytes | None]:
    """Connect to every peer (dialing or accepting per the config) within the connect deadline.

    Args:
        session: the session id if we have it (the session creator's own), else ``None``.
        purpose: ``"run"``.

    Returns:
        ``(links by peer role, the agreed session id)``.

    Raises:
        StepTimeout: the connect deadline passed; the message says which peer is
            missing and the last error seen (e.g. "Connection refused").
        TLSError, PeerProtocolError: a peer's identity or hello was refused (not retried).
        ConfigError: we cannot listen on the configured address.
    """
    establisher = _Establisher(config, session=session, purpose=purpose, open_stream=open_stream)
    try:
        with trio.move_on_after(config.connect_deadline) as scope:
            await _unwrapped(establisher.run())
        if scope.cancelled_caught:
            raise StepTimeout(
                f"{config.role}: connecting to the peers took longer than {config.connect_deadline:g} s: "
                + establisher.timeout_message()
            )
        for role, attempts in establisher.attempts.items():
            if attempts.error is not None:
                raise attempts.error
    except BaseException:
        with trio.CancelScope(shield=True):
            for channel in establisher.links.values():
                await channel.aclose()
        raise
    return establisher.links, establisher.session


async def check_peers(config: PartyConfig, *, open_stream: Callable[[str, int], Any] = _open_tcp) -> list[CheckReport]:
    """``mpcactors check``: a link with purpose ``check`` to every peer, then close.

    Peers we dial are dialed (with retries, within the connect deadline); peers that
    dial us must be running ``mpcactors check`` or ``mpcactors party`` meanwhile.
    Never raises for a peer's failure: each peer's report says what worked.
    """
    establisher = _Establisher(config, session=None, purpose="check", open_stream=open_stream)
    try:
        with trio.move_on_after(config.connect_deadline) as scope:
            await _unwrapped(establisher.run())
        if scope.cancelled_caught:
            for role in establisher.missing():
                report = establisher.reports[role]
                if not report.error:
                    report.error = f"timed out after {config.connect_deadline:g} s: " + establisher.timeout_message([role])
                    report.exit_code = StepTimeout.exit_code
                report.tries = establisher.attempts[role].tries
    finally:
        with trio.CancelScope(shield=True):
            for channel in establisher.links.values():
                await channel.aclose()
    return [establisher.reports[role] for role in config.peers]
