"""One record of a party's secrets: created, destroyed, proven gone.

Every secret of :data:`mpcactors.protocol.steps.SECRETS` enters and leaves through a
:class:`SecretVault`, which tells the scheduler (so a step whose precondition is a
deletion cannot begin early), the observer (so the god view can check that keys
really died) and the step statistics (so the run report lists what each step
deleted) in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..protocol.scheduler import StepScheduler
from .hooks import Hooks, Observer

__all__ = ["SecretVault"]


def _is_key(obj: Any) -> bool:
    return callable(getattr(obj, "destroy", None))


def _wipe(obj: Any) -> None:
    """Destroy a key object, or empty a container of shares (and the containers in it)."""
    if _is_key(obj):
        obj.destroy()
        return
    if isinstance(obj, dict):
        for value in obj.values():
            _wipe(value)
    if isinstance(obj, list | dict):
        obj.clear()


class SecretVault:
    """The secrets one party holds now, by name.

    Key objects (anything with ``destroy()``) are destroyed; lists and dicts of shares
    are emptied. Python cannot wipe memory: "destroyed" means every reference the
    party holds is dropped and a key object refuses further use.
    """

    def __init__(
        self,
        role: str,
        scheduler: StepScheduler,
        *,
        observer: Observer | None,
        hooks: Hooks,
        deleted: Callable[[str], None],
    ) -> None:
        self._role = role
        self._scheduler = scheduler
        self._observer = observer
        self._hooks = hooks
        self._deleted = deleted
        self._alive: dict[str, Any] = {}

    def create(self, name: str, secret: Any) -> Any:
        """Record that ``secret`` now exists under ``name``; returns it."""
        self._scheduler.created(name)
        self._alive[name] = secret
        if self._observer is not None and _is_key(secret):
            self._observer.key_created(self._role, name, secret)
        return secret

    def __getitem__(self, name: str) -> Any:
        return self._alive[name]

    def __contains__(self, name: str) -> bool:
        return name in self._alive

    def destroy(self, name: str) -> None:
        """Destroy ``name`` and prove it to the scheduler, which refuses a key still alive."""
        secret = self._alive.pop(name)
        key = _is_key(secret)
        if key:
            self._hooks.before_destroy(self._role, name, secret)
        _wipe(secret)
        self._scheduler.destroyed(name, *([secret] if key else []))
        self._deleted(name)
        if self._observer is not None and key:
            self._observer.key_destroyed(self._role, name, secret)

    def destroy_all(self) -> None:
        """Destroy whatever is still alive (cleanup after success or failure; idempotent)."""
        while self._alive:
            _, secret = self._alive.popitem()
            _wipe(secret)
