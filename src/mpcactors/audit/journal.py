"""The audit file on disk: append a record, check a file, and the keys that sign (the I/O edge).

An audit file is JSON lines, one record per run, only ever appended to
(:func:`append`, under an exclusive lock, fsynced). Reading it back is
:func:`verify_file` (the whole chain and every signature) or :func:`read_records`
(for display, no checks).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..certs import inspect_certificate, key_permission_problem
from ..errors import ConfigError
from .record import GENESIS, Signer, Verdict, record_hash, seal, verify_lines

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: appends are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = ["append", "load_signer", "public_keys", "read_records", "simulation_signer", "verify_file"]

_BLOCK = 1 << 16


def _last_line(handle: Any) -> bytes | None:
    """The file's last line (with its ``\\n`` if it has one), reading backwards from the end."""
    position = handle.seek(0, os.SEEK_END)
    if position == 0:
        return None
    tail = b""
    while position > 0:
        size = min(_BLOCK, position)
        position -= size
        handle.seek(position)
        tail = handle.read(size) + tail
        cut = tail.rfind(b"\n", 0, len(tail) - 1)
        if cut >= 0:
            return tail[cut + 1 :]
    return tail


def append(path: Path, fields: Mapping[str, Any], signer: Signer) -> bytes:
    """Append the record ``fields`` to the audit file at ``path`` (created if absent); return its line.

    Raises:
        ConfigError: the file's last record is damaged (nothing is appended: a record
            after it could not chain to it), or the file cannot be written.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open the audit file ({exc.strerror})") from None
    with os.fdopen(fd, "r+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)  # one appender at a time; released on close
        last = _last_line(handle)
        seq, previous = 1, GENESIS
        if last is not None:
            try:
                if not last.endswith(b"\n"):
                    raise ValueError
                seq = int(json.loads(last)["seq"]) + 1
            except (ValueError, KeyError, TypeError):
                raise ConfigError(
                    f"{path}: the last record is damaged, so no record can chain to it; nothing was appended "
                    f"(run: mpcactors audit verify {path})"
                ) from None
            previous = record_hash(last[:-1])
        line = seal(fields, seq=seq, previous=previous, signer=signer)
        handle.write(line + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return line


def _lines(path: Path) -> Iterator[bytes]:
    """The audit file's lines, each with its ``\\n`` (the last may lack it).

    Raises:
        ConfigError: the file does not exist or cannot be read.
    """
    try:
        with open(path, "rb") as handle:
            yield from handle
    except FileNotFoundError:
        raise ConfigError(f"{path}: the audit file does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not an audit file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the audit file ({exc.strerror})") from None


def verify_file(path: Path, keys: Sequence[Any] = ()) -> Verdict:
    """Check every record of an audit file (see :class:`~.record.ChainChecker`).

    Raises:
        ConfigError: the file does not exist or cannot be read.
    """
    return verify_lines(_lines(path), keys)


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def read_records(path: Path) -> list[dict[str, Any] | None]:
    """Every record of an audit file, ``None`` for a line that is not a JSON object (no checks)."""
    return [_record(line) for line in _lines(path)]


def public_keys(paths: Sequence[Path]) -> list[Any]:
    """The public keys in PEM files, each a certificate (its key) or a public key.

    Raises:
        ConfigError: naming the ``--cert`` file that is missing or holds neither.
    """
    keys = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"--cert {path}: cannot read it ({exc.strerror})") from None
        try:
            keys.append(x509.load_pem_x509_certificate(data).public_key())
            continue
        except ValueError:
            pass
        try:
            keys.append(serialization.load_pem_public_key(data))
        except (ValueError, TypeError):
            raise ConfigError(f"--cert {path}: neither a PEM certificate nor a PEM public key") from None
    return keys


def _private_key(path: Path) -> Any:
    problem = key_permission_problem(path)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the key ({exc.strerror})") from None
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: not an unencrypted PEM private key") from None


def load_signer(key: Path, certificate: Path) -> Signer:
    """A deployed party's signer: its TLS private key, named by its certificate's fingerprint."""
    try:
        return Signer(_private_key(key), certificate=inspect_certificate(certificate)[0].pin)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def simulation_signer(directory: Path, party: str) -> Signer:
    """A simulated party's signer: ``DIR/keys/<party>.key`` (Ed25519, 0600), made on first use.

    Its public half is written next to it, ``DIR/keys/<party>.pub`` (PEM), for
    ``mpcactors audit verify --cert``.
    """
    keys = directory / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    key_path, public_path = keys / f"{party}.key", keys / f"{party}.pub"
    if key_path.exists():
        key = _private_key(key_path)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    if not public_path.exists():
        public_path.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    try:
        return Signer(key)
    except ValueError as exc:
        raise ConfigError(f"{key_path}: {exc}") from None
