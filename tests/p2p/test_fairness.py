"""Inbound pushes are shared fairly: one member cannot hold every slot of a merge peer.

A member that opens many push streams and then trickles their payloads would, with only a global
limit, hold every inbound slot for as long as its payloads' deadlines and starve honest members.
Each member may have ``max_inbound_per_sender`` pushes in flight (more are refused at once,
``sender_busy``), and a push that waits longer than ``slot_wait_s`` for a slot is refused
(``busy``); both refusals are retried by the sender's retry loop.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from swarm.errors import TransferRefusedError
from swarm.identity import Identity
from swarm.p2p.config import TransferPolicy
from swarm.p2p.framing import read_message, write_message
from swarm.p2p.host import P2PHost, reset_quietly
from swarm.p2p.protocols import (
    RETRYABLE_REFUSALS,
    UPDATE_PROTOCOL,
    ProtocolServer,
    PushRequest,
    StreamIO,
    push,
)
from swarm.p2p.store import BlobKind, MemoryBlobStore, content_digest
from tests.p2p.helpers import free_port, identities, make_member, run_trio, serving_host

#: the merge peer gives a payload this long to arrive: a trickler holds its slot all that time
SLOW_READ_POLICY = TransferPolicy(base_timeout_s=60.0, connect_timeout_s=5.0)
#: what the honest member uses: one try, so a refusal or a timeout shows as it is
HONEST = TransferPolicy(attempts=1, base_timeout_s=20.0, connect_timeout_s=5.0)
TRICKLED_SIZE = 4 << 20


@dataclass
class Scene:
    flooder: P2PHost
    honest: P2PHost
    merge: P2PHost
    protocols: ProtocolServer
    store: MemoryBlobStore
    #: the flooder's streams run here; cancelled (streams reset) when the scene ends
    nursery: trio.Nursery
    flooding: list[trio.CancelScope] = field(default_factory=list)

    def start_trickling(self, round_id: int, answers: list[dict[str, Any]]) -> None:
        scope = trio.CancelScope()
        self.flooding.append(scope)

        async def run() -> None:
            with scope:
                await trickle_push(self.flooder, self.merge, round_id, answers)

        self.nursery.start_soon(run)

    def stop_flooding(self) -> None:
        """The flooder gives up: its streams are reset, its slots free up."""
        for scope in self.flooding:
            scope.cancel()


@asynccontextmanager
async def merge_peer_and_two_members(**server_options: Any) -> AsyncIterator[Scene]:
    """A flooding member, an honest one and a merge peer that accepts updates."""
    ids: list[Identity] = identities(3)
    ports = [free_port() for _ in ids]
    members = [make_member(i, p) for i, p in zip(ids, ports, strict=True)]
    store = MemoryBlobStore()
    async with (
        serving_host(ids[0], ports[0], members) as (flooder, _),
        serving_host(ids[1], ports[1], members) as (honest, _),
        serving_host(ids[2], ports[2], members, store, SLOW_READ_POLICY, **server_options) as (
            merge,
            protocols,
        ),
        trio.open_nursery() as nursery,
    ):
        protocols.accept_pushes(BlobKind.UPDATE, lambda request: None, 64 << 20)
        yield Scene(flooder, honest, merge, protocols, store, nursery)
        nursery.cancel_scope.cancel()


async def trickle_push(
    flooder: P2PHost, merge: P2PHost, round_id: int, answers: list[dict[str, Any]]
) -> None:
    """Open a push, and if it is accepted, send its payload a byte at a time, slowly."""
    stream = await flooder.open_stream(flooder.member(merge.address), UPDATE_PROTOCOL, timeout_s=10)
    try:
        await _trickle(StreamIO(stream), round_id, answers)
    finally:
        await reset_quietly(stream)  # the flooder gives up: the merge peer hears it


async def _trickle(io: StreamIO, round_id: int, answers: list[dict[str, Any]]) -> None:
    header = {
        "v": 1,
        "kind": "update",
        "round": round_id,
        "digest": content_digest(BlobKind.UPDATE, b"t" * TRICKLED_SIZE).hex(),
        "size": TRICKLED_SIZE,
    }
    await write_message(io, header)
    answer = await read_message(io)
    answers.append(answer)
    if not answer.get("ok"):
        return
    await io.write(struct.pack(">I", 1 << 20))  # a chunk that will take forever to fill
    while True:
        await io.write(b"t")
        await trio.sleep(0.2)


async def flood(scene: Scene, streams: int) -> list[dict[str, Any]]:
    """Start ``streams`` trickling pushes; return once each has its first answer."""
    answers: list[dict[str, Any]] = []
    for n in range(streams):
        scene.start_trickling(1000 + n, answers)
    while len(answers) < streams:
        await trio.sleep(0.02)
    return answers


def run(body: Callable[[], Awaitable[None]]) -> None:
    run_trio(body, deadline_s=90)


def test_a_member_flooding_trickled_pushes_does_not_starve_an_honest_one() -> None:
    """Fault: with only the global limit (8 slots), a member that opens 40 push streams and
    trickles their bytes holds every slot for its payloads' whole deadline (60 s here), and an
    honest member's push waits behind it until the honest sender times out. With a per-sender
    cap of 2, 38 of the 40 are refused at once (sender_busy) and the honest push completes."""
    update = b"honest update" * 1000

    async def body() -> None:
        async with merge_peer_and_two_members() as scene:
            answers = await flood(scene, 40)
            refused = [a for a in answers if not a.get("ok")]
            assert len(refused) == 38
            assert {a["code"] for a in refused} == {"sender_busy"}
            assert "retry" in refused[0]["reason"]
            assert scene.protocols.inbound_in_flight(scene.flooder.address) == 2
            # a safety net far above what the push needs, and far below the 60 s for which the
            # flooder's slots would otherwise be held
            with trio.fail_after(3 * scene.protocols.slot_wait_s):
                await push(
                    scene.honest, scene.merge.address, BlobKind.UPDATE, 1, update, policy=HONEST
                )
            assert scene.store.get(content_digest(BlobKind.UPDATE, update)) == update

    run(body)


def test_a_push_that_waits_too_long_for_a_slot_is_refused_busy() -> None:
    """Fault: a push waited for a free slot without bound, so its sender timed out with nothing
    said. With every slot held, it is refused "busy" after slot_wait_s (retryable), long
    before the sender's own deadline."""

    async def body() -> None:
        async with merge_peer_and_two_members(max_concurrent_inbound=1, slot_wait_s=0.5) as scene:
            answers = await flood(scene, 1)
            assert answers[0]["ok"]  # it holds the only slot, trickling
            with (
                trio.fail_after(HONEST.base_timeout_s / 2),
                pytest.raises(TransferRefusedError) as info,
            ):
                await push(
                    scene.honest, scene.merge.address, BlobKind.UPDATE, 1, b"u", policy=HONEST
                )
            assert info.value.code == "busy"
            assert info.value.code in RETRYABLE_REFUSALS
            assert scene.store.find() == []

    run(body)


def test_busy_refusals_are_retried_within_the_attempts() -> None:
    """Fault: a busy refusal raised at once would make every caller write its own retry loop.
    It is retried like a timeout, up to the policy's attempts: while the slot stays taken, the
    last busy refusal is raised; once it frees up, a push gets in."""
    asked: list[PushRequest] = []
    three = TransferPolicy(attempts=3, base_timeout_s=10.0, backoff_s=0.05)

    async def body() -> None:
        async with merge_peer_and_two_members(max_concurrent_inbound=1, slot_wait_s=0.3) as scene:
            scene.protocols.accept_pushes(BlobKind.UPDATE, asked.append, 64 << 20)
            await flood(scene, 1)
            with pytest.raises(TransferRefusedError) as info:
                await push(
                    scene.honest, scene.merge.address, BlobKind.UPDATE, 1, b"u", policy=three
                )
            assert info.value.code == "busy"
            assert [r.sender for r in asked].count(scene.honest.address) == 3
            scene.stop_flooding()
            await push(scene.honest, scene.merge.address, BlobKind.UPDATE, 1, b"u", policy=three)
            assert len(scene.store.find(sender=scene.honest.address)) == 1

    run(body)
