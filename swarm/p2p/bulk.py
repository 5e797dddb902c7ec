"""The bulk channel: large payloads over TLS 1.3 on a TCP connection of their own.

py-libp2p 0.8.1 carries a payload in 64 KiB yamux frames, each through several layers of Python
(Noise message framing, yamux flow control with a window update per read, trio locks): about
0.6-1.0 CPU seconds per 100 MB on each side where raw TCP costs 0.04-0.10, and no setting of
ours changes its frame size (docs/benchmarks.md, "Peer network goodput"). So a payload of
:data:`BULK_MIN_BYTES` or more may travel beside the libp2p stream instead:

1. The request travels, as always, on a libp2p stream: Noise-authenticated, from a member (the
   membership gate), validated by the receiver like any other.
2. The side that serves the stream (the receiver of a push, the provider of a fetch) answers
   with a *bulk offer*: the port of its bulk listener, the SHA-256 fingerprint of its TLS
   certificate (a fresh self-signed one per process) and a one-time random token.
3. The calling side dials that port at the address its libp2p connection reached, pins the
   certificate by its fingerprint (no CA, no hostname), and sends the token first. The
   listener hands the TLS stream only to the transfer that issued the token, once; a
   connection with any other token, or none in time, is closed.
4. The payload moves over TLS with the same framing (length-prefixed chunks, digest trailer),
   and a push's outcome is answered there too. A caller that cannot reach the port sends the
   payload on the libp2p stream instead (a fetcher first says so there: ``{"via":
   "stream"}``); the serving side takes whichever comes first.

5. After a push or a fetch, the connection may stay open as a *session*: the caller's next
   push or fetch to that member travels on it whole (request, payload, answer), without a
   libp2p stream or a TLS handshake. See "sessions" below.

So identities and admission stay those of libp2p: the token is a secret that only the member
the offer was sent to (over Noise) knows, and the fingerprint binds the TLS server to the peer
that sent the offer. TLS is Python's ``ssl`` (OpenSSL) on a blocking socket in a worker
thread: no record layer of ours, and no Python per TLS record. If the bulk port cannot be
reached (a firewall), the payload goes over the libp2p stream; the caller then does not ask
that member for bulk again for :data:`UNREACHABLE_FOR_S`.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import struct
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from swarm.errors import (
    P2PError,
    PayloadHashMismatchError,
    PeerUnreachableError,
    ProtocolViolationError,
    TransferInterruptedError,
)
from swarm.p2p.framing import (
    DEFAULT_CHUNK_BYTES,
    MAX_CONTROL_BYTES,
    PartialPayload,
    encode_message,
    parse_message,
    read_message_sync,
    recv_exactly_sync,
    send_payload_sync,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger(__name__)

#: payloads smaller than this stay on the libp2p stream (a TLS handshake costs ~1-2 ms)
BULK_MIN_BYTES = 256 << 10
TOKEN_BYTES = 32
#: how long a bulk connection gets to present its token after the TLS handshake began
HANDSHAKE_TIMEOUT_S = 10.0
#: how long a caller tries to dial a bulk port before it falls back to the libp2p stream
DIAL_TIMEOUT_S = 3.0
#: a member whose bulk port could not be reached is not offered bulk for this long
UNREACHABLE_FOR_S = 300.0
#: a session (a bulk connection kept for the next transfer) the caller has not used for this
#: long is closed by the serving side; the caller stops using its end a little earlier, so
#: that it does not send a request into a connection being closed
SESSION_IDLE_S = 120.0
SESSION_REUSE_S = SESSION_IDLE_S - 20.0
#: sessions a serving side keeps per member and in all (each is a socket, and no thread while
#: it waits); a transfer beyond them closes its connection when it ends, as before sessions
SESSIONS_PER_MEMBER = 2
MAX_SESSIONS = 64
#: how long a session's request may take to arrive once its first byte has
REQUEST_TIMEOUT_S = 10.0


def _self_signed() -> tuple[bytes, bytes]:
    """A fresh P-256 key and a self-signed certificate for it (PEM); pinned, never CA-checked."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "swarm bulk channel")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _server_context() -> tuple[ssl.SSLContext, bytes]:
    """A TLS 1.3 server context with a fresh certificate, and that certificate's fingerprint."""
    key_pem, cert_pem = _self_signed()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # load_cert_chain reads files only: a private folder, removed at once
    with tempfile.TemporaryDirectory(prefix="swarm-bulk-") as folder:
        os.chmod(folder, 0o700)
        cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_path.write_bytes(cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        context.load_cert_chain(cert_path, key_path)
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode())
    return context, hashlib.sha256(der).digest()


