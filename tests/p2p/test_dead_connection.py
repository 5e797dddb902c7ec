"""A connection that is alive for libp2p but carries nothing: the next try must redial.

The server is reached through a relay the test controls (tests.support.relay); freezing it keeps
the TCP connection open at both ends while no byte flows, as when a NAT or middlebox silently
loses the connection's state. py-libp2p 0.8.1 has no keepalive that notices, and keeps handing
out the dead connection for every new stream unless it is dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from swarm.errors import PeerUnreachableError
from swarm.p2p.config import TransferPolicy
from swarm.p2p.host import CLOSE_TIMEOUT_S, P2PHost
from swarm.p2p.protocols import ProtocolServer, PushRequest, push
from swarm.p2p.store import BlobKind, MemoryBlobStore
from tests.p2p.helpers import free_port, identities, make_member, run_trio, serving_host
from tests.support.relay import FreezableRelay

#: one retry: the try that meets the dead connection, and the one that must succeed
ONE_RETRY = TransferPolicy(
    attempts=2, base_timeout_s=4.0, connect_timeout_s=1.5, backoff_s=0.05, max_backoff_s=0.1
)


@asynccontextmanager
async def through_relay() -> AsyncIterator[tuple[P2PHost, P2PHost, ProtocolServer, FreezableRelay]]:
    """A client that reaches the server only through a relay (the address its ledger holds)."""
    client_id, server_id = identities(2)
    client_port, server_port = free_port(), free_port()
    relay = FreezableRelay(server_port)
    async with relay.running():
        clients_view = [make_member(client_id, client_port), make_member(server_id, relay.port)]
        servers_view = [make_member(client_id, client_port), make_member(server_id, server_port)]
        async with (
            serving_host(client_id, client_port, clients_view) as (client, _),
            serving_host(server_id, server_port, servers_view, MemoryBlobStore()) as (
                server,
                protocols,
            ),
        ):
            protocols.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 << 20)
            yield client, server, protocols, relay


def _connection_ids(host: P2PHost, peer: P2PHost) -> set[int]:
    """Identities of the open connections from ``host`` to ``peer``."""
    network: Any = host.libp2p.get_network()
    return {id(c) for c in network.get_connections(peer.libp2p.get_id()) if not c.is_closed}


def test_a_frozen_connection_is_dropped_and_the_retry_dials_afresh() -> None:
    """Fault: a stream open that times out left the dead connection in place, so every retry
    opened its stream on it again and timed out again. After the freeze, a push must succeed
    within one retry, over a new connection (the relay sees a second one)."""

    async def body() -> None:
        async with through_relay() as (client, server, protocols, relay):
            await push(client, server.address, BlobKind.UPDATE, 1, b"before", policy=ONE_RETRY)
            before = _connection_ids(client, server)
            assert relay.connections == 1 and len(before) == 1
            relay.freeze()  # the connection stays open at both ends; nothing flows any more
            await push(client, server.address, BlobKind.UPDATE, 2, b"after", policy=ONE_RETRY)
            assert relay.connections == 2
            after = _connection_ids(client, server)
            assert after and not after & before
            assert {r.round_id for r in protocols.store.find()} == {1, 2}

    run_trio(body)


def test_a_connection_frozen_mid_payload_is_dropped_and_the_retry_dials_afresh() -> None:
    """Guard (this path dropped the connection before, without a bound): the same dead
    connection met in the middle of a payload rather than at a stream open. The attempt's
    deadline expires, and the retry must go over a new connection."""
    payload = b"p" * (8 << 20)
    policy = TransferPolicy(
        attempts=2,
        base_timeout_s=3.0,
        min_rate_bytes_per_s=50e6,
        connect_timeout_s=2.0,
        backoff_s=0.05,
        chunk_bytes=256 << 10,
    )

    async def body() -> None:
        async with through_relay() as (client, server, protocols, relay):
            await push(client, server.address, BlobKind.UPDATE, 1, b"warm", policy=policy)
            seen: list[PushRequest] = []

            def freeze_once_flowing(request: PushRequest) -> None:
                seen.append(request)
                if len(seen) == 1:
                    relay.freeze()  # just as the payload is about to flow

            protocols.accept_pushes(BlobKind.UPDATE, freeze_once_flowing, 64 << 20)
            await push(client, server.address, BlobKind.UPDATE, 2, payload, policy=policy)
            assert relay.connections == 2 and len(seen) == 2
            assert protocols.store.find(round_id=2)[0].size == len(payload)

    run_trio(body)


def test_a_connection_that_will_not_close_is_discarded_within_a_bound() -> None:
    """Fault: closing a dead connection politely can block (its GO_AWAY stuck behind a full
    socket); dropping it must still finish within a bound and leave nothing for the next
    stream to pick."""

    async def body() -> None:
        async with through_relay() as (client, server, _, relay):
            await push(client, server.address, BlobKind.UPDATE, 1, b"x", policy=ONE_RETRY)
            relay.freeze()

            async def never_closes(peer_id: str) -> None:
                await trio.sleep_forever()

            client.disconnect_peer = never_closes  # type: ignore[method-assign]
            member = client.member(server.address)
            started = trio.current_time()
            await client.drop_connections(member)
            assert trio.current_time() - started < 2 * CLOSE_TIMEOUT_S
            assert not client.is_connected(member)
            assert server.peer_id not in client.connected_peers()
            del client.disconnect_peer  # the real one again, for the next connection
            await push(client, server.address, BlobKind.UPDATE, 2, b"y", policy=ONE_RETRY)
            assert relay.connections == 2

    run_trio(body)


def test_with_new_connections_frozen_too_the_try_fails_typed_and_fast() -> None:
    """Fault: a dial to a peer whose new connections also hang must fail within the connect
    timeout (typed), not hang, and a later try after the relay recovers must dial again
    rather than being refused from libp2p's 60 s negative dial cache."""

    async def body() -> None:
        async with through_relay() as (client, server, protocols, relay):
            await push(client, server.address, BlobKind.UPDATE, 1, b"x", policy=ONE_RETRY)
            relay.freeze(new_connections=True)
            with trio.fail_after(4 * ONE_RETRY.base_timeout_s):
                with pytest.raises(PeerUnreachableError):
                    await push(client, server.address, BlobKind.UPDATE, 2, b"y", policy=ONE_RETRY)
            relay.thaw()
            await push(
                client, server.address, BlobKind.UPDATE, 3, b"z", policy=ONE_RETRY.single_attempt()
            )
            assert {r.round_id for r in protocols.store.find()} == {1, 3}

    run_trio(body)
