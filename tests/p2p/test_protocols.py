"""The stream protocols between two hosts in one process: pushes, fetches, refusals, faults."""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID

from swarm.errors import (
    PayloadHashMismatchError,
    PayloadTooLargeError,
    TransferInterruptedError,
    TransferRefusedError,
    TransferTimeoutError,
)
from swarm.hashing import Tag
from swarm.ledger.types import Member
from swarm.p2p.config import TransferPolicy
from swarm.p2p.disk_store import DirectoryBlobStore
from swarm.p2p.framing import (
    PartialPayload,
    accepted,
    encode_message,
    raise_if_refused,
    read_message,
    refusal,
    send_payload,
    write_message,
)
from swarm.p2p.host import P2PHost, widen_receive_window
from swarm.p2p.protocols import (
    AGGREGATE_PROTOCOL,
    INLINE_MAX_BYTES,
    UPDATE_PROTOCOL,
    ProtocolServer,
    PushRequest,
    StreamIO,
    fetch,
    push,
    request_status,
)
from swarm.p2p.store import BlobKind, BlobRef, MemoryBlobStore, content_digest
from tests.p2p.helpers import (
    FAST_POLICY,
    free_port,
    identities,
    make_member,
    run_trio,
    serving_host,
)

Body = Callable[[P2PHost, P2PHost, ProtocolServer, MemoryBlobStore], Awaitable[None]]


def blob_digest(data: bytes) -> bytes:
    """The content digest of an update or an aggregate (both are addressed as blobs)."""
    return content_digest(BlobKind.UPDATE, data)


def with_pair(body: Body, deadline_s: float = 60.0) -> None:
    """Run ``body(client, server, protocol_server, server_store)`` with two member hosts."""
    client_id, server_id = identities(2)
    client_port, server_port = free_port(), free_port()
    members = [make_member(client_id, client_port), make_member(server_id, server_port)]
    store = MemoryBlobStore()

    async def main() -> None:
        async with (
            serving_host(client_id, client_port, members) as (client, _),
            serving_host(server_id, server_port, members, store) as (server, protocol_server),
        ):
            await body(client, server, protocol_server, store)

    run_trio(main, deadline_s)


def accept_all(requests: list[PushRequest]) -> Callable[[PushRequest], None]:
    def validator(request: PushRequest) -> None:
        requests.append(request)

    return validator


def test_push_is_stored_with_the_sender_derived_from_its_key() -> None:
    """A push is stored under the address its key derives to; a retry after a lost final
    answer is acknowledged without a second transfer."""
    payload = b"ciphertext" * 1000

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        seen: list[PushRequest] = []
        protocols.accept_pushes(BlobKind.UPDATE, accept_all(seen), 1 << 20)
        await push(client, server.address, BlobKind.UPDATE, 7, payload, policy=FAST_POLICY)
        digest = blob_digest(payload)
        assert seen == [PushRequest(client.address, BlobKind.UPDATE, 7, digest, len(payload))]
        assert store.find() == [BlobRef(BlobKind.UPDATE, 7, client.address, digest, len(payload))]
        assert store.get(digest) == payload
        # a retry after a lost answer: acknowledged from the store, the validator is not asked
        await push(client, server.address, BlobKind.UPDATE, 7, payload, policy=FAST_POLICY)
        assert len(seen) == 1

    with_pair(body)


def test_round_key_and_context_travel_over_the_round_key_protocol() -> None:
    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        async def steward_only(request: PushRequest) -> str | None:  # async validators work too
            await trio.lowlevel.checkpoint()
            return None if request.sender == client.address else "not the steward"

        protocols.accept_pushes(BlobKind.ROUND_KEY, steward_only, 4096)
        protocols.accept_pushes(BlobKind.ROUND_CONTEXT, steward_only, 1 << 20)
        await push(client, server.address, BlobKind.ROUND_KEY, 2, b"sealed", policy=FAST_POLICY)
        await push(client, server.address, BlobKind.ROUND_CONTEXT, 2, b"ctx", policy=FAST_POLICY)
        assert {r.kind for r in store.find(round_id=2)} == {
            BlobKind.ROUND_KEY,
            BlobKind.ROUND_CONTEXT,
        }

    with_pair(body)


