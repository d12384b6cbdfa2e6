"""Mutual TLS over memory streams (trustme certificates): identity, hello, refusals, framing.

Every refusal is checked on *both* sides: the side that refuses and the side that is
refused must each raise an error whose message says what is wrong.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mpcactors.codec import Envelope
from mpcactors.config import RunConfig
from mpcactors.crypto.fixedpoint import Params
from mpcactors.errors import MpcactorsError, PeerProtocolError, StepTimeout, TLSError, TransportError
from mpcactors.transport.tls import TLSChannel, identify_peer, make_ssl_context, open_tls_link

TIMEOUT = 20
ROLES_BY_IDENTITY = {
    "hospital.mpcactors.test": "hospital",
    "insurer.mpcactors.test": "insurer",
    "ttp.mpcactors.test": "ttp",
}
SESSION = bytes(range(16))


class Files:
    """A certificate and key on disk, as a deployment has them."""

    def __init__(self, directory: Path, name: str, leaf: trustme.LeafCert, ca: trustme.CA) -> None:
        self.certificate = directory / f"{name}.crt"
        self.key = directory / f"{name}.key"
        self.ca = directory / f"{name}-ca.crt"
        leaf.cert_chain_pems[0].write_to_path(str(self.certificate))
        leaf.private_key_pem.write_to_path(str(self.key))
        ca.cert_pem.write_to_path(str(self.ca))
        self.der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())

    def context(self, *, server_side: bool, trust: Path | None = None) -> ssl.SSLContext:
        return make_ssl_context(certificate=self.certificate, key=self.key, ca=trust or self.ca, server_side=server_side)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """The CA that issued every party's certificate."""
    return trustme.CA()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> dict[str, Files]:
    directory = tmp_path_factory.mktemp("pki")
    other = trustme.CA()
    now = datetime.datetime.now(datetime.timezone.utc)
    files = {role: Files(directory, role, ca.issue_cert(f"{role}.mpcactors.test"), ca) for role in ROLES_BY_IDENTITY.values()}
    files["insurer_other_ca"] = Files(directory, "insurer_other_ca", other.issue_cert("insurer.mpcactors.test"), other)
    files["insurer_expired"] = Files(
        directory,
        "insurer_expired",
        ca.issue_cert("insurer.mpcactors.test", not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1)),
        ca,
    )
    files["insurer_future"] = Files(
        directory,
        "insurer_future",
        ca.issue_cert("insurer.mpcactors.test", not_before=now + datetime.timedelta(days=1), not_after=now + datetime.timedelta(days=30)),
        ca,
    )
    files["hospital_and_ttp"] = Files(directory, "hospital_and_ttp", ca.issue_cert("hospital.mpcactors.test", "ttp.mpcactors.test"), ca)
    # valid certificates for the parties' identities, that the CA issued to someone else
    files["insurer_minted"] = Files(directory, "insurer_minted", ca.issue_cert("insurer.mpcactors.test"), ca)
    files["hospital_minted"] = Files(directory, "hospital_minted", ca.issue_cert("hospital.mpcactors.test"), ca)
    return files


def pin(files: Files) -> str:
    """What ``[peers.NAME] fingerprint`` says to pin ``files``' certificate."""
    return "sha256:" + hashlib.sha256(files.der).hexdigest()


def leaf_with_sans(ca: trustme.CA, *names: x509.GeneralName) -> trustme.LeafCert:
    """A client and server certificate from ``ca`` with exactly the SANs ``names``
    (trustme makes only DNS-name and IP-address SANs)."""
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    issuer_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "another project")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        .sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return trustme.LeafCert(key_pem, certificate.public_bytes(serialization.Encoding.PEM), [])


