"""Announcements: encoding, the 64 KiB limit, and the validator that drops non-members'."""

from __future__ import annotations

import pytest
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from swarm.errors import PayloadTooLargeError, ProtocolViolationError
from swarm.identity import Identity
from swarm.p2p.announce import Announcement, AnnouncementKind, Announcer
from swarm.p2p.config import MAX_ANNOUNCEMENT_BYTES
from swarm.p2p.host import P2PHost
from swarm.p2p.membership import MembershipGate, member_of_identity
from tests.p2p.helpers import identities, loopback_addr, run_trio


def test_announcement_round_trip() -> None:
    sent = Announcement(AnnouncementKind.AGGREGATE_READY, 4, {"digest": "ab" * 32}, 1.5)
    assert Announcement.decode(sent.encode()) == sent


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"v": 2, "kind": "x", "round": 1}',
        b'{"v": 1, "round": 1}',
        b'{"v": 1, "kind": "x", "round": true}',
        b'{"v": 1, "kind": "x", "round": 1, "body": []}',
    ],
)
def test_malformed_announcements_are_violations(data: bytes) -> None:
    with pytest.raises(ProtocolViolationError):
        Announcement.decode(data)


def make_announcer(me: Identity, *members: Identity) -> Announcer:
    gate = MembershipGate()
    gate.update([member_of_identity(m) for m in (me, *members)])
    return Announcer(P2PHost(me, gate, [loopback_addr(0)]), topic="t")


def test_publishing_over_64_kib_is_refused_before_gossipsub_sees_it() -> None:
    """py-libp2p's gossipsub reports success for ~1 MiB messages and then drops them."""
    announcer = make_announcer(Identity.generate())
    big = Announcement("round_event", 1, {"pad": "x" * MAX_ANNOUNCEMENT_BYTES})
    with pytest.raises(PayloadTooLargeError):
        run_trio(lambda: announcer.publish(big))  # the pubsub service is not even running


def message(origin: Identity, data: bytes) -> rpc_pb2.Message:
    return rpc_pb2.Message(
        data=data, topicIDs=["t"], from_id=ID.from_base58(origin.peer_id).to_bytes(), seqno=b"1"
    )


def test_validator_keeps_members_and_drops_the_rest() -> None:
    me, member, stranger = identities(3)
    announcer = make_announcer(me, member)
    good = Announcement("update_sent", 1).encode()
    from_member = ID.from_base58(member.peer_id)
    from_stranger = ID.from_base58(stranger.peer_id)
    assert announcer._validate(from_member, message(member, good))
    assert not announcer._validate(from_member, message(stranger, good))  # signed by a stranger
    assert not announcer._validate(from_stranger, message(member, good))  # relayed by one
    assert not announcer._validate(from_member, message(member, b"x" * (64 * 1024 + 1)))
    assert not announcer._validate(from_member, message(member, b"garbage"))
    assert announcer.dropped == 4
