"""Threshold sharing of mask secrets: split, seal to holders, reveal, reconstruct.

Participant ``i`` (the *owner*) Shamir-splits each of its ``n`` mask secrets (16 bytes,
pycryptodome's Shamir over GF(2^128), threshold ``t``; share index = holder index + 1) and
gives holder ``h`` the shares of all ``n`` secrets, sealed with HPKE to ``h``'s encryption key.
The owner's *manifest* (public) lists, per holder, the tagged hash of that holder's *row*: the
tagged hashes of its ``n`` shares. The manifest's hash, ``sharesHash``, goes on the ledger with
the update commitment, so every share can be checked by anyone who later sees it together with
its row.

After the ledger records the contributors ``C``, each holder publishes a *reveal*
(:func:`build_reveal`): for every owner in ``C`` the shares of its self seed and of its pairwise
seeds with participants outside ``C``, never anything else. A key holder :func:`collect` s the
reveals, checks every share against the holder's row, the row against the manifest and the
manifest against the ledger, and rebuilds each needed secret from ``t`` shares.

Why rows (version 2): version 1's manifest listed all ``n * n`` share hashes, and every reveal
carried the manifest of every contributor, so a reveal grew with ``n^3`` (256 KB at 20
participants, 864 KB at 30) and a round moved ``n^5`` bytes of manifests. Now the manifest is
``n`` row hashes and a reveal carries, per owner, the manifest and its holder's row: ``2n``
hashes, so a reveal grows with ``n^2``.

Wire formats (big-endian integers)::

    entry(h, k) = tagged_hash("swarm/v1/mask-share", ctx || owner u32 || h u32 || k u32 || share)
    row(h) = n entries (h, 0..n-1)
    manifest = version u8 || MaskContext.pack() || owner address (20) || owner u32 || n u32
               || t u32 || n row hashes, by holder, each
               tagged_hash("swarm/v1/mask-share-row", ctx || owner u32 || h u32 || row(h))
    shares blob = manifest length u32 || manifest || HPKE box of (n shares of 16 bytes, by k)
    reveal = version u8 || MaskContext.pack() || holder u32 || owners u32 ||
             per owner: owner u32 || manifest length u32 || manifest || row(holder) ||
                        count u32 || count * (k u32 || share 16)
"""

from __future__ import annotations

import hmac
import logging
import struct
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from Crypto.Protocol.SecretSharing import Shamir, _Element
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519

from swarm.crypto.keys import HPKE_SUITE
from swarm.crypto.masking import SEED_SIZE, MaskContext
from swarm.errors import MaskReconstructionError, MaskRevealError, MaskShareError
from swarm.hashing import MASK_SHARES_SEAL_INFO, Tag, tagged_hash

log = logging.getLogger(__name__)

VERSION = 2
SHARE_SIZE = SEED_SIZE
_CTX_SIZE = len(MaskContext(0, bytes(20), 0, 0).pack())
_MANIFEST_HEAD = struct.Struct(f">B{_CTX_SIZE}s20sIII")
_REVEAL_HEAD = struct.Struct(f">B{_CTX_SIZE}sII")
_U32 = struct.Struct(">I")
_ENTRY = 32


@dataclass(frozen=True)
class ShareSetup:
    """One owner's sharing: the round attempt, the owner's index, all participants' addresses
    (ledger index order) and the threshold."""

    ctx: MaskContext
    owner_index: int
    addresses: tuple[bytes, ...]
    threshold: int

    def __post_init__(self) -> None:
        n = len(self.addresses)
        if not 0 <= self.owner_index < n:
            raise ValueError(f"owner index {self.owner_index} is not a participant (n = {n})")
        if any(not isinstance(a, bytes) or len(a) != 20 for a in self.addresses):
            raise ValueError("participant addresses are 20 bytes")
        if not 1 <= self.threshold <= n:
            raise ValueError(f"threshold {self.threshold} is not in [1, {n}]")

    @property
    def n(self) -> int:
        return len(self.addresses)


