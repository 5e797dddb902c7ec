"""The libp2p host: one secp256k1 key, TCP + Noise + yamux only, and the membership gate.

``libp2p.new_host()`` by default also offers plaintext, secio and TLS, and mplex; here the
security options hold Noise alone and the muxer options yamux alone, so a peer that offers
anything else fails negotiation. The Noise transport is wrapped so that, as soon as a handshake
has authenticated the remote key, a key that is not an active member's is refused: the
connection is closed before any muxer or stream exists.

Addresses: a member is dialed at the multiaddrs the ledger lists for it, and only there. The
peerstore's address book answers with the ledger's addresses whatever identify stored (a peer's
signed peer record *replaces* the book in py-libp2p 0.8.1). What this host announces is set apart
from where it listens, and is never ``0.0.0.0`` (``config.addresses_to_announce``).
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream, IRawConnection, ISecureConn
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import StreamHandlerFn, TProtocol
from libp2p.host.basic_host import BasicHost
from libp2p.identity.identify.identify import ID as IDENTIFY_PROTOCOL_ID
from libp2p.identity.identify.identify import identify_handler_for
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.peer.peerstore import PeerStore
from libp2p.security.exceptions import HandshakeFailure
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from swarm.errors import NotAMemberPeerError, PeerUnreachableError
from swarm.identity import Identity
from swarm.ledger.types import Member
from swarm.p2p.bulk import BulkEndpoint
from swarm.p2p.config import addresses_to_announce
from swarm.p2p.framing import encode_message, refusal
from swarm.p2p.guard import check_can_listen
from swarm.p2p.membership import MembershipGate
from swarm.p2p.multiselect import PipelinedMultiselectClient
from swarm.p2p.tcp import BufferedTCP

logger = logging.getLogger(__name__)

LIBP2P_VERSION = importlib.metadata.version("libp2p")
#: the versions whose private internals (the negative dial cache) were read and tested
_PRIVATE_API_VERIFIED_ON = ("0.8.",)
#: libp2p 0.8.x Swarm: peers whose every address failed are refused for 60 s without a dial
_NEGATIVE_CACHE_ATTR = "_negative_peer_cache"

#: longer than any open_stream timeout a caller sets: ours is the one that decides
_LIBP2P_NEGOTIATION_TIMEOUT_S = 3600.0
#: a polite close of a connection (yamux GO_AWAY, Noise, TCP) gets this long; a connection that
#: does not close in time is taken out of libp2p's records regardless
CLOSE_TIMEOUT_S = 2.0

StreamHandler = Callable[[INetStream, Member], Awaitable[None]]


def libp2p_key_pair(identity: Identity) -> KeyPair:
    """The libp2p key pair of the same secp256k1 key: its PeerID is ``identity.peer_id``."""
    return create_new_key_pair(identity.private_key)


class MemberOnlyNoise(NoiseTransport):
    """Noise (XX) that refuses, right after the handshake, a remote key that is not a member's."""

    def __init__(self, key_pair: KeyPair, gate: MembershipGate) -> None:
        # a fresh static Noise key per process; the libp2p identity key signs it in the handshake
        super().__init__(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
        self._gate = gate

    async def _admit(self, conn: ISecureConn, direction: str) -> ISecureConn:
        remote = str(conn.get_remote_peer())
        if self._gate.is_member_peer(remote):
            return conn
        logger.warning(
            "refusing an %s connection with non-member %s (address %s)",
            direction,
            remote,
            self._gate.address_of_peer(remote),
        )
        await conn.close()
        raise HandshakeFailure(f"{remote} is not an active member")

    async def secure_inbound(self, conn: IRawConnection) -> ISecureConn:
        return await self._admit(await super().secure_inbound(conn), "inbound")

    async def secure_outbound(self, conn: IRawConnection, peer_id: ID) -> ISecureConn:
        return await self._admit(await super().secure_outbound(conn, peer_id), "outbound")


class LedgerAddressBook(PeerStore):
    """A peerstore whose address book is the ledger: a member's addresses are the multiaddrs
    the ledger lists for it (through the membership gate), a non-member has none.

    py-libp2p dials whatever ``peerstore.addrs(peer)`` returns, and identify replaces what is
    stored there with what the peer announces (its listen addresses, its signed peer record:
    ``0.0.0.0``, a private address, a port behind a NAT). Answering from the ledger instead
    means no announcement, stale or forged, ever decides where a member is dialed. What
    identify stored is kept (libp2p's own bookkeeping reads it) but never dialed.
    """

    def __init__(self, gate: MembershipGate) -> None:
        super().__init__()
        self._gate = gate

    def addrs(self, peer_id: ID) -> list[multiaddr.Multiaddr]:
        member = self._gate.member_of_peer(str(peer_id))
        if member is None:
            return []
        return [multiaddr.Multiaddr(a) for a in member.multiaddrs]


async def _no_auto_connect() -> None:
    """Stands in for libp2p's auto-connector, which dials whatever its peerstore holds."""


def _announce_factory(
    announce: Sequence[str],
) -> Callable[[list[multiaddr.Multiaddr]], list[multiaddr.Multiaddr]]:
    """libp2p's ``addrs_factory``: from the addresses it listens on (ports resolved) to the
    ones it announces (``config.addresses_to_announce``: never 0.0.0.0)."""

    def factory(listening: list[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
        bound = [str(a) for a in listening]
        return [multiaddr.Multiaddr(a) for a in addresses_to_announce(announce, bound)]

    return factory


def _guard_identify(host: IHost) -> None:
    """Answer identify only with something to announce.

    With nothing to announce (listening on 0.0.0.0, no ``announce`` configured), py-libp2p's
    identify falls back to the raw listen addresses, 0.0.0.0 included. Then this host answers
    no identify at all (the stream is reset): nothing in swarm needs it, and saying nothing is
    better than telling peers to dial 0.0.0.0. Identify *push* goes out only when the host
    starts listening, before any connection exists, so it reaches nobody.
    """
    answer = identify_handler_for(host, use_varint_format=True)

    async def guarded(stream: INetStream) -> None:
        if not host.get_addrs():
            await reset_quietly(stream)
            return
        await answer(stream)

    handler: StreamHandlerFn = guarded
    host.set_stream_handler(IDENTIFY_PROTOCOL_ID, handler)


class _FailedDialFilter(logging.Filter):
    """Drops py-libp2p's ERROR "Failed to open TCP stream" records. Each failed dial raises
    OpenConnectionError too, which :meth:`P2PHost.connect` turns into a PeerUnreachableError
    that its caller logs once, in context; a member that is down for a minute would otherwise
    fill an operator's log with library errors for an expected condition."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno >= logging.ERROR
            and isinstance(record.msg, str)
            and record.msg.startswith("Failed to open TCP stream")
        )


_FAILED_DIAL_FILTER = _FailedDialFilter()


def _quiet_failed_dials() -> None:
    logger = logging.getLogger("libp2p.transport.tcp.tcp")
    if _FAILED_DIAL_FILTER not in logger.filters:
        logger.addFilter(_FAILED_DIAL_FILTER)


def build_libp2p_host(
    identity: Identity, gate: MembershipGate, announce: Sequence[str] = ()
) -> IHost:
    _quiet_failed_dials()
    key_pair = libp2p_key_pair(identity)
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: MemberOnlyNoise(key_pair, gate)},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        transports=[BufferedTCP()],  # TCP only, reading through a buffer (swarm.p2p.tcp)
        # where a member is dialed is the ledger's business, never an announcement's
        peerstore_opt=LedgerAddressBook(gate),
        # what we announce: configured, or specific listen addresses; never 0.0.0.0
        addrs_factory=_announce_factory(tuple(announce)),
        # no "observed addresses" (what peers say they saw us as) added to the announcement
        disable_identify_address_discovery=True,
        # members are few and known: no auto-connector dialing peerstore strangers, no pruning
        connection_config=ConnectionConfig(
            min_connections=0,
            low_watermark=0,
            high_watermark=1000,
            max_connections=1000,
            # P2PHost.open_stream bounds the whole open itself and drops the connection when it
            # expires; libp2p's own 10 s negotiation timeout would end it first with an untyped
            # error and leave the (possibly dead) connection in place
            outbound_stream_protocol_negotiation_timeout=_LIBP2P_NEGOTIATION_TIMEOUT_S,
        ),
        enable_mDNS=False,
        enable_upnp=False,
    )
    # The auto-connector aims at the midpoint of the watermarks (here 500 connections) and, on
    # every disconnect, re-dials peerstore entries, removed members included. Members are
    # dialed by the service's own loop instead (P2PService._keep_connected).
    auto_connector = getattr(host.get_network(), "auto_connector", None)
    if auto_connector is not None:
        auto_connector.maybe_connect = _no_auto_connect
    _guard_identify(host)
    if isinstance(host, BasicHost):  # one round trip per stream opened (swarm.p2p.multiselect)
        host.multiselect_client = PipelinedMultiselectClient()
    return host


def forget_failed_dial(host: IHost, peer_id: ID) -> bool:
    """Take a peer out of libp2p's 60 s negative dial cache, so a retry really dials.

    0.8.1 has a public ``Swarm.unblock_peer``; older 0.8.x lack it, and there the private
    ``Swarm._negative_peer_cache.evict`` is used, but only on versions it was checked against.
    Returns False (and logs) when neither is available: retries then fail fast for 60 s.
    """
    network: Any = host.get_network()
    unblock = getattr(network, "unblock_peer", None)
    if callable(unblock):
        unblock(peer_id)
        return True
    cache = getattr(network, _NEGATIVE_CACHE_ATTR, None)
    evict = getattr(cache, "evict", None)
    if callable(evict) and LIBP2P_VERSION.startswith(_PRIVATE_API_VERIFIED_ON):
        evict(str(peer_id))
        return True
    logger.warning(
        "libp2p %s: cannot clear the negative dial cache; retries to %s may fail for 60 s",
        LIBP2P_VERSION,
        peer_id,
    )
    return False


class P2PHost:
    """A running libp2p host bound to one identity, talking to members only."""

    def __init__(
        self,
        identity: Identity,
        gate: MembershipGate,
        listen_addrs: Sequence[str],
        announce_addrs: Sequence[str] = (),
    ):
        self.identity = identity
        self.gate = gate
        self.listen_addrs = tuple(listen_addrs)
        self.announce_addrs = tuple(announce_addrs)
        self.libp2p = build_libp2p_host(identity, gate, self.announce_addrs)
        if str(self.libp2p.get_id()) != identity.peer_id:  # one key, one name: never diverge
            raise RuntimeError("libp2p derived a PeerID different from the identity's")
        self._connect_locks: dict[str, trio.Lock] = {}
        #: the bulk channel (swarm/p2p/bulk.py) when this peer runs one: its listener serves
        #: the streams this host answers; calls from this host use it to remember members
        #: whose bulk port could not be reached
        self.bulk: BulkEndpoint | None = None

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    @property
    def address(self) -> str:
        return self.identity.address

    @asynccontextmanager
    async def running(self) -> AsyncIterator[P2PHost]:
        """Listen while the block runs; connections are closed before the host stops, and the
        listening sockets after it (py-libp2p 0.8.1 leaves them open).

        A port another process listens on already is refused (PortInUseError) before
        listening: py-libp2p's SO_REUSEPORT would otherwise let both listen and share it.
        """
        for addr in self.listen_addrs:
            check_can_listen(addr)
        addrs = [multiaddr.Multiaddr(a) for a in self.listen_addrs]
        try:
            async with self.libp2p.run(listen_addrs=addrs):
                try:
                    yield self
                finally:
                    with trio.CancelScope(shield=True), trio.move_on_after(5):
                        await self.close_all_connections()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
                await self._close_listeners()

    async def _close_listeners(self) -> None:
        network: Any = self.libp2p.get_network()
        for listener in list(getattr(network, "listeners", {}).values()):
            try:
                await listener.close()
            except Exception as exc:
                logger.debug("closing a listener: %s", exc)

    def addrs(self) -> list[str]:
        """The addresses we listen on, ports resolved, each ending in ``/p2p/<our PeerID>``
        (``0.0.0.0`` where we listen on every interface: not an address to dial)."""
        suffix = f"/p2p/{self.peer_id}"
        return [str(a) + suffix for a in self.libp2p.get_transport_addrs()]

    def announced_addrs(self) -> list[str]:
        """What identify announces to connected peers, each ending in ``/p2p/<our PeerID>``:
        the configured announce addresses, else the specific listen addresses, else nothing."""
        return [str(a) for a in self.libp2p.get_addrs()]

    def set_handler(self, protocol_id: str, handler: StreamHandler) -> None:
        """Serve ``protocol_id``; streams from non-members are refused (``not_member``) before
        the handler runs.

        The Noise gate already refuses their connections; this second check covers a member
        removed while its connection is still being closed.
        """

        async def gated(stream: INetStream) -> None:
            remote = str(stream.muxed_conn.peer_id)
            member = self.gate.member_of_peer(remote)
            if member is None:
                logger.warning("refusing a %s stream from non-member %s", protocol_id, remote)
                await refuse_stream(stream, "not_member", "not an active member (removed?)")
                return
            try:
                await handler(stream, member)
            except Exception:
                # an escaping error would reach libp2p's connection task; keep it to this stream
                logger.exception("handler for %s failed (peer %s)", protocol_id, member.address)
                await reset_quietly(stream)

        self.libp2p.set_stream_handler(TProtocol(protocol_id), gated)

    def member(self, address: str) -> Member:
        member = self.gate.member(address)
        if member is None:
            raise NotAMemberPeerError(f"{address} is not an active member")
        return member

    def connected_peers(self) -> list[str]:
        """PeerIDs we hold an open connection to (libp2p also lists ones still closing)."""
        network: Any = self.libp2p.get_network()
        return [
            str(peer)
            for peer, conns in network.get_connections_map().items()
            if any(not conn.is_closed for conn in conns)
        ]

    def connected_members(self) -> set[str]:
        """Addresses of the members we hold a connection to."""
        found = set()
        for peer in self.connected_peers():
            member = self.gate.member_of_peer(peer)
            if member is not None:
                found.add(member.address)
        return found

    def is_connected(self, member: Member) -> bool:
        """Whether an open connection to ``member`` exists (a closing one does not count)."""
        network: Any = self.libp2p.get_network()
        conns = network.get_connections(ID.from_base58(member.peer_id))
        return any(not conn.is_closed for conn in conns)

    async def connect(self, member: Member, *, timeout_s: float = 10.0) -> None:
        """Make sure a connection to ``member`` exists; PeerUnreachableError if none can be made."""
        if not member.multiaddrs:
            raise PeerUnreachableError(f"{member.address} lists no address to dial")
        peer_id = ID.from_base58(member.peer_id)
        lock = self._connect_locks.setdefault(member.peer_id, trio.Lock())
        async with lock:
            if self.is_connected(member):
                return
            # a dial that failed earlier (the peer was restarting) would otherwise be refused
            # from the cache for 60 s although the peer may be back by now
            forget_failed_dial(self.libp2p, peer_id)
            # libp2p dials what the address book returns: LedgerAddressBook answers with the
            # ledger's addresses (these), whatever identify stored for the peer
            info = PeerInfo(peer_id, [multiaddr.Multiaddr(a) for a in member.multiaddrs])
            try:
                with trio.fail_after(timeout_s):
                    await self.libp2p.connect(info)
            except trio.TooSlowError as exc:
                raise PeerUnreachableError(
                    f"connecting to {member.address} took over {timeout_s} s"
                ) from exc
            except Exception as exc:
                raise PeerUnreachableError(
                    f"cannot connect to {member.address} at {', '.join(member.multiaddrs)}: {exc}"
                ) from exc

    async def open_stream(
        self, member: Member, protocol_id: str, *, timeout_s: float
    ) -> INetStream:
        """A new stream to ``member`` speaking ``protocol_id``, connecting first if needed.

        An open that times out means the connection carries nothing any more (py-libp2p has no
        keepalive that would notice): the connection is dropped, so the caller's next try dials
        a fresh one instead of waiting on the dead one again. Other failures (e.g. a protocol
        the peer does not speak) leave the connection alone: it may carry other transfers.
        """
        await self.connect(member, timeout_s=timeout_s)
        try:
            with trio.fail_after(timeout_s):
                return await self.libp2p.new_stream(
                    ID.from_base58(member.peer_id), [TProtocol(protocol_id)]
                )
        except trio.TooSlowError as exc:
            logger.info(
                "opening a %s stream to %s timed out; dropping its connection",
                protocol_id,
                member.address,
            )
            await self.drop_connections(member)
            raise PeerUnreachableError(
                f"opening a {protocol_id} stream to {member.address} took over {timeout_s} s"
            ) from exc
        except Exception as exc:
            raise PeerUnreachableError(
                f"cannot open a {protocol_id} stream to {member.address}: {exc}"
            ) from exc

    async def disconnect(self, member: Member) -> None:
        await self.disconnect_peer(member.peer_id)

    async def drop_connections(self, member: Member) -> None:
        """Close every connection to ``member`` now, even one on which nothing flows any more,
        and forget a failed dial, so the next transfer to it dials afresh.

        Bounded and shielded (safe in a ``finally`` or after a deadline): a polite close that
        does not finish within :data:`CLOSE_TIMEOUT_S` (its GO_AWAY stuck behind a dead socket)
        is cut short and the connections are taken out of libp2p's records, so that neither
        ``connect`` nor ``new_stream`` picks them again.
        """
        peer_id = ID.from_base58(member.peer_id)
        network: Any = self.libp2p.get_network()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                await self.disconnect_peer(member.peer_id)
            for conn in list(network.get_connections(peer_id)):
                logger.info("connection to %s did not close in time; discarding it", member.address)
                with trio.move_on_after(CLOSE_TIMEOUT_S / 4):
                    try:
                        await conn.muxed_conn.secured_conn.close()  # the socket itself
                    except Exception as exc:
                        logger.debug("closing a stuck connection's socket: %s", exc)
                network.remove_conn(conn)
        forget_failed_dial(self.libp2p, peer_id)

    async def disconnect_peer(self, peer_id: str) -> None:
        try:
            await self.libp2p.disconnect(ID.from_base58(peer_id))
        except Exception as exc:  # closing a half-dead connection may raise; it is gone either way
            logger.debug("closing connections to %s: %s", peer_id, exc)

    async def disconnect_non_members(self) -> int:
        """Close every connection whose remote is not (or no longer) an active member."""
        closed = 0
        for peer in self.connected_peers():
            if not self.gate.is_member_peer(peer):
                logger.info(
                    "closing connections to %s: no longer a member", self.gate.address_of_peer(peer)
                )
                await self.disconnect_peer(peer)
                closed += 1
        return closed

    async def close_all_connections(self) -> None:
        for peer in self.connected_peers():
            await self.disconnect_peer(peer)


async def _tcp_answers(addr: str, timeout_s: float) -> bool:
    """Whether anything accepts a TCP connection at a multiaddr's host and port."""
    parts = addr.strip("/").split("/")
    if len(parts) < 4 or parts[2] != "tcp" or not parts[3].isdigit():
        return False  # not a TCP multiaddr (the ledger holds what an admin typed)
    with trio.move_on_after(timeout_s):
        try:
            stream = await trio.open_tcp_stream(parts[1], int(parts[3]))
        except OSError:
            return False
        await stream.aclose()
        return True
    return False


async def own_key_answers_at(
    identity: Identity, gate: MembershipGate, *, timeout_s: float
) -> list[str]:
    """The addresses the ledger lists for ``identity`` at which a peer with this very key
    answers now: another peer of the same member (an old host still running, a copied
    config). Empty when nothing answers there, or something without this key does.

    Call it before listening. A plain TCP connect first (cheap, and what a peer that is simply
    restarting meets: nothing listens); only where something accepts, a throwaway libp2p host
    on the same key dials it: the Noise handshake proves which key answers, and the other side
    admits us (our key is a member's).
    """
    me = gate.member(identity.address)
    if me is None or not me.multiaddrs or timeout_s <= 0:
        return []
    answering = [a for a in me.multiaddrs if await _tcp_answers(a, timeout_s)]
    if not answering:
        return []
    probe = P2PHost(identity, gate, ())
    async with probe.running():
        try:
            await probe.connect(me, timeout_s=timeout_s)
        except PeerUnreachableError as exc:
            logger.info("something answers at %s, not with our key: %s", answering, exc)
            return []
        await probe.close_all_connections()
    return answering


#: receive window a bulk receiver grants up front (go-yamux's maximum)
BULK_RECEIVE_WINDOW = 16 << 20


async def widen_receive_window(stream: INetStream, expected_bytes: int) -> int:
    """Grant the sender a receive window sized for a bulk payload, before it starts sending.

    py-libp2p 0.8.1's yamux starts every stream at 256 KiB and grows the window only when
    updates come within 4 RTTs of each other, which on a fast link rarely happens; a sender that
    runs out of window then sleeps in 10 ms polls. Granting up to 16 MiB at once (the reader
    drains it into memory anyway: it reads the whole payload before processing) lifts goodput
    from ~60 to ~100+ MB/s on loopback. Uses the yamux stream's window attributes; on another
    muxer, or if they are missing, it does nothing. Returns the bytes granted.
    """
    muxed: Any = getattr(stream, "muxed_stream", None)
    lock = getattr(muxed, "window_lock", None)
    send_update = getattr(muxed, "send_window_update", None)
    if lock is None or not callable(send_update) or not hasattr(muxed, "recv_window"):
        return 0
    target = min(max(expected_bytes, 0), BULK_RECEIVE_WINDOW)
    async with lock:
        grant = target - int(muxed.recv_window)
        if grant <= 0:
            return 0
        muxed.recv_window += grant
        muxed.target_recv_window = max(int(muxed.target_recv_window), target)
    # never hold window_lock across the write: the inbound WINDOW_UPDATE handler needs it
    await send_update(grant, skip_lock=True)
    return grant


async def refuse_stream(stream: INetStream, code: str, reason: str) -> None:
    """Answer a stream's request with a refusal (every protocol starts with a control message,
    so the caller reads it as TransferRefusedError), then close it; never raises."""
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.write(encode_message(refusal(code, reason)))
            await stream.close()
            return
        except Exception as exc:
            logger.debug("refusing a stream: %s", exc)
    await reset_quietly(stream)


async def reset_quietly(stream: INetStream) -> None:
    """Reset a stream whose transfer failed; bounded and shielded, never raises."""
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.reset()
        except Exception as exc:
            logger.debug("resetting a stream: %s", exc)
