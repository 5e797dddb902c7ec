"""Encrypt a weighted model update, add encrypted updates, decrypt the sum.

One round, from this module's point of view:

1. each participant calls :func:`encrypt_update` with its update (new minus base weights) and
   its sample count as ``weight``. With a :class:`SecretRoundContext` (every participant but the
   merge peer) the update is encrypted symmetrically with a seed at the last level, ~15 bytes
   per parameter (:attr:`PayloadKind.SEEDED_UPDATE`); with a :class:`PublicRoundContext` (the
   merge peer's own update) it is not encrypted at all but CKKS-*encoded* at the last level,
   15 bytes per parameter (:attr:`PayloadKind.PLAIN_UPDATE`): a trivial ciphertext that never
   leaves the merge peer and is hidden inside the sum;
2. the merge peer feeds each accepted blob to an :class:`Aggregator` and publishes
   :meth:`Aggregator.finish`: the sum of the first polynomials (mod q0, numpy, no SEAL) and every
   seeded contributor's seeds, ~15 bytes per parameter (:attr:`PayloadKind.SEEDED_AGGREGATE`),
   computed without any secret key;
3. each key holder calls :func:`decrypt_aggregate` (or :func:`mean_update`): SEAL regenerates
   the second polynomials from the seeds and adds them, then decrypts; the key holder divides by
   the sum of the contributors' weights, which the ledger holds.

Values are multiplied by the weight *before* encryption because CKKS sums are exact up to
noise, while a weighted mean would need a ciphertext-by-plaintext product per update (a level,
and twice the bytes). The weighted values must stay within the parameter set's range
(:attr:`CkksParams.max_abs_value`); pass a scaled weight (e.g. samples / 1000) for very large
sites.

Everything here works one ciphertext (``values_per_ciphertext`` values) at a time, so memory
stays a small multiple of the blob being processed.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import tenseal as ts

from swarm.crypto import _proto
from swarm.crypto._seal import PRNG_TYPES, SealBridge
from swarm.crypto.blob import (
    HEADER_SIZE,
    SEED_RECORD_SIZE,
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

if TYPE_CHECKING:
    import torch  # tensors come in from the caller: this module never imports torch itself

log = logging.getLogger(__name__)

#: chunk record encodings inside a seeded update's payload
ENCODING_SEAL = 0  # SEAL's own serialization of the ciphertext, as TenSEAL loads it
ENCODING_PACKED = 1  # seed + first polynomial at its true bit width (swarm.crypto._seal)
_RECORD = struct.Struct(">BI")
#: a seeded aggregate's preamble: the number of seeded contributors k
_AGGREGATE_PREAMBLE = struct.Struct(">I")
#: the kinds whose chunks are a first polynomial and zero or more seeds (no SEAL object)
_POLY_KINDS = frozenset(
    {PayloadKind.SEEDED_UPDATE, PayloadKind.PLAIN_UPDATE, PayloadKind.SEEDED_AGGREGATE}
)
#: the kinds the merge peer adds
_MERGE_KINDS = frozenset({PayloadKind.SEEDED_UPDATE, PayloadKind.PLAIN_UPDATE})
#: the kinds :func:`decrypt_blob` rounds to the grid
_AGGREGATE_KINDS = frozenset({PayloadKind.SEEDED_AGGREGATE, PayloadKind.AGGREGATE})

RoundContext = PublicRoundContext | SecretRoundContext


def _chunk_sizes(param_count: int, params: CkksParams) -> list[int]:
    per = params.values_per_ciphertext
    full, rest = divmod(param_count, per)
    return [per] * full + ([rest] if rest else [])


def _check_range(
    values: npt.NDArray[np.floating],
    weight: float,
    params: CkksParams,
    contributors: int | None = None,
) -> None:
    """Refuse what CKKS would turn into a silently wrong sum: a non-positive weight, NaN or
    infinite values, or weighted values beyond the per-update range.

    The range is the parameter set's decodable sum shared among the updates it will hold:
    ``contributors`` (the round's participants, when the caller knows them) or the parameter
    set's most, :attr:`CkksParams.max_contributors`. Sharing among the most was too strict for
    real models: a ResNet-18's BatchNorm statistics (|delta| ~ 500) times 10 samples already
    passed the 64-way share, while four hospitals' sum had 16 times the room.

    Uses the extremes only (no temporary arrays): NaN propagates through max/min.
    """
    if not (np.isfinite(weight) and weight > 0):
        raise ValueRangeError(f"weight must be a positive finite number, got {weight}")
    if values.size == 0:
        return
    high, low = float(np.max(values)), float(np.min(values))
    if not (np.isfinite(high) and np.isfinite(low)):
        raise ValueRangeError("the update holds NaN or infinite values")
    share = params.max_contributors
    if contributors is not None:
        if not 1 <= contributors <= params.max_contributors:
            raise ValueRangeError(
                f"{contributors} contributors: a sum holds 1 to {params.max_contributors}"
            )
        share = contributors
    limit = params.max_abs_sum / share
    peak = max(abs(high), abs(low)) * float(weight)
    if peak > limit:
        raise ValueRangeError(
            f"|weight * value| reaches {peak:.4g}, above {limit:.4g}, the most one update may "
            f"hold so that a sum of {share} still decodes: scale the weight down (e.g. "
            "samples / 1000)"
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
    contributors: int | None = None,
) -> bytes:
    """Encrypt ``weight * delta`` for this round; returns the blob to send and commit.

    ``delta`` is the update as a state dict (new minus base weights) matching ``layout``;
    ``weight`` is the sample count n_i; ``sender`` the 20-byte address of the encrypting peer.
    A :class:`SecretRoundContext` gives a seeded update (:attr:`PayloadKind.SEEDED_UPDATE`); a
    :class:`PublicRoundContext` (the merge peer's) a plain one (:attr:`PayloadKind.PLAIN_UPDATE`:
    the CKKS encoding, unencrypted, which only the merge peer itself may add to a sum).
    ``masks`` (this participant's :func:`swarm.crypto.masking.mask_terms`, with the attempt's
    ``mask_context``) are added to each chunk's first polynomial; with none the blob is the
    unmasked one. ``contributors`` (the round's participants) shares the decodable range among
    that many updates instead of the parameter set's most. Raises :class:`LayoutMismatchError`
    and :class:`ValueRangeError`.
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
        contributors=contributors,
    )


def _expander(
    ctx: RoundContext,
    masks: Sequence[MaskTerm],
    mask_context: MaskContext | None,
    chunks: int | None = None,
) -> MaskExpander | None:
    if not masks:
        return None
    if mask_context is None:
        raise MaskError("mask terms were given without the mask context they are bound to")
    bridge = ctx._bridge
    if len(bridge.last_moduli) != 1:
        raise MaskError("masking needs a parameter set with one modulus at the last level")
    return MaskExpander(mask_context, bridge.last_moduli[0], bridge.poly_modulus_degree, chunks)


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
    contributors: int | None = None,
) -> bytes:
    """:func:`encrypt_update` for an update already flattened with ``layout``."""
    writer = update_writer(
        values, ctx, layout=layout, weight=weight, round_id=round_id, sender=sender,
        contributors=contributors,
    )  # fmt: skip
    sizes = _chunk_sizes(layout.param_count, ctx.params)
    encrypt_chunks(
        writer,
        ctx,
        values,
        sizes,
        weight,
        first=0,
        total=len(sizes),
        masks=masks,
        mask_context=mask_context,
    )
    return writer.finish()


