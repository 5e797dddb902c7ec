"""Masked aggregation in the ciphertext ring: masks cancel exactly in a sum, hide a single
update, and are removed by the correction rebuilt from revealed shares (dropouts included)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from swarm.crypto import (
    ROUNDING_GRID,
    Aggregator,
    Layout,
    MaskContext,
    MaskTerm,
    PayloadKind,
    PublicRoundContext,
    SecretRoundContext,
    ShareSetup,
    build_reveal,
    collect,
    correction_terms,
    decrypt_aggregate,
    decrypt_blob,
    encrypt_update,
    flatten,
    mask_secrets,
    mask_terms,
    mask_update_blob,
    mean_update,
    new_self_seed,
    open_shares,
    pairwise_seed,
    read_header,
    round_to_grid,
    seal_shares,
    shares_hash,
    split,
    threshold_for,
)
from swarm.crypto.masking import MaskExpander
from swarm.errors import MaskError

from .conftest import ATTEMPT, CHAIN_ID, CONTRACT, ROUND, member_address, member_identity

N = 4
MERGE_PEER = member_address(0)
Delta = dict[str, torch.Tensor]
MakeDelta = Callable[[int], Delta]
CTX = MaskContext(CHAIN_ID, CONTRACT, ROUND, ATTEMPT)
WEIGHTS = [3.0, 1.0, 2.0, 5.0]


def addresses(n: int = N) -> list[bytes]:
    return [member_address(i) for i in range(n)]


def all_secrets(n: int = N, ctx: MaskContext = CTX) -> list[dict[int, bytes]]:
    keys = [member_identity(i).encryption_public_key for i in range(n)]
    return [
        mask_secrets(
            ctx,
            my_index=i,
            my_private_key=member_identity(i).encryption_private_key(),
            addresses=addresses(n),
            encryption_keys=keys,
            self_seed=new_self_seed(),
        )
        for i in range(n)
    ]


def plain_blobs(
    holder: SecretRoundContext, public_ctx: PublicRoundContext, layout: Layout, make: MakeDelta
) -> list[bytes]:
    """Participant 0 (the merge peer) gives a plain update (encoded, not encrypted), the others
    seeded ones."""
    out = []
    for i in range(N):
        ctx = public_ctx if i == 0 else holder
        out.append(
            encrypt_update(
                make(100 + i),
                ctx,
                layout=layout,
                weight=WEIGHTS[i],
                round_id=ROUND,
                sender=member_address(i),
            )
        )
    return out


def masked_copy(
    blob: bytes, ctx: SecretRoundContext, layout: Layout, terms: list[MaskTerm]
) -> bytes:
    return mask_update_blob(blob, ctx, layout=layout, round_id=ROUND, masks=terms, mask_context=CTX)


def aggregate_of(public_ctx: PublicRoundContext, layout: Layout, blobs: list[bytes]) -> bytes:
    aggregator = Aggregator(public_ctx, round_id=ROUND, layout=layout, merge_peer=MERGE_PEER)
    for blob in blobs:
        aggregator.add(blob)
    return aggregator.finish()


def true_sum(layout: Layout, make: MakeDelta, who: list[int]) -> np.ndarray:
    return np.sum(
        [WEIGHTS[i] * flatten(make(100 + i), layout).astype(np.float64) for i in who], axis=0
    )


def looks_like_noise(values: np.ndarray, real: np.ndarray) -> None:
    assert values.size >= 4096
    r = np.corrcoef(values, real)[0, 1]
    assert abs(r) < 0.05, r
    # a one-time-padded ring element decodes to huge values, nowhere near an update's ~1e-2
    assert np.median(np.abs(values)) > 1e3


# --- exactness --------------------------------------------------------------------------------


def test_masked_sum_unmasks_to_exactly_the_unmasked_sum(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
) -> None:
    """Same ciphertexts (same noise), masked and not: the masked aggregate minus the correction
    decrypts to bit-identical float64 values, within CKKS noise (+ grid) of the true sum."""
    plain = plain_blobs(holder, public_ctx, layout, make_delta)
    secrets = all_secrets()
    masked = [
        masked_copy(blob, holder, layout, mask_terms(i, secrets[i])) for i, blob in enumerate(plain)
    ]
    # masks go into the first polynomials: the seeded updates are still packed, the plain
    # one is still one packed polynomial per chunk
    assert all(len(masked[i]) == len(plain[i]) for i in range(N))
    expected = decrypt_aggregate(
        aggregate_of(public_ctx, layout, plain), holder, round_id=ROUND, layout=layout
    )
    correction = correction_terms(set(range(N)), N, dict(enumerate(secrets)))
    assert len(correction) == N  # all contributed: only the self seeds remain
    got = decrypt_aggregate(
        aggregate_of(public_ctx, layout, masked),
        holder,
        round_id=ROUND,
        layout=layout,
        unmask=correction,
        mask_context=CTX,
    )
    assert got.tobytes() == expected.tobytes()
    assert np.max(np.abs(got - true_sum(layout, make_delta, list(range(N))))) <= 1e-6


def test_masks_from_encrypt_update_cancel_in_the_sum(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
) -> None:
    """The production path: masks added at encryption (seeded, and the merge peer's plain
    update), summed, unmasked by mean_update."""
    secrets = all_secrets()
    blobs = [
        encrypt_update(
            make_delta(100 + i),
            public_ctx if i == 0 else holder,
            layout=layout,
            weight=WEIGHTS[i],
            round_id=ROUND,
            sender=member_address(i),
            masks=mask_terms(i, secrets[i]),
            mask_context=CTX,
        )
        for i in range(N)
    ]
    unmasked_size = len(plain_blobs(holder, public_ctx, layout, make_delta)[1])
    assert len(blobs[1]) == unmasked_size  # the seeded update is still packed
    mean = mean_update(
        aggregate_of(public_ctx, layout, blobs),
        holder,
        round_id=ROUND,
        layout=layout,
        total_weight=sum(WEIGHTS),
        unmask=correction_terms(set(range(N)), N, dict(enumerate(secrets))),
        mask_context=CTX,
    )
    expected = true_sum(layout, make_delta, list(range(N))) / sum(WEIGHTS)
    assert np.max(np.abs(flatten(mean, layout).astype(np.float64) - expected)) < 1e-6


def test_no_masks_leaves_the_blob_as_it_was(
    holder: SecretRoundContext, layout: Layout, make_delta: MakeDelta
) -> None:
    """Masking off: no terms, the blob is the unmasked one (same size, decrypts to the update)."""
    delta = make_delta(5)
    blob = encrypt_update(
        delta, holder, layout=layout, weight=1.0, round_id=ROUND, sender=MERGE_PEER
    )
    assert (
        mask_update_blob(blob, holder, layout=layout, round_id=ROUND, masks=[], mask_context=CTX)
        == blob
    )
    values = decrypt_blob(
        blob, holder, round_id=ROUND, layout=layout, kinds=frozenset({PayloadKind.SEEDED_UPDATE})
    )
    assert np.max(np.abs(values - flatten(delta, layout))) < 1e-7


def test_masks_without_their_context_are_refused(
    holder: SecretRoundContext, layout: Layout, make_delta: MakeDelta
) -> None:
    """Bad input: mask terms but no MaskContext."""
    with pytest.raises(MaskError, match="mask context"):
        encrypt_update(
            make_delta(1),
            holder,
            layout=layout,
            weight=1.0,
            round_id=ROUND,
            sender=MERGE_PEER,
            masks=[MaskTerm(bytes(16), 1)],
        )


# --- hiding -----------------------------------------------------------------------------------


def test_a_single_masked_update_decrypts_to_noise(
    holder: SecretRoundContext, layout: Layout, make_delta: MakeDelta
) -> None:
    """A key holder who obtains one masked update learns nothing from decrypting it."""
    secrets = all_secrets()
    delta = make_delta(100 + 2)
    blob = encrypt_update(
        delta,
        holder,
        layout=layout,
        weight=1.0,
        round_id=ROUND,
        sender=member_address(2),
        masks=mask_terms(2, secrets[2]),
        mask_context=CTX,
    )
    stolen = decrypt_blob(
        blob, holder, round_id=ROUND, layout=layout, kinds=frozenset({PayloadKind.SEEDED_UPDATE})
    )
    looks_like_noise(stolen, flatten(delta, layout).astype(np.float64))


def test_the_merge_peers_masked_plain_update_decodes_to_noise(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
) -> None:
    """The merge peer's own update is not encrypted, only encoded: with masks on, what its blob
    holds (should it ever leave the merge peer) is one-time padded all the same."""
    secrets = all_secrets()
    delta = make_delta(100)
    blob = encrypt_update(
        delta,
        public_ctx,
        layout=layout,
        weight=1.0,
        round_id=ROUND,
        sender=MERGE_PEER,
        masks=mask_terms(0, secrets[0]),
        mask_context=CTX,
    )
    assert read_header(blob).kind is PayloadKind.PLAIN_UPDATE
    decoded = decrypt_blob(
        blob, holder, round_id=ROUND, layout=layout, kinds=frozenset({PayloadKind.PLAIN_UPDATE})
    )
    looks_like_noise(decoded, flatten(delta, layout).astype(np.float64))


def test_an_aggregate_of_fewer_updates_than_declared_decrypts_to_noise(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
) -> None:
    """Bad input: a merge peer sums three updates but declares all four as contributors (or
    sums one update alone): the correction does not match and the result is noise."""
    plain = plain_blobs(holder, public_ctx, layout, make_delta)
    secrets = all_secrets()
    masked = [
        masked_copy(blob, holder, layout, mask_terms(i, secrets[i])) for i, blob in enumerate(plain)
    ]
    everyone = correction_terms(set(range(N)), N, dict(enumerate(secrets)))
    for subset in ([0, 1, 2], [1]):
        got = decrypt_aggregate(
            aggregate_of(public_ctx, layout, [masked[i] for i in subset]),
            holder,
            round_id=ROUND,
            layout=layout,
            unmask=everyone,
            mask_context=CTX,
        )
        looks_like_noise(got, true_sum(layout, make_delta, subset))


# --- dropouts, end to end with shares ---------------------------------------------------------


def test_a_dropout_is_corrected_from_revealed_shares_and_stays_masked(
    holder: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    make_delta: MakeDelta,
) -> None:
    """Participant 3 commits and hands out its shares but its update never reaches the merge
    peer. The contributors' reveals give the correction for the sum of 0..2; participant 3's
    own ciphertext stays noise even after every revealed term is removed from it."""
    addrs = tuple(addresses())
    t = threshold_for(N, 66)
    assert t == 3
    secrets = all_secrets()
    plain = plain_blobs(holder, public_ctx, layout, make_delta)
    masked = [
        masked_copy(blob, holder, layout, mask_terms(i, secrets[i])) for i, blob in enumerate(plain)
    ]
    # every owner splits and seals to every holder; the ledger records each sharesHash
    blobs: dict[tuple[int, int], bytes] = {}
    hashes: dict[int, bytes] = {}
    for owner in range(N):
        setup = ShareSetup(CTX, owner, addrs, t)
        manifest, plaintexts = split(setup, secrets[owner])
        hashes[owner] = shares_hash(manifest)
        for h in range(N):
            key = member_identity(h).encryption_public_key
            blobs[(owner, h)] = seal_shares(setup, h, plaintexts[h], key)
    contributors = {0, 1, 2}
    reveals = []
    for h in sorted(contributors):  # the dropout does not reveal either
        held = {
            owner: open_shares(
                blobs[(owner, h)],
                ctx=CTX,
                owner_index=owner,
                holder_index=h,
                addresses=addrs,
                private_key=member_identity(h).encryption_private_key(),
                expected_hash=hashes[owner],
            )
            for owner in range(N)
        }
        reveals.append(build_reveal(CTX, h, held, contributors))
    state = collect(CTX, reveals, hashes, contributors, N, threshold=t)
    assert state.missing() == [] and state.rejected == []
    recovered = state.recovered()
    assert 3 not in recovered  # the dropout's self seed is never revealed
    for c in contributors:
        assert recovered[c] == {c: secrets[c][c], 3: secrets[c][3]}

    got = decrypt_aggregate(
        aggregate_of(public_ctx, layout, [masked[i] for i in sorted(contributors)]),
        holder,
        round_id=ROUND,
        layout=layout,
        unmask=correction_terms(contributors, N, recovered),
        mask_context=CTX,
    )
    expected = decrypt_aggregate(
        aggregate_of(public_ctx, layout, [plain[i] for i in sorted(contributors)]),
        holder,
        round_id=ROUND,
        layout=layout,
    )
    assert got.tobytes() == expected.tobytes()
    assert np.max(np.abs(got - true_sum(layout, make_delta, [0, 1, 2]))) <= 1e-6

    # the dropout's ciphertext, with every revealed seed that touches it taken out (its
    # pairwise seeds with the contributors, each with participant 3's sign): still noise
    revealed_of_3 = [MaskTerm(recovered[c][3], 1 if c > 3 else -1) for c in contributors]
    stolen = decrypt_blob(
        masked[3],
        holder,
        round_id=ROUND,
        layout=layout,
        kinds=frozenset({PayloadKind.SEEDED_UPDATE}),
        unmask=revealed_of_3,
        mask_context=CTX,
    )
    looks_like_noise(stolen, true_sum(layout, make_delta, [3]))


# --- seeds and expansion ----------------------------------------------------------------------


def test_pairwise_seeds_are_symmetric_and_bound_to_the_attempt() -> None:
    a, b = member_identity(0), member_identity(1)
    ab = pairwise_seed(
        CTX,
        a.encryption_private_key(),
        member_address(0),
        b.encryption_public_key,
        member_address(1),
    )
    ba = pairwise_seed(
        CTX,
        b.encryption_private_key(),
        member_address(1),
        a.encryption_public_key,
        member_address(0),
    )
    assert ab == ba and len(ab) == 16
    other = MaskContext(CHAIN_ID, CONTRACT, ROUND, ATTEMPT + 1)
    assert ab != pairwise_seed(
        other,
        a.encryption_private_key(),
        member_address(0),
        b.encryption_public_key,
        member_address(1),
    )


def test_mask_terms_cancel_pairwise() -> None:
    secrets = all_secrets()
    signs: dict[bytes, int] = {}
    for i in range(N):
        for term in mask_terms(i, secrets[i]):
            signs[term.seed] = signs.get(term.seed, 0) + term.sign
    self_seeds = {secrets[i][i] for i in range(N)}
    assert {seed for seed, s in signs.items() if s != 0} == self_seeds


def test_expansion_is_deterministic_uniform_and_per_chunk() -> None:
    q = 1152921504606748673
    expander = MaskExpander(CTX, q, 8192)
    seed = bytes(range(16))
    a = expander.expand(seed, 0)
    assert a.dtype == np.uint64 and a.shape == (8192,)
    assert np.array_equal(a, MaskExpander(CTX, q, 8192).expand(seed, 0))
    b = expander.expand(seed, 1)
    assert not np.any(a == b)  # no shared keystream between chunks
    assert int(a.max()) < q
    # roughly uniform: mean of q/2 within a few standard errors
    mean = float(np.mean(a.astype(np.float64)))
    assert abs(mean - q / 2) < 5 * (q / np.sqrt(12 * 8192))
    total = expander.combine([MaskTerm(seed, 1), MaskTerm(seed, -1)], 3)
    assert not np.any(total)


@pytest.mark.parametrize(
    "q", [1152921504606748673, 2**59 + 2**58 + 1], ids=["q0 of the sets", "rejects a quarter"]
)
def test_combine_in_batches_is_the_sum_of_per_chunk_expansions(q: int) -> None:
    """combine makes the masks of BATCH chunks at once; whatever the chunk, the terms or the
    order of the calls, its values are exactly those of expand, chunk by chunk (also with a
    modulus that rejects a quarter of the words, where rows fall back to expand), and it never
    expands past the update's last chunk."""
    chunks = MaskExpander.BATCH + 5
    terms = [MaskTerm(bytes([1]) * 16, 1), MaskTerm(bytes([2]) * 16, -1), MaskTerm(b"\3" * 16, 1)]
    expander = MaskExpander(CTX, q, 256, chunks)
    reference = MaskExpander(CTX, q, 256)
    order = [0, 1, MaskExpander.BATCH - 1, MaskExpander.BATCH, chunks - 1, 2, 0]
    for chunk in order:
        want = np.zeros(256, dtype=object)
        for term in terms:
            want += term.sign * reference.expand(term.seed, chunk).astype(object)
        got = expander.combine(terms, chunk)
        assert got.dtype == np.uint64 and [int(v) for v in got] == [int(v) % q for v in want]
        got[:] = 0  # a caller may write into what it got: the look-ahead is not touched
        assert np.array_equal(
            expander.combine(terms, chunk), reference_combine(reference, terms, chunk, q)
        )
    assert expander._batch is not None and len(expander._batch[2]) <= chunks


