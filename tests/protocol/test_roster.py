"""The roster: named data parties, the TTP, the compute parties and their Shamir indices."""

from __future__ import annotations

import pytest

from mpcactors.errors import ConfigError
from mpcactors.protocol.roster import TTP, Roster, default_names, parse_parties
from mpcactors.protocol.steps import Group, StepTable


def test_the_default_roster_is_the_papers_two_parties_and_the_ttp():
    roster = Roster()
    assert roster.members == ("hospital", "insurer", "ttp")
    assert [roster.index(p) for p in roster.members] == [1, 2, 3]
    assert [roster.name_of(i) for i in (1, 2, 3)] == ["hospital", "insurer", "ttp"]


def test_compute_parties_are_named_or_the_first_two():
    roster = Roster(("hospital", "insurer", "cbs"), compute=("insurer", "cbs"))
    assert roster.compute_parties == ("insurer", "cbs", TTP)
    assert roster.index("cbs") == 2 and roster.index(TTP) == 3
    assert Roster(("a", "b", "c")).compute_parties == ("a", "b", TTP)
    with pytest.raises(ValueError):
        roster.index("hospital")  # a data party that does not compute has no share index


@pytest.mark.parametrize(
    ("names", "compute", "message"),
    [
        (("hospital",), None, "at least two data parties"),
        (("hospital", "hospital"), None, "unique"),
        (("hospital", "ttp"), None, "trusted third party's name"),
        (("Hospital", "insurer"), None, "not valid"),
        (("a b", "insurer"), None, "not valid"),
        (("x" * 33, "insurer"), None, "not valid"),
        (("a", "b", "c"), ("a", "a"), "two distinct data parties"),
        (("a", "b", "c"), ("a", "d"), "two distinct data parties"),
    ],
)
def test_an_invalid_roster_is_refused_with_the_reason(names, compute, message):
    with pytest.raises(ConfigError, match=message):
        Roster(names, compute)


def test_parties_option_takes_a_count_or_names():
    assert parse_parties("2") == ("hospital", "insurer")
    assert parse_parties("3") == ("hospital", "insurer", "cbs")
    assert parse_parties("5") == default_names(5) == ("hospital", "insurer", "cbs", "party4", "party5")
    assert parse_parties("gp, municipality") == ("gp", "municipality")
    for bad in ("1", "65", "a", "a,a", "a,ttp"):
        with pytest.raises(ConfigError):
            parse_parties(bad)


def test_the_step_table_grows_with_the_roster():
    two, three = StepTable(Roster()), StepTable(Roster(("hospital", "insurer", "cbs")))
    assert len(three.messages) > len(two.messages)
    # every data party sends rows to the TTP; every member confirms to every other
    assert {r.sender for r in three.messages_for(4) if r.kind == "rows"} == {"hospital", "insurer", "cbs"}
    assert len(three.messages_for(9)) == 4 * 3
    # only the compute parties exchange step-8 rounds
    assert {r.sender for r in three.messages_for(8)} == set(Group.COMPUTE.members(three.roster)) == {"hospital", "insurer", TTP}
    # a data party that does not compute holds no Shamir share and no MPC state
    assert {s.name for s in three.secrets_of("cbs")} == {"hash_key", "paillier_secret", "additive_shares"}
