"""A TCP relay between two hosts on loopback that a test can freeze.

A frozen relay keeps every connection it carries open and stops moving bytes through it, in both
directions: to both ends the connection is alive (no FIN, no RST, writes still land in socket
buffers) and nothing flows, as with a NAT mapping or a middlebox that silently lost its state.
Connections made after the freeze are relayed normally unless ``freeze(new_connections=True)``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


class FreezableRelay:
    """Listens on ``listen_port`` and relays every connection to ``target_port`` (loopback)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        #: connections accepted so far, frozen or not
        self.connections = 0
        self._frozen: set[int] = set()  # numbers of the connections that carry no more bytes
        self._freeze_new = False
        self._thawed = trio.Event()

    def freeze(self, *, new_connections: bool = False) -> None:
        """Stop every connection made so far (and, if asked, the ones made from now on)."""
        self._frozen.update(range(1, self.connections + 1))
        self._freeze_new = new_connections
        self._thawed = trio.Event()

    def thaw(self) -> None:
        """Let bytes flow again on every connection, old and new."""
        self._frozen.clear()
        self._freeze_new = False
        self._thawed.set()

    def is_frozen(self, number: int) -> bool:
        return number in self._frozen

    async def _pump(self, number: int, src: trio.SocketStream, dst: trio.SocketStream) -> None:
        try:
            while True:
                while self.is_frozen(number):
                    await self._thawed.wait()
                data = await src.receive_some(65536)
                if not data:
                    break
                # bytes read just before a freeze are held back too: nothing flows once frozen
                while self.is_frozen(number):
                    await self._thawed.wait()
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await dst.aclose()
                await src.aclose()

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        number = self.connections
        if self._freeze_new:
            self._frozen.add(number)
        try:
            server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except OSError:
            await client.aclose()
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, number, client, server)
            nursery.start_soon(self._pump, number, server, client)

    @asynccontextmanager
    async def running(self, listen_port: int = 0) -> AsyncIterator[FreezableRelay]:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, self._handle, listen_port, host="127.0.0.1")
            )
            self.port = listeners[0].socket.getsockname()[1]
            try:
                yield self
            finally:
                nursery.cancel_scope.cancel()
