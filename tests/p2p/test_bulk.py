"""Large payloads: the bulk channel (TLS 1.3 beside libp2p), disk-backed receipts, and fetches
from several providers. Real libp2p hosts and real TLS sockets, in one process."""

from __future__ import annotations

import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio

from swarm.errors import PeerUnreachableError, TransferRefusedError
from swarm.identity import Identity
from swarm.p2p import bulk
from swarm.p2p.config import TransferPolicy
from swarm.p2p.disk_store import STAGING, DirectoryBlobStore
from swarm.p2p.framing import read_message, write_message
from swarm.p2p.membership import StaticMembershipSource
from swarm.p2p.protocols import UPDATE_PROTOCOL, StreamIO, push
from swarm.p2p.service import P2PService, open_p2p
from swarm.p2p.store import BlobKind, BlobStore, content_digest
from tests.p2p.helpers import FAST_POLICY, config_for, free_port, identities, make_member, run_trio

MB = 1 << 20
#: the length prefix of a 4 MiB chunk (framing.py)
CHUNK_4M = struct.pack(">I", 4 * MB)


def payload_of(size: int, seed: int = 1) -> bytes:
    return bytes((seed + i) % 251 for i in range(256)) * (size // 256)


async def push_not_matching_its_digest(
    sender: P2PService, receiver: P2PService, round_id: int, payload: bytes
) -> None:
    """Push ``payload`` as an update whose committed digest is another payload's (a corrupted
    transfer, or a sender that sends what it did not commit to); the receiver must refuse it
    ``hash_mismatch``."""
    wrong = content_digest(BlobKind.UPDATE, payload[::-1])
    with pytest.raises(TransferRefusedError) as caught:
        await push(
            sender.host,
            receiver.address,
            BlobKind.UPDATE,
            round_id,
            payload,
            policy=FAST_POLICY,
            digest=wrong,
        )
    assert caught.value.code == "hash_mismatch"


@asynccontextmanager
async def services(
    ids: Sequence[Identity],
    stores: Sequence[BlobStore | None],
    *,
    bulk_ports: Sequence[int | None] | None = None,
    listening: Sequence[bool] | None = None,
) -> AsyncIterator[list[P2PService]]:
    """One P2PService per identity (all members); a member with ``listening`` False is listed
    on the ledger but runs nothing (a dead provider)."""
    ports = [free_port() for _ in ids]
    source = StaticMembershipSource([make_member(i, p) for i, p in zip(ids, ports, strict=True)])
    running: list[P2PService] = []
    async with AsyncExitStack() as stack:
        for n, identity in enumerate(ids):
            if listening is not None and not listening[n]:
                continue
            bulk_port = 0 if bulk_ports is None else bulk_ports[n]
            config = config_for(ports[n], connect_to_members=False, bulk_port=bulk_port)
            running.append(
                await stack.enter_async_context(open_p2p(identity, config, source, stores[n]))
            )
        yield running


def _files(root: Path, folder: str) -> list[Path]:
    path = root / folder
    return sorted(path.iterdir()) if path.is_dir() else []


def test_a_large_push_arrives_intact_over_the_bulk_channel_into_the_disk_store(
    tmp_path: Path,
) -> None:
    """Fault guarded: a large payload goes over TLS beside libp2p and straight to a file; a
    byte lost or a file left half-written would fail the hash or leave a stray file."""
    payload = payload_of(12 * MB)
    store = DirectoryBlobStore(tmp_path)

    async def body() -> None:
        async with services(identities(2), [None, store]) as (sender, receiver):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            await sender.push_update(receiver.address, 1, payload)
            assert receiver.host.bulk is not None and receiver.host.bulk.admitted == 1
            ref = store.find(kind=BlobKind.UPDATE)[0]
            assert ref.size == len(payload)
            assert store.get(ref.digest) == payload
            assert _files(tmp_path, STAGING) == []  # nothing left being received

    run_trio(body)


def test_without_a_bulk_listener_the_payload_goes_over_libp2p_to_disk(tmp_path: Path) -> None:
    """Fault guarded: a receiver that runs no bulk channel (``bulk_port = None``, or an older
    peer) must still get the payload, over the libp2p stream, written to disk as it arrives."""
    payload = payload_of(6 * MB)
    store = DirectoryBlobStore(tmp_path)

    async def body() -> None:
        async with services(identities(2), [None, store], bulk_ports=[0, None]) as (s, r):
            r.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            await s.push_update(r.address, 1, payload)
            assert r.host.bulk is None
            assert store.get(content_digest(BlobKind.UPDATE, payload)) == payload

    run_trio(body)


def test_an_unreachable_bulk_port_falls_back_to_the_libp2p_stream() -> None:
    """Fault: the receiver's bulk port is firewalled (here: it offers a port nothing listens
    on). The push must still land, over libp2p, and the sender must stop asking for bulk."""
    payload = payload_of(2 * MB)

    async def body() -> None:
        async with services(identities(2), [None, None]) as (sender, receiver):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            assert receiver.host.bulk is not None and sender.host.bulk is not None
            receiver.host.bulk.port = free_port()  # what it offers: closed
            await sender.push_update(receiver.address, 1, payload)
            assert receiver.store.get(content_digest(BlobKind.UPDATE, payload)) == payload
            assert receiver.host.bulk.admitted == 0
            assert not sender.host.bulk.reachable(receiver.address)
            await sender.push_update(receiver.address, 2, payload[::-1])  # no second dial
            assert len(receiver.store.find(kind=BlobKind.UPDATE)) == 2

    run_trio(body)


def test_a_bulk_connection_without_the_token_is_closed() -> None:
    """Fault: anyone can reach the bulk port; a connection that does not present a token
    issued over an authenticated libp2p stream must get nothing and be closed."""

    async def body() -> None:
        async with services(identities(2), [None, None]) as (sender, receiver):
            endpoint = receiver.host.bulk
            assert endpoint is not None

            def intrude() -> bytes:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                address = ("127.0.0.1", endpoint.port)
                with (
                    socket.create_connection(address, timeout=5) as raw,
                    context.wrap_socket(raw) as tls,
                ):
                    tls.sendall(os.urandom(bulk.TOKEN_BYTES))
                    try:
                        return tls.recv(100)
                    except (ssl.SSLError, OSError):
                        return b""

            assert await trio.to_thread.run_sync(intrude) == b""
            assert endpoint.refused == 1 and endpoint.admitted == 0
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            await sender.push_update(receiver.address, 1, payload_of(MB))  # still served
            assert endpoint.admitted == 1

    run_trio(body)


@pytest.mark.parametrize("over_bulk", [False, True], ids=["libp2p", "bulk"])
def test_a_connection_dropped_mid_payload_leaves_no_torn_file(
    tmp_path: Path, over_bulk: bool
) -> None:
    """Fault: the sender's connection dies halfway through a payload being written to disk.
    The half-written file must not reach the store (nor survive a restart of it), and the next
    push of the same blob must land whole."""
    payload = payload_of(8 * MB)
    digest = content_digest(BlobKind.UPDATE, payload)
    store = DirectoryBlobStore(tmp_path)

    async def body() -> None:
        async with services(identities(2), [None, store]) as (sender, receiver):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            member = sender.host.member(receiver.address)
            stream = await sender.host.open_stream(member, UPDATE_PROTOCOL, timeout_s=5)
            io = StreamIO(stream)
            header = {"v": 1, "kind": "update", "round": 1, "digest": digest.hex()}
            await write_message(io, {**header, "size": len(payload), "bulk": over_bulk})
            answer = await read_message(io)
            assert answer["ok"] is True
            half = payload[: len(payload) // 2]
            if over_bulk:
                offer = bulk.BulkOffer.from_wire(answer["bulk"])
                assert offer is not None
                channel = await bulk.dial("127.0.0.1", offer)
                # a 4 MiB chunk announced, half of it sent
                await trio.to_thread.run_sync(channel.sock.sendall, CHUNK_4M + half[: 2 * MB])
                await trio.sleep(0.2)
                channel.kill()  # the connection dies mid-chunk
                await channel.aclose()
            else:
                await io.write(CHUNK_4M + half[: 2 * MB])
                await trio.sleep(0.2)
            await sender.host.drop_connections(member)
            with trio.fail_after(10):
                while receiver.server.inbound_in_flight():
                    await trio.sleep(0.05)
            assert store.find() == []
            assert _files(tmp_path, "update") == []
            assert _files(tmp_path, STAGING) == []
            assert DirectoryBlobStore(tmp_path).find() == []
            await sender.push_update(receiver.address, 1, payload)
            assert store.get(digest) == payload

    run_trio(body)


def test_a_receipt_cut_short_by_a_crash_is_deleted_at_start(tmp_path: Path) -> None:
    """Fault: a peer crashed while a blob was being received; what it left in the staging
    folder is never taken for a blob, and is deleted when the store opens again."""
    store = DirectoryBlobStore(tmp_path)
    (store.staging_dir() / "update-1-abc.part").write_bytes(b"half a ciphertext")
    again = DirectoryBlobStore(tmp_path)
    assert again.find() == [] and _files(tmp_path, STAGING) == []


def test_fetch_falls_back_from_dead_and_empty_providers_to_one_that_has_it(
    tmp_path: Path,
) -> None:
    """Fault: the first provider in the caller's order is down (listed, nothing listens), the
    second does not hold the aggregate yet (``not_found``); the third does. The fetch must
    get it from the third, keep it on disk, and then serve it to a member itself."""
    aggregate = payload_of(3 * MB, seed=7)
    digest = content_digest(BlobKind.AGGREGATE, aggregate)
    ids = identities(5)  # dead, empty, holder, fetcher, late
    fetcher_store = DirectoryBlobStore(tmp_path)
    policy = TransferPolicy(
        attempts=2, base_timeout_s=3.0, connect_timeout_s=1.0, backoff_s=0.05, max_backoff_s=0.1
    )

    async def body() -> None:
        stores: list[BlobStore | None] = [None, None, None, fetcher_store, None]
        alive = [False, True, True, True, True]
        async with services(ids, stores, listening=alive) as (empty, holder, fetcher, late):
            await holder.offer(BlobKind.AGGREGATE, 4, aggregate)
            order = [ids[0].address, empty.address, holder.address]
            with trio.fail_after(30):
                data = await fetcher.fetch_aggregate(
                    order, 4, digest, max_size=8 * MB, policy=policy
                )
            assert data == aggregate
            (ref,) = fetcher_store.find(kind=BlobKind.AGGREGATE)
            assert ref.sender == holder.address and ref.round_id == 4
            assert _files(tmp_path, STAGING) == []
            # a key holder that has the aggregate serves it: the merge peer's upload does not
            # grow with the number of hospitals
            served = await late.fetch_aggregate(
                [fetcher.address], 4, digest, max_size=8 * MB, policy=policy
            )
            assert served == aggregate

    run_trio(body, deadline_s=90)


def test_fetch_raises_the_last_refusal_when_no_provider_has_it() -> None:
    """Guard: with every provider answering ``not_found`` the fetch ends with that answer,
    after one pass (a refusal is an answer: no provider is asked twice)."""

    async def body() -> None:
        async with services(identities(3), [None, None, None]) as (a, b, fetcher):
            with pytest.raises(TransferRefusedError) as caught:
                await fetcher.fetch_aggregate(
                    [a.address, b.address], 1, b"\1" * 32, max_size=MB, policy=FAST_POLICY
                )
            assert caught.value.code == "not_found"

    run_trio(body)


def test_a_push_of_the_committed_digest_is_not_hashed_twice_but_still_checked() -> None:
    """Guard: the sender sends the committed digest as the trailer without hashing again; a
    payload that does not match it must still be refused by the receiver (its own hash)."""
    payload = payload_of(MB)

    async def body() -> None:
        async with services(identities(2), [None, None]) as (sender, receiver):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            await push_not_matching_its_digest(sender, receiver, 1, payload)
            assert receiver.store.find() == []

    run_trio(body)


def test_a_blob_on_disk_is_served_in_pieces_over_libp2p(tmp_path: Path) -> None:
    """Guard: a provider without a bulk channel serves a blob from its disk store over the
    libp2p stream, read piece by piece, resuming nothing and losing nothing."""
    model = payload_of(5 * MB, seed=3)
    holder_store = DirectoryBlobStore(tmp_path)

    async def body() -> None:
        stores: list[BlobStore | None] = [holder_store, None]
        async with services(identities(2), stores, bulk_ports=[None, 0]) as (holder, fetcher):
            ref = await holder.offer(BlobKind.MODEL, 2, model)
            got = await fetcher.fetch_model(holder.address, ref.digest, max_size=8 * MB)
            assert got == model

    run_trio(body)


def test_a_bulk_port_showing_another_certificate_is_not_used() -> None:
    """Fault: something else answers on the offered port (another process took it, or a
    machine in the middle): its certificate does not match the fingerprint sent over Noise,
    so the caller refuses it before sending the token (and falls back to libp2p)."""

    async def body() -> None:
        endpoint = bulk.BulkEndpoint("127.0.0.1")
        async with trio.open_nursery() as nursery:
            await nursery.start(endpoint.run)
            async with endpoint.offer() as (offer, ticket):
                forged = bulk.BulkOffer(offer.port, b"\0" * 32, offer.token)
                with pytest.raises(PeerUnreachableError, match="another certificate"):
                    await bulk.dial("127.0.0.1", forged)
                channel = await bulk.dial("127.0.0.1", offer)  # the real one passes
                assert await bulk.wait_for_channel(ticket, 5) is not None
                await channel.aclose()
            nursery.cancel_scope.cancel()
        assert endpoint.admitted == 1

    run_trio(body)


def test_a_busy_merge_peer_sends_fetchers_to_a_key_holder_that_has_the_aggregate() -> None:
    """Fault guarded: every key holder fetching the aggregate from the merge peer makes its
    upload grow with the consortium. With its serving slots taken, a fetch that names other
    providers is refused ``busy`` at once and gets the aggregate from a holder instead."""
    aggregate = payload_of(2 * MB, seed=9)
    digest = content_digest(BlobKind.AGGREGATE, aggregate)

    async def body() -> None:
        async with services(identities(3), [None, None, None]) as (merge, holder, fetcher):
            await merge.offer(BlobKind.AGGREGATE, 5, aggregate)
            await holder.fetch_aggregate(merge.address, 5, digest, max_size=8 * MB)
            slots = merge.server._serving
            others = [object() for _ in range(int(slots.total_tokens))]
            for other in others:
                slots.acquire_on_behalf_of_nowait(other)  # the merge peer is serving others
            try:
                with trio.fail_after(10):  # no waiting for the merge peer's slot
                    data = await fetcher.fetch_aggregate(
                        [merge.address, holder.address], 5, digest, max_size=8 * MB
                    )
            finally:
                for other in others:
                    slots.release_on_behalf_of(other)
            assert data == aggregate
            (ref,) = fetcher.store.find(kind=BlobKind.AGGREGATE)
            assert ref.sender == holder.address

    run_trio(body)


@pytest.mark.parametrize("size", [0, 465, 300 << 10], ids=["empty", "465 B", "300 KiB"])
def test_small_pushes_land_whole_in_the_disk_store(tmp_path: Path, size: int) -> None:
    """Fault (seen in an e2e run): a blob smaller than a write buffer was still in the staged
    file's buffer when the store checked its size, so every mask-share push was refused."""
    payload = payload_of(size) if size >= 256 else b"s" * size
    store = DirectoryBlobStore(tmp_path)

    async def body() -> None:
        async with services(identities(2), [None, store]) as (sender, receiver):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            await sender.push_update(receiver.address, 1, payload)
            assert store.get(content_digest(BlobKind.UPDATE, payload)) == payload

    run_trio(body)
