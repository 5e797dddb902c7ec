"""Length-prefixed, chunked, end-to-end hashed transfers over any byte stream.

Wire format (all integers big-endian):

* control message: ``u32 length || UTF-8 JSON object``, at most :data:`MAX_CONTROL_BYTES`;
* payload of a size announced beforehand in a control message: chunks ``u32 length || bytes``
  (1 <= length <= :data:`MAX_CHUNK_BYTES`) whose lengths add up to exactly that size (or to
  ``size - offset`` when resuming), followed by a 32-byte trailer: the sender's digest of the
  *whole* payload (the tagged hash of the payload's kind, swarm.hashing: the same digest the
  ledger records, so one hash does both jobs).

The receiver hashes as it copies, then checks its own hash against the trailer (corruption on
the way) and against the digest its caller expects (the one committed on the ledger). Nothing
here waits on a clock: callers put every call under a trio deadline.
"""

from __future__ import annotations

import json
import queue
import struct
import threading
from collections.abc import Mapping
from typing import IO, Any, Protocol

import trio

from swarm.errors import (
    PayloadHashMismatchError,
    PayloadTooLargeError,
    ProtocolViolationError,
    TransferInterruptedError,
    TransferRefusedError,
)
from swarm.hashing import Tag, tagged_hasher

#: a control message (header, answer, status) is small by construction
MAX_CONTROL_BYTES = 64 * 1024
#: what a sender puts in one chunk
DEFAULT_CHUNK_BYTES = 1 << 20
#: what a receiver accepts in one chunk; a larger length prefix is a protocol violation
MAX_CHUNK_BYTES = 4 << 20
DIGEST_BYTES = 32
#: the most bytes one ``stream.write`` carries by default
MAX_WRITE_BYTES = 1 << 20
#: over libp2p: a yamux frame (12-byte header + this) is exactly one Noise message (65,519
#: bytes of plaintext). py-libp2p cuts writes into 65,524-byte frames, which Noise then splits
#: into two messages (65,519 + 17): twice the encryptions, messages and socket sends.
LIBP2P_WRITE_BYTES = 65_519 - 12
#: a file payload is read, hashed and written in pieces of this size, in a worker thread
FILE_PIECE_BYTES = 1 << 20
#: a blocking receipt hashes what arrived each time this much has (well inside a core's L2)
HASH_BLOCK_BYTES = 128 << 10
#: a blocking receipt of this much or more hashes in a thread of its own (_BackgroundHasher)
BACKGROUND_HASH_MIN_BYTES = 2 << 20

_U32 = struct.Struct(">I")


class ByteStream(Protocol):
    """The two calls framing needs; ``read`` returns b"" at end of stream."""

    async def read(self, max_bytes: int) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


class SyncSocket(Protocol):
    """A blocking socket (an ``ssl.SSLSocket``), used from a worker thread."""

    def recv_into(self, buffer: memoryview, nbytes: int = 0) -> int: ...

    def sendall(self, data: bytes | memoryview) -> None: ...


class Coalesced:
    """A ByteStream whose writes are held and go out together at :meth:`flush`, in writes of at
    most ``write_bytes``: a small push's header, payload and trailer in one yamux frame (one
    Noise message, one socket send) instead of three. Reading is the underlying stream's."""

    def __init__(self, stream: ByteStream, write_bytes: int) -> None:
        self._stream = stream
        self._write_bytes = write_bytes
        self._held: list[bytes] = []

    async def read(self, max_bytes: int) -> bytes:
        return await self._stream.read(max_bytes)

    async def write(self, data: bytes) -> None:
        self._held.append(bytes(data))

    async def flush(self) -> None:
        data, self._held = b"".join(self._held), []
        for start in range(0, len(data), self._write_bytes):
            await self._stream.write(data[start : start + self._write_bytes])


def recv_exactly_sync(sock: SyncSocket, n: int) -> bytes:
    """Blocking :func:`read_exactly` on a socket."""
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        count = sock.recv_into(view[got:], n - got)
        if not count:
            raise TransferInterruptedError(f"stream ended after {got} of {n} bytes")
        got += count
    return bytes(buffer)


