"""Opening a stream in one round trip (swarm.p2p.multiselect), between two real hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.host.exceptions import StreamFailure
from libp2p.io.abc import ReadWriteCloser
from libp2p.peer.id import ID
from libp2p.protocol_muxer.exceptions import MultiselectClientError, ProtocolNotSupportedError
from libp2p.protocol_muxer.multiselect_client import MULTISELECT_PROTOCOL_ID
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.utils import encode_delim

from swarm.errors import PeerUnreachableError
from swarm.identity import Identity
from swarm.ledger.types import Member
from swarm.p2p.host import P2PHost, build_libp2p_host
from swarm.p2p.membership import MembershipGate
from swarm.p2p.multiselect import PipelinedMultiselectClient
from tests.p2p.helpers import free_port, identities, make_member, run_trio, running_host

ECHO = "/test/echo/1.0.0"
NOBODY = "/test/nobody-speaks-this/1.0.0"
#: negotiation with a live peer on loopback takes milliseconds; this only guards against a hang
NEGOTIATE_S = 5


class Recording(ReadWriteCloser):
    """A libp2p stream whose writes are recorded (what went out, in how many writes)."""

    def __init__(self, stream: INetStream) -> None:
        self.stream = stream
        self.writes: list[bytes] = []

    async def read(self, n: int | None = None) -> bytes:
        return await self.stream.read(n)

    async def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        await self.stream.write(data)

    async def close(self) -> None:
        await self.stream.close()

    def get_remote_address(self) -> tuple[str, int] | None:
        return None


async def echo(stream: INetStream, member: Member) -> None:
    data = await stream.read(1024)
    await stream.write(data)
    await stream.close()


Body = Callable[[P2PHost, P2PHost, Member], Awaitable[None]]


def with_echo_server(body: Body) -> None:
    """Run ``body(client, server, server_member)``: two member hosts, connected, the server
    speaking only ECHO (and the host's own protocols)."""
    client_id, server_id = identities(2)
    client_port, server_port = free_port(), free_port()
    members = [make_member(client_id, client_port), make_member(server_id, server_port)]

    async def main() -> None:
        async with (
            running_host(client_id, client_port, members) as client,
            running_host(server_id, server_port, members) as server,
        ):
            server.set_handler(ECHO, echo)
            await client.connect(members[1], timeout_s=NEGOTIATE_S)
            await body(client, server, members[1])

    run_trio(main)


@asynccontextmanager
async def raw_stream(client: P2PHost, server: P2PHost) -> AsyncIterator[INetStream]:
    """A new stream on the client's connection to the server, no protocol negotiated yet."""
    network: Any = client.libp2p.get_network()
    stream: INetStream = await network.new_stream(ID.from_base58(server.peer_id))
    try:
        yield stream
    finally:
        await stream.reset()


async def roundtrip(stream: INetStream, data: bytes) -> bytes:
    with trio.fail_after(NEGOTIATE_S):
        await stream.write(data)
        return await stream.read(len(data))


def test_hosts_built_for_swarm_use_the_pipelined_client() -> None:
    """build_libp2p_host (every P2PHost) installs PipelinedMultiselectClient: a host that fell
    back to py-libp2p's client would silently pay a second round trip per stream."""
    host = build_libp2p_host(Identity.generate(), MembershipGate())
    assert isinstance(host.multiselect_client, PipelinedMultiselectClient)  # type: ignore[attr-defined]
    p2p = P2PHost(Identity.generate(), MembershipGate(), ["/ip4/127.0.0.1/tcp/0"])
    assert isinstance(p2p.libp2p.multiselect_client, PipelinedMultiselectClient)  # type: ignore[attr-defined]


def test_one_protocol_is_negotiated_in_one_write_and_the_stream_then_works() -> None:
    """Handshake and protocol go out together, in one write; the listener (py-libp2p's,
    unchanged) answers both, and the stream then carries the protocol's bytes end to end."""

    async def body(client: P2PHost, server: P2PHost, server_member: Member) -> None:
        async with raw_stream(client, server) as stream:
            recording = Recording(stream)
            with trio.fail_after(NEGOTIATE_S):
                selected = await PipelinedMultiselectClient().select_one_of(
                    [TProtocol(ECHO)], MultiselectCommunicator(recording), NEGOTIATE_S
                )
            assert selected == ECHO
            assert recording.writes == [
                encode_delim(MULTISELECT_PROTOCOL_ID.encode()) + encode_delim(ECHO.encode())
            ]
            # the listener consumed exactly the two messages: the echo sees only our bytes
            assert await roundtrip(stream, b"ping") == b"ping"

    with_echo_server(body)


def test_streams_opened_by_the_host_work_end_to_end() -> None:
    """P2PHost.open_stream (through libp2p's new_stream and the pipelined client) gives a stream
    speaking the protocol asked for, several times over one connection."""

    async def body(client: P2PHost, server: P2PHost, server_member: Member) -> None:
        for n in range(3):
            stream = await client.open_stream(server_member, ECHO, timeout_s=NEGOTIATE_S)
            assert stream.get_protocol() == ECHO
            assert await roundtrip(stream, b"hello %d" % n) == b"hello %d" % n
            await stream.close()

    with_echo_server(body)


def test_a_protocol_the_server_does_not_speak_is_a_typed_refusal() -> None:
    """The listener answers "na": ProtocolNotSupportedError (a MultiselectClientError, which
    libp2p's new_stream turns into StreamFailure), at once rather than after a timeout."""

    async def body(client: P2PHost, server: P2PHost, server_member: Member) -> None:
        async with raw_stream(client, server) as stream:
            with trio.fail_after(NEGOTIATE_S), pytest.raises(ProtocolNotSupportedError):
                await PipelinedMultiselectClient().select_one_of(
                    [TProtocol(NOBODY)], MultiselectCommunicator(stream), NEGOTIATE_S
                )

    with_echo_server(body)


def test_the_host_reports_an_unknown_protocol_as_unreachable_and_keeps_the_connection() -> None:
    """P2PHost.open_stream for a protocol the member does not speak: PeerUnreachableError caused
    by libp2p's StreamFailure from the negotiation's refusal (not a timeout); the connection
    stays up and the next stream on it works."""

    async def body(client: P2PHost, server: P2PHost, server_member: Member) -> None:
        with trio.fail_after(NEGOTIATE_S), pytest.raises(PeerUnreachableError) as info:
            await client.open_stream(server_member, NOBODY, timeout_s=NEGOTIATE_S * 2)
        failure = info.value.__cause__
        assert isinstance(failure, StreamFailure)
        assert isinstance(failure.__cause__, MultiselectClientError)
        assert client.is_connected(server_member)
        stream = await client.open_stream(server_member, ECHO, timeout_s=NEGOTIATE_S)
        assert await roundtrip(stream, b"still here") == b"still here"
        await stream.close()

    with_echo_server(body)


def test_several_candidate_protocols_fall_back_to_step_by_step_negotiation() -> None:
    """Two candidates, the first unknown to the server: py-libp2p's client tries them in turn
    (handshake, then one protocol per write) and settles on the one the server speaks."""

    async def body(client: P2PHost, server: P2PHost, server_member: Member) -> None:
        async with raw_stream(client, server) as stream:
            recording = Recording(stream)
            with trio.fail_after(NEGOTIATE_S):
                selected = await PipelinedMultiselectClient().select_one_of(
                    [TProtocol(NOBODY), TProtocol(ECHO)],
                    MultiselectCommunicator(recording),
                    NEGOTIATE_S,
                )
            assert selected == ECHO
            assert recording.writes == [
                encode_delim(MULTISELECT_PROTOCOL_ID.encode()),
                encode_delim(NOBODY.encode()),
                encode_delim(ECHO.encode()),
            ]
            assert await roundtrip(stream, b"pong") == b"pong"

    with_echo_server(body)


def test_a_stream_broken_before_negotiation_is_a_typed_failure() -> None:
    """The stream is reset before the handshake goes out: MultiselectClientError (which the
    host turns into PeerUnreachableError), never a bare libp2p or trio error."""

    async def body(client: P2PHost, server: P2PHost, server_member: Member) -> None:
        async with raw_stream(client, server) as stream:
            await stream.reset()
            with trio.fail_after(NEGOTIATE_S), pytest.raises(MultiselectClientError):
                await PipelinedMultiselectClient().select_one_of(
                    [TProtocol(ECHO)], MultiselectCommunicator(stream), NEGOTIATE_S
                )

    with_echo_server(body)