def client_without_certificate(ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    return context


Outcome = tuple[TLSChannel, bytes | None] | BaseException


async def connect(
    server: dict[str, Any],
    client: dict[str, Any],
    *,
    server_stream: trio.abc.Stream | None = None,
    client_stream: trio.abc.Stream | None = None,
) -> tuple[Outcome, Outcome]:
    """Run both ends of open_tls_link; return each side's result or exception."""
    a, b = trio.testing.memory_stream_pair()
    outcomes: dict[str, Outcome] = {}

    async def side(name: str, stream: trio.abc.Stream, kwargs: dict[str, Any], server_side: bool) -> None:
        try:
            outcomes[name] = await open_tls_link(
                stream, server_side=server_side, handshake_timeout=5, **{"role_by_identity": ROLES_BY_IDENTITY, **kwargs}
            )
        except MpcactorsError as exc:
            outcomes[name] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, "server", server_stream or a, server, True)
        nursery.start_soon(side, "client", client_stream or b, client, False)
    return outcomes["server"], outcomes["client"]


def hospital_server(pki: dict[str, Files], **over: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        local_role="hospital",
        expected_peer_role="insurer",
        ssl_context=pki["hospital"].context(server_side=True),
        server_hostname=None,
        session=SESSION,
    )
    kwargs.update(over)
    return kwargs


def insurer_client(pki: dict[str, Files], files: str = "insurer", **over: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        local_role="insurer",
        expected_peer_role="hospital",
        ssl_context=pki[files].context(server_side=False),
        server_hostname="hospital.mpcactors.test",
        session=None,
    )
    kwargs.update(over)
    return kwargs


def envelope(sender: str, seq: int, body: dict[str, Any]) -> Envelope:
    return Envelope(SESSION, 1, sender, seq, "hash_contribution", body)


# ---- the working path ----------------------------------------------------------------------


