"""A tamper-evident audit record per party per run: a signed, hash-chained JSON-lines file.

* :mod:`.record`: the core, free of I/O: canonical bytes, sealing a record, checking a chain;
* :mod:`.facts`: what a record says about a run (never a value or an id);
* :mod:`.journal`: the file on disk (append under a lock, verify, read) and the signing keys;
* :mod:`.writers`: a deployed party's record at the end of each run, and ``simulate --audit``.

What a record holds and proves is in ``docs/audit.md``.
"""

from __future__ import annotations

from .facts import Traffic, daemon_fields, record_fields, simulation_fields
from .journal import append, load_signer, public_keys, read_records, simulation_signer, verify_file
from .record import GENESIS, Signer, Verdict, canonical, digest_of, record_hash, seal, verify_lines
from .writers import append_daemon_record, simulate_audited

__all__ = [
    "GENESIS",
    "Signer",
    "Traffic",
    "Verdict",
    "append",
    "append_daemon_record",
    "canonical",
    "daemon_fields",
    "digest_of",
    "load_signer",
    "public_keys",
    "read_records",
    "record_fields",
    "record_hash",
    "seal",
    "simulate_audited",
    "simulation_fields",
    "simulation_signer",
    "verify_file",
    "verify_lines",
]
