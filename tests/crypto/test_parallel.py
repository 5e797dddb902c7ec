"""swarm.crypto.parallel: an update encrypted, an aggregate decrypted, in ranges of chunks.

What a peer with worker processes produces must be what the serial codec produces: a
decryption bit for bit (every key holder must reach the same model hash, whichever way it
decrypts), an encryption in the same format, decrypting to the same values. The parts run in
this process here (``in_process``); tests/peer/test_cores.py runs them in real processes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from swarm.crypto import (
    Layout,
    MaskContext,
    MaskTerm,
    PublicRoundContext,
    SecretRoundContext,
    aggregate,
    decrypt_aggregate,
    encrypt_vector,
    read_header,
)
from swarm.crypto.blob import HEADER_SIZE
from swarm.crypto.parallel import (
    ContextKeys,
    _ranges,
    decrypt_aggregate_split,
    encrypt_vector_split,
    in_process,
)
from swarm.errors import (
    BlobMismatchError,
    LayoutMismatchError,
    MalformedBlobError,
    MaskError,
    SecretKeyUnavailableError,
)
from tests.crypto.conftest import CHAIN_ID, CONTRACT, ROUND
from tests.support.blobs import rewritten

MASKS = MaskContext(CHAIN_ID, CONTRACT, ROUND, 0)
SENDERS = [bytes([i + 1]) * 20 for i in range(4)]


def _values(layout: Layout, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1e-2, layout.param_count).astype(np.float32)


def _terms(seed: int) -> list[MaskTerm]:
    rng = np.random.default_rng(seed)
    return [MaskTerm(rng.bytes(16), 1 if i % 2 else -1) for i in range(3)]


@pytest.fixture(scope="module")
def masked_round(
    steward: SecretRoundContext, public_ctx: PublicRoundContext, layout: Layout
) -> tuple[bytes, list[MaskTerm], np.ndarray]:
    """An aggregate of three seeded updates (two encrypted in parts, one serially) and the merge
    peer's plain one (in parts), all masked; the correction; the expected weighted sum."""
    blobs, correction, expected = [], [], np.zeros(layout.param_count)
    for i, ctx in enumerate([steward, steward, steward, public_ctx]):
        values, terms = _values(layout, i), _terms(i)
        options = dict(
            layout=layout,
            weight=2.0,
            round_id=ROUND,
            sender=SENDERS[i],
            masks=terms,
            mask_context=MASKS,
            contributors=4,
        )
        if i == 1:
            blobs.append(encrypt_vector(values, ctx, **options))  # type: ignore[arg-type]
        else:
            blob = encrypt_vector_split(values, ctx, run=in_process, parts=3, **options)  # type: ignore[arg-type]
            blobs.append(blob)
        correction += terms
        expected += 2.0 * values.astype(np.float64)
    agg = aggregate(blobs, public_ctx, round_id=ROUND, layout=layout, merge_peer=SENDERS[3])
    return agg, correction, expected


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_a_decryption_in_parts_is_the_serial_one_bit_for_bit(
    steward: SecretRoundContext,
    layout: Layout,
    masked_round: tuple[bytes, list[MaskTerm], np.ndarray],
    parts: int,
) -> None:
    """Every key holder must reach the same model hash: parts (more parts than chunks too)
    change nothing, and the masks come off."""
    agg, correction, expected = masked_round
    options = dict(round_id=ROUND, layout=layout, unmask=correction, mask_context=MASKS)
    serial = decrypt_aggregate(agg, steward, expected_count=4, **options)  # type: ignore[arg-type]
    split = decrypt_aggregate_split(
        agg,
        steward,
        run=in_process,
        parts=parts,
        expected_count=4,
        **options,  # type: ignore[arg-type]
    )
    assert split.tobytes() == serial.tobytes()
    assert np.abs(split - expected).max() < 1e-5


def test_an_update_encrypted_in_parts_has_the_serial_format(
    steward: SecretRoundContext, public_ctx: PublicRoundContext, layout: Layout
) -> None:
    """Same header fields, same size (seeded and plain), so merge peers and auditors cannot
    tell which way it was made."""
    values = _values(layout, 9)
    for ctx in (steward, public_ctx):
        options = dict(layout=layout, weight=3.0, round_id=ROUND, sender=SENDERS[0])
        serial = encrypt_vector(values, ctx, **options)  # type: ignore[arg-type]
        split = encrypt_vector_split(values, ctx, run=in_process, parts=2, **options)  # type: ignore[arg-type]
        a, b = read_header(serial), read_header(split)
        assert (a.kind, a.sender, a.param_count, a.count) == (b.kind, b.sender, b.param_count, 1)
        assert len(split) == len(serial)


def test_parts_cover_every_chunk_once() -> None:
    for chunks in (1, 2, 5, 1366):
        for parts in (1, 2, 3, 8, 2000):
            ranges = _ranges(chunks, parts)
            assert ranges[0][0] == 0 and ranges[-1][1] == chunks
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
            assert all(first < end for first, end in ranges)


def test_bad_input_is_refused_as_the_serial_path_refuses_it(
    steward: SecretRoundContext,
    public_ctx: PublicRoundContext,
    layout: Layout,
    masked_round: tuple[bytes, list[MaskTerm], np.ndarray],
) -> None:
    """Malformed ciphertext, a wrong count, no secret key, masks without their context, a
    vector of the wrong length: the typed errors of the serial codec, before or from a part."""
    agg, correction, _ = masked_round
    split = dict(round_id=ROUND, layout=layout, run=in_process, parts=2)
    with pytest.raises(SecretKeyUnavailableError):
        decrypt_aggregate_split(agg, public_ctx, **split)  # type: ignore[arg-type]
    with pytest.raises(BlobMismatchError):
        decrypt_aggregate_split(agg, steward, expected_count=3, **split)  # type: ignore[arg-type]
    with pytest.raises(MalformedBlobError):
        decrypt_aggregate_split(agg[:-1], steward, **split)  # type: ignore[arg-type]
    # a coefficient at the top of the range, in the last chunk (a part other than the first),
    # under a header that matches it (a corrupted payload under the old one fails its digest)
    seeds = 3 * 65  # three seeded contributors, the merge peer's plain update aside
    last_poly = len(agg) - HEADER_SIZE - seeds - steward._bridge.packed_poly_size

    def too_large(payload: bytearray) -> None:
        payload[last_poly : last_poly + 8] = b"\xff" * 8

    with pytest.raises(MalformedBlobError, match="not below the modulus"):
        decrypt_aggregate_split(rewritten(agg, too_large), steward, **split)  # type: ignore[arg-type]
    with pytest.raises(MaskError):
        decrypt_aggregate_split(agg, steward, unmask=correction, **split)  # type: ignore[arg-type]
    with pytest.raises(LayoutMismatchError):
        encrypt_vector_split(
            np.zeros(layout.param_count - 1, dtype=np.float32),
            steward,
            layout=layout,
            weight=1.0,
            round_id=ROUND,
            sender=SENDERS[0],
            run=in_process,
            parts=2,
        )
    assert len(agg) > HEADER_SIZE


def test_context_keys_never_show_the_secret_key(steward: SecretRoundContext) -> None:
    keys = ContextKeys.of(steward)
    assert keys.secret_key is not None
    assert keys.secret_key.hex()[:32] not in repr(keys)
    assert ContextKeys.of(steward.public).secret_key is None
