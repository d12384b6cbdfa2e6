"""Logging configuration. Only entry points (the CLI, tests) call :func:`configure_logging`.

Library modules just do ``log = structlog.get_logger(__name__)``. A redaction
processor drops any field whose name suggests secret material; with
``strict=True`` (tests) it raises instead, so a leak fails the test that caused it.

Exceptions (``exc_info``) never render frame local variables, which hold shares,
input values and keys; at ``debug`` level they keep their traceback (file, line,
source), above it they shrink to one ``exception`` field ``"Type: message"``. Only our
own errors' messages are shown (they promise to carry no secret); another exception's
message may quote the value it failed on, so it is withheld (:func:`describe_exception`).
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import structlog

from .errors import MpcactorsError

__all__ = ["REDACTED_FIELDS", "WITHHELD", "configure_logging", "describe_exception", "redact"]

#: Field names (or suffixes) that must never reach a log line.
REDACTED_FIELDS = ("key", "secret", "share", "shares", "mask", "masks", "plaintext", "ids", "id", "value", "values", "prime_p", "prime_q")


class SecretInLogError(AssertionError):
    """A log event carried a field that could hold secret material (strict mode)."""


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(lowered == f or lowered.endswith("_" + f) for f in REDACTED_FIELDS)


def redact(strict: bool = False):
    def processor(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        for name in list(event_dict):
            if _is_secret(name):
                if strict:
                    raise SecretInLogError(f"log event {event_dict.get('event')!r} has a secret-looking field {name!r}")
                event_dict[name] = "[redacted]"
        return event_dict

    return processor


#: What replaces the message of an exception that is not ours (see :func:`describe_exception`).
WITHHELD = "[message withheld: not an mpcactors error]"


def describe_exception(exc: BaseException) -> str:
    """``"Type: message"``, with the message withheld unless the error is an :class:`MpcactorsError`.

    Our errors promise that their messages carry no secret (they name files, rows,
    parties and steps). Anyone else's message may quote the value it choked on, a
    share or an input cell, so only its type is shown.
    """
    if isinstance(exc, MpcactorsError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {WITHHELD}"


def _withhold(te: traceback.TracebackException) -> None:
    """Withhold the messages of foreign exceptions in ``te``, its causes and its group members."""
    seen: set[int] = set()
    pending = [te]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if not (isinstance(item.exc_type, type) and issubclass(item.exc_type, MpcactorsError)):
            item._str = WITHHELD  # the rendered message; CPython's TracebackException keeps it here
        pending += [e for e in (item.__cause__, item.__context__) if e is not None]
        pending += list(getattr(item, "exceptions", None) or [])


def _render_exception(debug: bool):
    """Replace ``exc_info`` by an ``exception`` text: the traceback at debug level, else one line.

    Either way without frame locals (they hold shares, input values and keys) and with
    foreign messages withheld (:func:`describe_exception`).
    """

    def processor(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        exc_info = event_dict.pop("exc_info", None)
        if isinstance(exc_info, BaseException):
            exc: BaseException | None = exc_info
        elif isinstance(exc_info, tuple):
            exc = exc_info[1]
        elif exc_info:
            exc = sys.exc_info()[1]
        else:
            exc = None
        if exc is None:
            return event_dict
        if debug:
            te = traceback.TracebackException.from_exception(exc, capture_locals=False)
            _withhold(te)
            event_dict["exception"] = "".join(te.format()).rstrip("\n")
        else:
            event_dict["exception"] = describe_exception(exc)
        return event_dict

    return processor


def configure_logging(*, json: bool | None = None, level: str = "warning", strict: bool = False) -> None:
    """Console output on a terminal, JSON lines otherwise (daemons, CI).

    Exceptions are rendered without frame locals; with their traceback only at ``debug``.
    """
    if json is None:
        json = not sys.stderr.isatty()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        redact(strict),
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors.append(_render_exception(debug=level.lower() == "debug"))
    if json:
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
