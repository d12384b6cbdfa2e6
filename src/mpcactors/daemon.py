"""One deployed party: its TOML configuration, its connections, and its run.

General theory of operation
---------------------------

Each organisation runs ``mpcactors party --config FILE`` on its own host. The file
(:func:`load_party_config`) says who we are, where we listen, who our two peers are
(address, the certificate identity we expect, and who dials whom), where our
certificate, key and CA are, where our input CSV is, and the public protocol
parameters, which must be identical in all three files (the application hello
compares a digest of them, so a difference fails at connect time, not at step 8).

Connection establishment (:func:`establish_links`) dials the peers we dial and accepts
the peers that dial us, concurrently, all within the ``[deadlines] connect`` budget:

* a dial that fails at the TCP level (port closed, host unreachable, peer not started
  yet) is retried with exponential back-off until the budget is spent; a TLS or hello
  failure is *not* retried, since it is a misconfiguration that retrying cannot fix;
* a failed incoming connection (a port scanner, a peer with the wrong CA) is logged
  and remembered, and the listener keeps listening; if the budget runs out, the error
  names the peers still missing and the last failure seen;
* the session id is the hospital's: the hospital creates it, the others learn it in
  the hello from the hospital or from a party that already learnt it; so a party
  that does not know the session yet dials its other peers only once it does, and
  hellos are run one at a time so the session adopted by one link is the one checked
  on the next;
* a link whose other side is running ``mpcactors check`` is answered and closed, and
  establishment carries on (a dial is retried).

Then :func:`run_configured_party` hands the links to
:func:`mpcactors.actors.run_party`, which does not know they are TLS.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import ssl
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import structlog
import trio

from .actors.executor import POLICIES
from .certs import inspect_certificate, key_permission_problem
from .codec import MAX_MESSAGE_BYTES
from .protocol.roster import Roster
from .config import DEFAULT_DEADLINES, RunConfig
from .crypto.fixedpoint import Params
from .errors import ConfigError, MpcactorsError, PeerProtocolError, StepTimeout
from .transport.tls import TLSChannel, make_ssl_context, open_tls_link

__all__ = [
    "DEFAULT_DIALS",
    "CheckReport",
    "InputConfig",
    "PartyConfig",
    "PeerConfig",
    "TLSFiles",
    "check_peers",
    "establish_links",
    "load_party_config",
    "parameters_digest",
    "run_configured_party",
]

log = structlog.get_logger(__name__)

#: Who dials whom unless a config says otherwise: (dialer, listener). The hospital and
#: the insurer dial out to the TTP, and the insurer dials the hospital, so only the TTP
#: and the hospital need an inbound port.
DEFAULT_DIALS = frozenset({("hospital", "ttp"), ("insurer", "ttp"), ("insurer", "hospital")})

DEFAULT_CONNECT_DEADLINE = 120.0
DEFAULT_HANDSHAKE_DEADLINE = 15.0
_BACKOFF_FIRST = 0.1
#: One TCP connect attempt gives up after this long (a dropped SYN never fails by itself).
_CONNECT_ATTEMPT = 10.0
_NO_ANSWER = "no answer (a firewall may be silently dropping the connection)"
_BACKOFF_MAX = 5.0


# ---- configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class PeerConfig:
    role: str
    identity: str
    dial: bool
    address: tuple[str, int] | None

    @property
    def address_text(self) -> str:
        return _format_address(self.address) if self.address else "(it dials us)"


@dataclass(frozen=True)
class TLSFiles:
    certificate: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class InputConfig:
    csv: Path
    id_column: str = "id"
    columns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PartyConfig:
    """A validated party configuration. Paths are absolute (resolved against the file's directory)."""

    path: Path
    role: str
    listen: tuple[str, int] | None
    tls: TLSFiles
    peers: dict[str, PeerConfig]
    input: InputConfig | None
    run: RunConfig
    connect_deadline: float = DEFAULT_CONNECT_DEADLINE
    handshake_deadline: float = DEFAULT_HANDSHAKE_DEADLINE
    executor: str = "auto"
    workers: int | None = None
    max_frame_bytes: int = MAX_MESSAGE_BYTES

    @property
    def role_by_identity(self) -> dict[str, str]:
        return {peer.identity: peer.role for peer in self.peers.values()}

    def ssl_context(self, *, server_side: bool) -> ssl.SSLContext:
        """Build an mTLS context from the configured files (errors name the key and file)."""
        return _ssl_context(self.path, self.tls, server_side=server_side)


def parameters_digest(run: RunConfig) -> bytes:
    """SHA-256 of the public parameters all three parties must share.

    Deadlines are local and left out; everything that changes the computation is in.
    """
    params = {f.name: getattr(run.params, f.name) for f in fields(run.params)}
    document = {
        "columns": {party: list(columns) for party, columns in run.columns.items()},
        "compute": list(run.compute or ()),
        "target": run.target,
        "key_bits": run.key_bits,
        "params": {k: str(v) for k, v in sorted(params.items())},
        "min_intersection": run.min_intersection,
        "chunk_rows": run.chunk_rows,
        "alpha": repr(float(run.alpha)),
        "max_iter": run.max_iter,
        "lasso": run.lasso,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).digest()


_SECTIONS: dict[str, set[str]] = {
    "party": {"role", "listen", "executor", "workers"},
    "tls": {"certificate", "key", "ca"},
    "input": {"csv", "id_column", "columns"},
    "protocol": {
        "hospital_columns", "insurer_columns", "target", "key_bits", "min_intersection", "chunk_rows",
        "alpha", "max_iter", "lasso", "insecure_test_key_bits", "frac_bits", "int_bits", "sigma", "max_rows",
        "max_message_bytes",
    },
    "deadlines": {"connect", "handshake"} | {f"step_{n}" for n in range(1, 10)},
}
_PEER_KEYS = {"address", "identity", "dial"}


class _Reader:
    """Typed access to one TOML table with errors that name the file, table and key."""

    def __init__(self, path: Path, table: str, data: Mapping[str, Any]) -> None:
        self.path, self.table, self.data = path, table, data

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: [{self.table}] {key}: {message}")

    def _get(self, key: str, required: bool) -> Any:
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.path}: [{self.table}] {key} is required")
            return None
        return self.data[key]

    def string(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self._get(key, required)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, got {_kind(value)}")
        return value

    def integer(self, key: str, *, default: int | None = None) -> int | None:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, f"must be an integer, got {_kind(value)}")
        return value

    def number(self, key: str, *, default: float | None = None, positive: bool = True) -> float | None:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise self.error(key, f"must be a number, got {_kind(value)}")
        if positive and value <= 0:
            raise self.error(key, f"must be positive, got {value}")
        return float(value)

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {_kind(value)}")
        return value

    def strings(self, key: str, *, required: bool = False) -> tuple[str, ...] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"must be a list of non-empty strings, got {_kind(value)}")
        if len(set(value)) != len(value):
            raise self.error(key, "lists a column twice")
        return tuple(value)

    def path_value(self, key: str, *, required: bool = True) -> Path | None:
        text = self.string(key, required=required)
        if text is None:
            return None
        path = Path(text).expanduser()
        return path if path.is_absolute() else (self.path.parent / path)

    def address(self, key: str, *, required: bool) -> tuple[str, int] | None:
        text = self.string(key, required=required)
        if text is None:
            return None
        try:
            return _parse_address(text)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(
        type(value), type(value).__name__
    ) + (f" ({value!r})" if isinstance(value, bool | int | float | str) else "")