def update_writer(
    values: npt.NDArray[np.floating],
    ctx: RoundContext,
    *,
    layout: Layout,
    weight: float,
    round_id: int,
    sender: bytes,
    contributors: int | None,
) -> BlobWriter:
    """The checks every update's encryption makes before any work (its length, its range), and
    the writer of its blob: seeded with a secret context, plain with a public one."""
    if values.ndim != 1 or values.shape[0] != layout.param_count:
        raise LayoutMismatchError("param_count", layout.param_count, int(values.size))
    _check_range(values, weight, ctx.params, contributors)
    if isinstance(ctx, SecretRoundContext):
        kind = PayloadKind.SEEDED_UPDATE
    elif isinstance(ctx, PublicRoundContext):
        kind = PayloadKind.PLAIN_UPDATE
    else:
        raise TypeError(f"expected a round context, got {type(ctx).__name__}")
    return BlobWriter(
        kind=kind,
        params_id=ctx.params_id,
        round_id=round_id,
        sender=sender,
        context_hash=ctx.context_hash,
        param_count=layout.param_count,
        layout_hash=layout.hash,
        count=1,
    )


class ChunkSink(Protocol):
    """Where :func:`encrypt_chunks` writes: a :class:`BlobWriter`, or a worker's buffer."""

    def write(self, data: bytes | memoryview, /) -> object: ...


