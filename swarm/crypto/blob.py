"""The envelope of every encrypted blob: a fixed header, then the CKKS payload.

The header says, before anything is deserialized, what the blob claims to be (format, kind,
parameter set, round, sender, context, model layout, size), so a receiver refuses a blob from
another round, context or model with a typed error instead of feeding it to SEAL. A blob is
identified by the tagged hash (``swarm/v1/blob``, swarm.hashing) of all its bytes
(:func:`blob_id`): that is what a sender commits on the ledger, what peers address it by, and
what the merge peer compares before accepting it.

Corruption defences, in order:

1. the ledger commitment (:func:`blob_id` of the whole blob) is the main one: a blob whose id
   is not the one its sender committed is never used, whatever its content;
2. the header carries the payload's digest (tag ``swarm/v1/blob-payload``), so accidental
   corruption in transit or on disk is caught cheaply even where no commitment is at hand (a
   forged blob recomputes it: this check is not authentication);
3. SEAL's own validity checks when a ciphertext loads (coefficients in range, parameters).

What none of these can show is that an encrypted update holds *sensible* numbers: a key-holding
sender can encrypt anything. See docs/threat-model.md.

Header layout (big-endian, 152 bytes)::

    offset size field
         0    4 magic           b"SWCT"
         4    1 format version  2 (1: untagged sha256 digests)
         5    1 payload kind    1 seeded update, 2 public-key update (no longer produced),
                                3 aggregate (no longer produced), 4 plain update (the merge
                                peer's own, never sent), 5 seeded aggregate
         6    2 params id       CKKS parameter set (swarm.crypto.params)
         8    8 round           round id on the ledger
        16   20 sender          Ethereum address of the blob's author
        36   32 context hash    swarm.crypto.context_hash of the round's public context
        68    8 param count     values in the update (the model's float parameters)
        76   32 layout hash     Layout.hash: tagged hash of the layout's canonical encoding
       108    4 count           updates summed in the blob (1 for an update)
       112    8 payload length  bytes after the header
       120   32 payload digest  tagged hash (swarm/v1/blob-payload) of the payload
"""

from __future__ import annotations

import enum
import io
import struct
from dataclasses import dataclass

from swarm.crypto.params import get_params
from swarm.errors import (
    BlobMismatchError,
    LayoutMismatchError,
    MalformedBlobError,
    OversizedBlobError,
)
from swarm.hashing import Tag, tagged_hash, tagged_hasher

MAGIC = b"SWCT"
FORMAT_VERSION = 2
HEADER = struct.Struct(">4sBBHQ20s32sQ32sIQ32s")
HEADER_SIZE = HEADER.size  # 152

#: bytes a seeded-update chunk record adds before its ciphertext (encoding byte, length)
CHUNK_RECORD_OVERHEAD = 5
#: bytes of one seed record: SEAL's PRNG type (1), the seed (64)
SEED_RECORD_SIZE = 65
#: bytes of a seeded aggregate's preamble (u32: the number of seeded contributors)
AGGREGATE_PREAMBLE_SIZE = 4
#: allowance per ciphertext for SEAL headers, members, zstd framing and protobuf tags
_PER_CIPHERTEXT_SLACK = 1024


class PayloadKind(enum.IntEnum):
    """What the payload holds, and so how it is encoded (docs/crypto.md)."""

    #: a key holder's update: seeded symmetric ciphertexts at the last level, chunk records
    SEEDED_UPDATE = 1
    #: an update encrypted with the public key: TenSEAL CKKSVector. No longer produced by
    #: rounds (the merge peer's own update is a PLAIN_UPDATE); refused by the Aggregator
    PUBLIC_UPDATE = 2
    #: the homomorphic sum of updates: TenSEAL CKKSVector. No longer produced (see
    #: SEEDED_AGGREGATE); still decryptable by tools
    AGGREGATE = 3
    #: the merge peer's own update, CKKS-encoded at the last level and not encrypted (a
    #: trivial ciphertext): per chunk the plaintext polynomial (NTT form, mod q0, masks
    #: added) packed at 60 bits. Never leaves the merge peer; summed only by its author
    PLAIN_UPDATE = 4
    #: the sum, without second polynomials: u32 k (seeded contributors), then per chunk the
    #: summed first polynomial packed at 60 bits and k seed records (PRNG type + 64-byte seed)
    SEEDED_AGGREGATE = 5


UPDATE_KINDS = frozenset(
    {PayloadKind.SEEDED_UPDATE, PayloadKind.PUBLIC_UPDATE, PayloadKind.PLAIN_UPDATE}
)