@dataclass(frozen=True)
class Manifest:
    """A parsed share manifest."""

    raw: bytes
    ctx_bytes: bytes
    owner_address: bytes
    owner_index: int
    n: int
    threshold: int

    def row(self, holder: int) -> bytes:
        """The hash of ``holder``'s row of share hashes."""
        start = _MANIFEST_HEAD.size + holder * _ENTRY
        return self.raw[start : start + _ENTRY]


@dataclass(frozen=True)
class HeldShares:
    """What holder ``h`` keeps from one owner: the owner's manifest and its ``n`` shares, keyed
    by secret index ``k``."""

    manifest: bytes
    shares: dict[int, bytes]


def _share_hash(ctx_bytes: bytes, owner: int, holder: int, k: int, share: bytes) -> bytes:
    return tagged_hash(Tag.MASK_SHARE, ctx_bytes + struct.pack(">III", owner, holder, k) + share)


def _row(ctx_bytes: bytes, owner: int, holder: int, shares: Mapping[int, bytes]) -> bytes:
    """``holder``'s row: the hashes of its shares of the owner's secrets, by ``k``."""
    return b"".join(_share_hash(ctx_bytes, owner, holder, k, shares[k]) for k in range(len(shares)))


def _row_hash(ctx_bytes: bytes, owner: int, holder: int, row: bytes) -> bytes:
    return tagged_hash(Tag.MASK_SHARE_ROW, ctx_bytes + struct.pack(">II", owner, holder) + row)


def shares_hash(manifest: bytes) -> bytes:
    """The ``sharesHash`` committed on the ledger: tagged hash of the manifest."""
    return tagged_hash(Tag.MASK_SHARES, manifest)


def parse_manifest(manifest: bytes) -> Manifest:
    """Parse a manifest; raises :class:`MaskShareError` if it is malformed."""
    if len(manifest) < _MANIFEST_HEAD.size:
        raise MaskShareError("share manifest is truncated")
    version, ctx_bytes, owner_address, owner, n, t = _MANIFEST_HEAD.unpack_from(manifest, 0)
    if version != VERSION:
        raise MaskShareError(f"share manifest version {version} is not {VERSION}")
    if n < 1 or not owner < n or not 1 <= t <= n:
        raise MaskShareError(f"share manifest header is inconsistent (owner {owner}, n {n}, t {t})")
    if len(manifest) != _MANIFEST_HEAD.size + n * _ENTRY:
        raise MaskShareError(f"share manifest length does not match n = {n}")
    return Manifest(bytes(manifest), ctx_bytes, owner_address, owner, n, t)


def split(setup: ShareSetup, secrets: Mapping[int, bytes]) -> tuple[bytes, dict[int, bytes]]:
    """Shamir-split the owner's ``n`` secrets: (public manifest, ``{holder: plaintext}``), the
    plaintext for holder ``h`` being what :func:`seal_shares` seals to it: the manifest and
    ``h``'s ``n`` shares (16 bytes each, ordered by ``k``)."""
    n = setup.n
    if sorted(secrets) != list(range(n)):
        raise ValueError(f"expected one secret per participant index 0..{n - 1}")
    ctx_bytes = setup.ctx.pack()
    by_holder: list[list[bytes]] = [[] for _ in range(n)]
    for k in range(n):
        secret = secrets[k]
        if not isinstance(secret, bytes) or len(secret) != SHARE_SIZE:
            raise ValueError(f"secret {k} is not {SHARE_SIZE} bytes")
        if setup.threshold == 1:
            points = [(h + 1, secret) for h in range(n)]
        else:
            points = Shamir.split(setup.threshold, n, secret, ssss=False)
        for index, share in points:
            by_holder[index - 1].append(bytes(share))
    head = _MANIFEST_HEAD.pack(
        VERSION,
        ctx_bytes,
        setup.addresses[setup.owner_index],
        setup.owner_index,
        n,
        setup.threshold,
    )
    rows = [
        _row_hash(
            ctx_bytes,
            setup.owner_index,
            h,
            _row(ctx_bytes, setup.owner_index, h, dict(enumerate(by_holder[h]))),
        )
        for h in range(n)
    ]
    manifest = head + b"".join(rows)
    return manifest, {h: manifest + b"".join(by_holder[h]) for h in range(n)}


