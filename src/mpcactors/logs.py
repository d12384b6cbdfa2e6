"""Logging configuration. Only entry points (the CLI, tests) call :func:`configure_logging`.

Library modules just do ``log = structlog.get_logger(__name__)``. A redaction
processor drops any field whose name suggests secret material; with
``strict=True`` (tests) it raises instead, so a leak fails the test that caused it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

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


def configure_logging(*, json: bool | None = None, level: str = "warning", strict: bool = False) -> None:
    """Console output on a terminal, JSON lines otherwise (daemons, CI)."""
    if json is None:
        json = not sys.stderr.isatty()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        redact(strict),
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