@pytest.fixture(params=[ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLSv1.2", "TLSv1.3"])
def tls_version(request: pytest.FixtureRequest) -> ssl.TLSVersion:
    """The highest version the client offers: every refusal must read well in both."""
    return request.param


def limited(context: ssl.SSLContext, version: ssl.TLSVersion) -> ssl.SSLContext:
    context.maximum_version = version
    return context


async def test_a_link_authenticates_both_sides_agrees_on_the_session_and_carries_envelopes(
    pki: dict[str, Files], tls_version: ssl.TLSVersion
) -> None:
    client_context = pki["insurer"].context(server_side=False)
    client_context.maximum_version = tls_version
    with trio.fail_after(TIMEOUT):
        server, client = await connect(hospital_server(pki), insurer_client(pki, ssl_context=client_context))
        assert not isinstance(server, BaseException) and not isinstance(client, BaseException)
        (h, h_session), (i, i_session) = server, client
        # the insurer had no session and learnt the hospital's
        assert h_session == i_session == SESSION
        assert (h.local, h.peer, i.local, i.peer) == ("hospital", "insurer", "insurer", "hospital")
        assert h.purpose == i.purpose == "run"
        # each side saw the other's certificate, with the fingerprint of that exact certificate
        assert i.peer_certificate.sans == ("hospital.mpcactors.test",)
        assert h.peer_certificate.sans == ("insurer.mpcactors.test",)
        expected = ":".join(f"{b:02X}" for b in hashlib.sha256(pki["hospital"].der).digest())
        assert i.peer_certificate.fingerprint == expected
        assert i.peer_certificate.tls_version == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[tls_version]

        big = {"value": bytes(200_000)}  # several TLS records
        await h.send(envelope("hospital", 0, {"value": b"\x01" * 32}))
        await i.send(envelope("insurer", 0, big))
        assert (await i.receive()).body == {"value": b"\x01" * 32}
        assert (await h.receive()).body == big
        assert h.statistics().sent_messages[1] == 1 and h.statistics().received_messages[1] == 1
        await i.aclose()
        with pytest.raises(TransportError, match="insurer closed the link to hospital"):
            await h.receive()
        await h.aclose()


async def test_tls_13_is_preferred(pki: dict[str, Files]) -> None:
    with trio.fail_after(TIMEOUT):
        server, client = await connect(hospital_server(pki), insurer_client(pki))
        assert not isinstance(server, BaseException) and not isinstance(client, BaseException)
        assert server[0].peer_certificate.tls_version == "TLSv1.3"
        await server[0].aclose()
        await client[0].aclose()


async def test_a_listener_accepting_several_roles_learns_which_one_connected(pki: dict[str, Files]) -> None:
    server = dict(
        local_role="ttp",
        expected_peer_role={"hospital", "insurer"},
        ssl_context=pki["ttp"].context(server_side=True),
        server_hostname=None,
        session=None,
    )
    client = dict(
        local_role="insurer",
        expected_peer_role="ttp",
        ssl_context=pki["insurer"].context(server_side=False),
        server_hostname="ttp.mpcactors.test",
        session=SESSION,
    )
    with trio.fail_after(TIMEOUT):
        t, i = await connect(server, client)
        assert not isinstance(t, BaseException) and not isinstance(i, BaseException)
        assert t[0].peer == "insurer" and t[1] == SESSION  # the TTP learnt the session from the insurer
        await t[0].aclose()
        await i[0].aclose()


# ---- refusals, readable on both sides --------------------------------------------------------


def both_fail(server: Outcome, client: Outcome) -> tuple[MpcactorsError, MpcactorsError]:
    assert isinstance(server, MpcactorsError), f"the server did not fail: {server!r}"
    assert isinstance(client, MpcactorsError), f"the client did not fail: {client!r}"
    return server, client


async def test_a_certificate_from_another_ca_is_refused(pki: dict[str, Files], tls_version: ssl.TLSVersion) -> None:
    # the insurer's certificate is from another CA (it still trusts ours, so only the server objects)
    context = limited(pki["insurer_other_ca"].context(server_side=False, trust=pki["insurer"].ca), tls_version)
    with trio.fail_after(TIMEOUT):
        server, client = both_fail(*await connect(hospital_server(pki), insurer_client(pki, ssl_context=context)))
    assert isinstance(server, TLSError) and isinstance(client, TLSError)
    assert "presented a certificate that is not signed by our CA" in str(server)
    assert "unable to get local issuer certificate" in str(server)
    assert str(client).startswith("hospital does not trust the CA that issued our certificate (TLS alert 'unknown ca')")


async def test_a_server_certificate_from_another_ca_is_refused_by_the_client(pki: dict[str, Files]) -> None:
    server_context = pki["insurer_other_ca"].context(server_side=True, trust=pki["hospital"].ca)
    server = dict(local_role="insurer", expected_peer_role="hospital", ssl_context=server_context, server_hostname=None, session=None)
    client = dict(
        local_role="hospital",
        expected_peer_role="insurer",
        ssl_context=pki["hospital"].context(server_side=False),
        server_hostname="insurer.mpcactors.test",
        session=SESSION,
    )
    with trio.fail_after(TIMEOUT):
        s, c = both_fail(*await connect(server, client))
    assert isinstance(s, TLSError) and isinstance(c, TLSError)
    assert str(c).startswith("insurer presented a certificate that is not signed by our CA")
    assert "does not trust the CA that issued our certificate" in str(s)


async def test_a_valid_certificate_naming_another_role_is_refused(pki: dict[str, Files], tls_version: ssl.TLSVersion) -> None:
    # the client holds the TTP's (valid) certificate but connects where the insurer is expected
    client = dict(
        local_role="ttp",
        expected_peer_role="hospital",
        ssl_context=limited(pki["ttp"].context(server_side=False), tls_version),
        server_hostname="hospital.mpcactors.test",
        session=None,
    )
    with trio.fail_after(TIMEOUT):
        server, c = both_fail(*await connect(hospital_server(pki), client))
    assert isinstance(server, TLSError) and isinstance(c, TLSError)
    assert str(server) == "the peer presented SAN ttp.mpcactors.test (role ttp), expected role insurer"
    assert str(c) == (
        "hospital refused the connection: hospital refuses: we presented SAN ttp.mpcactors.test (role ttp), "
        "expected role insurer"
    )


async def test_a_server_whose_san_is_another_role_is_refused_by_the_hostname_check(
    pki: dict[str, Files], tls_version: ssl.TLSVersion
) -> None:
    # the insurer dials the hospital's address but a server holding the TTP's certificate answers
    server = hospital_server(pki, local_role="ttp", ssl_context=pki["ttp"].context(server_side=True))
    client = insurer_client(pki, ssl_context=limited(pki["insurer"].context(server_side=False), tls_version))
    with trio.fail_after(TIMEOUT):
        s, c = both_fail(*await connect(server, client))
    assert isinstance(s, TLSError) and isinstance(c, TLSError)
    assert str(c).startswith(
        "hospital presented a certificate that is not valid for 'hospital.mpcactors.test', the identity configured for it"
    )
    assert "rejected our certificate (TLS alert 'bad certificate')" in str(s)


async def test_a_certificate_naming_two_roles_is_refused(pki: dict[str, Files]) -> None:
    with pytest.raises(TLSError, match="names several roles"):
        identify_peer(("hospital.mpcactors.test", "ttp.mpcactors.test"), ROLES_BY_IDENTITY)
    with pytest.raises(TLSError, match="not a configured identity"):
        identify_peer(("mallory.example",), ROLES_BY_IDENTITY)
    assert identify_peer(("HOSPITAL.mpcactors.TEST",), ROLES_BY_IDENTITY) == "hospital"
    server = dict(local_role="insurer", expected_peer_role="hospital", ssl_context=pki["insurer"].context(server_side=True), server_hostname=None, session=None)
    client = dict(
        local_role="hospital",
        expected_peer_role="insurer",
        ssl_context=pki["hospital_and_ttp"].context(server_side=False),
        server_hostname="insurer.mpcactors.test",
        session=SESSION,
    )
    with trio.fail_after(TIMEOUT):
        s, c = both_fail(*await connect(server, client))
    assert "names several roles (hospital, ttp)" in str(s)
    assert str(c).startswith("insurer refused the connection: insurer refuses: we presented SAN hospital.mpcactors.test, ttp")


DIRECTORY_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "insurer.mpcactors.test")])


