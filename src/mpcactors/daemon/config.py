"""A party's TOML configuration, read and validated before anything touches the network.

Each organisation runs ``mpcactors party --config FILE`` on its own host. The file
(:func:`load_party_config`) says who we are, where we listen, who our peers are (every
other member of the roster: address, the certificate identity we expect, optionally the
certificate's pinned fingerprint, and who dials whom), where our certificate, key and CA
are, where our input CSV is, and the public protocol parameters, which must be identical
in every member's file (the application hello compares a digest of them, so a difference
fails at connect time, not at step 8). ``[plan] file`` names the study plan every party
signed off (:mod:`mpcactors.plan`); its digest is one of those parameters, and the hello
compares it on its own so that a refusal names both plans' digests.

The roster is ``[protocol] parties`` (the data parties in order; default hospital and
insurer) and ``compute``; each party's columns are in ``[protocol.columns]``, or, for
the default two parties, in ``hospital_columns`` and ``insurer_columns``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..actors.executor import POLICIES
from ..certs import inspect_certificate, key_permission_problem, parse_pin
from ..codec import MAX_MESSAGE_BYTES
from ..protocol.roster import DEFAULT_DATA_PARTIES, TTP, Roster
from ..config import DEFAULT_DEADLINES, RunConfig
from ..crypto.fixedpoint import Params
from ..errors import ConfigError
from ..plan import load_plan
from ..transport.tls import make_ssl_context

__all__ = [
    "DEFAULT_DIALS",
    "InputConfig",
    "PartyConfig",
    "PeerConfig",
    "TLSFiles",
    "default_dials",
    "load_party_config",
    "parameters_digest",
]



def default_dials(roster: Roster) -> frozenset[tuple[str, str]]:
    """Who dials whom unless a config says otherwise: ``(dialer, listener)`` pairs.

    Every data party dials the TTP, and each data party dials every data party before
    it in the roster, so only the TTP and the data parties but the last need an inbound
    port (with the default roster: the hospital).
    """
    data = roster.data_parties
    return frozenset({(party, TTP) for party in data} | {(later, earlier) for i, earlier in enumerate(data) for later in data[i + 1 :]})


#: The default roster's dials: the hospital and the insurer dial out to the TTP, and the
#: insurer dials the hospital.
DEFAULT_DIALS = default_dials(Roster())

DEFAULT_CONNECT_DEADLINE = 120.0
DEFAULT_HANDSHAKE_DEADLINE = 15.0


@dataclass(frozen=True)
class PeerConfig:
    role: str
    identity: str
    dial: bool
    address: tuple[str, int] | None
    #: ``sha256:<hex>`` the peer's certificate must have, if pinned
    fingerprint: str | None = None

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
    #: ``[audit] path``: the append-only audit file this party adds a record to per run
    audit: Path | None = None

    @property
    def role_by_identity(self) -> dict[str, str]:
        return {peer.identity: peer.role for peer in self.peers.values()}

    @property
    def pins(self) -> dict[str, str]:
        """Role -> the pinned fingerprint of its certificate, for the pinned peers."""
        return {peer.role: peer.fingerprint for peer in self.peers.values() if peer.fingerprint is not None}

    def ssl_context(self, *, server_side: bool) -> ssl.SSLContext:
        """Build an mTLS context from the configured files (errors name the key and file)."""
        return _ssl_context(self.path, self.tls, server_side=server_side)


def parameters_digest(run: RunConfig) -> bytes:
    """SHA-256 of the public parameters every member must share.

    Deadlines are local and left out; everything that changes the computation is in,
    the roster's order too (``columns`` is hashed as a mapping, which loses it).
    """
    params = {f.name: getattr(run.params, f.name) for f in fields(run.params)}
    document = {
        "parties": list(run.roster.data_parties),
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
        "id_fold": run.id_fold,
    }
    if run.plan_digest is not None:  # absent for the default plan, so older digests stay as they were
        document["plan"] = run.plan_digest.hex()
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).digest()


_SECTIONS: dict[str, set[str]] = {
    "party": {"role", "listen", "executor", "workers"},
    "tls": {"certificate", "key", "ca"},
    "input": {"csv", "id_column", "columns"},
    "protocol": {
        "parties", "compute", "columns",
        "hospital_columns", "insurer_columns", "target", "key_bits", "min_intersection", "chunk_rows",
        "alpha", "max_iter", "lasso", "insecure_test_key_bits", "insecure_test_sigma", "frac_bits", "int_bits", "sigma",
        "max_rows", "id_fold",
        "max_message_bytes",
    },
    "deadlines": {"connect", "handshake"} | {f"step_{step}" for step in DEFAULT_DEADLINES},
    "audit": {"path"},
    "plan": {"file"},
}
_PEER_KEYS = {"address", "identity", "dial", "fingerprint"}


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

    def strings(self, key: str, *, required: bool = False, item: str = "a column") -> tuple[str, ...] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"must be a list of non-empty strings, got {_kind(value)}")
        if len(set(value)) != len(value):
            raise self.error(key, f"lists {item} twice")
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

    def pin(self, key: str) -> str | None:
        text = self.string(key)
        if text is None:
            return None
        try:
            return parse_pin(text)
        except ValueError as exc:
            raise self.error(key, f"{exc} (run: mpcactors certs inspect CERT; it prints the line to paste)") from None


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
    proto = _Reader(path, "protocol", data.get("protocol", {}))
    roster = _roster(proto)
    members = roster.members
    if role not in members:
        raise party.error("role", f"must be one of {', '.join(members)}, got {role!r}")
    listen = party.address("listen", required=False)
    executor = party.string("executor", default="auto")
    if executor not in POLICIES:
        raise party.error("executor", f"must be one of {', '.join(POLICIES)}, got {executor!r}")
    workers = party.integer("workers")
    if workers is not None and workers < 1:
        raise party.error("workers", f"must be at least 1, got {workers}")

    # peers
    peers_data = data.get("peers", {})
    others = list(roster.peers(role))
    for name, value in peers_data.items():
        if name not in others:
            raise ConfigError(f"{path}: unknown table [peers.{name}]: the peers of the {role} are {_and(others)}")
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
        dial = reader.boolean("dial", default=(role, other) in default_dials(roster))
        address = reader.address("address", required=dial)
        peers[other] = PeerConfig(other, identity, dial, address, reader.pin("fingerprint"))
    by_identity: dict[str, str] = {}
    for other, peer in peers.items():
        if (first := by_identity.setdefault(peer.identity.lower(), other)) != other:
            raise ConfigError(f"{path}: [peers.{first}] identity and [peers.{other}] identity must differ")
    if any(not p.dial for p in peers.values()) and listen is None:
        waiting = [p.role for p in peers.values() if not p.dial]
        raise ConfigError(f"{path}: [party] listen is required, since {_and(waiting)} dial(s) us")

    # tls
    tls_reader = _Reader(path, "tls", data.get("tls", {}))
    tls = TLSFiles(
        certificate=tls_reader.path_value("certificate"),  # type: ignore[arg-type]
        key=tls_reader.path_value("key"),  # type: ignore[arg-type]
        ca=tls_reader.path_value("ca"),  # type: ignore[arg-type]
    )
    _check_tls_files(path, tls)

    # protocol
    party_columns, columns_keys = _columns(proto, roster)
    params_changes: dict[str, Any] = {
        name: value for name in ("frac_bits", "int_bits", "sigma", "max_rows") if (value := proto.integer(name)) is not None
    }
    if proto.boolean("insecure_test_sigma", default=False):
        params_changes["allow_insecure_sigma"] = True
    max_message_bytes = proto.integer("max_message_bytes", default=MAX_MESSAGE_BYTES)
    assert max_message_bytes is not None
    if not 1024 <= max_message_bytes <= 2**31:
        raise proto.error("max_message_bytes", "must be between 1024 and 2**31")
    deadlines_reader = _Reader(path, "deadlines", data.get("deadlines", {}))
    deadlines = dict(DEFAULT_DEADLINES)
    for step in DEFAULT_DEADLINES:
        value = deadlines_reader.number(f"step_{step}")
        if value is not None:
            deadlines[step] = value
    try:
        params = Params(**params_changes)
        run = RunConfig(
            party_columns,
            compute=roster.compute,
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
            id_fold=proto.string("id_fold", default="casefold"),  # type: ignore[arg-type]
        )
    except ConfigError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ConfigError(f"{path}: [protocol] {exc}") from None
    if "plan" in data:
        plan_reader = _Reader(path, "plan", data["plan"])
        plan_file = plan_reader.path_value("file")
        assert plan_file is not None
        if not plan_file.is_file():
            raise plan_reader.error("file", f"{plan_file} does not exist")
        plan = load_plan(plan_file, roster=run.roster, columns=run.columns)
        try:
            run = replace(run, plan=plan)
        except ConfigError as exc:
            raise plan_reader.error("file", f"{plan_file}: {exc}") from None

    # input
    input_config: InputConfig | None = None
    if role == TTP:
        if "input" in data:
            raise ConfigError(f"{path}: the TTP has no input; remove the [input] table")
    else:
        if "input" not in data:
            raise ConfigError(f"{path}: [input] csv is required for the {role}")
        reader = _Reader(path, "input", data["input"])
        csv = reader.path_value("csv")
        assert csv is not None
        columns = reader.strings("columns")
        mine = tuple(run.columns[role])
        if columns is not None and columns != mine:
            raise reader.error(
                "columns", f"{list(columns)} differs from {columns_keys[role]} {list(mine)}; they must be the same, in order"
            )
        input_config = InputConfig(csv, reader.string("id_column", default="id"), columns or mine)  # type: ignore[arg-type]

    audit = _audit_path(_Reader(path, "audit", data["audit"])) if "audit" in data else None

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
        audit=audit,
    )


def _audit_path(reader: _Reader) -> Path:
    """``[audit] path``: a file (created on the first run) in an existing directory."""
    file = reader.path_value("path")
    assert file is not None
    if file.is_dir():
        raise reader.error("path", f"{file} is a directory; name a file in it (e.g. {file / 'audit.jsonl'})")
    if not file.parent.is_dir():
        raise reader.error("path", f"the directory {file.parent} does not exist")
    if not os.access(file if file.exists() else file.parent, os.W_OK):
        raise reader.error("path", f"{file if file.exists() else file.parent} is not writable")
    return file


def _and(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _roster(proto: _Reader) -> Roster:
    """The session's members: ``[protocol] parties`` (default hospital, insurer) and ``compute``."""
    parties = proto.strings("parties", item="a party")
    names = DEFAULT_DATA_PARTIES if parties is None else parties
    try:
        Roster(names)
    except ConfigError as exc:
        raise proto.error("parties", str(exc)) from None
    compute = proto.strings("compute", item="a party")
    try:
        return Roster(names, compute)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise proto.error("compute", str(exc)) from None


