"""What a party's audit record says about one run, built from the run's public facts.

Nothing here reads a value or an id: the input is summarised by its column names and
row counts, outputs by the SHA-256 of their canonical JSON, traffic by bytes and
messages per step and peer. The record's fields (:func:`record_fields`) are the same
for a deployed party (:func:`daemon_fields`) and a simulated one (:func:`simulation_fields`).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..actors.results import PartyResult
from ..certs import pin_of
from ..config import RunConfig
from ..daemon.config import PartyConfig, parameters_digest
from ..daemon.run import RunReport
from ..transport.base import LinkStatistics, Record
from .record import digest_of

__all__ = ["Traffic", "daemon_fields", "input_summary", "outcome", "outputs", "record_fields", "simulation_fields", "traffic"]


def _software() -> str:
    try:
        return f"mpcactors {version('mpcactors')}"
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "mpcactors"


def record_fields(
    *,
    party: str,
    mode: str,
    session: str | None,
    config: RunConfig,
    fingerprints: Mapping[str, str | None],
    input: dict[str, Any] | None,
    traffic: list[dict[str, Any]],
    outputs: list[dict[str, str]],
    outcome: dict[str, Any],
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The fields of one record, all but the chain's (``version``, ``seq``, ``previous``, ``signer``, ``signature``).

    Args:
        mode: ``"daemon"`` or ``"simulation"``.
        fingerprints: each member's certificate as ``sha256:<hex>`` (``None``: not seen, or a simulation).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return {
        "time": now.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "software": _software(),
        "party": party,
        "mode": mode,
        "session": session,
        "roster": [{"party": member, "fingerprint": fingerprints.get(member)} for member in config.roster.members],
        "parameters_digest": parameters_digest(config).hex(),
        "plan": {"title": None, "digest": None},  # study plans do not exist yet
        "input": input,
        "traffic": traffic,
        "outputs": outputs,
        "outcome": outcome,
    }


def input_summary(columns: Sequence[str], rows: int | None, dropped: int | None) -> dict[str, Any]:
    """Column names and row counts (``rows``: the usable rows; ``None`` when not known)."""
    return {
        "columns": list(columns),
        "rows_read": None if rows is None or dropped is None else rows + dropped,
        "rows_dropped": dropped,
    }


def traffic(statistics: Mapping[str, LinkStatistics]) -> list[dict[str, Any]]:
    """Bytes and messages per peer and step, each way, from each link's counters."""
    rows = []
    for peer, stats in sorted(statistics.items()):
        steps = set(stats.sent_messages) | set(stats.received_messages)
        for step in sorted(steps):
            rows.append({
                "peer": peer,
                "step": int(step),
                "bytes_sent": stats.sent_bytes.get(step, 0),
                "messages_sent": stats.sent_messages.get(step, 0),
                "bytes_received": stats.received_bytes.get(step, 0),
                "messages_received": stats.received_messages.get(step, 0),
            })
    return rows


class Traffic:
    """A simulation's transcript recorder that keeps only the counters, per party and peer.

    Memory links deliver what was sent, so a party's received counters are its peers' sent ones.
    """

    def __init__(self) -> None:
        self.links: dict[str, dict[str, LinkStatistics]] = {}

    def _link(self, local: str, peer: str) -> LinkStatistics:
        return self.links.setdefault(local, {}).setdefault(peer, LinkStatistics(local, peer))

    def __call__(self, record: Record) -> None:
        out, back = self._link(record.sender, record.receiver), self._link(record.receiver, record.sender)
        out.sent_messages[record.step] += 1
        out.sent_bytes[record.step] += record.size
        back.received_messages[record.step] += 1
        back.received_bytes[record.step] += record.size

    def of(self, party: str) -> dict[str, LinkStatistics]:
        return self.links.get(party, {})


def outputs(result: PartyResult | None) -> list[dict[str, str]]:
    """The outputs a party received, by name, each as the SHA-256 of its canonical JSON: two
    parties' records agree on every output both received (step 9 confirmed it)."""
    if result is None:
        return []
    named: list[tuple[str, Any]] = [("intersection_size", result.intersection_size), *result.outputs.items()]
    return [{"name": name, "sha256": digest_of(value)} for name, value in named]


def outcome(result: PartyResult | None, failure: BaseException | None) -> dict[str, Any]:
    """The step-9 outcome digest on success; the error's class, step and exit code otherwise."""
    if failure is None and result is not None:
        return {"status": "ok", "digest": result.outcome_digest}
    if failure is None or isinstance(failure, KeyboardInterrupt):
        return {"status": "interrupted", "error": "KeyboardInterrupt", "step": None, "exit_code": 130}
    return {
        "status": "failed",
        "error": type(failure).__name__,
        "step": getattr(failure, "step", None),
        "exit_code": getattr(failure, "exit_code", 1),
    }


def daemon_fields(
    config: PartyConfig, report: RunReport, result: PartyResult | None, failure: BaseException | None,
    *, certificate: str,
) -> dict[str, Any]:
    """A deployed party's record: ``certificate`` is our own certificate's ``sha256:`` fingerprint."""
    fingerprints: dict[str, str | None] = {config.role: certificate}
    for peer, link in report.links.items():
        fingerprints[peer] = pin_of(link["peer_fingerprint_sha256"]) if link.get("peer_fingerprint_sha256") else None
    summary = None
    if config.input is not None:
        columns = config.input.columns or config.run.columns_of(config.role)
        summary = input_summary(columns, *((result.rows, result.dropped_missing) if result else (None, None)))
    return record_fields(
        party=config.role, mode="daemon", session=report.session, config=config.run, fingerprints=fingerprints,
        input=summary, traffic=traffic(report.statistics), outputs=outputs(result), outcome=outcome(result, failure),
    )


def simulation_fields(
    party: str, config: RunConfig, *, session: bytes, table: Any, result: PartyResult | None,
    failure: BaseException | None, recorded: Traffic,
) -> dict[str, Any]:
    """A simulated party's record (no certificates: every fingerprint is ``None``)."""
    summary = None if table is None else input_summary(table.columns, len(table), table.dropped_missing)
    return record_fields(
        party=party, mode="simulation", session=session.hex(), config=config, fingerprints={},
        input=summary, traffic=traffic(recorded.of(party)), outputs=outputs(result), outcome=outcome(result, failure),
    )