def test_validator_refusal_reaches_the_sender_with_its_reason() -> None:
    """The receiver's validator says no: a typed refusal, nothing stored, no retry."""

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        calls = 0

        def late(request: PushRequest) -> str:
            nonlocal calls
            calls += 1
            return "commit deadline passed"

        protocols.accept_pushes(BlobKind.UPDATE, late, 1 << 20)
        with pytest.raises(TransferRefusedError) as info:
            await push(client, server.address, BlobKind.UPDATE, 1, b"late", policy=FAST_POLICY)
        assert (info.value.code, info.value.reason) == ("refused", "commit deadline passed")
        assert calls == 1  # a refusal is an answer, not a fault to retry
        assert store.find() == []

    with_pair(body)


def test_pushes_of_a_kind_nobody_accepts_are_refused() -> None:
    """No validator registered for the kind: refused (not_accepting), never silently kept."""

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        with pytest.raises(TransferRefusedError) as info:
            await push(client, server.address, BlobKind.UPDATE, 1, b"x", policy=FAST_POLICY)
        assert info.value.code == "not_accepting"

    with_pair(body)


def test_oversized_push_is_refused_on_its_header() -> None:
    """A payload over the receiver's limit is refused before one byte of it is read: the
    validator is never asked and nothing is buffered."""

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        seen: list[PushRequest] = []
        protocols.accept_pushes(BlobKind.UPDATE, accept_all(seen), lambda round_id: 1000)
        with pytest.raises(TransferRefusedError) as info:
            await push(client, server.address, BlobKind.UPDATE, 1, b"x" * 1001, policy=FAST_POLICY)
        assert info.value.code == "too_large"
        assert seen == [] and store.find() == []

    with_pair(body)


@pytest.mark.parametrize(
    "size",
    [50_000, INLINE_MAX_BYTES + 70_000],
    ids=["inline", "streamed after the receiver's ok"],
)
def test_push_whose_bytes_do_not_match_the_commitment_is_refused(size: int) -> None:
    """A corrupted payload (bytes differ from the declared digest): refused, nothing stored;
    inline (under INLINE_MAX_BYTES) and over the limit, where the payload follows the
    receiver's ok."""
    payload = b"u" * size

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        protocols.accept_pushes(BlobKind.UPDATE, accept_all([]), 1 << 20)
        corrupted = payload[:100] + b"v" + payload[101:]
        with pytest.raises(TransferRefusedError) as info:
            await push(
                client,
                server.address,
                BlobKind.UPDATE,
                1,
                corrupted,
                digest=blob_digest(payload),
                policy=FAST_POLICY,
            )
        assert info.value.code == "hash_mismatch"
        assert store.find() == []

    with_pair(body)


def offer(store: MemoryBlobStore, kind: BlobKind, round_id: int, data: bytes) -> bytes:
    digest = content_digest(kind, data)
    store.put(BlobRef(kind, round_id, "0xM", digest, len(data)), data)
    return digest


def test_fetch_aggregate_and_model() -> None:
    """Fetches by digest; a wrong round or a wrong kind is not_found, not someone else's blob."""
    aggregate, model = b"a" * 300_000, b"m" * 1000

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        a_digest = offer(store, BlobKind.AGGREGATE, 4, aggregate)
        m_digest = offer(store, BlobKind.MODEL, 3, model)
        got = await fetch(
            client,
            server.address,
            BlobKind.AGGREGATE,
            a_digest,
            max_size=1 << 20,
            round_id=4,
            policy=FAST_POLICY,
        )
        assert got == aggregate
        got = await fetch(
            client, server.address, BlobKind.MODEL, m_digest, max_size=1 << 20, policy=FAST_POLICY
        )
        assert got == model
        with pytest.raises(TransferRefusedError) as info:  # right digest, wrong round
            await fetch(
                client,
                server.address,
                BlobKind.AGGREGATE,
                a_digest,
                max_size=1 << 20,
                round_id=5,
                policy=FAST_POLICY,
            )
        assert info.value.code == "not_found"
        with pytest.raises(TransferRefusedError):  # a model is not an aggregate
            await fetch(
                client,
                server.address,
                BlobKind.AGGREGATE,
                m_digest,
                max_size=1 << 20,
                policy=FAST_POLICY,
            )

    with_pair(body)


