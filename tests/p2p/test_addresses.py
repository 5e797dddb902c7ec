"""Where a peer listens, what it announces, where it is dialed, and one peer per port and key.

Real runs across hosts showed: a peer listening on ``/ip4/0.0.0.0/tcp/4001`` signed 0.0.0.0 into
its identify peer record, which *replaced* the ledger's address in the others' peerstores, so
after a cut nobody could dial it again; and two peers could share one port (py-libp2p sets
SO_REUSEPORT) or one key, starting silently and spoiling rounds.
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import multiaddr
import pytest
import trio
from libp2p.host.ping import ID as PING_ID
from libp2p.peer.id import ID
from libp2p.peer.peerstore import PeerStore

from swarm.config import PeerConfig
from swarm.errors import ConfigError, DuplicatePeerError, PortInUseError, SwarmError
from swarm.identity import Identity
from swarm.p2p.config import P2PConfig, addresses_to_announce, is_unspecified
from swarm.p2p.guard import check_can_listen
from swarm.p2p.host import LedgerAddressBook, P2PHost, build_libp2p_host
from swarm.p2p.membership import MembershipGate, StaticMembershipSource, member_of_identity
from swarm.p2p.service import open_p2p
from swarm.p2p.store import BlobKind
from tests.p2p.helpers import (
    config_for,
    free_port,
    identities,
    loopback_addr,
    make_member,
    run_trio,
)
from tests.support.relay import FreezableRelay

# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "addr",
    ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001", "/ip4/10.0.0.5/tcp/0", "/ip4/example/tcp/1"],
)
def test_an_announce_address_must_be_dialable(addr: str) -> None:
    with pytest.raises(ConfigError):
        P2PConfig(announce_addrs=(addr,))


def test_listen_and_announce_are_separate() -> None:
    config = P2PConfig(
        listen_addrs=("/ip4/0.0.0.0/tcp/4001",), announce_addrs=("/ip4/203.0.113.10/tcp/4001",)
    )
    assert config.listen_addrs == ("/ip4/0.0.0.0/tcp/4001",)
    assert config.announce_addrs == ("/ip4/203.0.113.10/tcp/4001",)
    assert P2PConfig().announce_addrs == ()


def test_what_is_announced_is_never_unspecified() -> None:
    # announce given: exactly that
    assert addresses_to_announce(["/ip4/203.0.113.10/tcp/4001"], ["/ip4/0.0.0.0/tcp/4001"]) == (
        "/ip4/203.0.113.10/tcp/4001",
    )
    # derived only from specific listen addresses
    assert addresses_to_announce([], ["/ip4/10.0.0.5/tcp/4001", "/ip4/0.0.0.0/tcp/4002"]) == (
        "/ip4/10.0.0.5/tcp/4001",
    )
    # listening on every interface, nothing configured: nothing
    assert addresses_to_announce([], ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001"]) == ()
    assert is_unspecified("/ip6/::/tcp/1") and not is_unspecified("/dns4/example.org/tcp/1")


def _peer_config(p2p: dict[str, Any]) -> PeerConfig:
    raw = {
        "identity": {"keystore": "key.json"},
        "ledger": {"chain_url": "http://127.0.0.1:8545", "contract": "0x" + "11" * 20},
        "p2p": p2p,
        "task": {"site": "Cleveland"},
    }
    return PeerConfig.from_dict(raw, base=Path("/srv/swarm"))


def test_the_peer_config_keeps_listen_and_announce_apart() -> None:
    config = _peer_config(
        {"listen": ["/ip4/0.0.0.0/tcp/4001"], "announce": ["/ip4/203.0.113.10/tcp/4001"]}
    )
    assert config.listen == ("/ip4/0.0.0.0/tcp/4001",)
    assert config.announce == ("/ip4/203.0.113.10/tcp/4001",)
    again = PeerConfig.from_dict(tomllib.loads(config.to_toml()), base=Path("/"))
    assert (again.listen, again.announce) == (config.listen, config.announce)
    p2p = config.p2p_config()
    assert p2p.listen_addrs == config.listen and p2p.announce_addrs == config.announce
    assert _peer_config({}).announce == ()  # nothing announced unless listen is specific


@pytest.mark.parametrize(
    ("p2p", "message"),
    [
        ({"announce": ["/ip4/0.0.0.0/tcp/4001"]}, r"\[p2p\] announce: .*not dialable"),
        ({"announce": "/ip4/10.0.0.5/tcp/4001"}, r"\[p2p\] announce must be a list"),
        ({"listen": ["/ip4/0.0.0.0/udp/4001/quic-v1"]}, r"\[p2p\] listen: "),
        ({"listen": []}, r"\[p2p\] listen needs at least one"),
    ],
)
def test_a_bad_p2p_section_names_its_key(p2p: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _peer_config(p2p)


# --- announcing and dialing ---------------------------------------------------------------


def _stored_by_identify(host: P2PHost, peer: Identity) -> list[str]:
    """What libp2p's own address book holds for ``peer`` (identify writes there), bypassing the
    ledger answer of LedgerAddressBook.addrs."""
    book = host.libp2p.get_peerstore()
    assert isinstance(book, LedgerAddressBook)
    try:
        return [_bare(a) for a in PeerStore.addrs(book, ID.from_base58(peer.peer_id))]
    except KeyError:
        return []


def _signed_record_addrs(host: P2PHost, peer: Identity) -> list[str]:
    envelope = host.libp2p.get_peerstore().get_peer_record(ID.from_base58(peer.peer_id))
    return [] if envelope is None else [_bare(a) for a in envelope.record().addrs]


def _bare(addr: object) -> str:
    """A multiaddr without its /p2p/<PeerID> suffix."""
    return str(addr).split("/p2p/")[0]


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    with trio.fail_after(timeout_s):
        while not condition():
            await trio.sleep(0.02)


def test_a_peer_listening_on_every_interface_announces_nothing() -> None:
    """Listening on 0.0.0.0 with nothing to announce: identify answers nothing at all, rather
    than py-libp2p's fallback to the raw listen addresses (0.0.0.0)."""
    dialer, listener = identities(2)
    dport, lport = free_port(), free_port()
    members = [make_member(dialer, dport), make_member(listener, lport)]

    async def body() -> None:
        gate = MembershipGate()
        gate.update(members)
        a = P2PHost(dialer, gate, [loopback_addr(dport)])
        b = P2PHost(listener, gate, [f"/ip4/0.0.0.0/tcp/{lport}"])
        async with a.running(), b.running():
            assert b.announced_addrs() == []
            assert b.addrs() == [f"/ip4/0.0.0.0/tcp/{lport}/p2p/{listener.peer_id}"]
            await a.connect(members[1])
            await trio.sleep(1.0)  # identify runs in the background after a connection
            for addr in _stored_by_identify(a, listener) + _signed_record_addrs(a, listener):
                assert not is_unspecified(addr), addr

    run_trio(body)