@pytest.mark.parametrize(
    ("san", "shown", "configured"),
    [
        (x509.RFC822Name("insurer.mpcactors.test"), "email:insurer.mpcactors.test", "insurer.mpcactors.test"),
        (x509.UniformResourceIdentifier("insurer.mpcactors.test"), "URI:insurer.mpcactors.test", "insurer.mpcactors.test"),
        # the stdlib spells a directory name as nested tuples; an identity spelled that way used to match
        (x509.DirectoryName(DIRECTORY_NAME), "DirName:commonName=insurer.mpcactors.test", "((('commonName', 'insurer.mpcactors.test'),),)"),
    ],
    ids=["e-mail", "URI", "directory-name"],
)
async def test_only_dns_and_ip_sans_identify_a_party(
    tmp_path: Path, pki: dict[str, Files], ca: trustme.CA, san: x509.GeneralName, shown: str, configured: str
) -> None:
    # a certificate from the same CA, issued for another project, whose only mention of the
    # insurer's identity is in a SAN of another type
    files = Files(tmp_path, "other_project", leaf_with_sans(ca, x509.DNSName("mail.example.org"), san), ca)
    identities = {identity: role for identity, role in ROLES_BY_IDENTITY.items() if role != "insurer"} | {configured: "insurer"}
    with trio.fail_after(TIMEOUT):
        server, client = both_fail(
            *await connect(
                hospital_server(pki, role_by_identity=identities),
                insurer_client(pki, ssl_context=files.context(server_side=False)),
            )
        )
    assert isinstance(server, TLSError) and isinstance(client, TLSError)
    assert str(server).startswith(f"the peer presented SAN mail.example.org, {shown}, which is not a configured identity")
    assert str(server).endswith("; only DNS-name and IP-address SANs identify a party")
    assert str(client).startswith(f"hospital refused the connection: hospital refuses: we presented SAN mail.example.org, {shown}")