def _seal_info(ctx: MaskContext, owner_address: bytes, holder_address: bytes) -> bytes:
    return (
        MASK_SHARES_SEAL_INFO
        + b"\0"
        + bytes([VERSION])
        + ctx.pack()
        + owner_address
        + holder_address
    )


def seal_shares(
    setup: ShareSetup,
    holder_index: int,
    plaintext: bytes,
    holder_public_key: x25519.X25519PublicKey | bytes,
) -> bytes:
    """The blob pushed to holder ``holder_index`` from its :func:`split` plaintext: the
    manifest in clear and the holder's shares sealed (HPKE, the round-key suite) to its
    encryption key, bound to the attempt, owner and holder."""
    n = setup.n
    if not 0 <= holder_index < n:
        raise ValueError(f"holder index {holder_index} is not a participant")
    manifest_size = _MANIFEST_HEAD.size + n * _ENTRY
    if len(plaintext) != manifest_size + n * SHARE_SIZE:
        raise ValueError("the plaintext is not a split() plaintext for this setup")
    manifest = bytes(plaintext[:manifest_size])
    parsed = parse_manifest(manifest)
    _check_manifest_binding(parsed, setup.ctx, setup.owner_index, n, None)
    plaintext = bytes(plaintext[manifest_size:])
    key = (
        holder_public_key
        if isinstance(holder_public_key, x25519.X25519PublicKey)
        else x25519.X25519PublicKey.from_public_bytes(bytes(holder_public_key))
    )
    info = _seal_info(setup.ctx, setup.addresses[setup.owner_index], setup.addresses[holder_index])
    box = HPKE_SUITE.encrypt(plaintext, key, info=info)
    return _U32.pack(len(manifest)) + manifest + box


def _check_manifest_binding(
    manifest: Manifest, ctx: MaskContext, owner_index: int, n: int, owner_address: bytes | None
) -> None:
    if manifest.ctx_bytes != ctx.pack():
        raise MaskShareError("share manifest is bound to another round attempt")
    if manifest.owner_index != owner_index:
        raise MaskShareError(
            f"share manifest is owner {manifest.owner_index}'s, expected {owner_index}'s"
        )
    if manifest.n != n:
        raise MaskShareError(f"share manifest is for {manifest.n} participants, expected {n}")
    if owner_address is not None and manifest.owner_address != owner_address:
        raise MaskShareError("share manifest names another owner address")