def encrypt_chunks(
    sink: ChunkSink,
    ctx: RoundContext,
    values: npt.NDArray[np.floating],
    sizes: Sequence[int],
    weight: float,
    *,
    first: int,
    total: int,
    masks: Sequence[MaskTerm] = (),
    mask_context: MaskContext | None = None,
) -> None:
    """The payload records of chunks ``first .. first + len(sizes) - 1`` of an update of
    ``total`` chunks, written to ``sink`` in order; ``values`` holds those chunks' values
    (unweighted, ``sum(sizes)`` of them). A seeded update's chunks with a secret context, a
    plain update's with a public one; each chunk's mask is the one of its index in the whole
    update, so the records of consecutive ranges, concatenated, are the payload
    :func:`encrypt_vector` writes (swarm.crypto.parallel encrypts ranges in worker processes).
    """
    bridge = ctx._bridge
    expander = _expander(ctx, masks, mask_context, total)
    # weighted in float64 one chunk at a time, so no full-size copy of the update is made
    offsets = np.cumsum([0, *sizes])
    pieces = (
        values[offsets[i] : offsets[i + 1]].astype(np.float64) * float(weight)
        for i in range(len(sizes))
    )
    if isinstance(ctx, PublicRoundContext):
        if len(bridge.last_moduli) != 1:
            raise ValueError(
                "plain updates need a parameter set with one modulus at the last level"
            )
        q = bridge.last_moduli[0]
        for offset, piece in enumerate(pieces):
            coeffs = bridge.encode_coefficients(piece)
            if expander is not None:
                coeffs = _add_mod(coeffs, expander.combine(masks, first + offset), q)
            sink.write(bridge.pack_poly(coeffs))
        return
    ciphertexts: Iterator[bytes] = (bridge.encrypt_seeded(piece) for piece in pieces)
    chunk_masks = (
        (expander.combine(masks, first + offset) for offset in range(len(sizes)))
        if expander is not None
        else None
    )
    _write_seeded_chunks(sink, bridge, len(sizes), ciphertexts, chunk_masks)


def _add_mod(
    a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64], q: int
) -> npt.NDArray[np.uint64]:
    """``(a + b) mod q`` for values in ``[0, q)``, ``q < 2**63`` (no overflow)."""
    total = a + b
    np.subtract(total, np.uint64(q), out=total, where=total >= np.uint64(q))
    return total


def _sub_mod(
    a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64], q: int
) -> npt.NDArray[np.uint64]:
    """``(a - b) mod q`` for values in ``[0, q)``."""
    out: npt.NDArray[np.uint64] = a - b  # wraps below zero where a < b: q added back there
    np.add(out, np.uint64(q), out=out, where=a < b)
    return out