@dataclass(frozen=True)
class BlobHeader:
    kind: PayloadKind
    params_id: int
    round_id: int
    sender: bytes
    context_hash: bytes
    param_count: int
    layout_hash: bytes
    count: int
    payload_length: int
    payload_digest: bytes
    version: int = FORMAT_VERSION

    def pack(self) -> bytes:
        return HEADER.pack(
            MAGIC,
            self.version,
            int(self.kind),
            self.params_id,
            self.round_id,
            self.sender,
            self.context_hash,
            self.param_count,
            self.layout_hash,
            self.count,
            self.payload_length,
            self.payload_digest,
        )


def blob_id(blob: bytes | memoryview) -> bytes:
    """The tagged hash (``swarm/v1/blob``) of the whole blob: what the sender commits on the
    ledger and what peers address it by (``swarm.p2p.content_digest`` of an update or an
    aggregate is the same hash)."""
    return tagged_hash(Tag.BLOB, blob)


def max_blob_size(param_count: int, params_id: int, kind: PayloadKind | None = None) -> int:
    """The largest blob of ``kind`` (default: of any kind) a model of ``param_count`` values
    can produce.

    The network layer bounds a receive with this *before* reading: anything larger is refused
    (:class:`OversizedBlobError`) without being buffered; :func:`read_header` applies the bound
    of the kind a blob declares. Per kind (C chunks, N coefficients of 60 bits):

    - plain update: C x 60N/8, exactly;
    - seeded update: C x (record header + SEAL's own encoding of a seeded ciphertext, the
      larger of its two encodings, with slack);
    - seeded aggregate: preamble + C x (60N/8 + 65 x max_contributors): the parameter set's
      most contributors, each with a seed per chunk;
    - public-key update, aggregate (TenSEAL vectors of full ciphertexts) and the default: C x
      (2 x 8N + slack), the largest kind.
    """
    if param_count <= 0:
        raise ValueError("param_count must be positive")
    params = get_params(params_id)
    chunks = params.chunk_count(param_count)
    degree = params.poly_modulus_degree
    packed_poly = (degree * params.last_level_bits + 7) // 8
    if kind == PayloadKind.PLAIN_UPDATE:
        per_chunk = packed_poly
    elif kind == PayloadKind.SEEDED_UPDATE:
        per_chunk = CHUNK_RECORD_OVERHEAD + degree * 8 + SEED_RECORD_SIZE + _PER_CIPHERTEXT_SLACK
    elif kind == PayloadKind.SEEDED_AGGREGATE:
        per_chunk = packed_poly + SEED_RECORD_SIZE * params.max_contributors
        return HEADER_SIZE + AGGREGATE_PREAMBLE_SIZE + chunks * per_chunk
    else:
        last_level_moduli = 1
        full_ciphertext = 2 * degree * last_level_moduli * 8
        return HEADER_SIZE + chunks * (full_ciphertext + _PER_CIPHERTEXT_SLACK) + 64
    return HEADER_SIZE + chunks * per_chunk


class BlobWriter:
    """Builds a blob in one buffer: payload pieces are appended as they are produced and the
    header (with the payload's length and digest) is written in front at the end.

    Holding the encrypted pieces in a list and joining them would keep the payload in memory
    twice; ``BytesIO.getvalue`` hands over its buffer without a copy.
    """

    def __init__(
        self,
        *,
        kind: PayloadKind,
        params_id: int,
        round_id: int,
        sender: bytes,
        context_hash: bytes,
        param_count: int,
        layout_hash: bytes,
        count: int,
    ) -> None:
        if len(sender) != 20:
            raise ValueError("sender must be a 20-byte address")
        self._fields = dict(
            kind=kind,
            params_id=params_id,
            round_id=round_id,
            sender=bytes(sender),
            context_hash=context_hash,
            param_count=param_count,
            layout_hash=layout_hash,
            count=count,
        )
        self._buffer = io.BytesIO()
        self._buffer.write(bytes(HEADER_SIZE))
        self._digest = tagged_hasher(Tag.BLOB_PAYLOAD)

    @classmethod
    def like(cls, header: BlobHeader) -> BlobWriter:
        """A writer for a blob with ``header``'s fields and a new payload."""
        return cls(
            kind=header.kind,
            params_id=header.params_id,
            round_id=header.round_id,
            sender=header.sender,
            context_hash=header.context_hash,
            param_count=header.param_count,
            layout_hash=header.layout_hash,
            count=header.count,
        )

    def write(self, data: bytes | memoryview) -> None:
        self._buffer.write(data)
        self._digest.update(data)

    def finish(self) -> bytes:
        payload_length = self._buffer.tell() - HEADER_SIZE
        header = BlobHeader(
            payload_length=payload_length,
            payload_digest=self._digest.digest(),
            **self._fields,  # type: ignore[arg-type]
        )
        self._buffer.seek(0)
        self._buffer.write(header.pack())
        return self._buffer.getvalue()


