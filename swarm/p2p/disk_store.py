"""A BlobStore that keeps every blob on disk, so a restarted peer resumes its round.

What a peer must not lose when it restarts mid-round: the round's public context and its sealed
secret key (to decrypt the aggregate), its own encrypted update (to push it again: a new
encryption would not match the hash it committed), and, as merge peer, the updates it received.
None of these is secret on disk: contexts are public, keys are sealed to our own key, updates are
ciphertexts.

Files are ``<kind>/<round>-<sender>-<content digest>.blob``, written atomically (temporary file,
fsync, rename); the index is rebuilt from the names at start-up, and a file whose bytes do not
hash to its name (a torn write from a crash) is dropped.

Blobs received from other peers never pass through memory whole (store.FileBlobStore): they
are written to ``.incoming/`` while they are hashed, then fsynced and renamed into their kind's
folder. What is left in ``.incoming/`` at start-up (a receipt cut short by a crash) is deleted.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import BinaryIO

from swarm._files import write_atomic
from swarm.p2p.store import BlobKind, BlobRef, content_hasher

#: where blobs being received are written before they are verified and moved in
STAGING = ".incoming"

log = logging.getLogger(__name__)


class DirectoryBlobStore:
    """Thread-safe, crash-safe blob store under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._refs: dict[tuple[BlobKind, int, str], BlobRef] = {}
        self._paths: dict[bytes, Path] = {}
        self._load()

    def _load(self) -> None:
        staging = self.root / STAGING
        if staging.is_dir():
            for leftover in staging.iterdir():
                log.info("deleting %s: a receipt cut short", leftover)
                leftover.unlink(missing_ok=True)
        for kind in BlobKind:
            folder = self.root / kind.value
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.blob"), key=lambda p: p.stat().st_mtime_ns):
                try:
                    round_text, sender, digest_hex = path.stem.split("-")
                    digest = bytes.fromhex(digest_hex)
                    actual, size = _file_digest(kind, path)
                except (ValueError, OSError):
                    log.warning("ignoring unreadable blob file %s", path)
                    continue
                if actual != digest:
                    log.warning("dropping %s: its bytes do not match its hash (torn write?)", path)
                    path.unlink(missing_ok=True)
                    continue
                ref = BlobRef(
                    kind, int(round_text), "" if sender == "self" else sender, digest, size
                )
                self._index(ref, path)

    def _index(self, ref: BlobRef, path: Path) -> None:
        key = (ref.kind, ref.round_id, ref.sender)
        self._refs.pop(key, None)  # a replacement counts as newest, as in MemoryBlobStore
        self._refs[key] = ref
        self._paths[ref.digest] = path

    def put(self, ref: BlobRef, data: bytes | bytearray) -> None:
        if len(data) != ref.size:
            raise ValueError(f"blob of {len(data)} bytes stored under a ref of {ref.size} bytes")
        with self._lock:
            existing = self._paths.get(ref.digest)
        if existing is not None and existing.exists():
            # The same bytes under a second ref (a context both pushed to us and pulled): one
            # file per digest, or pruning the first ref would orphan the second file.
            path = existing
        else:
            path = self._path_for(ref)
            write_atomic(path, data)
        with self._lock:
            old = self._refs.get((ref.kind, ref.round_id, ref.sender))
            self._index(ref, path)
            if old is not None and old.digest != ref.digest:
                self._drop_unreferenced(old.digest)

    def _path_for(self, ref: BlobRef) -> Path:
        folder = self.root / ref.kind.value
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{ref.round_id}-{ref.sender or 'self'}-{ref.digest.hex()}.blob"

    def staging_dir(self) -> Path:
        staging = self.root / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    def put_file(self, ref: BlobRef, path: Path) -> None:
        """Move a verified file received into :meth:`staging_dir` in as ``ref``'s blob."""
        path = Path(path)
        if path.stat().st_size != ref.size:
            path.unlink(missing_ok=True)
            raise ValueError(f"file of {ref.size} bytes expected at {path}")
        with self._lock:
            existing = self._paths.get(ref.digest)
        if existing is not None and existing.exists():
            path.unlink(missing_ok=True)  # one file per digest, as in put()
            final = existing
        else:
            final = self._path_for(ref)
            try:
                with open(path, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(path, final)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        with self._lock:
            old = self._refs.get((ref.kind, ref.round_id, ref.sender))
            self._index(ref, final)
            if old is not None and old.digest != ref.digest:
                self._drop_unreferenced(old.digest)

    def open_blob(self, digest: bytes) -> BinaryIO | None:
        with self._lock:
            path = self._paths.get(digest)
        if path is None:
            return None
        try:
            return open(path, "rb")  # the caller closes it
        except OSError:
            return None

    def get(self, digest: bytes) -> bytes | None:
        with self._lock:
            path = self._paths.get(digest)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    def find(
        self,
        *,
        kind: BlobKind | None = None,
        round_id: int | None = None,
        sender: str | None = None,
        digest: bytes | None = None,
    ) -> list[BlobRef]:
        with self._lock:
            refs = list(self._refs.values())
        return [r for r in refs if r.matches(kind, round_id, sender, digest)]

    def discard_before(self, round_id: int, kinds: tuple[BlobKind, ...]) -> None:
        """Delete blobs of ``kinds`` from rounds before ``round_id`` (they are no longer needed)."""
        with self._lock:
            for key, ref in list(self._refs.items()):
                if ref.kind in kinds and ref.round_id < round_id:
                    del self._refs[key]
                    self._drop_unreferenced(ref.digest)

    def _drop_unreferenced(self, digest: bytes) -> None:
        if any(r.digest == digest for r in self._refs.values()):
            return
        path = self._paths.pop(digest, None)
        if path is not None:
            path.unlink(missing_ok=True)


def _file_digest(kind: BlobKind, path: Path) -> tuple[bytes, int]:
    """The content digest and size of a blob file, read in pieces (never whole in memory)."""
    hasher = content_hasher(kind)
    size = 0
    with open(path, "rb") as fh:
        while piece := fh.read(1 << 20):
            hasher.update(piece)
            size += len(piece)
    return hasher.digest(), size
