"""framing.py over in-memory streams: no libp2p, payloads whose answers are known."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.errors import (
    PayloadHashMismatchError,
    PayloadTooLargeError,
    ProtocolViolationError,
    TransferInterruptedError,
    TransferRefusedError,
)
from swarm.hashing import Tag, tagged_hash
from swarm.p2p.framing import (
    BACKGROUND_HASH_MIN_BYTES,
    MAX_CHUNK_BYTES,
    MAX_CONTROL_BYTES,
    FilePayload,
    PartialPayload,
    accepted,
    encode_message,
    raise_if_refused,
    read_message,
    refusal,
    send_payload,
    write_message,
)
from tests.p2p.helpers import run_trio

#: framing is tag-agnostic: these tests frame blobs (updates, aggregates)
TAG = Tag.BLOB


def digest_of(data: bytes) -> bytes:
    return tagged_hash(TAG, data)


class Pipe:
    """One direction of a byte stream in memory, with the read/write pair framing wants."""

    def __init__(self) -> None:
        self.send, self.receive = trio.testing.memory_stream_one_way_pair()

    async def read(self, max_bytes: int) -> bytes:
        return await self.receive.receive_some(max_bytes)

    async def write(self, data: bytes) -> None:
        await self.send.send_all(data)


class Recorded:
    """A ByteStream that replays fixed bytes, then ends (or stalls forever)."""

    def __init__(self, data: bytes, *, stall_at_end: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.stall_at_end = stall_at_end

    async def read(self, max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        if self.pos >= len(self.data) and self.stall_at_end:
            await trio.sleep_forever()
        out = self.data[self.pos : self.pos + max_bytes]
        self.pos += len(out)
        return out

    async def write(self, data: bytes) -> None:
        raise AssertionError("read-only")


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    async def read(self, max_bytes: int) -> bytes:
        raise AssertionError("write-only")

    async def write(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.data += data


def framed(payload: bytes, *, offset: int = 0, chunk: int = 1000) -> bytes:
    sink = Sink()
    run_trio(lambda: send_payload(sink, payload, tag=TAG, offset=offset, chunk_bytes=chunk))
    return bytes(sink.data)


def receive(wire: bytes, size: int, digest: bytes, limit: int | None = None) -> bytes:
    partial = PartialPayload(size, digest, size if limit is None else limit, tag=TAG)
    result: bytes = run_trio(lambda: partial.receive(Recorded(wire)))
    return result


def test_control_message_round_trip() -> None:
    async def body() -> dict[str, object]:
        pipe = Pipe()
        await write_message(pipe, {"kind": "update", "round": 3})
        return await read_message(pipe)

    assert run_trio(body) == {"kind": "update", "round": 3}


def test_oversized_control_message_is_refused_on_its_length_prefix() -> None:
    """A hostile length prefix is refused before its body is read (the body never arrives)."""
    wire = struct.pack(">I", MAX_CONTROL_BYTES + 1)  # no body follows: reading it would hang
    with pytest.raises(ProtocolViolationError):
        run_trio(lambda: read_message(Recorded(wire, stall_at_end=True)), deadline_s=5)
    with pytest.raises(PayloadTooLargeError):
        encode_message({"x": "a" * MAX_CONTROL_BYTES})


def test_control_message_that_is_not_a_json_object_is_a_violation() -> None:
    for body in (b"[1, 2]", b"\xff\xfe", b"{"):
        stream = Recorded(struct.pack(">I", len(body)) + body)
        with pytest.raises(ProtocolViolationError):
            run_trio(lambda stream=stream: read_message(stream))  # type: ignore[misc]


def test_refusal_answers_become_typed_errors() -> None:
    raise_if_refused(accepted(size=3))
    with pytest.raises(TransferRefusedError) as info:
        raise_if_refused(refusal("too_large", "5 over 3"))
    assert (info.value.code, info.value.reason) == ("too_large", "5 over 3")
    with pytest.raises(ProtocolViolationError):
        raise_if_refused({"ok": "maybe"})


def test_payload_round_trip_is_chunked_and_ends_with_the_digest() -> None:
    payload = bytes(range(256)) * 10  # 2560 bytes -> chunks of 1000, 1000, 560
    wire = framed(payload, chunk=1000)
    lengths = [struct.unpack(">I", wire[i : i + 4])[0] for i in (0, 1004, 2008)]
    assert lengths == [1000, 1000, 560]
    tag = hashlib.sha256(b"swarm/v1/blob").digest()
    assert wire[-32:] == hashlib.sha256(tag + tag + payload).digest()  # the tagged hash
    assert receive(wire, len(payload), digest_of(payload)) == payload


def test_empty_payload_is_just_the_trailer() -> None:
    wire = framed(b"")
    assert wire == digest_of(b"")
    assert receive(wire, 0, digest_of(b"")) == b""


def test_corrupted_chunk_is_refused_and_nothing_is_kept() -> None:
    """A sender whose bytes differ from its commitment: the hash check refuses, state resets."""
    payload = b"x" * 3000
    corrupted = bytearray(payload)
    corrupted[1500] ^= 1
    wire = framed(bytes(corrupted))  # the sender's trailer matches what it sent...
    partial = PartialPayload(len(payload), digest_of(payload), len(payload), tag=TAG)
    with pytest.raises(PayloadHashMismatchError, match="expected"):
        run_trio(lambda: partial.receive(Recorded(wire)))  # ...but not its commitment
    assert partial.received == 0


def test_corruption_in_transit_is_caught_by_the_trailer() -> None:
    payload = b"y" * 3000
    wire = bytearray(framed(payload))
    wire[10] ^= 1  # inside the first chunk, after its length prefix
    with pytest.raises(PayloadHashMismatchError, match="trailer"):
        receive(bytes(wire), len(payload), digest_of(payload))


def test_chunk_longer_than_what_is_left_is_a_violation() -> None:
    wire = struct.pack(">I", 11) + b"a" * 11 + digest_of(b"a" * 11)
    with pytest.raises(ProtocolViolationError):
        receive(wire, 10, digest_of(b"a" * 10))
    wire = struct.pack(">I", MAX_CHUNK_BYTES + 1)
    with pytest.raises(ProtocolViolationError):
        receive(wire, MAX_CHUNK_BYTES + 10, b"\0" * 32, limit=MAX_CHUNK_BYTES * 2)


def test_oversized_payload_is_refused_before_any_buffer_is_made() -> None:
    with pytest.raises(PayloadTooLargeError) as info:
        PartialPayload(10**12, b"\0" * 32, limit=1 << 20, tag=TAG)  # allocating this would fail
    assert (info.value.size, info.value.limit) == (10**12, 1 << 20)


def test_interrupted_transfer_resumes_at_its_offset() -> None:
    """The stream ends mid-chunk: the prefix is kept, and a resumed stream completes it."""
    payload = bytes(range(256)) * 40  # 10240 bytes
    digest = digest_of(payload)
    first = framed(payload, chunk=4096)[:6000]  # cut inside the second chunk
    partial = PartialPayload(len(payload), digest, len(payload), tag=TAG)
    with pytest.raises(TransferInterruptedError):
        run_trio(lambda: partial.receive(Recorded(first)))
    assert 0 < partial.received < len(payload)
    resumed = framed(payload, offset=partial.received, chunk=4096)
    assert run_trio(lambda: partial.receive(Recorded(resumed))) == payload


def test_silent_stall_is_ended_by_the_callers_deadline() -> None:
    """A stream that stops delivering hangs a read forever; the deadline scope ends it."""
    payload = b"z" * 5000
    wire = framed(payload)[:3000]
    partial = PartialPayload(len(payload), digest_of(payload), len(payload), tag=TAG)

    async def body() -> None:
        with trio.fail_after(0.2):
            await partial.receive(Recorded(wire, stall_at_end=True))

    with pytest.raises(trio.TooSlowError):
        trio.run(body)


@settings(max_examples=30, deadline=None)
@given(
    payload=st.binary(max_size=5000),
    chunk=st.integers(min_value=1, max_value=2048),
    cut_fraction=st.floats(min_value=0.0, max_value=1.0),
)
def test_any_payload_survives_any_single_interruption(
    payload: bytes, chunk: int, cut_fraction: float
) -> None:
    digest = digest_of(payload)
    wire = framed(payload, chunk=chunk)
    cut = int(len(wire) * cut_fraction)
    partial = PartialPayload(len(payload), digest, len(payload), tag=TAG)
    try:
        result = run_trio(lambda: partial.receive(Recorded(wire[:cut])))
    except TransferInterruptedError:
        rest = framed(payload, offset=partial.received, chunk=chunk)
        result = run_trio(lambda: partial.receive(Recorded(rest)))
    assert result == payload


# --- blocking receipts on a socket (the bulk channel's path), with real sockets ----------


def _sent_over_socket(wire: bytes, receive: Callable[[socket.socket], None]) -> None:
    """Write ``wire`` into one end of a socket pair from a thread, then close that end; run
    ``receive`` on the other end."""
    ours, theirs = socket.socketpair()

    def send() -> None:
        try:
            theirs.sendall(wire)
        finally:
            theirs.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        receive(ours)
    finally:
        ours.close()
        sender.join()


def test_a_blocking_receipt_is_hashed_beside_it_into_one_buffer() -> None:
    """A payload large enough to be hashed in a thread of its own arrives whole, checked
    against its digest, in the one buffer it was received into (no join of pieces)."""
    payload = os.urandom(5 * (1 << 20) + 123)
    assert len(payload) >= BACKGROUND_HASH_MIN_BYTES
    partial = PartialPayload(len(payload), digest_of(payload), len(payload), tag=TAG)
    _sent_over_socket(framed(payload, chunk=1 << 20), partial.receive_verified_sync)
    buffer = partial.take_buffer()
    assert isinstance(buffer, bytearray) and buffer == payload


def test_a_blocking_receipt_cut_off_resumes_where_it_stopped_on_any_stream() -> None:
    """Fault: the connection breaks inside a chunk, with the background hasher running. The
    bytes that came are kept and hashed; the rest, over an event-loop stream this time (a
    retry may fall back from the bulk channel to libp2p), completes the same payload."""
    payload = os.urandom(4 * (1 << 20))
    digest = digest_of(payload)
    wire = framed(payload, chunk=1 << 20)
    partial = PartialPayload(len(payload), digest, len(payload), tag=TAG)
    with pytest.raises(TransferInterruptedError):
        _sent_over_socket(wire[: len(wire) * 2 // 3], partial.receive_verified_sync)
    assert 2 << 20 < partial.received < len(payload)
    rest = framed(payload, offset=partial.received, chunk=1 << 20)
    assert run_trio(lambda: partial.receive(Recorded(rest))) == payload


def test_a_blocking_receipt_of_other_bytes_than_committed_is_refused_and_forgotten() -> None:
    """Fault: a malformed update. The sender's trailer matches what it sent, but not the digest
    the receiver expects (the one committed): refused, and nothing of it is kept."""
    payload = os.urandom(3 * (1 << 20))
    sent = bytearray(payload)
    sent[len(sent) // 2] ^= 0xFF
    partial = PartialPayload(len(payload), digest_of(payload), len(payload), tag=TAG)
    with pytest.raises(PayloadHashMismatchError):
        _sent_over_socket(framed(bytes(sent), chunk=1 << 20), partial.receive_verified_sync)
    assert partial.received == 0


def test_a_blocking_receipt_into_a_file_writes_every_byte(tmp_path: Path) -> None:
    payload = os.urandom(3 * (1 << 20) + 7)
    with open(tmp_path / "blob.part", "wb+", buffering=0) as file:
        partial = FilePayload(len(payload), digest_of(payload), len(payload), tag=TAG, file=file)
        _sent_over_socket(framed(payload, chunk=1 << 20), partial.receive_verified_sync)
    assert (tmp_path / "blob.part").read_bytes() == payload
