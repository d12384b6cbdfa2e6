"""The audit record's core, free of I/O: canonical bytes, the hash chain, signatures.

A record is a JSON object written as its *canonical bytes*: sorted keys, no whitespace,
ASCII only (:func:`canonical`). Its ``previous`` field is the SHA-256 of the record
before it (of its canonical bytes, signature included), or :data:`GENESIS` for the
first; its ``signature`` covers the canonical bytes of everything else. So changing,
removing, inserting or reordering a record breaks the chain at that record or the
next, and only the holder of the signing key can write a record that verifies.

:func:`seal` makes the next line of a file; :class:`ChainChecker` is fed a file's
lines in order and says where the chain breaks first (:class:`Break`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

__all__ = [
    "GENESIS",
    "VERSION",
    "Break",
    "ChainChecker",
    "Signer",
    "Verdict",
    "canonical",
    "digest_of",
    "key_fingerprint",
    "record_hash",
    "seal",
    "verify_lines",
]

#: The record format this module writes and reads.
VERSION = 1
#: ``previous`` of a file's first record.
GENESIS = "0" * 64

#: The fields every record has whatever its version; the rest is what the party reports.
_CHAIN_FIELDS = ("version", "seq", "previous", "signer", "signature")

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def canonical(document: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a record: JSON, sorted keys, no whitespace, ASCII."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def digest_of(value: Any) -> str:
    """SHA-256 (hex) of ``value``'s canonical JSON: how a record names an output without holding it."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def record_hash(line: bytes) -> str:
    """SHA-256 (hex) of one record's canonical bytes (a file's line without its newline)."""
    return hashlib.sha256(line).hexdigest()


def _spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[no-any-return]


def key_fingerprint(public_key: Any) -> str:
    """``sha256:<hex>`` of a public key's SubjectPublicKeyInfo (DER): names a signer."""
    return "sha256:" + hashlib.sha256(_spki(public_key)).hexdigest()


def _algorithm(public_key: Any) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ecdsa-sha256"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa-pss-sha256"
    raise ValueError(f"{type(public_key).__name__} keys cannot sign audit records (ECDSA, Ed25519 or RSA can)")


