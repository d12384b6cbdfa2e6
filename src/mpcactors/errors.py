"""Errors, split by who is at fault (h11 style).

Every error a user can see derives from :class:`MpcactorsError` and carries a
message that names the party, step, file, row, column or config key involved,
but never a secret, a plaintext value from another party, or an id.

* :class:`ConfigError`: the operator's configuration is wrong (exit code 2).
* :class:`InputError`: the party's own input data is wrong (exit code 3);
  :class:`IntersectionTooSmall`: the joined table would be too small (exit code 3);
  :class:`AnalysisRefused`: the joined data cannot support a planned analysis (exit code 3).
* :class:`StepOrderError`: *we* tried an illegal protocol move (a bug on our side);
  :class:`UndeclaredOpening`: an opening the study plan's manifest does not list.
* :class:`PeerProtocolError`: a *peer* sent something illegal (exit code 4);
  :class:`CodecError` is the subclass for bytes that do not decode.
* :class:`TLSError`: the secure channel could not be established (exit code 5).
* :class:`StepTimeout`: a deadline passed while waiting for a peer (exit code 6).
* :class:`KeyDestroyedError`: a destroyed key object was used (a bug on our side).
* :class:`AbortedError`: another party aborted the run (exit code 7).
"""

from __future__ import annotations

__all__ = [
    "AbortedError",
    "AnalysisRefused",
    "CodecError",
    "ConfigError",
    "InputError",
    "IntersectionTooSmall",
    "KeyDestroyedError",
    "MpcactorsError",
    "PeerProtocolError",
    "StepOrderError",
    "StepTimeout",
    "TLSError",
    "TransportError",
    "UndeclaredOpening",
]


class MpcactorsError(Exception):
    """Base class of every error mpcactors raises on purpose."""

    #: process exit code used by the command-line interface for this class of error
    exit_code: int = 1
    #: the step the party was in when this error stopped it (set by ``run_party``; ``None`` before step 1)
    step: int | None = None


class ConfigError(MpcactorsError):
    """A configuration file or option is invalid. The message names the key and file."""

    exit_code = 2


class InputError(MpcactorsError):
    """A party's input table is invalid.

    Raised before anything is sent to a peer. ``file``, ``row`` (1-based, the
    header is row 1) and ``column`` locate the problem where that makes sense.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.file = file
        self.row = row
        self.column = column


class IntersectionTooSmall(MpcactorsError):
    """The intersection is below ``min_intersection``: every party stops, nothing is computed."""

    exit_code = 3


class AnalysisRefused(MpcactorsError):
    """A planned analysis refused the joined data before opening any output.

    Too few rows for the model, a singular design, a class below ``min_cell``, classes
    that the fit separates: the message says which. The decision rests on public sizes
    or on one opened bit that the plan's manifest declares.
    """

    exit_code = 3


class StepOrderError(MpcactorsError):
    """We attempted a protocol move that the step table does not allow (our bug)."""


class UndeclaredOpening(StepOrderError):
    """Step 8 tried to open a value that the study plan's opening manifest does not list.

    Raised by the party about to open it, before it sends its share: the run stops.
    """


class PeerProtocolError(MpcactorsError):
    """A peer sent a message that is malformed or illegal in the current state."""

    exit_code = 4


class CodecError(PeerProtocolError):
    """Bytes that do not decode to a valid envelope: unknown, oversized or inconsistent."""


class TransportError(MpcactorsError):
    """A connection to a peer broke or could not be opened."""

    exit_code = 4


class TLSError(TransportError):
    """The TLS handshake or the peer's identity check failed."""

    exit_code = 5


class StepTimeout(MpcactorsError):
    """A per-step deadline passed, e.g. "waiting for masks from insurer at step 5"."""

    exit_code = 6


class AbortedError(MpcactorsError):
    """Another party aborted the run; this party stopped cleanly in response."""

    exit_code = 7


class KeyDestroyedError(MpcactorsError):
    """A key object was used after :meth:`destroy` (the protocol forbids this)."""
