"""The peer network as one object: host, membership watcher and stream protocols.

This is what the peer state machine holds::

    async with open_p2p(identity, config, LedgerMembershipSource(ledger)) as net:
        net.accept_pushes(BlobKind.UPDATE, validator, max_size)   # on the merge peer
        await net.push_update(merge_peer, round_id, ciphertext, digest=committed)
        aggregate = await net.fetch_aggregate(merge_peer, round_id, digest, max_size=limit)

Start-up order: the member list is read before the host listens (so the gate is never open to
everyone), a peer with our key already answering at our ledger address is refused, a port in use
is refused, then the host listens.
Shutdown order: connections are closed (bounded), then the host stops. No pubsub runs:
py-libp2p's pubsub stream handler lets one malformed protobuf stop the whole host (STACK.md).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from swarm.errors import DuplicatePeerError, PeerUnreachableError
from swarm.identity import Identity
from swarm.ledger.types import Member
from swarm.p2p import protocols
from swarm.p2p.bulk import BulkEndpoint
from swarm.p2p.config import P2PConfig, TransferPolicy, multiaddr_host
from swarm.p2p.host import P2PHost, own_key_answers_at
from swarm.p2p.membership import (
    MembershipChange,
    MembershipGate,
    MembershipSource,
    MembershipWatcher,
)
from swarm.p2p.protocols import (
    ProtocolServer,
    PushValidator,
    RoundKeyBundle,
    RoundKeyProvider,
    SizeLimit,
    StatusProvider,
)
from swarm.p2p.store import BlobKind, BlobRef, BlobStore, MemoryBlobStore, content_digest

if TYPE_CHECKING:
    # trio-typing's stubs (a dependency of libp2p) shadow trio's own annotations for mypy
    from trio_typing import TaskStatus

logger = logging.getLogger(__name__)


class P2PService:
    """A member's presence on the peer network. Build it, then ``run`` it (or ``open_p2p``)."""

    def __init__(
        self,
        identity: Identity,
        config: P2PConfig,
        membership: MembershipSource,
        store: BlobStore | None = None,
        *,
        status_provider: StatusProvider | None = None,
    ) -> None:
        self.identity = identity
        self.config = config
        self.gate = MembershipGate()
        self.watcher = MembershipWatcher(membership, self.gate, interval_s=config.membership_poll_s)
        self.host = P2PHost(identity, self.gate, config.listen_addrs, config.announce_addrs)
        self.store: BlobStore = store if store is not None else MemoryBlobStore()
        self.server = ProtocolServer(
            self.host,
            self.store,
            policy=config.transfer,
            max_concurrent_inbound=config.max_concurrent_inbound,
            max_inbound_per_sender=config.max_inbound_per_sender,
            slot_wait_s=config.inbound_slot_wait_s,
            max_concurrent_serves=config.max_concurrent_serves,
            status_provider=status_provider,
        )
        self.watcher.add_listener(self._on_membership_change)
        self._connect_now = trio.Event()
        self._outbound = trio.CapacityLimiter(config.max_concurrent_outbound)
        if config.bulk_port is not None:
            bind = multiaddr_host(config.listen_addrs[0])[1]
            self.host.bulk = BulkEndpoint(bind, config.bulk_port)

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``started()`` once listening with the member list loaded.

        Refuses to start (before listening) when a peer with our key already answers at the
        address the ledger lists for us (DuplicatePeerError), or when a listen port is in use
        already (PortInUseError).
        """
        self.server.install()
        await self.watcher.poll_once()
        await self._refuse_a_twin()
        async with self.host.running():
            self._log_addresses()
            try:
                async with trio.open_nursery() as nursery:
                    if self.host.bulk is not None:
                        await nursery.start(self.host.bulk.run)
                    await nursery.start(self.watcher.run)
                    if self.config.connect_to_members:
                        nursery.start_soon(self._keep_connected)
                    task_status.started()
                    await trio.sleep_forever()
            finally:
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(self.config.shutdown_timeout_s),
                ):
                    await self.host.close_all_connections()

    async def _refuse_a_twin(self) -> None:
        """DuplicatePeerError if a peer with our key answers where the ledger says we are."""
        twin = await own_key_answers_at(
            self.identity, self.gate, timeout_s=self.config.duplicate_probe_timeout_s
        )
        if twin:
            raise DuplicatePeerError(
                f"a peer with this key ({self.identity.address}) already runs at "
                f"{', '.join(twin)}, the address the ledger lists for it; stop it first"
            )

    def _log_addresses(self) -> None:
        me = self.gate.member(self.identity.address)
        listed = list(me.multiaddrs) if me is not None else []
        logger.info(
            "p2p up: %s as %s, listening on %s, announcing %s; the ledger lists %s",
            self.identity.address,
            self.identity.peer_id,
            ", ".join(self.host.addrs()),
            ", ".join(self.host.announced_addrs()) or "nothing",
            ", ".join(listed) or "nothing",
        )
        if me is not None and not listed:
            logger.warning(
                "the ledger lists no address for %s: other members cannot dial this peer "
                "(set one: swarm peer set-address)",
                self.identity.address,
            )

    async def _on_membership_change(self, change: MembershipChange) -> None:
        if self.host.bulk is not None:
            for address in change.removed | change.readdressed:
                await self.host.bulk.end_sessions(address)
        if change.removed:
            await self.host.disconnect_non_members()
        # a member that moved (swarm peer set-address) is dialed afresh where the ledger now
        # says, not reached over a connection to where it was
        for address in change.readdressed - {self.identity.address}:
            member = self.gate.member(address)
            if member is not None and self.host.is_connected(member):
                logger.info(
                    "%s now listed at %s: dropping its connections",
                    address,
                    ", ".join(member.multiaddrs) or "no address",
                )
                await self.host.drop_connections(member)
        if change.added or change.readdressed:
            self._connect_now.set()

    async def _keep_connected(self) -> None:
        """Hold a connection to every active member, so a transfer rarely waits for a dial.

        Of each pair, the member with the lower address dials (halves duplicate connections);
        transfers dial on demand either way.
        """
        while True:
            wanted = [
                m
                for m in self.gate.members.values()
                if m.address.lower() > self.identity.address.lower()
                and m.multiaddrs
                and not self.host.is_connected(m)
            ]
            if wanted:
                async with trio.open_nursery() as nursery:
                    for member in wanted:
                        nursery.start_soon(self._try_connect, member)
            with trio.move_on_after(self.config.membership_poll_s):
                await self._connect_now.wait()
            self._connect_now = trio.Event()

    async def _try_connect(self, member: Member) -> None:
        try:
            await self.host.connect(member, timeout_s=self.config.transfer.connect_timeout_s)
        except Exception as exc:  # PeerUnreachableError and whatever a dying dial raises
            logger.debug("cannot reach member %s yet: %s", member.address, exc)

    # --- who is there ------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self.identity.address

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    def addrs(self) -> list[str]:
        """Where we listen (ports resolved), each ending in ``/p2p/<PeerID>``; 0.0.0.0 where we
        listen on every interface. Others dial the ledger's addresses, not these."""
        return self.host.addrs()

    def announced_addrs(self) -> list[str]:
        """What identify announces (``announce``, else the specific listen addresses; never
        0.0.0.0), each ending in ``/p2p/<PeerID>``."""
        return self.host.announced_addrs()

    def members(self) -> Mapping[str, Member]:
        return self.gate.members

    def connected_members(self) -> set[str]:
        return self.host.connected_members()

    async def wait_connected(self, addresses: set[str], *, poll_s: float = 0.05) -> None:
        """Until a connection to each of ``addresses`` exists (put it under a deadline)."""
        while not addresses <= self.host.connected_members():
            await trio.sleep(poll_s)

    # --- serving -----------------------------------------------------------------------

    def accept_pushes(self, kind: BlobKind, validator: PushValidator, max_size: SizeLimit) -> None:
        """Accept pushed blobs of ``kind`` that ``validator`` approves, up to ``max_size`` bytes."""
        self.server.accept_pushes(kind, validator, max_size)

    def refuse_pushes(self, kind: BlobKind) -> None:
        self.server.refuse_pushes(kind)

    def serve_round_keys(self, provider: RoundKeyProvider | None) -> None:
        """(Key steward) answer round-key fetches: ``provider(requester, round_id)`` returns the
        requester's RoundKeyBundle, or None to refuse (``refused``). ``requester`` is the
        checksummed address of the connection's authenticated key. None stops serving
        (``not_found``)."""
        self.server.serve_round_keys(provider)

    async def offer(
        self, kind: BlobKind, round_id: int, data: bytes, digest: bytes | None = None
    ) -> BlobRef:
        """Put a blob of our own (an aggregate, a finalized model) where peers can fetch it;
        ``digest``: its :func:`content_digest`, where the caller computed it already."""
        if digest is None:
            digest = await trio.to_thread.run_sync(content_digest, kind, data)
        ref = BlobRef(kind, round_id, self.address, digest, len(data))
        await trio.to_thread.run_sync(self.store.put, ref, data)
        return ref

    # --- calling -----------------------------------------------------------------------

    def _policy(self, policy: TransferPolicy | None) -> TransferPolicy:
        return self.config.transfer if policy is None else policy

    async def _push(
        self,
        kind: BlobKind,
        to: str,
        round_id: int,
        data: bytes,
        digest: bytes | None,
        policy: TransferPolicy | None,
    ) -> None:
        async with self._outbound:  # its deadline starts once it may go (P2PConfig)
            await protocols.push(
                self.host, to, kind, round_id, data, policy=self._policy(policy), digest=digest
            )

    async def push_update(
        self,
        merge_peer: str,
        round_id: int,
        ciphertext: bytes,
        *,
        digest: bytes | None = None,
        policy: TransferPolicy | None = None,
    ) -> None:
        """Send our encrypted update to the round's merge peer; returns once it is stored there."""
        await self._push(BlobKind.UPDATE, merge_peer, round_id, ciphertext, digest, policy)

    async def deliver_round_key(
        self,
        to: str,
        round_id: int,
        sealed_key: bytes,
        *,
        digest: bytes | None = None,
        policy: TransferPolicy | None = None,
    ) -> None:
        """(Key steward) hand a participant the round's secret key, sealed to its public key."""
        await self._push(BlobKind.ROUND_KEY, to, round_id, sealed_key, digest, policy)

    async def deliver_round_context(
        self,
        to: str,
        round_id: int,
        public_context: bytes,
        *,
        digest: bytes | None = None,
        policy: TransferPolicy | None = None,
    ) -> None:
        """(Key steward) hand a participant the round's public CKKS context."""
        await self._push(BlobKind.ROUND_CONTEXT, to, round_id, public_context, digest, policy)

    async def push_shares(
        self,
        to: str,
        round_id: int,
        blob: bytes,
        *,
        policy: TransferPolicy | None = None,
    ) -> None:
        """Hand a participant its shares of our masks (sealed to its encryption key)."""
        await self._push(BlobKind.SHARES, to, round_id, blob, None, policy)

    async def push_reveal(
        self,
        to: str,
        round_id: int,
        blob: bytes,
        *,
        policy: TransferPolicy | None = None,
    ) -> None:
        """Hand a key holder our reveal of the contributors' mask shares."""
        await self._push(BlobKind.REVEAL, to, round_id, blob, None, policy)

    async def fetch_aggregate(
        self,
        providers: str | Sequence[str],
        round_id: int,
        digest: bytes,
        *,
        max_size: int,
        policy: TransferPolicy | None = None,
    ) -> bytes:
        """The round's aggregate, checked against ``digest`` (the hash the merge peer committed),
        from the first of ``providers`` that delivers it, in the order given.

        ``providers``: the merge peer and/or key holders that hold it already (any member that
        stores an aggregate serves it: :meth:`offer`, or an earlier fetch). A provider that
        refuses (``not_found``: it has none yet), times out or cannot be reached is passed over
        for the next; up to ``policy.attempts`` passes over the list (policy.TransferPolicy).
        What arrives is kept in our store (on disk for a disk store: received into a staged
        file, never whole in memory), so we serve it to others from then on. Returns the bytes.
        Use :meth:`fetch_aggregate_ref` to leave them on disk.
        """
        ref = await self.fetch_aggregate_ref(
            providers, round_id, digest, max_size=max_size, policy=policy
        )
        data = await trio.to_thread.run_sync(self.store.get, ref.digest)
        if data is None:  # pruned in between: the store's owner decided
            raise PeerUnreachableError(f"aggregate {digest.hex()[:12]} left the store at once")
        return data

    async def fetch_aggregate_ref(
        self,
        providers: str | Sequence[str],
        round_id: int,
        digest: bytes,
        *,
        max_size: int,
        policy: TransferPolicy | None = None,
    ) -> BlobRef:
        """:meth:`fetch_aggregate` into our store only; returns its ref (``sender``: the provider
        that delivered it). An aggregate we hold already is not fetched again."""
        held = await trio.to_thread.run_sync(
            lambda: self.store.find(kind=BlobKind.AGGREGATE, round_id=round_id, digest=digest)
        )
        if held:
            return held[0]
        return await protocols.fetch_into(
            self.host,
            providers,
            BlobKind.AGGREGATE,
            digest,
            self.store,
            max_size=max_size,
            policy=self._policy(policy),
            round_id=round_id,
        )

    async def fetch_model(
        self,
        source: str,
        digest: bytes,
        *,
        max_size: int,
        policy: TransferPolicy | None = None,
    ) -> bytes:
        """A finalized model from any member holding it, checked against its ledger hash."""
        return await protocols.fetch(
            self.host,
            source,
            BlobKind.MODEL,
            digest,
            max_size=max_size,
            policy=self._policy(policy),
        )

    async def fetch_round_key(
        self,
        steward: str,
        round_id: int,
        *,
        max_context: int,
        max_key: int,
        policy: TransferPolicy | None = None,
    ) -> RoundKeyBundle:
        """The round's public context and our sealed secret key, fetched from its key steward.

        ``sealed_key`` is None when the steward gives us none (we are the merge peer). A refusal
        raises TransferRefusedError at once; a size over ``max_context`` / ``max_key`` raises
        PayloadTooLargeError before it is read. The bytes are not interpreted here: check the
        context against the ledger's hash, and open the sealed key, yourself.
        """
        return await protocols.fetch_round_key(
            self.host,
            steward,
            round_id,
            max_context=max_context,
            max_key=max_key,
            policy=self._policy(policy),
        )

    async def status(self, of: str, *, policy: TransferPolicy | None = None) -> dict[str, Any]:
        return await protocols.request_status(self.host, of, policy=self._policy(policy))


@asynccontextmanager
async def open_p2p(
    identity: Identity,
    config: P2PConfig,
    membership: MembershipSource,
    store: BlobStore | None = None,
    *,
    status_provider: StatusProvider | None = None,
) -> AsyncIterator[P2PService]:
    """Run a P2PService for the duration of the block."""
    service = P2PService(identity, config, membership, store, status_provider=status_provider)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        try:
            yield service
        finally:
            nursery.cancel_scope.cancel()
