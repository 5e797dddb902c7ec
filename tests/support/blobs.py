"""Blobs whose payload a test changed, with a header that matches it again: what a member that
*means* to send a malformed ciphertext sends (a corrupted payload under the old header is
refused earlier, by its digest)."""

from __future__ import annotations

from collections.abc import Callable

from swarm.crypto.blob import HEADER_SIZE, BlobWriter, read_header


def rewritten(blob: bytes, change: Callable[[bytearray], None]) -> bytes:
    """``blob`` with ``change`` applied to its payload and its header's digest recomputed."""
    header = read_header(blob)
    payload = bytearray(blob[HEADER_SIZE:])
    change(payload)
    writer = BlobWriter.like(header)
    writer.write(bytes(payload))
    return writer.finish()
