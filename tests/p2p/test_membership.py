"""The membership gate, its sources and the watcher that follows the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair as ed25519_pair
from libp2p.peer.id import ID

from swarm.identity import Identity
from swarm.ledger.types import Member
from swarm.p2p.membership import (
    JsonFileMembershipSource,
    LedgerMembershipSource,
    MembershipChange,
    MembershipGate,
    MembershipWatcher,
    StaticMembershipSource,
    member_of_identity,
    read_members_file,
    write_members_file,
)
from tests.p2p.helpers import identities, run_trio


def test_gate_derives_the_address_from_the_peer_id() -> None:
    a, b, stranger = identities(3)
    gate = MembershipGate()
    assert not gate.is_member_peer(a.peer_id)  # fails closed before the first poll
    change = gate.update([member_of_identity(a), member_of_identity(b)])
    assert change == MembershipChange(frozenset({a.address, b.address}), frozenset())
    assert gate.member_of_peer(a.peer_id) == member_of_identity(a)
    assert gate.address_of_peer(stranger.peer_id) == stranger.address
    assert not gate.is_member_peer(stranger.peer_id)


def test_inactive_members_and_non_secp256k1_peers_are_not_members() -> None:
    a = Identity.generate()
    gate = MembershipGate()
    gate.update([member_of_identity(a, active=False)])
    assert not gate.is_member_peer(a.peer_id)
    ed_peer = str(ID.from_pubkey(ed25519_pair().public_key))
    assert gate.address_of_peer(ed_peer) is None
    assert not gate.is_member_peer(ed_peer)


def test_update_reports_removals() -> None:
    a, b = identities(2)
    gate = MembershipGate()
    gate.update([member_of_identity(a), member_of_identity(b)])
    change = gate.update([member_of_identity(b)])
    assert change == MembershipChange(frozenset(), frozenset({a.address}))


def test_members_file_round_trip(tmp_path: Path) -> None:
    a, b = identities(2)
    members = [
        member_of_identity(a, ["/ip4/127.0.0.1/tcp/1"], name="A"),
        member_of_identity(b, [], name="B", active=False, added_at=7),
    ]
    path = tmp_path / "members.json"
    write_members_file(path, members)
    assert read_members_file(path) == members
    assert JsonFileMembershipSource(path).active_members() == members[:1]


class FakeLedger:
    def __init__(self, members: Sequence[Member]) -> None:
        self.list = list(members)

    def members(self) -> list[Member]:
        return self.list


def test_ledger_adapter_keeps_active_members_only() -> None:
    a, b = identities(2)
    ledger = FakeLedger([member_of_identity(a), member_of_identity(b, active=False)])
    assert LedgerMembershipSource(ledger).active_members() == [member_of_identity(a)]


def test_ledger_adapter_on_the_real_ledger_client(consortium: object) -> None:
    """LedgerClient.members() on the embedded chain: removal shows as a gate change."""
    from tests.conftest import Consortium

    assert isinstance(consortium, Consortium)
    source = LedgerMembershipSource(consortium.admin)
    gate = MembershipGate()
    gate.update(source.active_members())
    for hospital in consortium.hospitals:
        assert gate.is_member_peer(hospital.peer_id)
    removed = consortium.hospitals[0]
    consortium.admin.remove_member(removed.address)
    change = gate.update(source.active_members())
    assert change.removed == {removed.address}
    assert not gate.is_member_peer(removed.peer_id)


class FlakySource:
    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.fail = False

    def active_members(self) -> Sequence[Member]:
        if self.fail:
            raise ConnectionError("ledger unreachable")
        return self.members


def test_watcher_follows_the_source_and_keeps_the_list_when_a_poll_fails() -> None:
    a, b = identities(2)
    source = FlakySource([member_of_identity(a), member_of_identity(b)])
    gate = MembershipGate()
    watcher = MembershipWatcher(source, gate, interval_s=0.02)
    changes: list[MembershipChange] = []

    async def listener(change: MembershipChange) -> None:
        changes.append(change)

    watcher.add_listener(listener)

    async def body() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(watcher.run)
            assert set(gate.members) == {a.address, b.address}
            source.fail = True
            polls = watcher.polls
            while watcher.last_error is None:
                await trio.sleep(0.01)
            assert set(gate.members) == {a.address, b.address}  # a hiccup cuts nobody off
            source.fail = False
            source.members = [member_of_identity(b)]
            while gate.member(a.address) is not None:
                await trio.sleep(0.01)
            assert watcher.polls > polls
            nursery.cancel_scope.cancel()

    run_trio(body, deadline_s=10)
    assert changes[-1] == MembershipChange(frozenset(), frozenset({a.address}))


def test_watcher_starts_closed_when_the_first_poll_fails() -> None:
    source = FlakySource([member_of_identity(Identity.generate())])
    source.fail = True
    gate = MembershipGate()
    watcher = MembershipWatcher(source, gate, interval_s=10)

    async def body() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(watcher.run)
            assert gate.members == {}
            source.fail = False
            watcher.poke()
            while not gate.members:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()

    run_trio(body, deadline_s=10)


def test_watcher_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError):
        MembershipWatcher(StaticMembershipSource([]), MembershipGate(), interval_s=0)