def test_fetch_refuses_an_oversized_payload_before_reading_it() -> None:
    """The caller's size limit (e.g. from the parameter count): refused on the answer's size."""

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        digest = offer(store, BlobKind.MODEL, 1, b"m" * 10_000)
        with pytest.raises(PayloadTooLargeError) as info:
            await fetch(
                client, server.address, BlobKind.MODEL, digest, max_size=9_999, policy=FAST_POLICY
            )
        assert (info.value.size, info.value.limit) == (10_000, 9_999)

    with_pair(body)


class StallingAggregateServer:
    """Serves an aggregate but, on the first request, stops dead halfway (a silent stall)."""

    def __init__(self, data: bytes, stalls: int) -> None:
        self.data = data
        self.stalls = stalls
        self.offsets: list[int] = []

    async def __call__(self, stream: Any, member: Member) -> None:
        io = StreamIO(stream)
        request = await read_message(io)
        offset = int(request["offset"])
        self.offsets.append(offset)
        digest = blob_digest(self.data)
        await write_message(io, accepted(size=len(self.data), digest=digest.hex(), offset=offset))
        if len(self.offsets) <= self.stalls:
            half = self.data[: len(self.data) // 2]
            sink = _Truncated(io, len(half) - offset + 4 * (len(half) // 4096 + 1))
            with contextlib.suppress(_Stop):
                await send_payload(sink, self.data, tag=Tag.BLOB, offset=offset, chunk_bytes=4096)
            await trio.sleep(30)  # never a byte more, never a close: only a deadline ends this
            return
        await send_payload(
            io, self.data, tag=Tag.BLOB, offset=offset, whole_digest=digest, chunk_bytes=4096
        )
        await stream.close()


class _Stop(Exception):
    pass


class _Truncated:
    def __init__(self, io: StreamIO, budget: int) -> None:
        self.io = io
        self.budget = budget

    async def read(self, max_bytes: int) -> bytes:
        raise AssertionError

    async def write(self, data: bytes) -> None:
        if len(data) > self.budget:
            raise _Stop
        self.budget -= len(data)
        await self.io.write(data)


STALL_POLICY = TransferPolicy(
    attempts=3,
    base_timeout_s=1.0,
    min_rate_bytes_per_s=1e9,
    backoff_s=0.05,
    connect_timeout_s=5.0,
)


def test_silent_stall_times_out_and_the_retry_resumes_at_its_offset() -> None:
    """A transfer that hangs without an error (seen after yamux faults): the deadline ends it,
    the retry asks for the rest from where it stopped, and the whole is hash-checked."""
    data = bytes(range(256)) * 800  # 204,800 bytes
    server_handler = StallingAggregateServer(data, stalls=1)

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        server.set_handler(AGGREGATE_PROTOCOL, server_handler)
        got = await fetch(
            client,
            server.address,
            BlobKind.AGGREGATE,
            blob_digest(data),
            max_size=1 << 20,
            policy=STALL_POLICY,
        )
        assert got == data

    with_pair(body)
    first, second = server_handler.offsets
    assert first == 0 and 0 < second < len(data)


def test_silent_stall_with_no_retry_left_raises_a_timeout() -> None:
    """A stalled transfer with no attempt left: TransferTimeoutError, not a hang."""
    data = b"s" * 100_000
    one_attempt = TransferPolicy(attempts=1, base_timeout_s=1.0, min_rate_bytes_per_s=1e9)

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        server.set_handler(AGGREGATE_PROTOCOL, StallingAggregateServer(data, stalls=5))
        with pytest.raises(TransferTimeoutError):
            await fetch(
                client,
                server.address,
                BlobKind.AGGREGATE,
                blob_digest(data),
                max_size=1 << 20,
                policy=one_attempt,
            )

    with_pair(body)


def test_a_failing_validator_resets_the_stream_and_the_server_keeps_serving() -> None:
    """A bug in the receiver's validator: the sender sees an interrupted transfer (typed), and
    the receiver keeps serving."""

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        def broken(request: PushRequest) -> None:
            raise RuntimeError("validator bug")

        protocols.accept_pushes(BlobKind.UPDATE, broken, 1 << 20)
        with pytest.raises(TransferInterruptedError):
            await push(
                client,
                server.address,
                BlobKind.UPDATE,
                1,
                b"x",
                policy=TransferPolicy(attempts=1, base_timeout_s=5),
            )
        protocols.accept_pushes(BlobKind.UPDATE, accept_all([]), 1 << 20)
        await push(client, server.address, BlobKind.UPDATE, 1, b"x", policy=FAST_POLICY)
        assert len(store.find()) == 1

    with_pair(body)


def test_status_request() -> None:
    """The small request: one control message each way, the state machine's fields included."""

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        protocols.status_provider = lambda: {"round": 12, "role": "merge"}
        status = await request_status(client, server.address, policy=FAST_POLICY)
        assert status["address"] == server.address
        assert status["peer_id"] == server.peer_id
        assert (status["round"], status["role"]) == (12, "merge")
        assert "/swarm/update/1.0.0" in status["protocols"]

    with_pair(body)


class SlowStore(MemoryBlobStore):
    """A store that takes longer than yamux's 5 s window-update timeout to take a blob."""

    def put(self, ref: BlobRef, data: bytes) -> None:
        time.sleep(6)
        super().put(ref, data)


@pytest.mark.slow
def test_slow_processing_after_a_whole_read_does_not_trip_the_window_timeout() -> None:
    """The receiver spends 6 s processing a payload much larger than yamux's initial window;
    since it reads everything before processing, the sender is not failed by yamux's
    hard-coded 5 s window-update timeout."""
    client_id, server_id = identities(2)
    client_port, server_port = free_port(), free_port()
    members = [make_member(client_id, client_port), make_member(server_id, server_port)]
    payload = b"w" * (4 << 20)
    policy = TransferPolicy(attempts=1, base_timeout_s=20.0)

    async def main() -> None:
        store = SlowStore()
        async with (
            serving_host(client_id, client_port, members) as (client, _),
            serving_host(server_id, server_port, members, store) as (server, protocols),
        ):
            protocols.accept_pushes(BlobKind.UPDATE, accept_all([]), 8 << 20)
            await push(client, server.address, BlobKind.UPDATE, 1, payload, policy=policy)
            assert store.get(blob_digest(payload)) == payload

    run_trio(main)


@pytest.mark.slow
def test_canary_a_reader_that_pauses_over_5_s_fails_the_sender() -> None:
    """Canary for the sharp edge the design works around: a receiver that stops reading for
    more than 5 s mid-payload makes py-libp2p's yamux fail the sender. If this starts passing
    the other way, the edge is gone in this libp2p version."""
    protocol = "/test/naive-reader/1.0.0"
    payload = b"n" * (24 << 20)  # more than any window py-libp2p grows (16 MiB at most)

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        async def naive(stream: Any, member: Member) -> None:
            io = StreamIO(stream)
            await io.read(65536)
            await trio.sleep(7)  # "process" before reading on

        server.set_handler(protocol, naive)
        stream = await client.open_stream(_member_of(server), protocol, timeout_s=5)
        with pytest.raises(TransferInterruptedError, match="window update"):
            await send_payload(StreamIO(stream), payload, tag=Tag.BLOB)

    with_pair(body)


def _member_of(host: P2PHost) -> Member:
    return make_member(host.identity, int(host.listen_addrs[0].rsplit("/", 1)[1]))


def test_widening_the_window_is_a_no_op_without_yamux() -> None:
    class NotYamux:
        muxed_stream = object()

    assert run_trio(lambda: widen_receive_window(NotYamux(), 1 << 20)) == 0  # type: ignore[arg-type]


def test_partial_payload_limits_are_the_callers() -> None:
    with pytest.raises(PayloadTooLargeError):
        PartialPayload(11, b"\0" * 32, limit=10, tag=Tag.BLOB)


def test_a_single_attempt_makes_exactly_one_try() -> None:
    """Fault: the peer re-checks the ledger between tries of a push, so it needs a policy that
    tries once and raises that try's failure as it is; the default retries the same failure."""

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        calls = 0

        def fails_every_other_call(request: PushRequest) -> None:
            nonlocal calls
            calls += 1
            if calls % 2 == 1:
                raise RuntimeError("receiver hiccup")

        protocols.accept_pushes(BlobKind.UPDATE, fails_every_other_call, 1 << 20)
        await push(client, server.address, BlobKind.UPDATE, 1, b"x", policy=FAST_POLICY)
        assert calls == 2 and len(store.find()) == 1  # the retry got through
        once = FAST_POLICY.single_attempt()
        with pytest.raises(TransferInterruptedError):
            await push(client, server.address, BlobKind.UPDATE, 2, b"y", policy=once)
        assert calls == 3 and len(store.find()) == 1

    with_pair(body)


# --- inline pushes: header, payload and trailer in one write, one answer ----------------------

#: one try, so that a broken exchange fails the test instead of being retried into a pass
ONCE = TransferPolicy(attempts=1, base_timeout_s=5.0, connect_timeout_s=5.0)


def update_header(size: int, digest: bytes, **extra: Any) -> dict[str, Any]:
    """A push header as a sender writes it (``extra``: ``inline``, ``bulk``)."""
    header = {"v": 1, "kind": str(BlobKind.UPDATE), "round": 1, "digest": digest.hex()}
    return {**header, "size": size, **extra}


def inline_bytes(header: Mapping[str, Any], payload: bytes, trailer: bytes) -> bytes:
    """What an inline push puts on the wire in its one write: header, one chunk, trailer."""
    chunk = struct.pack(">I", len(payload)) + payload if payload else b""
    return encode_message(header) + chunk + trailer


def _connections_to(host: P2PHost, other: P2PHost) -> list[Any]:
    network: Any = host.libp2p.get_network()
    return list(network.get_connections(ID.from_base58(other.peer_id)))


def test_a_small_push_sends_its_payload_before_any_answer_and_takes_one_answer() -> None:
    """Sender side of an inline push (just under the limit, 1 byte, empty), against a receiver
    that reads header, payload and trailer before it answers anything, then answers once
    (``stored``) and closes: a sender that waited for an answer before sending its payload would
    time out, and one that waited for a second answer would find the stream ended."""
    payload = bytes(range(256)) * (INLINE_MAX_BYTES // 256 - 1) + b"tail"  # just under the limit
    assert len(payload) < INLINE_MAX_BYTES
    headers: list[dict[str, Any]] = []
    received: list[bytes] = []

    async def inline_receiver(stream: Any, member: Member) -> None:
        io = StreamIO(stream)
        header = await read_message(io)
        headers.append(header)
        partial = PartialPayload(
            header["size"], bytes.fromhex(header["digest"]), 1 << 20, tag=Tag.BLOB
        )
        await partial.receive_verified(io)  # no answer yet: it all came with the header
        received.append(partial.take())
        await write_message(io, accepted(stored=True))
        await stream.close()

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        server.set_handler(UPDATE_PROTOCOL, inline_receiver)
        await push(client, server.address, BlobKind.UPDATE, 4, payload, policy=ONCE)
        await push(client, server.address, BlobKind.UPDATE, 5, b"k", policy=ONCE)
        await push(client, server.address, BlobKind.UPDATE, 6, b"", policy=ONCE)  # trailer only

    with_pair(body)
    assert [h.get("inline") for h in headers] == [True, True, True]
    assert [h["size"] for h in headers] == [len(payload), 1, 0]
    assert headers[0]["digest"] == blob_digest(payload).hex()
    assert received == [payload, b"k", b""]


def test_the_receiver_answers_an_inline_push_once_with_stored() -> None:
    """Receiver side: a raw client writes header, payload and trailer at once; the receiver
    stores the blob and answers exactly once, ``{"ok": true, "stored": true}``, then ends the
    stream (an answer without ``stored``, or a second one, means it took the old path)."""
    payload = b"share" * 1000

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        seen: list[PushRequest] = []
        protocols.accept_pushes(BlobKind.UPDATE, accept_all(seen), 1 << 20)
        digest = blob_digest(payload)
        stream = await client.open_stream(_member_of(server), UPDATE_PROTOCOL, timeout_s=5)
        io = StreamIO(stream)
        header = update_header(len(payload), digest, inline=True)
        await io.write(inline_bytes(header, payload, digest))
        with trio.fail_after(5):
            assert await read_message(io) == {"ok": True, "stored": True}
            assert await io.read(1) == b""  # nothing more: the exchange is over
        await stream.close()
        assert seen == [PushRequest(client.address, BlobKind.UPDATE, 1, digest, len(payload))]
        assert store.get(digest) == payload

    with_pair(body)


def test_pushes_just_under_and_at_the_inline_limit_are_both_stored() -> None:
    """The two sides of INLINE_MAX_BYTES (the last inline size, the first streamed one) between
    real peers: both are validated, stored, and byte-identical."""
    under = b"u" * (INLINE_MAX_BYTES - 1)
    at = b"a" * INLINE_MAX_BYTES

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        seen: list[PushRequest] = []
        protocols.accept_pushes(BlobKind.UPDATE, accept_all(seen), 1 << 20)
        await push(client, server.address, BlobKind.UPDATE, 1, under, policy=ONCE)
        await push(client, server.address, BlobKind.UPDATE, 2, at, policy=ONCE)
        assert [(r.round_id, r.size) for r in seen] == [(1, len(under)), (2, len(at))]
        assert store.get(blob_digest(under)) == under
        assert store.get(blob_digest(at)) == at

    with_pair(body)


class PreInlineReceiver:
    """The push receiver as it was before inline pushes: header -> ``{"ok": true}`` -> payload
    -> final answer (ok, or hash_mismatch). It ignores the ``inline`` field it does not know."""

    def __init__(self) -> None:
        self.headers: list[dict[str, Any]] = []
        self.stored: list[bytes] = []

    async def __call__(self, stream: Any, member: Member) -> None:
        io = StreamIO(stream)
        header = await read_message(io)
        self.headers.append(header)
        await write_message(io, accepted())
        partial = PartialPayload(
            header["size"], bytes.fromhex(header["digest"]), 1 << 20, tag=Tag.BLOB
        )
        try:
            await partial.receive_verified(io)
        except PayloadHashMismatchError as exc:
            await write_message(io, refusal("hash_mismatch", str(exc)))
        else:
            self.stored.append(partial.take())
            await write_message(io, accepted())
        await stream.close()


def test_an_inline_push_to_a_receiver_that_predates_inline_pushes_completes() -> None:
    """Compatibility: an old receiver answers ok (no ``stored``) before reading the payload that
    is already on its way, then answers again. The sender reads both: an inline push and a
    streamed one complete, and a refusal in the old receiver's final answer still reaches the
    sender (typed)."""
    small = b"s" * 5000
    large = b"l" * INLINE_MAX_BYTES
    old = PreInlineReceiver()

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        server.set_handler(UPDATE_PROTOCOL, old)
        await push(client, server.address, BlobKind.UPDATE, 1, small, policy=ONCE)
        await push(client, server.address, BlobKind.UPDATE, 1, large, policy=ONCE)
        with pytest.raises(TransferRefusedError) as info:
            await push(
                client,
                server.address,
                BlobKind.UPDATE,
                1,
                b"t" + small[1:],
                digest=blob_digest(small),
                policy=ONCE,
            )
        assert info.value.code == "hash_mismatch"

    with_pair(body)
    assert [h.get("inline") for h in old.headers] == [True, None, True]
    assert old.stored == [small, large]


def test_an_inline_header_at_or_over_the_limit_is_a_bad_request() -> None:
    """A (buggy or hostile) sender that calls a payload of INLINE_MAX_BYTES or more inline, with
    or without sending it: refused ``bad_request`` on the header, under a size limit that would
    take it; the validator is never asked and nothing is stored."""
    payload = b"b" * INLINE_MAX_BYTES

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        seen: list[PushRequest] = []
        protocols.accept_pushes(BlobKind.UPDATE, accept_all(seen), 1 << 30)
        digest = blob_digest(payload)
        sends = [
            inline_bytes(update_header(len(payload), digest, inline=True), payload, digest),
            encode_message(update_header(64 << 20, digest, inline=True)),
        ]
        for sent in sends:
            stream = await client.open_stream(_member_of(server), UPDATE_PROTOCOL, timeout_s=5)
            io = StreamIO(stream)
            await io.write(sent)
            with trio.fail_after(5), pytest.raises(TransferRefusedError) as info:
                raise_if_refused(await read_message(io))
            assert info.value.code == "bad_request"
            await stream.close()
        assert seen == [] and store.find() == []

    with_pair(body)


def test_an_inline_push_refused_by_the_validator_stores_nothing_and_serving_goes_on() -> None:
    """The validator refuses inline pushes whose payloads (just under the limit) the receiver
    then never reads: each sender gets the refusal, nothing is stored, and the next push over
    the same connection is served and stored."""
    payload = b"r" * (INLINE_MAX_BYTES - 1)

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        seen: list[PushRequest] = []

        def refuse_round_1(request: PushRequest) -> str | None:
            seen.append(request)
            return "not in this round" if request.round_id == 1 else None

        protocols.accept_pushes(BlobKind.UPDATE, refuse_round_1, 1 << 20)
        for _ in range(3):
            with pytest.raises(TransferRefusedError) as info:
                await push(client, server.address, BlobKind.UPDATE, 1, payload, policy=ONCE)
            assert (info.value.code, info.value.reason) == ("refused", "not in this round")
            assert store.find() == []
        connections = _connections_to(client, server)
        assert len(connections) == 1
        await push(client, server.address, BlobKind.UPDATE, 2, payload, policy=ONCE)
        assert _connections_to(client, server) == connections  # the same connection
        assert len(seen) == 4
        assert store.find() == [
            BlobRef(BlobKind.UPDATE, 2, client.address, blob_digest(payload), len(payload))
        ]

    with_pair(body)


def test_an_inline_push_cut_short_stores_nothing_and_the_peer_keeps_serving() -> None:
    """An inline push whose sender ends its stream halfway through the payload: the receiver
    stores nothing, gives up on that stream only, and serves the next push."""
    payload = b"c" * 10_000

    async def body(
        client: P2PHost, server: P2PHost, protocols: ProtocolServer, store: MemoryBlobStore
    ) -> None:
        protocols.accept_pushes(BlobKind.UPDATE, accept_all([]), 1 << 20)
        digest = blob_digest(payload)
        whole = inline_bytes(update_header(len(payload), digest, inline=True), payload, digest)
        stream = await client.open_stream(_member_of(server), UPDATE_PROTOCOL, timeout_s=5)
        io = StreamIO(stream)
        await io.write(whole[: len(whole) // 2])
        await stream.close()  # our end is done: the receiver reads EOF mid-payload
        with trio.fail_after(5):
            with contextlib.suppress(TransferInterruptedError):
                assert await io.read(1) == b""  # no answer: an end, or a reset
        assert store.find() == []
        await push(client, server.address, BlobKind.UPDATE, 1, payload, policy=ONCE)
        assert store.get(digest) == payload

    with_pair(body)


def test_an_inline_push_into_a_disk_store_is_stored_on_disk(tmp_path: Path) -> None:
    """A receiver whose store is on disk (FileBlobStore): an inline push, read into memory
    rather than a staged file, is stored (found again after a restart) and leaves no staged
    file behind."""
    client_id, server_id = identities(2)
    client_port, server_port = free_port(), free_port()
    members = [make_member(client_id, client_port), make_member(server_id, server_port)]
    payload = b"d" * 20_000
    store = DirectoryBlobStore(tmp_path)

    async def main() -> None:
        async with (
            serving_host(client_id, client_port, members) as (client, _),
            serving_host(server_id, server_port, members, store) as (server, protocols),
        ):
            protocols.accept_pushes(BlobKind.UPDATE, accept_all([]), 1 << 20)
            await push(client, server.address, BlobKind.UPDATE, 3, payload, policy=ONCE)

    run_trio(main)
    again = DirectoryBlobStore(tmp_path)
    assert again.get(blob_digest(payload)) == payload
    assert [(r.round_id, r.sender) for r in again.find()] == [(3, client_id.address)]
    assert list(again.staging_dir().iterdir()) == []
