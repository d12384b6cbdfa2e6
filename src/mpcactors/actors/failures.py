"""Which error to show when several tasks fail at once.

When one party fails, the others stop with :class:`~mpcactors.errors.AbortedError`,
see a closed link, or get cancelled; trio reports all of it as an exception group.
Users need the one error that caused it, with its exit code.
"""

from __future__ import annotations

import trio

from ..errors import AbortedError, MpcactorsError, TransportError

__all__ = ["first_cause", "leaves"]


def leaves(exc: BaseException) -> list[BaseException]:
    """The non-group exceptions inside ``exc`` (itself if it is not a group)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaves(sub)]
    return [exc]


def first_cause(exc: BaseException) -> BaseException:
    """The root cause: the original error, then a bug, then the echoes.

    Of the echoes, a peer's abort carries the peer's own reason (which names the party
    that failed first), so it is preferred over a link that merely broke.
    """
    found = leaves(exc)
    for predicate in (
        lambda e: isinstance(e, MpcactorsError) and not isinstance(e, AbortedError | TransportError),
        lambda e: not isinstance(e, MpcactorsError | trio.Cancelled),  # a bug: show it
        lambda e: isinstance(e, AbortedError),
        lambda e: isinstance(e, MpcactorsError),
    ):
        for leaf in found:
            if predicate(leaf):
                return leaf
    return found[0] if found else exc
