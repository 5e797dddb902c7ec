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
import struct
from collections.abc import Mapping
from typing import Any, Protocol

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

_U32 = struct.Struct(">I")


class ByteStream(Protocol):
    """The two calls framing needs; ``read`` returns b"" at end of stream."""

    async def read(self, max_bytes: int) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


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
    body = await read_exactly(stream, length)
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


async def send_payload(
    stream: ByteStream,
    data: bytes | bytearray | memoryview,
    *,
    tag: Tag,
    offset: int = 0,
    whole_digest: bytes | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> bytes:
    """Send ``data[offset:]`` in chunks, then the trailer; returns the trailer's digest.

    ``tag`` is the payload's hash tag (``swarm.p2p.store.CONTENT_TAGS[kind]``).
    ``whole_digest`` is the tagged hash of all of ``data`` when the sender already knows it (a blob
    it verified when storing it); otherwise it is computed while sending, so the trailer
    describes the bytes that actually went out.
    """
    if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
        raise ValueError(f"chunk size must be in 1..{MAX_CHUNK_BYTES}")
    view = memoryview(data).cast("B")
    if not 0 <= offset <= len(view):
        raise ValueError(f"offset {offset} outside a payload of {len(view)} bytes")
    # hash what actually goes out unless the sender already knows the whole payload's digest
    hasher = None
    if whole_digest is None:
        hasher = tagged_hasher(tag)
        hasher.update(view[:offset])
    pos = offset
    while pos < len(view):
        chunk = view[pos : pos + chunk_bytes]
        if hasher is not None:
            hasher.update(chunk)
        await stream.write(_U32.pack(len(chunk)) + chunk)
        pos += len(chunk)
    digest = hasher.digest() if hasher is not None else whole_digest
    assert digest is not None
    await stream.write(digest)
    return digest


class PartialPayload:
    """A payload being received, kept across attempts so a retry can resume at ``received``.

    The hash runs as bytes arrive, so resuming never re-reads the prefix.
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
        self._buffer = bytearray(size)
        self._hasher = tagged_hasher(tag)

    @property
    def complete(self) -> bool:
        return self.received == self.size

    def reset(self) -> None:
        """Forget what was received (after a hash mismatch: the prefix cannot be trusted)."""
        self.received = 0
        self._hasher = tagged_hasher(self.tag)

    def _take(self, data: bytes) -> None:
        end = self.received + len(data)
        self._buffer[self.received : end] = data
        self._hasher.update(data)
        self.received = end

    async def receive(self, stream: ByteStream) -> bytes:
        """Read chunks up to ``size``, then the trailer; return the verified payload.

        Raises PayloadHashMismatchError (and resets) when the bytes do not hash to the trailer or
        to the expected digest; ProtocolViolationError on a malformed chunk;
        TransferInterruptedError when the stream ends early (the prefix is kept for a resume).
        """
        while self.received < self.size:
            (length,) = _U32.unpack(await read_exactly(stream, _U32.size))
            remaining = self.size - self.received
            if length == 0 or length > MAX_CHUNK_BYTES or length > remaining:
                raise ProtocolViolationError(
                    f"chunk of {length} bytes with {remaining} bytes left to receive"
                )
            # copy as each read arrives, so an interruption mid-chunk still keeps those bytes
            while length:
                data = await stream.read(length)
                if not data:
                    raise TransferInterruptedError(
                        f"stream ended after {self.received} of {self.size} bytes"
                    )
                self._take(data)
                length -= len(data)
        trailer = await read_exactly(stream, DIGEST_BYTES)
        digest = self._hasher.digest()
        if digest != trailer:
            self.reset()
            raise PayloadHashMismatchError(
                f"payload hashes to {digest.hex()} but the sender's trailer says {trailer.hex()}"
            )
        if digest != self.expected_digest:
            self.reset()
            raise PayloadHashMismatchError(
                f"payload hashes to {digest.hex()}, expected {self.expected_digest.hex()}"
            )
        payload = bytes(self._buffer)
        self._buffer = bytearray()
        return payload
