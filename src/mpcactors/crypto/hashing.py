"""Step 2: the joint HMAC key of hospital and insurer, and keyed hashing of ids.

Hospital and insurer each draw a 256-bit :func:`contribution`, send it to the other
over their direct link (never via the TTP) and both derive the same key as the sum
of the two contributions modulo ``2**256``. The sum is order-independent, so neither
side has to agree on who is "first", and it is uniform as long as *one* of the two
contributions is: a party cannot bias the key by choosing its own contribution.

Each party then replaces every id by ``HMAC-SHA256(key, encoding(id))``. The TTP,
which never sees the key, can match the hashed ids of the two parties but cannot run
a dictionary attack over the (low-entropy) id space, as it could against an unkeyed or
short-salted hash (the TNO pilot hashed ``sha256(id || str(r_A + r_B))`` with 64-bit
salts).

The HMAC input is :data:`DOMAIN_TAG` followed by the 8-byte big-endian length of the
UTF-8 encoded id and then those bytes. The encoding is injective: two different ids
never produce the same HMAC input, so they can only collide if SHA-256 does. The tag
separates these digests from any other use of the same key.

No trio, no I/O, no logging: this is a plain value type plus functions.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import unicodedata
from collections.abc import Callable, Iterable

from ..errors import ConfigError, KeyDestroyedError, PeerProtocolError

__all__ = [
    "CONTRIBUTION_BYTES",
    "DIGEST_BYTES",
    "DOMAIN_TAG",
    "IdFold",
    "JointKey",
    "contribution",
    "id_normaliser",
    "normalise_id",
]

#: size of one party's key contribution and of the joint key (256 bits)
CONTRIBUTION_BYTES = 32
#: size of one hashed id (HMAC-SHA256)
DIGEST_BYTES = 32
#: domain-separation prefix of every HMAC input (versioned: change it and ids stop matching)
DOMAIN_TAG = b"mpcactors/step2/id-hmac-sha256/v1\x00"

_SHA256_BLOCK = 64  # bytes; HMAC pads or hashes the key to this size (RFC 2104)


def contribution() -> bytes:
    """One party's random key contribution: 32 bytes from the OS CSPRNG (``secrets``)."""
    return secrets.token_bytes(CONTRIBUTION_BYTES)


class IdFold(str, enum.Enum):
    """How :func:`normalise_id` treats letter case; both data parties must use the same.

    ``CASEFOLD`` (the default): ids that differ only in case are one person.
    ``NONE``: case is kept, for case-sensitive pseudonyms (base64, hex tokens of other
    systems), where folding would join distinct persons.
    """

    CASEFOLD = "casefold"
    NONE = "none"


def _canonical_casefold(raw: str) -> str:
    if raw.isascii():  # the common case: NFC is the identity and casefold is lower
        return raw.strip().lower()
    folded = unicodedata.normalize("NFC", raw).strip().casefold()
    return unicodedata.normalize("NFC", folded)


def _canonical_keep_case(raw: str) -> str:
    if raw.isascii():
        return raw.strip()
    return unicodedata.normalize("NFC", raw).strip()


_NORMALISERS: dict[IdFold, Callable[[str], str]] = {
    IdFold.CASEFOLD: _canonical_casefold,
    IdFold.NONE: _canonical_keep_case,
}


def id_normaliser(fold: IdFold | str = IdFold.CASEFOLD) -> Callable[[str], str]:
    """:func:`normalise_id` for one ``fold``, as a one-argument function (for ``map``).

    Raises:
        ConfigError: ``fold`` is not one of the :class:`IdFold` values (names them).
    """
    try:
        return _NORMALISERS[IdFold(fold)]
    except ValueError:
        allowed = ", ".join(repr(f.value) for f in IdFold)
        raise ConfigError(f"id fold must be one of {allowed}, got {fold!r}") from None


def normalise_id(raw: str, fold: IdFold | str = IdFold.CASEFOLD) -> str:
    """The canonical form of an id, as both data parties must compute it.

    Hospital and insurer hash their ids independently, and an HMAC is sensitive to
    every byte: if one site writes ``"AB123 "`` or ``"ab123"`` and the other
    ``"AB123"``, the patient silently drops out of the intersection, with no error
    anywhere. So both parties map each id to one canonical string, in this order:

    1. Unicode NFC (canonical composition): a precomposed ``"é"`` equals ``"e"`` plus
       combining acute; canonical singletons map too (KELVIN SIGN to ``"K"``, ANGSTROM
       SIGN to ``"Å"``). NFC is *not* NFKC: compatibility forms stay distinct
       (fullwidth ``"１２３"`` is not ``"123"``, the ligature ``"ﬁ"`` is not ``"fi"``
       unless case folding expands it, see 3).
    2. Surrounding whitespace stripped, every character ``str.isspace`` accepts (tab,
       newline, NO-BREAK SPACE, IDEOGRAPHIC SPACE, ...). A ZERO WIDTH SPACE is not
       whitespace and stays; internal whitespace and punctuation stay (``"AB 123"`` is
       not ``"AB123"``); digits are characters (``"007"`` is not ``"7"``).
    3. With ``fold="casefold"`` (default): ``str.casefold``, Unicode full case folding
       (stronger than ``lower``: ``"ß"`` and ``"ẞ"`` become ``"ss"``, final ``"ς"`` and
       capital ``"Σ"`` become ``"σ"``, ``"ﬁ"`` becomes ``"fi"``), then NFC again because
       folding can decompose. With ``fold="none"`` case is kept.

    The result is idempotent. An empty result is returned as is; the table loader
    rejects it. Harmonising other conventions is the data owners' job.

    Raises:
        ConfigError: ``fold`` is not an :class:`IdFold` value.
    """
    if fold is IdFold.CASEFOLD:  # the default, per id: skip the lookup
        return _canonical_casefold(raw)
    return id_normaliser(fold)(raw)