def _parse_address(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"must be \"host:port\", got {text!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def _format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_unknown(path: Path, table: str, data: Mapping[str, Any], known: set[str]) -> None:
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{path}: unknown key [{table}] {key} (known keys: {', '.join(sorted(known))})"
            )


def load_party_config(path: str | os.PathLike[str]) -> PartyConfig:
    """Read and validate a party's TOML file.

    Checks everything that can be checked before touching the network: types, unknown
    keys, roles, dial directions and addresses, that the certificate, key and CA files
    exist, parse and match, that the key file is not readable by group or others, and
    that our own certificate is currently valid.

    Raises:
        ConfigError: naming the file and the key (``FILE: [table] key: problem``).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: the config file does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{path}: the config file cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None

    for table, value in data.items():
        if table not in _SECTIONS and table != "peers":
            raise ConfigError(f"{path}: unknown table [{table}] (known: {', '.join(sorted([*_SECTIONS, 'peers']))})")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {table} must be a table ([{table}])")
    for table, known in _SECTIONS.items():
        _check_unknown(path, table, data.get(table, {}), known)

    party = _Reader(path, "party", data.get("party", {}))
    role = party.string("role", required=True)
    assert role is not None
    ROLES = Roster().members
    if role not in ROLES:
        raise party.error("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    listen = party.address("listen", required=False)
    executor = party.string("executor", default="auto")
    if executor not in POLICIES:
        raise party.error("executor", f"must be one of {', '.join(POLICIES)}, got {executor!r}")
    workers = party.integer("workers")
    if workers is not None and workers < 1:
        raise party.error("workers", f"must be at least 1, got {workers}")

    # peers
    peers_data = data.get("peers", {})
    others = [r for r in ROLES if r != role]
    for name, value in peers_data.items():
        if name not in others:
            raise ConfigError(f"{path}: unknown table [peers.{name}]: the peers of the {role} are {' and '.join(others)}")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: peers.{name} must be a table ([peers.{name}])")
        _check_unknown(path, f"peers.{name}", value, _PEER_KEYS)
    peers: dict[str, PeerConfig] = {}
    for other in others:
        if other not in peers_data:
            raise ConfigError(f"{path}: [peers.{other}] is missing (it needs at least identity, and address if we dial it)")
        reader = _Reader(path, f"peers.{other}", peers_data[other])
        identity = reader.string("identity", required=True)
        assert identity is not None
        dial = reader.boolean("dial", default=(role, other) in DEFAULT_DIALS)
        address = reader.address("address", required=dial)
        peers[other] = PeerConfig(other, identity, dial, address)
    identities = [p.identity.lower() for p in peers.values()]
    if len(set(identities)) != len(identities):
        raise ConfigError(f"{path}: [peers.{others[0]}] identity and [peers.{others[1]}] identity must differ")
    if any(not p.dial for p in peers.values()) and listen is None:
        waiting = [p.role for p in peers.values() if not p.dial]
        raise ConfigError(f"{path}: [party] listen is required, since {' and '.join(waiting)} dial(s) us")

    # tls
    tls_reader = _Reader(path, "tls", data.get("tls", {}))
    tls = TLSFiles(
        certificate=tls_reader.path_value("certificate"),  # type: ignore[arg-type]
        key=tls_reader.path_value("key"),  # type: ignore[arg-type]
        ca=tls_reader.path_value("ca"),  # type: ignore[arg-type]
    )
    _check_tls_files(path, tls)

    # protocol
    proto = _Reader(path, "protocol", data.get("protocol", {}))
    hospital_columns = proto.strings("hospital_columns", required=True)
    insurer_columns = proto.strings("insurer_columns", required=True)
    params_changes = {
        name: value for name in ("frac_bits", "int_bits", "sigma", "max_rows") if (value := proto.integer(name)) is not None
    }
    max_message_bytes = proto.integer("max_message_bytes", default=MAX_MESSAGE_BYTES)
    assert max_message_bytes is not None
    if not 1024 <= max_message_bytes <= 2**31:
        raise proto.error("max_message_bytes", "must be between 1024 and 2**31")
    deadlines_reader = _Reader(path, "deadlines", data.get("deadlines", {}))
    deadlines = dict(DEFAULT_DEADLINES)
    for step in range(1, 10):
        value = deadlines_reader.number(f"step_{step}")
        if value is not None:
            deadlines[step] = value
    try:
        params = Params(**params_changes)
        run = RunConfig.for_parties(
            hospital_columns,  # type: ignore[arg-type]
            insurer_columns,  # type: ignore[arg-type]
            target=proto.string("target", default="hospital_days"),  # type: ignore[arg-type]
            key_bits=proto.integer("key_bits", default=3072),  # type: ignore[arg-type]
            params=params,
            min_intersection=proto.integer("min_intersection", default=10),  # type: ignore[arg-type]
            chunk_rows=proto.integer("chunk_rows", default=4096),  # type: ignore[arg-type]
            alpha=proto.number("alpha", default=0.1),  # type: ignore[arg-type]
            max_iter=proto.integer("max_iter", default=1000),  # type: ignore[arg-type]
            lasso=proto.boolean("lasso", default=True),
            deadlines=deadlines,
            allow_test_key_sizes=proto.boolean("insecure_test_key_bits", default=False),
        )
    except ConfigError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ConfigError(f"{path}: [protocol] {exc}") from None

    # input
    input_config: InputConfig | None = None
    if role == "ttp":
        if "input" in data:
            raise ConfigError(f"{path}: the TTP has no input; remove the [input] table")
    else:
        if "input" not in data:
            raise ConfigError(f"{path}: [input] csv is required for the {role}")
        reader = _Reader(path, "input", data["input"])
        csv = reader.path_value("csv")
        assert csv is not None
        columns = reader.strings("columns")
        mine = run.columns_of(role)
        if columns is not None and columns != mine:
            raise reader.error(
                "columns", f"{list(columns)} differs from [protocol] {role}_columns {list(mine)}; they must be the same, in order"
            )
        input_config = InputConfig(csv, reader.string("id_column", default="id"), columns or mine)  # type: ignore[arg-type]

    return PartyConfig(
        path=path,
        role=role,
        listen=listen,
        tls=tls,
        peers=peers,
        input=input_config,
        run=run,
        connect_deadline=deadlines_reader.number("connect", default=DEFAULT_CONNECT_DEADLINE),  # type: ignore[arg-type]
        handshake_deadline=deadlines_reader.number("handshake", default=DEFAULT_HANDSHAKE_DEADLINE),  # type: ignore[arg-type]
        executor=executor,  # type: ignore[arg-type]
        workers=workers,
        max_frame_bytes=max_message_bytes,
    )


def _check_tls_files(path: Path, tls: TLSFiles) -> None:
    for key in ("certificate", "key", "ca"):
        file = getattr(tls, key)
        if not file.exists():
            raise ConfigError(f"{path}: [tls] {key}: {file} does not exist")
        if not file.is_file():
            raise ConfigError(f"{path}: [tls] {key}: {file} is not a file")
        if not os.access(file, os.R_OK):
            raise ConfigError(f"{path}: [tls] {key}: {file} cannot be read (permission denied)")
    problem = key_permission_problem(tls.key)
    if problem:
        raise ConfigError(f"{path}: [tls] key: {tls.key}: {problem}")
    for key in ("certificate", "ca"):
        file = getattr(tls, key)
        try:
            infos = inspect_certificate(file)
        except ConfigError as exc:
            raise ConfigError(f"{path}: [tls] {key}: {exc}") from None
        for info in infos:
            status = info.status()
            if not status.startswith("valid"):
                raise ConfigError(f"{path}: [tls] {key}: {file} ({', '.join(info.sans) or info.subject}) is {status}")
    _ssl_context(path, tls, server_side=True)  # the key matches the certificate, the CA loads


def _ssl_context(path: Path, tls: TLSFiles, *, server_side: bool) -> ssl.SSLContext:
    try:
        return make_ssl_context(certificate=tls.certificate, key=tls.key, ca=tls.ca, server_side=server_side)
    except ssl.SSLError as exc:
        reason = getattr(exc, "reason", "") or ""
        if reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"{path}: [tls] key: {tls.key} is not the key of [tls] certificate {tls.certificate}") from None
        if "PEM" in reason or "NO_START_LINE" in reason:
            raise ConfigError(f"{path}: [tls]: a file is not valid PEM ({reason.lower().replace('_', ' ')})") from None
        raise ConfigError(f"{path}: [tls]: the certificate, key or CA cannot be used: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: [tls]: {exc.filename or 'a file'} cannot be read ({exc.strerror})") from None


# ---- connection establishment --------------------------------------------------------------


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
        # against). The hospital never waits here, so no cycle of dials can deadlock.
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
                session=self.session if self.purpose == "run" else None,
                handshake_timeout=self.config.handshake_deadline,
                max_frame_bytes=self.config.max_frame_bytes,
                purpose=self.purpose,
                parameters=self.digest,
                peer_address=address,
            )

    # -- dialing
    async def dial(self, peer: PeerConfig) -> None:
        assert peer.address is not None
        host, port = peer.address
        address = _format_address(peer.address)
        attempts = self.attempts[peer.role]
        if self.purpose == "run" and peer.role != "hospital" and not self.session_known.is_set():
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
                parts.append(f"did not dial {role} at {peer.address_text}: still waiting to learn the session id from the hospital")
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
    causes = [leaf for leaf in _leaves(exc.__cause__) if isinstance(leaf, OSError)] if exc.__cause__ else []
    chosen = causes[0] if causes else exc
    if chosen.errno:
        return os.strerror(chosen.errno)
    return str(chosen.strerror or chosen)


async def _unwrapped(coroutine: Any) -> None:
    """Await; an exception group holding one error of ours becomes that error."""
    try:
        await coroutine
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        ours = [e for e in leaves if isinstance(e, MpcactorsError)]
        if ours and all(isinstance(e, MpcactorsError | trio.Cancelled) for e in leaves):
            raise ours[0] from None
        raise


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


async def _open_tcp(host: str, port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream(host, port)


async def establish_links(
    config: PartyConfig,
    *,
    session: bytes | None,
    purpose: str = "run",
    open_stream: Callable[[str, int], Any] = _open_tcp,
) -> tuple[dict[str, TLSChannel], bytes | None]:
    """Connect to both peers (dialing or accepting per the config) within the connect deadline.

    Args:
        session: the session id if we have it (the hospital's own), else ``None``.
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


# ---- the run -----------------------------------------------------------------------------


@dataclass
class RunReport:
    """The run report a daemon writes next to its result (public facts only)."""

    party: str
    config: str
    session: str | None = None
    started: float = field(default_factory=time.time)
    seconds: float = 0.0
    outcome: str = "running"
    error: str | None = None
    exit_code: int = 0
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "party": self.party,
            "config": self.config,
            "session": self.session,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "seconds": round(self.seconds, 3),
            "outcome": self.outcome,
            "error": self.error,
            "exit_code": self.exit_code,
            "links": self.links,
            "steps": self.steps,
        }


