"""One deployed party: its TOML configuration (:mod:`.config`), its connections to
every peer (:mod:`.links`), and its run (:mod:`.run`).

The names below are the package's interface; import them from ``mpcactors.daemon``.
"""

from __future__ import annotations

from .config import DEFAULT_DIALS, InputConfig, PartyConfig, PeerConfig, TLSFiles, default_dials, load_party_config, parameters_digest
from .links import CheckReport, check_peers, establish_links
from .run import RunReport, load_input, run_configured_party

__all__ = [
    "DEFAULT_DIALS",
    "CheckReport",
    "InputConfig",
    "PartyConfig",
    "PeerConfig",
    "RunReport",
    "TLSFiles",
    "check_peers",
    "default_dials",
    "establish_links",
    "load_input",
    "load_party_config",
    "parameters_digest",
    "run_configured_party",
]