def _check_contribution(value: object, *, whose: str, error: type[Exception]) -> None:
    """Raise ``error`` naming ``whose`` contribution it is and its size unless it is 32 bytes."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) == CONTRIBUTION_BYTES:
            return
        got = f"{len(value)} bytes"
    else:
        got = f"a {type(value).__name__}"
    raise error(f"{whose} key contribution must be {CONTRIBUTION_BYTES} bytes, got {got}")


class JointKey:
    """The step-2 HMAC key shared by hospital and insurer, usable until destroyed.

    Build it with :meth:`from_contributions`. The object keeps only the two SHA-256
    states that HMAC derives from the key (``key XOR ipad`` and ``key XOR opad``,
    RFC 2104), which is what makes hashing a million ids take about a second.
    :meth:`destroy` drops them; every later use raises :class:`KeyDestroyedError`.

    The key and its two pads only ever exist in ``bytearray`` buffers that are zeroed
    once the SHA-256 states are built; ``destroy`` drops the states, and accidental reuse
    fails loudly. That is what the protocol's "delete the key after step 2" rule needs in
    a semi-honest setting; the states themselves are immutable and Python cannot wipe
    them (``docs/threat-model.md``).

    The key never leaves the object: ``repr`` shows no key material, and copying or
    pickling raises :class:`TypeError` (a pickled key would be a copy on disk).
    """

    __slots__ = ("__weakref__", "_inner", "_outer")  # weakref: tests prove deletion

    def __init__(self, *, _key: bytearray) -> None:
        if len(_key) != CONTRIBUTION_BYTES:  # internal constructor; guards our own bugs
            raise ValueError("internal: the joint key must be 32 bytes")
        pad = bytearray(b"\x36" * _SHA256_BLOCK)  # the key, zero-padded, XOR ipad
        try:
            for i, b in enumerate(_key):
                pad[i] = b ^ 0x36
            self._inner: hashlib._Hash | None = hashlib.sha256(pad)
            self._inner.update(DOMAIN_TAG)
            for i in range(_SHA256_BLOCK):
                pad[i] ^= 0x36 ^ 0x5C
            self._outer: hashlib._Hash | None = hashlib.sha256(pad)
        finally:
            pad[:] = bytes(_SHA256_BLOCK)

    @classmethod
    def from_contributions(cls, mine: bytes, *theirs: bytes) -> JointKey:
        """The joint key: the sum of every data party's contribution mod ``2**256``.

        Contributions are big-endian 32-byte integers. The sum is symmetric, so every
        party gets the same key whatever order it passes the contributions in.

        Raises:
            ValueError: ``mine`` is not 32 bytes (our own bug), or no peer contribution.
            PeerProtocolError: a contribution from a peer is not 32 bytes.
        """
        _check_contribution(mine, whose="our own", error=ValueError)
        if not theirs:
            raise ValueError("the joint key needs at least one peer's contribution")
        for contribution in theirs:
            _check_contribution(contribution, whose="the peer's", error=PeerProtocolError)
        key = bytearray(CONTRIBUTION_BYTES)  # the sum, byte by byte: never an int or bytes
        try:
            carry = 0
            for i in reversed(range(CONTRIBUTION_BYTES)):
                carry += mine[i] + sum(contribution[i] for contribution in theirs)
                key[i] = carry & 0xFF
                carry >>= 8
            return cls(_key=key)
        finally:
            key[:] = bytes(CONTRIBUTION_BYTES)

    @property
    def destroyed(self) -> bool:
        """Whether :meth:`destroy` has been called."""
        return self._inner is None

    def destroy(self) -> None:
        """Forget the key. Idempotent. Every later :meth:`hash_ids` raises."""
        self._inner = None
        self._outer = None

    def hash_ids(self, ids: Iterable[str]) -> list[bytes]:
        """``HMAC-SHA256(key, DOMAIN_TAG || len(id) || id)`` of every id, in order.

        ``ids`` must already be in canonical form (:func:`normalise_id`); this
        function hashes exactly the UTF-8 bytes it is given, so that a caller that
        normalised once does not pay for it twice. The length is the byte length
        of the UTF-8 encoding as an 8-byte big-endian integer. Returns 32-byte digests.

        Raises:
            KeyDestroyedError: the key has been destroyed.
            TypeError: an id is not a ``str``.
            UnicodeEncodeError: an id contains a lone surrogate (not valid Unicode text).
        """
        inner, outer = self._inner, self._outer
        if inner is None or outer is None:
            raise KeyDestroyedError("the step-2 HMAC key was used after it was destroyed")
        inner_copy, outer_copy = inner.copy, outer.copy
        out: list[bytes] = []
        append = out.append
        for position, id_ in enumerate(ids):
            try:
                data = id_.encode("utf-8")
            except AttributeError:
                raise TypeError(
                    f"id at position {position} is a {type(id_).__name__}, not a str"
                ) from None
            h = inner_copy()
            h.update(len(data).to_bytes(8, "big") + data)
            o = outer_copy()
            o.update(h.digest())
            append(o.digest())
        return out

    def __repr__(self) -> str:
        return f"<JointKey destroyed={self.destroyed}>"

    def __reduce_ex__(self, protocol: object) -> object:
        raise TypeError("a JointKey cannot be pickled or copied (it holds the step-2 key)")

    def __copy__(self) -> JointKey:
        raise TypeError("a JointKey cannot be copied (it holds the step-2 key)")

    def __deepcopy__(self, memo: object) -> JointKey:
        raise TypeError("a JointKey cannot be copied (it holds the step-2 key)")
