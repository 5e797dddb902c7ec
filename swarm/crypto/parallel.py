"""One update's encryption, or one aggregate's decryption, split into ranges of chunks.

Chunks are independent (each is one ciphertext, its mask drawn from its own index), so
:func:`encrypt_vector_split` and :func:`decrypt_aggregate_split` cut the work into ``parts``
contiguous ranges and hand them to ``run``: a map that the caller backs with worker processes
(swarm.peer.cores), one part per core, because SEAL's calls hold Python's GIL and threads do
not run them side by side. What the workers get is picklable and self-contained (the round
context as bytes, a slice of values or of the aggregate's payload, the mask seeds); what they
return is joined in order. The result is the serial functions' own: a decryption bit for bit
(:func:`swarm.crypto.codec.decrypt_aggregate`), an encryption in the same format
(:func:`swarm.crypto.codec.encrypt_vector`; its randomness is fresh either way).

Pure: no processes here, no I/O. A worker rebuilds a round's context once and keeps the last
few (:data:`CONTEXTS_KEPT`), so a round's parts and the next rounds' pay for it once.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from swarm.crypto.blob import HEADER_SIZE, PayloadKind
from swarm.crypto.codec import (
    _AGGREGATE_PREAMBLE,
    RoundContext,
    _chunk_sizes,
    _expander,
    aggregate_chunk,
    aggregate_layout,
    checked_for_decryption,
    decrypt_chunk,
    encrypt_chunks,
    update_writer,
)
from swarm.crypto.keys import PublicRoundContext, SecretRoundContext
from swarm.crypto.layout import Layout
from swarm.crypto.masking import MaskContext, MaskTerm, round_to_grid

#: ``run(job, [args, ...])``: ``job(*args)`` for each, results in the same order
Runner = Callable[[Callable[..., Any], Sequence[tuple[Any, ...]]], list[Any]]
#: round contexts a worker keeps loaded (a round's and the next rounds')
CONTEXTS_KEPT = 4


@dataclass(frozen=True)
class ContextKeys:
    """A round context as bytes, for a worker to load: the public context as the steward
    published it (checked against its hash again there) and, for encrypting seeded updates and
    decrypting, the SEAL secret key."""

    params_id: int
    public_bytes: bytes
    context_hash: bytes
    secret_key: bytes | None

    @classmethod
    def of(cls, ctx: RoundContext) -> ContextKeys:
        secret = ctx._secret_key if isinstance(ctx, SecretRoundContext) else None
        return cls(ctx.params_id, ctx.public_bytes, ctx.context_hash, secret)

    def __repr__(self) -> str:  # never show key material
        return f"ContextKeys(params_id={self.params_id}, hash={self.context_hash.hex()})"


_loaded: dict[tuple[bytes, bool], RoundContext] = {}
_loaded_lock = threading.Lock()


def _context(keys: ContextKeys) -> RoundContext:
    """The round context ``keys`` describe, loaded once per worker."""
    slot = (keys.context_hash, keys.secret_key is not None)
    with _loaded_lock:
        ctx = _loaded.get(slot)
        if ctx is None:
            public = PublicRoundContext.from_bytes(
                keys.public_bytes, params_id=keys.params_id, expected_hash=keys.context_hash
            )
            if keys.secret_key is None:
                ctx = public
            else:
                ctx = SecretRoundContext._attach(public, keys.secret_key)
            if len(_loaded) >= CONTEXTS_KEPT:
                _loaded.pop(next(iter(_loaded)))
            _loaded[slot] = ctx
        return ctx


def _terms(masks: Sequence[tuple[bytes, int]]) -> list[MaskTerm]:
    return [MaskTerm(seed, sign) for seed, sign in masks]


def _mask_context(packed: tuple[int, bytes, int, int] | None) -> MaskContext | None:
    return None if packed is None else MaskContext(*packed)


def _packed_mask_context(ctx: MaskContext | None) -> tuple[int, bytes, int, int] | None:
    if ctx is None:
        return None
    return (ctx.chain_id, ctx.contract, ctx.round_id, ctx.attempt)


def _ranges(chunks: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` (at most ``chunks``) contiguous ranges ``(first, end)`` of nearly equal size."""
    parts = max(1, min(parts, chunks))
    bounds = [chunks * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


# --- encryption -----------------------------------------------------------------------------


def encrypt_job(
    keys: ContextKeys,
    values: npt.NDArray[np.floating],
    sizes: Sequence[int],
    weight: float,
    first: int,
    total: int,
    masks: Sequence[tuple[bytes, int]],
    mask_context: tuple[int, bytes, int, int] | None,
) -> bytes:
    """A worker's part: the payload records of chunks ``first ..`` (see
    :func:`swarm.crypto.codec.encrypt_chunks`)."""
    sink = io.BytesIO()
    encrypt_chunks(
        sink,
        _context(keys),
        values,
        sizes,
        weight,
        first=first,
        total=total,
        masks=_terms(masks),
        mask_context=_mask_context(mask_context),
    )
    return sink.getvalue()


def encrypt_vector_split(
    values: npt.NDArray[np.floating],
    ctx: RoundContext,
    *,
    layout: Layout,
    weight: float,
    round_id: int,
    sender: bytes,
    run: Runner,
    parts: int,
    masks: Sequence[MaskTerm] = (),
    mask_context: MaskContext | None = None,
    contributors: int | None = None,
) -> bytes:
    """:func:`swarm.crypto.codec.encrypt_vector` with its chunks encrypted in ``parts`` ranges
    by ``run``; the same checks and errors, the same blob format."""
    writer = update_writer(
        values, ctx, layout=layout, weight=weight, round_id=round_id, sender=sender,
        contributors=contributors,
    )  # fmt: skip
    _expander(ctx, masks, mask_context)  # the same refusal as the serial path, before any work
    sizes = _chunk_sizes(layout.param_count, ctx.params)
    offsets = np.cumsum([0, *sizes])
    keys = ContextKeys.of(ctx)
    seeds = [(term.seed, term.sign) for term in masks]
    packed = _packed_mask_context(mask_context)
    jobs = [
        (
            keys,
            values[offsets[first] : offsets[end]],
            sizes[first:end],
            float(weight),
            first,
            len(sizes),
            seeds,
            packed,
        )
        for first, end in _ranges(len(sizes), parts)
    ]
    for records in run(encrypt_job, jobs):
        writer.write(records)
    return writer.finish()


# --- decryption -----------------------------------------------------------------------------


def decrypt_job(
    keys: ContextKeys,
    chunks: bytes | memoryview,
    stride: int,
    sizes: Sequence[int],
    first: int,
    total: int,
    unmask: Sequence[tuple[bytes, int]],
    mask_context: tuple[int, bytes, int, int] | None,
) -> npt.NDArray[np.float64]:
    """A worker's part: chunks ``first ..`` of a seeded aggregate (``chunks``: their bytes,
    ``stride`` each), decrypted and unmasked; not yet rounded to the grid."""
    ctx = _context(keys)
    bridge = ctx._bridge
    terms = _terms(unmask)
    expander = _expander(ctx, terms, _mask_context(mask_context), total)
    out = np.empty(sum(sizes), dtype=np.float64)
    offset = 0
    view = memoryview(chunks)
    for index, size in enumerate(sizes):
        c0, records = aggregate_chunk(bridge, view[index * stride : (index + 1) * stride])
        values = decrypt_chunk(bridge, first + index, c0, records, expander, terms)
        out[offset : offset + size] = values[:size]
        offset += size
    return out


def decrypt_aggregate_split(
    blob: bytes | memoryview,
    ctx: SecretRoundContext,
    *,
    round_id: int,
    layout: Layout,
    run: Runner,
    parts: int,
    expected_count: int | None = None,
    unmask: Sequence[MaskTerm] = (),
    mask_context: MaskContext | None = None,
) -> npt.NDArray[np.float64]:
    """:func:`swarm.crypto.codec.decrypt_aggregate` of a seeded aggregate, its chunks
    decrypted in ``parts`` ranges by ``run``: the same checks and errors, the same values bit
    for bit."""
    header = checked_for_decryption(
        blob,
        ctx,
        round_id=round_id,
        layout=layout,
        kinds=frozenset({PayloadKind.SEEDED_AGGREGATE}),
        expected_count=expected_count,
    )
    _expander(ctx, unmask, mask_context)  # the same refusal as the serial path
    payload = memoryview(blob)[HEADER_SIZE:]
    _k, stride = aggregate_layout(payload, header, ctx._bridge)
    sizes = _chunk_sizes(layout.param_count, ctx.params)
    keys = ContextKeys.of(ctx)
    seeds = [(term.seed, term.sign) for term in unmask]
    packed = _packed_mask_context(mask_context)
    start = _AGGREGATE_PREAMBLE.size
    jobs = [
        (
            keys,
            payload[start + first * stride : start + end * stride],
            stride,
            sizes[first:end],
            first,
            len(sizes),
            seeds,
            packed,
        )
        for first, end in _ranges(len(sizes), parts)
    ]
    values = np.concatenate(run(decrypt_job, jobs))
    return round_to_grid(values)


def in_process(job: Callable[..., Any], jobs: Sequence[tuple[Any, ...]]) -> list[Any]:
    """A :data:`Runner` that runs every part here, one after the other."""
    return [job(*args) for args in jobs]


__all__ = [
    "ContextKeys",
    "Runner",
    "decrypt_aggregate_split",
    "decrypt_job",
    "encrypt_job",
    "encrypt_vector_split",
    "in_process",
]
