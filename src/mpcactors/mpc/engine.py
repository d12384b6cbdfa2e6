"""A sans-I/O three-party Shamir MPC engine (steps 7 and 8).

An MPC *program* is a generator that yields one :class:`Exchange` per communication
round and is resumed with the vectors it expected::

    Program = Generator[Exchange, dict[int, list[int]], R]

The driver (an actor over a real transport, or :func:`run_local` in one process)
sends ``exchange.send[peer]`` to each peer, waits for one vector from every peer in
``exchange.expect`` and resumes the generator with ``{peer: vector}``. The program's
return value is its result. **Every party yields the same number of exchanges** (an
exchange may be empty), so a round number and label identify a message on every link.
Control flow depends only on public values (sizes, parameters, revealed bits).

Parties are the Shamir points 1 (hospital), 2 (insurer), 3 (TTP); secrets are
degree-1 sharings over ``F_p`` (any two shares reconstruct). Primitives, all
vectorised (one round per layer of the computation, whatever the vector length):

* local: :meth:`Engine.add`, :meth:`Engine.sub`, :meth:`Engine.scale`, :meth:`Engine.add_public`;
* randomness without communication (PRSS, Cramer-Damgard-Ishai with the three pairwise
  keys): :meth:`Engine.random`, :meth:`Engine.random_bounded`;
* :meth:`Engine.input`: a party shares its own values (1 element per value);
* :meth:`Engine.mul`, :meth:`Engine.dot`, :meth:`Engine.reshare`: a local degree-2
  product, then each party deals its Lagrange-weighted term along a ring, masked by a
  key shared with one peer (1 round, 3 elements per product in total; dot products
  reshare only the sum);
* :meth:`Engine.random_bits`: ``b = b1 xor b2 xor b3`` where each ``b_a`` comes from the
  key the two parties other than ``a`` share (2 rounds, 3 elements per bit, pooled);
  :meth:`Engine.random_bit_pairs` the same from a second pool, for comparisons, with the
  product of each pair (1 more round when made, off the critical path when prefetched);
  :meth:`Engine.prefetch_bits` refills both pools ahead of their use;
* :meth:`Engine.together`: two independent programs in lockstep, one exchange per round
  carrying both (rounds: the larger count instead of the sum; the same bytes);
* :meth:`Engine.mul_trunc`, :meth:`Engine.dot_trunc`: a product (or inner product) and its
  truncation in one round: the truncation's masked value is opened from degree-2 shares,
  re-randomised by a pseudo-random degree-2 sharing of zero (2 elements per value per party);
* :meth:`Engine.trunc`: Catrina-de Hoogh probabilistic truncation (error in {0, 1});
  :meth:`Engine.trunc_fast`: the same with a PRSS mask instead of random bits (error in
  {-1, 0, 1, 2}, no preprocessing); :meth:`Engine.ltz`: exact comparison with zero
  (Catrina-de Hoogh; BitLT as a log-depth tree, one product per bit pair at the first level);
* :meth:`Engine.open` (masked values inside a protocol) and :meth:`Engine.reveal`
  (outputs; recorded in :attr:`Engine.revealed`; with a :attr:`Engine.gate` installed,
  only openings it admits, each to the parties it names);
* Newton :meth:`Engine.reciprocal` and :meth:`Engine.inv_sqrt` on fixed-point values.

Security model: semi-honest, at most one corrupted party, statistical security
``2**-sigma`` for masked openings.
"""

from __future__ import annotations

import hashlib
import operator
import secrets
import struct
from collections import deque
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from ..crypto.fixedpoint import Params
from ..crypto.shamir import LAGRANGE_DEGREE2, reconstruct
from ..errors import ConfigError, KeyDestroyedError, PeerProtocolError

__all__ = ["BYTES_PER_ELEMENT", "Delivery", "Engine", "Exchange", "Gate", "Program", "run_local"]

R = TypeVar("R")
#: An MPC program: yields exchanges, is resumed with ``{peer: vector}``, returns ``R``.
Program = Generator["Exchange", dict[int, list[int]], R]

#: Wire size of one field element (the codec's fixed 24-byte big-endian width).
BYTES_PER_ELEMENT = 24
_KEY_BYTES = 16
#: Random bits are made in blocks of this many bits; a refill makes whole blocks.
_BIT_BATCH = 2048
# Nonce domains. The PRSS values (random, random_bounded, input) draw their nonces from
# one counter; the resharing masks and the two pools of random bits have counters of
# their own, in disjoint ranges (the nonce is 8 bytes). So the values a program computes
# do not depend on how many multiplications ran before them or on when a pool was
# refilled: block j of a pool is always made with the nonce of block j.
_RESHARE_NONCES = 1 << 60
_BIT_NONCES = 2 << 60
_PAIR_NONCES = 3 << 60


