"""The in-memory transport: the all-pairs mesh the simulation and the fault runs use."""

from __future__ import annotations

import pytest
import trio

from mpcactors.codec import Envelope
from mpcactors.errors import TransportError
from mpcactors.transport.base import Record
from mpcactors.transport.memory import memory_mesh

ROLES = ("hospital", "insurer", "ttp")
SESSION = bytes(range(16))


def envelope(sender: str, seq: int) -> Envelope:
    return Envelope(SESSION, 1, sender, seq, "hash_contribution", {"value": bytes(32)})


async def test_the_mesh_links_every_two_roles_both_ways_and_records_every_message() -> None:
    records: list[Record] = []
    links = memory_mesh(ROLES, recorder=records.append)
    assert {role: list(peers) for role, peers in links.items()} == {
        "hospital": ["insurer", "ttp"], "insurer": ["hospital", "ttp"], "ttp": ["hospital", "insurer"],
    }
    with trio.fail_after(5):
        for seq, (role, peers) in enumerate(links.items()):
            for peer, channel in peers.items():
                assert (channel.local, channel.peer) == (role, peer)
                await channel.send(envelope(role, seq))
                assert await links[peer][role].receive() == envelope(role, seq)
    assert [(r.sender, r.receiver) for r in records] == [(a, b) for a in ROLES for b in ROLES if a != b]


async def test_each_link_of_the_mesh_buffers_only_buffer_messages_per_direction(autojump_clock: trio.abc.Clock) -> None:
    links = memory_mesh(ROLES[:2], buffer=2)
    sender = links["hospital"]["insurer"]
    for seq in range(2):
        await sender.send(envelope("hospital", seq))
    with trio.move_on_after(1) as waited:
        await sender.send(envelope("hospital", 2))
    assert waited.cancelled_caught  # back-pressure: the third waits for the receiver


async def test_closing_one_end_of_a_mesh_link_is_seen_at_the_other() -> None:
    links = memory_mesh(ROLES)
    await links["ttp"]["insurer"].aclose()
    with pytest.raises(TransportError, match="ttp closed the link to insurer"):
        await links["insurer"]["ttp"].receive()
    with pytest.raises(TransportError, match="the link from insurer to ttp is closed"):
        await links["insurer"]["ttp"].send(envelope("insurer", 0))