def test_a_peer_announces_its_announce_addresses_signed() -> None:
    dialer, listener = identities(2)
    dport, lport = free_port(), free_port()
    announced = loopback_addr(lport)
    members = [make_member(dialer, dport), make_member(listener, lport)]

    async def body() -> None:
        gate = MembershipGate()
        gate.update(members)
        a = P2PHost(dialer, gate, [loopback_addr(dport)])
        b = P2PHost(listener, gate, [f"/ip4/0.0.0.0/tcp/{lport}"], [announced])
        async with a.running(), b.running():
            assert b.announced_addrs() == [f"{announced}/p2p/{listener.peer_id}"]
            await a.connect(members[1])
            await _until(lambda: bool(_signed_record_addrs(a, listener)))
            assert _signed_record_addrs(a, listener) == [announced]
            assert _stored_by_identify(a, listener) == [announced]

    run_trio(body)


def test_an_announcement_never_decides_where_a_member_is_dialed() -> None:
    """A member announces an address where nothing listens (stale, forged, or 0.0.0.0 seen
    from another host). identify replaces libp2p's address book with it (the canary below);
    the reconnection after a cut still dials the ledger's address and succeeds."""
    dialer, listener = identities(2)
    dport, lport, dead = free_port(), free_port(), free_port()
    members = [make_member(dialer, dport), make_member(listener, lport)]

    async def body() -> None:
        gate = MembershipGate()
        gate.update(members)
        a = P2PHost(dialer, gate, [loopback_addr(dport)])
        b = P2PHost(listener, gate, [f"/ip4/0.0.0.0/tcp/{lport}"], [loopback_addr(dead)])
        async with a.running(), b.running():
            await a.connect(members[1])
            # canary: identify did poison libp2p's own book (were it dialed, the redial fails)
            await _until(lambda: bool(_signed_record_addrs(a, listener)))
            assert _stored_by_identify(a, listener) == [loopback_addr(dead)]
            # what libp2p dials: the ledger's address
            book = a.libp2p.get_peerstore()
            assert [str(x) for x in book.addrs(ID.from_base58(listener.peer_id))] == [
                loopback_addr(lport)
            ]
            await a.drop_connections(members[1])  # the cut
            assert not a.is_connected(members[1])
            # a stream opened with no connection makes libp2p dial from its address book
            stream = await a.libp2p.new_stream(ID.from_base58(listener.peer_id), [PING_ID])
            await stream.reset()
            assert a.is_connected(members[1])

    run_trio(body)


