"""The run of one configured party: load the input, connect, run the protocol, report.

:func:`run_configured_party` hands the links to
:func:`mpcactors.actors.run_party`, which does not know they are TLS.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from ..actors.executor import Executor
from ..actors import run_party
from ..protocol.roster import TTP
from ..data import load_table
from ..errors import MpcactorsError
from ..transport.tls import TLSChannel
from .config import PartyConfig
from .links import establish_links

__all__ = ["RunReport", "load_input", "run_configured_party"]

log = structlog.get_logger(__name__)


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
    #: each link's per-step counters (:class:`~mpcactors.transport.base.LinkStatistics`), for the audit record
    statistics: dict[str, Any] = field(default_factory=dict, repr=False)

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
    table = load_table(
        config.input.csv,
        id_column=config.input.id_column,
        columns=config.input.columns,
        params=config.run.params,
        min_rows=config.run.min_intersection,
        id_fold=config.run.id_fold,
    )
    return config.run.encode_table(config.role, table)


async def run_configured_party(config: PartyConfig, *, report: RunReport | None = None, table: Any = None) -> Any:
    """Load the input, connect, and run the protocol to the end. Returns the ``PartyResult``.

    The input is loaded and validated before any connection is made, so bad input
    never reaches a peer. ``report`` (if given) is filled in as the run goes, also on
    failure.

    Raises:
        MpcactorsError: the subclass says whose fault it was (its ``exit_code``).
    """
    report = report or RunReport(config.role, str(config.path))
    started = time.perf_counter()
    try:
        if table is None and config.role != TTP:
            table = await trio.to_thread.run_sync(load_input, config)
        session = secrets.token_bytes(16) if config.role == config.run.session_creator else None
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
            report.statistics = {role: channel.statistics() for role, channel in links.items()}
        report.steps = result.document()["steps"]
        report.outcome = "ok"
        return result
    except MpcactorsError as exc:
        report.outcome, report.error, report.exit_code = "failed", f"{type(exc).__name__}: {exc}", exc.exit_code
        raise
    finally:
        report.seconds = time.perf_counter() - started
