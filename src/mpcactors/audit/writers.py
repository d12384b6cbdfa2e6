"""Who writes audit records: a deployed party at the end of each run, and ``simulate --audit``."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..actors.results import PartyResult
from ..config import RunConfig
from ..daemon.config import PartyConfig
from ..daemon.run import RunReport
from ..data import PartyTable
from ..errors import MpcactorsError
from ..sim import Simulation, simulate, tables_by_party
from .facts import Traffic, daemon_fields, simulation_fields
from .journal import append, load_signer, simulation_signer

__all__ = ["append_daemon_record", "simulate_audited"]


def append_daemon_record(
    config: PartyConfig, report: RunReport, result: PartyResult | None, failure: BaseException | None
) -> bytes:
    """Append this run's record to ``[audit] path``, signed with the party's TLS key.

    Raises:
        ConfigError: the audit file cannot be written or its last record is damaged.
    """
    assert config.audit is not None
    signer = load_signer(config.tls.key, config.tls.certificate)
    fields = daemon_fields(config, report, result, failure, certificate=signer.certificate or "")
    return append(config.audit, fields, signer)


async def simulate_audited(
    tables: Mapping[str, PartyTable] | Sequence[PartyTable], config: RunConfig, directory: Path, **options: Any
) -> Simulation:
    """:func:`~mpcactors.sim.simulate` that appends each member's record to ``DIR/<party>.jsonl``.

    Each party signs with its simulation key (:func:`~.journal.simulation_signer`). The
    records are written whether the run succeeds or fails; on failure every record names
    the run's first error (the party that raised it and the step it was in).
    """
    directory.mkdir(parents=True, exist_ok=True)
    signers = {party: simulation_signer(directory, party) for party in config.roster.members}
    by_party = tables_by_party(tables, config)
    session = secrets.token_bytes(16)
    recorded = Traffic()
    recorder = options.pop("recorder", None)

    def record(envelope: Any) -> None:
        recorded(envelope)
        if recorder is not None:
            recorder(envelope)

    simulation: Simulation | None = None
    failure: MpcactorsError | None = None
    try:
        simulation = await simulate(by_party, config, session=session, recorder=record, **options)
    except MpcactorsError as exc:
        failure = exc
    for party, signer in signers.items():
        result = simulation.parties[party] if simulation is not None else None
        fields = simulation_fields(
            party, config, session=session, table=by_party.get(party), result=result, failure=failure, recorded=recorded
        )
        append(directory / f"{party}.jsonl", fields, signer)
    if failure is not None:
        raise failure
    assert simulation is not None
    return simulation