def test_a_non_member_has_no_address_to_dial() -> None:
    member, stranger = identities(2)
    gate = MembershipGate()
    gate.update([make_member(member, 4001)])
    book = LedgerAddressBook(gate)
    book.add_addr(ID.from_base58(stranger.peer_id), multiaddr.Multiaddr(loopback_addr(4002)))
    assert book.addrs(ID.from_base58(stranger.peer_id)) == []
    assert [str(a) for a in book.addrs(ID.from_base58(member.peer_id))] == [loopback_addr(4001)]


def test_a_member_that_moves_is_dialed_at_its_new_address() -> None:
    """``swarm peer set-address``: the ledger lists a member somewhere else. The others drop
    their connections to it and the next transfer dials the new address (here a relay)."""
    client, server = identities(2)
    cport, sport = free_port(), free_port()
    relay = FreezableRelay(sport)

    async def body() -> None:
        async with relay.running():
            view = StaticMembershipSource([make_member(client, cport), make_member(server, sport)])
            async with (
                # transfers dial on demand only: the server does not dial the client back
                open_p2p(client, config_for(cport, connect_to_members=False), view) as c,
                open_p2p(server, config_for(sport, connect_to_members=False), view) as s,
            ):
                s.accept_pushes(BlobKind.UPDATE, lambda request: None, 1 << 20)
                await c.push_update(s.address, 1, b"direct")
                assert relay.connections == 0
                view.members = [make_member(client, cport), make_member(server, relay.port)]
                c.watcher.poke()
                s.watcher.poke()
                await _until(
                    lambda: c.members()[s.address].multiaddrs[0].endswith(f"/{relay.port}")
                )
                await c.push_update(s.address, 2, b"through the relay")
                assert relay.connections >= 1
                assert len(s.store.find(kind=BlobKind.UPDATE)) == 2

    run_trio(body)


# --- one peer per port --------------------------------------------------------------------


def test_raw_libp2p_lets_two_hosts_listen_on_one_port() -> None:
    """Canary for STACK.md: py-libp2p's listener sets SO_REUSEPORT, so without our check a
    second host listens on a port in use. If this starts failing, libp2p fixed it."""
    a, b = identities(2)
    port = free_port()
    gate = MembershipGate()

    async def body() -> None:
        addr = [multiaddr.Multiaddr(loopback_addr(port))]
        first, second = build_libp2p_host(a, gate), build_libp2p_host(b, gate)
        async with first.run(listen_addrs=addr), second.run(listen_addrs=addr):
            network: Any = second.get_network()
            assert network.listeners

    run_trio(body)


@pytest.mark.parametrize("second", ["/ip4/127.0.0.1/tcp/{}", "/ip4/0.0.0.0/tcp/{}"])
def test_a_port_in_use_is_refused_before_listening(second: str) -> None:
    first_id, second_id = identities(2)
    port = free_port()
    gate = MembershipGate()

    async def body() -> None:
        async with P2PHost(first_id, gate, [loopback_addr(port)]).running():
            with pytest.raises(PortInUseError, match=f"port {port} is already in use"):
                async with P2PHost(second_id, gate, [second.format(port)]).running():
                    pass  # pragma: no cover

    run_trio(body)


