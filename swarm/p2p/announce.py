"""Small signed announcements over gossipsub: round events, "update sent", "aggregate ready".

Gossipsub is only for these: py-libp2p 0.8.1 reports success on a ~1 MiB publish and then drops
it (STACK.md), so announcements are capped at 64 KiB, checked before publishing and again when
received. Payloads travel over streams (protocols.py); an announcement only says where to look.

Every message is signed by gossipsub with the peer's key (strict signing, checked against the
sender's PeerID); the topic validator then drops messages whose signer, or forwarder, is not an
active member, and messages that are too large or not a valid announcement.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from swarm.errors import PayloadTooLargeError, ProtocolViolationError
from swarm.p2p.config import MAX_ANNOUNCEMENT_BYTES
from swarm.p2p.host import P2PHost

logger = logging.getLogger(__name__)

GOSSIPSUB_PROTOCOL = "/meshsub/1.1.0"
ANNOUNCEMENT_VERSION = 1


class AnnouncementKind(StrEnum):
    ROUND_EVENT = "round_event"  # a round opened, closed, lapsed, finalized (ledger events, echoed)
    UPDATE_SENT = "update_sent"  # a participant pushed its update to the merge peer
    AGGREGATE_READY = "aggregate_ready"  # the merge peer can serve the round's aggregate
    MODEL_READY = "model_ready"  # a peer can serve a finalized model


@dataclass(frozen=True)
class Announcement:
    kind: str
    round_id: int
    body: Mapping[str, Any] = field(default_factory=dict)
    sent_at: float = 0.0  # unix time, set on publish; informational (clocks differ)

    def encode(self) -> bytes:
        return json.dumps(
            {
                "v": ANNOUNCEMENT_VERSION,
                "kind": self.kind,
                "round": self.round_id,
                "body": dict(self.body),
                "sent_at": self.sent_at,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Announcement:
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProtocolViolationError("announcement is not JSON") from exc
        if not isinstance(raw, dict) or raw.get("v") != ANNOUNCEMENT_VERSION:
            raise ProtocolViolationError("not a version-1 announcement")
        kind, round_id, body = raw.get("kind"), raw.get("round"), raw.get("body", {})
        sent_at = raw.get("sent_at", 0.0)
        if not isinstance(kind, str) or not isinstance(round_id, int) or isinstance(round_id, bool):
            raise ProtocolViolationError("announcement without a kind and a round")
        if not isinstance(body, dict) or not isinstance(sent_at, int | float):
            raise ProtocolViolationError("announcement body is not an object")
        return cls(kind=kind, round_id=round_id, body=body, sent_at=float(sent_at))


@dataclass(frozen=True)
class ReceivedAnnouncement:
    sender: str  # checksummed address of the member whose key signed it
    announcement: Announcement


class Announcer:
    """Gossipsub on a P2PHost: publish announcements, and hand members' ones to subscribers."""

    def __init__(
        self,
        host: P2PHost,
        *,
        topic: str,
        heartbeat_s: int = 1,
        max_bytes: int = MAX_ANNOUNCEMENT_BYTES,
    ) -> None:
        if not 0 < max_bytes <= MAX_ANNOUNCEMENT_BYTES:
            raise ValueError(f"announcements are limited to {MAX_ANNOUNCEMENT_BYTES} bytes")
        self.host = host
        self.topic = topic
        self.max_bytes = max_bytes
        self.dropped = 0  # messages refused by the validator (non-member, too large, malformed)
        self.gossipsub = GossipSub(
            protocols=[TProtocol(GOSSIPSUB_PROTOCOL)],
            degree=6,
            degree_low=4,
            degree_high=12,
            # the default is 120 s: a mesh would take minutes to form and repair
            heartbeat_interval=heartbeat_s,
            heartbeat_initial_delay=0.1,
            # every peer is an authenticated member; IP-diversity eclipse protection would
            # only starve the mesh of hospitals behind one NAT, or of peers on one test machine
            eclipse_protection_enabled=False,
        )
        self.pubsub = Pubsub(host.libp2p, self.gossipsub, strict_signing=True)
        self.pubsub.set_topic_validator(topic, self._validate, False)
        self._subscribers: list[trio.MemorySendChannel[ReceivedAnnouncement]] = []

    def _validate(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        """Topic validator (sync): signer and forwarder are members, size and shape are right."""
        origin = str(ID(msg.from_id))
        reason = None
        if len(msg.data) > self.max_bytes:
            reason = f"{len(msg.data)} bytes"
        elif not self.host.gate.is_member_peer(origin):
            reason = f"signed by non-member {origin}"
        elif not self.host.gate.is_member_peer(str(forwarder)) and str(forwarder) != str(
            self.host.libp2p.get_id()
        ):
            reason = f"forwarded by non-member {forwarder}"
        else:
            try:
                Announcement.decode(msg.data)
            except ProtocolViolationError as exc:
                reason = str(exc)
        if reason is not None:
            self.dropped += 1
            logger.info("dropping an announcement: %s", reason)
            return False
        return True

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Announcer]:
        """Run pubsub while the block runs. The caller must close connections before leaving
        it: pubsub stopping with live connections can crash on shutdown (STACK.md)."""
        async with (
            background_trio_service(self.pubsub),
            background_trio_service(self.gossipsub),
            trio.open_nursery() as nursery,
        ):
            await self.pubsub.wait_until_ready()
            subscription = await self.pubsub.subscribe(self.topic)
            nursery.start_soon(self._pump, subscription)
            try:
                yield self
            finally:
                nursery.cancel_scope.cancel()
                for channel in self._subscribers:
                    channel.close()

    async def _pump(self, subscription: Any) -> None:
        own = self.host.peer_id
        while True:
            msg = await subscription.get()
            origin = str(ID(msg.from_id))
            if origin == own:
                continue
            sender = self.host.gate.address_of_peer(origin)
            try:
                announcement = Announcement.decode(msg.data)
            except ProtocolViolationError:  # the validator already refused these
                continue
            if sender is None:
                continue
            received = ReceivedAnnouncement(sender, announcement)
            for channel in list(self._subscribers):
                try:
                    channel.send_nowait(received)
                except trio.WouldBlock:
                    # a subscriber that does not keep up loses announcements, not the network
                    logger.warning("an announcement subscriber is full; dropping one")
                except trio.BrokenResourceError:
                    self._subscribers.remove(channel)

    def subscribe(self, buffer: int = 256) -> trio.MemoryReceiveChannel[ReceivedAnnouncement]:
        """A channel of every member's announcements from now on (not our own)."""
        send, receive = trio.open_memory_channel[ReceivedAnnouncement](buffer)
        self._subscribers.append(send)
        return receive

    async def publish(self, announcement: Announcement) -> None:
        if announcement.sent_at == 0.0:
            announcement = Announcement(
                announcement.kind, announcement.round_id, announcement.body, time.time()
            )
        data = announcement.encode()
        if len(data) > self.max_bytes:
            raise PayloadTooLargeError(len(data), self.max_bytes, "announcement")
        await self.pubsub.publish(self.topic, data)