def _write_seeded_chunks(
    writer: ChunkSink,
    bridge: SealBridge,
    chunks: int,
    ciphertexts: Iterable[bytes],
    chunk_masks: Iterable[npt.NDArray[np.uint64]] | None = None,
) -> None:
    """A seeded update's payload: one chunk record per ciphertext, packed where it can be;
    each chunk's mask (``chunk_masks``, in order) added to its first polynomial before packing
    (a masked seeded ciphertext is still seed + first polynomial)."""
    unpacked = 0
    masks_left = iter(chunk_masks) if chunk_masks is not None else None
    for seal_bytes in ciphertexts:
        mask = next(masks_left) if masks_left is not None else None
        packed = bridge.pack_seeded(seal_bytes, mask)
        if packed is None and mask is not None:
            seal_bytes = _add_mask(bridge, seal_bytes, mask)  # a layout packing declines
        if packed is None:
            unpacked += 1
            writer.write(_RECORD.pack(ENCODING_SEAL, len(seal_bytes)))
            writer.write(seal_bytes)
        else:
            writer.write(_RECORD.pack(ENCODING_PACKED, len(packed)))
            writer.write(packed)
    if unpacked:
        log.info("%d of %d ciphertexts sent in SEAL's own encoding", unpacked, chunks)


def mask_update_blob(
    blob: bytes,
    ctx: RoundContext,
    *,
    layout: Layout,
    round_id: int,
    masks: Sequence[MaskTerm],
    mask_context: MaskContext,
) -> bytes:
    """An update blob (seeded or plain) with ``masks`` added to its first polynomials,
    everything else unchanged (same sender, same encryption noise and seeds): what
    :func:`encrypt_update` with ``masks`` would give had it drawn the same encryption
    randomness. For tests and tools."""
    header = read_header(blob)
    check_header(
        header,
        round_id=round_id,
        params_id=ctx.params_id,
        context_hash=ctx.context_hash,
        layout_hash=layout.hash,
        param_count=layout.param_count,
        kinds=_MERGE_KINDS,
    )
    expander = _expander(ctx, masks, mask_context, ctx.params.chunk_count(header.param_count))
    if expander is None:
        return blob
    bridge = ctx._bridge
    q = bridge.last_moduli[0]
    writer = BlobWriter.like(header)
    for index, (_size, c0, seeds) in enumerate(_iter_polys(blob, header, bridge)):
        masked = bridge.pack_poly(_add_mod(c0, expander.combine(masks, index), q))
        if header.kind == PayloadKind.SEEDED_UPDATE:
            writer.write(_RECORD.pack(ENCODING_PACKED, SEED_RECORD_SIZE + len(masked)))
            writer.write(seeds[0])
        writer.write(masked)
    return writer.finish()


# --- reading payloads ---------------------------------------------------------------------


def _check_poly(bridge: SealBridge, c0: npt.NDArray[np.uint64], what: str) -> None:
    if int(c0.max()) >= bridge.last_moduli[0]:
        raise MalformedBlobError(f"{what}: a coefficient is not below the modulus q0")


def _seed_record(data: bytes | memoryview, what: str) -> bytes:
    """A checked (prng type, seed) record: SEAL's PRNG types only, 65 bytes."""
    if len(data) != SEED_RECORD_SIZE:
        raise MalformedBlobError(f"{what}: a seed record is {SEED_RECORD_SIZE} bytes")
    if data[0] not in PRNG_TYPES:
        raise MalformedBlobError(f"{what}: unknown PRNG type {data[0]}")
    return bytes(data)


def _packed_seeded(
    bridge: SealBridge, data: bytes | memoryview
) -> tuple[npt.NDArray[np.uint64], bytes]:
    """(first polynomial, seed record) of a packed seeded ciphertext, checked."""
    if len(data) != bridge.packed_seeded_size:
        raise MalformedBlobError("packed ciphertext has the wrong length")
    record = _seed_record(data[:SEED_RECORD_SIZE], "packed ciphertext")
    c0 = bridge.unpack_poly(data[SEED_RECORD_SIZE:])
    _check_poly(bridge, c0, "packed ciphertext")
    return c0, record


