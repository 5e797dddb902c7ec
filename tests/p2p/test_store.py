"""MemoryBlobStore: addressing by (kind, round, sender) and by content digest."""

from __future__ import annotations

import pytest

from swarm.p2p.store import BlobKind, BlobRef, MemoryBlobStore, content_digest


def ref(kind: BlobKind, round_id: int, sender: str, data: bytes) -> BlobRef:
    return BlobRef(kind, round_id, sender, content_digest(kind, data), len(data))


def test_put_get_find() -> None:
    store = MemoryBlobStore()
    a, b = ref(BlobKind.UPDATE, 1, "0xA", b"aaa"), ref(BlobKind.UPDATE, 1, "0xB", b"bb")
    store.put(a, b"aaa")
    store.put(b, b"bb")
    assert store.get(a.digest) == b"aaa"
    assert store.get(content_digest(BlobKind.UPDATE, b"nothing")) is None
    assert store.find(kind=BlobKind.UPDATE, round_id=1) == [a, b]
    assert store.find(sender="0xB") == [b]
    assert store.find(digest=a.digest) == [a]
    assert store.find(kind=BlobKind.AGGREGATE) == []


def test_a_new_blob_under_the_same_name_replaces_the_old_one() -> None:
    store = MemoryBlobStore()
    old, new = ref(BlobKind.UPDATE, 1, "0xA", b"old"), ref(BlobKind.UPDATE, 1, "0xA", b"new")
    store.put(old, b"old")
    store.put(new, b"new")
    assert store.find() == [new]
    assert store.get(old.digest) is None


def test_identical_bytes_under_two_names_are_kept_until_both_go() -> None:
    store = MemoryBlobStore()
    a, b = ref(BlobKind.MODEL, 0, "", b"m"), ref(BlobKind.AGGREGATE, 2, "0xM", b"m")
    store.put(a, b"m")
    store.put(b, b"m")
    store.discard_round(2)
    assert store.find() == [a]
    assert store.get(a.digest) == b"m"


def test_size_must_match_the_ref() -> None:
    with pytest.raises(ValueError):
        MemoryBlobStore().put(ref(BlobKind.UPDATE, 1, "0xA", b"abc"), b"ab")
