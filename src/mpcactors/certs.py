"""A small CA for test deployments: one CA, one certificate per role, and inspection.

Production sites bring their own PKI; this module exists so that a three-host trial
(or ``mpcactors deploy-example``) needs nothing but mpcactors. It is built on
``cryptography`` and writes PEM files:

* :func:`init_ca` makes a self-signed CA (ECDSA P-256) that may sign leaf certificates
  only (``path_length=0``);
* :func:`issue_certificate` makes a leaf certificate for one party, usable both as a TLS
  client and server (a party dials some peers and accepts others), whose
  subjectAltName entries are the identities the other parties' configs expect
  (``<role>.mpcactors.test`` by default; IP addresses become IP SANs);
* :func:`inspect_certificate` reports what operators need when a handshake fails:
  SAN, validity, SHA-256 fingerprint and issuer, and the pin a config may set for
  the certificate (:func:`parse_pin`).

Private keys are created with mode ``0600`` (never world-readable, not even briefly)
and are never overwritten unless asked.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import ConfigError

__all__ = [
    "DEFAULT_DOMAIN",
    "PIN_PREFIX",
    "CertificateInfo",
    "default_identity",
    "init_ca",
    "inspect_certificate",
    "issue_certificate",
    "key_permission_problem",
    "parse_pin",
    "pin_of",
]

#: Test identities are ``<role>.mpcactors.test`` (``.test`` is reserved, RFC 2606).
DEFAULT_DOMAIN = "mpcactors.test"
#: Certificates start this much in the past, so a few minutes of clock skew between
#: the host that issued them and the hosts that check them does not matter.
_BACKDATE = datetime.timedelta(minutes=10)


def default_identity(role: str) -> str:
    """The SAN a test certificate for ``role`` carries: ``<role>.mpcactors.test``."""
    return f"{role}.{DEFAULT_DOMAIN}"


#: A pin (``[peers.NAME] fingerprint``) is this and the certificate's SHA-256 in hex.
PIN_PREFIX = "sha256:"


def parse_pin(text: str) -> str:
    """``text`` as a pin: ``sha256:`` and 64 lower-case hex digits.

    Colons between the bytes (as fingerprints are shown) and upper case are accepted.

    Raises:
        ValueError: ``text`` is not a SHA-256 fingerprint; the message says what is expected.
    """
    prefix, sep, digits = text.partition(":")
    digits = digits.replace(":", "").lower()
    if not sep or prefix.lower() != PIN_PREFIX[:-1] or len(digits) != 64 or not set(digits) <= set("0123456789abcdef"):
        raise ValueError(f"must be \"sha256:\" and the 64 hex digits of the certificate's SHA-256 fingerprint, got {text!r}")
    return PIN_PREFIX + digits


def pin_of(fingerprint: str) -> str:
    """The pin for a fingerprint as shown (SHA-256, hex with colons)."""
    return parse_pin(PIN_PREFIX + fingerprint)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _general_name(identity: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(identity))
    except ValueError:
        return x509.DNSName(identity)


def _write_new(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    """Create ``path`` with ``mode`` from the start (no window with a wider mode)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; refusing to overwrite it (use --force)") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # O_CREAT's mode is masked by the umask; an existing file keeps its mode


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, *, overwrite: bool) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_new(path, pem, mode=0o600, overwrite=overwrite)


def _write_certificate(path: Path, certificate: x509.Certificate, *, overwrite: bool) -> None:
    _write_new(path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644, overwrite=overwrite)