def send_payload_sync(
    sock: SyncSocket,
    source: bytes | bytearray | memoryview | IO[bytes],
    size: int,
    *,
    digest: bytes,
    offset: int = 0,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> None:
    """Blocking :func:`send_payload` / :func:`send_file_payload` on a socket (from a worker
    thread: OpenSSL encrypts and the socket sends without the event loop): the same chunks
    and trailer. ``source`` is the payload's bytes, or a file holding ``size`` bytes."""
    _check_sizes(chunk_bytes, MAX_WRITE_BYTES)
    if not 0 <= offset <= size:
        raise ValueError(f"offset {offset} outside a payload of {size} bytes")
    in_memory = isinstance(source, bytes | bytearray | memoryview)
    view = memoryview(source).cast("B") if in_memory else None  # type: ignore[arg-type]
    if view is None:
        source.seek(offset)  # type: ignore[union-attr]
    pos = offset
    while pos < size:
        length = min(chunk_bytes, size - pos)
        if view is not None:
            chunk: bytes | memoryview = view[pos : pos + length]
        else:
            chunk = source.read(length)  # type: ignore[union-attr]
            if len(chunk) != length:
                raise TransferInterruptedError(f"the file ended early at {pos + len(chunk)} bytes")
        sock.sendall(_U32.pack(length))
        sock.sendall(chunk)
        pos += length
    sock.sendall(digest)


async def read_exactly(stream: ByteStream, n: int) -> bytes:
    """Read exactly ``n`` bytes; TransferInterruptedError if the stream ends first."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        data = await stream.read(n - got)
        if not data:
            raise TransferInterruptedError(f"stream ended after {got} of {n} bytes")
        parts.append(data)
        got += len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def encode_message(message: Mapping[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
    if len(body) > MAX_CONTROL_BYTES:
        raise PayloadTooLargeError(len(body), MAX_CONTROL_BYTES, "control message")
    return _U32.pack(len(body)) + body


async def write_message(stream: ByteStream, message: Mapping[str, Any]) -> None:
    await stream.write(encode_message(message))


async def read_message(stream: ByteStream) -> dict[str, Any]:
    (length,) = _U32.unpack(await read_exactly(stream, _U32.size))
    if length > MAX_CONTROL_BYTES:
        # refuse before reading it: the length prefix is all a hostile peer gets to spend
        raise ProtocolViolationError(f"control message of {length} bytes announced")
    return parse_message(await read_exactly(stream, length))


def read_message_sync(sock: SyncSocket) -> dict[str, Any]:
    """Blocking :func:`read_message` on a socket."""
    (length,) = _U32.unpack(recv_exactly_sync(sock, _U32.size))
    if length > MAX_CONTROL_BYTES:
        raise ProtocolViolationError(f"control message of {length} bytes announced")
    return parse_message(recv_exactly_sync(sock, length))


def parse_message(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolViolationError("control message is not JSON") from exc
    if not isinstance(message, dict):
        raise ProtocolViolationError("control message is not a JSON object")
    return message


def refusal(code: str, reason: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "reason": reason}


def accepted(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def raise_if_refused(message: Mapping[str, Any]) -> None:
    """Turn a peer's ``{"ok": false, ...}`` answer into :class:`TransferRefusedError`."""
    if message.get("ok") is True:
        return
    code = message.get("code")
    reason = message.get("reason", "")
    if not isinstance(code, str):
        raise ProtocolViolationError(f"answer is neither ok nor a refusal: {dict(message)!r}")
    raise TransferRefusedError(code, str(reason))


async def _write_chunks(
    stream: ByteStream, view: memoryview, pos: int, end: int, chunk_bytes: int, write_bytes: int
) -> None:
    """Frame ``view[pos:end]`` as chunks, in writes of at most ``write_bytes`` each."""
    while pos < end:
        length = min(chunk_bytes, end - pos)
        head = _U32.pack(length)
        first = min(length, write_bytes - len(head))
        # the prefix travels in the first write (one small copy, not a copy of the chunk)
        await stream.write(head + view[pos : pos + first])
        stop, pos = pos + length, pos + first
        while pos < stop:
            piece = min(write_bytes, stop - pos)
            await stream.write(view[pos : pos + piece])  # type: ignore[arg-type]
            pos += piece


def _check_sizes(chunk_bytes: int, write_bytes: int) -> None:
    if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
        raise ValueError(f"chunk size must be in 1..{MAX_CHUNK_BYTES}")
    if write_bytes <= _U32.size:
        raise ValueError("a write must hold more than a chunk's length prefix")


async def send_payload(
    stream: ByteStream,
    data: bytes | bytearray | memoryview,
    *,
    tag: Tag,
    offset: int = 0,
    whole_digest: bytes | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    write_bytes: int = MAX_WRITE_BYTES,
) -> bytes:
    """Send ``data[offset:]`` in chunks, then the trailer; returns the trailer's digest.

    ``tag`` is the payload's hash tag (``swarm.p2p.store.CONTENT_TAGS[kind]``).
    ``whole_digest`` is the tagged hash of all of ``data`` when the sender already knows it (a blob
    it verified when storing it, an update whose hash it committed); otherwise it is computed
    while sending, so the trailer describes the bytes that actually went out. Either way the
    receiver hashes what arrives and checks it against the digest *it* expects.
    ``write_bytes`` caps each ``stream.write`` (:data:`LIBP2P_WRITE_BYTES` makes one yamux frame
    fit one Noise message).
    """
    _check_sizes(chunk_bytes, write_bytes)
    view = memoryview(data).cast("B")
    if not 0 <= offset <= len(view):
        raise ValueError(f"offset {offset} outside a payload of {len(view)} bytes")
    digest = whole_digest
    if digest is None:
        hasher = tagged_hasher(tag)
        hasher.update(view)
        digest = hasher.digest()
    await _write_chunks(stream, view, offset, len(view), chunk_bytes, write_bytes)
    await stream.write(digest)
    return digest


async def send_file_payload(
    stream: ByteStream,
    file: IO[bytes],
    size: int,
    *,
    digest: bytes,
    offset: int = 0,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    write_bytes: int = MAX_WRITE_BYTES,
) -> None:
    """Send bytes ``offset..size`` of an open file, then ``digest`` as the trailer.

    The file is read in pieces of :data:`FILE_PIECE_BYTES` in a worker thread, so a blob served
    from disk costs O(piece) memory.
    """
    _check_sizes(chunk_bytes, write_bytes)
    if not 0 <= offset <= size:
        raise ValueError(f"offset {offset} outside a payload of {size} bytes")
    # whole chunks per piece, so pieces never split a chunk
    piece_bytes = max(chunk_bytes, FILE_PIECE_BYTES // chunk_bytes * chunk_bytes)

    def read_piece(at: int) -> bytes:
        file.seek(at)
        data = file.read(min(piece_bytes, size - at))
        if len(data) != min(piece_bytes, size - at):
            raise TransferInterruptedError(f"the file ended early at {at + len(data)} bytes")
        return data

    pos = offset
    while pos < size:
        piece = await trio.to_thread.run_sync(read_piece, pos)
        await _write_chunks(stream, memoryview(piece), 0, len(piece), chunk_bytes, write_bytes)
        pos += len(piece)
    await stream.write(digest)


class _BackgroundHasher:
    """Hashes pieces in a thread of its own, beside the thread that receives them.

    SHA-256 is about a third of a bulk receipt's CPU time (TLS decryption and the kernel's
    copies are the rest) and hashlib releases the GIL, so on a second core it comes off the
    receipt's critical path: 10 MB over loopback in ~22-25 ms instead of ~26-36 ms. Pieces are
    memoryviews of buffers nobody writes to again."""

    def __init__(self, hasher: Any) -> None:
        self._pieces: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, args=(hasher,), name="payload hash", daemon=True
        )
        self._thread.start()

    def _run(self, hasher: Any) -> None:
        while (piece := self._pieces.get()) is not None:
            hasher.update(piece)

    def update(self, piece: memoryview) -> None:
        self._pieces.put(piece)

    def close(self) -> None:
        """Wait until every piece is hashed."""
        self._pieces.put(None)
        self._thread.join()


class PartialPayload:
    """A payload being received, kept across attempts so a retry can resume at ``received``.

    The hash runs as bytes arrive, so resuming never re-reads the prefix. The bytes are kept
    as the pieces they arrived in and joined once at the end (:meth:`take`): no buffer of the
    whole size is zeroed up front. :class:`FilePayload` writes them to a file instead.

    Two ways to receive, which one attempt and the next may mix: :meth:`receive_verified` on a
    ByteStream (the event loop), :meth:`receive_verified_sync` on a blocking socket in a worker
    thread (the bulk channel).
    """

    def __init__(self, size: int, expected_digest: bytes, limit: int, *, tag: Tag) -> None:
        if size < 0:
            raise ProtocolViolationError(f"negative payload size {size}")
        if size > limit:
            raise PayloadTooLargeError(size, limit)
        if len(expected_digest) != DIGEST_BYTES:
            raise ValueError("expected digest must be 32 bytes (a tagged sha256)")
        self.tag = tag
        self.size = size
        self.expected_digest = expected_digest
        self.received = 0
        self._pieces: list[bytes | bytearray] = []
        self._hasher = tagged_hasher(tag)
        # the blocking receipt fills this piece, then keeps (or writes) it
        self._scratch: bytearray | None = None
        self._fill = 0
        self._hashed = 0  # bytes of the piece hashed so far
        self._hashing: _BackgroundHasher | None = None

    @property
    def complete(self) -> bool:
        return self.received == self.size

    def reset(self) -> None:
        """Forget what was received (after a hash mismatch: the prefix cannot be trusted)."""
        self.received = 0
        self._hasher = tagged_hasher(self.tag)
        self._pieces = []
        self._scratch, self._fill = None, 0

    # --- where verified-as-hashed pieces go: memory here, a file in FilePayload -----------

    def _keep(self, piece: bytes | bytearray) -> None:
        self._pieces.append(piece)

    async def _take(self, data: bytes) -> None:
        self._hasher.update(data)
        self._keep(data)
        self.received += len(data)

    async def _flush(self) -> None:
        """Make everything taken so far part of the hash (and the file)."""

    async def _digest(self) -> bytes:
        return self._hasher.digest()

    async def _restart(self) -> None:
        self.reset()

    async def receive_verified(self, stream: ByteStream) -> None:
        """Read chunks up to ``size``, then the trailer, and check the digest.

        Raises PayloadHashMismatchError (and resets) when the bytes do not hash to the trailer or
        to the expected digest; ProtocolViolationError on a malformed chunk;
        TransferInterruptedError when the stream ends early (the prefix is kept for a resume).
        """
        try:
            while self.received < self.size:
                (length,) = _U32.unpack(await read_exactly(stream, _U32.size))
                remaining = self.size - self.received
                if length == 0 or length > MAX_CHUNK_BYTES or length > remaining:
                    raise ProtocolViolationError(
                        f"chunk of {length} bytes with {remaining} bytes left to receive"
                    )
                # keep each read as it arrives, so an interruption mid-chunk still keeps it
                while length:
                    data = await stream.read(length)
                    if not data:
                        raise TransferInterruptedError(
                            f"stream ended after {self.received} of {self.size} bytes"
                        )
                    await self._take(data)
                    length -= len(data)
        finally:
            with trio.CancelScope(shield=True):
                await self._flush()
        trailer = await read_exactly(stream, DIGEST_BYTES)
        digest = await self._digest()
        if digest != trailer:
            await self._restart()
            raise PayloadHashMismatchError(
                f"payload hashes to {digest.hex()} but the sender's trailer says {trailer.hex()}"
            )
        if digest != self.expected_digest:
            await self._restart()
            raise PayloadHashMismatchError(
                f"payload hashes to {digest.hex()}, expected {self.expected_digest.hex()}"
            )

    async def receive(self, stream: ByteStream) -> bytes:
        """:meth:`receive_verified`, then the payload (in-memory receipt only)."""
        await self.receive_verified(stream)
        return self.take()

    def take(self) -> bytes:
        """The verified payload of an in-memory receipt (once), as bytes: a copy when it
        arrived in pieces or into a buffer (~4 ms per 10 MB), so call it from a worker thread."""
        return bytes(self.take_buffer())  # no copy of bytes

    def take_buffer(self) -> bytes | bytearray:
        """:meth:`take`, or the buffer the payload was received into (no copy: a bulk receipt's
        bytearray, which the caller then owns)."""
        pieces, self._pieces = self._pieces, []
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)

    # --- the same, blocking, on a socket in a worker thread (the bulk channel) -----------

    def _scratch_bytes(self) -> int:
        """The piece a blocking receipt fills before keeping it: the whole rest of an
        in-memory payload (one buffer, no join at the end; its pages are touched only as bytes
        arrive, so an announced size costs nothing until it is sent), a file's piece size."""
        return self.size - self.received

    def _take_sync(self, sock: SyncSocket, length: int) -> int:
        if self._scratch is None:
            self._scratch = bytearray(self._scratch_bytes())
            self._fill = self._hashed = 0
        fill = self._fill
        space = len(self._scratch) - fill
        count = sock.recv_into(memoryview(self._scratch)[fill:], min(length, space))
        self._fill += count
        self.received += count
        if self._fill - self._hashed >= HASH_BLOCK_BYTES:
            self._hash_filled()
        if self._fill == len(self._scratch):
            self._flush_sync()
        return count

    def _hash_filled(self) -> None:
        # what arrived since the last call, while it is still in the CPU's cache: a second
        # pass over a whole piece would read it back from memory
        assert self._scratch is not None
        piece = memoryview(self._scratch)[self._hashed : self._fill]
        if self._hashing is not None:
            self._hashing.update(piece)
        else:
            self._hasher.update(piece)
        self._hashed = self._fill

    def _flush_sync(self) -> None:
        scratch, fill = self._scratch, self._fill
        if scratch is None or not fill:
            return
        self._hash_filled()
        piece = scratch if fill == len(scratch) else scratch[:fill]
        self._scratch, self._fill = None, 0
        self._keep_sync(piece)

    def _keep_sync(self, piece: bytearray) -> None:
        self._keep(piece)

    def _restart_sync(self) -> None:
        self.reset()

    def receive_verified_sync(self, sock: SyncSocket) -> None:
        """Blocking :meth:`receive_verified` on a socket; the state it leaves (``received``,
        the hash) is the same, so a later attempt over either kind of stream resumes it."""
        if self.size - self.received >= BACKGROUND_HASH_MIN_BYTES:
            self._hashing = _BackgroundHasher(self._hasher)
        try:
            self._receive_sync(sock)
        finally:
            if self._hashing is not None:
                self._hashing.close()
                self._hashing = None
        trailer = recv_exactly_sync(sock, DIGEST_BYTES)
        digest = self._hasher.digest()
        if digest != trailer:
            self._restart_sync()
            raise PayloadHashMismatchError(
                f"payload hashes to {digest.hex()} but the sender's trailer says {trailer.hex()}"
            )
        if digest != self.expected_digest:
            self._restart_sync()
            raise PayloadHashMismatchError(
                f"payload hashes to {digest.hex()}, expected {self.expected_digest.hex()}"
            )

    def _receive_sync(self, sock: SyncSocket) -> None:
        try:
            while self.received < self.size:
                (length,) = _U32.unpack(recv_exactly_sync(sock, _U32.size))
                remaining = self.size - self.received
                if length == 0 or length > MAX_CHUNK_BYTES or length > remaining:
                    raise ProtocolViolationError(
                        f"chunk of {length} bytes with {remaining} bytes left to receive"
                    )
                while length:
                    count = self._take_sync(sock, length)
                    if not count:
                        raise TransferInterruptedError(
                            f"stream ended after {self.received} of {self.size} bytes"
                        )
                    length -= count
        finally:
            self._flush_sync()


