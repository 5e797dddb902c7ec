"""A BlobStore that keeps every blob on disk, so a restarted peer resumes its round.

What a peer must not lose when it restarts mid-round: the round's public context and its sealed
secret key (to decrypt the aggregate), its own encrypted update (to push it again: a new
encryption would not match the hash it committed), and, as merge peer, the updates it received.
None of these is secret on disk: contexts are public, keys are sealed to our own key, updates are
ciphertexts.

Files are ``<kind>/<round>-<sender>-<content digest>.blob``, written atomically (temporary file,
fsync, rename); the index is rebuilt from the names at start-up, and a file whose bytes do not
hash to its name (a torn write from a crash) is dropped.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from swarm._files import write_atomic
from swarm.p2p.store import BlobKind, BlobRef, content_digest

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
        for kind in BlobKind:
            folder = self.root / kind.value
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.blob"), key=lambda p: p.stat().st_mtime_ns):
                try:
                    round_text, sender, digest_hex = path.stem.split("-")
                    data = path.read_bytes()
                    digest = bytes.fromhex(digest_hex)
                except (ValueError, OSError):
                    log.warning("ignoring unreadable blob file %s", path)
                    continue
                if content_digest(kind, data) != digest:
                    log.warning("dropping %s: its bytes do not match its hash (torn write?)", path)
                    path.unlink(missing_ok=True)
                    continue
                ref = BlobRef(
                    kind, int(round_text), "" if sender == "self" else sender, digest, len(data)
                )
                self._index(ref, path)

    def _index(self, ref: BlobRef, path: Path) -> None:
        key = (ref.kind, ref.round_id, ref.sender)
        self._refs.pop(key, None)  # a replacement counts as newest, as in MemoryBlobStore
        self._refs[key] = ref
        self._paths[ref.digest] = path

    def put(self, ref: BlobRef, data: bytes) -> None:
        if len(data) != ref.size:
            raise ValueError(f"blob of {len(data)} bytes stored under a ref of {ref.size} bytes")
        with self._lock:
            existing = self._paths.get(ref.digest)
        if existing is not None and existing.exists():
            # The same bytes under a second ref (a context both pushed to us and pulled): one
            # file per digest, or pruning the first ref would orphan the second file.
            path = existing
        else:
            folder = self.root / ref.kind.value
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{ref.round_id}-{ref.sender or 'self'}-{ref.digest.hex()}.blob"
            write_atomic(path, data)
        with self._lock:
            old = self._refs.get((ref.kind, ref.round_id, ref.sender))
            self._index(ref, path)
            if old is not None and old.digest != ref.digest:
                self._drop_unreferenced(old.digest)

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