def _columns(proto: _Reader, roster: Roster) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Each data party's columns in roster order, and the key that gave them (for messages).

    ``[protocol.columns]`` has one key per data party; the older form,
    ``hospital_columns`` and ``insurer_columns``, serves a roster of those two only.
    """
    legacy = [f"{name}_columns" for name in DEFAULT_DATA_PARTIES if f"{name}_columns" in proto.data]
    table = proto.data.get("columns")
    if table is not None and legacy:
        raise ConfigError(
            f"{proto.path}: [protocol.columns] and [protocol] {', '.join(legacy)}: two forms of the parties' columns; "
            "use one ([protocol.columns] has one key per data party)"
        )
    if table is None and set(roster.data_parties) == set(DEFAULT_DATA_PARTIES):
        keys = {name: f"{name}_columns" for name in roster.data_parties}
        return (
            {name: proto.strings(key, required=True) for name, key in keys.items()},  # type: ignore[misc]
            {name: f"[protocol] {key}" for name, key in keys.items()},
        )
    if legacy:
        raise proto.error(
            legacy[0], f"serves only the parties hospital and insurer; with [protocol] parties = "
            f"{list(roster.data_parties)}, give every party's columns in [protocol.columns]"
        )
    if table is None:
        raise ConfigError(f"{proto.path}: [protocol.columns] is required: one key per data party ({', '.join(roster.data_parties)})")
    if not isinstance(table, dict):
        raise proto.error("columns", f"must be a table ([protocol.columns]), got {_kind(table)}")
    for name in table:
        if name not in roster.data_parties:
            raise ConfigError(
                f"{proto.path}: [protocol.columns] {name}: not a data party; the data parties ([protocol] parties) "
                f"are {_and(list(roster.data_parties))}"
            )
    reader = _Reader(proto.path, "protocol.columns", table)
    return (
        {name: reader.strings(name, required=True) for name in roster.data_parties},  # type: ignore[misc]
        {name: f"[protocol.columns] {name}" for name in roster.data_parties},
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
