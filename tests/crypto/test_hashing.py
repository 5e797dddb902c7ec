"""Tagged hashes (swarm.hashing): the construction, the closed tag registry, and the agreement
between each commitment and the digest peers address the same bytes by."""

from __future__ import annotations

import hashlib

import pytest
import torch

from swarm.crypto import blob_id, context_hash, sealed_key_id
from swarm.hashing import (
    ENCRYPTION_KEY_INFO,
    ENCRYPTION_KEY_SIG_LABEL,
    SEAL_INFO_LABEL,
    Tag,
    tagged_hash,
    tagged_hasher,
)
from swarm.p2p.store import CONTENT_TAGS, BlobKind, content_digest
from swarm.training.checkpoint import model_bytes, model_hash


def test_tagged_hash_known_answer() -> None:
    """Known-answer vector (fault: the construction or a tag's bytes drift, and peers of two
    versions compute different commitments): sha256(sha256(tag) || sha256(tag) || data)."""
    assert tagged_hash(Tag.BLOB, b"abc").hex() == (
        "fcb5170d362112975f0610434213e58092f1f3431834c291683941357a8b4fd6"
    )
    tag = hashlib.sha256(b"swarm/v1/blob").digest()
    assert tagged_hash(Tag.BLOB, b"abc") == hashlib.sha256(tag + tag + b"abc").digest()
    assert tagged_hash(Tag.MODEL, b"").hex() == (
        "5ecd2548a0c7ef1553f3d4930175939a34014f4ffac5f1ce8b5b525f994d6e75"
    )


def test_same_data_under_two_tags_hashes_differently() -> None:
    """Tag collision (fault: a hash made for one purpose, say a blob commitment, equals one made
    for another, say a model acknowledgement, of the same bytes)."""
    data = b"the same bytes"
    digests = {tag: tagged_hash(tag, data) for tag in Tag}
    assert len(set(digests.values())) == len(Tag)
    assert hashlib.sha256(data).digest() not in digests.values()


def test_the_tag_registry_is_closed_and_its_labels_distinct() -> None:
    """Closed registry (fault: an ad-hoc string used as a tag, or one label reused for two
    purposes, hash tags and key-derivation labels alike)."""
    with pytest.raises(TypeError):
        tagged_hash(b"swarm/v1/blob", b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tagged_hasher("swarm/v1/blob")  # type: ignore[arg-type]
    labels = [tag.value for tag in Tag] + [
        ENCRYPTION_KEY_INFO,
        SEAL_INFO_LABEL,
        ENCRYPTION_KEY_SIG_LABEL,
    ]
    assert len(set(labels)) == len(labels)
    assert all(tag.value.startswith(b"swarm/v1/") for tag in Tag)


def test_incremental_hasher_equals_one_shot() -> None:
    """Streaming (fault: a receiver hashing chunk by chunk gets another digest than the
    sender's one-shot hash)."""
    hasher = tagged_hasher(Tag.BLOB)
    for part in (b"ab", b"", b"c"):
        hasher.update(part)
    assert hasher.digest() == tagged_hash(Tag.BLOB, b"abc")
    # the precomputed prefix is copied, never shared
    assert tagged_hasher(Tag.BLOB).digest() == tagged_hash(Tag.BLOB, b"")


def test_p2p_content_digest_is_the_ledger_commitment_of_each_kind() -> None:
    """Content addressing (fault: the digest a peer stores and transfers a blob under is not
    the hash the ledger records, so a committed blob cannot be found or verified)."""
    data = b"\x01\x02\x03" * 100
    assert content_digest(BlobKind.UPDATE, data) == blob_id(data)
    assert content_digest(BlobKind.AGGREGATE, data) == blob_id(data)
    assert content_digest(BlobKind.ROUND_CONTEXT, data) == context_hash(data)
    assert content_digest(BlobKind.ROUND_KEY, data) == sealed_key_id(data)
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    assert content_digest(BlobKind.MODEL, model_bytes(state)) == model_hash(state)
    assert set(CONTENT_TAGS) == set(BlobKind)
