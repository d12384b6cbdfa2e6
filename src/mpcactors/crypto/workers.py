"""Secret-key Paillier work in worker processes: the one door for secret material.

A data party's most expensive secret-key work (owner encryption of its table, step 3,
and decryption of its masked rows, step 6) parallelises across processes, because
gmpy2 holds the GIL. A worker process needs the key to do it, and
:class:`~mpcactors.crypto.paillier.SecretKey` refuses pickling on purpose. This
module is the only place where Paillier secret material crosses a process boundary:

* :func:`secret_key_handoff` takes exactly ``(n, h, p, q)`` out of a live key into a
  :class:`SecretKeyHandoff`. It is the callable trio-parallel runs once in each new
  worker before any job (its ``init``): it rebuilds the key there and installs it in
  this module's per-process registry, keyed by the public-key fingerprint.
* :func:`decrypt_batch` and :func:`encrypt_batch` are the jobs: they look the key up
  by fingerprint and return the worker's process id with the results, so the
  dispatcher knows which processes held the key. :func:`encrypt_under_batch` encrypts
  under another party's public key in the same workers, for plaintexts that are
  themselves secret (a data party's step-5 masks, its additive shares).

Why this is acceptable: the worker is a child process on the same machine, run by the
same user (the same trust domain as the parent, which holds the key anyway); the
material travels over a private pipe between the two, never over a network or to
disk. The handoff is revoked (it refuses further pickling) when the worker scope
closes, and the scope is closed at the key-deletion step: then every worker process
has exited, which frees its memory to the kernel (which zero-fills pages before any
other process can get them), stronger than the in-process :meth:`SecretKey.destroy`.
The trio side, which opens and closes that scope, is
:mod:`mpcactors.actors.secret_pool`; a test proves that no worker process outlives it.

The processes exchange the handoff and the jobs through trio-parallel, which pickles
them (the standard library's ``pickle``, between a parent and its own child). The
project's no-pickle rule is about data from peers and data at rest; this channel
carries nothing from a peer and is never exposed outside the two processes.

No trio here: this module runs inside the worker, which should start fast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..errors import KeyDestroyedError
from .paillier import (
    PublicKey,
    SecretKey,
    _ciphertext_values,
    _plaintext_ints,
    encrypt_raw,
)

__all__ = [
    "SecretKeyHandoff",
    "checked_ciphertexts",
    "checked_plaintexts",
    "decrypt_batch",
    "encrypt_batch",
    "encrypt_under_batch",
    "installed_fingerprints",
    "secret_key_handoff",
]

#: In a worker process: the installed secret keys by public-key fingerprint. Stays
#: empty in the parent (nothing there installs into it).
_installed: dict[str, SecretKey] = {}


def _rebuild_handoff(fingerprint: str, n: int, h: int, p: int, q: int) -> SecretKeyHandoff:
    """Unpickling hook of :class:`SecretKeyHandoff` (runs in the worker)."""
    return SecretKeyHandoff(fingerprint, (n, h, p, q))


class SecretKeyHandoff:
    """Carries ``(n, h, p, q)`` of one secret key into worker processes, once each.

    Make one with :func:`secret_key_handoff`. Calling it (trio-parallel does, in each
    new worker) installs the key in that process and drops the handoff's own copy.
    :meth:`revoke` drops the parent's copy; afterwards pickling raises
    :class:`~mpcactors.errors.KeyDestroyedError`, so no new worker can receive it.
    ``repr`` shows only the fingerprint.
    """

    __slots__ = ("_fields", "fingerprint")

    def __init__(self, fingerprint: str, fields: tuple[int, int, int, int]) -> None:
        """Internal: use :func:`secret_key_handoff`."""
        self.fingerprint = fingerprint
        self._fields: tuple[int, int, int, int] | None = fields

    @property
    def revoked(self) -> bool:
        """Whether this copy no longer holds the material (revoked or already installed)."""
        return self._fields is None

    def revoke(self) -> None:
        """Drop the material held by this object; idempotent."""
        self._fields = None

    def __call__(self) -> bool:
        """Install the key in this process (trio-parallel's worker ``init``).

        Raises:
            KeyDestroyedError: this handoff was revoked or already used.
            ValueError: the material does not form a key with this fingerprint.
        """
        fields = self._fields
        if fields is None:
            raise KeyDestroyedError("the secret-key handoff was revoked or already used")
        self._fields = None
        n, h, p, q = fields
        key = SecretKey(PublicKey(n, h), p, q)
        if key.public.fingerprint() != self.fingerprint:
            key.destroy()
            raise ValueError("secret-key handoff does not match its fingerprint")
        _installed[self.fingerprint] = key
        return True

    def __reduce__(self) -> Any:
        fields = self._fields
        if fields is None:
            raise KeyDestroyedError("the secret-key handoff was revoked and cannot be sent")
        return (_rebuild_handoff, (self.fingerprint, *fields))

    def __repr__(self) -> str:
        state = "revoked" if self._fields is None else "live"
        return f"<SecretKeyHandoff fingerprint={self.fingerprint} {state}>"


def secret_key_handoff(secret: SecretKey) -> SecretKeyHandoff:
    """Take the minimal material of ``secret`` out for worker processes (see module doc).

    The only function that lets Paillier secret material leave its process; use it
    only through :func:`mpcactors.actors.secret_pool.open_secret_key_workers`, which
    revokes the handoff and ends every worker when its scope closes.

    Raises:
        KeyDestroyedError: the key was destroyed.
    """
    public = secret.public
    return SecretKeyHandoff(public.fingerprint(), (public.n, public.h, secret.p, secret.q))


def installed_fingerprints() -> list[str]:
    """Fingerprints of the keys installed in this process (empty outside workers)."""
    return sorted(_installed)


def _key(fingerprint: str) -> SecretKey:
    try:
        return _installed[fingerprint]
    except KeyError:
        raise KeyDestroyedError(
            f"no Paillier secret key {fingerprint} is installed in this worker process"
        ) from None


def decrypt_batch(
    fingerprint: str, values: Sequence[int], below_half_p: bool, first_position: int
) -> tuple[int, list[int]]:
    """Job: :meth:`SecretKey.decrypt_raw` of the installed key; returns ``(pid, plaintexts)``.

    ``first_position`` is the batch's offset in the caller's list, so error messages
    name positions in that list.
    """
    key = _key(fingerprint)
    return os.getpid(), key._decrypt_batch(
        values, below_half_p=below_half_p, first_position=first_position
    )


def encrypt_batch(
    fingerprint: str, plaintexts: Sequence[int], first_position: int
) -> tuple[int, list[int]]:
    """Job: owner :meth:`SecretKey.encrypt_raw` of the installed key; ``(pid, ciphertexts)``."""
    key = _key(fingerprint)
    return os.getpid(), key._encrypt_batch(plaintexts, first_position)


def encrypt_under_batch(
    public_wire: dict[str, int], plaintexts: Sequence[int], first_position: int
) -> tuple[int, list[int]]:
    """Job: :func:`~mpcactors.crypto.paillier.encrypt_raw` under ``public_wire``; ``(pid, ciphertexts)``.

    Public-key work, but on secret plaintexts: it runs in the scoped workers, which
    end with the scope, never in a pool that outlives it.
    """
    return os.getpid(), encrypt_raw(public_wire, plaintexts)


def checked_ciphertexts(public: PublicKey, values: Sequence[Any]) -> list[int]:
    """Validate raw ciphertexts in the parent before dispatch; return them as ints.

    Raises:
        ValueError | TypeError: as :meth:`SecretKey.decrypt_raw` (position named).
    """
    return [int(c) for c in _ciphertext_values(values, public._n, public._nsquare)]


def checked_plaintexts(public: PublicKey, values: Sequence[Any]) -> list[int]:
    """Validate plaintexts in the parent before dispatch; return them as ints.

    Raises:
        ValueError | TypeError: as :meth:`SecretKey.encrypt_raw` (position named).
    """
    return _plaintext_ints(values, public._half)
