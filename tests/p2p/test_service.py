"""P2PService with gossipsub, in one process: announcements, the watcher, clean shutdown."""

from __future__ import annotations

import functools

import pytest
import trio

from swarm.errors import PeerUnreachableError
from swarm.p2p.announce import Announcement, AnnouncementKind
from swarm.p2p.membership import StaticMembershipSource
from swarm.p2p.service import open_p2p
from swarm.p2p.store import BlobKind
from tests.p2p.helpers import config_for, free_port, identities, make_member, run_trio


def test_members_connect_announce_and_serve_a_model() -> None:
    ids = identities(3)
    ports = [free_port() for _ in ids]
    source = StaticMembershipSource([make_member(i, p) for i, p in zip(ids, ports, strict=True)])

    async def body() -> None:
        async with (
            open_p2p(ids[0], config_for(ports[0]), source) as a,
            open_p2p(ids[1], config_for(ports[1]), source) as b,
            open_p2p(ids[2], config_for(ports[2]), source) as c,
        ):
            inbox_b, inbox_c = b.announcements(), c.announcements()
            with trio.fail_after(20):
                await a.wait_connected({b.address, c.address})
                await b.wait_connected({c.address})
            ref = await a.offer(BlobKind.MODEL, 0, b"weights")
            # gossipsub needs a heartbeat or two to build its mesh; announce until heard
            with trio.fail_after(20):
                while True:
                    await a.announce(
                        Announcement(AnnouncementKind.MODEL_READY, 0, {"digest": ref.digest.hex()})
                    )
                    with trio.move_on_after(1):
                        got_b = await inbox_b.receive()
                        got_c = await inbox_c.receive()
                        break
            for got in (got_b, got_c):
                assert got.sender == a.address
                assert got.announcement.body == {"digest": ref.digest.hex()}
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


def test_shutdown_with_live_connections_and_pubsub_is_clean() -> None:
    """py-libp2p can crash at shutdown ("Nursery is closed to new arrivals") when pubsub stops
    with connections open; the service closes them first. Twice, to catch leftovers."""
    a, b = identities(2)

    async def session(ports: list[int]) -> None:
        source = StaticMembershipSource([make_member(a, ports[0]), make_member(b, ports[1])])
        async with (
            open_p2p(a, config_for(ports[0]), source) as na,
            open_p2p(b, config_for(ports[1]), source) as nb,
        ):
            with trio.fail_after(20):
                await na.wait_connected({nb.address})
            await na.announce(Announcement(AnnouncementKind.ROUND_EVENT, 1))
            await trio.sleep(0.3)  # let gossip traffic be in flight at exit

    for _ in range(2):
        ports = [free_port(), free_port()]
        run_trio(functools.partial(session, ports))
