"""Encrypt a weighted model update, add encrypted updates, decrypt the sum.

One round, from this module's point of view:

1. each participant calls :func:`encrypt_update` with its update (new minus base weights) and
   its sample count as ``weight``. With a :class:`SecretRoundContext` (every participant but the
   merge peer) the update is encrypted symmetrically with a seed at the last level, ~15 bytes
   per parameter; with a :class:`PublicRoundContext` (the merge peer's own update) it is
   encrypted with the public key at the last level, ~32 bytes per parameter;
2. the merge peer feeds each accepted blob to an :class:`Aggregator` and publishes
   :meth:`Aggregator.finish`: the homomorphic sum, computed without any secret key;
3. each key holder calls :func:`decrypt_aggregate` (or :func:`mean_update`) and divides by the
   sum of the contributors' weights, which the ledger holds.

Values are multiplied by the weight *before* encryption because CKKS sums are exact up to
noise, while a weighted mean would need a ciphertext-by-plaintext product per update (a level,
and twice the bytes). The weighted values must stay within the parameter set's range
(:attr:`CkksParams.max_abs_value`); pass a scaled weight (e.g. samples / 1000) for very large
sites.

Everything here works one ciphertext (``slots`` values) at a time, so memory stays a small
multiple of the blob being processed.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal as ts
import torch

from swarm.crypto import _proto
from swarm.crypto._seal import SealBridge
from swarm.crypto.blob import (
    HEADER_SIZE,
    UPDATE_KINDS,
    BlobHeader,
    BlobWriter,
    PayloadKind,
    blob_id,
    check_header,
    read_header,
)
from swarm.crypto.keys import PublicRoundContext, SecretRoundContext
from swarm.crypto.layout import Layout, flatten, unflatten
from swarm.crypto.masking import MaskContext, MaskExpander, MaskTerm, round_to_grid
from swarm.crypto.params import CkksParams
from swarm.errors import (
    BlobMismatchError,
    DuplicateUpdateError,
    LayoutMismatchError,
    MalformedBlobError,
    MaskError,
    SecretKeyUnavailableError,
    ValueRangeError,
)

log = logging.getLogger(__name__)

#: chunk record encodings inside a seeded update's payload
ENCODING_SEAL = 0  # SEAL's own serialization of the ciphertext, as TenSEAL loads it
ENCODING_PACKED = 1  # seed + first polynomial at its true bit width (swarm.crypto._seal)
_RECORD = struct.Struct(">BI")

RoundContext = PublicRoundContext | SecretRoundContext


def _chunk_sizes(param_count: int, params: CkksParams) -> list[int]:
    full, rest = divmod(param_count, params.slots)
    return [params.slots] * full + ([rest] if rest else [])


def _check_range(values: npt.NDArray[np.floating], weight: float, params: CkksParams) -> None:
    """Refuse what CKKS would turn into a silently wrong sum: a non-positive weight, NaN or
    infinite values, or weighted values beyond the parameter set's per-update range.

    Uses the extremes only (no temporary arrays): NaN propagates through max/min.
    """
    if not (np.isfinite(weight) and weight > 0):
        raise ValueRangeError(f"weight must be a positive finite number, got {weight}")
    if values.size == 0:
        return
    high, low = float(np.max(values)), float(np.min(values))
    if not (np.isfinite(high) and np.isfinite(low)):
        raise ValueRangeError("the update holds NaN or infinite values")
    peak = max(abs(high), abs(low)) * float(weight)
    if peak > params.max_abs_value:
        raise ValueRangeError(
            f"|weight * value| reaches {peak:.4g}, above {params.max_abs_value:.4g}, the most "
            f"one update may hold so that a sum of {params.max_contributors} still decodes: "
            "scale the weight down (e.g. samples / 1000)"
        )


# --- encryption ---------------------------------------------------------------------------


def encrypt_update(
    delta: Mapping[str, torch.Tensor],
    ctx: RoundContext,
    *,
    layout: Layout,
    weight: float,
    round_id: int,
    sender: bytes,
    masks: Sequence[MaskTerm] = (),
    mask_context: MaskContext | None = None,
) -> bytes:
    """Encrypt ``weight * delta`` for this round; returns the blob to send and commit.

    ``delta`` is the update as a state dict (new minus base weights) matching ``layout``;
    ``weight`` is the sample count n_i; ``sender`` the 20-byte address of the encrypting peer.
    A :class:`SecretRoundContext` gives a seeded update, a :class:`PublicRoundContext` a
    public-key one. ``masks`` (this participant's :func:`swarm.crypto.masking.mask_terms`,
    with the attempt's ``mask_context``) are added to each ciphertext's first polynomial; with
    none the blob is the unmasked one. Raises :class:`LayoutMismatchError` and
    :class:`ValueRangeError`.
    """
    values = flatten(delta, layout)
    return encrypt_vector(
        values,
        ctx,
        layout=layout,
        weight=weight,
        round_id=round_id,
        sender=sender,
        masks=masks,
        mask_context=mask_context,
    )


def _expander(
    ctx: RoundContext, masks: Sequence[MaskTerm], mask_context: MaskContext | None
) -> MaskExpander | None:
    if not masks:
        return None
    if mask_context is None:
        raise MaskError("mask terms were given without the mask context they are bound to")
    bridge = ctx._bridge
    if len(bridge.last_moduli) != 1:
        raise MaskError("masking needs a parameter set with one modulus at the last level")
    return MaskExpander(mask_context, bridge.last_moduli[0], bridge.poly_modulus_degree)


def _add_mask(bridge: SealBridge, seal_bytes: bytes, mask: npt.NDArray[np.uint64]) -> bytes:
    try:
        return bridge.add_to_c0(seal_bytes, mask)
    except ValueError as exc:
        raise MalformedBlobError(f"ciphertext cannot be masked: {exc}") from exc


def encrypt_vector(
    values: npt.NDArray[np.floating],
    ctx: RoundContext,
    *,
    layout: Layout,
    weight: float,
    round_id: int,
    sender: bytes,
    masks: Sequence[MaskTerm] = (),
    mask_context: MaskContext | None = None,
) -> bytes:
    """:func:`encrypt_update` for an update already flattened with ``layout``."""
    if values.ndim != 1 or values.shape[0] != layout.param_count:
        raise LayoutMismatchError("param_count", layout.param_count, int(values.size))
    params = ctx.params
    _check_range(values, weight, params)
    sizes = _chunk_sizes(layout.param_count, params)
    if isinstance(ctx, SecretRoundContext):
        kind = PayloadKind.SEEDED_UPDATE
    elif isinstance(ctx, PublicRoundContext):
        kind = PayloadKind.PUBLIC_UPDATE
    else:
        raise TypeError(f"expected a round context, got {type(ctx).__name__}")
    writer = BlobWriter(
        kind=kind,
        params_id=ctx.params_id,
        round_id=round_id,
        sender=sender,
        context_hash=ctx.context_hash,
        param_count=layout.param_count,
        layout_hash=layout.hash,
        count=1,
    )
    bridge = ctx._bridge
    expander = _expander(ctx, masks, mask_context)
    # weighted in float64 one chunk at a time, so no full-size copy of the update is made
    offsets = np.cumsum([0, *sizes])
    pieces = (
        values[offsets[i] : offsets[i + 1]].astype(np.float64) * float(weight)
        for i in range(len(sizes))
    )
    seeded = kind == PayloadKind.SEEDED_UPDATE
    encrypt = bridge.encrypt_seeded if seeded else bridge.encrypt_public
    ciphertexts: Iterator[bytes] = (encrypt(piece) for piece in pieces)
    if expander is not None:
        # into c0 before packing: a masked seeded ciphertext is still seed + first polynomial
        ciphertexts = _masked(bridge, ciphertexts, expander, masks)
    _write_chunks(writer, bridge, kind, sizes, ciphertexts)
    return writer.finish()


def _masked(
    bridge: SealBridge,
    ciphertexts: Iterable[bytes],
    expander: MaskExpander,
    terms: Sequence[MaskTerm],
) -> Iterator[bytes]:
    """Each ciphertext (chunk ``i``) with ``combine(terms, i)`` added to its c0."""
    for index, seal_bytes in enumerate(ciphertexts):
        yield _add_mask(bridge, seal_bytes, expander.combine(terms, index))


def _write_chunks(
    writer: BlobWriter,
    bridge: SealBridge,
    kind: PayloadKind,
    sizes: list[int],
    ciphertexts: Iterable[bytes],
) -> None:
    """An update's payload: seeded ciphertexts as chunk records (packed where they can be),
    public-key ones as TenSEAL's CKKS vector."""
    if kind != PayloadKind.SEEDED_UPDATE:
        for part in _proto.iter_ckks_vector(sizes, ciphertexts, bridge.params.scale):
            writer.write(part)
        return
    unpacked = 0
    for seal_bytes in ciphertexts:
        packed = bridge.pack_seeded(seal_bytes)
        if packed is None:
            unpacked += 1
            writer.write(_RECORD.pack(ENCODING_SEAL, len(seal_bytes)))
            writer.write(seal_bytes)
        else:
            writer.write(_RECORD.pack(ENCODING_PACKED, len(packed)))
            writer.write(packed)
    if unpacked:
        log.info("%d of %d ciphertexts sent in SEAL's own encoding", unpacked, len(sizes))


def mask_update_blob(
    blob: bytes,
    ctx: RoundContext,
    *,
    layout: Layout,
    round_id: int,
    masks: Sequence[MaskTerm],
    mask_context: MaskContext,
) -> bytes:
    """An update blob with ``masks`` added to its ciphertexts, everything else unchanged (same
    sender, same encryption noise): what :func:`encrypt_update` with ``masks`` would give had
    it drawn the same encryption randomness. For tests and tools."""
    header = read_header(blob)
    check_header(
        header,
        round_id=round_id,
        params_id=ctx.params_id,
        context_hash=ctx.context_hash,
        layout_hash=layout.hash,
        param_count=layout.param_count,
        kinds=UPDATE_KINDS,
    )
    expander = _expander(ctx, masks, mask_context)
    if expander is None:
        return blob
    writer = BlobWriter(
        kind=header.kind,
        params_id=header.params_id,
        round_id=header.round_id,
        sender=header.sender,
        context_hash=header.context_hash,
        param_count=header.param_count,
        layout_hash=header.layout_hash,
        count=header.count,
    )
    sizes = _chunk_sizes(header.param_count, ctx.params)
    chunks = (seal_bytes for _, seal_bytes in _iter_seal_chunks(blob, header, ctx))
    _write_chunks(
        writer, ctx._bridge, header.kind, sizes, _masked(ctx._bridge, chunks, expander, masks)
    )
    return writer.finish()


# --- reading payloads ---------------------------------------------------------------------


def _iter_seal_chunks(
    blob: bytes, header: BlobHeader, ctx: RoundContext
) -> Iterator[tuple[int, bytes]]:
    """(values in chunk, SEAL ciphertext bytes) for each chunk of a checked blob's payload."""
    params = ctx.params
    sizes = _chunk_sizes(header.param_count, params)
    payload = memoryview(blob)[HEADER_SIZE:]
    if header.kind == PayloadKind.SEEDED_UPDATE:
        bridge = ctx._bridge
        pos = 0
        for size in sizes:
            if pos + _RECORD.size > len(payload):
                raise MalformedBlobError("seeded payload ends inside a chunk record")
            encoding, length = _RECORD.unpack_from(payload, pos)
            pos += _RECORD.size
            if length > len(payload) - pos:
                raise MalformedBlobError("seeded payload chunk runs past the end")
            data = payload[pos : pos + length]
            pos += length
            if encoding == ENCODING_PACKED:
                try:
                    yield size, bridge.unpack_seeded(data)
                except ValueError as exc:
                    raise MalformedBlobError(f"packed ciphertext: {exc}") from exc
            elif encoding == ENCODING_SEAL:
                yield size, bytes(data)
            else:
                raise MalformedBlobError(f"unknown chunk encoding {encoding}")
        if pos != len(payload):
            raise MalformedBlobError("seeded payload has bytes after its last chunk")
        return
    try:
        parts = _proto.decode_ckks_vector(payload)
    except _proto.ProtoError as exc:
        raise MalformedBlobError(f"payload is not a TenSEAL CKKS vector: {exc}") from exc
    if parts.sizes != sizes or len(parts.ciphertexts) != len(sizes):
        raise MalformedBlobError(
            f"payload holds {len(parts.ciphertexts)} ciphertexts of sizes that do not match "
            f"{header.param_count} parameters"
        )
    if parts.scale != params.scale:
        raise MalformedBlobError(f"payload scale {parts.scale} != {params.scale}")
    for size, ciphertext in zip(sizes, parts.ciphertexts, strict=True):
        yield size, bytes(ciphertext)


def _load_chunk(ctx: RoundContext, size: int, seal_bytes: bytes) -> Any:
    """A TenSEAL vector for one ciphertext, checked to be a fresh-sized last-level one."""
    params = ctx.params
    wrapped = _proto.encode_ckks_vector([size], [seal_bytes], params.scale)
    try:
        vector = ts.ckks_vector_from(ctx.tenseal_context, wrapped)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise MalformedBlobError(f"ciphertext does not load: {exc}") from exc
    (ciphertext,) = vector.ciphertext()
    if (
        list(ciphertext.parms_id()) != ctx._bridge.last_parms_id
        or ciphertext.size() != 2
        or ciphertext.scale != params.scale
        or not ciphertext.is_ntt_form()
    ):
        raise MalformedBlobError(
            "ciphertext is not a two-part last-level ciphertext at the parameter set's scale"
        )
    return vector


# --- aggregation (the merge peer) ---------------------------------------------------------


class Aggregator:
    """The merge peer's homomorphic sum of the round's updates; holds no secret key.

    ``add`` each accepted update blob as it arrives (in any order), then ``finish`` once.
    A blob that fails any check is refused with a typed error and leaves the sum unchanged.
    """

    def __init__(
        self, ctx: PublicRoundContext, *, round_id: int, layout: Layout, merge_peer: bytes
    ) -> None:
        if not isinstance(ctx, PublicRoundContext):
            # the merge peer's path never holds a secret key: pass SecretRoundContext.public
            raise TypeError("Aggregator takes a PublicRoundContext")
        if len(merge_peer) != 20:
            raise ValueError("merge_peer must be a 20-byte address")
        self._ctx = ctx
        self._round_id = round_id
        self._layout = layout
        self._merge_peer = bytes(merge_peer)
        self._sums: list[Any] = []
        self._contributors: list[bytes] = []
        self._finished = False

    @property
    def contributors(self) -> tuple[bytes, ...]:
        """Senders whose updates are in the sum, in the order they were added."""
        return tuple(self._contributors)

    def add(
        self,
        blob: bytes,
        *,
        expected_sender: bytes | None = None,
        expected_id: bytes | None = None,
    ) -> BlobHeader:
        """Check an update blob and add it to the sum.

        ``expected_sender`` is the authenticated peer it came from; ``expected_id`` the blob id
        its sender committed on the ledger. Raises :class:`MalformedBlobError`,
        :class:`OversizedBlobError`, :class:`BlobMismatchError` (incl.
        :class:`LayoutMismatchError`) and :class:`DuplicateUpdateError`.
        """
        if self._finished:
            raise RuntimeError("the aggregate is already finished")
        if expected_id is not None and blob_id(blob) != expected_id:
            raise BlobMismatchError("blob_id", expected_id, blob_id(blob))
        header = read_header(blob)
        ctx = self._ctx
        check_header(
            header,
            round_id=self._round_id,
            params_id=ctx.params_id,
            context_hash=ctx.context_hash,
            layout_hash=self._layout.hash,
            param_count=self._layout.param_count,
            kinds=UPDATE_KINDS,
            sender=expected_sender,
        )
        if header.count != 1:
            raise BlobMismatchError("count", 1, header.count)
        if header.sender in self._contributors:
            raise DuplicateUpdateError(f"already have an update from 0x{header.sender.hex()}")

        first = not self._sums
        added = 0
        try:
            for index, (size, seal_bytes) in enumerate(_iter_seal_chunks(blob, header, ctx)):
                vector = _load_chunk(ctx, size, seal_bytes)
                if first:
                    self._sums.append(vector)
                else:
                    self._sums[index].add_(vector)
                added += 1
        except BaseException:
            self._roll_back(blob, header, first, added)
            raise
        self._contributors.append(header.sender)
        log.debug("added update from 0x%s", header.sender.hex())
        return header

    def _roll_back(self, blob: bytes, header: BlobHeader, first: bool, added: int) -> None:
        # CKKS addition is exact modular arithmetic: subtracting the same ciphertexts restores
        # the previous sum bit for bit.
        if first:
            self._sums.clear()
            return
        chunks = _iter_seal_chunks(blob, header, self._ctx)
        for index in range(added):
            size, seal_bytes = next(chunks)
            self._sums[index].sub_(_load_chunk(self._ctx, size, seal_bytes))

    def finish(self) -> bytes:
        """The aggregate blob: a TenSEAL CKKS vector of the sum, for key holders to decrypt."""
        if not self._contributors:
            raise ValueError("no update to aggregate")
        self._finished = True
        params = self._ctx.params
        writer = BlobWriter(
            kind=PayloadKind.AGGREGATE,
            params_id=self._ctx.params_id,
            round_id=self._round_id,
            sender=self._merge_peer,
            context_hash=self._ctx.context_hash,
            param_count=self._layout.param_count,
            layout_hash=self._layout.hash,
            count=len(self._contributors),
        )
        sizes = _chunk_sizes(self._layout.param_count, params)
        for part in _proto.iter_ckks_vector(sizes, self._drain_sums(), params.scale):
            writer.write(part)
        return writer.finish()

    def _drain_sums(self) -> Iterator[bytes]:
        # serialize and release chunk by chunk so the sum is never held twice
        self._sums.reverse()
        while self._sums:
            vector = self._sums.pop()
            (ciphertext,) = _proto.decode_ckks_vector(vector.serialize()).ciphertexts
            del vector
            yield bytes(ciphertext)


def aggregate(
    blobs: Iterable[bytes],
    ctx: PublicRoundContext,
    *,
    round_id: int,
    layout: Layout,
    merge_peer: bytes,
) -> bytes:
    """Sum update blobs in one call (see :class:`Aggregator` for the checks)."""
    aggregator = Aggregator(ctx, round_id=round_id, layout=layout, merge_peer=merge_peer)
    for blob in blobs:
        aggregator.add(blob)
    return aggregator.finish()


# --- decryption (key holders) -------------------------------------------------------------


def decrypt_blob(
    blob: bytes,
    ctx: RoundContext,
    *,
    round_id: int,
    layout: Layout,
    kinds: frozenset[PayloadKind] = frozenset({PayloadKind.AGGREGATE}),
    expected_count: int | None = None,
    unmask: Sequence[MaskTerm] = (),
    mask_context: MaskContext | None = None,
) -> npt.NDArray[np.float64]:
    """Decrypt a blob to its flat float64 values (the weighted sum, for an aggregate).

    ``unmask`` (the :func:`swarm.crypto.masking.correction_terms` of a masked aggregate, with
    the attempt's ``mask_context``) is subtracted from each ciphertext's first polynomial
    before decrypting. An aggregate's values are always rounded to
    :data:`swarm.crypto.masking.ROUNDING_GRID` (:func:`~swarm.crypto.masking.round_to_grid`).

    Only an aggregate is accepted unless ``kinds`` says otherwise: the protocol never decrypts
    a single update, though a key holder technically can (docs/threat-model.md). Raises
    :class:`SecretKeyUnavailableError` for a context without the secret key, and the errors of
    :func:`read_header` and :func:`check_header`.
    """
    if not isinstance(ctx, SecretRoundContext) or not ctx.is_private():
        raise SecretKeyUnavailableError(
            "this context holds no secret key (the merge peer's): it cannot decrypt"
        )
    header = read_header(blob)
    check_header(
        header,
        round_id=round_id,
        params_id=ctx.params_id,
        context_hash=ctx.context_hash,
        layout_hash=layout.hash,
        param_count=layout.param_count,
        kinds=kinds,
    )
    if expected_count is not None and header.count != expected_count:
        raise BlobMismatchError("count", expected_count, header.count)
    expander = _expander(ctx, unmask, mask_context)
    out = np.empty(layout.param_count, dtype=np.float64)
    offset = 0
    for index, (size, seal_bytes) in enumerate(_iter_seal_chunks(blob, header, ctx)):
        if expander is not None:
            correction = expander.negate(expander.combine(unmask, index))
            seal_bytes = _add_mask(ctx._bridge, seal_bytes, correction)
        vector = _load_chunk(ctx, size, seal_bytes)
        out[offset : offset + size] = vector.decrypt()
        offset += size
    if header.kind == PayloadKind.AGGREGATE:
        return round_to_grid(out)
    return out


def decrypt_aggregate(
    blob: bytes,
    ctx: SecretRoundContext,
    *,
    round_id: int,
    layout: Layout,
    expected_count: int | None = None,
    unmask: Sequence[MaskTerm] = (),
    mask_context: MaskContext | None = None,
) -> npt.NDArray[np.float64]:
    """Decrypt an aggregate to the weighted sum of the contributors' updates (float64, rounded
    to the grid); ``unmask`` as in :func:`decrypt_blob`."""
    return decrypt_blob(
        blob,
        ctx,
        round_id=round_id,
        layout=layout,
        expected_count=expected_count,
        unmask=unmask,
        mask_context=mask_context,
    )


def mean_update(
    blob: bytes,
    ctx: SecretRoundContext,
    *,
    round_id: int,
    layout: Layout,
    total_weight: float,
    expected_count: int | None = None,
    unmask: Sequence[MaskTerm] = (),
    mask_context: MaskContext | None = None,
) -> dict[str, torch.Tensor]:
    """Decrypt an aggregate and divide by the contributors' total weight (sum of n_i from the
    ledger): the weighted mean update, as float32 tensors to add to the base model."""
    if not (np.isfinite(total_weight) and total_weight > 0):
        raise ValueRangeError(f"total_weight must be positive, got {total_weight}")
    summed = decrypt_aggregate(
        blob,
        ctx,
        round_id=round_id,
        layout=layout,
        expected_count=expected_count,
        unmask=unmask,
        mask_context=mask_context,
    )
    return unflatten(summed / float(total_weight), layout)
