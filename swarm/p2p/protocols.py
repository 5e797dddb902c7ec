"""The swarm's stream protocols: serving side and calling side.

================================  =============================================================
``/swarm/update/1.0.0``           push an encrypted update to the round's merge peer
``/swarm/roundkey/1.0.0``         push a round key sealed to the receiver, or the round's public
                                  context (the key steward delivering)
``/swarm/roundkey-fetch/1.0.0``   fetch the round's public context and one's own sealed key from
                                  the key steward (a restarted peer, a failed delivery)
``/swarm/aggregate/1.0.0``        fetch a round's aggregate (resumable)
``/swarm/model/1.0.0``            fetch a finalized model by its hash (catch-up; resumable)
``/swarm/status/1.0.0``           a small status request
``/swarm/masking/1.0.0``          push one owner's mask shares sealed to the receiver, or a
                                  holder's reveal of the contributors' shares to a key holder
================================  =============================================================

A push: header ``{kind, round, digest, size}`` -> answer (refusal, or ok; ``stored`` when the
receiver already holds exactly this blob) -> payload (framing.py) -> final answer after the
receiver read *all* of it, checked its digest (``content_digest``: the tagged hash of its kind,
the one the ledger records) and stored it. A payload under :data:`INLINE_MAX_BYTES` (keys,
shares, reveals, a small model's update) goes *inline*: header ``{..., inline: true}``, payload
and trailer in one write, then one answer (a refusal, or ok with ``stored``); the receiver
judges the header exactly as before and reads the payload only if it accepts it (what it leaves
unread is at most the stream's initial window). A receiver that predates inline pushes answers
ok without ``stored``, reads the payload that is already there and answers again. A fetch: header
``{kind, round, digest, offset}`` -> answer ``{size, digest, offset}`` -> payload from ``offset``.

Bulk channel (bulk.py): a header with ``bulk: true`` asks for it; an answer with a ``bulk``
offer moves the payload, and a push's final answer, onto a TLS connection the caller opens with
the offer's token; a caller that cannot reach it sends the payload on the stream as above (a
fetcher first says ``{"via": "stream"}``). A fetch with ``others: true`` names other providers:
a provider with no serving slot free answers ``busy`` at once. Blobs received for a disk store
(store.FileBlobStore) are written to a staged file while they are hashed, then moved in.
A round-key fetch: header ``{round}`` -> answer ``{round, context_size, context_digest, key_size,
key_digest}`` (the key fields null when the requester gets no key) -> the context's payload,
then the key's.

Every call runs under a deadline (``TransferPolicy.deadline_s``) and is retried on timeouts,
interruptions, unreachable peers and ``busy``/``sender_busy`` refusals; other refusals are
answers and are raised at once.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import trio
from libp2p.abc import INetStream
from libp2p.exceptions import BaseLibp2pError
from libp2p.network.stream.exceptions import StreamEOF

from swarm.errors import (
    NotAMemberPeerError,
    P2PError,
    PayloadHashMismatchError,
    PayloadTooLargeError,
    PeerUnreachableError,
    ProtocolViolationError,
    TransferInterruptedError,
    TransferRefusedError,
    TransferTimeoutError,
)
from swarm.hashing import Tag
from swarm.ledger.types import Member
from swarm.p2p.bulk import (
    BULK_MIN_BYTES,
    DIAL_TIMEOUT_S,
    UNREACHABLE_FOR_S,
    BulkChannel,
    BulkEndpoint,
    BulkOffer,
    dial,
    dial_host,
    wait_for_channel,
)
from swarm.p2p.config import TransferPolicy
from swarm.p2p.framing import (
    DIGEST_BYTES,
    LIBP2P_WRITE_BYTES,
    ByteStream,
    Coalesced,
    FilePayload,
    PartialPayload,
    accepted,
    raise_if_refused,
    read_message,
    refusal,
    send_file_payload,
    send_payload,
    write_message,
)
from swarm.p2p.host import P2PHost, reset_quietly, widen_receive_window
from swarm.p2p.store import (
    CONTENT_TAGS,
    BlobKind,
    BlobRef,
    BlobStore,
    FileBlobStore,
    content_digest,
)

logger = logging.getLogger(__name__)

UPDATE_PROTOCOL = "/swarm/update/1.0.0"
ROUND_KEY_PROTOCOL = "/swarm/roundkey/1.0.0"
ROUND_KEY_FETCH_PROTOCOL = "/swarm/roundkey-fetch/1.0.0"
AGGREGATE_PROTOCOL = "/swarm/aggregate/1.0.0"
MODEL_PROTOCOL = "/swarm/model/1.0.0"
STATUS_PROTOCOL = "/swarm/status/1.0.0"
MASKING_PROTOCOL = "/swarm/masking/1.0.0"

PUSH_KINDS: Mapping[str, frozenset[BlobKind]] = {
    UPDATE_PROTOCOL: frozenset({BlobKind.UPDATE}),
    ROUND_KEY_PROTOCOL: frozenset({BlobKind.ROUND_KEY, BlobKind.ROUND_CONTEXT}),
    MASKING_PROTOCOL: frozenset({BlobKind.SHARES, BlobKind.REVEAL}),
}
FETCH_KINDS: Mapping[str, BlobKind] = {
    AGGREGATE_PROTOCOL: BlobKind.AGGREGATE,
    MODEL_PROTOCOL: BlobKind.MODEL,
}
PROTOCOL_OF_PUSH: Mapping[BlobKind, str] = {
    kind: protocol for protocol, kinds in PUSH_KINDS.items() for kind in kinds
}
PROTOCOL_OF_FETCH: Mapping[BlobKind, str] = {kind: p for p, kind in FETCH_KINDS.items()}

WIRE_VERSION = 1
#: pushes smaller than this go inline (header, payload and trailer in one write, one answer):
#: a masked round's many small pushes save a round trip and two messages each. Half of yamux's
#: initial window, so a receiver that refuses one never has to read it.
INLINE_MAX_BYTES = 128 << 10
#: a peer gets this long to send a request header once its stream is open
HEADER_TIMEOUT_S = 10.0

#: what a bulk session may fetch
FETCHABLE = frozenset(FETCH_KINDS.values())

#: refusals that say "not now" rather than "no": the caller's retry loop tries again (backoff)
RETRYABLE_REFUSALS = frozenset({"busy", "sender_busy"})


@dataclass(frozen=True)
class PushRequest:
    """What a receiver's validator decides on, before a single payload byte is read."""

    sender: str  # checksummed address, derived from the connection's authenticated key
    kind: BlobKind
    round_id: int
    digest: bytes  # the content digest the sender declares (in production, the ledger's)
    size: int


#: None accepts; a string refuses, and is sent back to the sender as the reason
Verdict = str | None
PushValidator = Callable[[PushRequest], Verdict | Awaitable[Verdict]]
SizeLimit = int | Callable[[int], int]  # bytes, or round -> bytes
StatusProvider = Callable[[], Mapping[str, Any]]


@dataclass(frozen=True)
class RoundKeyBundle:
    """What the key steward hands one requester for one round: opaque bytes to this package.

    ``context`` is the round's public CKKS context (the requester checks it against the hash on
    the ledger); ``sealed_key`` is the round's secret key sealed to the requester's public key,
    or None for a requester that must not hold it (the round's merge peer).
    """

    context: bytes
    sealed_key: bytes | None


#: ``provider(requester, round_id)``: ``requester`` is the checksummed address derived from the
#: connection's authenticated key; None refuses. May be sync (keep it quick: it runs on the
#: event loop) or async.
RoundKeyProvider = Callable[[str, int], RoundKeyBundle | Awaitable[RoundKeyBundle | None] | None]


@dataclass(frozen=True)
class PushPolicy:
    validator: PushValidator
    max_size: SizeLimit

    def limit(self, round_id: int) -> int:
        return self.max_size(round_id) if callable(self.max_size) else self.max_size


