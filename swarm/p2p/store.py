"""Where received and served blobs live: a small interface the peer state machine can replace.

Blobs are addressed two ways: by what they are (kind, round, sender) and by their content digest
(:func:`content_digest`: the tagged hash of the kind, swarm.hashing), which is what the ledger
records: an update's or aggregate's digest is ``swarm.crypto.blob_id``, a context's is the round
key hash (``swarm.crypto.context_hash``), a model's is its model hash
(``swarm.training.checkpoint.model_hash``). Store methods are blocking (a store may write to
disk); the protocols call them from a worker thread, so an implementation must be thread-safe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from swarm.hashing import Tag, tagged_hash, tagged_hasher

if TYPE_CHECKING:
    from collections.abc import Mapping
    from hashlib import _Hash
    from pathlib import Path


class BlobKind(StrEnum):
    UPDATE = "update"  # a participant's encrypted update, pushed to the merge peer
    AGGREGATE = "aggregate"  # the merge peer's sum of ciphertexts, fetched by participants
    MODEL = "model"  # a finalized model, fetched by late joiners (catch-up)
    ROUND_KEY = "round_key"  # a round's secret key sealed to one participant, pushed by the steward
    ROUND_CONTEXT = "round_context"  # a round's public CKKS context, pushed by the steward
    SHARES = "shares"  # one owner's mask shares sealed to one holder (+ the owner's manifest)
    REVEAL = "reveal"  # a holder's shares of the contributors' masks, pushed to key holders


#: the hash tag each kind is addressed by: the tag of the commitment the ledger records for it
CONTENT_TAGS: Mapping[BlobKind, Tag] = {
    BlobKind.UPDATE: Tag.BLOB,
    BlobKind.AGGREGATE: Tag.BLOB,
    BlobKind.MODEL: Tag.MODEL,
    BlobKind.ROUND_KEY: Tag.SEALED_KEY,
    BlobKind.ROUND_CONTEXT: Tag.ROUND_CONTEXT,
    BlobKind.SHARES: Tag.SHARES_BLOB,
    BlobKind.REVEAL: Tag.REVEAL_BLOB,
}


def content_digest(kind: BlobKind, data: bytes | bytearray | memoryview) -> bytes:
    """The digest a blob of ``kind`` is addressed, transferred and stored by (32 bytes)."""
    return tagged_hash(CONTENT_TAGS[kind], data)


def content_hasher(kind: BlobKind) -> _Hash:
    """An incremental :func:`content_digest` (feed it with ``update``)."""
    return tagged_hasher(CONTENT_TAGS[kind])


@dataclass(frozen=True)
class BlobRef:
    """What a stored blob is. ``sender`` is the checksummed address that delivered it (empty for
    a blob the peer stored itself, e.g. a finalized model); ``round_id`` is 0 where a round does
    not apply."""

    kind: BlobKind
    round_id: int
    sender: str
    digest: bytes  # content_digest(kind, the bytes)
    size: int

    def matches(
        self,
        kind: BlobKind | None = None,
        round_id: int | None = None,
        sender: str | None = None,
        digest: bytes | None = None,
    ) -> bool:
        """Whether this ref passes every filter given (None: any)."""
        return (
            (kind is None or self.kind == kind)
            and (round_id is None or self.round_id == round_id)
            and (sender is None or self.sender == sender)
            and (digest is None or self.digest == digest)
        )


class BlobStore(Protocol):
    def put(self, ref: BlobRef, data: bytes | bytearray) -> None:
        """Keep ``data`` (already verified: its content digest is ``ref.digest``) under ``ref``.
        A bytearray is the buffer a payload was received into: the store may keep it as it
        is, and nobody writes to it afterwards."""
        ...

    def get(self, digest: bytes) -> bytes | None:
        """The bytes whose content digest is ``digest``, or None."""
        ...

    def find(
        self,
        *,
        kind: BlobKind | None = None,
        round_id: int | None = None,
        sender: str | None = None,
        digest: bytes | None = None,
    ) -> list[BlobRef]:
        """The refs matching every filter given, in the order they were stored. Answered from
        an index in memory, never the disk: the protocols call it on the event loop."""
        ...


@runtime_checkable
class FileBlobStore(Protocol):
    """What a store on disk adds, so that large blobs never sit whole in memory: a push or a
    fetch is received into a temporary file in :meth:`staging_dir` while it is hashed, then
    :meth:`put_file` moves it in; a blob is served from :meth:`open_blob` in pieces.

    The protocols use these where a store has them (``isinstance(store, FileBlobStore)``), and
    memory otherwise. A wrapper around a store must forward all three to keep them.
    """

    def staging_dir(self) -> Path:
        """A folder on the store's file system for blobs being received (created if needed)."""
        ...

    def put_file(self, ref: BlobRef, path: Path) -> None:
        """Take over the verified file at ``path`` (in :meth:`staging_dir`) as the blob of
        ``ref``: made durable and renamed into place, or deleted if the store holds those
        bytes already."""
        ...

    def open_blob(self, digest: bytes) -> BinaryIO | None:
        """The stored blob whose content digest is ``digest``, open for reading, or None."""
        ...


class MemoryBlobStore:
    """A thread-safe in-memory store; data is kept once per digest.

    A received payload is kept in the buffer it arrived in (a copy of 10 MB into fresh memory
    costs ~5 ms, a fifth of its transfer on loopback); it becomes bytes the first time it is
    read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[tuple[BlobKind, int, str], BlobRef] = {}
        self._data: dict[bytes, bytes | bytearray] = {}

    def put(self, ref: BlobRef, data: bytes | bytearray) -> None:
        if len(data) != ref.size:
            raise ValueError(f"blob of {len(data)} bytes stored under a ref of {ref.size} bytes")
        with self._lock:
            key = (ref.kind, ref.round_id, ref.sender)
            old = self._refs.pop(key, None)
            self._refs[key] = ref
            self._data[ref.digest] = data
            if old is not None and old.digest != ref.digest:
                self._drop_unreferenced(old.digest)

    def get(self, digest: bytes) -> bytes | None:
        with self._lock:
            data = self._data.get(digest)
            if isinstance(data, bytearray):
                data = self._data[digest] = bytes(data)
            return data

    def find(
        self,
        *,
        kind: BlobKind | None = None,
        round_id: int | None = None,
        sender: str | None = None,
        digest: bytes | None = None,
    ) -> list[BlobRef]:
        with self._lock:
            return [r for r in self._refs.values() if r.matches(kind, round_id, sender, digest)]

    def discard_round(self, round_id: int) -> None:
        """Forget every blob of a round (what a merge peer does once the round is over)."""
        with self._lock:
            for key, ref in list(self._refs.items()):
                if ref.round_id == round_id:
                    del self._refs[key]
                    self._drop_unreferenced(ref.digest)

    def _drop_unreferenced(self, digest: bytes) -> None:
        if not any(ref.digest == digest for ref in self._refs.values()):
            self._data.pop(digest, None)
