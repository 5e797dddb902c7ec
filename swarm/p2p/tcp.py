"""py-libp2p's TCP transport with buffered reads.

Noise reads each message as a 2-byte length and then its body, and py-libp2p's TCP stream
turns each of those reads into its own ``recv`` (and its own pass through trio's scheduler).
A small push or fetch is a dozen such messages in each direction, several of which arrive
together, so half of the reads on the socket asked for 2 bytes. Reading up to
:data:`READ_BYTES` at a time and handing out what the layer above asks for from that buffer
costs one system call per burst instead of two per message; what goes over the wire is the
same.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.abc import IRawConnection, ReadWriteCloser
from libp2p.io.exceptions import ConnectionClosedError
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.transport.tcp.tcp import TCP, TCPListener

logger = logging.getLogger(__name__)

#: the most one ``recv`` asks the socket for: a full Noise message (65,535 bytes) and its prefix
READ_BYTES = 1 << 17


class BufferedTCPStream(TrioTCPStream):
    """A TrioTCPStream whose reads are served from a buffer filled ``READ_BYTES`` at a time."""

    def __init__(self, stream: trio.SocketStream) -> None:
        super().__init__(stream)
        self._buffer = b""
        self._at = 0

    async def read(self, n: int | None = None) -> bytes:
        async with self.read_lock:
            if n is not None and n == 0:
                return b""
            if self._at >= len(self._buffer):
                data = await self._receive(max(n or 0, READ_BYTES))
                if not data:
                    return b""
                self._buffer, self._at = data, 0
            end = len(self._buffer) if n is None else min(self._at + n, len(self._buffer))
            if self._at == 0 and end == len(self._buffer):
                out, self._buffer = self._buffer, b""  # the whole buffer: no copy
            else:
                out = self._buffer[self._at : end]
            self._at = end if self._buffer else 0
            return out

    async def _receive(self, max_bytes: int) -> bytes:
        """``receive_some`` with TrioTCPStream's error handling (reset: typed; closed: EOF)."""
        try:
            return await self.stream.receive_some(max_bytes)
        except trio.BrokenResourceError as error:
            raise ConnectionClosedError(
                f"TCP connection reset by remote peer: {error}", transport="tcp"
            ) from error
        except trio.ClosedResourceError:
            return b""


def _buffered(stream: ReadWriteCloser) -> ReadWriteCloser:
    if isinstance(stream, TrioTCPStream) and not isinstance(stream, BufferedTCPStream):
        return BufferedTCPStream(stream.stream)
    return stream


class BufferedTCP(TCP):
    """The TCP transport, its connections (dialed and accepted) reading through a buffer."""

    async def dial(self, maddr: Any) -> IRawConnection:
        return _buffer_connection(await super().dial(maddr))

    async def dial_with_source(self, maddr: Any, source: Any = None) -> IRawConnection:
        return _buffer_connection(await super().dial_with_source(maddr, source))

    def create_listener(self, handler_function: Callable[..., Awaitable[None]]) -> TCPListener:
        async def handler(stream: ReadWriteCloser) -> None:
            await handler_function(_buffered(stream))

        return TCPListener(handler)


def _buffer_connection(connection: IRawConnection) -> IRawConnection:
    if isinstance(connection, RawConnection):
        connection.stream = _buffered(connection.stream)
    return connection
