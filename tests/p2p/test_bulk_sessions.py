"""Bulk sessions: a bulk connection kept after its transfer carries the same member's next
pushes (bulk.py, protocols.py). Real libp2p hosts and real TLS sockets, in one process.

Each test says which fault it exercises: a session that died (idle timeout, a broken
connection), a member removed while it holds sessions, a request that is not a push, a
refusal and a corrupted payload on a session."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from swarm.errors import TransferRefusedError
from swarm.ledger.types import Member
from swarm.p2p import bulk
from swarm.p2p.bulk import BulkChannel, BulkEndpoint
from swarm.p2p.disk_store import STAGING, DirectoryBlobStore
from swarm.p2p.membership import StaticMembershipSource
from swarm.p2p.service import P2PService, open_p2p
from swarm.p2p.store import BlobKind, content_digest
from tests.p2p.helpers import config_for, free_port, identities, make_member, run_trio
from tests.p2p.test_bulk import payload_of, push_not_matching_its_digest, services

MB = 1 << 20


def _endpoint(service: P2PService) -> BulkEndpoint:
    assert service.host.bulk is not None
    return service.host.bulk


def _stored_rounds(service: P2PService) -> list[int]:
    return sorted(ref.round_id for ref in service.store.find(kind=BlobKind.UPDATE))


async def _until(condition: Any, timeout_s: float = 10.0) -> None:
    with trio.fail_after(timeout_s):
        while not condition():
            await trio.sleep(0.02)


def test_a_members_next_push_travels_on_the_session_its_first_one_left() -> None:
    """No fault: the second and third pushes to a member reuse the TLS connection of the
    first (one connection admitted, two requests on it), and every payload lands intact."""
    payloads = [payload_of(3 * MB, seed) for seed in (1, 2, 3)]

    async def body() -> None:
        async with services(identities(2), [None, None]) as (sender, receiver):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            for round_id, payload in enumerate(payloads, start=1):
                await sender.push_update(receiver.address, round_id, payload)
            assert _endpoint(receiver).admitted == 1
            assert _endpoint(receiver).session_requests == 2
            assert _endpoint(receiver).session_count(sender.address) == (1, 0)
            assert _endpoint(sender).session_count(receiver.address) == (0, 1)
            for payload in payloads:
                digest = content_digest(BlobKind.UPDATE, payload)
                assert receiver.store.get(digest) == payload

    run_trio(body)


def test_a_session_idle_past_its_limit_is_closed_and_the_next_push_dials_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fault: a silent peer. The receiver closes a session nobody used for SESSION_IDLE_S;
    the caller sees it closed and pushes over a new connection, without an error."""
    monkeypatch.setattr(bulk, "SESSION_IDLE_S", 0.3)

    async def body() -> None:
        async with services(identities(2), [None, None]) as (sender, receiver):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            await sender.push_update(receiver.address, 1, payload_of(MB, 1))
            # the receiver answers, then keeps the session: it may not have it yet
            await _until(lambda: _endpoint(receiver).session_count(sender.address) == (1, 0))
            await _until(lambda: _endpoint(receiver).session_count(sender.address) == (0, 0))
            await sender.push_update(receiver.address, 2, payload_of(MB, 2))
            assert _endpoint(receiver).admitted == 2
            assert _endpoint(receiver).session_requests == 0
            assert _stored_rounds(receiver) == [1, 2]

    run_trio(body)


