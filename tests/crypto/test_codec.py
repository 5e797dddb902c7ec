"""Encrypting weighted updates, adding them without a secret key, decrypting the sum.

Every expectation is the same arithmetic done in float64 on the plaintext updates."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

import numpy as np
import pytest
import tenseal as ts
import torch

from swarm.crypto import (
    HEADER_SIZE,
    ROUNDING_GRID,
    Aggregator,
    Layout,
    MaskContext,
    MaskTerm,
    PayloadKind,
    PublicRoundContext,
    SecretRoundContext,
    TensorSpec,
    _proto,
    aggregate,
    blob_id,
    codec,
    decrypt_aggregate,
    decrypt_blob,
    encrypt_update,
    encrypt_vector,
    flatten,
    max_blob_size,
    mean_update,
    read_header,
)
from swarm.crypto.blob import make_blob
from swarm.errors import (
    BlobMismatchError,
    DuplicateUpdateError,
    LayoutMismatchError,
    MalformedBlobError,
    OversizedBlobError,
    SecretKeyUnavailableError,
    ValueRangeError,
)

from .conftest import ROUND, member_address

MERGE_PEER = member_address(0)
Delta = dict[str, torch.Tensor]
MakeDelta = Callable[[int], Delta]


def exact_sum(deltas: list[Delta], weights: list[float], layout: Layout) -> np.ndarray:
    return np.sum(
        [w * flatten(d, layout).astype(np.float64) for d, w in zip(deltas, weights, strict=True)],
        axis=0,
    )


def seeded(ctx: SecretRoundContext, delta: Delta, layout: Layout, weight: float, who: int) -> bytes:
    return encrypt_update(
        delta, ctx, layout=layout, weight=weight, round_id=ROUND, sender=member_address(who)
    )


def tenseal_vector_blob(
    kind: PayloadKind, ctx: PublicRoundContext, layout: Layout, values: np.ndarray
) -> bytes:
    """A blob of one of the older TenSEAL-vector kinds (2: public-key update, 3: aggregate):
    ``values`` encrypted with the round's public key, from the merge peer."""
    seal_bytes = ctx._bridge.encrypt_public(values)
    size = layout.param_count
    return make_blob(
        kind=kind,
        params_id=ctx.params_id,
        round_id=ROUND,
        sender=MERGE_PEER,
        context_hash=ctx.context_hash,
        param_count=size,
        layout_hash=layout.hash,
        count=1,
        payload=b"".join(_proto.iter_ckks_vector([size], [seal_bytes], ctx.params.scale)),
    )


def test_sum_of_ten_updates_decrypts_within_1e6(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
) -> None:
    """Precision: the decrypted sum of 10 weighted updates (9 seeded, the merge peer's own
    plain one) is the plaintext weighted sum within 1e-6 (the 1M-parameter version of this
    check is test_sum_of_ten_updates_of_a_million_parameters and the benchmark)."""
    deltas = [make_delta(seed) for seed in range(10)]
    weights = [float(w) for w in (303, 294, 200, 123, 57, 1, 999, 42, 7, 150)]
    blobs = [
        seeded(holder, d, layout, w, i + 1)
        for i, (d, w) in enumerate(zip(deltas[:9], weights[:9], strict=True))
    ]
    blobs.append(
        encrypt_update(
            deltas[9],
            public_ctx,
            layout=layout,
            weight=weights[9],
            round_id=ROUND,
            sender=MERGE_PEER,
        )
    )
    result = aggregate(blobs, public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)
    decrypted = decrypt_aggregate(result, holder, round_id=ROUND, layout=layout, expected_count=10)
    error = np.max(np.abs(decrypted - exact_sum(deltas, weights, layout)))
    assert error <= 1e-6


@pytest.mark.parametrize("extra", [1, 100, 4095, 4096, 4097])
def test_every_value_of_a_partly_filled_ciphertext_comes_back_in_place(
    holder: SecretRoundContext, public_ctx: PublicRoundContext, extra: int
) -> None:
    """Complex packing's order: a ciphertext's first half of values rides in the slots' real
    parts, the second half in the imaginary parts, and a short last chunk fills the real parts
    first. One full ciphertext plus ``extra`` values (the imaginary parts half-filled, exactly
    filled, or spilling into a third chunk under real packing), each value distinct, summed
    from a seeded and a plain update, comes back in its own position within 1e-6."""
    size = holder.params.values_per_ciphertext + extra
    layout = Layout((TensorSpec("w", (size,)),))
    values = np.linspace(-1.0, 1.0, size)
    blobs = [
        encrypt_vector(
            values, holder, layout=layout, weight=2.0, round_id=ROUND, sender=member_address(1)
        ),
        encrypt_vector(
            values[::-1].copy(),
            public_ctx,
            layout=layout,
            weight=1.0,
            round_id=ROUND,
            sender=MERGE_PEER,
        ),
    ]
    result = aggregate(blobs, public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)
    decrypted = decrypt_aggregate(result, holder, round_id=ROUND, layout=layout)
    assert np.max(np.abs(decrypted - (2.0 * values + values[::-1]))) <= 1e-6