async def test_an_ip_address_san_identifies_a_party(tmp_path: Path, pki: dict[str, Files], ca: trustme.CA) -> None:
    files = Files(tmp_path, "insurer_ip", leaf_with_sans(ca, x509.IPAddress(ipaddress.ip_address("10.0.0.2"))), ca)
    identities = {**ROLES_BY_IDENTITY, "10.0.0.2": "insurer"}
    with trio.fail_after(TIMEOUT):
        server, client = await connect(
            hospital_server(pki, role_by_identity=identities),
            insurer_client(pki, ssl_context=files.context(server_side=False)),
        )
        assert not isinstance(server, BaseException) and not isinstance(client, BaseException)
        assert server[0].peer == "insurer" and server[0].peer_certificate.sans == ("10.0.0.2",)
        await server[0].aclose()
        await client[0].aclose()


def not_pinned(role: str, *, presented: Files, pinned: Files) -> str:
    """The refusal of ``presented`` where ``pinned`` is pinned, after "the peer" / "we"."""
    return (
        f"presented SAN {role}.mpcactors.test (role {role}) with fingerprint {pin(presented)}, "
        f"but [peers.{role}] fingerprint pins {pin(pinned)}"
    )


async def test_pinned_certificates_connect(pki: dict[str, Files]) -> None:
    server = hospital_server(pki, pins={"insurer": pin(pki["insurer"])})
    client = insurer_client(pki, pins={"hospital": pin(pki["hospital"])})
    with trio.fail_after(TIMEOUT):
        h, i = await connect(server, client)
        assert not isinstance(h, BaseException) and not isinstance(i, BaseException)
        assert h[0].peer_certificate.pin == pin(pki["insurer"]) and i[0].peer_certificate.pin == pin(pki["hospital"])
        await h[0].aclose()
        await i[0].aclose()


async def test_a_certificate_other_than_the_pinned_one_is_refused_by_the_listener(
    pki: dict[str, Files], tls_version: ssl.TLSVersion
) -> None:
    # the same CA issued another valid certificate for the insurer's identity
    context = limited(pki["insurer_minted"].context(server_side=False), tls_version)
    server = hospital_server(pki, pins={"insurer": pin(pki["insurer"])})
    with trio.fail_after(TIMEOUT):
        s, c = both_fail(*await connect(server, insurer_client(pki, ssl_context=context)))
    assert isinstance(s, TLSError) and isinstance(c, TLSError)
    fact = not_pinned("insurer", presented=pki["insurer_minted"], pinned=pki["insurer"])
    assert str(s) == f"the peer {fact}"
    assert str(c) == f"hospital refused the connection: hospital refuses: we {fact}"


async def test_a_certificate_other_than_the_pinned_one_is_refused_by_the_dialer(pki: dict[str, Files]) -> None:
    server = hospital_server(pki, ssl_context=pki["hospital_minted"].context(server_side=True))
    client = insurer_client(pki, pins={"hospital": pin(pki["hospital"])})
    with trio.fail_after(TIMEOUT):
        s, c = both_fail(*await connect(server, client))
    assert isinstance(s, TLSError) and isinstance(c, TLSError)
    fact = not_pinned("hospital", presented=pki["hospital_minted"], pinned=pki["hospital"])
    assert str(c) == f"hospital {fact}"
    assert str(s) == f"insurer refused the connection: insurer refuses: we {fact}"


async def test_a_client_without_a_certificate_is_refused(pki: dict[str, Files], tls_version: ssl.TLSVersion) -> None:
    context = limited(client_without_certificate(pki["insurer"].ca), tls_version)
    with trio.fail_after(TIMEOUT):
        server, client = both_fail(*await connect(hospital_server(pki), insurer_client(pki, ssl_context=context)))
    assert isinstance(server, TLSError) and isinstance(client, TLSError)
    assert str(server) == "the peer presented no client certificate; every party must configure [tls] certificate and key"
    # TLS 1.3 has an alert for exactly this; TLS 1.2 only says "handshake failure"
    assert str(client).startswith("hospital ")
    assert "requires a client certificate and we presented none" in str(client)