def _iter_polys(
    blob: bytes | memoryview, header: BlobHeader, bridge: SealBridge
) -> Iterator[tuple[int, npt.NDArray[np.uint64], list[bytes]]]:
    """(values in chunk, first polynomial, seed records) for each chunk of a checked blob of
    a kind in ``_POLY_KINDS``: one seed for a seeded update, none for a plain update, the k
    seeded contributors' for a seeded aggregate. Every coefficient is checked to be < q0 and
    every seed record to name a PRNG SEAL knows; raises :class:`MalformedBlobError` as soon as
    something does not fit, so a caller may have used the chunks before."""
    if len(bridge.last_moduli) != 1:
        raise MalformedBlobError("this parameter set has more than one modulus at the last level")
    sizes = _chunk_sizes(header.param_count, bridge.params)
    payload = memoryview(blob)[HEADER_SIZE:]
    poly_size = bridge.packed_poly_size
    pos = 0
    if header.kind == PayloadKind.SEEDED_UPDATE:
        for size in sizes:
            if pos + _RECORD.size > len(payload):
                raise MalformedBlobError("seeded payload ends inside a chunk record")
            encoding, length = _RECORD.unpack_from(payload, pos)
            pos += _RECORD.size
            if length > len(payload) - pos:
                raise MalformedBlobError("seeded payload chunk runs past the end")
            data = payload[pos : pos + length]
            pos += length
            if encoding == ENCODING_SEAL:
                # SEAL's own bytes: only a seeded last-level ciphertext that reduces to seed +
                # first polynomial can be summed without its second polynomial
                packed = bridge.pack_seeded(bytes(data))
                if packed is None:
                    raise MalformedBlobError(
                        "a SEAL-encoded chunk that is not a seeded two-part last-level "
                        "ciphertext at the parameter set's scale, stored uncompressed"
                    )
                data = memoryview(packed)
            elif encoding != ENCODING_PACKED:
                raise MalformedBlobError(f"unknown chunk encoding {encoding}")
            c0, record = _packed_seeded(bridge, data)
            yield size, c0, [record]
    elif header.kind == PayloadKind.PLAIN_UPDATE:
        if len(payload) != len(sizes) * poly_size:
            raise MalformedBlobError(
                f"plain payload of {len(payload)} bytes is not {len(sizes)} packed polynomials"
            )
        for size in sizes:
            c0 = bridge.unpack_poly(payload[pos : pos + poly_size])
            pos += poly_size
            _check_poly(bridge, c0, "plain update")
            yield size, c0, []
    elif header.kind == PayloadKind.SEEDED_AGGREGATE:
        _k, stride = aggregate_layout(payload, header, bridge)
        pos = _AGGREGATE_PREAMBLE.size
        for size in sizes:
            c0, seeds = aggregate_chunk(bridge, payload[pos : pos + stride])
            pos += stride
            yield size, c0, seeds
    else:
        raise MalformedBlobError(f"a {header.kind.name} blob holds SEAL objects")
    if pos != len(payload):
        raise MalformedBlobError("payload has bytes after its last chunk")


def aggregate_layout(
    payload: bytes | memoryview, header: BlobHeader, bridge: SealBridge
) -> tuple[int, int]:
    """(seeds per chunk k, bytes per chunk) of a seeded aggregate's payload, checked against
    its header: k is one per seeded contributor, and the chunks fill the payload exactly after
    its preamble. Raises :class:`MalformedBlobError`."""
    if len(payload) < _AGGREGATE_PREAMBLE.size:
        raise MalformedBlobError("aggregate payload ends inside its preamble")
    (k,) = _AGGREGATE_PREAMBLE.unpack_from(payload, 0)
    if not header.count - 1 <= k <= header.count:
        raise MalformedBlobError(
            f"aggregate of {header.count} contributors carries {k} seeds per chunk "
            "(one per contributor, the merge peer's plain update aside)"
        )
    stride = bridge.packed_poly_size + k * SEED_RECORD_SIZE
    chunks = bridge.params.chunk_count(header.param_count)
    if len(payload) != _AGGREGATE_PREAMBLE.size + chunks * stride:
        raise MalformedBlobError(
            f"aggregate payload of {len(payload)} bytes does not hold {chunks} chunks "
            f"of a sum and {k} seeds"
        )
    return k, stride


