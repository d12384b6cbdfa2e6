"""The transcript recorder: byte-exact, agrees with the transports' own counters, and in
one-party (daemon) mode records only that party's links, over memory and over TLS."""

from __future__ import annotations

import datetime
from collections import defaultdict

import pytest
import trio
import trio.testing
import trustme

from mpcactors.analysis.transcript import ForeignTrafficError, Transcript
from mpcactors.codec import Envelope, encode_envelope
from mpcactors.protocol.roster import DEFAULT_DATA_PARTIES, TTP, Roster
from mpcactors.sim import simulate
from mpcactors.testing import fast_config, tables_for
from mpcactors.transport.base import Record
from mpcactors.transport.tls import make_ssl_context, open_tls_link

HOSPITAL, INSURER = DEFAULT_DATA_PARTIES
ROLES = Roster().members

SESSION = bytes(range(16))


@pytest.fixture(scope="module")
def recorded():
    hospital, insurer = tables_for(80, 0.5, seed=4)
    transcript = Transcript()
    simulation = trio.run(lambda: simulate((hospital, insurer), fast_config(hospital, insurer, lasso=False),
                                           recorder=transcript))
    return simulation, transcript


def test_bytes_per_step_and_party_equal_the_transports_counters(recorded):
    simulation, transcript = recorded
    expected: dict[int, int] = defaultdict(int)
    for role in ROLES:
        for step, stats in simulation.parties[role].steps.items():
            expected[step] += stats.bytes_sent
            sent = transcript.bytes_by_party().get(role, {}).get("sent", {}).get(step, 0)
            received = transcript.bytes_by_party().get(role, {}).get("received", {}).get(step, 0)
            assert sent == stats.bytes_sent, (role, step)
            assert received == stats.bytes_received, (role, step)
    assert transcript.bytes_by_step() == {k: v for k, v in expected.items() if v}


def test_every_entry_is_its_bytes_decoded_and_the_codec_is_canonical(recorded):
    _, transcript = recorded
    assert len(transcript) > 10
    for entry in transcript:
        assert entry.size == len(entry.record.data)
        assert entry.envelope.sender == entry.sender and entry.envelope.kind == entry.kind
        # RecordingChannel re-encodes what it receives: that must give the wire bytes back
        assert encode_envelope(entry.envelope) == entry.record.data


def test_queries_by_step_sender_receiver_and_kind(recorded):
    simulation, transcript = recorded
    contributions = transcript.select(step=2, kind="hash_contribution")
    assert {(e.sender, e.receiver) for e in contributions} == {(HOSPITAL, INSURER), (INSURER, HOSPITAL)}
    assert all(len(e.body["value"]) == 32 for e in contributions)
    # the TTP is never on the step-2 link and tells the parties nothing but m
    assert not transcript.select(receiver=TTP, kind="hash_contribution")
    told = transcript.select(sender=TTP, step=4)
    assert {e.kind for e in told} == {"intersection"}
    assert {e.body["size"] for e in told} == {simulation.intersection_size}
    assert transcript.received_by(HOSPITAL, step=2) == transcript.select(step=2, receiver=HOSPITAL)
    assert sum(r["bytes"] for r in transcript.traffic()) == sum(transcript.bytes_by_step().values())


def record(sender: str, receiver: str) -> Record:
    envelope = Envelope(SESSION, 4, sender, 0, "intersection", {"size": 12})
    data = encode_envelope(envelope)
    return Record(sender, receiver, 4, "intersection", len(data), 0.0, data)


def test_a_one_party_transcript_refuses_other_parties_traffic():
    transcript = Transcript(local=HOSPITAL)
    transcript(record(TTP, HOSPITAL))
    transcript(record(HOSPITAL, TTP))
    with pytest.raises(ForeignTrafficError, match="can only record its own links"):
        transcript(record(TTP, INSURER))
    assert [(e.sender, e.receiver) for e in transcript] == [(TTP, HOSPITAL), (HOSPITAL, TTP)]
    with pytest.raises(ValueError):
        Transcript(local="auditor")


async def test_a_daemon_records_what_it_sends_and_receives_over_tls(tmp_path):
    """The hospital's own transcript on a mutual-TLS link: the transport records its sends,
    the wrapper its receipts; the bytes are those the insurer put on the wire."""
    ca = trustme.CA()
    files = {}
    for role in (HOSPITAL, INSURER):
        leaf = ca.issue_cert(f"{role}.mpcactors.test", not_after=datetime.datetime.now(datetime.timezone.utc)
                             + datetime.timedelta(days=1))
        cert, key, authority = tmp_path / f"{role}.crt", tmp_path / f"{role}.key", tmp_path / "ca.crt"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        ca.cert_pem.write_to_path(str(authority))
        files[role] = (cert, key, authority)
    identities = {f"{r}.mpcactors.test": r for r in ROLES}
    mine = Transcript(local=HOSPITAL)
    theirs: list[Record] = []
    a, b = trio.testing.memory_stream_pair()
    links = {}

    async def open_side(role: str, stream, server_side: bool, recorder) -> None:
        cert, key, authority = files[role]
        links[role], _ = await open_tls_link(
            stream, local_role=role, expected_peer_role=INSURER if role == HOSPITAL else HOSPITAL,
            ssl_context=make_ssl_context(certificate=cert, key=key, ca=authority, server_side=server_side),
            server_side=server_side, server_hostname=None if server_side else "hospital.mpcactors.test",
            role_by_identity=identities, session=SESSION if server_side else None, handshake_timeout=10,
            recorder=recorder,
        )

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_side, HOSPITAL, a, True, mine)
            nursery.start_soon(open_side, INSURER, b, False, theirs.append)
        hospital = mine.wrap(links[HOSPITAL])
        await hospital.send(Envelope(SESSION, 2, HOSPITAL, 0, "hash_contribution", {"value": b"\x01" * 32}))
        await links[INSURER].send(Envelope(SESSION, 2, INSURER, 0, "hash_contribution", {"value": b"\x02" * 32}))
        assert (await links[INSURER].receive()).body["value"] == b"\x01" * 32
        assert (await hospital.receive()).body["value"] == b"\x02" * 32
        await hospital.aclose()
        await links[INSURER].aclose()
    assert [(e.sender, e.receiver) for e in mine] == [(HOSPITAL, INSURER), (INSURER, HOSPITAL)]
    assert mine.entries[1].record.data == theirs[0].data  # exactly the insurer's wire bytes
    assert mine.bytes_by_party()[HOSPITAL]["received"] == {2: theirs[0].size}
