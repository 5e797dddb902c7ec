"""The buffered TCP transport (swarm.p2p.tcp): reads served from a buffer, over real sockets."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import multiaddr
import pytest
import trio
import trio.testing
from libp2p.io.exceptions import ConnectionClosedError
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID

from swarm.p2p.host import P2PHost
from swarm.p2p.protocols import request_status
from swarm.p2p.tcp import READ_BYTES, BufferedTCP, BufferedTCPStream
from tests.p2p.helpers import (
    FAST_POLICY,
    free_port,
    identities,
    make_member,
    run_trio,
    serving_host,
)

#: a read that should be served at once (from the buffer, or from bytes already arrived)
PROMPT_S = 2.0


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[BufferedTCPStream, trio.SocketStream]]:
    """A BufferedTCPStream and the raw trio stream at the other end of one loopback TCP
    connection."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    try:
        ours = await trio.testing.open_stream_to_socket_listener(listeners[0])
        theirs = await listeners[0].accept()
        try:
            yield BufferedTCPStream(ours), theirs
        finally:
            await ours.aclose()
            await theirs.aclose()
    finally:
        for listener in listeners:
            await listener.aclose()


async def read_pieces(stream: BufferedTCPStream, sizes: Sequence[int]) -> list[bytes]:
    """One read per size, each bounded by PROMPT_S (a read that waits for more fails)."""
    pieces = []
    for n in sizes:
        with trio.fail_after(PROMPT_S):
            piece = await stream.read(n)
        assert 0 < len(piece) <= n
        pieces.append(piece)
    return pieces


