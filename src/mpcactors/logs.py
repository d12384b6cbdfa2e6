"""Logging configuration. Only entry points (the CLI, tests) call :func:`configure_logging`.

Library modules just do ``log = structlog.get_logger(__name__)``. A redaction
processor drops any field whose name suggests secret material; with
``strict=True`` (tests) it raises instead, so a leak fails the test that caused it.

Exceptions (``exc_info``) never render frame local variables, which hold shares,
input values and keys; at ``debug`` level they keep their traceback (file, line,
source), above it they shrink to one ``exception`` field ``"Type: message"``. Messages
are rendered as they are: our own errors promise none carries a secret.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
import structlog.tracebacks

__all__ = ["REDACTED_FIELDS", "configure_logging", "redact"]

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


def _exception_summary(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Replace ``exc_info`` by ``exception = "Type: message"`` (no traceback, no frames)."""
    exc_info = event_dict.pop("exc_info", None)
    if isinstance(exc_info, BaseException):
        exc: BaseException | None = exc_info
    elif isinstance(exc_info, tuple):
        exc = exc_info[1]
    elif exc_info:
        exc = sys.exc_info()[1]
    else:
        exc = None
    if exc is not None:
        event_dict["exception"] = f"{type(exc).__name__}: {exc}"
    return event_dict


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
    if level.lower() != "debug":
        processors.append(_exception_summary)
    colors = sys.stderr.isatty()
    if json:
        no_locals = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        processors += [structlog.processors.ExceptionRenderer(no_locals), structlog.processors.JSONRenderer()]
    else:
        formatter = structlog.dev.RichTracebackFormatter(
            show_locals=False, color_system="truecolor" if colors else None
        )
        processors += [structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=formatter)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