def _link_document(config: PartyConfig, channel: TLSChannel) -> dict[str, Any]:
    peer = config.peers[channel.peer]
    stats = channel.statistics()
    return {
        "direction": "we dial" if peer.dial else "it dials us",
        "address": channel.address,
        "peer_san": list(channel.peer_certificate.sans),
        "peer_fingerprint_sha256": channel.peer_certificate.fingerprint,
        "tls_version": channel.peer_certificate.tls_version,
        "sent": {"messages": sum(stats.sent_messages.values()), "bytes": sum(stats.sent_bytes.values())},
        "received": {"messages": sum(stats.received_messages.values()), "bytes": sum(stats.received_bytes.values())},
    }


def load_input(config: PartyConfig) -> Any:
    """This party's validated table (``None`` for the TTP). Raises InputError."""
    if config.input is None:
        return None
    from .data import load_table

    return load_table(
        config.input.csv,
        id_column=config.input.id_column,
        columns=config.input.columns,
        params=config.run.params,
        min_rows=config.run.min_intersection,
    )


async def run_configured_party(config: PartyConfig, *, report: RunReport | None = None, table: Any = None) -> Any:
    """Load the input, connect, and run the protocol to the end. Returns the ``PartyResult``.

    The input is loaded and validated before any connection is made, so bad input
    never reaches a peer. ``report`` (if given) is filled in as the run goes, also on
    failure.

    Raises:
        MpcactorsError: the subclass says whose fault it was (its ``exit_code``).
    """
    from .actors.executor import Executor
    from .actors import run_party

    report = report or RunReport(config.role, str(config.path))
    started = time.perf_counter()
    try:
        if table is None and config.role != "ttp":
            table = await trio.to_thread.run_sync(load_input, config)
        session = secrets.token_bytes(16) if config.role == "hospital" else None
        links, session = await establish_links(config, session=session)
        assert session is not None
        report.session = session.hex()
        structlog.contextvars.bind_contextvars(party=config.role, session=session.hex()[:8])
        log.info("links established", peers=sorted(links))
        try:
            result = await run_party(
                config.role, links, session=session, config=config.run, table=table, executor=Executor(config.executor, workers=config.workers)  # type: ignore[arg-type]
            )
        finally:
            report.links = {role: _link_document(config, channel) for role, channel in links.items()}
        report.steps = result.document()["steps"]
        report.outcome = "ok"
        return result
    except MpcactorsError as exc:
        report.outcome, report.error, report.exit_code = "failed", f"{type(exc).__name__}: {exc}", exc.exit_code
        raise
    finally:
        report.seconds = time.perf_counter() - started