def _queued(stream: trio.SocketStream, n: int) -> int:
    """How many of the next ``n`` bytes sit unread in ``stream``'s socket (peeked, not read)."""
    with socket.socket(fileno=os.dup(stream.socket.fileno())) as sock:
        try:
            return len(sock.recv(n, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return 0


async def _arrived(stream: trio.SocketStream, n: int) -> None:
    """Wait until ``n`` bytes sit in ``stream``'s socket receive queue (nothing read yet)."""
    while _queued(stream, n) < n:
        await trio.sleep(0.01)


def test_small_reads_are_served_in_order_from_what_arrived_together() -> None:
    """Several messages arrive in one send and are read a few bytes at a time (Noise reads a
    2-byte length, then the body): every byte comes out once, in order, and no read waits for
    more bytes than it asked for."""
    messages = [struct.pack(">H", len(body)) + body for body in (b"a" * 5, b"", b"bc" * 40, b"d")]
    sent = b"".join(messages)

    async def body() -> None:
        async with tcp_pair() as (stream, peer):
            await peer.send_all(sent)
            await _arrived(stream.stream, len(sent))
            for turn, message in enumerate(messages):  # as Noise reads: 2-byte length, body
                with trio.fail_after(PROMPT_S):
                    prefix = await stream.read(2)
                if turn == 0:  # the first read took the whole burst off the socket
                    assert _queued(stream.stream, 1) == 0
                (length,) = struct.unpack(">H", prefix)
                with trio.fail_after(PROMPT_S):
                    assert prefix + await stream.read(length) == message

    run_trio(body)


def test_reads_of_any_size_lose_no_bytes() -> None:
    """Reads of mixed sizes (1 byte, a few, more than what is buffered, more than READ_BYTES)
    across several sends: the bytes read are exactly the bytes sent."""
    sent = bytes(range(256)) * 2000  # 512,000 bytes: several buffer fills

    async def body() -> None:
        async with tcp_pair() as (stream, peer):
            async with trio.open_nursery() as nursery:

                async def send() -> None:
                    for start in range(0, len(sent), 100_000):
                        await peer.send_all(sent[start : start + 100_000])

                nursery.start_soon(send)
                got = bytearray()
                sizes = [1, 2, 3, 7, 65_535, READ_BYTES + 1, 10, 300_000]
                turn = 0
                while len(got) < len(sent):
                    with trio.fail_after(PROMPT_S):
                        piece = await stream.read(sizes[turn % len(sizes)])
                    assert 0 < len(piece) <= sizes[turn % len(sizes)]
                    got += piece
                    turn += 1
            assert bytes(got) == sent

    run_trio(body)


def test_a_read_larger_than_what_is_buffered_returns_the_rest_without_waiting() -> None:
    """10 bytes arrived and 4 were read: a read of 100 returns the other 6 at once instead of
    waiting for bytes the peer never sends (which would stall a Noise read forever)."""

    async def body() -> None:
        async with tcp_pair() as (stream, peer):
            await peer.send_all(b"0123456789")
            await _arrived(stream.stream, 10)
            assert await read_pieces(stream, [4, 100]) == [b"0123", b"456789"]

    run_trio(body)


def test_read_none_returns_what_is_buffered() -> None:
    """read(None) after a partial read returns the rest of the buffer (nothing lost, nothing
    waited for); on an empty buffer it returns what arrives next."""

    async def body() -> None:
        async with tcp_pair() as (stream, peer):
            await peer.send_all(b"abcdefghij")
            await _arrived(stream.stream, 10)
            assert await stream.read(3) == b"abc"
            with trio.fail_after(PROMPT_S):
                assert await stream.read(None) == b"defghij"
            await peer.send_all(b"klm")
            with trio.fail_after(PROMPT_S):
                assert await stream.read() == b"klm"

    run_trio(body)


def test_read_zero_returns_nothing_and_consumes_nothing() -> None:
    """read(0) returns b"" at once, with an empty buffer (nothing arrived: it must not block)
    and with a full one (the buffered bytes stay for the next read)."""

    async def body() -> None:
        async with tcp_pair() as (stream, peer):
            with trio.fail_after(PROMPT_S):
                assert await stream.read(0) == b""
            await peer.send_all(b"xyz")
            await _arrived(stream.stream, 3)
            assert await stream.read(1) == b"x"
            assert await stream.read(0) == b""
            assert await read_pieces(stream, [5]) == [b"yz"]

    run_trio(body)


def test_end_of_stream_returns_empty_bytes_after_the_buffered_ones() -> None:
    """The peer sends, then closes: what it sent is read first, then b"" (EOF), every time."""

    async def body() -> None:
        async with tcp_pair() as (stream, peer):
            await peer.send_all(b"last words")
            await peer.aclose()
            assert await read_pieces(stream, [4, 100]) == [b"last", b" words"]
            with trio.fail_after(PROMPT_S):
                assert await stream.read(10) == b""
                assert await stream.read(None) == b""

    run_trio(body)


def test_a_read_after_closing_our_end_returns_empty_bytes() -> None:
    """We closed the stream (teardown): a read is EOF, as with py-libp2p's TrioTCPStream."""

    async def body() -> None:
        async with tcp_pair() as (stream, _peer):
            await stream.close()
            with trio.fail_after(PROMPT_S):
                assert await stream.read(10) == b""

    run_trio(body)


def test_a_peer_reset_raises_connection_closed() -> None:
    """The peer resets the connection (RST): the read raises libp2p's ConnectionClosedError,
    the type yamux reacts to, not a trio error."""

    async def body() -> None:
        async with tcp_pair() as (stream, peer):
            peer.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await peer.aclose()  # linger 0: close sends RST
            with trio.fail_after(PROMPT_S), pytest.raises(ConnectionClosedError):
                await stream.read(10)

    run_trio(body)


def test_writes_still_go_out() -> None:
    """The buffered stream writes as the plain one does (a full round trip)."""

    async def body() -> None:
        async with tcp_pair() as (stream, peer):
            await stream.write(b"ping")
            with trio.fail_after(PROMPT_S):
                assert await peer.receive_some(10) == b"ping"
                await peer.send_all(b"pong")
                assert await stream.read(10) == b"pong"

    run_trio(body)


def test_dialed_and_accepted_connections_of_the_transport_are_buffered() -> None:
    """BufferedTCP itself: a connection it dials, and one its listener accepts, read through
    BufferedTCPStream (and carry bytes both ways)."""

    async def body() -> None:
        accepted: list[Any] = []
        done = trio.Event()

        async def on_connection(stream: Any) -> None:
            accepted.append(stream)
            await stream.write(await stream.read(5))
            await done.wait()

        transport = BufferedTCP()
        listener = transport.create_listener(on_connection)
        await listener.listen(multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0"))
        try:
            (addr,) = listener.get_addrs()
            conn = await transport.dial(addr)
            assert isinstance(conn, RawConnection)
            assert isinstance(conn.stream, BufferedTCPStream)
            await conn.write(b"hello")
            with trio.fail_after(PROMPT_S):
                assert await conn.read(5) == b"hello"
            assert len(accepted) == 1 and isinstance(accepted[0], BufferedTCPStream)
            done.set()
            await conn.close()
        finally:
            await listener.close()

    run_trio(body)


def _tcp_stream_of(conn: Any) -> TrioTCPStream:
    """The TCP stream under a libp2p connection: yamux -> Noise session -> Noise message
    framing -> RawConnection -> its stream (py-libp2p 0.8.1's attribute names)."""
    secure_session = conn.muxed_conn.secured_conn
    raw = secure_session.conn.read_writer.read_write_closer
    assert isinstance(raw, RawConnection)
    stream = raw.stream
    assert isinstance(stream, TrioTCPStream)
    return stream


def test_a_connection_between_two_hosts_reads_through_the_buffer_on_both_ends() -> None:
    """Hosts built by build_libp2p_host: the dialing end and the accepting end of their
    connection both read through BufferedTCPStream, and streams over it work."""
    client_id, server_id = identities(2)
    client_port, server_port = free_port(), free_port()
    members = [make_member(client_id, client_port), make_member(server_id, server_port)]

    async def body() -> None:
        async with (
            serving_host(client_id, client_port, members) as (client, _),
            serving_host(server_id, server_port, members) as (server, _),
        ):
            status = await request_status(client, server.address, policy=FAST_POLICY)
            assert status["address"] == server.address
            for host, other in ((client, server), (server, client)):
                conns = _connections(host, other)
                assert conns, f"{host.address} holds no connection to {other.address}"
                for conn in conns:
                    assert isinstance(_tcp_stream_of(conn), BufferedTCPStream)

    run_trio(body)


def _connections(host: P2PHost, other: P2PHost) -> list[Any]:
    network: Any = host.libp2p.get_network()
    return list(network.get_connections(ID.from_base58(other.peer_id)))
