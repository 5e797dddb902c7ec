"""The libp2p host in one process: identity, Noise + yamux only, the membership gate, dialing."""

from __future__ import annotations

import logging
from typing import Any

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport

from swarm.errors import (
    NotAMemberPeerError,
    PeerUnreachableError,
    TransferInterruptedError,
    TransferRefusedError,
)
from swarm.identity import Identity
from swarm.p2p.framing import raise_if_refused, read_message, write_message
from swarm.p2p.host import P2PHost, forget_failed_dial, libp2p_key_pair
from swarm.p2p.membership import MembershipGate, member_of_identity
from swarm.p2p.protocols import STATUS_PROTOCOL, StreamIO
from tests.p2p.helpers import (
    free_port,
    identities,
    loopback_addr,
    make_member,
    run_trio,
    running_host,
)


def test_host_peer_id_is_the_identity_peer_id() -> None:
    """One key, two names: the libp2p PeerID equals Identity.peer_id (and its address)."""
    identity = Identity.generate()
    host = P2PHost(identity, MembershipGate(), [loopback_addr(0)])
    assert str(host.libp2p.get_id()) == identity.peer_id
    assert str(ID.from_pubkey(libp2p_key_pair(identity).public_key)) == identity.peer_id


def test_only_noise_and_yamux_are_offered() -> None:
    """No plaintext, secio, TLS or mplex: those are what new_host() adds by default."""
    host = P2PHost(Identity.generate(), MembershipGate(), [loopback_addr(0)])
    upgrader: Any = host.libp2p.get_network().upgrader  # type: ignore[attr-defined]
    assert list(upgrader.security_multistream.transports) == ["/noise"]
    assert list(upgrader.muxer_multistream.transports) == ["/yamux/1.0.0"]


def test_a_plaintext_only_peer_cannot_connect() -> None:
    """A peer offering only /plaintext/2.0.0 fails negotiation, even with a member's key."""
    member, other = identities(2)
    port = free_port()
    members = [make_member(member, port), make_member(other, free_port())]

    async def body() -> None:
        async with running_host(member, port, members) as host:
            key_pair = libp2p_key_pair(other)
            plain = new_host(
                key_pair=key_pair, sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(key_pair)}
            )
            async with plain.run(listen_addrs=[multiaddr.Multiaddr(loopback_addr(0))]):
                info = PeerInfo(
                    ID.from_base58(member.peer_id), [multiaddr.Multiaddr(loopback_addr(port))]
                )
                with pytest.raises(Exception):  # noqa: B017 - libp2p raises its own SwarmException
                    with trio.fail_after(15):
                        await plain.connect(info)
            assert host.connected_peers() == []

    run_trio(body)


def test_non_member_connection_is_refused_both_ways() -> None:
    """A key that is not an active member's: its inbound connection is closed after the Noise
    handshake, and we refuse to complete an outbound one to it."""
    member, intruder = identities(2)
    member_port, intruder_port = free_port(), free_port()
    ours = [make_member(member, member_port)]
    theirs = [make_member(member, member_port), make_member(intruder, intruder_port)]

    async def body() -> None:
        async with (
            running_host(member, member_port, ours) as host,
            running_host(intruder, intruder_port, theirs) as intruder_host,
        ):
            with pytest.raises(PeerUnreachableError):
                await intruder_host.connect(make_member(member, member_port), timeout_s=10)
            assert host.connected_peers() == []
            with pytest.raises(NotAMemberPeerError):
                host.member(intruder.address)
            # even dialing its address directly: the gate refuses the authenticated key
            with pytest.raises(PeerUnreachableError):
                await host.connect(make_member(intruder, intruder_port), timeout_s=10)
            assert host.connected_peers() == []

    run_trio(body)


def test_negative_dial_cache_is_evicted_before_a_retry() -> None:
    """After one failed dial, libp2p 0.8.1 refuses the peer from a 60 s cache although it is
    back; P2PHost.connect evicts it first, so the retry really dials."""
    a, b = identities(2)
    a_port, b_port = free_port(), free_port()
    members = [make_member(a, a_port), make_member(b, b_port)]

    async def body() -> None:
        async with running_host(a, a_port, members) as host:
            with pytest.raises(PeerUnreachableError):
                await host.connect(members[1], timeout_s=10)  # b is not up yet
            async with running_host(b, b_port, members):
                info = PeerInfo(
                    ID.from_base58(b.peer_id), [multiaddr.Multiaddr(loopback_addr(b_port))]
                )
                # canary: the sharp edge is still there in this libp2p version
                with pytest.raises(Exception, match="negative cache"):
                    await host.libp2p.connect(info)
                await host.connect(members[1], timeout_s=10)
                assert host.is_connected(members[1])

    run_trio(body)


