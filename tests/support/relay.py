"""A TCP relay a test controls: it can freeze the connections it carries, or delay them.

A frozen relay keeps every connection it carries open and stops moving bytes through it, in both
directions: to both ends the connection is alive (no FIN, no RST, writes still land in socket
buffers) and nothing flows, as with a NAT mapping or a middlebox that silently lost its state.
Connections made after the freeze are relayed normally unless ``freeze(new_connections=True)``.

A relay with ``delay_s`` holds every chunk it reads for that long before passing it on, in each
direction: a link with that much one-way latency (``tc netem`` does not exist on the kernel this
project runs on). Bytes keep their order; throughput is not limited.

Run as a process (``python -m tests.support.relay --delay-ms 50 --forward
10.0.0.3:5001=10.0.0.11:4001 ...``) it relays each ``LISTEN=TARGET`` pair until killed, and
prints one line per accepted connection (``connection N LISTEN -> TARGET``).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    # trio-typing's stubs (a dependency of libp2p) shadow trio's own annotations for mypy
    from trio_typing import TaskStatus

#: chunks one direction of a delayed connection holds at most (bounded memory)
_DELAY_QUEUE_CHUNKS = 4096


class FreezableRelay:
    """Listens on ``listen_host:listen_port`` and relays every connection to
    ``target_host:target_port`` (loopback unless told otherwise), ``delay_s`` late."""

    def __init__(
        self,
        target_port: int,
        *,
        target_host: str = "127.0.0.1",
        listen_host: str = "127.0.0.1",
        delay_s: float = 0.0,
        name: str = "",
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self.delay_s = delay_s
        self.name = name
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
            if self.delay_s > 0:
                await self._pump_delayed(number, src, dst)
                return
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

    async def _pump_delayed(
        self, number: int, src: trio.SocketStream, dst: trio.SocketStream
    ) -> None:
        """Read as fast as the sender sends; hand each chunk on ``delay_s`` after it came."""
        send, receive = trio.open_memory_channel[tuple[float, bytes]](_DELAY_QUEUE_CHUNKS)

        async def read() -> None:
            async with send:
                while True:
                    data = await src.receive_some(65536)
                    if not data:
                        return
                    await send.send((trio.current_time() + self.delay_s, data))

        async def write() -> None:
            async with receive:
                async for due, data in receive:
                    await trio.sleep_until(due)
                    while self.is_frozen(number):
                        await self._thawed.wait()
                    await dst.send_all(data)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                nursery.start_soon(write)
        except BaseExceptionGroup as group:
            # either side closing ends the connection; anything else is a real error
            rest = group.split((trio.BrokenResourceError, trio.ClosedResourceError))[1]
            if rest is not None:
                raise rest from None

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        number = self.connections
        if self._freeze_new:
            self._frozen.add(number)
        if self.name:
            print(f"connection {number} {self.name}", flush=True)
        try:
            server = await trio.open_tcp_stream(self.target_host, self.target_port)
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
                functools.partial(trio.serve_tcp, self._handle, listen_port, host=self.listen_host)
            )
            self.port = listeners[0].socket.getsockname()[1]
            try:
                yield self
            finally:
                nursery.cancel_scope.cancel()


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


async def _serve(forwards: Sequence[tuple[str, str]], delay_s: float) -> None:
    async with trio.open_nursery() as nursery:
        for listen, target in forwards:
            (lhost, lport), (thost, tport) = _endpoint(listen), _endpoint(target)
            relay = FreezableRelay(
                tport,
                target_host=thost,
                listen_host=lhost,
                delay_s=delay_s,
                name=f"{listen} -> {target}",
            )
            await nursery.start(_run_relay, relay, lport)
        print("ready", flush=True)
        await trio.sleep(math.inf)


async def _run_relay(
    relay: FreezableRelay, port: int, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    async with relay.running(port):
        task_status.started()
        await trio.sleep(math.inf)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A TCP relay that adds one-way delay.")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay per direction")
    parser.add_argument(
        "--forward", action="append", required=True, metavar="LISTEN=TARGET", help="HOST:PORT pairs"
    )
    args = parser.parse_args(argv)
    forwards = []
    for pair in args.forward:
        listen, sep, target = pair.partition("=")
        if not sep:
            parser.error(f"--forward {pair!r} is not LISTEN=TARGET")
        forwards.append((listen, target))
    try:
        trio.run(_serve, forwards, args.delay_ms / 1000)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
