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
    writer = BlobWriter(
        kind=header.kind,
        params_id=header.params_id,
        round_id=header.round_id,
        sender=header.sender,
        context_hash=header.context_hash,
        param_count=header.param_count,
        layout_hash=header.layout_hash,
        count=header.count,
    )
    writer.write(bytes(payload))
    return writer.finish()