def init_ca(
    directory: str | os.PathLike[str],
    *,
    name: str = "mpcactors test CA",
    days: int = 365,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Create ``DIR/ca.crt`` and ``DIR/ca.key`` (0600). Returns their paths.

    Raises:
        ConfigError: a file exists and ``overwrite`` is false, or ``days`` < 1.
    """
    if days < 1:
        raise ConfigError(f"a CA must be valid for at least one day, not {days}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if not overwrite:
        for path in (cert_path, key_path):
            if path.exists():
                raise ConfigError(f"{path} already exists; refusing to overwrite it (use --force)")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key, overwrite=overwrite)
    _write_certificate(cert_path, certificate, overwrite=overwrite)
    return cert_path, key_path


def _load_ca(ca_certificate: Path, ca_key: Path) -> tuple[x509.Certificate, Any]:
    try:
        certificate = x509.load_pem_x509_certificate(ca_certificate.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"CA certificate {ca_certificate} does not exist (create one with `mpcactors certs init`)") from None
    except ValueError:
        raise ConfigError(f"{ca_certificate} is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(f"CA key {ca_key} does not exist") from None
    except (ValueError, TypeError):
        raise ConfigError(f"{ca_key} is not an unencrypted PEM private key") from None
    if key.public_key().public_numbers() != certificate.public_key().public_numbers():  # type: ignore[union-attr]
        raise ConfigError(f"{ca_key} is not the key of {ca_certificate}")
    return certificate, key


def issue_certificate(
    directory: str | os.PathLike[str],
    *,
    name: str,
    identities: Sequence[str],
    ca_certificate: str | os.PathLike[str],
    ca_key: str | os.PathLike[str],
    days: int = 90,
    overwrite: bool = False,
    not_before: datetime.datetime | None = None,
) -> tuple[Path, Path]:
    """Issue ``DIR/<name>.crt`` and ``DIR/<name>.key`` (0600) signed by the CA.

    Args:
        name: file stem, usually the role.
        identities: the subjectAltName entries (DNS names or IP addresses); the first
            is also the subject's common name. Other parties map these to our role.
        days: validity from now (``not_before`` shifts the start, for tests of
            expired certificates).

    Raises:
        ConfigError: bad CA files, no identities, or an existing file.
    """
    if not identities:
        raise ConfigError("a certificate needs at least one identity (SAN)")
    if days < 1:
        raise ConfigError(f"a certificate must be valid for at least one day, not {days}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    if not overwrite:
        for path in (cert_path, key_path):
            if path.exists():
                raise ConfigError(f"{path} already exists; refusing to overwrite it (use --force)")
    issuer, issuer_key = _load_ca(Path(ca_certificate), Path(ca_key))
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    start = (not_before or _now()) - _BACKDATE
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identities[0])]))
        .issuer_name(issuer.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _BACKDATE + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_general_name(i) for i in identities]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    _write_key(key_path, key, overwrite=overwrite)
    _write_certificate(cert_path, certificate, overwrite=overwrite)
    return cert_path, key_path


@dataclass(frozen=True)
class CertificateInfo:
    """The public facts about one certificate that matter when a handshake fails."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime
    fingerprint: str  # SHA-256 of the DER encoding, hex with colons (as the TLS transport logs it)
    serial: int
    is_ca: bool

    @property
    def pin(self) -> str:
        """What ``[peers.NAME] fingerprint`` must say to pin this certificate."""
        return pin_of(self.fingerprint)

    def days_left(self, now: datetime.datetime | None = None) -> float:
        return (self.not_after - (now or _now())).total_seconds() / 86400

    def status(self, now: datetime.datetime | None = None) -> str:
        now = now or _now()
        if now < self.not_before:
            return f"NOT YET VALID (starts {self.not_before:%Y-%m-%d %H:%M} UTC; check the clocks)"
        if now > self.not_after:
            return f"EXPIRED {-self.days_left(now):.0f} days ago"
        left = self.days_left(now)
        return f"valid, {left:.0f} days left" + (" (renew soon)" if left < 14 else "")

    def describe(self, now: datetime.datetime | None = None) -> str:
        lines = [
            f"subject:     {self.subject}",
            f"SAN:         {', '.join(self.sans) or '(none)'}",
            f"issuer:      {self.issuer}",
            f"valid from:  {self.not_before:%Y-%m-%d %H:%M:%S} UTC",
            f"valid until: {self.not_after:%Y-%m-%d %H:%M:%S} UTC",
            f"status:      {self.status(now)}",
            f"SHA-256:     {self.fingerprint}",
            f"serial:      {self.serial:x}",
            f"CA:          {'yes' if self.is_ca else 'no'}",
        ]
        if not self.is_ca:  # a pin names the party's own certificate, never its CA
            lines += ["# to pin this certificate, paste under [peers.<role>] in the other parties' configs:",
                      f"fingerprint = \"{self.pin}\""]
        return "\n".join(lines)

    def document(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "sans": list(self.sans),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "fingerprint_sha256": self.fingerprint,
            "serial": f"{self.serial:x}",
            "is_ca": self.is_ca,
            "status": self.status(),
        }


def _info(certificate: x509.Certificate) -> CertificateInfo:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(str(v) for v in san.get_values_for_type(x509.DNSName)) + tuple(
            str(v) for v in san.get_values_for_type(x509.IPAddress)
        )
    except x509.ExtensionNotFound:
        sans = ()
    try:
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    fingerprint = ":".join(f"{b:02X}" for b in certificate.fingerprint(hashes.SHA256()))
    return CertificateInfo(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        sans=sans,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        fingerprint=fingerprint,
        serial=certificate.serial_number,
        is_ca=is_ca,
    )


def inspect_certificate(path: str | os.PathLike[str]) -> list[CertificateInfo]:
    """Every certificate in a PEM file (a chain file holds several), leaf first.

    Raises:
        ConfigError: the file is missing or holds no PEM certificate.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror})") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{path} holds no PEM certificate") from None
    return [_info(c) for c in certificates]


def key_permission_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a private key file is too open, or ``None``. POSIX only (like ssh's check)."""
    if os.name != "posix":
        return None
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        return (
            f"permissions {mode:04o} are too open: the private key must not be accessible by group or "
            f"others (run: chmod 600 {os.fspath(path)})"
        )
    return None