async def test_an_expired_certificate_is_refused(pki: dict[str, Files], tls_version: ssl.TLSVersion) -> None:
    context = limited(pki["insurer_expired"].context(server_side=False), tls_version)
    with trio.fail_after(TIMEOUT):
        server, client = both_fail(*await connect(hospital_server(pki), insurer_client(pki, ssl_context=context)))
    assert isinstance(server, TLSError) and isinstance(client, TLSError)
    assert str(server).startswith("the peer presented an expired certificate (certificate has expired)")
    assert "compare `date -u` on both hosts" in str(server)
    assert str(client).startswith("hospital rejected our certificate as expired (TLS alert 'certificate expired')")


async def test_a_certificate_not_valid_yet_points_at_the_clocks(pki: dict[str, Files], tls_version: ssl.TLSVersion) -> None:
    # what clock skew looks like: the insurer's certificate starts tomorrow by the hospital's clock
    context = limited(pki["insurer_future"].context(server_side=False), tls_version)
    with trio.fail_after(TIMEOUT):
        server, client = both_fail(*await connect(hospital_server(pki), insurer_client(pki, ssl_context=context)))
    assert str(server) == (
        "the peer presented a certificate that is not valid yet (certificate is not yet valid); a clock is wrong "
        "(compare `date -u` on both hosts) or it was issued with a future start date"
    )
    assert str(client).startswith("hospital rejected our certificate (TLS alert 'bad certificate')")
    assert str(client).endswith("or a clock is wrong")


async def test_garbage_instead_of_tls_is_refused_by_a_server(pki: dict[str, Files]) -> None:
    a, b = trio.testing.memory_stream_pair()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            async def plain_client() -> None:
                await b.send_all(b"GET / HTTP/1.1\r\nHost: hospital\r\n\r\n")
                # the server closes the connection (this plain client reads to the end)
                while await b.receive_some():
                    pass
                await b.aclose()

            nursery.start_soon(plain_client)
            with pytest.raises(TLSError) as info:
                await open_tls_link(a, server_side=True, role_by_identity=ROLES_BY_IDENTITY, handshake_timeout=5, peer_address="10.0.0.9:5555", **hospital_server(pki))
    assert str(info.value).startswith(
        "the peer at 10.0.0.9:5555 does not speak TLS (the bytes received are not a TLS record: http request)"
    )


async def test_garbage_instead_of_tls_is_refused_by_a_client(pki: dict[str, Files]) -> None:
    a, b = trio.testing.memory_stream_pair()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            async def plain_server() -> None:
                await a.receive_some()  # the ClientHello
                await a.send_all(b"SSH-2.0-OpenSSH_9.6\r\n" + bytes(100))
                await a.aclose()

            nursery.start_soon(plain_server)
            with pytest.raises(TLSError) as info:
                await open_tls_link(b, server_side=False, role_by_identity=ROLES_BY_IDENTITY, handshake_timeout=5, peer_address="10.0.0.2:22", **insurer_client(pki))
    assert str(info.value).startswith("hospital at 10.0.0.2:22 does not speak TLS")
    assert "is the address the listening port of an mpcactors party?" in str(info.value)


async def test_a_silent_peer_times_out_the_handshake(pki: dict[str, Files], autojump_clock: trio.testing.MockClock) -> None:
    a, _b = trio.testing.memory_stream_pair()
    with trio.fail_after(TIMEOUT), pytest.raises(TLSError, match=r"no TLS handshake and hello from the peer within 5 s"):
        await open_tls_link(a, server_side=True, role_by_identity=ROLES_BY_IDENTITY, handshake_timeout=5, **hospital_server(pki))


