"""P2PService in one process: members connect and serve, the watcher, clean shutdown, no pubsub."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio

from swarm.errors import PeerUnreachableError
from swarm.identity import Identity
from swarm.p2p.config import P2PConfig
from swarm.p2p.membership import StaticMembershipSource
from swarm.p2p.service import P2PService, open_p2p
from swarm.p2p.store import BlobKind
from tests.p2p.helpers import config_for, free_port, identities, make_member, run_trio


def test_members_connect_and_serve_a_model() -> None:
    ids = identities(3)
    ports = [free_port() for _ in ids]
    source = StaticMembershipSource([make_member(i, p) for i, p in zip(ids, ports, strict=True)])

    async def body() -> None:
        async with (
            open_p2p(ids[0], config_for(ports[0]), source) as a,
            open_p2p(ids[1], config_for(ports[1]), source) as b,
            open_p2p(ids[2], config_for(ports[2]), source) as c,
        ):
            with trio.fail_after(20):
                await a.wait_connected({b.address, c.address})
                await b.wait_connected({c.address})
            ref = await a.offer(BlobKind.MODEL, 0, b"weights")
            model = await c.fetch_model(a.address, ref.digest, max_size=100)
            assert model == b"weights"
            assert (await b.status(c.address))["connected_members"] == 2

    run_trio(body)


def test_a_removed_member_is_cut_off() -> None:
    """The ledger removes a member: its open connection is closed within a poll, and its new
    connections are refused."""
    removed, keeper = identities(2)
    ports = [free_port(), free_port()]
    members = [make_member(removed, ports[0]), make_member(keeper, ports[1])]
    keepers_view = StaticMembershipSource(members)
    removed_view = StaticMembershipSource(members)  # the removed peer still thinks it belongs

    async def body() -> None:
        async with (
            open_p2p(removed, config_for(ports[0]), removed_view) as gone,
            open_p2p(keeper, config_for(ports[1]), keepers_view) as kept,
        ):
            kept.accept_pushes(BlobKind.UPDATE, lambda request: None, 1 << 20)
            with trio.fail_after(20):
                await kept.wait_connected({gone.address})
            await gone.push_update(kept.address, 1, b"before")
            keepers_view.members = [members[1]]  # the admin removed it on the ledger
            with trio.fail_after(10):
                while kept.connected_members() or gone.host.is_connected(members[1]):
                    await trio.sleep(0.05)
            with pytest.raises(PeerUnreachableError):
                await gone.push_update(kept.address, 2, b"after")
            assert [r.round_id for r in kept.store.find()] == [1]

    run_trio(body)


def test_shutdown_with_live_connections_is_clean() -> None:
    """Leaving open_p2p with connections and transfers' streams open ends cleanly, twice in a
    row (leftover tasks or listeners would show on the second run)."""
    a, b = identities(2)

    async def session(ports: list[int]) -> None:
        source = StaticMembershipSource([make_member(a, ports[0]), make_member(b, ports[1])])
        async with (
            open_p2p(a, config_for(ports[0]), source) as na,
            open_p2p(b, config_for(ports[1]), source) as nb,
        ):
            with trio.fail_after(20):
                await na.wait_connected({nb.address})
            await nb.offer(BlobKind.MODEL, 0, b"m")
            await na.status(nb.address)

    for _ in range(2):
        ports = [free_port(), free_port()]
        run_trio(functools.partial(session, ports))


def _handled_protocols(service: P2PService) -> list[str]:
    mux: Any = service.host.libp2p.get_mux()
    return [str(p) for p in mux.handlers if p is not None]


def test_no_pubsub_protocol_is_served() -> None:
    """Fault: py-libp2p's pubsub stream handler lets one malformed protobuf on /meshsub/1.1.0
    (or /floodsub) stop the whole host, and any member can open such a stream. The service must
    not build pubsub at all: no meshsub/floodsub handler is registered while it runs, and a
    member asking for /meshsub/1.1.0 is told the protocol is not spoken, the host serving on."""
    a, b = identities(2)
    ports = [free_port(), free_port()]
    source = StaticMembershipSource([make_member(a, ports[0]), make_member(b, ports[1])])

    async def body() -> None:
        async with (
            open_p2p(a, config_for(ports[0]), source) as na,
            open_p2p(b, config_for(ports[1]), source) as nb,
        ):
            served = _handled_protocols(na)
            assert "/swarm/update/1.0.0" in served
            assert not [p for p in served if "meshsub" in p or "floodsub" in p], served
            for protocol in ("/meshsub/1.1.0", "/meshsub/1.0.0", "/floodsub/1.0.0"):
                with pytest.raises(PeerUnreachableError):
                    await nb.host.open_stream(na.members()[a.address], protocol, timeout_s=5)
            assert (await nb.status(na.address))["address"] == na.address

    run_trio(body)


def test_config_has_no_pubsub_settings() -> None:
    """Fault: announcement settings (topic, heartbeat, announcement size) kept around after
    gossipsub is gone would suggest a pubsub that no longer runs."""
    for name in ("topic", "heartbeat_s", "max_announcement_bytes"):
        with pytest.raises(TypeError):
            P2PConfig(**{name: 1})  # type: ignore[arg-type]
    service = P2PService(Identity.generate(), P2PConfig(), StaticMembershipSource([]))
    assert not hasattr(service, "announce") and not hasattr(service, "announcements")