def test_a_dead_member_is_one_typed_error_not_a_library_error_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dead peer: the dial fails with PeerUnreachableError naming the member, and py-libp2p's
    own ERROR "Failed to open TCP stream" line (one per failed dial, forever, while a member is
    down) stays out of the operator's log."""
    a, b = identities(2)
    a_port, b_port = free_port(), free_port()
    members = [make_member(a, a_port), make_member(b, b_port)]

    async def body() -> None:
        async with running_host(a, a_port, members) as host:
            with pytest.raises(PeerUnreachableError, match=members[1].address):
                await host.connect(members[1], timeout_s=10)

    with caplog.at_level(logging.DEBUG):
        run_trio(body)
    assert not [r for r in caplog.records if "Failed to open TCP stream" in r.getMessage()]


def test_forget_failed_dial_reports_whether_it_could() -> None:
    host = P2PHost(Identity.generate(), MembershipGate(), [loopback_addr(0)])
    assert forget_failed_dial(host.libp2p, host.libp2p.get_id()) is True


def test_a_removed_members_streams_are_refused_then_its_connection_closed() -> None:
    """Between a member's removal and its connection's closing, its streams are refused."""
    a, b = identities(2)
    a_port, b_port = free_port(), free_port()
    members = [make_member(a, a_port), make_member(b, b_port)]

    async def body() -> None:
        handled: list[str] = []

        async def handler(stream: Any, member: Any) -> None:
            handled.append(member.address)
            await StreamIO(stream).write(b"hello")
            await stream.close()

        async with (
            running_host(a, a_port, members) as client,
            running_host(b, b_port, members) as server,
        ):
            server.set_handler(STATUS_PROTOCOL, handler)
            stream = await client.open_stream(members[1], STATUS_PROTOCOL, timeout_s=10)
            assert await StreamIO(stream).read(5) == b"hello"
            server.gate.update([members[1]])  # a removed; its connection is still open
            stream = await client.open_stream(members[1], STATUS_PROTOCOL, timeout_s=10)
            await write_message(StreamIO(stream), {"v": 1})
            with pytest.raises(TransferRefusedError) as info:
                with trio.fail_after(10):
                    raise_if_refused(await read_message(StreamIO(stream)))
            assert info.value.code == "not_member"
            assert handled == [a.address]
            await server.disconnect_non_members()
            assert server.connected_peers() == []

    run_trio(body)


def test_handler_errors_stay_on_their_stream() -> None:
    """A handler that raises resets its stream; the host keeps serving."""
    a, b = identities(2)
    a_port, b_port = free_port(), free_port()
    members = [make_member(a, a_port), make_member(b, b_port)]
    protocol = "/test/boom/1.0.0"

    async def body() -> None:
        calls = 0

        async def handler(stream: Any, member: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("handler bug")
            await StreamIO(stream).write(b"ok")
            await stream.close()

        async with (
            running_host(a, a_port, members) as client,
            running_host(b, b_port, members) as server,
        ):
            server.set_handler(protocol, handler)
            with pytest.raises((TransferInterruptedError, PeerUnreachableError)):
                with trio.fail_after(10):
                    # reset right after negotiation: the open itself or the first read fails
                    first = await client.open_stream(members[1], protocol, timeout_s=10)
                    if not await StreamIO(first).read(2):
                        raise TransferInterruptedError("ended without data")
            second = await client.open_stream(members[1], protocol, timeout_s=10)
            assert await StreamIO(second).read(2) == b"ok"

    run_trio(body)


def test_unknown_protocol_is_unreachable() -> None:
    """A protocol the peer does not speak: PeerUnreachableError, and the connection is kept."""
    a, b = identities(2)
    a_port, b_port = free_port(), free_port()
    members = [make_member(a, a_port), make_member(b, b_port)]

    async def body() -> None:
        async with running_host(a, a_port, members) as client, running_host(b, b_port, members):
            with pytest.raises(PeerUnreachableError):
                await client.open_stream(members[1], "/nobody/speaks/this", timeout_s=5)
            assert client.is_connected(members[1])  # other transfers may be using it

    run_trio(body)


def test_a_member_without_addresses_cannot_be_dialed() -> None:
    """A ledger entry without multiaddrs: PeerUnreachableError at once, no dial."""
    a = Identity.generate()
    host = P2PHost(a, MembershipGate(), [loopback_addr(0)])
    with pytest.raises(PeerUnreachableError):
        run_trio(lambda: host.connect(member_of_identity(Identity.generate())))