def _why(exc: BaseException) -> str:
    """libp2p wraps the telling error (e.g. yamux's window timeout) in a bare StreamReset."""
    parts = [repr(exc)]
    cause = exc.__cause__
    while cause is not None and len(parts) < 4:
        parts.append(str(cause) or repr(cause))
        cause = cause.__cause__
    return " <- ".join(parts)


class StreamIO:
    """framing.ByteStream over a libp2p stream: EOF is b"", any breakage is typed."""

    def __init__(self, stream: INetStream) -> None:
        self.stream = stream

    async def read(self, max_bytes: int) -> bytes:
        try:
            return await self.stream.read(max_bytes)
        except StreamEOF:
            return b""
        except (BaseLibp2pError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise TransferInterruptedError(f"stream broke while reading: {_why(exc)}") from exc

    async def write(self, data: bytes) -> None:
        try:
            await self.stream.write(data)
        except (BaseLibp2pError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            # includes yamux's "Timed out waiting for window update after 5 seconds"
            raise TransferInterruptedError(f"stream broke while writing: {_why(exc)}") from exc


class _SessionIO:
    """A push that came on a bulk session (bulk.py), its payload right behind its header: a
    framing.ByteStream for the answers. ``read_whole`` says the payload was read, so the
    session can carry the next request; after a refusal it cannot (the payload is still on its
    way), and the session is closed."""

    def __init__(self, channel: BulkChannel) -> None:
        self.channel = channel
        self.read_whole = False

    async def read(self, max_bytes: int) -> bytes:
        return await self.channel.read(max_bytes)

    async def write(self, data: bytes) -> None:
        await self.channel.write(data)


class _Staged:
    """A temporary file in a disk store's staging folder, for one blob being received."""

    def __init__(self, folder: Path, prefix: str) -> None:
        fd, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".part")
        self.path = Path(name)
        # unbuffered: what was written is in the file (for its size check, fsync and rename)
        self.file: IO[bytes] = os.fdopen(fd, "wb+", buffering=0)
        self.kept = False

    def close(self) -> None:
        """Close the file; delete it unless it was handed to the store (``kept``)."""
        self.file.close()
        if not self.kept:
            self.path.unlink(missing_ok=True)


async def _staging_of(store: BlobStore) -> Path | None:
    """Where blobs for ``store`` are received (on its disk), or None to receive into memory."""
    if isinstance(store, FileBlobStore):
        return await trio.to_thread.run_sync(store.staging_dir)
    return None


#: where a payload travels: the libp2p stream, or the bulk channel
Channel = ByteStream | BulkChannel
_U32_SIZE = 4  # a chunk's or a control message's length prefix


async def _receive_on(channel: Channel, partial: PartialPayload) -> None:
    """Receive and verify a payload on either channel (the receipt resumes across both)."""
    if isinstance(channel, BulkChannel):
        await channel.receive(partial)
    else:
        await partial.receive_verified(channel)


async def _send_on(
    channel: Channel,
    source: bytes | tuple[IO[bytes], int],
    *,
    tag: Tag,
    digest: bytes,
    offset: int,
    chunk_bytes: int,
) -> None:
    """Send a payload (bytes, or an open file and its size) on either channel. Over libp2p,
    each write is one yamux frame that fits one Noise message (framing.LIBP2P_WRITE_BYTES)."""
    data, size = (source, len(source)) if isinstance(source, bytes) else source
    if isinstance(channel, BulkChannel):
        await channel.send(data, size, digest=digest, offset=offset, chunk_bytes=chunk_bytes)
    elif isinstance(data, bytes):
        await send_payload(
            channel,
            data,
            tag=tag,
            offset=offset,
            whole_digest=digest,
            chunk_bytes=chunk_bytes,
            write_bytes=LIBP2P_WRITE_BYTES,
        )
    else:
        await send_file_payload(
            channel,
            data,
            size,
            digest=digest,
            offset=offset,
            chunk_bytes=chunk_bytes,
            write_bytes=LIBP2P_WRITE_BYTES,
        )


def _put_taken(store: BlobStore, ref: BlobRef, partial: PartialPayload) -> None:
    """Store an in-memory receipt (in a worker thread: joining pieces copies them)."""
    store.put(ref, partial.take_buffer())


def _wants_bulk(bulk: BulkEndpoint | None, asked: bool, size: int) -> bool:
    """Whether to offer the bulk channel: asked for, large enough, and listening here."""
    return bulk is not None and bulk.listening and asked and size >= BULK_MIN_BYTES


@contextlib.asynccontextmanager
async def _maybe_offer(
    bulk: BulkEndpoint | None, wanted: bool
) -> AsyncIterator[tuple[BulkOffer | None, Any]]:
    if not wanted or bulk is None:
        yield None, None
        return
    async with bulk.offer() as (offer, ticket):
        yield offer, ticket


class _Prefixed:
    """A ByteStream that first returns bytes already read from ``io``, then reads on."""

    def __init__(self, io: StreamIO, prefix: bytes) -> None:
        self.io, self.stream, self.prefix = io, io.stream, prefix

    async def read(self, max_bytes: int) -> bytes:
        if self.prefix:
            out, self.prefix = self.prefix[:max_bytes], self.prefix[max_bytes:]
            return out
        return await self.io.read(max_bytes)

    async def write(self, data: bytes) -> None:
        await self.io.write(data)


async def _serving_channel(io: StreamIO, offer: BulkOffer | None, ticket: Any) -> Channel | None:
    """After a bulk offer, the channel the caller chose, whichever shows first: its TLS
    connection with our token (the bulk channel), or bytes on this stream (it could not reach
    the port: a push's payload begins, a fetcher says ``{"via": "stream"}``). The stream is then
    returned with those bytes put back in front. None if neither came in time."""
    if offer is None:
        return io
    chosen: list[Channel] = []
    with trio.move_on_after(DIAL_TIMEOUT_S + HEADER_TIMEOUT_S):
        async with trio.open_nursery() as nursery:

            async def over_bulk() -> None:
                channel = await wait_for_channel(ticket, math.inf)
                if channel is not None:
                    chosen.append(channel)
                    nursery.cancel_scope.cancel()

            async def over_stream() -> None:
                first = await io.read(_U32_SIZE)
                if not first:
                    raise TransferInterruptedError("the caller ended the stream")
                chosen.append(_Prefixed(io, first))
                nursery.cancel_scope.cancel()

            nursery.start_soon(over_bulk)
            nursery.start_soon(over_stream)
    return chosen[0] if chosen else None


async def _answer(channel: Channel, io: StreamIO | _SessionIO, message: Mapping[str, Any]) -> None:
    """Answer on the channel the payload came over (the bulk channel, or the stream)."""
    if isinstance(channel, BulkChannel):
        await channel.write_message(message)
    else:
        await write_message(io, message)


async def _calling_channel(
    host: P2PHost,
    member: Member,
    stream: INetStream,
    io: StreamIO,
    answer: Mapping[str, Any],
    *,
    say_fallback: bool,
) -> BulkChannel | None:
    """After an answer: the bulk channel if one was offered and we reach it, else None (the
    payload goes over ``io``; with ``say_fallback`` a fetcher tells the provider so there)."""
    offer = BulkOffer.from_wire(answer.get("bulk"))
    if offer is None:
        return None
    bulk = host.bulk
    remote = None
    with contextlib.suppress(Exception):
        remote = getattr(stream.muxed_conn, "get_remote_address", lambda: None)()
    where = dial_host(remote, member.multiaddrs)
    channel = None
    if where is not None:
        try:
            channel = await dial(where, offer)
        except PeerUnreachableError as exc:
            logger.warning(
                "bulk channel of %s unreachable (%s); using the libp2p stream for %.0f s",
                member.address,
                exc,
                UNREACHABLE_FOR_S,
            )
            if bulk is not None:
                bulk.mark_unreachable(member.address)
    if channel is None and say_fallback:
        await write_message(io, {"via": "stream"})
    return channel


def _asks_bulk(host: P2PHost, member: Member, size: int) -> bool:
    bulk = host.bulk
    return bulk is not None and size >= BULK_MIN_BYTES and bulk.reachable(member.address)


async def close_quietly(stream: INetStream) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.close()
        except Exception as exc:
            logger.debug("closing a stream: %s", exc)


def _field(header: Mapping[str, Any], name: str, kind: type) -> Any:
    value = header.get(name)
    # bool is an int in Python; a JSON true must not pass as a round number
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolViolationError(f"header field {name!r} missing or not {kind.__name__}")
    return value


def _digest_field(header: Mapping[str, Any], name: str = "digest") -> bytes:
    text = _field(header, name, str)
    try:
        digest = bytes.fromhex(text)
    except ValueError as exc:
        raise ProtocolViolationError("digest is not hex") from exc
    if len(digest) != DIGEST_BYTES:
        raise ProtocolViolationError("digest is not 32 bytes")
    return digest


def _kind_field(header: Mapping[str, Any]) -> BlobKind:
    try:
        return BlobKind(_field(header, "kind", str))
    except ValueError as exc:
        raise ProtocolViolationError(f"unknown blob kind {header.get('kind')!r}") from exc


def _push_request(
    header: Mapping[str, Any], sender: str, kinds: frozenset[BlobKind]
) -> PushRequest:
    """A push's header as a request; ProtocolViolationError if malformed or not of ``kinds``."""
    kind = _kind_field(header)
    if kind not in kinds:
        raise ProtocolViolationError(f"{kind} cannot be pushed here")
    request = PushRequest(
        sender=sender,
        kind=kind,
        round_id=_field(header, "round", int),
        digest=_digest_field(header),
        size=_field(header, "size", int),
    )
    if request.round_id < 0 or request.size < 0:
        raise ProtocolViolationError("round and size must be non-negative")
    return request


def _log_stored(request: PushRequest, how: str) -> None:
    logger.info(
        "stored %s of round %d from %s (%d bytes%s)",
        request.kind,
        request.round_id,
        request.sender,
        request.size,
        f", {how}" if how else "",
    )


async def _validate(validator: PushValidator, request: PushRequest) -> Verdict:
    verdict = validator(request)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    return verdict


async def _provide(provider: RoundKeyProvider, requester: str, round_id: int) -> object:
    bundle = provider(requester, round_id)
    if inspect.isawaitable(bundle):
        bundle = await bundle
    return bundle


class ProtocolServer:
    """Serves the swarm's protocols on a P2PHost from a BlobStore.

    Pushes of a kind are refused (``not_accepting``) until :meth:`accept_pushes` registers a
    validator and a size limit for it, and round keys are served only once
    :meth:`serve_round_keys` registers a provider: the peer state machine decides who may send
    or get what.

    Inbound pushes share ``max_concurrent_inbound`` slots (each holds its payload in memory
    while it is read). So that one member cannot hold them all, a member may have at most
    ``max_inbound_per_sender`` pushes reading or waiting for a slot; one more is refused at once
    (``sender_busy``). A push that finds no free slot within ``slot_wait_s`` is refused
    (``busy``). Both refusals are retryable (:data:`RETRYABLE_REFUSALS`).

    Fetches served (aggregates, models) share ``max_concurrent_serves`` slots, so a blob many
    members want at once (the round's aggregate at the merge peer) goes out to a few of them
    at a time. A fetch that says it has other providers (``others``: see :func:`_fetch`) is
    refused ``busy`` at once when no slot is free, and turns to another member that holds the
    blob already; one without waits up to ``slot_wait_s`` for a slot.
    """

    def __init__(
        self,
        host: P2PHost,
        store: BlobStore,
        *,
        policy: TransferPolicy,
        max_concurrent_inbound: int = 8,
        max_inbound_per_sender: int = 2,
        slot_wait_s: float = 5.0,
        max_concurrent_serves: int = 4,
        status_provider: StatusProvider | None = None,
    ) -> None:
        self.host = host
        self.store = store
        self.policy = policy
        self.status_provider = status_provider
        self.max_inbound_per_sender = max_inbound_per_sender
        self.slot_wait_s = slot_wait_s
        self._push_policies: dict[BlobKind, PushPolicy] = {}
        self._round_key_provider: RoundKeyProvider | None = None
        self._inbound = trio.CapacityLimiter(max_concurrent_inbound)
        self._inbound_by_sender: dict[str, int] = {}
        self._serving = trio.CapacityLimiter(max_concurrent_serves)

    def accept_pushes(self, kind: BlobKind, validator: PushValidator, max_size: SizeLimit) -> None:
        """Accept pushes of ``kind`` that ``validator`` approves, up to ``max_size`` bytes."""
        self._push_policies[kind] = PushPolicy(validator, max_size)

    def refuse_pushes(self, kind: BlobKind) -> None:
        self._push_policies.pop(kind, None)

    def serve_round_keys(self, provider: RoundKeyProvider | None) -> None:
        """Answer round-key fetches with what ``provider`` returns (None: stop serving them)."""
        self._round_key_provider = provider

    def inbound_in_flight(self, sender: str | None = None) -> int:
        """Inbound pushes reading or waiting for a slot (of one sender, or of all)."""
        if sender is not None:
            return self._inbound_by_sender.get(sender, 0)
        return sum(self._inbound_by_sender.values())

    def install(self) -> None:
        for protocol in PUSH_KINDS:
            self.host.set_handler(protocol, self._push_handler(protocol))
        for protocol in FETCH_KINDS:
            self.host.set_handler(protocol, self._fetch_handler(protocol))
        self.host.set_handler(ROUND_KEY_FETCH_PROTOCOL, self._serve_round_key)
        self.host.set_handler(STATUS_PROTOCOL, self._serve_status)
        if self.host.bulk is not None:
            self.host.bulk.serve_sessions(self._serve_session_request)

    async def _serve_session_request(
        self, channel: BulkChannel, address: str, header: dict[str, Any]
    ) -> bool:
        """A push that came on a bulk session (bulk.py) of ``address``: the same checks as one
        on a libp2p stream, membership first. True when the session can go on."""
        member = self.host.gate.member(address)
        if member is None:
            logger.warning("refusing a bulk session request from non-member %s", address)
            await channel.write_message(refusal("not_member", "not an active member (removed?)"))
            return False
        if header.get("op") == "fetch":
            # nothing of the caller's follows its request: a refusal leaves the session usable
            return await self._answer_fetch(_SessionIO(channel), member, header, FETCHABLE)
        try:
            if header.get("op") != "push":
                raise ProtocolViolationError(f"no such request on a session: {header.get('op')!r}")
            # any size: a session carries whatever its member pushes next (a round context of
            # ~180 KB, under the bulk channel's threshold, once it has one)
            request = _push_request(header, address, frozenset(PROTOCOL_OF_PUSH))
        except ProtocolViolationError as exc:
            await channel.write_message(refusal("bad_request", str(exc)))
            return False
        io = _SessionIO(channel)
        answered = await self._receive_push(io, request, bulk_asked=False, inline=False)
        return answered and io.read_whole

    def _push_handler(self, protocol: str) -> Callable[[INetStream, Member], Awaitable[None]]:
        async def handler(stream: INetStream, member: Member) -> None:
            await self._serve_push(stream, member, protocol)

        return handler

    def _fetch_handler(self, protocol: str) -> Callable[[INetStream, Member], Awaitable[None]]:
        async def handler(stream: INetStream, member: Member) -> None:
            await self._serve_fetch(stream, member, protocol)

        return handler

    async def _read_header(self, io: StreamIO) -> dict[str, Any] | None:
        with trio.move_on_after(HEADER_TIMEOUT_S):
            return await read_message(io)
        return None

    async def _serve_push(self, stream: INetStream, member: Member, protocol: str) -> None:
        io = StreamIO(stream)
        ok = False
        try:
            header = await self._read_header(io)
            if header is None:
                logger.info("%s: %s sent no header in time", protocol, member.address)
                return
            try:
                request = _push_request(header, member.address, PUSH_KINDS[protocol])
                inline = header.get("inline") is True
                if inline and request.size >= INLINE_MAX_BYTES:
                    raise ProtocolViolationError(
                        f"an inline push is under {INLINE_MAX_BYTES} bytes, not {request.size}"
                    )
            except ProtocolViolationError as exc:
                await write_message(io, refusal("bad_request", str(exc)))
                ok = True
                return
            ok = await self._receive_push(
                io, request, bulk_asked=header.get("bulk") is True, inline=inline
            )
        except (TransferInterruptedError, ProtocolViolationError) as exc:
            logger.info("%s from %s failed: %s", protocol, member.address, exc)
        finally:
            if ok:
                await close_quietly(stream)
            else:
                await reset_quietly(stream)

    async def _receive_push(
        self, io: StreamIO | _SessionIO, request: PushRequest, *, bulk_asked: bool, inline: bool
    ) -> bool:
        """Decide, then read the whole payload, check it, store it, answer.

        True when the exchange ended with an answer (stored, or refused), False when the stream
        must be reset (the payload did not arrive in time).
        """
        push_policy = self._push_policies.get(request.kind)
        if push_policy is None:
            await write_message(
                io, refusal("not_accepting", f"this peer does not accept {request.kind} pushes now")
            )
            return True
        limit = push_policy.limit(request.round_id)
        if request.size > limit:
            # refused on the header alone: not one byte of the payload is read
            await write_message(
                io, refusal("too_large", f"{request.size} bytes over the limit of {limit}")
            )
            return True
        already = self.store.find(  # an index in memory (BlobStore.find)
            kind=request.kind,
            round_id=request.round_id,
            sender=request.sender,
            digest=request.digest,
        )
        if already:
            # a retry after a lost final answer: acknowledge without a second transfer
            await write_message(io, accepted(stored=True))
            return True
        sender = request.sender
        in_flight = self._inbound_by_sender.get(sender, 0)
        if in_flight >= self.max_inbound_per_sender:
            # counted while waiting too: a member that queues many pushes must not collect
            # every slot as they free up
            logger.info("refused %s from %s: %d pushes in flight", request.kind, sender, in_flight)
            await write_message(
                io,
                refusal(
                    "sender_busy",
                    f"{in_flight} of your pushes are in flight here (at most "
                    f"{self.max_inbound_per_sender}); retry when one has finished",
                ),
            )
            return True
        self._inbound_by_sender[sender] = in_flight + 1
        try:
            return await self._validate_read_store(
                io, request, push_policy, limit, bulk_asked=bulk_asked, inline=inline
            )
        finally:
            left = self._inbound_by_sender[sender] - 1
            if left:
                self._inbound_by_sender[sender] = left
            else:
                del self._inbound_by_sender[sender]

    async def _validate_read_store(
        self,
        io: StreamIO | _SessionIO,
        request: PushRequest,
        push_policy: PushPolicy,
        limit: int,
        *,
        bulk_asked: bool,
        inline: bool,
    ) -> bool:
        """Validate, wait for a slot, read the whole payload (into memory, or into a staged file
        of a disk store) and check it, store it, answer (on the channel it came over). ``io``
        is the libp2p stream the request came on, or the bulk session it came on (its payload
        right behind it: no "accepted" first).

        True when the exchange ended with an answer (stored, or refused), False when the stream
        must be reset (the payload did not arrive in time).
        """
        reason = await _validate(push_policy.validator, request)
        if reason is not None:
            logger.info("refused %s from %s: %s", request.kind, request.sender, reason)
            await write_message(io, refusal("refused", reason))
            return True
        got_slot = False
        with trio.move_on_after(self.slot_wait_s):
            await self._inbound.acquire()
            got_slot = True
        if not got_slot:
            logger.info("refused %s from %s: no free slot", request.kind, request.sender)
            await write_message(
                io,
                refusal(
                    "busy",
                    f"all {self._inbound.total_tokens:g} inbound slots stayed taken for "
                    f"{self.slot_wait_s:g} s; retry later",
                ),
            )
            return True
        staged: _Staged | None = None
        try:
            if inline:
                return await self._receive_inline(io, request, limit)
            bulk = self.host.bulk
            wanted = _wants_bulk(bulk, bulk_asked, request.size)
            staging = await _staging_of(self.store)
            async with _maybe_offer(bulk, wanted) as (offer, ticket):
                channel: Channel | None
                if isinstance(io, _SessionIO):
                    channel = io.channel
                elif offer is None:
                    await widen_receive_window(io.stream, request.size)
                    await write_message(io, accepted())
                    channel = io
                else:
                    await write_message(io, accepted(bulk=offer.to_wire()))
                    channel = await _serving_channel(io, offer, ticket)
                    if isinstance(channel, _Prefixed):  # the caller could not reach the port
                        await widen_receive_window(io.stream, request.size)
                if channel is None:
                    logger.info("%s from %s: no payload came", request.kind, request.sender)
                    return False
                tag = CONTENT_TAGS[request.kind]
                ref = BlobRef(
                    request.kind, request.round_id, request.sender, request.digest, request.size
                )
                partial: PartialPayload | None = None
                with trio.move_on_after(self.policy.deadline_s(request.size)):
                    try:
                        # read everything before any processing: a receiver that stops reading
                        # for 5 s makes the sender's yamux fail (STACK.md), so storing comes after
                        if staging is None:
                            received = PartialPayload(request.size, request.digest, limit, tag=tag)
                        else:
                            staged = _Staged(staging, f"{request.kind}-{request.round_id}-")
                            received = FilePayload(
                                request.size, request.digest, limit, tag=tag, file=staged.file
                            )
                        await _receive_on(channel, received)
                        partial = received
                    except PayloadHashMismatchError as exc:
                        if isinstance(io, _SessionIO):
                            io.read_whole = True
                        logger.warning("refused %s from %s: %s", request.kind, request.sender, exc)
                        await _answer(channel, io, refusal("hash_mismatch", str(exc)))
                        return True
                if partial is None:
                    logger.info("%s from %s passed its deadline", request.kind, request.sender)
                    return False
                # storing is not bounded by the transfer's deadline (a disk may be slow)
                if staged is None:
                    await trio.to_thread.run_sync(_put_taken, self.store, ref, partial)
                else:
                    assert isinstance(self.store, FileBlobStore)
                    await trio.to_thread.run_sync(self.store.put_file, ref, staged.path)
                    staged.kept = True
                _log_stored(request, "bulk channel" if isinstance(channel, BulkChannel) else "")
                if isinstance(io, _SessionIO):
                    io.read_whole = True
                    await io.channel.write_message(accepted(session=True))
                elif (
                    isinstance(channel, BulkChannel)
                    and bulk is not None
                    and ticket is not None
                    and bulk.keeps_session(ticket, request.sender)
                ):
                    # the caller may send its next request on this connection
                    await channel.write_message(accepted(session=True))
                    bulk.park(channel, request.sender)
                else:
                    await _answer(channel, io, accepted())
                return True
        finally:
            self._inbound.release()
            if staged is not None:
                staged.close()

    async def _receive_inline(
        self, io: StreamIO | _SessionIO, request: PushRequest, limit: int
    ) -> bool:
        """Read an inline push's payload (already on its way, small: into memory), check it,
        store it, answer once: ``stored``, or a refusal."""
        received = PartialPayload(
            request.size, request.digest, limit, tag=CONTENT_TAGS[request.kind]
        )
        verified = False
        with trio.move_on_after(self.policy.deadline_s(request.size)):
            try:
                await received.receive_verified(io)
                verified = True
            except PayloadHashMismatchError as exc:
                logger.warning("refused %s from %s: %s", request.kind, request.sender, exc)
                await write_message(io, refusal("hash_mismatch", str(exc)))
                return True
        if not verified:
            logger.info("%s from %s passed its deadline", request.kind, request.sender)
            return False
        ref = BlobRef(request.kind, request.round_id, request.sender, request.digest, request.size)
        await trio.to_thread.run_sync(_put_taken, self.store, ref, received)
        _log_stored(request, "inline")
        await write_message(io, accepted(stored=True))
        return True

    async def _serve_fetch(self, stream: INetStream, member: Member, protocol: str) -> None:
        io = StreamIO(stream)
        ok = False
        try:
            header = await self._read_header(io)
            if header is None:
                return
            ok = await self._answer_fetch(io, member, header, frozenset({FETCH_KINDS[protocol]}))
        except (TransferInterruptedError, ProtocolViolationError) as exc:
            logger.info("%s to %s failed: %s", protocol, member.address, exc)
        finally:
            if ok:
                await close_quietly(stream)
            else:
                await reset_quietly(stream)

    async def _answer_fetch(
        self,
        io: StreamIO | _SessionIO,
        member: Member,
        header: Mapping[str, Any],
        kinds: frozenset[BlobKind],
    ) -> bool:
        """Answer a fetch (on a libp2p stream, or on a bulk session): a refusal, or the blob
        with a serving slot. True when the exchange ended cleanly."""
        try:
            kind = _kind_field(header)
            if kind not in kinds:
                raise ProtocolViolationError(f"{kind} cannot be fetched here")
            digest = _digest_field(header)
            offset = _field(header, "offset", int)
            round_id = header.get("round")
        except ProtocolViolationError as exc:
            await write_message(io, refusal("bad_request", str(exc)))
            return True
        refs = await trio.to_thread.run_sync(lambda: self.store.find(kind=kind, digest=digest))
        if isinstance(round_id, int) and not isinstance(round_id, bool):
            refs = [r for r in refs if r.round_id == round_id]
        if not refs:
            await write_message(io, refusal("not_found", f"no {kind} {digest.hex()} here"))
            return True
        got_slot = False
        if header.get("others") is True:
            with contextlib.suppress(trio.WouldBlock):
                self._serving.acquire_nowait()
                got_slot = True
        else:
            with trio.move_on_after(self.slot_wait_s):
                await self._serving.acquire()
                got_slot = True
        if not got_slot:
            logger.info("%s for %s: every serving slot is taken", kind, member.address)
            busy = f"serving {self._serving.total_tokens:g} fetches already; retry later"
            await write_message(io, refusal("busy", busy))
            return True
        try:
            return await self._serve_held(io, member, kind, header, digest, offset)
        finally:
            self._serving.release()

    async def _serve_held(
        self,
        io: StreamIO | _SessionIO,
        member: Member,
        kind: BlobKind,
        header: Mapping[str, Any],
        digest: bytes,
        offset: int,
    ) -> bool:
        """Send a blob we hold (with a serving slot); True if the stream ends cleanly."""
        ok = False
        source = await trio.to_thread.run_sync(self._open_source, digest)
        if source is None:  # pruned in between
            await write_message(io, refusal("not_found", f"no {kind} {digest.hex()} here"))
            return True
        try:
            size = source[1] if isinstance(source, tuple) else len(source)
            if not 0 <= offset <= size:
                await write_message(io, refusal("bad_request", f"offset {offset} out of range"))
                return True
            wanted = _wants_bulk(self.host.bulk, header.get("bulk") is True, size - offset)
            async with _maybe_offer(self.host.bulk, wanted) as (offer, ticket):
                fields: dict[str, Any] = {"size": size, "digest": digest.hex(), "offset": offset}
                if offer is not None:
                    fields["bulk"] = offer.to_wire()
                await write_message(io, accepted(**fields))
                channel: Channel | None
                if isinstance(io, _SessionIO):  # the payload follows the answer on it
                    channel = io.channel
                else:
                    channel = await _serving_channel(io, offer, ticket)
                if channel is None:
                    logger.info("%s for %s: no bulk connection came", kind, member.address)
                    return False
                if offer is not None and not isinstance(channel, BulkChannel):
                    if (await read_message(channel)).get("via") != "stream":
                        raise ProtocolViolationError("expected the bulk connection or via=stream")
                    channel = io
                with trio.move_on_after(self.policy.deadline_s(size - offset)) as scope:
                    await _send_on(
                        channel,
                        source,
                        tag=CONTENT_TAGS[kind],
                        digest=digest,
                        offset=offset,
                        chunk_bytes=self.policy.chunk_bytes,
                    )
                    ok = True
                if scope.cancelled_caught:
                    logger.info("serving %s to %s passed its deadline", kind, member.address)
                bulk = self.host.bulk
                if (
                    ok
                    and offer is not None
                    and isinstance(channel, BulkChannel)
                    and bulk is not None
                    and bulk.keeps_session(ticket, member.address)
                ):
                    # the fetcher keeps its end for its next request to us (it has no answer
                    # to wait for: a fetch ends with the payload's trailer)
                    bulk.park(channel, member.address)
            return ok
        finally:
            if isinstance(source, tuple):
                source[0].close()

    def _open_source(self, digest: bytes) -> tuple[IO[bytes], int] | bytes | None:
        """A stored blob to serve: an open file and its size (a disk store), or its bytes."""
        if isinstance(self.store, FileBlobStore):
            file = self.store.open_blob(digest)
            if file is None:
                return None
            return file, os.fstat(file.fileno()).st_size
        return self.store.get(digest)

    async def _serve_round_key(self, stream: INetStream, member: Member) -> None:
        io = StreamIO(stream)
        ok = False
        try:
            header = await self._read_header(io)
            if header is None:
                return
            ok = await self._answer_round_key(io, member, header)
        except (TransferInterruptedError, ProtocolViolationError) as exc:
            logger.info("round key to %s failed: %s", member.address, exc)
        finally:
            if ok:
                await close_quietly(stream)
            else:
                await reset_quietly(stream)

    async def _answer_round_key(
        self, io: StreamIO, member: Member, header: Mapping[str, Any]
    ) -> bool:
        """Ask the provider, then send the context and the key; False if the stream must be
        reset (sending passed its deadline)."""
        try:
            round_id = _field(header, "round", int)
            if round_id < 0:
                raise ProtocolViolationError("round must be non-negative")
        except ProtocolViolationError as exc:
            await write_message(io, refusal("bad_request", str(exc)))
            return True
        provider = self._round_key_provider
        if provider is None:
            await write_message(io, refusal("not_found", "this peer serves no round keys"))
            return True
        bundle: object = None
        decided = False
        # the caller waits base_timeout_s for this answer: say "busy" (retryable) while it still
        # listens, rather than let it time out and drop a healthy connection
        with trio.move_on_after(self.policy.base_timeout_s / 2):
            bundle = await _provide(provider, member.address, round_id)
            decided = True
        if not decided:
            logger.info("round key of round %d for %s: no answer in time", round_id, member.address)
            await write_message(io, refusal("busy", "the steward could not decide in time; retry"))
            return True
        if bundle is None:
            logger.info("refused round %d's key to %s", round_id, member.address)
            reason = f"no round key for you for round {round_id}"
            await write_message(io, refusal("refused", reason))
            return True
        if not isinstance(bundle, RoundKeyBundle) or not isinstance(
            bundle.sealed_key, bytes | None
        ):
            raise TypeError(f"a round key provider returned {bundle!r:.80}")
        context, key = bytes(bundle.context), bundle.sealed_key
        context_digest = await trio.to_thread.run_sync(
            content_digest, BlobKind.ROUND_CONTEXT, context
        )
        key_digest = None if key is None else content_digest(BlobKind.ROUND_KEY, key)
        await write_message(
            io,
            accepted(
                round=round_id,
                context_size=len(context),
                context_digest=context_digest.hex(),
                key_size=None if key is None else len(key),
                key_digest=None if key_digest is None else key_digest.hex(),
            ),
        )
        chunk = self.policy.chunk_bytes
        with trio.move_on_after(self.policy.deadline_s(len(context) + len(key or b""))):
            await send_payload(
                io,
                context,
                tag=CONTENT_TAGS[BlobKind.ROUND_CONTEXT],
                whole_digest=context_digest,
                chunk_bytes=chunk,
                write_bytes=LIBP2P_WRITE_BYTES,
            )
            if key is not None:
                await send_payload(
                    io,
                    key,
                    tag=CONTENT_TAGS[BlobKind.ROUND_KEY],
                    whole_digest=key_digest,
                    chunk_bytes=chunk,
                    write_bytes=LIBP2P_WRITE_BYTES,
                )
            logger.info(
                "served round %d's context%s to %s",
                round_id,
                "" if key is None else " and sealed key",
                member.address,
            )
            return True
        logger.info("serving round %d's key to %s passed its deadline", round_id, member.address)
        return False

    async def _serve_status(self, stream: INetStream, member: Member) -> None:
        io = StreamIO(stream)
        ok = False
        try:
            if await self._read_header(io) is None:
                return
            status: dict[str, Any] = {
                "address": self.host.address,
                "peer_id": self.host.peer_id,
                "protocols": [
                    *PUSH_KINDS,
                    *FETCH_KINDS,
                    ROUND_KEY_FETCH_PROTOCOL,
                    STATUS_PROTOCOL,
                ],
                "members": len(self.host.gate.members),
                "connected_members": len(self.host.connected_members()),
                "time": time.time(),
            }
            if self.status_provider is not None:
                status.update(self.status_provider())
            await write_message(io, accepted(status=status))
            ok = True
        except (TransferInterruptedError, ProtocolViolationError) as exc:
            logger.info("status for %s failed: %s", member.address, exc)
        finally:
            if ok:
                await close_quietly(stream)
            else:
                await reset_quietly(stream)


# --- calling side -------------------------------------------------------------------------

T = TypeVar("T")
_RETRYABLE = (TransferTimeoutError, TransferInterruptedError, PeerUnreachableError)


async def _with_retries(
    host: P2PHost,
    member: Member,
    policy: TransferPolicy,
    what: str,
    attempt_fn: Callable[[], Awaitable[T]],
) -> T:
    """Run ``attempt_fn`` up to ``policy.attempts`` times; each attempt sets its own deadline.

    With ``attempts=1`` the one failure is raised as it is, at once (no backoff is slept).
    """
    last: P2PError | None = None
    for attempt in range(1, policy.attempts + 1):
        await trio.sleep(policy.backoff_before(attempt))
        try:
            return await attempt_fn()
        except TransferRefusedError as exc:
            if exc.code not in RETRYABLE_REFUSALS:
                raise
            last = exc
            logger.info(
                "%s to %s: attempt %d/%d refused, %s",
                what,
                member.address,
                attempt,
                policy.attempts,
                exc,
            )
        except _RETRYABLE as exc:
            last = exc
            logger.info(
                "%s to %s: attempt %d/%d failed: %s",
                what,
                member.address,
                attempt,
                policy.attempts,
                exc,
            )
            if isinstance(exc, TransferTimeoutError):
                # a yamux connection can stall silently; a fresh one is the cure
                await host.drop_connections(member)
    assert last is not None
    raise last


class _Deadline:
    """A cancel scope whose deadline can be moved once the size is known; typed on expiry."""

    def __init__(self, seconds: float, what: str) -> None:
        self.scope = trio.CancelScope(deadline=trio.current_time() + seconds)
        self.what = what

    def extend_to(self, seconds: float) -> None:
        self.scope.deadline = trio.current_time() + seconds

    def __enter__(self) -> _Deadline:
        self.scope.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        # the scope swallows only its own Cancelled, which becomes the typed timeout
        self.scope.__exit__(*exc_info)
        if self.scope.cancelled_caught:
            raise TransferTimeoutError(f"{self.what} did not finish before its deadline")


async def push(
    host: P2PHost,
    address: str,
    kind: BlobKind,
    round_id: int,
    payload: bytes,
    *,
    policy: TransferPolicy,
    digest: bytes | None = None,
) -> None:
    """Push ``payload`` to the member at ``address``; returns once it is stored there.

    ``digest`` is the content digest the sender committed to (computed when not given); the
    receiver refuses the payload (``hash_mismatch``) if the bytes do not hash to it. A payload
    of :data:`~swarm.p2p.bulk.BULK_MIN_BYTES` or more goes over the receiver's bulk channel
    when it offers one and it can be reached, else over the libp2p stream.
    """
    member = host.member(address)
    protocol = PROTOCOL_OF_PUSH[kind]
    if digest is not None:
        claimed = digest
    elif len(payload) < INLINE_MAX_BYTES:  # ~0.1 ms: less than a worker thread's round trip
        claimed = content_digest(kind, payload)
    else:  # hashing 100 MB takes ~60 ms: not on the event loop, where other transfers run
        claimed = await trio.to_thread.run_sync(content_digest, kind, payload)

    async def attempt() -> None:
        header = {
            "v": WIRE_VERSION,
            "kind": str(kind),
            "round": round_id,
            "digest": claimed.hex(),
            "size": len(payload),
        }
        inline = len(payload) < INLINE_MAX_BYTES
        if inline:
            header["inline"] = True
        elif _asks_bulk(host, member, len(payload)):
            header["bulk"] = True
        with _Deadline(policy.deadline_s(len(payload)), f"pushing {kind} to {address}"):
            # a session (the TLS connection an earlier bulk transfer left) carries small pushes
            # too: measured 1.8 ms of CPU for a 2 KB push (both ends) against 9 ms for an
            # inline push on a new libp2p stream, and a masked round is mostly small pushes
            if host.bulk is not None:
                session = await host.bulk.take_session(member.address)
                if session is not None and await _push_on_session(
                    host.bulk, member, session, header, payload, claimed, policy
                ):
                    return
            stream = await host.open_stream(member, protocol, timeout_s=policy.connect_timeout_s)
            io = StreamIO(stream)
            ok = False
            try:
                if inline:
                    await _push_inline(io, header, payload, kind, claimed)
                    ok = True
                    return
                await write_message(io, header)
                answer = await read_message(io)
                raise_if_refused(answer)
                if not answer.get("stored"):
                    bulk_io = await _calling_channel(
                        host, member, stream, io, answer, say_fallback=False
                    )
                    channel: Channel = io if bulk_io is None else bulk_io
                    try:
                        # the trailer is the committed digest: the receiver checks what arrives
                        # against it (a second hash pass here would only repeat the commitment)
                        await _send_on(
                            channel,
                            payload,
                            tag=CONTENT_TAGS[kind],
                            digest=claimed,
                            offset=0,
                            chunk_bytes=policy.chunk_bytes,
                        )
                        # the outcome comes on the channel the payload went over
                        final = (
                            await read_message(io)
                            if bulk_io is None
                            else await bulk_io.read_message()
                        )
                        raise_if_refused(final)
                        if bulk_io is not None and final.get("session") is True:
                            assert host.bulk is not None  # it dialled bulk_io
                            if host.bulk.keep_session(member.address, bulk_io):
                                bulk_io = None  # kept for the next push to this member
                    finally:
                        if bulk_io is not None:
                            await bulk_io.aclose()
                ok = True
            except TransferRefusedError:
                ok = True  # the peer answered; the stream ended cleanly
                raise
            finally:
                await (close_quietly(stream) if ok else reset_quietly(stream))

    await _with_retries(host, member, policy, f"push {kind}", attempt)


async def _push_on_session(
    bulk: BulkEndpoint,
    member: Member,
    session: BulkChannel,
    header: Mapping[str, Any],
    payload: bytes,
    digest: bytes,
    policy: TransferPolicy,
) -> bool:
    """Push over a session kept from an earlier transfer to ``member`` (bulk.py): the request,
    the payload and the answers all on it. True once the payload is stored there; False when
    the session broke (the caller then pushes as if it had none: a push is idempotent, so one
    that did land is answered ``stored``). A refusal is raised; the receiver closes the session
    after one (the payload it did not read is still on its way), and so does this side."""
    try:
        answer = await session.push({**header, "op": "push"}, payload, digest, policy.chunk_bytes)
    except (TransferInterruptedError, ProtocolViolationError) as exc:
        logger.info("bulk session to %s ended (%s); opening a new stream", member.address, exc)
        await session.aclose()
        return False
    except BaseException:
        await session.aclose()
        raise
    if answer.get("session") is not True or not bulk.keep_session(member.address, session):
        await session.aclose()  # the receiver closes a session after a refusal
    raise_if_refused(answer)
    return True


async def _fetch_on_session(
    bulk: BulkEndpoint,
    member: Member,
    session: BulkChannel,
    request: Mapping[str, Any],
    receipt: _Receipt,
    max_size: int,
    policy: TransferPolicy,
    deadline: _Deadline,
) -> tuple[bool, bytes | None]:
    """Fetch over a session kept from an earlier transfer with ``member``: the request, the
    provider's answer, the payload behind it. ``(True, bytes)`` (None for bytes in the
    receipt's file), or ``(False, None)`` when the session broke (what arrived stays in the
    receipt: the caller resumes it the usual way). A refusal is raised and the session kept
    (nothing was in flight); any other failure closes it."""
    keep = False
    try:
        answer = await session.exchange(request)
        if answer.get("ok") is not True:
            keep = True
            raise_if_refused(answer)
        size = _field(answer, "size", int)
        if size > max_size:
            raise PayloadTooLargeError(size, max_size)
        offset = request["offset"]
        if (
            _digest_field(answer) != bytes.fromhex(request["digest"])
            or _field(answer, "offset", int) != offset
        ):
            raise ProtocolViolationError("the answer does not match the request")
        partial = receipt.start(size)
        deadline.extend_to(policy.deadline_s(size - offset))
        await session.receive(partial)
        data = None if isinstance(partial, FilePayload) else partial.take()
        keep = True
        return True, data
    except TransferInterruptedError as exc:
        logger.info("bulk session to %s ended (%s); opening a new stream", member.address, exc)
        return False, None
    finally:
        if not (keep and bulk.keep_session(member.address, session)):
            await session.aclose()


async def _push_inline(
    io: StreamIO, header: Mapping[str, Any], payload: bytes, kind: BlobKind, digest: bytes
) -> None:
    """Header, payload and trailer in one write; then the receiver's one answer (two from a
    receiver that predates inline pushes: ok, then its final answer)."""
    out = Coalesced(io, LIBP2P_WRITE_BYTES)
    await write_message(out, header)
    await send_payload(out, payload, tag=CONTENT_TAGS[kind], whole_digest=digest)
    await out.flush()
    answer = await read_message(io)
    raise_if_refused(answer)
    if not answer.get("stored"):
        raise_if_refused(await read_message(io))


#: failures after which another provider is worth trying but this one is not (it answered, or
#: misbehaved); the others (:data:`_RETRYABLE`, busy refusals) are tried again in a later pass
_DEFINITIVE = (
    TransferRefusedError,
    PayloadTooLargeError,
    ProtocolViolationError,
    PayloadHashMismatchError,
    NotAMemberPeerError,
)


class _Receipt:
    """What a fetch received so far, kept across attempts and providers: the same digest is the
    same bytes wherever they come from, so a retry resumes at the offset reached."""

    def __init__(self, kind: BlobKind, digest: bytes, max_size: int, staging: Path | None) -> None:
        self.kind, self.digest, self.max_size = kind, digest, max_size
        self.staging = staging
        self.partial: PartialPayload | None = None
        self.staged: _Staged | None = None

    @property
    def offset(self) -> int:
        return 0 if self.partial is None else self.partial.received

    def start(self, size: int) -> PartialPayload:
        if self.partial is None or self.partial.size != size:
            if self.offset:
                raise ProtocolViolationError("size changed between attempts")
            tag = CONTENT_TAGS[self.kind]
            if self.staging is None:
                self.partial = PartialPayload(size, self.digest, self.max_size, tag=tag)
            else:
                if self.staged is None:
                    self.staged = _Staged(self.staging, f"{self.kind}-fetch-")
                self.partial = FilePayload(
                    size, self.digest, self.max_size, tag=tag, file=self.staged.file
                )
        return self.partial

    def close(self) -> None:
        if self.staged is not None:
            self.staged.close()


async def _fetch(
    host: P2PHost,
    providers: Sequence[str],
    kind: BlobKind,
    digest: bytes,
    *,
    max_size: int,
    policy: TransferPolicy,
    round_id: int | None,
    receipt: _Receipt,
) -> tuple[bytes | None, str]:
    """Fetch into ``receipt`` from the first of ``providers`` that delivers, in their order.

    Up to ``policy.attempts`` passes over the providers: each try is one attempt under its own
    deadline, telling the provider that others exist (so one with no serving slot free answers
    ``busy`` at once instead of queueing us; not on the last pass). A provider that answered
    no (a refusal other than ``busy``), sent something malformed or too large, or is not a
    member is skipped from then on; one that was busy, timed out, broke off or could not be
    reached is tried again in the next pass (after the backoff).
    Returns the bytes (an in-memory receipt; None when they are in the receipt's file) and the
    address of the provider that delivered them.
    """
    protocol = PROTOCOL_OF_FETCH[kind]
    if not providers:
        raise ValueError("fetch needs at least one provider")

    async def attempt(member: Member, others: bool) -> bytes | None:
        address = member.address
        what = f"fetching {kind} {digest.hex()[:12]} from {address}"
        with _Deadline(policy.base_timeout_s, what) as deadline:
            session = None if host.bulk is None else await host.bulk.take_session(address)
            if session is not None:
                assert host.bulk is not None
                asked: dict[str, Any] = {"op": "fetch", "v": WIRE_VERSION, "kind": str(kind)}
                asked.update(digest=digest.hex(), offset=receipt.offset)
                if round_id is not None:
                    asked["round"] = round_id
                if others:
                    asked["others"] = True
                done, fetched = await _fetch_on_session(
                    host.bulk, member, session, asked, receipt, max_size, policy, deadline
                )
                if done:
                    return fetched
            stream = await host.open_stream(member, protocol, timeout_s=policy.connect_timeout_s)
            io = StreamIO(stream)
            ok = False
            try:
                offset = receipt.offset
                request: dict[str, Any] = {
                    "v": WIRE_VERSION,
                    "kind": str(kind),
                    "digest": digest.hex(),
                    "offset": offset,
                }
                if round_id is not None:
                    request["round"] = round_id
                if others:  # a provider with no slot free says busy at once: we ask another
                    request["others"] = True
                if _asks_bulk(host, member, max_size - offset):
                    request["bulk"] = True
                else:  # the payload comes over this stream: a wide window before it starts
                    await widen_receive_window(stream, max_size - offset)
                await write_message(io, request)
                answer = await read_message(io)
                raise_if_refused(answer)
                size = _field(answer, "size", int)
                if size > max_size:
                    raise PayloadTooLargeError(size, max_size)
                if _digest_field(answer) != digest or _field(answer, "offset", int) != offset:
                    raise ProtocolViolationError("the answer does not match the request")
                partial = receipt.start(size)
                deadline.extend_to(policy.deadline_s(size - offset))
                bulk_io = await _calling_channel(
                    host, member, stream, io, answer, say_fallback=True
                )
                try:
                    if bulk_io is None and request.get("bulk"):
                        await widen_receive_window(stream, size - offset)
                    await _receive_on(io if bulk_io is None else bulk_io, partial)
                    data = None if isinstance(partial, FilePayload) else partial.take()
                    # the provider keeps its end as a session when its limits allow; if it did
                    # not, our next use finds it closed and dials anew
                    if (
                        bulk_io is not None
                        and host.bulk is not None
                        and host.bulk.keep_session(address, bulk_io)
                    ):
                        bulk_io = None
                finally:
                    if bulk_io is not None:
                        await bulk_io.aclose()
                ok = True
                return data
            except TransferRefusedError:
                ok = True
                raise
            finally:
                await (close_quietly(stream) if ok else reset_quietly(stream))

    last: BaseException | None = None
    skipped: set[str] = set()
    for attempt_no in range(1, policy.attempts + 1):
        live = [p for p in providers if p not in skipped]
        if not live:
            break
        await trio.sleep(policy.backoff_before(attempt_no))
        # on the last pass, a busy provider is waited for rather than passed over
        others = len(live) > 1 and attempt_no < policy.attempts
        for address in live:
            try:
                member = host.member(address)
                return await attempt(member, others), address
            except TransferRefusedError as exc:
                last = exc
                if exc.code not in RETRYABLE_REFUSALS:
                    skipped.add(address)
            except _DEFINITIVE as exc:
                last = exc
                skipped.add(address)
            except _RETRYABLE as exc:
                last = exc
                if isinstance(exc, TransferTimeoutError):
                    # a yamux connection can stall silently; a fresh one is the cure
                    with contextlib.suppress(NotAMemberPeerError):
                        await host.drop_connections(host.member(address))
            logger.info(
                "fetch %s from %s: pass %d/%d failed: %s",
                kind,
                address,
                attempt_no,
                policy.attempts,
                last,
            )
    assert last is not None
    raise last


async def fetch(
    host: P2PHost,
    address: str | Sequence[str],
    kind: BlobKind,
    digest: bytes,
    *,
    max_size: int,
    policy: TransferPolicy,
    round_id: int | None = None,
) -> bytes:
    """Fetch the blob of ``kind`` hashing to ``digest`` from the member at ``address`` (or from
    the first of several that delivers, in the order given: :func:`_fetch`).

    Refuses before reading a payload over ``max_size`` (PayloadTooLargeError); resumes an
    interrupted transfer at the offset it reached; returns only bytes that hash to ``digest``.
    """
    providers = [address] if isinstance(address, str) else list(address)
    receipt = _Receipt(kind, digest, max_size, None)
    data, _ = await _fetch(
        host,
        providers,
        kind,
        digest,
        max_size=max_size,
        policy=policy,
        round_id=round_id,
        receipt=receipt,
    )
    assert data is not None
    return data


async def fetch_into(
    host: P2PHost,
    providers: str | Sequence[str],
    kind: BlobKind,
    digest: bytes,
    store: BlobStore,
    *,
    max_size: int,
    policy: TransferPolicy,
    round_id: int | None = None,
) -> BlobRef:
    """:func:`fetch`, into ``store`` (under the round and the address of the provider that
    delivered it): on a disk store (store.FileBlobStore) the blob goes to a staged file while
    it is hashed and is renamed in, never whole in memory; otherwise it is put from memory."""
    providers = [providers] if isinstance(providers, str) else list(providers)
    staging = await _staging_of(store)
    receipt = _Receipt(kind, digest, max_size, staging)
    try:
        data, provider = await _fetch(
            host,
            providers,
            kind,
            digest,
            max_size=max_size,
            policy=policy,
            round_id=round_id,
            receipt=receipt,
        )
        assert receipt.partial is not None
        ref = BlobRef(kind, round_id or 0, provider, digest, receipt.partial.size)
        if data is not None:
            await trio.to_thread.run_sync(store.put, ref, data)
        else:
            assert isinstance(store, FileBlobStore) and receipt.staged is not None
            receipt.staged.file.flush()
            await trio.to_thread.run_sync(store.put_file, ref, receipt.staged.path)
            receipt.staged.kept = True
        return ref
    finally:
        receipt.close()


async def request_status(host: P2PHost, address: str, *, policy: TransferPolicy) -> dict[str, Any]:
    """The status a member reports about itself (small; one request, one answer)."""
    member = host.member(address)

    async def attempt() -> dict[str, Any]:
        with _Deadline(policy.base_timeout_s, f"status of {address}"):
            stream = await host.open_stream(
                member, STATUS_PROTOCOL, timeout_s=policy.connect_timeout_s
            )
            io = StreamIO(stream)
            ok = False
            try:
                await write_message(io, {"v": WIRE_VERSION})
                answer = await read_message(io)
                raise_if_refused(answer)
                status = answer.get("status")
                if not isinstance(status, dict):
                    raise ProtocolViolationError("status answer without a status object")
                ok = True
                return status
            except TransferRefusedError:
                ok = True
                raise
            finally:
                await (close_quietly(stream) if ok else reset_quietly(stream))

    return await _with_retries(host, member, policy, "status", attempt)


async def fetch_round_key(
    host: P2PHost,
    address: str,
    round_id: int,
    *,
    max_context: int,
    max_key: int,
    policy: TransferPolicy,
) -> RoundKeyBundle:
    """The round's public context and our sealed key (None if the steward gives us none) from
    the key steward at ``address``.

    Sizes over ``max_context`` / ``max_key`` are refused before a byte of them is read
    (PayloadTooLargeError); each part is checked against the digest the steward announced
    (transport integrity only: the caller checks the context against the ledger's hash and
    opens the sealed key itself).
    """
    member = host.member(address)

    async def attempt() -> RoundKeyBundle:
        what = f"fetching round {round_id}'s key from {address}"
        with _Deadline(policy.base_timeout_s, what) as deadline:
            stream = await host.open_stream(
                member, ROUND_KEY_FETCH_PROTOCOL, timeout_s=policy.connect_timeout_s
            )
            io = StreamIO(stream)
            ok = False
            try:
                await write_message(io, {"v": WIRE_VERSION, "round": round_id})
                answer = await read_message(io)
                raise_if_refused(answer)
                if _field(answer, "round", int) != round_id:
                    raise ProtocolViolationError("the answer is for another round")
                context_size = _field(answer, "context_size", int)
                context_digest = _digest_field(answer, "context_digest")
                has_key = answer.get("key_size") is not None
                key_size = _field(answer, "key_size", int) if has_key else 0
                key_digest = _digest_field(answer, "key_digest") if has_key else None
                if context_size > max_context:
                    raise PayloadTooLargeError(context_size, max_context, "round context")
                if key_size > max_key:
                    raise PayloadTooLargeError(key_size, max_key, "sealed round key")
                if context_size < 0 or key_size < 0:
                    raise ProtocolViolationError("negative size in the answer")
                deadline.extend_to(policy.deadline_s(context_size + key_size))
                await widen_receive_window(stream, context_size + key_size)
                context = await PartialPayload(
                    context_size,
                    context_digest,
                    max_context,
                    tag=CONTENT_TAGS[BlobKind.ROUND_CONTEXT],
                ).receive(io)
                key = None
                if key_digest is not None:
                    key = await PartialPayload(
                        key_size, key_digest, max_key, tag=CONTENT_TAGS[BlobKind.ROUND_KEY]
                    ).receive(io)
                ok = True
                return RoundKeyBundle(context=context, sealed_key=key)
            except TransferRefusedError:
                ok = True
                raise
            finally:
                await (close_quietly(stream) if ok else reset_quietly(stream))

    return await _with_retries(host, member, policy, "round key fetch", attempt)
