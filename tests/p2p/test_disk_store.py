"""The on-disk blob store a peer resumes from after a restart."""

from __future__ import annotations

from pathlib import Path

from swarm.p2p import BlobKind, BlobRef
from swarm.p2p.disk_store import DirectoryBlobStore
from swarm.p2p.store import content_digest

SENDER = "0x" + "ab" * 20


def _ref(kind: BlobKind, round_id: int, data: bytes, sender: str = SENDER) -> BlobRef:
    return BlobRef(kind, round_id, sender, content_digest(kind, data), len(data))


def test_blobs_survive_a_restart(tmp_path: Path) -> None:
    """A restarted peer finds its round's blobs again, in the order they were stored."""
    store = DirectoryBlobStore(tmp_path)
    update, key = b"ciphertext" * 10, b"sealed key"
    store.put(_ref(BlobKind.UPDATE, 3, update), update)
    store.put(_ref(BlobKind.ROUND_KEY, 3, key), key)

    again = DirectoryBlobStore(tmp_path)
    assert again.get(content_digest(BlobKind.UPDATE, update)) == update
    assert [r.kind for r in again.find(round_id=3)] == [BlobKind.UPDATE, BlobKind.ROUND_KEY]
    assert again.find(kind=BlobKind.UPDATE, sender=SENDER)[0].size == len(update)


def test_new_blob_replaces_the_old_one_of_the_same_slot(tmp_path: Path) -> None:
    """A new attempt's update replaces the previous attempt's, on disk too."""
    store = DirectoryBlobStore(tmp_path)
    old, new = b"attempt 0", b"attempt 1"
    store.put(_ref(BlobKind.UPDATE, 1, old), old)
    store.put(_ref(BlobKind.UPDATE, 1, new), new)
    assert store.get(content_digest(BlobKind.UPDATE, old)) is None
    assert len(list((tmp_path / "update").glob("*.blob"))) == 1
    assert DirectoryBlobStore(tmp_path).find(kind=BlobKind.UPDATE)[0].digest == (
        content_digest(BlobKind.UPDATE, new)
    )


def test_torn_file_is_dropped_at_start(tmp_path: Path) -> None:
    """A crash mid-write (bytes that do not hash to the file's name) is not served later."""
    store = DirectoryBlobStore(tmp_path)
    data = b"aggregate"
    store.put(_ref(BlobKind.AGGREGATE, 2, data), data)
    (path,) = (tmp_path / "aggregate").glob("*.blob")
    path.write_bytes(b"aggre")
    again = DirectoryBlobStore(tmp_path)
    assert again.find() == [] and not path.exists()


def test_discard_before_keeps_recent_rounds(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path)
    for rid in (1, 2, 3):
        data = f"update {rid}".encode()
        store.put(_ref(BlobKind.UPDATE, rid, data), data)
    store.discard_before(3, (BlobKind.UPDATE,))
    assert [r.round_id for r in store.find()] == [3]
    assert len(list((tmp_path / "update").glob("*.blob"))) == 1


def test_the_same_bytes_under_two_refs_leave_no_file_behind(tmp_path: Path) -> None:
    """A round context both pushed by the steward and pulled (two refs, one content): pruning
    the round deletes it from disk, instead of orphaning a copy every round (found in a
    200-round soak: ~25 MB of disk per 100 rounds, never freed)."""
    store = DirectoryBlobStore(tmp_path)
    context = b"public context" * 100
    store.put(_ref(BlobKind.ROUND_CONTEXT, 4, context), context)
    store.put(_ref(BlobKind.ROUND_CONTEXT, 4, context, sender="0x" + "cd" * 20), context)
    assert len(store.find(kind=BlobKind.ROUND_CONTEXT, round_id=4)) == 2
    store.discard_before(5, tuple(BlobKind))
    assert list(tmp_path.rglob("*.blob")) == []
