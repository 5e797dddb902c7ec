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
the one the ledger records) and stored it. A fetch: header
``{kind, round, digest, offset}`` -> answer ``{size, digest, offset}`` -> payload from ``offset``.
A round-key fetch: header ``{round}`` -> answer ``{round, context_size, context_digest, key_size,
key_digest}`` (the key fields null when the requester gets no key) -> the context's payload,
then the key's.

Every call runs under a deadline (``TransferPolicy.deadline_s``) and is retried on timeouts,
interruptions, unreachable peers and ``busy``/``sender_busy`` refusals; other refusals are
answers and are raised at once.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import trio
from libp2p.abc import INetStream
from libp2p.exceptions import BaseLibp2pError
from libp2p.network.stream.exceptions import StreamEOF

from swarm.errors import (
    P2PError,
    PayloadHashMismatchError,
    PayloadTooLargeError,
    PeerUnreachableError,
    ProtocolViolationError,
    TransferInterruptedError,
    TransferRefusedError,
    TransferTimeoutError,
)
from swarm.ledger.types import Member
from swarm.p2p.config import TransferPolicy
from swarm.p2p.framing import (
    DIGEST_BYTES,
    PartialPayload,
    accepted,
    raise_if_refused,
    read_message,
    refusal,
    send_payload,
    write_message,
)
from swarm.p2p.host import P2PHost, reset_quietly, widen_receive_window
from swarm.p2p.store import CONTENT_TAGS, BlobKind, BlobRef, BlobStore, content_digest

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
#: a peer gets this long to send a request header once its stream is open
HEADER_TIMEOUT_S = 10.0

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
                kind = _kind_field(header)
                if kind not in PUSH_KINDS[protocol]:
                    raise ProtocolViolationError(f"{kind} cannot be pushed over {protocol}")
                request = PushRequest(
                    sender=member.address,
                    kind=kind,
                    round_id=_field(header, "round", int),
                    digest=_digest_field(header),
                    size=_field(header, "size", int),
                )
                if request.round_id < 0 or request.size < 0:
                    raise ProtocolViolationError("round and size must be non-negative")
            except ProtocolViolationError as exc:
                await write_message(io, refusal("bad_request", str(exc)))
                ok = True
                return
            ok = await self._receive_push(io, request)
        except (TransferInterruptedError, ProtocolViolationError) as exc:
            logger.info("%s from %s failed: %s", protocol, member.address, exc)
        finally:
            if ok:
                await close_quietly(stream)
            else:
                await reset_quietly(stream)

    async def _receive_push(self, io: StreamIO, request: PushRequest) -> bool:
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
        already = await trio.to_thread.run_sync(
            lambda: self.store.find(
                kind=request.kind,
                round_id=request.round_id,
                sender=request.sender,
                digest=request.digest,
            )
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
            received = await self._validate_and_read(io, request, push_policy, limit)
        finally:
            left = self._inbound_by_sender[sender] - 1
            if left:
                self._inbound_by_sender[sender] = left
            else:
                del self._inbound_by_sender[sender]
        if not isinstance(received, bytes):
            return received
        data = received
        ref = BlobRef(request.kind, request.round_id, request.sender, request.digest, request.size)
        await trio.to_thread.run_sync(self.store.put, ref, data)
        logger.info(
            "stored %s of round %d from %s (%d bytes)",
            request.kind,
            request.round_id,
            request.sender,
            request.size,
        )
        await write_message(io, accepted())
        return True

    async def _validate_and_read(
        self, io: StreamIO, request: PushRequest, push_policy: PushPolicy, limit: int
    ) -> bytes | bool:
        """The payload once approved, read whole and checked; else what _receive_push returns."""
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
        try:
            await widen_receive_window(io.stream, request.size)
            await write_message(io, accepted())
            partial = PartialPayload(
                request.size, request.digest, limit, tag=CONTENT_TAGS[request.kind]
            )
            with trio.move_on_after(self.policy.deadline_s(request.size)):
                try:
                    # read everything before any processing: a receiver that stops reading for
                    # 5 s makes the sender's yamux fail (STACK.md), so storing comes after
                    return await partial.receive(io)
                except PayloadHashMismatchError as exc:
                    logger.warning("refused %s from %s: %s", request.kind, request.sender, exc)
                    await write_message(io, refusal("hash_mismatch", str(exc)))
                    return True
            logger.info("%s from %s passed its deadline", request.kind, request.sender)
            return False
        finally:
            self._inbound.release()

    async def _serve_fetch(self, stream: INetStream, member: Member, protocol: str) -> None:
        io = StreamIO(stream)
        ok = False
        try:
            header = await self._read_header(io)
            if header is None:
                return
            try:
                kind = _kind_field(header)
                if kind != FETCH_KINDS[protocol]:
                    raise ProtocolViolationError(f"{kind} cannot be fetched over {protocol}")
                digest = _digest_field(header)
                offset = _field(header, "offset", int)
                round_id = header.get("round")
            except ProtocolViolationError as exc:
                await write_message(io, refusal("bad_request", str(exc)))
                ok = True
                return
            refs = await trio.to_thread.run_sync(lambda: self.store.find(kind=kind, digest=digest))
            if isinstance(round_id, int) and not isinstance(round_id, bool):
                refs = [r for r in refs if r.round_id == round_id]
            data = await trio.to_thread.run_sync(self.store.get, digest) if refs else None
            if data is None:
                await write_message(io, refusal("not_found", f"no {kind} {digest.hex()} here"))
                ok = True
                return
            if not 0 <= offset <= len(data):
                await write_message(io, refusal("bad_request", f"offset {offset} out of range"))
                ok = True
                return
            await write_message(io, accepted(size=len(data), digest=digest.hex(), offset=offset))
            with trio.move_on_after(self.policy.deadline_s(len(data) - offset)) as scope:
                await send_payload(
                    io,
                    data,
                    tag=CONTENT_TAGS[kind],
                    offset=offset,
                    whole_digest=digest,
                    chunk_bytes=self.policy.chunk_bytes,
                )
                ok = True
            if scope.cancelled_caught:
                logger.info("serving %s to %s passed its deadline", kind, member.address)
        except (TransferInterruptedError, ProtocolViolationError) as exc:
            logger.info("%s to %s failed: %s", protocol, member.address, exc)
        finally:
            if ok:
                await close_quietly(stream)
            else:
                await reset_quietly(stream)

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
            )
            if key is not None:
                await send_payload(
                    io,
                    key,
                    tag=CONTENT_TAGS[BlobKind.ROUND_KEY],
                    whole_digest=key_digest,
                    chunk_bytes=chunk,
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
    receiver
    refuses the payload (``hash_mismatch``) if the bytes do not hash to it.
    """
    member = host.member(address)
    protocol = PROTOCOL_OF_PUSH[kind]
    # hashing 100 MB takes ~60 ms: not on the event loop, where other transfers run
    claimed = (
        await trio.to_thread.run_sync(content_digest, kind, payload) if digest is None else digest
    )
    header = {
        "v": WIRE_VERSION,
        "kind": str(kind),
        "round": round_id,
        "digest": claimed.hex(),
        "size": len(payload),
    }

    async def attempt() -> None:
        with _Deadline(policy.deadline_s(len(payload)), f"pushing {kind} to {address}"):
            stream = await host.open_stream(member, protocol, timeout_s=policy.connect_timeout_s)
            io = StreamIO(stream)
            ok = False
            try:
                await write_message(io, header)
                answer = await read_message(io)
                raise_if_refused(answer)
                if not answer.get("stored"):
                    await send_payload(
                        io, payload, tag=CONTENT_TAGS[kind], chunk_bytes=policy.chunk_bytes
                    )
                    raise_if_refused(await read_message(io))
                ok = True
            except TransferRefusedError:
                ok = True  # the peer answered; the stream ended cleanly
                raise
            finally:
                await (close_quietly(stream) if ok else reset_quietly(stream))

    await _with_retries(host, member, policy, f"push {kind}", attempt)


async def fetch(
    host: P2PHost,
    address: str,
    kind: BlobKind,
    digest: bytes,
    *,
    max_size: int,
    policy: TransferPolicy,
    round_id: int | None = None,
) -> bytes:
    """Fetch the blob of ``kind`` hashing to ``digest`` from the member at ``address``.

    Refuses before reading a payload over ``max_size`` (PayloadTooLargeError); resumes an
    interrupted transfer at the offset it reached; returns only bytes that hash to ``digest``.
    """
    member = host.member(address)
    protocol = PROTOCOL_OF_FETCH[kind]
    state: dict[str, PartialPayload] = {}

    async def attempt() -> bytes:
        what = f"fetching {kind} {digest.hex()[:12]} from {address}"
        with _Deadline(policy.base_timeout_s, what) as deadline:
            stream = await host.open_stream(member, protocol, timeout_s=policy.connect_timeout_s)
            io = StreamIO(stream)
            ok = False
            try:
                partial = state.get("partial")
                offset = 0 if partial is None else partial.received
                request: dict[str, Any] = {
                    "v": WIRE_VERSION,
                    "kind": str(kind),
                    "digest": digest.hex(),
                    "offset": offset,
                }
                if round_id is not None:
                    request["round"] = round_id
                await widen_receive_window(stream, max_size - offset)
                await write_message(io, request)
                answer = await read_message(io)
                raise_if_refused(answer)
                size = _field(answer, "size", int)
                if size > max_size:
                    raise PayloadTooLargeError(size, max_size)
                if _digest_field(answer) != digest or _field(answer, "offset", int) != offset:
                    raise ProtocolViolationError("the answer does not match the request")
                if partial is None or partial.size != size:
                    partial = state["partial"] = PartialPayload(
                        size, digest, max_size, tag=CONTENT_TAGS[kind]
                    )
                    if offset:
                        raise ProtocolViolationError("size changed between attempts")
                deadline.extend_to(policy.deadline_s(size - offset))
                data = await partial.receive(io)
                ok = True
                return data
            except TransferRefusedError:
                ok = True
                raise
            finally:
                await (close_quietly(stream) if ok else reset_quietly(stream))

    return await _with_retries(host, member, policy, f"fetch {kind}", attempt)


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
