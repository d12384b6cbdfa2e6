"""Who takes part in a session: the named data parties and the TTP.

A :class:`Roster` is public, agreed configuration. Data parties have free names
(lowercase letters, digits, ``_`` and ``-``); the TTP is always ``ttp``. Three of the
members are the **compute parties** of steps 7 and 8: two data parties (by default
the first two) and the TTP. Their Shamir evaluation points are 1, 2 and 3 in that
order, so with the default roster hospital = 1, insurer = 2, ttp = 3.

The rest of the protocol asks the roster, never a literal role name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["DEFAULT_DATA_PARTIES", "TTP", "Roster", "default_names", "is_party_name", "parse_parties"]

#: The TTP's name in every session.
TTP = "ttp"
#: The data parties of a session that names none.
DEFAULT_DATA_PARTIES = ("hospital", "insurer")
#: The names ``--parties N`` gives, in order; party 4 onwards is ``party4``, ``party5``, ...
_DEFAULT_NAMES = (*DEFAULT_DATA_PARTIES, "cbs")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_MAX_PARTIES = 64


def default_names(count: int) -> tuple[str, ...]:
    """The default names of ``count`` data parties: hospital, insurer, cbs, party4, ..."""
    return tuple(_DEFAULT_NAMES[i] if i < len(_DEFAULT_NAMES) else f"party{i + 1}" for i in range(count))


def parse_parties(text: str) -> tuple[str, ...]:
    """The data parties a ``--parties`` value names: a count, or a comma-separated list of names.

    Raises:
        ConfigError: not a count from 2 to 64, or a list that is not a valid roster.
    """
    text = text.strip()
    if text.isdigit():
        count = int(text)
        if not 2 <= count <= _MAX_PARTIES:
            raise ConfigError(f"--parties: a session has 2 to {_MAX_PARTIES} data parties, got {count}")
        return default_names(count)
    names = tuple(name.strip() for name in text.split(","))
    return Roster(names).data_parties


def is_party_name(name: str) -> bool:
    """True for a syntactically valid party name (what the codec accepts as a sender)."""
    return bool(_NAME.fullmatch(name))


@dataclass(frozen=True, slots=True)
class Roster:
    """The members of one session, in their public order.

    Attributes:
        data_parties: the data parties' names, in the order of the joined table's columns.
        compute: the two data parties that compute with the TTP in steps 7 and 8
            (default: the first two).

    Raises:
        ConfigError: a name is invalid or repeated, ``ttp`` is used for a data party,
            there are fewer than two data parties, or a compute party is not one of them.
    """

    data_parties: tuple[str, ...] = DEFAULT_DATA_PARTIES
    compute: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        names = tuple(self.data_parties)
        object.__setattr__(self, "data_parties", names)
        for name in names:
            if not isinstance(name, str) or not is_party_name(name):
                raise ConfigError(
                    f"party name {name!r} is not valid: use 1 to 32 lowercase letters, digits, '_' or '-'"
                )
        if TTP in names:
            raise ConfigError(f"{TTP!r} is the trusted third party's name; a data party cannot use it")
        if len(set(names)) != len(names):
            raise ConfigError(f"party names must be unique; repeated: {sorted({n for n in names if names.count(n) > 1})}")
        if len(names) < 2:
            raise ConfigError(f"a session needs at least two data parties, got {list(names)}")
        compute = names[:2] if self.compute is None else tuple(self.compute)
        if len(compute) != 2 or len(set(compute)) != 2 or not set(compute) <= set(names):
            raise ConfigError(f"compute parties must be two distinct data parties of {list(names)}, got {list(compute)}")
        object.__setattr__(self, "compute", compute)

    @classmethod
    def of(cls, names: Sequence[str], compute: Sequence[str] | None = None) -> Roster:
        return cls(tuple(names), None if compute is None else (compute[0], compute[1]))

    @property
    def members(self) -> tuple[str, ...]:
        """Every member: the data parties, then the TTP."""
        return (*self.data_parties, TTP)

    @property
    def compute_parties(self) -> tuple[str, str, str]:
        """The three parties of the MPC engine, in Shamir-index order."""
        assert self.compute is not None
        return (self.compute[0], self.compute[1], TTP)

    def index(self, name: str) -> int:
        """The Shamir evaluation point (1, 2 or 3) of a compute party."""
        return self.compute_parties.index(name) + 1

    def name_of(self, index: int) -> str:
        """The compute party with Shamir evaluation point ``index``."""
        return self.compute_parties[index - 1]

    def is_data_party(self, name: str) -> bool:
        return name in self.data_parties

    def peers(self, name: str) -> tuple[str, ...]:
        """Every other member, in roster order."""
        return tuple(m for m in self.members if m != name)

    def check_member(self, name: str) -> str:
        if name not in self.members:
            raise ConfigError(f"{name!r} is not in this session's roster {list(self.members)}")
        return name