def make_blob(
    *,
    kind: PayloadKind,
    params_id: int,
    round_id: int,
    sender: bytes,
    context_hash: bytes,
    param_count: int,
    layout_hash: bytes,
    count: int,
    payload: bytes,
) -> bytes:
    """A blob around a payload already in memory (see :class:`BlobWriter` to stream one)."""
    writer = BlobWriter(
        kind=kind,
        params_id=params_id,
        round_id=round_id,
        sender=sender,
        context_hash=context_hash,
        param_count=param_count,
        layout_hash=layout_hash,
        count=count,
    )
    writer.write(payload)
    return writer.finish()


def read_header(blob: bytes | memoryview, *, verify_payload: bool = True) -> BlobHeader:
    """Parse and check a blob's header: structure, size bound, payload length and digest.

    Raises :class:`MalformedBlobError` (truncated, bad magic, unknown version or kind, length or
    digest mismatch), :class:`UnknownParameterSetError` and :class:`OversizedBlobError` (larger
    than :func:`max_blob_size` for the kind and parameter count it declares).
    """
    if len(blob) < HEADER_SIZE:
        raise MalformedBlobError(f"blob of {len(blob)} bytes is shorter than its header")
    (
        magic,
        version,
        kind,
        params_id,
        round_id,
        sender,
        context_hash,
        param_count,
        layout_hash,
        count,
        payload_length,
        payload_digest,
    ) = HEADER.unpack_from(blob, 0)
    if magic != MAGIC:
        raise MalformedBlobError("not a swarm ciphertext blob (bad magic)")
    if version != FORMAT_VERSION:
        raise MalformedBlobError(f"blob format version {version} is not supported")
    try:
        payload_kind = PayloadKind(kind)
    except ValueError:
        raise MalformedBlobError(f"unknown payload kind {kind}") from None
    get_params(params_id)  # UnknownParameterSetError
    if param_count <= 0:
        raise MalformedBlobError("blob declares no parameters")
    if count <= 0:
        raise MalformedBlobError("blob declares a sum of zero updates")
    limit = max_blob_size(param_count, params_id, payload_kind)
    if len(blob) > limit:
        raise OversizedBlobError(len(blob), limit)
    if HEADER_SIZE + payload_length != len(blob):
        raise MalformedBlobError(
            f"payload length {payload_length} does not match the blob "
            f"({len(blob) - HEADER_SIZE} bytes after the header): truncated or padded"
        )
    payload = memoryview(blob)[HEADER_SIZE:]
    if verify_payload and tagged_hash(Tag.BLOB_PAYLOAD, payload) != payload_digest:
        raise MalformedBlobError("payload digest mismatch: the payload is corrupted")
    return BlobHeader(
        kind=payload_kind,
        params_id=params_id,
        round_id=round_id,
        sender=sender,
        context_hash=context_hash,
        param_count=param_count,
        layout_hash=layout_hash,
        count=count,
        payload_length=payload_length,
        payload_digest=payload_digest,
        version=version,
    )


def check_header(
    header: BlobHeader,
    *,
    round_id: int,
    params_id: int,
    context_hash: bytes,
    layout_hash: bytes,
    param_count: int,
    kinds: frozenset[PayloadKind] | set[PayloadKind],
    sender: bytes | None = None,
) -> None:
    """Refuse a well-formed blob that belongs to another round, context, model or sender.

    Raises :class:`BlobMismatchError` naming the first field that differs (layout and parameter
    count differences as :class:`LayoutMismatchError`).
    """
    if header.kind not in kinds:
        raise BlobMismatchError("kind", sorted(k.name for k in kinds), header.kind.name)
    if header.params_id != params_id:
        raise BlobMismatchError("params_id", params_id, header.params_id)
    if header.round_id != round_id:
        raise BlobMismatchError("round", round_id, header.round_id)
    if header.context_hash != context_hash:
        raise BlobMismatchError("context_hash", context_hash, header.context_hash)
    if header.param_count != param_count:
        raise LayoutMismatchError("param_count", param_count, header.param_count)
    if header.layout_hash != layout_hash:
        raise LayoutMismatchError("layout_hash", layout_hash, header.layout_hash)
    if sender is not None and header.sender != sender:
        raise BlobMismatchError("sender", sender, header.sender)
