"""A god view that can prove, after a failed run, that every key and share is gone."""

from __future__ import annotations

import gc
import sys
from typing import Any

from ..sim import GodView


class KeyWatcher(GodView):
    """A :class:`~mpcactors.sim.GodView` that can prove deletion after a failed run (tests only).

    It also keeps *strong* references to every key object and every share list the
    parties report, on purpose and only until the checks: :meth:`assert_destroyed`
    checks that each key reports ``destroyed``; :meth:`assert_nothing_survives` then
    drops those references and checks, through the god view's weak references, that
    nothing else keeps a key alive, and that each share list was either cleared by its
    party or is referenced by nothing at all (freed with the run). Call it after the
    run's errors are gone: a traceback holds frames, and frames hold locals.
    """

    SHARES = ("masks", "additive_shares", "shamir_shares")

    def __init__(self) -> None:
        super().__init__()
        self.strong: list[tuple[str, str, Any]] = []
        self.share_lists: list[tuple[str, str, list[Any]]] = []

    def key_created(self, role: str, name: str, key: Any) -> None:
        super().key_created(role, name, key)
        self.strong.append((role, name, key))

    def hold(self, role: str, step: int, name: str, value: Any) -> None:
        super().hold(role, step, name, value)
        if name in self.SHARES and isinstance(value, list):
            self.share_lists.append((role, name, value))

    @property
    def created(self) -> set[str]:
        return {name for _, name, _ in self.strong}

    def assert_destroyed(self) -> None:
        alive = [(role, name) for role, name, key in self.strong if not key.destroyed]
        assert alive == [], f"keys not destroyed: {alive}"

    def assert_nothing_survives(self) -> None:
        pending = [entry for entry in self.share_lists if entry[2]]
        self.strong.clear()
        self.share_lists.clear()
        gc.collect()
        survivors = [(role, name) for role, name, ref in self.keys if ref() is not None]
        assert survivors == [], f"key objects still referenced after the run: {survivors}"
        here = sys._getframe()
        held = []
        while pending:
            role, name, value = pending.pop()
            referrers = [r for r in gc.get_referrers(value) if r is not here]
            if referrers:
                held.append((role, name, sorted({type(r).__name__ for r in referrers})))
            del value
        assert held == [], f"share lists neither cleared nor freed: {held}"