def open_shares(
    blob: bytes,
    *,
    ctx: MaskContext,
    owner_index: int,
    holder_index: int,
    addresses: tuple[bytes, ...],
    private_key: x25519.X25519PrivateKey | bytes,
    expected_hash: bytes | None,
) -> HeldShares:
    """Open the shares owner ``owner_index`` sealed to holder ``holder_index``; checks the
    manifest against ``expected_hash`` (the ledger's ``sharesHash``; None skips it only before
    the commitment is known) and each share against the manifest. Raises
    :class:`MaskShareError`."""
    n = len(addresses)
    if not (0 <= owner_index < n and 0 <= holder_index < n):
        raise ValueError("owner and holder must be participant indices")
    if len(blob) < _U32.size:
        raise MaskShareError("shares blob is truncated")
    (length,) = _U32.unpack_from(blob, 0)
    if length > len(blob) - _U32.size:
        raise MaskShareError("shares blob is truncated inside its manifest")
    raw = bytes(blob[_U32.size : _U32.size + length])
    box = bytes(blob[_U32.size + length :])
    if expected_hash is not None and not hmac.compare_digest(shares_hash(raw), expected_hash):
        raise MaskShareError(
            f"owner {owner_index}'s share manifest does not match its sharesHash on the ledger"
        )
    manifest = parse_manifest(raw)
    _check_manifest_binding(manifest, ctx, owner_index, n, addresses[owner_index])
    key = (
        private_key
        if isinstance(private_key, x25519.X25519PrivateKey)
        else x25519.X25519PrivateKey.from_private_bytes(bytes(private_key))
    )
    info = _seal_info(ctx, addresses[owner_index], addresses[holder_index])
    try:
        plaintext = HPKE_SUITE.decrypt(box, key, info=info)
    except (InvalidTag, ValueError) as exc:
        raise MaskShareError(
            f"owner {owner_index}'s shares are not sealed to holder {holder_index} for this "
            "attempt, or were tampered with"
        ) from exc
    if len(plaintext) != n * SHARE_SIZE:
        raise MaskShareError("sealed shares have the wrong length")
    shares = {k: plaintext[k * SHARE_SIZE : (k + 1) * SHARE_SIZE] for k in range(n)}
    row = _row(manifest.ctx_bytes, owner_index, holder_index, shares)
    if not hmac.compare_digest(
        _row_hash(manifest.ctx_bytes, owner_index, holder_index, row), manifest.row(holder_index)
    ):
        raise MaskShareError(
            f"owner {owner_index}'s shares for holder {holder_index} do not match its manifest"
        )
    return HeldShares(raw, shares)


def revealable(owner: int, contributors: Set[int], n: int) -> list[int]:
    """The secret indices of ``owner`` the reveal rule allows: none unless it contributed;
    then its self seed and its pairwise seeds with non-contributors."""
    if owner not in contributors:
        return []
    return [k for k in range(n) if k == owner or k not in contributors]


def build_reveal(
    ctx: MaskContext,
    holder_index: int,
    held: Mapping[int, HeldShares],
    contributors: Set[int],
) -> bytes:
    """Holder ``holder_index``'s reveal once the ledger records ``contributors``: per
    contributing owner whose shares it holds, its manifest, the holder's row of share hashes
    and the shares :func:`revealable` allows (nothing of a non-contributor, no pairwise seed
    between two contributors)."""
    parts: list[bytes] = []
    owners = [owner for owner in sorted(held) if owner in contributors]
    ctx_bytes = ctx.pack()
    for owner in owners:
        item = held[owner]
        n = len(item.shares)
        allowed = revealable(owner, contributors, n)
        parts.append(_U32.pack(owner) + _U32.pack(len(item.manifest)) + item.manifest)
        parts.append(_row(ctx_bytes, owner, holder_index, item.shares))
        parts.append(_U32.pack(len(allowed)))
        for k in allowed:
            parts.append(_U32.pack(k) + item.shares[k])
    head = _REVEAL_HEAD.pack(VERSION, ctx.pack(), holder_index, len(owners))
    return head + b"".join(parts)


