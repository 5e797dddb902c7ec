"""Masks in the CKKS ciphertext ring: pairwise and self seeds, their expansion, the correction.

Every participant of a round attempt adds to the first polynomial ``c0`` of each of its
ciphertexts (at the last level: one 60-bit RNS modulus ``q``, NTT form) a mask: a vector of
``N`` values uniform in ``[0, q)``. NTT is linear, so adding in the NTT domain is adding ring
elements. A masked ciphertext is a one-time pad of the real one: with the round's secret key it
decrypts to noise. In a sum the pairwise masks cancel (``+s_ik`` from the lower index, ``-s_ik``
from the higher); what remains is the contributors' self seeds and their pairwise seeds with
participants that did not contribute: the *correction* (:func:`correction_terms`), which a key
holder rebuilds from revealed Shamir shares (``swarm.crypto.shares``) and subtracts.

The aggregate's decryption is rounded to :data:`ROUNDING_GRID` (:func:`round_to_grid`) so the
exact CKKS noise of a sum never leaves a key holder (IND-CPA-D, Li-Micciancio 2021).

See docs/crypto.md, "Masked aggregation".
"""

from __future__ import annotations

import math
import secrets as _secrets
import struct
import sys
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from swarm.errors import MaskError
from swarm.hashing import MASK_EXPAND_INFO, PAIRWISE_MASK_INFO
from swarm.protocol import mask_threshold

#: bytes of every mask secret (self seed, pairwise seed): one Shamir secret over GF(2^128)
SEED_SIZE = 16
#: the grid an aggregate's decryption is rounded to: ~9.5e-7, >100x the CKKS noise of a sum
ROUNDING_GRID = 2.0**-20

_CONTEXT = struct.Struct(">Q20sQQ")  # chain id, contract, round id, attempt: 44 bytes
_MARGIN_WORDS = 64  # extra 64-bit words drawn per chunk so rejection almost never needs more


def round_to_grid(
    values: npt.NDArray[np.float64], *, in_place: bool = False
) -> npt.NDArray[np.float64]:
    """``np.round(values / ROUNDING_GRID) * ROUNDING_GRID``: deterministic, error <= grid/2.

    Both operations are exact scalings by a power of two and round-half-to-even, so every key
    holder gets the same bits from the same decryption. ``in_place`` rounds a float64 array the
    caller owns without a new one (11.2M values: 90 MB, and its page faults).
    """
    if in_place and isinstance(values, np.ndarray) and values.dtype == np.float64:
        out = values
        out *= 1.0 / ROUNDING_GRID  # a power of two: exactly the division
    else:
        out = np.asarray(values, dtype=np.float64) / ROUNDING_GRID
    np.round(out, out=out)
    out *= ROUNDING_GRID
    return out