def reference_combine(
    expander: MaskExpander, terms: list[MaskTerm], chunk: int, q: int
) -> np.ndarray:
    total = 0 * expander.expand(terms[0].seed, chunk).astype(object)
    for term in terms:
        total = total + term.sign * expander.expand(term.seed, chunk).astype(object)
    return np.array([int(v) % q for v in total], dtype=np.uint64)


def test_threshold_for() -> None:
    assert threshold_for(4, 66) == 3
    assert threshold_for(2, 51) == 2
    assert threshold_for(3, 51) == 2
    assert threshold_for(10, 100) == 10
    assert threshold_for(1, 66) == 1
    with pytest.raises(ValueError):
        threshold_for(4, 50)  # bad input: below a majority
    with pytest.raises(ValueError):
        threshold_for(4, 0)  # bad input: 0 means masking off, no threshold


def test_correction_needs_every_secret() -> None:
    """Bad input: a recovered map that lacks a needed secret."""
    secrets = all_secrets()
    recovered = {0: {0: secrets[0][0]}, 1: {1: secrets[1][1], 3: secrets[1][3]}}
    with pytest.raises(MaskError, match="secret 2 of contributor 0"):
        correction_terms({0, 1}, N, recovered)


# --- rounding ---------------------------------------------------------------------------------


def test_round_to_grid_is_deterministic_and_within_half_a_step() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 1.0, 100_000)
    rounded = round_to_grid(values)
    assert rounded.tobytes() == round_to_grid(values.copy()).tobytes()
    assert np.max(np.abs(rounded - values)) <= ROUNDING_GRID / 2
    assert np.all(np.round(rounded / ROUNDING_GRID) == rounded / ROUNDING_GRID)
    assert rounded.tobytes() == round_to_grid(rounded).tobytes()  # idempotent