@dataclass
class ReconstructionState:
    """Verified revealed shares: ``shares[(owner, k)][holder] = share``."""

    ctx: MaskContext
    shares_hashes: Mapping[int, bytes]
    contributors: frozenset[int]
    n: int
    threshold: int | None = None
    shares: dict[tuple[int, int], dict[int, bytes]] = field(default_factory=dict)
    manifests: dict[int, Manifest] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)

    def add(self, reveal: bytes) -> int:
        """Verify one reveal and keep its shares; returns the holder index. Raises
        :class:`MaskRevealError` (malformed, forbidden shares) or :class:`MaskShareError`
        (a manifest or share that does not check out); then nothing of it is kept."""
        view = bytes(reveal)
        if len(view) < _REVEAL_HEAD.size:
            raise MaskRevealError("reveal is truncated")
        version, ctx_bytes, holder, owners = _REVEAL_HEAD.unpack_from(view, 0)
        if version != VERSION:
            raise MaskRevealError(f"reveal version {version} is not {VERSION}")
        if ctx_bytes != self.ctx.pack():
            raise MaskRevealError("reveal is bound to another round attempt")
        if not holder < self.n:
            raise MaskRevealError(f"reveal names holder {holder}, not a participant")
        pos = _REVEAL_HEAD.size
        pending: list[tuple[int, int, bytes]] = []
        manifests: dict[int, Manifest] = {}
        try:
            for _ in range(owners):
                (owner,) = _U32.unpack_from(view, pos)
                (length,) = _U32.unpack_from(view, pos + 4)
                pos += 8
                raw = view[pos : pos + length]
                if len(raw) != length:
                    raise MaskRevealError("reveal is truncated inside a manifest")
                pos += length
                if owner in manifests:
                    raise MaskRevealError(f"reveal lists owner {owner} twice")
                if owner not in self.contributors:
                    raise MaskRevealError(f"reveal holds shares of non-contributor {owner}")
                expected = self.shares_hashes.get(owner)
                if expected is None or not hmac.compare_digest(shares_hash(raw), expected):
                    raise MaskShareError(
                        f"owner {owner}'s manifest in the reveal does not match its sharesHash"
                    )
                manifest = parse_manifest(raw)
                _check_manifest_binding(manifest, self.ctx, owner, self.n, None)
                if self.threshold is not None and manifest.threshold != self.threshold:
                    raise MaskShareError(
                        f"owner {owner} shared with threshold {manifest.threshold}, "
                        f"expected {self.threshold}"
                    )
                manifests[owner] = manifest
                row = view[pos : pos + self.n * _ENTRY]
                if len(row) != self.n * _ENTRY:
                    raise MaskRevealError("reveal is truncated inside a row")
                pos += self.n * _ENTRY
                if not hmac.compare_digest(
                    _row_hash(ctx_bytes, owner, holder, row), manifest.row(holder)
                ):
                    raise MaskShareError(
                        f"holder {holder}'s row of owner {owner}'s shares does not match the "
                        "manifest"
                    )
                (count,) = _U32.unpack_from(view, pos)
                pos += 4
                allowed = set(revealable(owner, self.contributors, self.n))
                for _ in range(count):
                    (k,) = _U32.unpack_from(view, pos)
                    share = view[pos + 4 : pos + 4 + SHARE_SIZE]
                    if len(share) != SHARE_SIZE:
                        raise MaskRevealError("reveal is truncated inside a share")
                    pos += 4 + SHARE_SIZE
                    if k not in allowed:
                        raise MaskRevealError(
                            f"reveal holds owner {owner}'s secret {k}, which the reveal rule "
                            "keeps hidden"
                        )
                    digest = _share_hash(ctx_bytes, owner, holder, k, share)
                    if not hmac.compare_digest(digest, row[k * _ENTRY : (k + 1) * _ENTRY]):
                        raise MaskShareError(
                            f"holder {holder}'s share of owner {owner}'s secret {k} does not "
                            "match the manifest"
                        )
                    pending.append((owner, k, share))
        except struct.error as exc:
            raise MaskRevealError("reveal is truncated") from exc
        if pos != len(view):
            raise MaskRevealError("reveal has bytes after its last share")
        self.manifests.update(manifests)
        for owner, k, share in pending:
            self.shares.setdefault((owner, k), {})[holder] = share
        return int(holder)

    def _needed(self) -> list[tuple[int, int]]:
        return [
            (c, k)
            for c in sorted(self.contributors)
            for k in revealable(c, self.contributors, self.n)
        ]

    def missing(self) -> list[int]:
        """Contributors with a needed secret that still lacks ``t`` verified shares."""
        out: list[int] = []
        for c, k in self._needed():
            manifest = self.manifests.get(c)
            have = len(self.shares.get((c, k), {}))
            if (manifest is None or have < manifest.threshold) and c not in out:
                out.append(c)
        return out

    def recovered(self) -> dict[int, dict[int, bytes]]:
        """``recovered[c][k]``: every needed secret, rebuilt from ``t`` verified shares.
        Raises :class:`MaskReconstructionError` while :meth:`missing` is not empty."""
        lacking = self.missing()
        if lacking:
            raise MaskReconstructionError(
                f"too few revealed shares for contributors {lacking}: cannot unmask yet"
            )
        # Every secret is rebuilt from the first t holders that revealed it, almost always the
        # same t for all: the Lagrange coefficients are computed once per set of holders (t^2
        # field operations) and each secret costs t more, where Shamir.combine would redo all
        # t^2 per secret (at 30 participants, ~18 ms per secret and ~0.5 s per key holder).
        by_holders: dict[tuple[int, ...], list[tuple[int, int]]] = {}
        for c, k in self._needed():
            holders = tuple(sorted(self.shares[(c, k)])[: self.manifests[c].threshold])
            by_holders.setdefault(holders, []).append((c, k))
        out: dict[int, dict[int, bytes]] = {}
        for holders, needed in by_holders.items():
            coefficients = _lagrange_at_zero([h + 1 for h in holders])
            for c, k in needed:
                held = self.shares[(c, k)]
                out.setdefault(c, {})[k] = _interpolate(coefficients, [held[h] for h in holders])
        return out