def aggregate_chunk(
    bridge: SealBridge, data: bytes | memoryview
) -> tuple[npt.NDArray[np.uint64], list[bytes]]:
    """(summed first polynomial, seed records) of one chunk of a seeded aggregate (``data``:
    its packed polynomial, then its seed records), every coefficient and record checked."""
    poly_size = bridge.packed_poly_size
    c0 = bridge.unpack_poly(data[:poly_size])
    _check_poly(bridge, c0, "aggregate")
    seeds = [
        _seed_record(data[start : start + SEED_RECORD_SIZE], "aggregate")
        for start in range(poly_size, len(data), SEED_RECORD_SIZE)
    ]
    return c0, seeds


def decrypt_chunk(
    bridge: SealBridge,
    index: int,
    c0: npt.NDArray[np.uint64],
    records: Sequence[bytes],
    expander: MaskExpander | None,
    unmask: Sequence[MaskTerm],
) -> npt.NDArray[np.float64]:
    """Chunk ``index`` of a first-polynomial blob, decrypted: its correction (``unmask``)
    subtracted from ``c0``, its seeds' polynomials added, SEAL's decryption decoded (all
    ``values_per_ciphertext`` values; the caller cuts a short chunk's tail)."""
    if expander is not None:
        c0 = _sub_mod(c0, expander.combine(unmask, index), bridge.last_moduli[0])
    seeds = [(record[0], record[1:]) for record in records]
    try:
        return bridge.decrypt_sum(c0, seeds)
    except ValueError as exc:
        raise MalformedBlobError(f"chunk {index} does not decrypt: {exc}") from exc


