"""The fuzzers' seed corpus and what a party does with what they produce."""

from __future__ import annotations

from typing import Any

from ..errors import PeerProtocolError
from ..protocol import messages as msg
from ..protocol.roster import TTP
from ..protocol.scheduler import StepScheduler
from ..protocol.wire import BigIntArray


def example_messages() -> list[Any]:
    """One valid message of every kind a peer can send: the seed corpus of the fuzzers.

    Shared by the Hypothesis harness (``tests/robustness/test_fuzz.py``, which also checks
    that every kind is here) and the atheris script (``benchmarks/fuzz_atheris.py``), so a
    new message kind reaches both.
    """
    values = BigIntArray(tuple(range(10**70, 10**70 + 6)), 256)  # 256 bytes: a 1024-bit modulus squared
    return [
        msg.HashContribution(bytes(32)),
        msg.PublicKey({"n": 2**1023 + 1155, "g": 2**1023 + 1156}, 5),
        msg.Rows(bytes(range(64)), values),
        msg.RowsEnd(3),
        msg.Intersection(7),
        msg.Masks(values),
        msg.MasksEnd(3),
        msg.Masked(values),
        msg.MaskedEnd(3),
        msg.Mpc(2, "mul", BigIntArray((1, 2, 3), 24)),
        msg.Dealt(BigIntArray((4, 5, 6), 24)),
        msg.DealtEnd(3),
        msg.Delivered(["days", "days"], ["converged", "result"], [True, False],
                      [BigIntArray((1,), 16, True), BigIntArray((7, 8, 9), 24)]),
        msg.Done(bytes(range(32))),
        msg.Abort("ttp: something went wrong at step 4"),
    ]


def accept_or_refuse(envelope: Any, session: bytes) -> None:
    """What a TTP at step 4 does with a decoded envelope: its scheduler and the message
    parser accept it, or refuse it with :class:`~mpcactors.errors.PeerProtocolError`.

    Any other exception escapes: for a fuzzer, that is a finding.
    """
    scheduler = StepScheduler(TTP, session)
    scheduler.begin_step(4)
    try:
        scheduler.incoming(envelope)
        msg.parse(envelope)
    except PeerProtocolError:
        pass