def test_any_listener_on_the_port_counts_and_a_closed_one_does_not() -> None:
    port = free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        with pytest.raises(PortInUseError):
            check_can_listen(f"/ip4/0.0.0.0/tcp/{port}")
    check_can_listen(f"/ip4/0.0.0.0/tcp/{port}")
    check_can_listen("/ip4/127.0.0.1/tcp/0")  # any free port: nothing to check


def test_an_address_not_on_this_host_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not an address of this host"):
        check_can_listen(f"/ip4/192.0.2.77/tcp/{free_port()}")  # TEST-NET-1


def test_the_port_is_free_again_after_the_host_stops() -> None:
    """py-libp2p 0.8.1 leaves its listening sockets open after ``host.run`` ends; the host
    closes them, so a restart in the same process can listen again."""
    ident = Identity.generate()
    port = free_port()
    gate = MembershipGate()

    async def body() -> None:
        async with P2PHost(ident, gate, [loopback_addr(port)]).running():
            pass
        check_can_listen(loopback_addr(port))
        async with P2PHost(ident, gate, [loopback_addr(port)]).running():
            pass

    run_trio(body)


# --- one peer per key ----------------------------------------------


def _leaves(group: BaseException) -> list[BaseException]:
    if isinstance(group, BaseExceptionGroup):
        return [leaf for inner in group.exceptions for leaf in _leaves(inner)]
    return [group]


def _raised_inside(body: Callable[[], Any]) -> SwarmError:
    """The SwarmError a trio body raised (trio wraps errors of nursery tasks in groups)."""
    with pytest.raises(BaseException) as caught:
        run_trio(body)
    errors = [e for e in _leaves(caught.value) if isinstance(e, SwarmError)]
    assert errors, caught.value
    return errors[0]


def test_a_second_peer_on_one_key_is_refused() -> None:
    """The same key started again elsewhere (another port, another host): the ledger's
    address answers with our key, so the second refuses to start; the first is unharmed."""
    ident, other = identities(2)
    ledger_port, second_port, other_port = free_port(), free_port(), free_port()
    view = StaticMembershipSource([make_member(ident, ledger_port), make_member(other, other_port)])
    refused: list[BaseException] = []

    async def body() -> None:
        async with (
            open_p2p(ident, config_for(ledger_port), view) as first,
            open_p2p(other, config_for(other_port), view) as third,
        ):
            try:
                async with open_p2p(ident, config_for(second_port), view):
                    pass  # pragma: no cover
            except BaseException as exc:  # trio groups it
                refused.append(exc)
            assert (await third.status(first.address))["peer_id"] == ident.peer_id

    run_trio(body)
    errors = [e for e in _leaves(refused[0]) if isinstance(e, SwarmError)]
    assert len(errors) == 1 and isinstance(errors[0], DuplicatePeerError)
    assert f"/tcp/{ledger_port}" in str(errors[0])
    assert "already runs at" in str(errors[0])


def test_something_else_at_our_ledger_address_is_not_a_twin() -> None:
    """Another member's peer (another key) answers at the address the ledger lists for us (a
    stale entry): not a duplicate of us, we start."""
    ident, other = identities(2)
    shared, ours = free_port(), free_port()
    view = StaticMembershipSource([make_member(ident, shared), make_member(other, shared)])

    async def body() -> None:
        async with (
            open_p2p(other, config_for(shared), view),
            open_p2p(ident, config_for(ours), view) as me,
        ):
            assert me.addrs()

    run_trio(body)


def test_a_restart_finds_no_twin_and_pays_no_probe() -> None:
    """Nothing listens at our ledger address (the usual restart): a plain TCP connect is
    refused at once, no libp2p probe runs."""
    ident = Identity.generate()
    port = free_port()
    view = StaticMembershipSource([member_of_identity(ident, [loopback_addr(port)])])

    async def body() -> None:
        started = trio.current_time()
        async with open_p2p(ident, config_for(port), view):
            pass
        assert trio.current_time() - started < 2.0

    run_trio(body)