def _iter_seal_chunks(
    blob: bytes, header: BlobHeader, ctx: RoundContext
) -> Iterator[tuple[int, bytes]]:
    """(values in chunk, SEAL ciphertext bytes) for each chunk of a checked blob whose payload
    is a TenSEAL CKKS vector (:attr:`PayloadKind.PUBLIC_UPDATE`, :attr:`PayloadKind.AGGREGATE`:
    kinds rounds no longer produce, still readable by tools)."""
    params = ctx.params
    if params.complex_packing:
        # TenSEAL vectors pack one value per slot: these kinds predate complex packing
        raise MalformedBlobError(
            f"a {header.kind.name} blob under parameter set {header.params_id} (complex "
            "packing): that kind exists only for real packing"
        )
    sizes = _chunk_sizes(header.param_count, params)
    payload = memoryview(blob)[HEADER_SIZE:]
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
    """The merge peer's sum of the round's updates; holds no secret key and uses no SEAL.

    ``add`` each accepted update blob as it arrives (in any order), then ``finish`` once. The
    sum is kept as what the aggregate will carry: per chunk, the first polynomials added mod q0
    (numpy, ``poly_modulus_degree`` uint64s: 16 bytes per parameter, whatever the number of
    contributors), and each seeded contributor's (PRNG type, seed) (65 bytes per chunk). A
    ciphertext's second polynomial is never needed: for a seeded update it is the seed's, for
    the merge peer's own plain update (only its own: :attr:`PayloadKind.PLAIN_UPDATE` from
    another sender is refused) it is zero. A blob that fails any check is refused with a typed
    error and leaves the sum bit-for-bit unchanged.
    """

    def __init__(
        self, ctx: PublicRoundContext, *, round_id: int, layout: Layout, merge_peer: bytes
    ) -> None:
        if not isinstance(ctx, PublicRoundContext):
            # the merge peer's path never holds a secret key: pass SecretRoundContext.public
            raise TypeError("Aggregator takes a PublicRoundContext")
        if len(merge_peer) != 20:
            raise ValueError("merge_peer must be a 20-byte address")
        if len(ctx._bridge.last_moduli) != 1:
            raise ValueError("aggregation needs a parameter set with one modulus at the last level")
        self._ctx = ctx
        self._bridge = ctx._bridge
        self._q = ctx._bridge.last_moduli[0]
        self._round_id = round_id
        self._layout = layout
        self._merge_peer = bytes(merge_peer)
        self._chunks = ctx.params.chunk_count(layout.param_count)
        #: per chunk, the sum of the first polynomials mod q0 (allocated with the first update)
        self._sums: list[npt.NDArray[np.uint64]] = []
        #: per seeded contributor, its seed records of every chunk, concatenated
        self._seeds: list[bytes] = []
        self._contributors: list[bytes] = []
        self._finished = False

    @property
    def contributors(self) -> tuple[bytes, ...]:
        """Senders whose updates are in the sum, in the order they were added."""
        return tuple(self._contributors)

    def add(
        self,
        blob: bytes | memoryview,
        *,
        expected_sender: bytes | None = None,
        expected_id: bytes | None = None,
    ) -> BlobHeader:
        """Check an update blob and add it to the sum.

        ``expected_sender`` is the authenticated peer it came from; ``expected_id`` the blob id
        its sender committed on the ledger. Raises :class:`MalformedBlobError`,
        :class:`OversizedBlobError`, :class:`BlobMismatchError` (incl.
        :class:`LayoutMismatchError`; a public-key update, field ``kind``: its second
        polynomial would have to travel; a plain update from anyone but the merge peer, field
        ``sender``) and :class:`DuplicateUpdateError`.
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
            kinds=_MERGE_KINDS,
            sender=expected_sender,
        )
        if header.kind == PayloadKind.PLAIN_UPDATE and header.sender != self._merge_peer:
            # unencrypted: only the merge peer's own update may be one, and it never travels
            raise BlobMismatchError("sender", self._merge_peer, header.sender)
        if header.count != 1:
            raise BlobMismatchError("count", 1, header.count)
        if header.sender in self._contributors:
            raise DuplicateUpdateError(f"already have an update from 0x{header.sender.hex()}")

        first = not self._sums
        if first:
            n = self._bridge.poly_modulus_degree
            self._sums = [np.zeros(n, dtype=np.uint64) for _ in range(self._chunks)]
        seeds = bytearray()
        added = 0
        try:
            for index, (_size, c0, records) in enumerate(_iter_polys(blob, header, self._bridge)):
                self._add_chunk(index, c0)
                added += 1
                seeds += b"".join(records)
        except BaseException:
            self._roll_back(blob, header, first, added)
            raise
        if header.kind == PayloadKind.SEEDED_UPDATE:
            self._seeds.append(bytes(seeds))
        self._contributors.append(header.sender)
        log.debug("added the %s of 0x%s", header.kind.name, header.sender.hex())
        return header

    def _add_chunk(self, index: int, c0: npt.NDArray[np.uint64]) -> None:
        """Add one chunk's first polynomial (checked: each coefficient < q0) to the sum, in
        place (an array per chunk and update allocated and dropped cost as much as the sum)."""
        total, q = self._sums[index], np.uint64(self._q)
        np.add(total, c0, out=total)  # both < q < 2^63: no overflow
        np.subtract(total, q, out=total, where=total >= q)

    def _sub_chunk(self, index: int, c0: npt.NDArray[np.uint64]) -> None:
        self._sums[index] = _sub_mod(self._sums[index], c0, self._q)

    def _roll_back(
        self, blob: bytes | memoryview, header: BlobHeader, first: bool, added: int
    ) -> None:
        # addition mod q is exact: subtracting the same polynomials restores the previous sum
        # bit for bit
        if first:
            self._sums = []
            return
        chunks = _iter_polys(blob, header, self._bridge)
        for index in range(added):
            _size, c0, _records = next(chunks)
            self._sub_chunk(index, c0)

    def finish(self) -> bytes:
        """The aggregate blob (:attr:`PayloadKind.SEEDED_AGGREGATE`), for key holders to
        decrypt: the number of seeded contributors k (u32), then per chunk the summed first
        polynomial packed at 60 bits and the k contributors' seed records."""
        if not self._contributors:
            raise ValueError("no update to aggregate")
        self._finished = True
        writer = BlobWriter(
            kind=PayloadKind.SEEDED_AGGREGATE,
            params_id=self._ctx.params_id,
            round_id=self._round_id,
            sender=self._merge_peer,
            context_hash=self._ctx.context_hash,
            param_count=self._layout.param_count,
            layout_hash=self._layout.hash,
            count=len(self._contributors),
        )
        writer.write(_AGGREGATE_PREAMBLE.pack(len(self._seeds)))
        seeds = [memoryview(s) for s in self._seeds]
        # packed and released chunk by chunk, so the sum is never held twice
        self._sums.reverse()
        index = 0
        while self._sums:
            writer.write(self._bridge.pack_poly(self._sums.pop()))
            start = index * SEED_RECORD_SIZE
            for contributor in seeds:
                writer.write(contributor[start : start + SEED_RECORD_SIZE])
            index += 1
        self._seeds = []
        return writer.finish()


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