def test_a_push_on_a_session_that_broke_unseen_lands_over_a_new_stream(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: a dead connection the caller cannot tell from a live one (its probe is made to
    say "open"). The push on it fails, and the same attempt pushes over a new libp2p stream
    and bulk connection: the payload lands once, and the caller reports no error."""

    async def body() -> None:
        async with services(identities(2), [None, None]) as (sender, receiver):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            await sender.push_update(receiver.address, 1, payload_of(MB, 1))
            await _until(lambda: _endpoint(receiver).session_count(sender.address) == (1, 0))
            await _endpoint(receiver).end_sessions(sender.address)  # the receiver's end dies
            await _until(lambda: _endpoint(receiver).session_count(sender.address) == (0, 0))
            monkeypatch.setattr(BulkChannel, "idle_and_open", lambda self: True)
            payload = payload_of(2 * MB, 2)
            await sender.push_update(receiver.address, 2, payload)
            assert receiver.store.get(content_digest(BlobKind.UPDATE, payload)) == payload
            assert _endpoint(receiver).admitted == 2
            assert _stored_rounds(receiver) == [1, 2]

    with caplog.at_level("INFO", logger="swarm.p2p.protocols"):
        run_trio(body)
    assert "bulk session to" in caplog.text  # the push did go onto the dead session first


def test_a_member_removed_while_it_holds_a_session_is_refused_on_it() -> None:
    """Fault: a non-member. The receiver's gate stops counting the sender as a member before
    anything closed the sender's session (the next membership poll would): its push on that
    session is refused (``not_member``), nothing is stored, and the session is closed on both
    sides."""
    s, r = identities(2)
    ports = [free_port(), free_port()]
    members = [make_member(s, ports[0]), make_member(r, ports[1])]
    source = StaticMembershipSource(members)

    async def body() -> None:
        async with (
            open_p2p(s, config_for(ports[0], bulk_port=0), source) as sender,
            # polls the ledger once at start, then not within the test
            open_p2p(
                r, config_for(ports[1], bulk_port=0, membership_poll_s=600), source
            ) as receiver,
        ):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            await sender.push_update(receiver.address, 1, payload_of(MB, 1))
            assert _endpoint(sender).session_count(receiver.address) == (0, 1)
            receiver.gate.update([members[1]])
            with pytest.raises(TransferRefusedError) as refused:
                await sender.push_update(receiver.address, 2, payload_of(MB, 2))
            assert refused.value.code == "not_member"
            assert _stored_rounds(receiver) == [1]
            assert _endpoint(sender).session_count(receiver.address) == (0, 0)
            await _until(lambda: _endpoint(receiver).session_count(sender.address) == (0, 0))

    run_trio(body)


def test_the_ledger_removing_a_member_ends_its_sessions_both_ways() -> None:
    """Fault: a member removed on the ledger. Within a membership poll, the sessions it
    serves and the ones it holds to call the removed member are closed, not left open until
    they idle out."""
    a, b = identities(2)
    ports = [free_port(), free_port()]
    members: Sequence[Member] = [make_member(a, ports[0]), make_member(b, ports[1])]
    a_view = StaticMembershipSource(members)
    b_view = StaticMembershipSource(members)

    async def body() -> None:
        async with (
            open_p2p(a, config_for(ports[0], bulk_port=0), a_view) as na,
            open_p2p(b, config_for(ports[1], bulk_port=0), b_view) as nb,
        ):
            na.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            nb.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            await nb.push_update(na.address, 1, payload_of(MB, 1))  # b calls a
            await na.push_update(nb.address, 1, payload_of(MB, 2))  # a calls b
            await _until(lambda: _endpoint(na).session_count(nb.address) == (1, 1))
            a_view.members = [members[0]]  # a's ledger no longer lists b
            await _until(lambda: _endpoint(na).session_count(nb.address) == (0, 0))

    run_trio(body)


def test_a_session_request_that_is_not_a_push_is_refused_and_the_session_closed() -> None:
    """Fault: a misbehaving member sends something other than a push or a fetch on its
    session (a status request, then a push of a kind nobody pushes). Each is refused in one
    answer and the session closed; the receiver keeps serving."""

    async def body() -> None:
        async with services(identities(2), [None, None]) as (sender, receiver):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            bad_requests = [{"op": "status"}, {"op": "push", "kind": "model"}]
            for round_id, bad in enumerate(bad_requests, start=1):
                await sender.push_update(receiver.address, round_id, payload_of(MB, round_id))
                channel = await _endpoint(sender).take_session(receiver.address)
                assert channel is not None
                await channel.write_message(bad)
                answer = await channel.read_message()
                assert answer["ok"] is False and answer["code"] == "bad_request"
                await _until(lambda: _endpoint(receiver).session_count(sender.address) == (0, 0))
                await channel.aclose()
            await sender.push_update(receiver.address, 3, payload_of(MB, 3))
            assert _stored_rounds(receiver) == [1, 2, 3]

    run_trio(body)


def test_a_refused_or_corrupted_push_on_a_session_is_answered_and_the_next_push_lands() -> None:
    """Faults: a wrong round (the receiver's validator refuses it) and a payload that does
    not hash to the digest its sender committed, both sent on a session. Each is refused in
    one answer, nothing of them is stored, and the member's next push still lands (over a new
    connection: a refused push leaves no session behind)."""
    payload = payload_of(MB, 1)

    async def body() -> None:
        async with services(identities(2), [None, None]) as (sender, receiver):
            receiver.accept_pushes(
                BlobKind.UPDATE,
                lambda request: "round 7 is not open" if request.round_id == 7 else None,
                64 * MB,
            )
            await sender.push_update(receiver.address, 1, payload_of(MB, 2))
            with pytest.raises(TransferRefusedError) as refused:
                await sender.push_update(receiver.address, 7, payload)
            assert refused.value.code == "refused"
            await sender.push_update(receiver.address, 2, payload_of(MB, 3))
            await push_not_matching_its_digest(sender, receiver, 3, payload)
            await sender.push_update(receiver.address, 4, payload)
            assert _stored_rounds(receiver) == [1, 2, 4]
            assert _endpoint(receiver).session_requests == 2  # round 7, then round 3

    run_trio(body)


def test_a_push_smaller_than_the_bulk_threshold_travels_on_a_session_too() -> None:
    """Regression: a round context (~180 KB: not inline, under the bulk channel's threshold)
    pushed to a member the steward already held a session with was refused ``bad_request``
    on it, and every participant had to pull its key 2 s later. Sizes between the inline and
    the bulk thresholds, and under both (a 2 KB mask share: an inline push otherwise, on a new
    libp2p stream at five times the CPU), land on a session like any other."""
    sizes = [bulk.BULK_MIN_BYTES - 1, 180_000, 2_000]

    async def body() -> None:
        async with services(identities(2), [None, None]) as (sender, receiver):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            await sender.push_update(receiver.address, 1, payload_of(MB, 1))  # opens a session
            for round_id, size in enumerate(sizes, start=2):
                await sender.push_update(receiver.address, round_id, payload_of(size, round_id))
            assert _stored_rounds(receiver) == [1, 2, 3, 4]
            assert _endpoint(receiver).session_requests == 3  # the inline-size one too

    run_trio(body)


def test_a_push_on_a_session_lands_whole_in_a_disk_store(tmp_path: Path) -> None:
    """No fault: what peers run. The second push, on the session, is received into the disk
    store's staging folder while it is hashed, then renamed in: intact, nothing left staged."""
    store = DirectoryBlobStore(tmp_path)
    payloads = [payload_of(3 * MB, 1), payload_of(5 * MB, 2)]

    async def body() -> None:
        async with services(identities(2), [None, store]) as (sender, receiver):
            receiver.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            for round_id, payload in enumerate(payloads, start=1):
                await sender.push_update(receiver.address, round_id, payload)
            assert _endpoint(receiver).session_requests == 1
            for payload in payloads:
                assert store.get(content_digest(BlobKind.UPDATE, payload)) == payload
            staging = tmp_path / STAGING
            assert not staging.is_dir() or list(staging.iterdir()) == []

    run_trio(body)


def test_fetches_travel_on_a_session_and_leave_one_for_the_next() -> None:
    """No fault: a key holder that pushed its update to the merge peer fetches the aggregate
    on the session the push left, and a first fetch over a new bulk connection leaves a
    session for the next fetch (or push): one connection admitted for all four transfers."""
    models = [payload_of(2 * MB, seed) for seed in (1, 2)]

    async def body() -> None:
        async with services(identities(2), [None, None]) as (caller, provider):
            provider.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            refs = [await provider.offer(BlobKind.MODEL, n, m) for n, m in enumerate(models)]
            got = await caller.fetch_model(provider.address, refs[0].digest, max_size=64 * MB)
            assert got == models[0]
            assert _endpoint(caller).session_count(provider.address) == (0, 1)
            await _until(lambda: _endpoint(provider).session_count(caller.address) == (1, 0))
            got = await caller.fetch_model(provider.address, refs[1].digest, max_size=64 * MB)
            assert got == models[1]
            await caller.push_update(provider.address, 1, payload_of(MB, 3))
            got = await caller.fetch_model(provider.address, refs[0].digest, max_size=64 * MB)
            assert got == models[0]
            assert _endpoint(provider).admitted == 1
            assert _endpoint(provider).session_requests == 3

    run_trio(body)


def test_a_fetch_refused_on_a_session_leaves_it_usable() -> None:
    """Fault: a fetch of a blob the provider does not hold (a wrong digest). It is refused
    ``not_found`` on the session; nothing was in flight, so the session carries the next
    request."""

    async def body() -> None:
        async with services(identities(2), [None, None]) as (caller, provider):
            provider.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 * MB)
            await caller.push_update(provider.address, 1, payload_of(MB, 1))
            with pytest.raises(TransferRefusedError) as refused:
                await caller.fetch_model(provider.address, b"\x01" * 32, max_size=64 * MB)
            assert refused.value.code == "not_found"
            await caller.push_update(provider.address, 2, payload_of(MB, 2))
            assert _endpoint(provider).admitted == 1
            assert _endpoint(provider).session_requests == 2
            assert _stored_rounds(provider) == [1, 2]

    run_trio(body)
