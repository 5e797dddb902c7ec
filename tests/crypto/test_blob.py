"""The blob header: structure, identity, size bound, and refusal of blobs that belong
elsewhere. These tests use synthetic payloads; real ciphertexts are in test_codec.py."""

from __future__ import annotations

import hashlib
import struct

import pytest

from swarm.crypto import HEADER_SIZE, PayloadKind, blob_id, check_header, max_blob_size, read_header
from swarm.crypto.blob import UPDATE_KINDS, BlobHeader, make_blob
from swarm.errors import (
    BlobMismatchError,
    LayoutMismatchError,
    MalformedBlobError,
    OversizedBlobError,
    UnknownParameterSetError,
)
from swarm.hashing import Tag, tagged_hash

SENDER = bytes(range(20))
CONTEXT = hashlib.sha256(b"context").digest()
LAYOUT = hashlib.sha256(b"layout").digest()
PAYLOAD = b"ciphertext bytes stand-in" * 10


def blob(**changes: object) -> bytes:
    fields: dict[str, object] = dict(
        kind=PayloadKind.SEEDED_UPDATE,
        params_id=1,
        round_id=3,
        sender=SENDER,
        context_hash=CONTEXT,
        param_count=1000,
        layout_hash=LAYOUT,
        count=1,
        payload=PAYLOAD,
    )
    fields.update(changes)
    return make_blob(**fields)  # type: ignore[arg-type]


def check(header: BlobHeader, **changes: object) -> None:
    expected: dict[str, object] = dict(
        round_id=3,
        params_id=1,
        context_hash=CONTEXT,
        layout_hash=LAYOUT,
        param_count=1000,
        kinds=UPDATE_KINDS,
        sender=SENDER,
    )
    expected.update(changes)
    check_header(header, **expected)  # type: ignore[arg-type]


def test_header_is_152_bytes_and_round_trips_every_field() -> None:
    """Header encoding: what is written is read back, at the documented offsets."""
    data = blob()
    assert HEADER_SIZE == 152 and len(data) == HEADER_SIZE + len(PAYLOAD)
    assert data[:4] == b"SWCT" and data[4] == 2 and data[5] == PayloadKind.SEEDED_UPDATE
    assert struct.unpack_from(">Q", data, 8)[0] == 3  # round
    assert data[16:36] == SENDER and data[36:68] == CONTEXT and data[76:108] == LAYOUT
    header = read_header(data)
    assert header.kind is PayloadKind.SEEDED_UPDATE
    assert (header.params_id, header.round_id, header.param_count, header.count) == (1, 3, 1000, 1)
    assert header.sender == SENDER and header.context_hash == CONTEXT
    assert header.layout_hash == LAYOUT and header.payload_length == len(PAYLOAD)
    assert header.payload_digest == tagged_hash(Tag.BLOB_PAYLOAD, PAYLOAD)


def test_blob_id_is_the_blob_tagged_hash_of_the_whole_blob() -> None:
    """Blob identity: the ledger commitment covers header and payload alike, under the blob tag
    (fault: an untagged hash that another kind of hash of the same bytes could equal)."""
    data = blob()
    assert blob_id(data) == tagged_hash(Tag.BLOB, data)
    assert blob_id(data) != hashlib.sha256(data).digest()
    assert blob_id(blob(round_id=4)) != blob_id(data)


@pytest.mark.parametrize("cut", [0, 10, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5])
def test_truncated_blob_is_malformed(cut: int) -> None:
    """Truncated bytes: anywhere in the header or the payload."""
    with pytest.raises(MalformedBlobError):
        read_header(blob()[:cut])


def test_padded_blob_is_malformed() -> None:
    """Trailing garbage: a blob longer than its declared payload."""
    with pytest.raises(MalformedBlobError):
        read_header(blob() + b"\x00")


def test_corrupted_payload_byte_is_caught_by_the_payload_digest() -> None:
    """Corrupted bytes inside the payload, which SEAL might load as garbage."""
    data = bytearray(blob())
    data[HEADER_SIZE + 7] ^= 0x01
    with pytest.raises(MalformedBlobError, match="digest"):
        read_header(bytes(data))


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [(0, b"XXXX", "magic"), (4, b"\x09", "version"), (5, b"\x09", "kind")],
)
def test_corrupted_header_is_malformed(offset: int, value: bytes, message: str) -> None:
    """Corrupted header bytes: magic, format version, payload kind."""
    data = bytearray(blob())
    data[offset : offset + len(value)] = value
    with pytest.raises(MalformedBlobError, match=message):
        read_header(bytes(data))


def test_unknown_parameter_set_is_refused() -> None:
    """A blob naming a CKKS parameter set this version does not know."""
    with pytest.raises(UnknownParameterSetError) as info:
        read_header(blob(params_id=99))
    assert info.value.params_id == 99


def test_max_blob_size_is_one_full_last_level_ciphertext_per_chunk_plus_slack() -> None:
    """Size bound, computed by hand: 1..4096 values -> 1 ciphertext of 2 x 8192 x 8 bytes."""
    one_chunk = HEADER_SIZE + (2 * 8192 * 8 + 1024) + 64
    assert max_blob_size(1, 1) == one_chunk
    assert max_blob_size(4096, 1) == one_chunk
    assert max_blob_size(4097, 1) == one_chunk + 2 * 8192 * 8 + 1024
    with pytest.raises(UnknownParameterSetError):
        max_blob_size(10, 42)


def test_blob_larger_than_the_model_could_produce_is_refused() -> None:
    """Oversized blob: a payload beyond the bound for its declared parameter count."""
    limit = max_blob_size(10, 1, PayloadKind.SEEDED_UPDATE)
    payload = b"\x00" * (limit - HEADER_SIZE + 1)
    with pytest.raises(OversizedBlobError) as info:
        read_header(blob(param_count=10, payload=payload))
    assert info.value.limit == limit and info.value.size == limit + 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"round_id": 2}, "round"),
        ({"context_hash": hashlib.sha256(b"other").digest()}, "context_hash"),
        ({"params_id": 2}, "params_id"),
        ({"sender": b"\x01" * 20}, "sender"),
        ({"kinds": {PayloadKind.AGGREGATE}}, "kind"),
    ],
)
def test_blob_for_another_round_context_or_sender_is_refused(
    change: dict[str, object], field: str
) -> None:
    """Replayed update from another round / another context / another sender / wrong kind."""
    with pytest.raises(BlobMismatchError) as info:
        check(read_header(blob()), **change)
    assert info.value.field == field
    assert not isinstance(info.value, LayoutMismatchError)


def test_blob_for_another_model_is_a_layout_mismatch() -> None:
    """Layout mismatch: same parameter count, another architecture."""
    other = hashlib.sha256(b"other layout").digest()
    with pytest.raises(LayoutMismatchError) as info:
        check(read_header(blob()), layout_hash=other)
    assert (info.value.field, info.value.expected, info.value.actual) == (
        "layout_hash",
        other,
        LAYOUT,
    )


def test_blob_with_another_parameter_count_is_a_layout_mismatch() -> None:
    """Parameter-count mismatch."""
    with pytest.raises(LayoutMismatchError) as info:
        check(read_header(blob()), param_count=999)
    assert (info.value.field, info.value.expected, info.value.actual) == ("param_count", 999, 1000)


def test_mismatch_error_message_names_the_field_and_both_values() -> None:
    """Typed error content: a refusal must say what differed, readably."""
    with pytest.raises(BlobMismatchError, match=r"round: expected 4, got 3"):
        check(read_header(blob()), round_id=4)