@dataclass(frozen=True, slots=True)
class Exchange:
    """One communication round for this party.

    Attributes:
        send: peer index -> vector of field elements (ints in ``[0, p)``) to send to that
            peer this round (may be empty).
        expect: peers this party receives exactly one vector from in this round.
        label: operation name, for statistics ("mul", "open", "trunc", "ltz", ...).
        sizes: peer -> number of elements expected from it (what :meth:`Engine.together`
            splits a combined vector by); ``None`` if the program does not say.
    """

    send: Mapping[int, list[int]]
    expect: frozenset[int]
    label: str
    sizes: Mapping[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where one :meth:`Engine.reveal` goes, as a :class:`Gate` decided.

    Attributes:
        to: the engine parties that receive the values (all three for a value that
            steers the computation); the others send their shares and receive nothing.
        keep: also keep this party's shares (or, when all three receive the values, the
            values) in :attr:`Engine.kept`, for recipients outside the computation.
    """

    to: frozenset[int]
    keep: bool = False


#: Every reveal without a gate: the values to all three parties.
EVERYONE = Delivery(frozenset((1, 2, 3)))


class Gate(Protocol):
    """Decides each opening of an analysis (the study plan's manifest, :mod:`mpcactors.plan`)."""

    def admit(self, label: str, count: int) -> Delivery:
        """Where ``count`` values labelled ``label`` go; raises if they may not be opened at all."""
        ...


# ---------------------------------------------------------------------------------
# in-memory driver
# ---------------------------------------------------------------------------------
def run_local(programs: dict[int, Generator[Exchange, dict[int, list[int]], Any]]) -> dict[int, Any]:
    """Run the parties' programs to completion in this process; return ``{party: result}``.

    Messages travel through one FIFO per directed link. A message is tagged with the
    sender's round number and label, and the receiver checks both: any disagreement
    about the round sequence, a message nobody expects, or a deadlock raises
    :class:`PeerProtocolError`.
    """
    parties = sorted(programs)
    queues: dict[tuple[int, int], deque[tuple[int, str, list[int]]]] = {
        (i, j): deque() for i in parties for j in parties if i != j
    }
    pending: dict[int, Exchange] = {}
    rounds = dict.fromkeys(parties, 0)
    results: dict[int, Any] = {}

    def advance(party: int, value: dict[int, list[int]] | None) -> None:
        try:
            exchange = programs[party].send(value)  # type: ignore[arg-type]
        except StopIteration as stop:
            results[party] = stop.value
            pending.pop(party, None)
            return
        if not isinstance(exchange, Exchange):
            raise TypeError(f"party {party} yielded {type(exchange).__name__}, not Exchange")
        for peer, vector in exchange.send.items():
            if (party, peer) not in queues:
                raise PeerProtocolError(f"party {party} sent to unknown party {peer}")
            queues[(party, peer)].append((rounds[party], exchange.label, list(vector)))
        pending[party] = exchange

    for party in parties:
        advance(party, None)
    while pending:
        progressed = False
        for party in list(pending):
            exchange = pending[party]
            if all(queues[(peer, party)] for peer in exchange.expect):
                received = {}
                for peer in exchange.expect:
                    round_no, label, vector = queues[(peer, party)].popleft()
                    if round_no != rounds[party] or label != exchange.label:
                        raise PeerProtocolError(
                            f"party {party} expected round {rounds[party]} ({exchange.label}) from "
                            f"party {peer} but got round {round_no} ({label})"
                        )
                    received[peer] = vector
                rounds[party] += 1
                advance(party, received)
                progressed = True
        if not progressed:
            raise PeerProtocolError(
                "deadlock: parties "
                + ", ".join(f"{p} (round {rounds[p]}, {pending[p].label})" for p in sorted(pending))
                + " wait for messages that were never sent"
            )
    leftover = [link for link, q in queues.items() if q]
    if leftover:
        raise PeerProtocolError(f"messages sent but never expected on links {sorted(leftover)}")
    return results


def _split_ints(buf: bytes, width: int, n: int) -> list[int]:
    """The ``n`` big-endian unsigned integers of ``width`` bytes each that make up ``buf``.

    ``struct`` cuts all the pieces in one call, which is about 2.5 times faster than a
    slice per element."""
    return list(map(int.from_bytes, struct.unpack(f"{width}s" * n, buf)))


def _division_table(p: int, d: int) -> list[int]:
    """``t`` with ``v // d + t[v % d] == v * d**-1 mod p`` for every ``v`` in ``[0, p)``.

    ``v = d q + k`` and ``k + j p = 0 mod d`` for ``j = -k / p mod d``, so
    ``(v + j p) / d = q + (k + j p) / d``, an integer below ``(p - 1 + (d - 1) p) / d < p``.
    """
    if p % d == 0:
        raise ConfigError(f"the prime must not be divisible by {d}")
    inv = pow(p, -1, d)
    return [(k + (-k * inv) % d * p) // d for k in range(d)]


# ---------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------
class Engine:
    """One party's MPC state: PRSS keys, counters, statistics, a pool of random bits.

    Every party must call the same engine methods in the same order with the same
    public arguments (the programs are deterministic), which keeps the PRF counters and
    the round sequence in step.

    Args:
        party: this party's index (1 hospital, 2 insurer, 3 TTP).
        params: the run's numeric parameters (prime, sigma, frac_bits).
        rng_seed_material: **testing only**. If given, the pairwise keys are derived from
            it instead of :mod:`secrets` (all parties must pass the same bytes).
    """

    def __init__(self, party: int, params: Params | None = None, rng_seed_material: bytes | None = None) -> None:
        if party not in (1, 2, 3):
            raise ConfigError(f"MPC party index must be 1, 2 or 3, got {party!r}")
        self.party = party
        self.params = params if params is not None else Params()
        self.prime = self.params.prime
        self.peers = tuple(j for j in (1, 2, 3) if j != party)
        self.next = party % 3 + 1
        self.prev = (party + 1) % 3 + 1
        self._seed = rng_seed_material
        self._keys: dict[int, bytes] = {}
        self._nonce = 0
        self._reshare_nonce = _RESHARE_NONCES
        # two pools of random bits: single bits (truncations) and pairs (comparisons),
        # each with the number of blocks made so far
        self._bit_pool: list[int] = []
        self._bit_blocks = 0
        self._pair_pool: list[int] = []
        self._pair_products: list[int] = []  # lo * hi of every pair in _pair_pool, in order
        self._pair_blocks = 0
        self._stats: dict[str, dict[str, int]] = {}
        self._destroyed = False
        #: plaintext outputs opened (to the parties the gate named): ``(label, count)`` per reveal
        self.revealed: list[tuple[str, int]] = []
        #: decides every reveal while installed (the actors install one per analysis)
        self.gate: Gate | None = None
        #: ``(label, clear, values)`` of every reveal a gate asked to keep: the values if
        #: all three parties received them (``clear``), else this party's shares
        self.kept: list[tuple[str, bool, list[int]]] = []
        #: masked openings inside protocols: ``(label, count)`` per opening
        self.opened: list[tuple[str, int]] = []
        p = self.prime
        # PRSS: the key shared with peer j belongs to the excluded party a = 6 - i - j;
        # my share of its contribution is r * (1 - i / a).
        self._prss_coeff = {j: (1 - party * pow(6 - party - j, -1, p)) % p for j in self.peers}
        # Every other constant of the protocols is a rational with a numerator and a
        # denominator below 4 (the points are 1, 2, 3). Multiplying a 192-bit share by a
        # full-size field element and reducing the 384-bit product costs about four times
        # a multiplication by a small integer plus an exact division by 2 or 3
        # (:meth:`_div_small`), so the hot paths use the small form; the results are the
        # same field elements.
        self._lambda = LAGRANGE_DEGREE2[party]  # degree-2 recombination weight (3, -3, 1)
        # _div_small(v, d): v // d + _div_table[d][v % d] is v / d mod p for v in [0, p)
        self._div_table = {d: _division_table(p, d) for d in (2, 3)}
        # degree-1 reconstruction with {me, next}: (next * mine - me * theirs) / (next - me)
        sign = 1 if self.next > party else -1
        self._open_num = (sign * self.next, -sign * party)
        self._open_den = sign * (self.next - party)

    # ---- lifecycle ----------------------------------------------------------------
    def setup(self) -> Program[None]:
        """Program: agree the three pairwise 128-bit PRSS keys (1 round).

        For each pair the lower index draws the key and sends it to the higher one
        (the transport is authenticated and encrypted).
        """
        self._check_alive()
        send = {}
        for peer in self.peers:
            if self.party < peer:
                if self._seed is None:
                    key = secrets.token_bytes(_KEY_BYTES)
                else:
                    key = hashlib.shake_256(
                        b"mpcactors-test-prss" + self._seed + bytes((self.party, peer))
                    ).digest(_KEY_BYTES)
                self._keys[peer] = key
                send[peer] = [int.from_bytes(key, "big")]
        expect = {peer: 1 for peer in self.peers if peer < self.party}
        received = yield from self._exchange(send, expect, "setup")
        for peer, vector in received.items():
            if vector[0] >= 1 << (8 * _KEY_BYTES):
                raise PeerProtocolError(f"party {peer} sent a PRSS key that is not {8 * _KEY_BYTES} bits")
            self._keys[peer] = vector[0].to_bytes(_KEY_BYTES, "big")

    def destroy(self) -> None:
        """Delete the keys and every piece of randomness state. Idempotent."""
        self._keys.clear()
        self._bit_pool.clear()
        self._pair_pool.clear()
        self._pair_products.clear()
        self._seed = None
        self._destroyed = True

    @property
    def destroyed(self) -> bool:
        """True once :meth:`destroy` ran (the scheduler checks this to accept a deletion)."""
        return self._destroyed

    def statistics(self) -> dict[str, dict[str, int]]:
        """Per operation label: ``rounds``, ``elements`` sent and ``bytes`` sent (24 per element)."""
        return {label: dict(s) for label, s in self._stats.items()}

    def _check_alive(self) -> None:
        if self._destroyed:
            raise KeyDestroyedError(f"MPC engine of party {self.party} was destroyed")

    # ---- the one place that talks ----------------------------------------------------
    def _exchange(
        self, send: Mapping[int, list[int]], expect: Mapping[int, int], label: str
    ) -> Generator[Exchange, dict[int, list[int]], dict[int, list[int]]]:
        """Yield one round; validate what comes back (lengths and ranges)."""
        self._check_alive()
        stats = self._stats.setdefault(label, {"rounds": 0, "elements": 0, "bytes": 0})
        sent = sum(len(v) for v in send.values())
        if sent or expect:
            stats["rounds"] += 1
        stats["elements"] += sent
        stats["bytes"] += sent * BYTES_PER_ELEMENT
        received = yield Exchange(send=send, expect=frozenset(expect), label=label, sizes=dict(expect))
        if received is None:
            received = {}
        if set(received) != set(expect):
            raise PeerProtocolError(
                f"round {label!r}: party {self.party} expected vectors from {sorted(expect)}, "
                f"got {sorted(received)}"
            )
        p = self.prime
        out = {}
        for peer, vector in received.items():
            vector = list(vector)
            if len(vector) != expect[peer]:
                raise PeerProtocolError(
                    f"round {label!r}: party {peer} sent {len(vector)} elements, expected {expect[peer]}"
                )
            if vector and (
                not set(map(type, vector)) <= {int} or min(vector) < 0 or max(vector) >= p
            ):
                raise PeerProtocolError(
                    f"round {label!r}: party {peer} sent an element that is not in [0, p)"
                )
            out[peer] = vector
        return out

    # ---- lockstep composition -----------------------------------------------------------
    def together(self, first: Program[Any], second: Program[Any]) -> Program[tuple[Any, Any]]:
        """Program: run two programs in lockstep; returns ``(first's result, second's result)``.

        Round ``r`` of the composition is round ``r`` of both: one exchange whose vector to
        each peer is the first program's vector followed by the second's, split on receipt
        by the lengths each program expects. Once one program has returned, the other's
        remaining rounds pass through unchanged. So the rounds are ``max`` of the two
        programs' instead of their sum, and the bytes are the same. The two programs must
        not depend on each other's results (each is advanced to its next round, the first
        one first, before the combined exchange goes out). The combined exchange carries
        the first program's label (the second's once the first has returned);
        :meth:`statistics` counts a combined round once, under that label, and every
        element under the label of the program that sent it.
        """
        programs = (first, second)
        results: list[Any] = [None, None]
        pending: list[Exchange | None] = [None, None]

        def advance(i: int, value: dict[int, list[int]] | None) -> None:
            try:
                pending[i] = programs[i].send(value)  # type: ignore[arg-type]
            except StopIteration as stop:
                results[i] = stop.value
                pending[i] = None

        advance(0, None)
        advance(1, None)
        while pending[0] is not None or pending[1] is not None:
            a, b = pending
            if a is None or b is None:
                alone = 0 if b is None else 1
                advance(alone, (yield pending[alone]))  # type: ignore[misc]
                continue
            if (any(a.send.values()) or a.expect) and (any(b.send.values()) or b.expect):
                # the programs' _exchange counted this round under both labels (as it does:
                # a round is one that sends an element or expects a vector)
                self._stats[b.label]["rounds"] -= 1
            send = {peer: [*a.send.get(peer, ()), *b.send.get(peer, ())] for peer in {*a.send, *b.send}}
            if a.sizes is None or b.sizes is None:
                raise TypeError("together: a program yielded an exchange without its expected sizes")
            sizes = {peer: a.sizes.get(peer, 0) + b.sizes.get(peer, 0) for peer in a.expect | b.expect}
            received = yield Exchange(send=send, expect=a.expect | b.expect, label=a.label, sizes=sizes)
            if received is None:
                received = {}
            cut = {peer: a.sizes[peer] for peer in a.expect}
            for_a = {peer: received[peer][: cut[peer]] for peer in a.expect if peer in received}
            for_b = {peer: received[peer][cut.get(peer, 0) :] for peer in b.expect if peer in received}
            advance(0, for_a)
            advance(1, for_b)
        return results[0], results[1]

    # ---- PRF streams -------------------------------------------------------------------
    def _next_nonce(self) -> int:
        self._check_alive()
        self._nonce += 1
        return self._nonce

    def _stream(self, peer: int, nonce: int, tag: bytes, nbytes: int) -> bytes:
        try:
            key = self._keys[peer]
        except KeyError:
            self._check_alive()
            raise ConfigError("MPC engine used before setup() completed") from None
        return hashlib.shake_256(key + nonce.to_bytes(8, "big") + tag).digest(nbytes)

    def _prf_field(self, peer: int, nonce: int, tag: bytes, n: int) -> list[int]:
        """``n`` pseudo-random field elements from the key shared with ``peer``.

        Each is a 192-bit integer: uniform in ``[0, 2**192)``, which is within statistical
        distance ``237 / 2**192`` of uniform mod ``p``; callers reduce mod ``p`` when they
        compute with it.
        """
        return _split_ints(self._stream(peer, nonce, tag, n * BYTES_PER_ELEMENT), BYTES_PER_ELEMENT, n)

    def _prf_bounded(self, peer: int, nonce: int, tag: bytes, n: int, bits: int) -> list[int]:
        """``n`` pseudo-random integers, uniform in ``[0, 2**bits)``."""
        width = (bits + 7) // 8
        mask = (1 << bits) - 1
        return [x & mask for x in _split_ints(self._stream(peer, nonce, tag, n * width), width, n)]

    def _prf_bits(self, peer: int, nonce: int, tag: bytes, n: int) -> list[int]:
        """``n`` pseudo-random bits (0 or 1): the stream's bytes, least significant bit first."""
        buf = self._stream(peer, nonce, tag, (n + 7) // 8)
        return np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little")[:n].tolist()

    def _div_small(self, values: Sequence[int], d: int) -> list[int]:
        """``v / d mod p`` for every ``v`` in ``[0, p)`` and ``d`` in ``{1, 2, 3}``, without a
        full-size multiplication (see ``_division_table``)."""
        if d == 1:
            return list(values)
        if d == 2:
            half = self._div_table[2][1]  # (p + 1) / 2
            return [(v >> 1) + half if v & 1 else v >> 1 for v in values]
        table = self._div_table[d]
        return [v // d + table[v % d] for v in values]

    # ---- local operations ------------------------------------------------------------
    def add(self, a: Sequence[int], b: Sequence[int]) -> list[int]:
        p = self.prime
        return [(x + y) % p for x, y in zip(a, b, strict=True)]

    def sub(self, a: Sequence[int], b: Sequence[int]) -> list[int]:
        p = self.prime
        return [(x - y) % p for x, y in zip(a, b, strict=True)]

    def scale(self, a: Sequence[int], c: int | Sequence[int]) -> list[int]:
        """Multiply by a public integer (or a public vector, element-wise)."""
        p = self.prime
        if isinstance(c, int):
            c %= p
            return [x * c % p for x in a]
        return [x * (y % p) % p for x, y in zip(a, c, strict=True)]

    def add_public(self, a: Sequence[int], c: int | Sequence[int]) -> list[int]:
        """Add a public integer (or vector) to the shared values (every share moves by ``c``)."""
        p = self.prime
        if isinstance(c, int):
            return [(x + c) % p for x in a]
        return [(x + y) % p for x, y in zip(a, c, strict=True)]

    def constant(self, values: Sequence[int]) -> list[int]:
        """A (trivial) sharing of public values: every party's share is the value."""
        p = self.prime
        return [v % p for v in values]

    # ---- PRSS randomness (no communication) -------------------------------------------
    def next_phase(self) -> None:
        """Move the PRSS nonce counter forward to the next multiple of ``2**32``.

        Called after a loop whose length is public but not fixed (an iteration that ran
        speculatively and was dropped drew PRSS values too): what follows then draws the
        same values however many the loop drew. The counter only moves forward, so no
        nonce is used twice.
        """
        self._check_alive()
        self._nonce = ((self._nonce >> 32) + 1) << 32

    def random(self, n: int) -> list[int]:
        """Shares of ``n`` uniform secret field elements that no single party knows."""
        nonce = self._next_nonce()
        p = self.prime
        out = [0] * n
        for peer in self.peers:
            c = self._prss_coeff[peer]
            out = [(o + r * c) % p for o, r in zip(out, self._prf_field(peer, nonce, b"rnd", n))]
        return out

    def random_bounded(self, n: int, bits: int) -> list[int]:
        """Shares of ``r = r_1 + r_2 + r_3`` with every part uniform in ``[0, 2**bits)``.

        So ``0 <= r < 3 * 2**bits``, and to any single party ``r`` is its known part plus a
        uniform ``[0, 2**bits)`` value it does not know.
        """
        nonce = self._next_nonce()
        p = self.prime
        out = [0] * n
        for peer in self.peers:
            c = self._prss_coeff[peer]
            part = self._prf_bounded(peer, nonce, b"bnd", n, bits)
            out = [(o + r * c) % p for o, r in zip(out, part)]
        return out

    # ---- input, open, reveal -------------------------------------------------------------
    def input(self, owner: int, values: Sequence[int] | None, n: int, label: str = "input") -> Program[list[int]]:
        """Program: the ``owner`` shares ``n`` of its own integers (others pass ``None``).

        The owner's partner (``next``) takes a PRF value as its share; the owner sends
        only the third share: 1 element per value, 1 round.
        """
        nonce = self._next_nonce()
        p = self.prime
        partner = owner % 3 + 1
        receiver = (owner + 1) % 3 + 1
        send: dict[int, list[int]] = {}
        expect: dict[int, int] = {}
        if self.party == owner:
            if values is None or len(values) != n:
                raise ValueError(f"input: the owner must pass exactly {n} values")
            rho = self._prf_field(partner, nonce, b"inp", n)
            inv = pow(partner, -1, p)
            own_c = owner * inv % p
            recv_c = receiver * inv % p
            vals = [v % p for v in values]
            mine = [(v + (r - v) * own_c) % p for v, r in zip(vals, rho)]
            send[receiver] = [(v + (r - v) * recv_c) % p for v, r in zip(vals, rho)]
        elif self.party == partner:
            mine = [r % p for r in self._prf_field(owner, nonce, b"inp", n)]
        else:
            expect[owner] = n
        received = yield from self._exchange(send, expect, label)
        if self.party == receiver:
            mine = received[owner]
        return mine

    def open(self, a: Sequence[int], label: str = "open") -> Program[list[int]]:
        """Program: open *masked* values to every party (ring: 3 elements per value).

        Returns field elements in ``[0, p)``. Use only on values that are statistically
        masked inside a protocol; outputs go through :meth:`reveal`.
        """
        n = len(a)
        self.opened.append((label, n))
        received = yield from self._exchange({self.prev: list(a)}, {self.next: n}, label)
        theirs = received[self.next]
        p, (lm, ln) = self.prime, self._open_num
        return self._div_small([(lm * x + ln * y) % p for x, y in zip(a, theirs)], self._open_den)

    def reveal(self, a: Sequence[int], label: str) -> Program[list[int]]:
        """Program: open output values, checking all three shares agree (1 round).

        Returns centred integers in ``(-p/2, p/2]`` and records ``(label, len(a))`` in
        :attr:`revealed`. Without a :attr:`gate` every party receives the values. With
        one, the gate is asked first (it raises, before anything is sent, for an opening
        it does not admit); a party outside :attr:`Delivery.to` sends its shares to the
        recipients, receives nothing and gets zeros, so an output must never steer a
        program (only values every party receives may), and a program's public decoding
        of its outputs must accept zeros (that party's result is dropped).
        """
        n = len(a)
        delivery = EVERYONE if self.gate is None else self.gate.admit(label, n)
        self.revealed.append((label, n))
        to = delivery.to
        expect = dict.fromkeys(self.peers, n) if self.party in to else {}
        received = yield from self._exchange({peer: list(a) for peer in self.peers if peer in to}, expect, label)
        clear = len(to) == 3
        values = [0] * n
        if self.party in to:
            shares = {self.party: list(a), **received}
            half = self.prime // 2
            values = [v - self.prime if v > half else v for v in reconstruct(shares, self.prime)]
        if delivery.keep:
            self.kept.append((label, clear, list(values) if clear else [v % self.prime for v in a]))
        return values

    # ---- multiplication ----------------------------------------------------------------
    def reshare(self, products: Sequence[int], label: str = "mul") -> Program[list[int]]:
        """Program: turn local degree-2 values (products of shares) into degree-1 shares.

        Each party deals its Lagrange-weighted term on a line through ``(0, term)`` and
        ``(next, PRF(k_{me,next}))`` and sends only the share of ``prev``; the received
        value is masked by a key the receiver lacks. 1 round, 1 element per value per party.
        """
        p, lam = self.prime, self._lambda
        return (yield from self._deal_terms([lam * h % p for h in products], label))

    def _deal_terms(self, terms: list[int], label: str) -> Program[list[int]]:
        """The round of :meth:`reshare` on the Lagrange-weighted terms ``t = lambda h mod p``.

        The line through ``(0, t)`` and ``(next, r)`` is ``t + s z`` with the slope
        ``s = (r - t) / next``: ``prev`` gets ``t + prev s``, I keep ``t + me s``, and ``next``
        holds ``r`` without being sent anything.
        """
        n = len(terms)
        self._check_alive()
        self._reshare_nonce += 1
        nonce = self._reshare_nonce
        p, me, prev = self.prime, self.party, self.prev
        rho_out = self._prf_field(self.next, nonce, b"rsh", n)
        rho_in = self._prf_field(prev, nonce, b"rsh", n)
        slope = self._div_small([(r - t) % p for r, t in zip(rho_out, terms)], self.next)
        outgoing = [(t + prev * s) % p for t, s in zip(terms, slope)]
        received = yield from self._exchange({prev: outgoing}, {self.next: n}, label)
        return [
            (t + me * s + q + x) % p for t, s, q, x in zip(terms, slope, rho_in, received[self.next])
        ]

    def mul(self, a: Sequence[int], b: Sequence[int], label: str = "mul") -> Program[list[int]]:
        """Program: element-wise products of shared vectors (1 round)."""
        p, lam = self.prime, self._lambda
        return (yield from self._deal_terms([lam * x * y % p for x, y in zip(a, b, strict=True)], label))

    def dot(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], label: str = "dot") -> Program[list[int]]:
        """Program: one inner product per ``(u, v)`` pair; only the sums are reshared (1 round)."""
        p, lam = self.prime, self._lambda
        if any(len(u) != len(v) for u, v in pairs):
            raise ValueError("dot: the vectors of a pair have different lengths")
        terms = [lam * sum(map(operator.mul, u, v)) % p for u, v in pairs]
        return (yield from self._deal_terms(terms, label))

    # ---- random bits ------------------------------------------------------------------
    def random_bits(self, n: int, label: str = "bits") -> Program[list[int]]:
        """Program: shares of ``n`` uniform secret bits, from a pool refilled in blocks."""
        if len(self._bit_pool) < n:
            self._bit_pool += yield from self._fill_bits(
                self._new_blocks(n - len(self._bit_pool), pairs=False), label
            )
        out = self._bit_pool[:n]
        del self._bit_pool[:n]
        return out

    def random_bit_pairs(self, n: int, label: str = "bits") -> Program[tuple[list[int], list[int]]]:
        """Program: shares of ``2 n`` uniform secret bits ``(lo_0, hi_0, lo_1, hi_1, ...)`` and
        of the ``n`` products ``lo_g hi_g``, for comparisons (:meth:`ltz`), from their own
        pool, refilled in blocks (3 rounds: the bits, then the products)."""
        if len(self._pair_pool) < 2 * n:
            yield from self._refill([], self._new_blocks(2 * n - len(self._pair_pool), pairs=True), label)
        bits, products = self._pair_pool[: 2 * n], self._pair_products[:n]
        del self._pair_pool[: 2 * n], self._pair_products[:n]
        return bits, products

    def _refill(self, single: Sequence[int], pairs: Sequence[int], label: str) -> Program[None]:
        """Make the blocks of both pools with nonces ``single`` and ``pairs`` in one
        :meth:`_fill_bits` (2 rounds), then the pairs' products (1 round, a :meth:`mul` of
        the secret bits: nothing is opened), and add them to the pools."""
        made = yield from self._fill_bits([*single, *pairs], label)
        cut = _BIT_BATCH * len(single)
        if pairs:
            products = yield from self.mul(made[cut + 1 :: 2], made[cut::2], label)
            self._pair_products += products
        self._bit_pool += made[:cut]
        self._pair_pool += made[cut:]

    def prefetch_bits(self, bits: int, pairs: int, label: str = "bits") -> Program[None]:
        """Program: refill the pools so that, as they stand when this program starts, they
        hold at least ``bits`` single bits and ``pairs`` pairs (2 rounds, 3 with pairs, none
        if they do).

        Bits are data-independent: running this :meth:`together` with earlier rounds takes
        a later refill off the critical path. The new blocks join the pools when its last
        round completes; draws made meanwhile (by a program running in lockstep) come from
        what the pools held, so the caller counts them in ``bits`` and ``pairs``.
        """
        single = self._new_blocks(bits - len(self._bit_pool), pairs=False) if len(self._bit_pool) < bits else []
        double = (
            self._new_blocks(2 * pairs - len(self._pair_pool), pairs=True) if len(self._pair_pool) < 2 * pairs else []
        )
        if single or double:
            yield from self._refill(single, double, label)

    def _new_blocks(self, bits: int, *, pairs: bool) -> list[int]:
        """The nonces of the next ``ceil(bits / _BIT_BATCH)`` blocks of a pool."""
        self._check_alive()
        count = -(-bits // _BIT_BATCH)
        if pairs:
            first, self._pair_blocks = self._pair_blocks, self._pair_blocks + count
            base = _PAIR_NONCES
        else:
            first, self._bit_blocks = self._bit_blocks, self._bit_blocks + count
            base = _BIT_NONCES
        return [base + first + j + 1 for j in range(count)]

    def _fill_bits(self, nonces: Sequence[int], label: str) -> Program[list[int]]:
        """Make bits ``b = v xor b3`` with ``v = b1 xor b2`` (2 rounds, 3 elements per bit).

        ``b_a`` comes from the key of the two parties other than ``a``. Party 3 knows
        ``b1, b2`` and inputs ``v``; parties 1 and 2 know ``b3`` and share it without
        communication as ``b3 * (1 - z/3)``; the product ``v * b3`` is reshared by
        parties 1 and 2 only (party 3's share of ``b3`` is 0). No party knows two of the
        three ``b_a`` it is missing, so ``b`` is uniform to each.

        Makes ``_BIT_BATCH`` bits per nonce (block) and returns them, blocks in order.
        """
        p, me = self.prime, self.party
        n = _BIT_BATCH * len(nonces)

        def prf(draw: Any, peer: int, tag: bytes) -> list[int]:
            out: list[int] = []
            for nonce in nonces:
                out += draw(peer, nonce, tag, _BIT_BATCH)
            return out

        field, bitstream = self._prf_field, self._prf_bits
        # The shares below are those of the textbook steps (kept in the comments), with
        # the products by the bits b3 in {0, 1} taken as branches and every division by 2
        # or 3 done once per element.
        send1: dict[int, list[int]] = {}
        expect1: dict[int, int] = {}
        if me == 3:
            b1 = prf(bitstream, 2, b"bit")  # key k23 belongs to excluded party 1
            b2 = prf(bitstream, 1, b"bit")  # key k13 -> party 2
            rho = prf(field, 1, b"bv")  # party 1's share of v
            v = [x ^ y for x, y in zip(b1, b2)]
            send1[2] = [(2 * r - x) % p for r, x in zip(rho, v)]
            v_share = [3 * r - 2 * x for r, x in zip(rho, v)]  # b3_share = 0
            rho2 = prf(field, 2, b"bm")  # dealer 2's partner share
            expect1[1] = n
        elif me == 1:
            b3 = prf(bitstream, 2, b"bit")  # key k12 -> party 3
            v_share = prf(field, 3, b"bv")
            rho1 = prf(field, 2, b"bm")
            # t1 = 3 * h1 = 2 * v1 * b3; dealer 1 (partner 2, receiver 3) sends (3 rho1 - t1) / 2
            # and keeps prod = (t1 + rho1) / 2
            send1[3] = self._div_small(
                [(3 * q - 2 * x if b else 3 * q) % p for x, q, b in zip(v_share, rho1, b3)], 2
            )
        else:
            b3 = prf(bitstream, 1, b"bit")
            rho1 = prf(field, 1, b"bm")
            rho2 = prf(field, 3, b"bm")
            expect1[3] = n
        got1 = yield from self._exchange(send1, expect1, label)
        send2: dict[int, list[int]] = {}
        expect2: dict[int, int] = {}
        if me == 2:
            v_share = got1[3]
            # t2 = -3 * h2 = -v2 * b3; dealer 2 (partner 3, receiver 1) sends (2 t2 + rho2) / 3
            # and keeps prod = (t2 + 2 rho2) / 3 + rho1
            send2[1] = self._div_small(
                [(q - 2 * x if b else q) % p for x, q, b in zip(v_share, rho2, b3)], 3
            )
        elif me == 1:
            expect2[2] = n
        got2 = yield from self._exchange(send2, expect2, label)
        # the bit: v_share + b3_share - 2 prod
        if me == 3:
            # prod = got1[1] + rho2
            bits = [(v - 2 * (x + q)) % p for v, x, q in zip(v_share, got1[1], rho2)]
        elif me == 1:
            # b3_share = 2 b3 / 3; 2 prod = t1 + rho1 + 2 got2[2]
            c = 2 * pow(3, -1, p) % p
            bits = [
                (c - x - q - 2 * y if b else x - q - 2 * y) % p
                for x, q, y, b in zip(v_share, rho1, got2[2], b3)
            ]
        else:
            # b3_share = b3 / 3; 3 (v2 + b3/3 - 2 prod) = 3 v2 + b3 + 2 v2 b3 - 4 rho2 - 6 rho1
            thirds = self._div_small(
                [(5 * x + 1 - 4 * q if b else 3 * x - 4 * q) % p for x, q, b in zip(v_share, rho2, b3)], 3
            )
            bits = [(t - 2 * r) % p for t, r in zip(thirds, rho1)]
        return bits

    # ---- truncation and comparison ----------------------------------------------------
    def _check_budget(self, k: int, what: str) -> None:
        if k + self.params.sigma + 3 > self.prime.bit_length() - 1:
            raise ConfigError(
                f"{what} on {k}-bit values needs a prime above 2**{k + self.params.sigma + 3}"
            )

    def trunc(self, a: Sequence[int], m: int, k: int, label: str = "trunc") -> Program[list[int]]:
        """Program: probabilistic truncation TruncPr (Catrina and de Hoogh, SCN 2010).

        For signed ``a`` with ``-2**(k-1) <= a < 2**(k-1)`` and ``0 < m < k`` returns shares of
        ``floor(a / 2**m) + u`` with ``u`` in ``{0, 1}`` and ``P[u = 1] = (a mod 2**m) / 2**m``
        (so the rounding is unbiased and the error is below one unit). The opened value is
        masked statistically (``2**-sigma``). Costs ``m`` random bits and one opening.
        """
        return (yield from self._trunc(list(a), m, k, label, fast=False, degree2=False))

    def trunc_fast(self, a: Sequence[int], m: int, k: int, label: str = "trunc") -> Program[list[int]]:
        """Program: truncation without random bits: one opening, no preprocessing.

        Like :meth:`trunc`, but the low mask ``r'`` is a PRSS value whose three parts are
        each uniform in ``[0, 2**m)`` (each party misses one part, so ``a mod 2**m`` stays
        hidden). The carry of ``(a mod 2**m) + r'`` is then ``j`` in ``{0, 1, 2, 3}`` with
        ``E[j] = frac(a / 2**m) + 1 - 2**-m``; subtracting 1 gives ``floor(a / 2**m) + u`` with
        ``u`` in ``{-1, 0, 1, 2}`` and ``E[result] = a / 2**m - 2**-m`` (error below 2 units,
        bias ``2**-m`` units).
        """
        return (yield from self._trunc(list(a), m, k, label, fast=True, degree2=False))

    def ltz(self, a: Sequence[int], k: int, label: str = "ltz") -> Program[list[int]]:
        """Program: exact shares of ``[a < 0]`` (0 or 1) for signed ``-2**(k-1) <= a < 2**(k-1)``.

        Catrina and de Hoogh: open ``c = a + 2**(k-1) + r' + 2**(k-1) r''`` with ``r'`` from
        ``k-1`` random bits and ``r''`` of ``sigma + 1`` bits (so the mask a party misses is
        uniform over ``k + sigma`` bits: distance ``2**-sigma`` for the ``k``-bit ``a + 2**(k-1)``), then ``a mod 2**(k-1) = c' - r' + 2**(k-1) [c' < r']`` where
        ``c' = c mod 2**(k-1)``; the comparison ``[c' < r']`` of a public and a bitwise-shared
        number uses a log-depth prefix product. Rounds: 1 opening + ceil(log2(ceil((k-1) / 2)))
        (the first level of the prefix product comes with the random bits,
        :meth:`random_bit_pairs`), and 3 when the pool of pairs must be refilled.
        """
        signs, _ = yield from self._ltz(list(a), k, label, degree2=False)
        return signs

    def dot_ltz(
        self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], k: int, label: str = "ltz", *,
        offset: Sequence[int] | None = None,
    ) -> Program[list[int]]:
        """Program: ``ltz(u . v + offset, k)`` per pair without the reshare of the inner
        products: the comparison's masked value is opened from degree-2 shares, as in
        :meth:`dot_trunc` (the result never needs degree-1 shares of the input). The same
        opening and result as :meth:`dot` then :meth:`ltz`, one round fewer."""
        signs, _ = yield from self._ltz(self._local_dots(pairs, offset, "dot_ltz"), k, label, degree2=True)
        return signs

    def dot_trunc_ltz(
        self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], m: int, k: int, label: str = "soft", *,
        offset: Sequence[int] | None = None,
    ) -> Program[tuple[list[int], list[int]]]:
        """Program: ``t = trunc_fast(u . v + offset, m, k)`` per pair and the exact ``[t < 0]``,
        from one masked opening (1 round plus the tree of an ``ltz`` on ``k - m`` bits).

        The truncation's mask above bit ``m`` is the comparison's: ``k - m - 1`` random bits
        and ``2**(k-m-1)`` times a ``sigma + 1``-bit PRSS value, so ``(c >> m) - 1`` is the
        opening :meth:`ltz` makes of ``t``. What :meth:`dot_trunc` (``fast``) then
        ``ltz(t, k - m)`` compute, with the same result, one opening fewer and no round
        between them. Needs ``|u . v + offset| <= 2**(k-1) - 2**(m+2)`` (so that
        ``-2**(k-m-1) <= t < 2**(k-m-1)``: ``trunc_fast`` is off by -1 to 2 units).
        """
        if not 0 < m < k - 1:
            raise ValueError(f"dot_trunc_ltz needs 0 < m < k - 1, got m={m}, k={k}")
        sums = self._local_dots(pairs, offset, "dot_trunc_ltz")
        signs, truncated = yield from self._ltz(sums, k - m, label, degree2=True, shift=m)
        return truncated, signs

    def _ltz(
        self, a: list[int], k: int, label: str, *, degree2: bool, shift: int = 0
    ) -> Program[tuple[list[int], list[int]]]:
        """``(signs, truncated)``: :meth:`ltz` of values given by degree-1 shares, or
        (``degree2``) degree-2 shares, and no truncated values; with ``shift`` > 0, the
        signs of their :meth:`trunc_fast` by ``2**shift`` and those truncated values
        (:meth:`dot_trunc_ltz`)."""
        if k < 2:
            raise ValueError("ltz needs k >= 2")
        self._check_budget(k + shift + (1 if shift else 0), "ltz")
        n = len(a)
        if n == 0:
            return [], []
        p = self.prime
        nb = k - 1
        # ceil(nb / 2) pairs per value; for odd nb the last pair's high bit is not used
        width = 2 * ((nb + 1) // 2)
        bits, products = yield from self.random_bit_pairs(n * width // 2)
        groups = [bits[q * width : q * width + nb] for q in range(n)]
        # the products of the pairs (2g, 2g + 1) of every group (BitLT's first level)
        pair_products = [products[q * width // 2 + g] for q in range(n) for g in range(nb // 2)]
        high = self.random_bounded(n, self.params.sigma + 1)
        weights = [1 << i for i in range(nb)]
        mul = operator.mul
        r_low = [sum(map(mul, weights, g)) % p for g in groups]
        top = 1 << nb
        if shift:
            # the comparison's mask and offset above bit `shift`, trunc_fast's below it (a PRSS
            # value of `shift` bits per part): c = a + 2^(k+shift-1) + low + 2^shift (r' + 2^(k-1) r'')
            below = self.random_bounded(n, shift)
            masked = [(x + ((top + r + top * h) << shift) + lo) % p for x, r, h, lo in zip(a, r_low, high, below)]
        else:
            masked = [(x + top + r + top * h) % p for x, r, h in zip(a, r_low, high)]
        if degree2:
            masked = [(x + z) % p for x, z in zip(masked, self._zero_degree2(n))]
            opened = yield from self._open_degree2(masked, label)
        else:
            opened = yield from self.open(masked, label)
        if shift:
            # (c >> shift) - 1 = t + 2^(k-1) + r' + 2^(k-1) r'' for t = trunc_fast(a): as :meth:`ltz` opens t
            opened = [(c >> shift) - 1 for c in opened]
        mask = top - 1
        c_low = [c & mask for c in opened]
        u = yield from self._bit_lt(c_low, groups, pair_products, label)
        # a' = c' - r' + 2^(k-1) u is a mod 2^(k-1) and [a < 0] = (a' - a) / 2^(k-1); with
        # a = c - 2^(k-1) - r' - 2^(k-1) r'' that is u + r'' + 1 - (c >> (k-1)): no share of a
        signs = [(uu + h + 1 - (c >> nb)) % p for c, uu, h in zip(opened, u, high)]
        if not shift:
            return signs, []
        return signs, [(c - top - r - top * h) % p for c, r, h in zip(opened, r_low, high)]

    def _bit_lt(
        self, public: Sequence[int], bits: Sequence[Sequence[int]], prod: Sequence[int], label: str
    ) -> Program[list[int]]:
        """Program: shares of ``[c < r]`` for public ``c`` and shared bits of ``r`` (LSB first).

        Per bit ``e_i = [c_i = r_i]`` and ``l_i = [c_i < r_i]`` are linear in ``r_i``. Adjacent
        (high, low) groups combine as ``(e_h e_l, l_h + e_h l_l)``: a binary tree. Its first
        level is local, from ``prod``: the products ``b_(2g+1) b_(2g)`` of every row's bit
        pairs, row after row (made with the bits, :meth:`random_bit_pairs`); the rest takes
        ``ceil(log2 ceil(n / 2))`` rounds.
        """
        p = self.prime
        nb = len(bits[0])
        # Level 1 needs one product per pair of bits: with c public, e_h e_l and e_h l_l are
        # both affine in b_h b_l. An odd top bit stays alone as (e, l).
        pairs = nb // 2
        left = [bs[2 * g + 1] for bs in bits for g in range(pairs)]
        right = [bs[2 * g] for bs in bits for g in range(pairs)]
        if len(prod) != len(left):
            raise ValueError(f"_bit_lt needs {len(left)} pair products, got {len(prod)}")
        # per pair (b_h, b_l) with product pp and public bits (c_h, c_l) = code >> 1, code & 1:
        #   code 3: e = pp,                l = 0
        #   code 2: e = b_h - pp,          l = pp
        #   code 1: e = b_l - pp,          l = b_h
        #   code 0: e = 1 - b_h - b_l + pp, l = b_h + b_l - pp
        codes = [(c >> (2 * g)) & 3 for c in public for g in range(pairs)]
        quads = list(zip(codes, left, right, prod))
        e_pairs = [
            pp if k == 3 else (bh - pp) % p if k == 2 else (bl - pp) % p if k == 1 else (1 - bh - bl + pp) % p
            for k, bh, bl, pp in quads
        ]
        l_pairs = [
            0 if k == 3 else pp if k == 2 else bh if k == 1 else (bh + bl - pp) % p
            for k, bh, bl, pp in quads
        ]
        if nb % 2:
            # an odd top bit b stays alone: (e, l) = (b, 0) if c's bit is 1, else (1 - b, b)
            top = [((c >> (nb - 1)) & 1, bs[nb - 1]) for c, bs in zip(public, bits)]
            e_flat, l_flat = [], []
            for q, (ct, b) in enumerate(top):
                e_flat += e_pairs[q * pairs : (q + 1) * pairs]
                l_flat += l_pairs[q * pairs : (q + 1) * pairs]
                e_flat.append(b if ct else (1 - b) % p)
                l_flat.append(0 if ct else b)
        else:
            e_flat, l_flat = e_pairs, l_pairs
        nb = pairs + nb % 2
        rows = len(public)
        while nb > 1:
            # combine the pairs (2g, 2g + 1) of every row; an odd top element passes through
            # unchanged (combining it with the neutral (1, 0) would cost two products), and
            # the last level needs no equality: only l is returned
            half = nb // 2
            low = [q * nb + 2 * g for q in range(rows) for g in range(half)]
            e_high = [e_flat[i + 1] for i in low]
            l_high = [l_flat[i + 1] for i in low]
            if nb == 2:
                prod = yield from self.mul(e_high, [l_flat[i] for i in low], label)
                return [(x + y) % p for x, y in zip(l_high, prod)]
            prod = yield from self.mul(e_high + e_high, [e_flat[i] for i in low] + [l_flat[i] for i in low], label)
            count = len(low)
            e_new, l_new = prod[:count], [(x + y) % p for x, y in zip(l_high, prod[count:])]
            if nb % 2:
                top = [q * nb + nb - 1 for q in range(rows)]
                e_new = [v for q in range(rows) for v in (*e_new[q * half : (q + 1) * half], e_flat[top[q]])]
                l_new = [v for q in range(rows) for v in (*l_new[q * half : (q + 1) * half], l_flat[top[q]])]
            e_flat, l_flat = e_new, l_new
            nb = half + nb % 2
        return l_flat

    # ---- fixed-point helpers ----------------------------------------------------------
    def mul_trunc(
        self, a: Sequence[int], b: Sequence[int], m: int, k: int, label: str = "fxmul", *, fast: bool = False
    ) -> Program[list[int]]:
        """Program: fixed-point product ``trunc(a * b, m, k)`` (``fast``: :meth:`trunc_fast`)
        in one round (the random bits of :meth:`trunc` aside); ``k`` bounds the raw product.
        See :meth:`dot_trunc`."""
        p = self.prime
        products = [x * y % p for x, y in zip(a, b, strict=True)]
        return (yield from self._trunc(products, m, k, label, fast=fast, degree2=True))

    def dot_trunc(
        self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], m: int, k: int, label: str = "dot", *,
        offset: Sequence[int] | None = None, fast: bool = False,
    ) -> Program[list[int]]:
        """Program: ``trunc(u . v + offset, m, k)`` per pair (``offset``: shared values, default 0),
        in one round: what :meth:`dot` then :meth:`trunc` (``fast``: :meth:`trunc_fast`)
        compute, with the same masked opening and the same result, without the reshare.

        The truncation never needs degree-1 shares of its input: with
        ``c = a + 2**(k-1) + low + 2**m high`` opened, its result is
        ``(c >> m) - 2**(k-1-m) - high`` (minus the carry of ``trunc_fast``), linear in the PRSS
        share of ``high``. So every party adds the mask to its *degree-2* share of ``a``, plus a
        pseudo-random degree-2 sharing of zero from the pairwise keys, and sends the sum to both
        others: the three values determine a degree-2 polynomial whose constant term is ``c``
        and whose other coefficients are uniform to each party (the zero sharing's part from
        the key it lacks), so it learns ``c`` and nothing else. 2 elements per value per party:
        the bytes of a reshare plus an opening.
        """
        sums = self._local_dots(pairs, offset, "dot_trunc")
        return (yield from self._trunc(sums, m, k, label, fast=fast, degree2=True))

    def _local_dots(
        self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], offset: Sequence[int] | None, what: str
    ) -> list[int]:
        """This party's degree-2 shares of ``u . v (+ offset)`` per pair (no communication)."""
        p, mul = self.prime, operator.mul
        if any(len(u) != len(v) for u, v in pairs):
            raise ValueError(f"{what}: the vectors of a pair have different lengths")
        sums = [sum(map(mul, u, v)) % p for u, v in pairs]
        if offset is not None:
            sums = [(x + y) % p for x, y in zip(sums, offset, strict=True)]
        return sums

    def _trunc(self, h: list[int], m: int, k: int, label: str, *, fast: bool, degree2: bool) -> Program[list[int]]:
        """:meth:`trunc` (``fast``: :meth:`trunc_fast`) of values given by degree-1 shares
        ``h``, or (``degree2``) degree-2 shares, in one opening of
        ``h + 2**(k-1) + low + 2**m high``: the result ``(c >> m) - 2**(k-1-m) - high`` (minus
        ``trunc_fast``'s carry) is linear in the PRSS share of ``high``, never in ``h``."""
        if not 0 < m < k:
            raise ValueError(f"trunc needs 0 < m < k, got m={m}, k={k}")
        self._check_budget(k + 1 if fast else k, "trunc")
        n = len(h)
        if n == 0:
            return []
        p = self.prime
        if fast:
            low = self.random_bounded(n, m)
            carry = 1
        else:
            bits = yield from self.random_bits(n * m)
            weights = [1 << i for i in range(m)]
            mul = operator.mul
            low = [sum(map(mul, weights, bits[q * m : (q + 1) * m])) % p for q in range(n)]
            carry = 0
        high = self.random_bounded(n, k + self.params.sigma - m)
        shift = 1 << (k - 1)
        two_m = 1 << m
        masked = [(x + shift + r + two_m * hh) % p for x, r, hh in zip(h, low, high)]
        if degree2:
            masked = [(x + z) % p for x, z in zip(masked, self._zero_degree2(n))]
            opened = yield from self._open_degree2(masked, label)
        else:
            opened = yield from self.open(masked, label)
        offset = (shift >> m) + carry
        return [((c >> m) - offset - hh) % p for c, hh in zip(opened, high)]

    def _zero_degree2(self, n: int) -> list[int]:
        """Shares of ``n`` pseudo-random degree-2 sharings of zero (no communication).

        The key of each pair ``{i, j}`` gives ``r``; ``i < j`` adds ``r / lambda_i`` and ``j``
        adds ``-r / lambda_j`` (degree-2 recombination weights), the third party nothing: a
        sharing of 0 that vanishes at the third party's point. Each party lacks one key, so
        the sum is, to it, uniform on the line of sharings of 0 that agree with its own share.
        """
        self._check_alive()
        self._reshare_nonce += 1
        nonce = self._reshare_nonce
        p = self.prime
        acc = [0] * n
        for peer in self.peers:
            r = self._prf_field(peer, nonce, b"zero", n)
            if self.party < peer:
                acc = [a + x for a, x in zip(acc, r)]
            else:
                acc = [a - x for a, x in zip(acc, r)]
        lam = self._lambda  # 3, -3 or 1
        out = self._div_small([a % p for a in acc], abs(lam))
        return out if lam > 0 else [-v % p for v in out]

    def _open_degree2(self, a: Sequence[int], label: str) -> Program[list[int]]:
        """Program: open values from masked *degree-2* shares: each party sends its share to
        both others and recombines with the weights ``(3, -3, 1)`` (2 elements per value)."""
        n = len(a)
        self.opened.append((label, n))
        received = yield from self._exchange({peer: list(a) for peer in self.peers}, dict.fromkeys(self.peers, n), label)
        p = self.prime
        (j, x), (k, y) = ((peer, received[peer]) for peer in self.peers)
        lm, lj, lk = self._lambda, LAGRANGE_DEGREE2[j], LAGRANGE_DEGREE2[k]
        return [(lm * u + lj * v + lk * w) % p for u, v, w in zip(a, x, y)]

    def pow2_normalise(
        self, x: Sequence[int], f: int, lo: int, hi: int, step: int, k: int, out_bits: int,
        label: str = "norm",
    ) -> Program[tuple[list[int], list[int]]]:
        """Program: secret powers of two that normalise ``x`` (``f`` fractional bits).

        Assumes ``2**lo <= x < 2**hi`` with ``hi - lo`` a multiple of ``step``. One batch of
        comparisons against the thresholds ``2**(lo + step*j)`` finds the number ``J`` of
        thresholds that ``x`` reaches; then for ``step = 1`` ``y = 2**-(lo + J + 1)`` (so
        ``x*y`` is in ``[1/2, 1)``: a start for :meth:`reciprocal`) and for ``step = 2``
        ``y = 2**-(lo/2 + J + 1)`` (so ``x*y*y`` is in ``[1/4, 1)``: a start for
        :meth:`inv_sqrt`). Returns shares of ``y * 2**out_bits`` and ``2**out_bits / y``,
        both exact; ``k`` bounds ``|x - threshold| * 2**f`` for the comparisons.
        """
        n = len(x)
        thresholds = [lo + step * j for j in range(1, (hi - lo) // step)]
        p = self.prime
        diffs = []
        for t in thresholds:
            diffs.extend(((v - (1 << (f + t) if f + t >= 0 else 0)) % p) for v in x)
        if f + min(thresholds, default=0) < 0:
            raise ValueError("thresholds below the fixed-point resolution")
        below = (yield from self.ltz(diffs, k, label)) if thresholds else []
        # exponent e(J) of y: step 1 -> lo + J + 1 ; step 2 -> lo/2 + J + 1
        base = lo if step == 1 else lo // 2
        count = len(thresholds)

        def value(j: int, sign: int) -> int:
            e = sign * (base + j + 1)
            shift = out_bits - e
            if shift < 0:
                raise ValueError("out_bits too small for an exact power of two")
            return 1 << shift

        ys, invs = [], []
        for q in range(n):
            y = value(count, 1)
            yi = value(count, -1)
            for j in range(1, count + 1):
                c = below[(j - 1) * n + q]
                # below threshold j means J <= j - 1
                y += c * (value(j - 1, 1) - value(j, 1))
                yi += c * (value(j - 1, -1) - value(j, -1))
            ys.append(y % p)
            invs.append(yi % p)
        return ys, invs

    def reciprocal(
        self, x: Sequence[int], y0: Sequence[int], f: int, iterations: int, k: int, label: str = "recip"
    ) -> Program[list[int]]:
        """Program: Newton ``y <- y (2 - x y)`` from ``y0``; all values with ``f`` fractional bits.

        Converges (quadratically) when ``0 < x*y0 < 2``; ``k`` bounds the raw products.
        """
        y = list(y0)
        two = 2 << f
        for _ in range(iterations):
            xy = yield from self.mul_trunc(x, y, f, k, label)
            corr = [(two - v) % self.prime for v in xy]
            y = yield from self.mul_trunc(y, corr, f, k, label)
        return y

    def inv_sqrt(
        self, x: Sequence[int], y0: Sequence[int], f: int, iterations: int, k: int, label: str = "invsqrt"
    ) -> Program[list[int]]:
        """Program: Newton ``y <- y (3 - x y^2) / 2`` from ``y0`` (``f`` fractional bits).

        Converges when ``0 < x*y0**2 < 3``; ``k`` bounds the raw products.
        """
        y = list(y0)
        three = 3 << f
        p = self.prime
        for _ in range(iterations):
            yy = yield from self.mul_trunc(y, y, f, k, label)
            xyy = yield from self.mul_trunc(x, yy, f, k, label)
            corr = [(three - v) % p for v in xyy]
            y = yield from self.mul_trunc(y, corr, f + 1, k, label)
        return y