def _verify(public_key: Any, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            public_key.verify(signature, data, _PSS, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


class Signer:
    """A private key that signs records (the party's TLS key, or a simulation key).

    ``certificate`` is the ``sha256:`` fingerprint of the certificate that holds the
    public half, if there is one; it is recorded so a reader knows which to check against.
    """

    def __init__(self, private_key: Any, *, certificate: str | None = None) -> None:
        self.private_key = private_key
        self.algorithm = _algorithm(private_key.public_key())
        self.certificate = certificate

    def document(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        return {
            "algorithm": self.algorithm,
            "public_key": base64.b64encode(_spki(public)).decode(),
            "key": key_fingerprint(public),
            "certificate": self.certificate,
        }

    def sign(self, data: bytes) -> bytes:
        key = self.private_key
        if self.algorithm == "ecdsa-sha256":
            return key.sign(data, ec.ECDSA(hashes.SHA256()))  # type: ignore[no-any-return]
        if self.algorithm == "ed25519":
            return key.sign(data)  # type: ignore[no-any-return]
        return key.sign(data, _PSS, hashes.SHA256())  # type: ignore[no-any-return]


def seal(fields: Mapping[str, Any], *, seq: int, previous: str, signer: Signer) -> bytes:
    """The canonical bytes of the record ``fields`` as number ``seq`` after ``previous``, signed."""
    clash = sorted(set(fields) & set(_CHAIN_FIELDS))
    if clash:
        raise ValueError(f"{clash} are the chain's fields, not a party's")
    body = {**fields, "version": VERSION, "seq": seq, "previous": previous, "signer": signer.document()}
    return canonical({**body, "signature": signer.sign(canonical(body)).hex()})


@dataclass(frozen=True)
class Break:
    """Where a file stops verifying: its record ``number`` (1-based) and why."""

    number: int
    reason: str

    def __str__(self) -> str:
        return f"record {self.number}: {self.reason}"


@dataclass
class Verdict:
    """What a whole file's check found."""

    records: int = 0
    #: SHA-256 of the last good record (what the next record would chain to)
    head: str = GENESIS
    #: the ``sha256:`` fingerprints of the keys that signed the good records, in order of appearance
    signers: list[str] = field(default_factory=list)
    broken: Break | None = None

    @property
    def intact(self) -> bool:
        return self.broken is None


class ChainChecker:
    """Fed a file's lines in order; stops at the first that does not verify.

    ``keys``: the public keys the records must be signed with (from ``--cert``); when
    empty, each record is checked against the key it names, which proves that nothing
    was changed since it was signed, but not by whom.
    """

    def __init__(self, keys: Sequence[Any] = ()) -> None:
        self.keys = {_spki(key): key for key in keys}
        self.verdict = Verdict()

    def feed(self, line: bytes) -> Break | None:
        """Check the next line (with its ``\\n``; the file's last line may lack it)."""
        verdict = self.verdict
        if verdict.broken is not None:
            return verdict.broken
        number = verdict.records + 1
        reason = self._problem(line, number)
        if reason is not None:
            verdict.broken = Break(number, reason)
            return verdict.broken
        verdict.records = number
        verdict.head = record_hash(line[:-1])
        return None

    def _problem(self, line: bytes, number: int) -> str | None:
        if not line.endswith(b"\n"):
            return "incomplete: the file ends inside it (a write was cut short, or the file was cut)"
        text = line[:-1]
        try:
            record = json.loads(text)
        except ValueError:  # also not UTF-8
            return "not valid JSON"
        if not isinstance(record, dict):
            return "not a JSON object"
        try:
            again = canonical(record)
        except ValueError:
            again = b""
        if again != text:
            return "not in canonical form (sorted keys, no whitespace, ASCII)"
        missing = [name for name in _CHAIN_FIELDS if name not in record]
        if missing:
            return f"has no {', '.join(missing)}"
        if record["version"] != VERSION:
            return f"has version {record['version']!r}; this mpcactors reads version {VERSION}"
        if record["previous"] != self.verdict.head:
            if number == 1:
                return "wrong previous hash: the first record must chain to the genesis value (records were removed from the start)"
            return f"wrong previous hash: it does not chain to record {number - 1} (a record was removed, inserted or moved)"
        problem = self._signature_problem(record)
        if problem is not None:
            return problem
        if record["seq"] != number:
            return f"wrong sequence number {record['seq']!r}"
        return None

    def _signature_problem(self, record: dict[str, Any]) -> str | None:
        signer, signature = record["signer"], record["signature"]
        try:
            der = base64.b64decode(signer["public_key"], validate=True)
            embedded = serialization.load_der_public_key(der)
            algorithm = _algorithm(embedded)
        except (TypeError, KeyError, ValueError):
            return "bad signature: the signer's public key is unreadable"
        if signer.get("algorithm") != algorithm:
            return f"bad signature: algorithm {signer.get('algorithm')!r} does not fit a {algorithm} key"
        name = key_fingerprint(embedded)
        key = embedded
        if self.keys:
            if der not in self.keys:
                return f"bad signature: signed with key {name}, not the given certificate's"
            key = self.keys[der]
        try:
            value = bytes.fromhex(signature) if isinstance(signature, str) else None
        except ValueError:
            value = None
        if value is None or value.hex() != signature:
            return "bad signature: not lower-case hex"
        body = {k: v for k, v in record.items() if k != "signature"}
        if not _verify(key, value, canonical(body)):
            return "bad signature: the record is not what was signed"
        if name not in self.verdict.signers:
            self.verdict.signers.append(name)
        return None


def verify_lines(lines: Iterable[bytes], keys: Sequence[Any] = ()) -> Verdict:
    """Check a whole file given as its lines (each with its ``\\n``)."""
    checker = ChainChecker(keys)
    for line in lines:
        if checker.feed(line) is not None:
            break
    return checker.verdict
