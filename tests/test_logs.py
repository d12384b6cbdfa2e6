"""Logging never writes a frame's local variables, on any renderer or level (logs.py).

A failure deep inside a step has secret shares, input values and key material in its
frames' locals; a log line that renders them keeps those secrets on disk long after the
run deleted them. The canary below is a local of the failing function only: it is in
no message, so if it reaches stderr, locals were rendered.
"""

from __future__ import annotations

import json

import pytest
import structlog

from mpcactors.errors import InputError
from mpcactors.logs import WITHHELD, SecretInLogError, configure_logging

CANARY = "canary-5f3c9e1d7a"
SHARE = 480241153767559574903435952717507944584085057593897622457
ROWS = [SHARE % 10**12, SHARE % 10**11]  # "input values": never written out in the source


class StepFailure(RuntimeError):
    """An unexpected error from inside a computation (not an MpcactorsError)."""


def compute_with_secrets(rows: list[int]) -> None:
    hash_key_material = CANARY  # noqa: F841 - the point: a secret-looking local
    shares = [SHARE, *rows]  # noqa: F841
    raise StepFailure(f"step 8 failed on the value {rows[0]}")  # a foreign message quoting a secret


@pytest.fixture(autouse=True)
def restore_structlog():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def log_failure(level_method: str, error: Exception | None = None) -> None:
    log = structlog.get_logger("test")
    try:
        if error is None:
            compute_with_secrets(ROWS)
        raise error
    except Exception as exc:
        getattr(log, level_method)("internal error", exc_info=exc)


@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "console"])
@pytest.mark.parametrize("method", ["debug", "exception"])
def test_debug_tracebacks_carry_no_frame_locals(capsys, json_mode, method):
    configure_logging(json=json_mode, level="debug")
    log_failure(method)
    err = capsys.readouterr().err
    assert "StepFailure" in err and WITHHELD in err  # not our error: its message may quote a value
    assert "compute_with_secrets" in err  # the traceback itself is kept at debug level
    assert CANARY not in err
    assert str(SHARE) not in err and str(SHARE)[:40] not in err
    assert all(str(v) not in err for v in ROWS)
    if json_mode:
        event = json.loads(err.strip().splitlines()[-1])
        assert event["event"] == "internal error"


@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "console"])
def test_above_debug_an_exception_is_its_type_and_message_without_a_traceback(capsys, json_mode):
    configure_logging(json=json_mode, level="info")
    log_failure("error")
    err = capsys.readouterr().err
    assert f"StepFailure: {WITHHELD}" in err and all(str(v) not in err for v in ROWS)
    assert "compute_with_secrets" not in err and "Traceback" not in err
    assert CANARY not in err and str(SHARE)[:40] not in err


def test_our_errors_keep_their_message(capsys):
    configure_logging(json=True, level="warning")
    error = InputError("not a number", file="hospital.csv", row=4, column="age")
    log_failure("error", error)
    event = json.loads(capsys.readouterr().err)
    assert event["exception"] == f"InputError: {error}"


def test_strict_mode_still_refuses_secret_field_names(capsys):
    configure_logging(json=True, level="debug", strict=True)
    with pytest.raises(SecretInLogError):
        structlog.get_logger("test").info("oops", shares=[1, 2])