@dataclass(frozen=True)
class MaskContext:
    """What every mask of a round attempt is bound to: the ledger (chain id, 20-byte contract
    address), the round and the attempt. A new attempt means new masks."""

    chain_id: int
    contract: bytes
    round_id: int
    attempt: int

    def __post_init__(self) -> None:
        if not isinstance(self.contract, bytes) or len(self.contract) != 20:
            raise ValueError("contract must be a 20-byte address")
        for name in ("chain_id", "round_id", "attempt"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < 2**64:
                raise ValueError(f"{name} must be an integer in [0, 2^64)")

    def pack(self) -> bytes:
        """Fixed-width encoding (44 bytes): chain id, contract, round id, attempt (big-endian
        u64s)."""
        return _CONTEXT.pack(self.chain_id, self.contract, self.round_id, self.attempt)


@dataclass(frozen=True)
class MaskTerm:
    """One seed's contribution to a mask: ``sign * expand(seed)`` (sign +1 or -1)."""

    seed: bytes
    sign: int

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != SEED_SIZE:
            raise ValueError(f"a mask seed is {SEED_SIZE} bytes")
        if self.sign not in (1, -1):
            raise ValueError("a mask term's sign is +1 or -1")


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


def _address(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 20:
        raise ValueError(f"{what} must be a 20-byte address")
    return value


def pairwise_seed(
    ctx: MaskContext,
    my_private_key: x25519.X25519PrivateKey | bytes,
    my_address: bytes,
    their_public_key: x25519.X25519PublicKey | bytes,
    their_address: bytes,
) -> bytes:
    """The 16-byte seed two participants share: HKDF-SHA256 of their X25519 secret, bound to
    the round attempt and both addresses (sorted, so both sides derive the same seed)."""
    mine = _address(my_address, "my_address")
    theirs = _address(their_address, "their_address")
    if mine == theirs:
        raise ValueError("a pairwise seed needs two different participants")
    private = (
        my_private_key
        if isinstance(my_private_key, x25519.X25519PrivateKey)
        else x25519.X25519PrivateKey.from_private_bytes(bytes(my_private_key))
    )
    public = (
        their_public_key
        if isinstance(their_public_key, x25519.X25519PublicKey)
        else x25519.X25519PublicKey.from_public_bytes(bytes(their_public_key))
    )
    try:
        shared = private.exchange(public)
    except ValueError as exc:  # an all-zero shared secret: a small-order public key
        raise MaskError("the peer's encryption key gives no shared secret") from exc
    info = PAIRWISE_MASK_INFO + ctx.pack() + min(mine, theirs) + max(mine, theirs)
    return _hkdf(shared, info, SEED_SIZE)


def new_self_seed() -> bytes:
    """A fresh 16-byte self seed (one per participant per attempt)."""
    return _secrets.token_bytes(SEED_SIZE)


def mask_secrets(
    ctx: MaskContext,
    *,
    my_index: int,
    my_private_key: x25519.X25519PrivateKey | bytes,
    addresses: Sequence[bytes],
    encryption_keys: Sequence[bytes],
    self_seed: bytes,
) -> dict[int, bytes]:
    """All ``n`` secrets of participant ``my_index``, keyed by participant index: its self seed
    at its own index, the pairwise seed with participant ``k`` at ``k``.

    ``addresses`` and ``encryption_keys`` are the participants' in ledger index order.
    """
    n = len(addresses)
    if len(encryption_keys) != n:
        raise ValueError("one encryption key per participant address")
    if not 0 <= my_index < n:
        raise ValueError(f"my_index {my_index} is not a participant index (n = {n})")
    if not isinstance(self_seed, bytes) or len(self_seed) != SEED_SIZE:
        raise ValueError(f"the self seed is {SEED_SIZE} bytes")
    if len(set(addresses)) != n:
        raise ValueError("participant addresses must be distinct")
    out: dict[int, bytes] = {}
    for k in range(n):
        if k == my_index:
            out[k] = self_seed
        else:
            out[k] = pairwise_seed(
                ctx, my_private_key, addresses[my_index], encryption_keys[k], addresses[k]
            )
    return out


def mask_terms(my_index: int, secrets: Mapping[int, bytes]) -> list[MaskTerm]:
    """The terms participant ``my_index`` adds: its self seed (+1) and each pairwise seed, +1
    towards a higher index and -1 towards a lower one (so each pair cancels in a sum)."""
    if my_index not in secrets:
        raise ValueError("the secrets lack the self seed")
    terms = [MaskTerm(secrets[my_index], 1)]
    for k in sorted(secrets):
        if k != my_index:
            terms.append(MaskTerm(secrets[k], 1 if my_index < k else -1))
    return terms


def correction_terms(
    contributors: Set[int], n: int, recovered: Mapping[int, Mapping[int, bytes]]
) -> list[MaskTerm]:
    """What the aggregate over ``contributors`` carries beyond the values, as terms to subtract:
    each contributor's self seed and its pairwise seeds with participants outside the set.

    ``recovered[c][k]`` is contributor ``c``'s secret ``k`` (rebuilt from revealed shares).
    Raises :class:`MaskError` naming the first secret that is missing.
    """
    if not contributors:
        raise ValueError("an aggregate has at least one contributor")
    if any(not 0 <= c < n for c in contributors):
        raise ValueError(f"contributor indices must be in [0, {n})")
    terms: list[MaskTerm] = []
    for c in sorted(contributors):
        needed = [c] + [x for x in range(n) if x not in contributors]
        for k in needed:
            seed = recovered.get(c, {}).get(k)
            if seed is None:
                raise MaskError(f"secret {k} of contributor {c} was not recovered")
            terms.append(MaskTerm(seed, 1 if k == c or c < k else -1))
    return terms


def threshold_for(n: int, pct: int) -> int:
    """Shares needed to rebuild a secret among ``n`` participants: ``min(n, max(2, ceil(n *
    pct / 100)))``, ``pct`` being the consortium's ``maskThresholdPct`` (51..100; 0 means
    masking is off and has no threshold)."""
    if n < 1:
        raise ValueError("a round has at least one participant")
    if not 51 <= pct <= 100:
        raise ValueError(f"maskThresholdPct must be in 51..100 when masking is on, got {pct}")
    return mask_threshold(n, pct)  # the protocol's rule, shared with the peer and the auditor


# --- expansion ----------------------------------------------------------------------------


class MaskExpander:
    """Expands mask terms into ring elements mod ``q`` for one round attempt and modulus.

    A seed's key is ``HKDF(seed, info = "swarm/v1/mask-expand" || ctx.pack(), 32)``; chunk
    ``c``'s element is read from the ChaCha20 keystream under that key with block counter 0 and
    the 12-byte nonce ``c`` (little-endian): 64-bit little-endian words, masked to the modulus'
    bit width, kept when below ``q`` (rejection sampling), the first ``degree`` of them.
    """

    #: chunks :meth:`combine` expands at once (their masks are kept until asked for)
    BATCH = 32

    def __init__(
        self, ctx: MaskContext, modulus: int, degree: int, chunks: int | None = None
    ) -> None:
        """``chunks``: how many ciphertexts the update has, if known: :meth:`combine` then
        never expands past the last one."""
        if modulus < 2 or modulus >= 2**63:
            raise ValueError("the modulus must be in [2, 2^63)")
        self.ctx = ctx
        self.modulus = modulus
        self.degree = degree
        self._bits = modulus.bit_length()
        self._word_mask = np.uint64((1 << self._bits) - 1)
        self._q = np.uint64(modulus)
        self._keys: dict[bytes, bytes] = {}
        self._info = MASK_EXPAND_INFO + ctx.pack()
        # words drawn per chunk: enough that a shortfall is astronomically rare (q > 2^(bits-1))
        accept = modulus / float(1 << self._bits)
        expected_short = self.degree * (1.0 - accept)
        self._draw = (
            self.degree
            + _MARGIN_WORDS
            + int(8 * math.sqrt(expected_short + 1) + 2 * expected_short)
        )

        self._zeros = bytes(8 * self._draw)
        self._chunks = chunks
        # (terms, first chunk, their combined masks): combine's look-ahead
        self._batch: tuple[tuple[tuple[bytes, int], ...], int, npt.NDArray[np.uint64]] | None = None
        # combine's scratch space, reused from batch to batch
        self._scratch: npt.NDArray[np.uint64] | None = None
        self._acc: npt.NDArray[np.uint64] | None = None
        self._wrap: npt.NDArray[np.uint64] | None = None

    def _key(self, seed: bytes) -> bytes:
        key = self._keys.get(seed)
        if key is None:
            key = _hkdf(seed, self._info, 32)
            self._keys[seed] = key
        return key

    def _keystream(self, seed: bytes, chunk: int) -> CipherContext:
        """The ChaCha20 keystream of ``seed`` for ``chunk``: block counter 0, nonce ``chunk``."""
        nonce = (0).to_bytes(4, "little") + chunk.to_bytes(12, "little")
        return Cipher(algorithms.ChaCha20(self._key(seed), nonce), mode=None).encryptor()

    def expand(self, seed: bytes, chunk: int) -> npt.NDArray[np.uint64]:
        """The ``degree`` values in ``[0, q)`` of ``seed`` for ciphertext ``chunk``."""
        if not 0 <= chunk < 2**96:
            raise ValueError("chunk index out of range")
        stream = self._keystream(seed, chunk)
        n = self.degree
        words = np.frombuffer(stream.update(self._zeros), dtype="<u8") & self._word_mask
        # the usual case (q is within 2^-43 of 2^60): none of the first n is rejected
        if int(words[:n].max()) < self.modulus:
            return words[:n].astype(np.uint64, copy=False)
        kept = words[words < self._q]
        while kept.size < n:
            more = np.frombuffer(
                stream.update(bytes(8 * (n - kept.size + _MARGIN_WORDS))), dtype="<u8"
            )
            more = more & self._word_mask
            kept = np.concatenate([kept, more[more < self._q]])
        return np.ascontiguousarray(kept[:n], dtype=np.uint64)

    def combine(self, terms: Sequence[MaskTerm], chunk: int) -> npt.NDArray[np.uint64]:
        """``sum(sign * expand(seed, chunk)) mod q`` over ``terms``.

        Callers go through the chunks in order, so the masks of the next :attr:`BATCH` chunks
        are made at once (one numpy pass over all of them instead of a dozen small ones per
        chunk) and handed out as asked; the values are exactly :meth:`expand`'s."""
        key = tuple((term.seed, term.sign) for term in terms)
        batch = self._batch
        if batch is None or batch[0] != key or not 0 <= chunk - batch[1] < len(batch[2]):
            count = self.BATCH
            if self._chunks is not None and chunk < self._chunks:
                count = min(count, self._chunks - chunk)
            batch = (key, chunk, self._combine_batch(terms, chunk, count))
            self._batch = batch
        return batch[2][chunk - batch[1]].copy()

    def _expand_batch(
        self, seed: bytes, first: int, count: int, out: npt.NDArray[np.uint64] | None = None
    ) -> npt.NDArray[np.uint64]:
        """:meth:`expand` of chunks ``first .. first + count - 1``, as rows (into ``out``, a
        ``(count, draw)`` array, when given: the batch's scratch space, reused per term)."""
        if first < 0 or first + count > 2**96:
            raise ValueError("chunk index out of range")
        if out is None:
            out = np.empty((count, self._draw), dtype=np.uint64)
        # the keystream written straight into the rows (no bytes objects joined and copied)
        if not out.flags.c_contiguous:
            raise ValueError("the batch's scratch space must be one contiguous array")
        raw = out.reshape(-1).view(np.uint8).data
        step = 8 * self._draw
        for row, chunk in enumerate(range(first, first + count)):
            self._keystream(seed, chunk).update_into(self._zeros, raw[row * step :])
        if sys.byteorder != "little":  # pragma: no cover - the words are little-endian
            out.byteswap(inplace=True)
        rows = out[:, : self.degree]
        np.bitwise_and(rows, self._word_mask, out=rows)
        # the usual case (q within 2^-43 of 2^60): no word rejected; otherwise chunk by chunk
        if int(rows.max()) >= self.modulus:
            for bad in np.nonzero(rows.max(axis=1) >= self._q)[0]:
                rows[bad] = self.expand(seed, first + int(bad))
        return rows

    def _combine_batch(
        self, terms: Sequence[MaskTerm], first: int, count: int
    ) -> npt.NDArray[np.uint64]:
        """The combined masks of chunks ``first .. first + count - 1``, as rows of an array
        this expander reuses for the next batch (:meth:`combine` hands out copies): fresh 2 MB
        arrays per batch and term cost more in page faults than the arithmetic on them."""
        q = self._q
        if self._scratch is None or self._scratch.shape[0] < count:
            self._scratch = np.empty((count, self._draw), dtype=np.uint64)
            self._acc = np.empty((count, self.degree), dtype=np.uint64)
            self._wrap = np.empty((count, self.degree), dtype=np.uint64)
        assert self._acc is not None and self._wrap is not None
        acc, wrap = self._acc[:count], self._wrap[:count]
        acc.fill(0)
        for term in terms:
            values = self._expand_batch(term.seed, first, count, self._scratch[:count])
            if term.sign > 0:
                acc += values  # both < q < 2^63: no overflow
            else:
                acc += q
                acc -= values  # acc + (q - values), in (0, 2q)
            # reduce: where acc >= q, acc - q is the smaller; where not, acc - q wraps above acc
            np.subtract(acc, q, out=wrap)
            np.minimum(acc, wrap, out=acc)
        return acc

    def negate(self, values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
        """``-values mod q``."""
        out: npt.NDArray[np.uint64] = np.where(values == 0, values, self._q - values)
        return out


__all__ = [
    "ROUNDING_GRID",
    "SEED_SIZE",
    "MaskContext",
    "MaskExpander",
    "MaskTerm",
    "correction_terms",
    "mask_secrets",
    "mask_terms",
    "new_self_seed",
    "pairwise_seed",
    "round_to_grid",
    "threshold_for",
]