def checked_for_decryption(
    blob: bytes | memoryview,
    ctx: RoundContext,
    *,
    round_id: int,
    layout: Layout,
    kinds: frozenset[PayloadKind],
    expected_count: int | None,
) -> BlobHeader:
    """What every decryption checks before any work: a secret context, the blob's header
    (digest, round, context, layout, kind) and its number of contributors."""
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
    return header


def decrypt_blob(
    blob: bytes,
    ctx: RoundContext,
    *,
    round_id: int,
    layout: Layout,
    kinds: frozenset[PayloadKind] = frozenset({PayloadKind.SEEDED_AGGREGATE}),
    expected_count: int | None = None,
    unmask: Sequence[MaskTerm] = (),
    mask_context: MaskContext | None = None,
) -> npt.NDArray[np.float64]:
    """Decrypt a blob to its flat float64 values (the weighted sum, for an aggregate).

    ``unmask`` (the :func:`swarm.crypto.masking.correction_terms` of a masked aggregate, with
    the attempt's ``mask_context``) is subtracted from each chunk's first polynomial before
    decrypting. An aggregate's values are always rounded to
    :data:`swarm.crypto.masking.ROUNDING_GRID` (:func:`~swarm.crypto.masking.round_to_grid`).

    For a seeded aggregate, each chunk's second polynomial is rebuilt from the k seeds it
    carries (SEAL regenerates and adds them) before SEAL decrypts; a plain or seeded update and
    the older TenSEAL-vector kinds (public-key update, aggregate) decrypt where ``kinds``
    allows them. Only a seeded aggregate is accepted unless ``kinds`` says otherwise: the
    protocol never decrypts a single update, though a key holder technically can
    (docs/threat-model.md). Raises :class:`SecretKeyUnavailableError` for a context without
    the secret key, :class:`MalformedBlobError`, and the errors of :func:`read_header` and
    :func:`check_header`.
    """
    header = checked_for_decryption(
        blob, ctx, round_id=round_id, layout=layout, kinds=kinds, expected_count=expected_count
    )
    expander = _expander(ctx, unmask, mask_context, ctx.params.chunk_count(layout.param_count))
    bridge = ctx._bridge
    out = np.empty(layout.param_count, dtype=np.float64)
    offset = 0
    if header.kind in _POLY_KINDS:
        for index, (size, c0, records) in enumerate(_iter_polys(blob, header, bridge)):
            values = decrypt_chunk(bridge, index, c0, records, expander, unmask)
            out[offset : offset + size] = values[:size]
            offset += size
    else:
        for index, (size, seal_bytes) in enumerate(_iter_seal_chunks(blob, header, ctx)):
            if expander is not None:
                correction = expander.negate(expander.combine(unmask, index))
                seal_bytes = _add_mask(bridge, seal_bytes, correction)
            vector = _load_chunk(ctx, size, seal_bytes)
            out[offset : offset + size] = vector.decrypt()
            offset += size
    if header.kind in _AGGREGATE_KINDS:
        return round_to_grid(out, in_place=True)
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