async def test_a_frame_above_the_cap_is_refused_on_both_sides(pki: dict[str, Files]) -> None:
    # the hospital accepts frames of at most 4 KiB; the insurer (misconfigured) sends 10 KiB
    with trio.fail_after(TIMEOUT):
        server, client = await connect(hospital_server(pki, max_frame_bytes=4096), insurer_client(pki))
        assert not isinstance(server, BaseException) and not isinstance(client, BaseException)
        h, i = server[0], client[0]
        await i.send(envelope("insurer", 0, {"value": bytes(10_000)}))
        errors: dict[str, BaseException] = {}

        async def receive(name: str, channel: TLSChannel) -> None:
            try:
                await channel.receive()
            except MpcactorsError as exc:
                errors[name] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive, "hospital", h)
            nursery.start_soon(receive, "insurer", i)
    at_receiver, at_sender = errors["hospital"], errors["insurer"]
    assert isinstance(at_receiver, PeerProtocolError) and isinstance(at_sender, PeerProtocolError)
    assert str(at_receiver).startswith("insurer announced a frame of 10")
    assert str(at_receiver).endswith("bytes, above the cap of 4096 bytes")
    assert str(at_sender).startswith("hospital closed the link: hospital refuses a frame of 10")
    assert str(at_sender).endswith("above its cap of 4096 bytes")
    # and the receiver never sends on a link it refused
    with pytest.raises(TransportError):
        await h.send(envelope("hospital", 0, {}))


# ---- the hello -------------------------------------------------------------------------------


async def test_a_session_mismatch_is_refused_on_both_sides(pki: dict[str, Files]) -> None:
    with trio.fail_after(TIMEOUT):
        server, client = both_fail(*await connect(hospital_server(pki), insurer_client(pki, session=bytes(16))))
    assert isinstance(server, PeerProtocolError) and isinstance(client, PeerProtocolError)
    assert str(server) == (
        "insurer: session mismatch: insurer is in session 00000000, we are in 00010203 (is one party left over from another run?)"
    )
    # both sides judge the hellos, so each reports the mismatch from where it stands
    assert str(client) == (
        "hospital: session mismatch: hospital is in session 00010203, we are in 00000000 (is one party left over from another run?)"
    )


async def test_a_link_where_neither_side_knows_the_session_is_refused(pki: dict[str, Files]) -> None:
    with trio.fail_after(TIMEOUT):
        server, client = both_fail(*await connect(hospital_server(pki, session=None), insurer_client(pki)))
    assert "neither side knows the session id" in str(server)
    assert "neither side knows the session id" in str(client)


async def test_different_protocol_parameters_are_refused(pki: dict[str, Files]) -> None:
    with trio.fail_after(TIMEOUT):
        server, client = both_fail(
            *await connect(hospital_server(pki, parameters=b"\xaa" * 32), insurer_client(pki, parameters=b"\xbb" * 32))
        )
    assert "the [protocol] parameters differ (digest bbbbbbbbbbbb at insurer, aaaaaaaaaaaa here)" in str(server)
    assert "all three parties' [protocol] sections must be identical" in str(client)


async def test_a_check_link_needs_no_session_and_either_side_can_ask_for_it(pki: dict[str, Files]) -> None:
    with trio.fail_after(TIMEOUT):
        server, client = await connect(hospital_server(pki), insurer_client(pki, purpose="check"))
        assert not isinstance(server, BaseException) and not isinstance(client, BaseException)
        assert server[0].purpose == client[0].purpose == "check"
        assert server[1] is None and client[1] is None
        await server[0].aclose()
        await client[0].aclose()


