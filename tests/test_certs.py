"""The test CA: certificates that OpenSSL accepts for mutual TLS, private keys kept private,
and inspection that reports what operators need (SAN, expiry, fingerprint, issuer)."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import ssl
import stat
from pathlib import Path

import pytest
import trio
import trio.testing
from click.testing import CliRunner

from mpcactors.cli.daemon import certs as certs_command
from mpcactors.certs import (
    default_identity,
    init_ca,
    inspect_certificate,
    issue_certificate,
    key_permission_problem,
)
from mpcactors.errors import ConfigError
from mpcactors.transport.tls import make_ssl_context

TIMEOUT = 10


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    init_ca(tmp_path / "ca")
    return tmp_path / "ca"


def issue(ca_dir: Path, out: Path, name: str, *identities: str, **kwargs: object) -> tuple[Path, Path]:
    return issue_certificate(
        out, name=name, identities=list(identities) or [default_identity(name)],
        ca_certificate=ca_dir / "ca.crt", ca_key=ca_dir / "ca.key", **kwargs,  # type: ignore[arg-type]
    )


def der_fingerprint(path: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(path.read_text())
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


async def test_issued_certificates_work_for_mutual_tls_in_both_directions(ca_dir: Path, tmp_path: Path) -> None:
    """OpenSSL (through the stdlib ssl module) is the oracle: it must accept our certificates
    as server *and* client certificates, with the role identity checked by hostname."""
    h_cert, h_key = issue(ca_dir, tmp_path, "hospital")
    i_cert, i_key = issue(ca_dir, tmp_path, "insurer")
    ca = ca_dir / "ca.crt"
    for server, client, name in (((h_cert, h_key), (i_cert, i_key), "hospital"), ((i_cert, i_key), (h_cert, h_key), "insurer")):
        server_ctx = make_ssl_context(certificate=server[0], key=server[1], ca=ca, server_side=True)
        client_ctx = make_ssl_context(certificate=client[0], key=client[1], ca=ca, server_side=False)
        a, b = trio.testing.memory_stream_pair()
        s = trio.SSLStream(a, server_ctx, server_side=True)
        c = trio.SSLStream(b, client_ctx, server_hostname=default_identity(name))
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(s.do_handshake)
                nursery.start_soon(c.do_handshake)
                # TLS 1.3 finishes the client's handshake before the server checked the client
                # certificate; one round trip of data proves the server accepted it
                nursery.start_soon(c.send_all, b"ping")
            assert await s.receive_some(4) == b"ping"
        assert s.getpeercert()["subjectAltName"] == (("DNS", default_identity("insurer" if name == "hospital" else "hospital")),)
        assert c.getpeercert()["subjectAltName"] == (("DNS", default_identity(name)),)


def test_private_keys_are_created_0600_whatever_the_umask(ca_dir: Path, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        init_ca(tmp_path / "ca2")
        _, key = issue(ca_dir, tmp_path, "ttp")
    finally:
        os.umask(old)
    for path in (tmp_path / "ca2" / "ca.key", key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert key_permission_problem(path) is None
    assert stat.S_IMODE((tmp_path / "ca2" / "ca.crt").stat().st_mode) == 0o644


def test_inspection_reports_san_validity_fingerprint_and_issuer(ca_dir: Path, tmp_path: Path) -> None:
    cert, _ = issue(ca_dir, tmp_path, "hospital", "hospital.example.org", "10.1.2.3", days=30)
    (info,) = inspect_certificate(cert)
    assert info.sans == ("hospital.example.org", "10.1.2.3")
    assert info.fingerprint == der_fingerprint(cert)
    (ca_info,) = inspect_certificate(ca_dir / "ca.crt")
    assert info.issuer == ca_info.subject == "CN=mpcactors test CA"
    assert ca_info.is_ca and not info.is_ca
    left = info.days_left()
    assert 29.9 < left <= 30.01
    assert info.status().startswith("valid, 30 days left")
    assert "SAN:         hospital.example.org, 10.1.2.3" in info.describe()


async def test_an_ip_identity_becomes_an_ip_san_that_openssl_matches(ca_dir: Path, tmp_path: Path) -> None:
    cert, key = issue(ca_dir, tmp_path, "ttp", "127.0.0.1")
    c_cert, c_key = issue(ca_dir, tmp_path, "insurer")
    ca = ca_dir / "ca.crt"
    a, b = trio.testing.memory_stream_pair()
    s = trio.SSLStream(a, make_ssl_context(certificate=cert, key=key, ca=ca, server_side=True), server_side=True)
    c = trio.SSLStream(b, make_ssl_context(certificate=c_cert, key=c_key, ca=ca, server_side=False), server_hostname="127.0.0.1")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.do_handshake)
            nursery.start_soon(c.do_handshake)
    assert c.getpeercert()["subjectAltName"] == (("IP Address", "127.0.0.1"),)


def test_an_expired_certificate_says_so(ca_dir: Path, tmp_path: Path) -> None:
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)
    cert, _ = issue(ca_dir, tmp_path, "insurer", days=3, not_before=past)
    (info,) = inspect_certificate(cert)
    assert info.status().startswith("EXPIRED 7 days ago")


def test_existing_files_are_not_overwritten_unless_asked(ca_dir: Path, tmp_path: Path) -> None:
    cert, key = issue(ca_dir, tmp_path, "hospital")
    before = cert.read_bytes()
    with pytest.raises(ConfigError, match="already exists; refusing to overwrite it"):
        issue(ca_dir, tmp_path, "hospital")
    with pytest.raises(ConfigError, match="already exists"):
        init_ca(ca_dir)
    assert cert.read_bytes() == before
    issue(ca_dir, tmp_path, "hospital", overwrite=True)
    assert cert.read_bytes() != before
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_a_ca_key_that_does_not_match_its_certificate_is_refused(ca_dir: Path, tmp_path: Path) -> None:
    init_ca(tmp_path / "other")
    with pytest.raises(ConfigError, match="is not the key of"):
        issue_certificate(tmp_path, name="ttp", identities=["ttp.mpcactors.test"], ca_certificate=ca_dir / "ca.crt", ca_key=tmp_path / "other" / "ca.key")


def test_a_key_readable_by_others_is_reported_with_its_permission_bits(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    key.write_text("x")
    key.chmod(0o644)
    assert key_permission_problem(key) == (
        f"permissions 0644 are too open: the private key must not be accessible by group or others (run: chmod 600 {key})"
    )
    key.chmod(0o640)
    assert "permissions 0640 are too open" in (key_permission_problem(key) or "")


def test_inspect_refuses_a_file_without_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "x.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        inspect_certificate(tmp_path / "x.pem")
    with pytest.raises(ConfigError, match="does not exist"):
        inspect_certificate(tmp_path / "missing.pem")


def test_the_certs_commands_make_and_show_a_test_pki(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "pki"
    result = runner.invoke(certs_command, ["init", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for role in ("hospital", "insurer", "ttp"):
        result = runner.invoke(certs_command, ["issue", role, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert f"SAN {role}.mpcactors.test" in result.output
    result = runner.invoke(certs_command, ["issue", "lab", "--out", str(out)])
    assert result.exit_code == 2 and "give --identity for 'lab'" in result.output
    result = runner.invoke(certs_command, ["issue", "lab", "--identity", "lab.example.org", "--identity", "192.0.2.7", "--out", str(out)])
    assert result.exit_code == 0, result.output

    result = runner.invoke(certs_command, ["inspect", str(out / "insurer.crt"), str(out / "lab.crt")])
    assert result.exit_code == 0, result.output
    assert "SAN:         insurer.mpcactors.test" in result.output
    assert "SAN:         lab.example.org, 192.0.2.7" in result.output
    assert f"SHA-256:     {der_fingerprint(out / 'insurer.crt')}" in result.output
    assert "issuer:      CN=mpcactors test CA" in result.output
    assert "status:      valid, 90 days left" in result.output

    result = runner.invoke(certs_command, ["inspect", "--json", str(out / "ttp.crt")])
    assert result.exit_code == 0
    (doc,) = json.loads(result.output)
    assert doc["sans"] == ["ttp.mpcactors.test"] and doc["fingerprint_sha256"] == der_fingerprint(out / "ttp.crt")
    result = runner.invoke(certs_command, ["init", "--out", str(out)])
    assert result.exit_code == 2 and "refusing to overwrite" in result.output


def test_inspect_prints_the_pin_line_ready_to_paste(ca_dir: Path, tmp_path: Path) -> None:
    import tomllib

    cert, _ = issue(ca_dir, tmp_path, "insurer")
    result = CliRunner().invoke(certs_command, ["inspect", str(cert), str(ca_dir / "ca.crt")])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    pinned = [line for line in lines if line.startswith("fingerprint = ")]
    assert len(pinned) == 1  # the party's certificate only: pinning a CA would refuse every party
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert tomllib.loads(pinned[0]) == {"fingerprint": "sha256:" + hashlib.sha256(der).hexdigest()}
    hint = lines[lines.index(pinned[0]) - 1]
    assert hint == "# to pin this certificate, paste under [peers.<role>] in the other parties' configs:"
