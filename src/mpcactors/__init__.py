"""mpcactors: privacy-preserving dataset combination and lasso regression.

A hospital and a health insurer train a lasso model on the join of their patient
tables with the help of a trusted third party (TTP), without anyone seeing the other
parties' records or who is in the overlap. See ``docs/`` for the protocol.
"""

from .errors import (
    AbortedError as AbortedError,
    CodecError as CodecError,
    ConfigError as ConfigError,
    InputError as InputError,
    KeyDestroyedError as KeyDestroyedError,
    MpcactorsError as MpcactorsError,
    PeerProtocolError as PeerProtocolError,
    StepOrderError as StepOrderError,
    StepTimeout as StepTimeout,
    TLSError as TLSError,
    TransportError as TransportError,
)

__version__ = "0.1.0"