async def test_a_link_read_timeout_is_a_step_timeout(pki: dict[str, Files], autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(TIMEOUT):
        server, client = await connect(hospital_server(pki, read_timeout=3), insurer_client(pki))
        assert not isinstance(server, BaseException) and not isinstance(client, BaseException)
        with pytest.raises(StepTimeout, match="no data from insurer for 3 s"):
            await server[0].receive()
        await server[0].aclose()
        await client[0].aclose()


# ---- the whole protocol over mTLS ----------------------------------------------------------------


def small_tables(rows: int = 40, seed: int = 11) -> tuple[Any, Any]:
    from mpcactors.data import table_from_rows
    from mpcactors.synth import make_cohort

    cohort = make_cohort(rows, 0.5, seed)
    return tuple(
        table_from_rows(f"<{name}>", header, body, params=Params(), min_rows=2)
        for name, header, body in (
            ("hospital", cohort.hospital_header, cohort.hospital_rows),
            ("insurer", cohort.insurer_header, cohort.insurer_rows),
        )
    )  # type: ignore[return-value]


async def tls_links(pki: dict[str, Files]) -> dict[str, dict[str, TLSChannel]]:
    """All three links over memory streams, established the way the daemons do it:
    the insurer learns the session from the hospital, the TTP from whoever comes first."""
    pairs = [("hospital", "insurer"), ("hospital", "ttp"), ("insurer", "ttp")]  # (server, client)
    sessions: dict[str, bytes | None] = {"hospital": SESSION, "insurer": None, "ttp": None}
    links: dict[str, dict[str, TLSChannel]] = {role: {} for role in sessions}
    for server, client in pairs:
        outcome = await connect(
            dict(local_role=server, expected_peer_role=client, ssl_context=pki[server].context(server_side=True),
                 server_hostname=None, session=sessions[server]),
            dict(local_role=client, expected_peer_role=server, ssl_context=pki[client].context(server_side=False),
                 server_hostname=f"{server}.mpcactors.test", session=sessions[client]),
        )
        for role, result in zip((server, client), outcome, strict=True):
            assert not isinstance(result, BaseException), result
            channel, session = result
            sessions[role] = session
            links[role][channel.peer] = channel
    assert set(sessions.values()) == {SESSION}
    return links


async def test_a_full_run_over_mtls_gives_the_result_of_the_in_memory_run(pki: dict[str, Files]) -> None:
    """The same tables through the in-memory simulation and through three mTLS links.

    Protocol randomness (keys, masks, probabilistic truncation in the MPC) is fresh in
    each run, so the revealed lasso coefficients are compared within the project's MPC
    tolerance: 1e-3 of the largest coefficient (the tolerance the simulation's god view
    uses against scikit-learn; here both runs take the same 15 iterations and differ only
    by fixed-point rounding noise of order 2**-24). Everything else that is public must
    be identical: the intersection size, the features, their owners and the iteration count.
    """
    from mpcactors.actors import run_party
    from mpcactors.sim import simulate

    hospital, insurer = small_tables()
    config = RunConfig.for_parties(
        hospital.columns, insurer.columns, key_bits=1024, allow_test_key_sizes=True,
        min_intersection=3, chunk_rows=8, max_iter=15, deadlines={step: 60.0 for step in range(1, 9)},
    )
    with trio.fail_after(120):
        reference = await simulate((hospital, insurer), config)
        links = await tls_links(pki)
        results: dict[str, Any] = {}

        async def one(role: str, table: Any) -> None:
            results[role] = await run_party(role, links[role], session=SESSION, config=config, table=table)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "hospital", hospital)
            nursery.start_soon(one, "insurer", insurer)
            nursery.start_soon(one, "ttp", None)

    expected = reference.document()
    assert expected["intersection_size"] >= 3
    for role in ("hospital", "insurer", "ttp"):
        document = results[role].document()
        assert document["intersection_size"] == expected["intersection_size"]
        if document["result"] is None:  # a party that does not learn the model
            continue
        got, want = document["result"], expected["result"]
        assert got["owners"] == want["owners"]
        assert list(got["coefficients"]) == list(want["coefficients"])
        assert got["iterations"] == want["iterations"] == 15
        largest = max(abs(v) for v in want["coefficients"].values())
        for name, value in want["coefficients"].items():
            assert abs(got["coefficients"][name] - value) <= 1e-3 * largest, name
        assert abs(got["intercept"] - want["intercept"]) <= 1e-3 * largest
    assert results["hospital"].document()["result"] is not None
    # the links really carried the protocol: every step's traffic crossed TLS
    stats = links["hospital"]["ttp"].statistics()
    assert sum(stats.sent_bytes.values()) > 0 and 8 in stats.received_messages