def test_tenseal_vector_kinds_are_refused_under_complex_packing(
    holder: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Malformed input: a TenSEAL-vector aggregate (kind 3, one value per slot) named under a
    complex-packing parameter set would decode half its values as zeros: refused with one line,
    while under real packing it still decrypts (tools read old aggregates)."""
    layout = Layout((TensorSpec("w", (10,)),))
    blob = tenseal_vector_blob(PayloadKind.AGGREGATE, public_ctx, layout, np.arange(10.0))
    kinds = frozenset({PayloadKind.AGGREGATE})
    if public_ctx.params.complex_packing:
        with pytest.raises(MalformedBlobError, match="complex"):
            decrypt_blob(blob, holder, round_id=ROUND, layout=layout, kinds=kinds)
    else:
        decrypted = decrypt_blob(blob, holder, round_id=ROUND, layout=layout, kinds=kinds)
        assert np.max(np.abs(decrypted - np.arange(10.0))) <= 1e-6


@pytest.mark.slow
def test_sum_of_ten_updates_of_a_million_parameters(
    holder: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Precision at full size: 10 updates of 1,000,000 parameters, max abs error <= 1e-6."""
    layout = Layout((TensorSpec("w", (1_000_000,)),))
    rng = np.random.default_rng(1)
    aggregator = Aggregator(public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)
    expected = np.zeros(layout.param_count)
    for who in range(10):
        values = rng.normal(0.0, 1e-2, layout.param_count).astype(np.float32)
        weight = float(10 + 50 * who)
        expected += weight * values.astype(np.float64)
        aggregator.add(
            encrypt_vector(
                values,
                holder,
                layout=layout,
                weight=weight,
                round_id=ROUND,
                sender=member_address(who + 1),
            )
        )
    decrypted = decrypt_aggregate(aggregator.finish(), holder, round_id=ROUND, layout=layout)
    assert np.max(np.abs(decrypted - expected)) <= 1e-6


def test_mean_update_is_the_weighted_mean_as_float32_tensors(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
) -> None:
    """Restore: the decrypted aggregate divided by the total weight, back in the model's shape."""
    deltas = [make_delta(11), make_delta(12)]
    blobs = [seeded(holder, deltas[0], layout, 30.0, 1), seeded(holder, deltas[1], layout, 10.0, 2)]
    result = aggregate(blobs, public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)
    mean = mean_update(result, holder, round_id=ROUND, layout=layout, total_weight=40.0)
    assert list(mean) == [spec.name for spec in layout.tensors]
    for name, tensor in mean.items():
        expected = (30.0 * deltas[0][name].double() + 10.0 * deltas[1][name].double()) / 40.0
        assert tensor.dtype == torch.float32 and tensor.shape == deltas[0][name].shape
        assert torch.max(torch.abs(tensor.double() - expected)) < 1e-6


def test_key_holders_decrypt_bit_identical_sums(
    holder: SecretRoundContext,
    steward: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
) -> None:
    """Determinism: honest peers must derive the same model hash from the same aggregate (the
    merge peer's plain update and two seeded ones; two key holders' own contexts)."""
    result = aggregate(
        [
            encrypt_update(
                make_delta(2),
                public_ctx,
                layout=layout,
                weight=2.0,
                round_id=ROUND,
                sender=MERGE_PEER,
            ),
            seeded(holder, make_delta(3), layout, 5.0, 1),
            seeded(steward, make_delta(4), layout, 1.0, 2),
        ],
        public_ctx,
        round_id=ROUND,
        layout=layout,
        merge_peer=MERGE_PEER,
    )
    a = decrypt_aggregate(result, holder, round_id=ROUND, layout=layout)
    b = decrypt_aggregate(result, steward, round_id=ROUND, layout=layout)
    assert a.tobytes() == b.tobytes()


def test_seeded_update_is_about_15_bytes_per_parameter(holder: SecretRoundContext) -> None:
    """Compact wire format: seeded symmetric at the last level, coefficients packed to 60 bits:
    <= 16 bytes per parameter on the participants' path (exactly computable for full chunks),
    <= 8 with complex packing (two values per slot)."""
    params = holder.params
    layout = Layout((TensorSpec("w", (4 * params.values_per_ciphertext,)),))
    blob = encrypt_vector(
        np.zeros(layout.param_count),
        holder,
        layout=layout,
        weight=1.0,
        round_id=ROUND,
        sender=member_address(1),
    )
    per_chunk = 5 + 1 + 64 + 8192 * 60 // 8  # record header, prng type, seed, packed polynomial
    assert len(blob) == HEADER_SIZE + 4 * per_chunk
    assert len(blob) / layout.param_count <= (8.0 if params.complex_packing else 16.0)


def test_plain_update_and_aggregate_are_about_15_bytes_per_parameter(
    holder: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Merge-peer path sizes, computed by hand: the plain update is one packed polynomial per
    chunk; the aggregate a preamble, then per chunk the summed polynomial and one seed record
    per seeded contributor; every blob within max_blob_size of its kind."""
    params_id = public_ctx.params_id
    layout = Layout((TensorSpec("w", (2 * public_ctx.params.values_per_ciphertext,)),))
    values = np.random.default_rng(4).normal(0.0, 1e-2, layout.param_count)
    mine = encrypt_vector(
        values, public_ctx, layout=layout, weight=1.0, round_id=ROUND, sender=MERGE_PEER
    )
    theirs = [
        encrypt_vector(
            values, holder, layout=layout, weight=1.0, round_id=ROUND, sender=member_address(i)
        )
        for i in (1, 2)
    ]
    result = aggregate(
        [mine, *theirs], public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER
    )
    poly = 8192 * 60 // 8
    assert read_header(mine).kind is PayloadKind.PLAIN_UPDATE
    assert len(mine) == HEADER_SIZE + 2 * poly
    header = read_header(result)
    assert (header.kind, header.count) == (PayloadKind.SEEDED_AGGREGATE, 3)
    assert len(result) == HEADER_SIZE + 4 + 2 * (poly + 2 * 65)
    assert result[HEADER_SIZE : HEADER_SIZE + 4] == (2).to_bytes(4, "big")
    for blob in (mine, *theirs, result):
        kind = read_header(blob).kind
        assert len(blob) <= max_blob_size(layout.param_count, params_id, kind)
        bound = max_blob_size(layout.param_count, params_id)
        assert max_blob_size(layout.param_count, params_id, kind) <= bound


@pytest.mark.slow
def test_aggregate_of_a_million_parameters_is_at_most_16_bytes_per_parameter(
    holder: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Issue 14's size goal, on bytes: the aggregate of 1M parameters from the merge peer's
    plain update and 3 seeded ones (4 hospitals) is <= 16 bytes per parameter, which is what a
    key holder downloads; and it still decrypts to the sum within 1e-6."""
    layout = Layout((TensorSpec("w", (1_000_000,)),))
    rng = np.random.default_rng(2)
    aggregator = Aggregator(public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)
    expected = np.zeros(layout.param_count)
    for who in range(4):
        values = rng.normal(0.0, 1e-2, layout.param_count).astype(np.float32)
        expected += 10.0 * values.astype(np.float64)
        ctx = public_ctx if who == 0 else holder
        aggregator.add(
            encrypt_vector(
                values, ctx, layout=layout, weight=10.0, round_id=ROUND, sender=member_address(who)
            )
        )
    result = aggregator.finish()
    params = public_ctx.params
    chunks = -(-layout.param_count // params.values_per_ciphertext)
    assert len(result) == HEADER_SIZE + 4 + chunks * (61_440 + 3 * 65)
    assert len(result) / layout.param_count <= (8.0 if params.complex_packing else 16.0)
    decrypted = decrypt_aggregate(result, holder, round_id=ROUND, layout=layout, expected_count=4)
    assert np.max(np.abs(decrypted - expected)) <= 1e-6


def test_plain_update_decodes_to_the_weighted_values(
    holder: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """The merge peer's plain update is SEAL's encoding of weight * values (a trivial
    ciphertext: second polynomial zero), including all-zero and constant chunks that SEAL's
    zstd compresses (read coefficient by coefficient)."""
    layout = Layout((TensorSpec("w", (3 * 4096 + 10,)),))
    values = np.random.default_rng(6).normal(0.0, 1e-2, layout.param_count)
    values[:4096] = 0.0  # an all-zero chunk: the zero polynomial
    values[4096:8192] = 0.125  # a constant chunk: compressible
    blob = encrypt_vector(
        values, public_ctx, layout=layout, weight=3.0, round_id=ROUND, sender=MERGE_PEER
    )
    decoded = decrypt_blob(
        blob, holder, round_id=ROUND, layout=layout, kinds=frozenset({PayloadKind.PLAIN_UPDATE})
    )
    assert np.max(np.abs(decoded - 3.0 * values)) < 1e-9


def test_aggregate_records_the_sum_of_first_polynomials_and_every_seed(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
) -> None:
    """Format: the aggregate's first polynomials are the sum mod q0 of the updates' (plain and
    seeded), and it carries each seeded update's seed record, chunk by chunk, in order."""
    blobs = [
        encrypt_update(
            make_delta(30), public_ctx, layout=layout, weight=2.0, round_id=ROUND, sender=MERGE_PEER
        ),
        seeded(holder, make_delta(31), layout, 1.0, 1),
        seeded(holder, make_delta(32), layout, 1.0, 2),
    ]
    result = aggregate(blobs, public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)
    bridge = public_ctx._bridge
    q = bridge.last_moduli[0]
    parts = [list(codec._iter_polys(b, read_header(b), bridge)) for b in [*blobs, result]]
    for index, (_size, total, seeds) in enumerate(parts[-1]):
        c0s = [p[index][1] for p in parts[:-1]]
        expected = sum(int(c[0]) for c in c0s) % q
        assert int(total[0]) == expected
        assert (total.astype(object) == sum(c.astype(object) for c in c0s) % q).all()
        assert seeds == [parts[1][index][2][0], parts[2][index][2][0]]


def test_60_bit_packing_is_the_generic_little_endian_bit_packing() -> None:
    """Wire format: the fast 60-bit path packs and unpacks exactly as the generic bit packer
    (the format every earlier blob used), for the extremes and random values."""
    from swarm.crypto._seal import _pack_bits, _unpack_bits

    rng = np.random.default_rng(9)
    values = rng.integers(0, 2**60, 8192, dtype=np.uint64)
    values[:4] = [0, 2**60 - 1, 1, 2**59]
    as_bytes = values.astype("<u8").view(np.uint8).reshape(-1, 8)
    bits = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :60]
    generic = np.packbits(bits.reshape(-1), bitorder="little").tobytes()
    assert _pack_bits(values, 60) == generic
    assert (_unpack_bits(generic, 8192, 60) == values).all()
    odd = _pack_bits(values[:7], 60)  # the generic path, for a count the fast one does not take
    assert (_unpack_bits(odd, 7, 60) == values[:7]).all()


def test_encryption_is_randomized(
    holder: SecretRoundContext, layout: Layout, make_delta: MakeDelta
) -> None:
    """Semantic security: the same update encrypted twice gives different ciphertexts (fresh
    seeds and noise), so a commitment reveals nothing about equal updates."""
    delta = make_delta(1)
    assert (
        seeded(holder, delta, layout, 1.0, 1)[HEADER_SIZE:]
        != seeded(holder, delta, layout, 1.0, 1)[HEADER_SIZE:]
    )


def test_unpackable_ciphertexts_travel_in_seals_own_encoding(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fallback encoding: where packing declines at encryption, SEAL's bytes are sent as they
    are; the merge peer reduces them to seed + first polynomial and they still sum and decrypt
    correctly."""
    delta = make_delta(8)
    monkeypatch.setattr(holder._bridge, "pack_seeded", lambda seal_bytes, mask=None: None)
    blob = seeded(holder, delta, layout, 3.0, 1)
    monkeypatch.undo()
    assert blob[HEADER_SIZE] == codec.ENCODING_SEAL
    result = aggregate([blob], public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)
    decrypted = decrypt_aggregate(result, holder, round_id=ROUND, layout=layout)
    assert (
        np.max(np.abs(decrypted - 3.0 * flatten(delta, layout))) < 1e-7 + ROUNDING_GRID / 2
    )  # aggregates are rounded to the grid


def test_largest_allowed_values_still_decode(
    holder: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Range: max_contributors updates at the per-update bound sum to a decodable value. A
    whole ciphertext's values at the bound: with complex packing each slot's modulus is then
    sqrt(2) times the bound (docs/crypto.md, "Parameter sets")."""
    params = holder.params
    size = params.values_per_ciphertext
    layout = Layout((TensorSpec("w", (size,)),))
    values = np.full(size, params.max_abs_value)
    values[1::2] *= -1
    aggregator = Aggregator(public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)
    for who in range(params.max_contributors):
        aggregator.add(
            encrypt_vector(
                values, holder, layout=layout, weight=1.0, round_id=ROUND, sender=bytes([who]) * 20
            )
        )
    decrypted = decrypt_aggregate(aggregator.finish(), holder, round_id=ROUND, layout=layout)
    np.testing.assert_allclose(decrypted, params.max_contributors * values, atol=1e-6)


@pytest.mark.parametrize(
    ("value", "weight", "match"),
    [
        (np.nan, 1.0, "NaN"),
        (np.inf, 1.0, "NaN"),
        (5000.0, 1.0, "above"),
        (1.0, 5000.0, "above"),
        (1.0, 0.0, "weight"),
        (1.0, -2.0, "weight"),
    ],
)
def test_values_outside_the_parameter_set_range_are_refused(
    holder: SecretRoundContext, value: float, weight: float, match: str
) -> None:
    """Out-of-range update: NaN/inf, too large once weighted, or a non-positive weight would
    otherwise decrypt to a silently wrong sum."""
    layout = Layout((TensorSpec("w", (3,)),))
    with pytest.raises(ValueRangeError, match=match):
        encrypt_vector(
            np.array([0.0, value, 0.0]),
            holder,
            layout=layout,
            weight=weight,
            round_id=ROUND,
            sender=member_address(1),
        )


def test_update_for_another_model_is_refused_at_encryption(
    holder: SecretRoundContext, layout: Layout
) -> None:
    """Layout mismatch on the sending side: a delta not shaped like the layout."""
    with pytest.raises(LayoutMismatchError):
        encrypt_update(
            {"w": torch.zeros(3)},
            holder,
            layout=layout,
            weight=1.0,
            round_id=ROUND,
            sender=member_address(1),
        )


# --- the merge peer's refusals --------------------------------------------------------------


@pytest.fixture()
def good_blob(holder: SecretRoundContext, layout: Layout, make_delta: MakeDelta) -> bytes:
    return seeded(holder, make_delta(21), layout, 4.0, 1)


def fresh(public_ctx: PublicRoundContext, layout: Layout) -> Aggregator:
    return Aggregator(public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)


def test_update_from_another_round_is_refused(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
) -> None:
    """Replayed update from another round."""
    old = encrypt_update(
        make_delta(1),
        holder,
        layout=layout,
        weight=1.0,
        round_id=ROUND - 1,
        sender=member_address(1),
    )
    with pytest.raises(BlobMismatchError) as info:
        fresh(public_ctx, layout).add(old)
    assert (info.value.field, info.value.expected, info.value.actual) == ("round", ROUND, ROUND - 1)


def test_update_under_another_context_is_refused(
    other_steward: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
) -> None:
    """Update encrypted under another round key."""
    blob = seeded(other_steward, make_delta(1), layout, 1.0, 1)
    with pytest.raises(BlobMismatchError) as info:
        fresh(public_ctx, layout).add(blob)
    assert info.value.field == "context_hash"


def test_update_for_another_model_is_refused(
    holder: SecretRoundContext, public_ctx: PublicRoundContext, layout: Layout
) -> None:
    """Layout mismatch: an update for another architecture with the same parameter count."""
    other = Layout((TensorSpec("other", (layout.param_count,)),))
    blob = encrypt_vector(
        np.zeros(layout.param_count),
        holder,
        layout=other,
        weight=1.0,
        round_id=ROUND,
        sender=member_address(1),
    )
    with pytest.raises(LayoutMismatchError) as info:
        fresh(public_ctx, layout).add(blob)
    assert info.value.field == "layout_hash"


def test_update_with_another_parameter_count_is_refused(
    holder: SecretRoundContext, public_ctx: PublicRoundContext, layout: Layout
) -> None:
    """Parameter-count mismatch."""
    smaller = Layout((TensorSpec("w", (layout.param_count - 1,)),))
    blob = encrypt_vector(
        np.zeros(smaller.param_count),
        holder,
        layout=smaller,
        weight=1.0,
        round_id=ROUND,
        sender=member_address(1),
    )
    with pytest.raises(LayoutMismatchError) as info:
        fresh(public_ctx, layout).add(blob)
    assert (info.value.field, info.value.actual) == ("param_count", layout.param_count - 1)


def test_second_update_from_the_same_sender_is_refused(
    public_ctx: PublicRoundContext, layout: Layout, good_blob: bytes
) -> None:
    """Duplicate contribution (a sender counted twice would skew the weighted mean)."""
    aggregator = fresh(public_ctx, layout)
    aggregator.add(good_blob)
    with pytest.raises(DuplicateUpdateError):
        aggregator.add(good_blob)
    assert aggregator.contributors == (member_address(1),)


def test_update_whose_id_is_not_the_committed_one_is_refused(
    public_ctx: PublicRoundContext, layout: Layout, good_blob: bytes
) -> None:
    """Commitment check: a blob whose id differs from the sender's ledger commitment."""
    committed = hashlib.sha256(b"what the sender committed").digest()
    with pytest.raises(BlobMismatchError) as info:
        fresh(public_ctx, layout).add(good_blob, expected_id=committed)
    assert info.value.field == "blob_id"
    fresh(public_ctx, layout).add(good_blob, expected_id=blob_id(good_blob))


def test_update_relayed_by_another_peer_is_refused(
    public_ctx: PublicRoundContext, layout: Layout, good_blob: bytes
) -> None:
    """Sender mismatch: the header's sender is not the authenticated peer that sent it."""
    with pytest.raises(BlobMismatchError) as info:
        fresh(public_ctx, layout).add(good_blob, expected_sender=member_address(2))
    assert info.value.field == "sender"


def test_aggregate_is_not_accepted_as_an_update(
    public_ctx: PublicRoundContext, layout: Layout, good_blob: bytes
) -> None:
    """Wrong payload kind: an aggregate fed back in as an update."""
    result = aggregate(
        [good_blob], public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER
    )
    with pytest.raises(BlobMismatchError) as info:
        fresh(public_ctx, layout).add(result)
    assert info.value.field == "kind"


@pytest.mark.parametrize("cut", [10, HEADER_SIZE + 100, -1])
def test_truncated_update_is_refused(
    public_ctx: PublicRoundContext, layout: Layout, good_blob: bytes, cut: int
) -> None:
    """Truncated bytes."""
    with pytest.raises(MalformedBlobError):
        fresh(public_ctx, layout).add(good_blob[:cut])


def test_corrupted_update_is_refused(
    public_ctx: PublicRoundContext, layout: Layout, good_blob: bytes
) -> None:
    """Corrupted bytes in the ciphertext (caught by the payload digest)."""
    data = bytearray(good_blob)
    data[HEADER_SIZE + 5000] ^= 0x10
    with pytest.raises(MalformedBlobError, match="digest"):
        fresh(public_ctx, layout).add(bytes(data))


def test_oversized_update_is_refused(
    public_ctx: PublicRoundContext, layout: Layout, good_blob: bytes
) -> None:
    """A blob larger than the model could produce."""
    header = read_header(good_blob)
    padding = b"\x00" * max_blob_size(layout.param_count, public_ctx.params_id)
    forged = make_blob(
        kind=header.kind,
        params_id=public_ctx.params_id,
        round_id=ROUND,
        sender=header.sender,
        context_hash=header.context_hash,
        param_count=header.param_count,
        layout_hash=header.layout_hash,
        count=1,
        payload=good_blob[HEADER_SIZE:] + padding,
    )
    with pytest.raises(OversizedBlobError):
        fresh(public_ctx, layout).add(forged)


def _reheader(blob: bytes, payload: bytes) -> bytes:
    """The same header over another payload, digest recomputed: what a malicious or buggy
    sender can produce (and then commit on the ledger)."""
    h = read_header(blob, verify_payload=False)
    return make_blob(
        kind=h.kind,
        params_id=h.params_id,
        round_id=h.round_id,
        sender=h.sender,
        context_hash=h.context_hash,
        param_count=h.param_count,
        layout_hash=h.layout_hash,
        count=h.count,
        payload=payload,
    )


def test_invalid_ciphertext_is_refused_and_leaves_the_sum_unchanged(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
    good_blob: bytes,
) -> None:
    """Malformed ciphertext with a valid digest: coefficients >= the modulus in the last chunk.
    The merge peer's check refuses it, and the chunks already added are rolled back: the sum
    is bit-for-bit the one before."""
    aggregator = fresh(public_ctx, layout)
    aggregator.add(good_blob)
    bad = bytearray(seeded(holder, make_delta(22), layout, 1.0, 2))
    bad[-2000:] = b"\xff" * 2000  # inside the last chunk's packed polynomial
    before = [row.copy() for row in aggregator._sums]
    with pytest.raises(MalformedBlobError, match="modulus"):
        aggregator.add(_reheader(bytes(bad), bytes(bad[HEADER_SIZE:])))
    assert aggregator.contributors == (member_address(1),)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before, aggregator._sums, strict=True))
    decrypted = decrypt_aggregate(aggregator.finish(), holder, round_id=ROUND, layout=layout)
    expected = 4.0 * flatten(make_delta(21), layout).astype(np.float64)
    assert np.max(np.abs(decrypted - expected)) < 1e-7 + ROUNDING_GRID / 2


def test_garbled_chunk_records_are_refused(
    public_ctx: PublicRoundContext, layout: Layout, good_blob: bytes
) -> None:
    """Malformed payload structure with a valid digest: unknown encoding, missing or extra bytes."""
    payload = good_blob[HEADER_SIZE:]
    for bad_payload in (b"\x07" + payload[1:], payload[:-10], payload + b"\x00"):
        with pytest.raises(MalformedBlobError):
            fresh(public_ctx, layout).add(_reheader(good_blob, bad_payload))


def _seal_record(seal_bytes: bytes) -> bytes:
    return bytes([codec.ENCODING_SEAL]) + len(seal_bytes).to_bytes(4, "big") + seal_bytes


def test_first_level_ciphertext_is_refused(
    holder: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """A ciphertext at the wrong level (TenSEAL's default, fresh at the first level) in an
    otherwise valid 3-chunk update: larger than any seeded update can be, refused unread."""
    layout = Layout((TensorSpec("w", (3 * 4096,)),))
    template = encrypt_vector(
        np.zeros(layout.param_count),
        holder,
        layout=layout,
        weight=1.0,
        round_id=ROUND,
        sender=member_address(1),
    )
    vector = ts.ckks_vector(holder.tenseal_context, [0.5] * 4096).serialize()
    first_level = bytes(_proto.decode_ckks_vector(vector).ciphertexts[0])
    last_level = holder._bridge.encrypt_seeded(np.zeros(4096))
    payload = _seal_record(first_level) + 2 * _seal_record(last_level)
    with pytest.raises(OversizedBlobError):
        fresh(public_ctx, layout).add(_reheader(template, payload))


def test_unseeded_ciphertext_is_refused(
    holder: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """A last-level ciphertext with its second polynomial in full (public-key encryption) in
    a seeded update: its second polynomial cannot be summed without sending it, so it is
    refused (and the chunks before it rolled back)."""
    layout = Layout((TensorSpec("w", (16 * holder.params.values_per_ciphertext,)),))
    template = encrypt_vector(
        np.zeros(layout.param_count),
        holder,
        layout=layout,
        weight=1.0,
        round_id=ROUND,
        sender=member_address(1),
    )
    full = holder._bridge.encrypt_public(np.zeros(4096))
    record = 5 + holder._bridge.packed_seeded_size
    payload = template[HEADER_SIZE : HEADER_SIZE + 15 * record] + _seal_record(full)
    aggregator = fresh(public_ctx, layout)
    with pytest.raises(MalformedBlobError, match="seeded two-part last-level"):
        aggregator.add(_reheader(template, payload))
    assert aggregator.contributors == () and aggregator._sums == []


def test_ciphertext_at_another_scale_is_refused(
    holder: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """A valid ciphertext whose scale is not the parameter set's: it would add into garbage
    (or make SEAL throw mid-sum), so it is refused when loaded."""
    layout = Layout((TensorSpec("w", (100,)),))
    template = encrypt_vector(
        np.zeros(100), holder, layout=layout, weight=1.0, round_id=ROUND, sender=member_address(1)
    )
    packed = holder._bridge.pack_seeded(holder._bridge.encrypt_seeded(np.zeros(100)))
    assert packed is not None
    seal_bytes = bytearray(holder._bridge.unpack_seeded(packed))
    scale_offset = 16 + 32 + 1 + 8 + 8 + 8  # SEAL header, parms_id, ntt flag, size, N, moduli
    seal_bytes[scale_offset : scale_offset + 8] = struct.pack("<d", 2.0**41)
    with pytest.raises(MalformedBlobError, match="scale"):
        fresh(public_ctx, layout).add(_reheader(template, _seal_record(bytes(seal_bytes))))


def test_public_key_update_is_refused(
    public_ctx: PublicRoundContext, holder: SecretRoundContext
) -> None:
    """A public-key update (kind 2, what the merge peer sent before plain updates): its second
    polynomial is not a seed, so the Aggregator refuses it by kind."""
    layout = Layout((TensorSpec("w", (10,)),))
    blob = tenseal_vector_blob(PayloadKind.PUBLIC_UPDATE, public_ctx, layout, np.zeros(10))
    with pytest.raises(BlobMismatchError) as info:
        fresh(public_ctx, layout).add(blob)
    assert info.value.field == "kind"


def test_plain_update_from_another_peer_is_refused(
    public_ctx: PublicRoundContext, layout: Layout, make_delta: MakeDelta
) -> None:
    """A plain (unencrypted) update is only ever the merge peer's own: one from any other
    sender is refused, even when it arrives authenticated from that sender."""
    blob = encrypt_update(
        make_delta(40),
        public_ctx,
        layout=layout,
        weight=1.0,
        round_id=ROUND,
        sender=member_address(3),
    )
    aggregator = fresh(public_ctx, layout)
    with pytest.raises(BlobMismatchError) as info:
        aggregator.add(blob, expected_sender=member_address(3))
    assert (info.value.field, info.value.expected) == ("sender", MERGE_PEER)
    assert aggregator.contributors == ()


def test_plain_update_with_a_coefficient_at_or_above_q_is_refused(
    public_ctx: PublicRoundContext, layout: Layout, make_delta: MakeDelta
) -> None:
    """A plain update whose packed coefficient is >= q0 (0xff bytes, a digest recomputed):
    refused, the sum unchanged."""
    blob = encrypt_update(
        make_delta(41), public_ctx, layout=layout, weight=1.0, round_id=ROUND, sender=MERGE_PEER
    )
    payload = bytearray(blob[HEADER_SIZE:])
    payload[-16:] = b"\xff" * 16
    with pytest.raises(MalformedBlobError, match="modulus"):
        fresh(public_ctx, layout).add(_reheader(blob, bytes(payload)))
    with pytest.raises(MalformedBlobError, match="packed polynomials"):
        fresh(public_ctx, layout).add(_reheader(blob, bytes(payload[:-1])))


def test_aggregator_refuses_a_secret_context(holder: SecretRoundContext, layout: Layout) -> None:
    """The merge path takes only the public context type (no secret key by construction)."""
    with pytest.raises(TypeError):
        Aggregator(holder, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)  # type: ignore[arg-type]


def test_empty_aggregate_is_an_error(public_ctx: PublicRoundContext, layout: Layout) -> None:
    """No accepted update: there is nothing to publish."""
    with pytest.raises(ValueError):
        fresh(public_ctx, layout).finish()


# --- decryption refusals --------------------------------------------------------------------


def test_merge_peer_cannot_decrypt_the_aggregate(
    public_ctx: PublicRoundContext, layout: Layout, good_blob: bytes
) -> None:
    """The merge peer holds no secret key: decrypting raises the typed error."""
    result = aggregate(
        [good_blob], public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER
    )
    with pytest.raises(SecretKeyUnavailableError):
        decrypt_aggregate(result, public_ctx, round_id=ROUND, layout=layout)  # type: ignore[arg-type]


def _aggregate_payloads(result: bytes) -> tuple[bytes, int, int]:
    payload = result[HEADER_SIZE:]
    (k,) = struct.unpack_from(">I", payload, 0)
    return payload, k, 61_440 + 65 * k


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("truncate", "does not hold"),
        ("seed count", "seeds per chunk"),
        ("seed count within bounds", "does not hold"),
        ("coefficient", "modulus"),
        ("prng", "PRNG"),
        ("extra", "does not hold"),
    ],
)
def test_malformed_aggregate_is_refused(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
    change: str,
    match: str,
) -> None:
    """A key holder refuses a malformed seeded aggregate (the digest recomputed, as its author
    could): truncated, a seed count that does not match the contributors or the bytes, a
    coefficient >= q0, an unknown PRNG type, bytes after the last chunk."""
    blobs = [
        encrypt_update(
            make_delta(50), public_ctx, layout=layout, weight=1.0, round_id=ROUND, sender=MERGE_PEER
        ),
        seeded(holder, make_delta(51), layout, 1.0, 1),
    ]
    result = aggregate(blobs, public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)
    payload, k, stride = _aggregate_payloads(result)
    assert k == 1
    bad = bytearray(payload)
    if change == "truncate":
        bad = bad[:-65]
    elif change == "seed count":
        bad[:4] = (5).to_bytes(4, "big")
    elif change == "seed count within bounds":
        bad[:4] = (2).to_bytes(4, "big")
    elif change == "coefficient":
        bad[4 + stride : 4 + stride + 15] = b"\xff" * 15
    elif change == "prng":
        bad[4 + 61_440] = 9
    else:
        bad += b"\x00"
    with pytest.raises(MalformedBlobError, match=match):
        decrypt_aggregate(_reheader(result, bytes(bad)), holder, round_id=ROUND, layout=layout)


def test_aggregate_over_the_size_bound_of_its_kind_is_refused(
    holder: SecretRoundContext, public_ctx: PublicRoundContext, layout: Layout, good_blob: bytes
) -> None:
    """A seeded aggregate larger than max_contributors seeds per chunk allow: refused by size
    before anything is parsed."""
    result = aggregate(
        [good_blob], public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER
    )
    limit = max_blob_size(layout.param_count, 1, PayloadKind.SEEDED_AGGREGATE)
    padding = b"\x00" * (limit - len(result) + 1)
    with pytest.raises(OversizedBlobError):
        decrypt_aggregate(
            _reheader(result, result[HEADER_SIZE:] + padding), holder, round_id=ROUND, layout=layout
        )


def test_aggregate_from_another_round_or_count_is_refused(
    holder: SecretRoundContext, public_ctx: PublicRoundContext, layout: Layout, good_blob: bytes
) -> None:
    """Replayed aggregate from another round; an aggregate of another number of updates."""
    result = aggregate(
        [good_blob], public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER
    )
    with pytest.raises(BlobMismatchError) as info:
        decrypt_aggregate(result, holder, round_id=ROUND + 1, layout=layout)
    assert info.value.field == "round"
    with pytest.raises(BlobMismatchError) as info:
        decrypt_aggregate(result, holder, round_id=ROUND, layout=layout, expected_count=2)
    assert (info.value.field, info.value.expected, info.value.actual) == ("count", 2, 1)


def test_single_update_is_not_decrypted_as_an_aggregate(
    holder: SecretRoundContext, layout: Layout, good_blob: bytes
) -> None:
    """Protocol guard: an individual update handed in as the aggregate is refused by kind."""
    with pytest.raises(BlobMismatchError) as info:
        decrypt_aggregate(good_blob, holder, round_id=ROUND, layout=layout)
    assert info.value.field == "kind"


def test_a_key_holder_can_read_an_individual_update(
    holder: SecretRoundContext, layout: Layout, make_delta: MakeDelta, good_blob: bytes
) -> None:
    """Threat model, stated honestly: anyone with the round's secret key can decrypt any single
    update it obtains (so a merge peer colluding with a key holder reads updates in v1)."""
    stolen = decrypt_blob(
        good_blob,
        holder,
        round_id=ROUND,
        layout=layout,
        kinds=frozenset({PayloadKind.SEEDED_UPDATE}),
    )
    assert np.max(np.abs(stolen - 4.0 * flatten(make_delta(21), layout))) < 1e-7


def test_with_masks_a_key_holder_cannot_read_an_individual_update(
    holder: SecretRoundContext, layout: Layout, make_delta: MakeDelta
) -> None:
    """Masked mode closes the gap above: the same update, masked (self seed and a pairwise
    seed), decrypts with the round key to noise uncorrelated with the update."""
    ctx = MaskContext(31337, bytes.fromhex("cc" * 20), ROUND, 0)
    masks = [MaskTerm(bytes(range(16)), 1), MaskTerm(bytes(range(1, 17)), -1)]
    blob = encrypt_update(
        make_delta(21),
        holder,
        layout=layout,
        weight=4.0,
        round_id=ROUND,
        sender=member_address(1),
        masks=masks,
        mask_context=ctx,
    )
    stolen = decrypt_blob(
        blob,
        holder,
        round_id=ROUND,
        layout=layout,
        kinds=frozenset({PayloadKind.SEEDED_UPDATE}),
    )
    real = 4.0 * flatten(make_delta(21), layout).astype(np.float64)
    assert stolen.size >= 4096
    assert abs(np.corrcoef(stolen, real)[0, 1]) < 0.05
    assert np.median(np.abs(stolen)) > 1e3


def test_the_range_is_shared_among_the_rounds_contributors(
    holder: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Out-of-range update, sized by the round: with 4 contributors each update may hold a
    quarter of the decodable sum (16x the 64-way share). Found by a ResNet-18 round whose
    BatchNorm statistics (|weight * value| ~ 5000) were refused every retry under the 64-way
    share. Four updates at the 4-way bound still decode; a fifth contributor's share is
    smaller, and a count beyond the parameter set's most is refused."""
    params = holder.params
    layout = Layout((TensorSpec("w", (64,)),))
    bound = params.max_abs_sum / 4
    values = np.full(64, bound)
    values[1::2] *= -1
    aggregator = Aggregator(public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)
    for who in range(4):
        aggregator.add(
            encrypt_vector(
                values,
                holder,
                layout=layout,
                weight=1.0,
                round_id=ROUND,
                sender=bytes([who + 1]) * 20,
                contributors=4,
            )
        )
    decrypted = decrypt_aggregate(aggregator.finish(), holder, round_id=ROUND, layout=layout)
    np.testing.assert_allclose(decrypted, 4 * values, atol=1e-6)
    for contributors in (5, None):  # None: the 64-way share
        with pytest.raises(ValueRangeError, match="above"):
            encrypt_vector(
                values,
                holder,
                layout=layout,
                weight=1.0,
                round_id=ROUND,
                sender=member_address(1),
                contributors=contributors,
            )
    with pytest.raises(ValueRangeError, match="contributors"):
        encrypt_vector(
            values / 100,
            holder,
            layout=layout,
            weight=1.0,
            round_id=ROUND,
            sender=member_address(1),
            contributors=params.max_contributors + 1,
        )