def _client_context() -> ssl.SSLContext:
    """TLS 1.3, no CA and no hostname: the server's certificate is pinned by fingerprint."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


#: a blocking read or write on the bulk channel that makes no progress for this long fails
#: (the caller's deadline usually ends it first: the socket is then shut down under it)
IO_TIMEOUT_S = 60.0

RetT = TypeVar("RetT")


async def _in_thread(fn: Callable[..., RetT], *args: Any) -> RetT:
    """Run blocking ``fn`` in a worker thread; on cancellation trio stops waiting for it (the
    caller then shuts its socket down, which ends it)."""
    run: Any = trio.to_thread.run_sync  # trio-typing's stub predates abandon_on_cancel
    result: RetT = await run(fn, *args, abandon_on_cancel=True)
    return result


class BulkChannel:
    """One TLS 1.3 connection of the bulk channel, driven from worker threads.

    The socket is a blocking ``ssl.SSLSocket``: OpenSSL encrypts, decrypts and moves whole
    chunks without the event loop (trio's SSLStream would cost a round of Python per 16 KiB
    record). Each call runs in a thread; if the caller is cancelled (its deadline), the socket
    is shut down under the thread, which then ends at once.
    """

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock

    async def _guarded(self, fn: Callable[[], RetT], broke: str) -> RetT:
        """``fn``, blocking work on this connection, in a worker thread (:meth:`_run`). A
        connection that broke under it (ssl.SSLError, a timeout, a closed socket: OSError or
        ValueError) is TransferInterruptedError(``broke``: why); our own errors (a hash
        mismatch, a malformed chunk or message: the caller answers those) pass as they are."""

        def guarded() -> RetT:
            try:
                return fn()
            except P2PError:
                raise
            except (OSError, ValueError) as exc:
                raise TransferInterruptedError(f"{broke}: {exc!r}") from exc

        return await self._run(guarded)

    async def _run(self, fn: Callable[..., RetT], *args: Any) -> RetT:
        try:
            return await _in_thread(fn, *args)
        except PayloadHashMismatchError:
            raise  # the payload arrived whole: the connection carries the refusal back
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        """Shut the connection down under whatever thread uses it (never raises). This is
        socket.socket's own shutdown: SSLSocket.shutdown would drop its SSL object under a
        thread that may be inside it."""
        _shut(self.sock)

    async def send(
        self,
        source: bytes | bytearray | memoryview | IO[bytes],
        size: int,
        *,
        digest: bytes,
        offset: int = 0,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        """framing.send_payload_sync: ``source[offset:size]`` in chunks, then ``digest``."""

        def send() -> None:
            send_payload_sync(
                self.sock, source, size, digest=digest, offset=offset, chunk_bytes=chunk_bytes
            )

        await self._guarded(send, "bulk channel broke while sending")

    async def write(self, data: bytes) -> None:
        """framing.ByteStream's write (a session's control messages)."""

        await self._guarded(lambda: self.sock.sendall(data), "bulk channel broke")

    async def read(self, max_bytes: int) -> bytes:
        """framing.ByteStream's read: b"" at the end of the stream."""

        return await self._guarded(lambda: self.sock.recv(max_bytes), "bulk channel broke")

    async def write_message(self, message: Mapping[str, Any]) -> None:
        """A control message (framing.encode_message) on this connection."""
        await self.write(encode_message(message))

    async def read_message(self) -> dict[str, Any]:
        """A control message from this connection."""

        return await self._guarded(lambda: read_message_sync(self.sock), "bulk channel broke")

    async def exchange(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Write a control message and read the answer, in one thread hand-off (a session's
        fetch: the request, then the provider's answer, with the payload behind it)."""
        data = encode_message(message)

        def exchange() -> dict[str, Any]:
            self.sock.sendall(data)
            return read_message_sync(self.sock)

        return await self._guarded(exchange, "bulk session broke")

    async def push(
        self, header: Mapping[str, Any], payload: bytes, digest: bytes, chunk_bytes: int
    ) -> dict[str, Any]:
        """A session's push: the header, the payload right behind it (framing's chunks and
        ``digest`` as the trailer), then the receiver's answer; in one thread hand-off."""
        data = encode_message(header)

        def push() -> dict[str, Any]:
            self.sock.sendall(data)
            send_payload_sync(
                self.sock, payload, len(payload), digest=digest, chunk_bytes=chunk_bytes
            )
            return read_message_sync(self.sock)

        return await self._guarded(push, "bulk session broke")

    def idle_and_open(self) -> bool:
        """Whether an idle session is still usable: nothing to read (the other side neither
        closed it nor sent anything unasked). Never blocks."""
        try:
            self.sock.settimeout(0.0)
            try:
                self.sock.recv(1)
            finally:
                self.sock.settimeout(IO_TIMEOUT_S)
        except ssl.SSLWantReadError:
            return True  # nothing there (a TLS session ticket, if any, was consumed)
        except (OSError, ValueError):
            return False
        return False  # end of stream, or bytes nobody asked for

    async def wait_for_request(self, timeout_s: float) -> bool:
        """Wait until the session's next request begins to arrive (True), or ``timeout_s``
        passed (False). On the event loop: a waiting session holds no thread."""
        if self.sock.pending():
            return True
        with trio.move_on_after(timeout_s):
            await trio.lowlevel.wait_readable(self.sock.fileno())
            return True
        return False

    async def read_request(self) -> dict[str, Any]:
        """A session's next request (a control message), read on the event loop: it is small
        and already arriving, and a thread hand-off each way costs more than reading it."""
        (length,) = struct.unpack(">I", await self._read_on_loop(4))
        if length > MAX_CONTROL_BYTES:
            raise ProtocolViolationError(f"control message of {length} bytes announced")
        return parse_message(await self._read_on_loop(length))

    async def _read_on_loop(self, n: int) -> bytes:
        data = bytearray()
        self.sock.setblocking(False)
        try:
            while len(data) < n:
                try:
                    got = self.sock.recv(n - len(data))
                except ssl.SSLWantReadError:
                    await trio.lowlevel.wait_readable(self.sock.fileno())
                    continue
                except OSError as exc:
                    raise TransferInterruptedError(f"bulk session broke: {exc!r}") from exc
                if not got:
                    raise TransferInterruptedError(f"bulk session ended after {len(data)} bytes")
                data += got
        finally:
            with contextlib.suppress(OSError):
                self.sock.settimeout(IO_TIMEOUT_S)
        return bytes(data)

    async def receive(self, partial: PartialPayload) -> None:
        """framing.PartialPayload.receive_verified_sync over this connection."""

        await self._guarded(
            lambda: partial.receive_verified_sync(self.sock), "bulk channel broke while receiving"
        )

    async def aclose(self) -> None:
        """Close the connection (no TLS close_notify wait); never raises."""
        self.kill()
        if self.sock.fileno() != -1:
            # a session's task may be waiting for it to become readable
            trio.lowlevel.notify_closing(self.sock.fileno())
        with contextlib.suppress(OSError):
            self.sock.close()
        await trio.lowlevel.checkpoint()


def _blocking(stream: trio.SocketStream) -> socket.socket:
    """The stdlib socket under a trio socket stream, taken over (blocking, with a timeout)."""
    trio_sock: Any = stream.socket
    sock = socket.socket(fileno=trio_sock.detach())
    sock.setblocking(True)
    sock.settimeout(HANDSHAKE_TIMEOUT_S)
    return sock


@dataclass(frozen=True)
class BulkOffer:
    """What the serving side of a stream tells the caller (on that Noise stream)."""

    port: int
    fingerprint: bytes
    token: bytes

    def to_wire(self) -> dict[str, Any]:
        return {"port": self.port, "fp": self.fingerprint.hex(), "token": self.token.hex()}

    @classmethod
    def from_wire(cls, value: object) -> BulkOffer | None:
        """The offer in an answer, None where there is none; ProtocolViolationError if malformed."""
        if value is None:
            return None
        try:
            assert isinstance(value, dict)
            port, fp, token = value["port"], value["fp"], value["token"]
            assert isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536
            offer = cls(port, bytes.fromhex(fp), bytes.fromhex(token))
            assert len(offer.fingerprint) == 32 and len(offer.token) == TOKEN_BYTES
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            raise ProtocolViolationError(f"malformed bulk offer {value!r:.120}") from exc
        return offer


@dataclass
class _Ticket:
    ready: trio.Event = field(default_factory=trio.Event)
    channel: BulkChannel | None = None
    #: the connection went on as a session: the offer no longer closes it
    kept: bool = False


#: serves one request that arrived on a session from ``member`` (its address); True when the
#: exchange ended cleanly, so the session can wait for the next one
SessionHandler = Callable[[BulkChannel, str, dict[str, Any]], Awaitable[bool]]


class BulkEndpoint:
    """This peer's bulk listener (TLS 1.3, a fresh certificate) and its one-time tokens."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.bind_host = host
        self.requested_port = port
        self.port = 0  # once listening
        self._context, self.fingerprint = _server_context()
        self._tickets: dict[bytes, _Ticket] = {}
        self._unreachable: dict[str, float] = {}
        #: connections handed to a transfer, and ones closed for a bad or missing token
        self.admitted = 0
        self.refused = 0
        #: serving side: what serves a session's requests (none: no sessions are kept), the
        #: sessions kept per member, and the nursery their tasks run in
        self._session_handler: SessionHandler | None = None
        self._sessions: dict[str, set[BulkChannel]] = {}
        self._nursery: trio.Nursery | None = None
        #: calling side: idle sessions to each member, and since when each is idle
        self._idle: dict[str, list[tuple[float, BulkChannel]]] = {}
        #: requests served on sessions (not counting each session's first transfer)
        self.session_requests = 0

    @property
    def listening(self) -> bool:
        return self.port != 0

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; ``started()`` once the port is bound."""
        listeners = await trio.open_tcp_listeners(self.requested_port, host=self.bind_host)
        self.port = listeners[0].socket.getsockname()[1]
        logger.info("bulk channel (TLS 1.3) listening on %s port %d", self.bind_host, self.port)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for listener in listeners:
                    nursery.start_soon(self._accept_loop, listener, nursery)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self.port = 0
            self._nursery = None
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()
                idle, self._idle = self._idle, {}
                for kept in idle.values():
                    for _, channel in kept:
                        await channel.aclose()

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # e.g. out of file descriptors: keep serving
                logger.warning("bulk channel: accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self._admit, stream)

    async def _admit(self, raw: trio.SocketStream) -> None:
        """TLS handshake, then the token: hand the connection to its transfer, or close it."""
        sock = _blocking(raw)
        context = self._context

        wrapped: list[socket.socket] = [sock]

        def handshake() -> tuple[ssl.SSLSocket, bytes]:
            try:
                tls = context.wrap_socket(sock, server_side=True)
            except BaseException:
                sock.close()
                raise
            wrapped.append(tls)  # wrap_socket took the descriptor over from sock
            try:
                return tls, recv_exactly_sync(tls, TOKEN_BYTES)
            except BaseException:
                tls.close()
                raise

        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT_S):
                tls, token = await _in_thread(handshake)
        except (trio.TooSlowError, OSError, TransferInterruptedError) as exc:
            logger.info("bulk channel: a connection failed before its token: %r", exc)
            self.refused += 1
            _shut(wrapped[-1])  # ends a handshake thread still waiting; it closes the socket
            return
        ticket = self._take_ticket(token)
        if ticket is None:
            logger.warning("bulk channel: closing a connection without a valid token")
            self.refused += 1
            tls.close()
            return
        self.admitted += 1
        tls.settimeout(IO_TIMEOUT_S)
        ticket.channel = BulkChannel(tls)
        ticket.ready.set()

    def _take_ticket(self, token: bytes) -> _Ticket | None:
        for known, ticket in self._tickets.items():
            if hmac.compare_digest(known, token) and ticket.channel is None:
                return ticket
        return None

    @asynccontextmanager
    async def offer(self) -> AsyncIterator[tuple[BulkOffer, _Ticket]]:
        """A one-time offer; the ticket's channel is set once the caller connected with it. The
        token is forgotten (and any connection it brought closed) when the block ends."""
        token = secrets.token_bytes(TOKEN_BYTES)
        ticket = _Ticket()
        self._tickets[token] = ticket
        try:
            yield BulkOffer(self.port, self.fingerprint, token), ticket
        finally:
            del self._tickets[token]
            if ticket.channel is not None and not ticket.kept:
                await ticket.channel.aclose()

    # --- sessions: a connection kept after its transfer, for the member's next requests ---
    #
    # The connection was admitted with a token that only the member it was offered to (over
    # its Noise-authenticated libp2p stream) knew, and TLS protects what follows, so every
    # later request on it comes from that member: a request skips the libp2p stream and the
    # TLS handshake (~8 ms of a 10 MB push's ~35 ms on loopback). Each request is still
    # checked against the membership gate and the receiver's validator.

    def serve_sessions(self, handler: SessionHandler | None) -> None:
        """Keep connections as sessions and serve their requests with ``handler``."""
        self._session_handler = handler

    def keeps_session(self, ticket: _Ticket, member: str) -> bool:
        """Whether the connection this ticket brought can stay open as a session of ``member``
        (sessions are served, and under their limits); if so it is kept (see :meth:`park`)."""
        if (
            self._session_handler is None
            or self._nursery is None
            or ticket.channel is None
            or len(self._sessions.get(member, ())) >= SESSIONS_PER_MEMBER
            or sum(map(len, self._sessions.values())) >= MAX_SESSIONS
        ):
            return False
        ticket.kept = True
        return True

    def park(self, channel: BulkChannel, member: str) -> None:
        """Wait on ``channel`` for ``member``'s next request (after :meth:`keeps_session`)."""
        assert self._nursery is not None and self._session_handler is not None
        self._sessions.setdefault(member, set()).add(channel)
        self._nursery.start_soon(self._serve_session, channel, member, self._session_handler)

    async def _serve_session(
        self, channel: BulkChannel, member: str, handler: SessionHandler
    ) -> None:
        try:
            while await channel.wait_for_request(SESSION_IDLE_S):
                with trio.fail_after(REQUEST_TIMEOUT_S):
                    request = await channel.read_request()
                self.session_requests += 1
                if not await handler(channel, member, request):
                    return
        except (trio.TooSlowError, trio.ClosedResourceError, P2PError) as exc:
            # the member closed it (its end of stream), sent nonsense, or was removed
            logger.debug("bulk session of %s ended: %r", member, exc)
        except Exception:
            # an error escaping would end the endpoint's nursery, and with it the peer
            logger.exception("bulk session of %s failed", member)
        finally:
            sessions = self._sessions.get(member, set())
            sessions.discard(channel)
            if not sessions:
                self._sessions.pop(member, None)
            with trio.CancelScope(shield=True):
                await channel.aclose()

    async def end_sessions(self, member: str) -> None:
        """Close every session with ``member``, both ways (it was removed, or moved)."""
        for channel in list(self._sessions.get(member, ())):
            # shut down, not closed: a thread may be inside it (a transfer); its task closes it
            channel.kill()
        for _, channel in self._idle.pop(member, []):
            await channel.aclose()

    def session_count(self, member: str) -> tuple[int, int]:
        """Sessions with ``member``: served here, and kept idle to call it."""
        return len(self._sessions.get(member, ())), len(self._idle.get(member, []))

    def keep_session(self, member: str, channel: BulkChannel) -> bool:
        """(Calling side) keep ``channel`` for the next transfer to ``member``; False when
        enough are kept already (the caller then closes it)."""
        kept = self._idle.setdefault(member, [])
        if len(kept) >= SESSIONS_PER_MEMBER:
            return False
        kept.append((time.monotonic(), channel))
        return True

    async def take_session(self, member: str) -> BulkChannel | None:
        """(Calling side) an idle session to ``member`` that is still open, if any."""
        kept = self._idle.get(member)
        while kept:
            since, channel = kept.pop()
            if time.monotonic() - since < SESSION_REUSE_S and channel.idle_and_open():
                return channel
            await channel.aclose()
        return None

    # --- the calling side's memory of unreachable bulk ports -----------------------------

    def reachable(self, member: str) -> bool:
        """Whether to ask ``member`` for bulk offers (no recent failure to reach its port)."""
        until = self._unreachable.get(member)
        if until is None:
            return True
        if time.monotonic() >= until:
            del self._unreachable[member]
            return True
        return False

    def mark_unreachable(self, member: str) -> None:
        self._unreachable[member] = time.monotonic() + UNREACHABLE_FOR_S


async def wait_for_channel(ticket: _Ticket, timeout_s: float) -> BulkChannel | None:
    """The ticket's connection once the caller connected, None after ``timeout_s``."""
    with trio.move_on_after(timeout_s):
        await ticket.ready.wait()
    return ticket.channel


def dial_host(remote: tuple[str, int] | None, multiaddrs: tuple[str, ...]) -> str | None:
    """Where to dial a member's bulk port: the address our libp2p connection to it reached,
    else the host of the first TCP multiaddr the ledger lists for it."""
    if remote is not None and remote[0]:
        return remote[0]
    for addr in multiaddrs:
        parts = addr.strip("/").split("/")
        if len(parts) >= 2 and parts[0] in ("ip4", "ip6", "dns", "dns4", "dns6"):
            return parts[1]
    return None


async def dial(host: str, offer: BulkOffer, *, timeout_s: float = DIAL_TIMEOUT_S) -> BulkChannel:
    """Connect to an offered bulk port, pin its certificate and present the token.

    PeerUnreachableError when the port cannot be reached in time or its certificate is not
    the one offered (the caller then falls back to the libp2p stream).
    """
    where = _where(host, offer.port)
    try:
        with trio.fail_after(timeout_s):
            sock = _blocking(await trio.open_tcp_stream(host, offer.port))
    except (trio.TooSlowError, OSError) as exc:
        raise PeerUnreachableError(f"bulk port {where}: {exc!r}") from exc

    wrapped: list[socket.socket] = [sock]

    def handshake() -> ssl.SSLSocket:
        sock.settimeout(timeout_s)
        try:
            tls = _client_context().wrap_socket(sock, server_hostname=None)
        except BaseException:
            sock.close()
            raise
        wrapped.append(tls)
        try:
            der = tls.getpeercert(binary_form=True)
            seen = hashlib.sha256(der if isinstance(der, bytes) else b"").digest()
            if not hmac.compare_digest(seen, offer.fingerprint):
                raise PeerUnreachableError(f"the bulk port at {where} shows another certificate")
            tls.sendall(offer.token)
            tls.settimeout(IO_TIMEOUT_S)
            return tls
        except BaseException:
            tls.close()
            raise

    try:
        with trio.fail_after(timeout_s):
            tls = await _in_thread(handshake)
    except PeerUnreachableError:  # another certificate (an OSError too: keep its message)
        raise
    except (trio.TooSlowError, OSError) as exc:
        _shut(wrapped[-1])  # the thread, if still in the handshake, fails and closes it
        raise PeerUnreachableError(f"bulk port {where}: {exc!r}") from exc
    return BulkChannel(tls)


def _shut(sock: socket.socket) -> None:
    """Shut a socket down under a thread that may be blocked on it (never raises)."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _where(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"