class FilePayload(PartialPayload):
    """A payload received into an open file (from its start), hashed as it is written.

    On a ByteStream, reads are gathered into pieces of :data:`FILE_PIECE_BYTES`; each piece is
    hashed and written in a worker thread. On a blocking socket (already in a worker thread),
    each piece is hashed and written as it fills. The caller owns the file: it fsyncs and
    renames it into a blob store once a receipt is verified, and deletes it otherwise.
    """

    def __init__(
        self, size: int, expected_digest: bytes, limit: int, *, tag: Tag, file: IO[bytes]
    ) -> None:
        super().__init__(size, expected_digest, limit, tag=tag)
        self.file = file
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._written = 0

    async def _take(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        self.received += len(data)
        if self._pending_bytes >= FILE_PIECE_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        pieces, self._pending, self._pending_bytes = self._pending, [], 0

        def write() -> None:
            data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            self._hasher.update(data)
            self._write(data)

        await trio.to_thread.run_sync(write)

    def _write(self, data: bytes | bytearray) -> None:
        self.file.seek(self._written)
        self.file.write(data)
        self._written += len(data)

    def _scratch_bytes(self) -> int:
        return min(FILE_PIECE_BYTES, self.size - self.received)

    def _keep_sync(self, piece: bytearray) -> None:
        self._write(piece)

    def _restart_sync(self) -> None:
        self.reset()
        self._pending, self._pending_bytes, self._written = [], 0, 0
        self.file.truncate(0)

    async def _restart(self) -> None:
        await trio.to_thread.run_sync(self._restart_sync)

    async def receive(self, stream: ByteStream) -> bytes:
        raise TypeError("a FilePayload's bytes are in its file: use receive_verified")

    def take_buffer(self) -> bytes | bytearray:
        raise TypeError("a FilePayload's bytes are in its file")
