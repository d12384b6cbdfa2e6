"""The actors: every party of a session as a trio task (:func:`run_party`)."""

from .executor import Executor
from .hooks import DEFAULT_HOOKS, Held, Hooks, Observer
from .results import PartyResult, StepStats
from .run import run_party

__all__ = ["DEFAULT_HOOKS", "Executor", "Held", "Hooks", "Observer", "PartyResult", "StepStats", "run_party"]