def _lagrange_at_zero(xs: list[int]) -> list[_Element]:
    """The Lagrange basis polynomials of the points ``xs`` at 0, in GF(2^128) as pycryptodome's
    Shamir implements it (its field element; the arithmetic of ``Shamir.combine``, whose
    results these reproduce: tests/crypto/test_shares.py). pycryptodome's stub types a factor as
    an int; the implementation, like ``Shamir.combine``, multiplies elements."""
    elements = [_Element(x) for x in xs]
    out = []
    for j, x_j in enumerate(elements):
        numerator, denominator = _Element(1), _Element(1)
        for m, x_m in enumerate(elements):
            if m != j:
                numerator *= x_m  # type: ignore[operator]
                denominator *= x_j + x_m  # type: ignore[operator]
        out.append(numerator * denominator.inverse())  # type: ignore[operator]
    return out


def _interpolate(coefficients: list[_Element], ys: list[bytes]) -> bytes:
    """The secret (the polynomial at 0) from the shares ``ys`` at the coefficients' points."""
    result = _Element(0)
    for coefficient, y in zip(coefficients, ys, strict=True):
        result += _Element(y) * coefficient  # type: ignore[operator]
    return bytes(result.encode())


def collect(
    ctx: MaskContext,
    reveals: Iterable[bytes],
    shares_hashes: Mapping[int, bytes],
    contributors: Set[int],
    n: int,
    *,
    threshold: int | None = None,
) -> ReconstructionState:
    """Verify ``reveals`` against the ledger's ``shares_hashes`` (by participant index) and
    accumulate their shares. A reveal that fails a check is skipped (logged, and listed in
    ``rejected``); use :meth:`ReconstructionState.add` to see the error itself.
    ``threshold``, when given, is the threshold every manifest must state."""
    if any(not 0 <= c < n for c in contributors):
        raise ValueError(f"contributor indices must be in [0, {n})")
    state = ReconstructionState(ctx, shares_hashes, frozenset(contributors), n, threshold)
    for reveal in reveals:
        try:
            state.add(reveal)
        except (MaskRevealError, MaskShareError) as exc:
            log.warning("reveal refused: %s", exc)
            state.rejected.append(str(exc))
    return state


__all__ = [
    "HeldShares",
    "Manifest",
    "ReconstructionState",
    "ShareSetup",
    "build_reveal",
    "collect",
    "open_shares",
    "parse_manifest",
    "revealable",
    "seal_shares",
    "shares_hash",
    "split",
]
