"""Noticing that the ledger changed, the moment it does, without polling the contract.

A peer decides from one read of the contract (``LedgerClient.view``). Reading it on a timer
made every step of a round wait for the next look and made idle peers busy. Instead a
:class:`LedgerWatch` tells the peer what happened, and the peer reads the contract only when
that can change what it does (``swarm.peer.decide.worth_a_look``):

* :class:`StreamWatch`: a WebSocket subscription (``eth_subscribe``) to new block headers and
  to the logs of the consortium's two contracts, as anvil and most nodes serve them. Each log
  arrives as a :class:`LedgerNote` naming its event, round and account.
* :class:`BlockPollWatch`: where no stream is available (a plain HTTP endpoint, the embedded
  chain), one ``eth_blockNumber`` every ``poll_s``: a tiny request with nothing to decode,
  and a new block is reported as "something may have changed".

Either runs in a worker thread (it blocks) and calls ``on_note`` from there. A stream that
breaks (the node restarted) is reconnected with a growing pause, and a reconnection is reported
as "something may have changed": what happened in between was not seen. The peer's slow
reconciliation read covers a note that was lost some other way.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from eth_utils import event_abi_to_log_topic, to_checksum_address

from swarm.ledger.chain import Chain, RpcChain

log = logging.getLogger(__name__)

#: first and longest pause before a broken stream is opened again
RECONNECT_S = (0.5, 5.0)


@dataclass(frozen=True)
class LedgerNote:
    """What the ledger told us: a new block, one of our contracts' events, or "look again".

    ``event`` is the event's name (None for a new block header or an unknown change);
    ``round`` and ``account`` its indexed round and account where it has them.
    ``unknown`` means anything may have changed (a polled new block, a reconnected stream)."""

    block: int | None = None
    event: str | None = None
    round: int | None = None
    account: str | None = None
    unknown: bool = False


NoteSink = Callable[[LedgerNote], None]


class LedgerWatch(Protocol):
    """A source of :class:`LedgerNote`: ``run`` blocks (in a worker thread) until ``close``."""

    kind: str

    def run(self, on_note: NoteSink) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _EventShape:
    name: str
    round_topic: int | None  # index into topics of the indexed ``round``
    account_topic: int | None  # of the first indexed address (the account it concerns)


def event_shapes(abis: Iterable[Iterable[Mapping[str, Any]]]) -> dict[str, _EventShape]:
    """topic0 (hex, lower case) -> the event's name and where its round and account are."""
    shapes: dict[str, _EventShape] = {}
    for abi in abis:
        for entry in abi:
            if entry.get("type") != "event":
                continue
            indexed = [i for i in entry["inputs"] if i.get("indexed")]
            round_at = account_at = None
            for pos, arg in enumerate(indexed, start=1):
                if arg["name"] == "round" and round_at is None:
                    round_at = pos
                elif arg["type"] == "address" and account_at is None:
                    account_at = pos
            topic = "0x" + event_abi_to_log_topic(entry).hex()  # type: ignore[arg-type]
            shapes[topic.lower()] = _EventShape(entry["name"], round_at, account_at)
    return shapes


def note_of_log(entry: Mapping[str, Any], shapes: Mapping[str, _EventShape]) -> LedgerNote:
    """A JSON-RPC log object (as ``eth_subscribe`` "logs" sends it) as a :class:`LedgerNote`."""
    topics = [str(t).lower() for t in entry.get("topics", [])]
    block = _int(entry.get("blockNumber"))
    shape = shapes.get(topics[0]) if topics else None
    if shape is None or entry.get("removed"):
        return LedgerNote(block=block, unknown=True)  # an event we do not know, or a reorg
    round_id = account = None
    if shape.round_topic is not None and shape.round_topic < len(topics):
        round_id = int(topics[shape.round_topic], 16)
    if shape.account_topic is not None and shape.account_topic < len(topics):
        account = to_checksum_address("0x" + topics[shape.account_topic][-40:])
    return LedgerNote(block=block, event=shape.name, round=round_id, account=account)


def _int(value: Any) -> int | None:
    if value is None:
        return None
    return int(value, 16) if isinstance(value, str) else int(value)


class StreamWatch:
    """New heads and our contracts' logs over a WebSocket subscription (module docstring)."""

    kind = "stream"

    def __init__(
        self,
        url: str,
        addresses: Iterable[str],
        shapes: Mapping[str, _EventShape],
        *,
        ignore: Iterable[str] = (),
    ) -> None:
        self.url = url
        self.addresses = [to_checksum_address(a) for a in addresses]
        self.shapes = dict(shapes)
        # Events the subscriber never acts on are not sent at all: each log costs every
        # subscribed peer a message to parse and a hand-over to its event loop, and a round
        # has several per member (joins, metrics), so with N peers N^2 of them.
        skipped = set(ignore)
        self.topics = sorted(t for t, shape in self.shapes.items() if shape.name not in skipped)
        self._closed = threading.Event()
        self._socket: Any = None
        self._lock = threading.Lock()
        self._kinds: dict[str, str] = {}  # subscription id -> "newHeads" | "logs"

    def run(self, on_note: NoteSink) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        first, longest = RECONNECT_S
        pause = first
        connected_once = False
        while not self._closed.is_set():
            try:
                with connect(self.url, open_timeout=10, max_size=None, compression=None) as socket:
                    self._attach(socket)
                    self._subscribe(socket)
                    if connected_once:
                        log.info("ledger events: stream to %s open again", self.url)
                    connected_once = True
                    pause = first
                    on_note(LedgerNote(unknown=True))  # what happened before (or between)
                    self._read(socket, on_note)
            except (OSError, WebSocketException, TimeoutError, ValueError, LookupError) as exc:
                if self._closed.is_set():
                    return
                log.warning(
                    "ledger events: stream to %s broke (%s: %s); again in %.1f s",
                    self.url,
                    type(exc).__name__,
                    exc,
                    pause,
                )
            if self._closed.wait(pause):
                return
            pause = min(longest, pause * 2)

    def _attach(self, socket: Any) -> None:
        """Make ``socket`` the one :meth:`close` closes (from another thread)."""
        with self._lock:
            if self._closed.is_set():
                raise OSError("closed")
            self._socket = socket

    def _subscribe(self, socket: Any) -> None:
        requests: dict[int, list[Any]] = {
            1: ["newHeads"],
            2: ["logs", {"address": self.addresses, "topics": [self.topics]}],
        }
        for request_id, params in requests.items():
            socket.send(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": request_id,
                        "method": "eth_subscribe",
                        "params": params,
                    }
                )
            )
        kinds: dict[str, str] = {}
        while len(kinds) < len(requests):
            reply = json.loads(socket.recv(timeout=10))
            if "id" not in reply:
                continue  # a notification racing the replies: the first look covers it
            if "error" in reply:
                raise ValueError(f"eth_subscribe refused: {reply['error']}")
            kinds[str(reply["result"])] = str(requests[int(reply["id"])][0])
        self._kinds = kinds

    def _read(self, socket: Any, on_note: NoteSink) -> None:
        for message in socket:
            payload = json.loads(message)
            params = payload.get("params") or {}
            kind = self._kinds.get(str(params.get("subscription")))
            result = params.get("result")
            if kind == "newHeads" and isinstance(result, Mapping):
                on_note(LedgerNote(block=_int(result.get("number"))))
            elif kind == "logs" and isinstance(result, Mapping):
                on_note(note_of_log(result, self.shapes))

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            socket = self._socket
        if socket is not None:
            socket.close()


class BlockPollWatch:
    """One ``eth_blockNumber`` every ``poll_s``; a new block is "look again" (module docstring)."""

    kind = "poll"

    def __init__(self, chain: Chain, poll_s: float) -> None:
        self.chain = chain
        self.poll_s = poll_s
        self._closed = threading.Event()

    def run(self, on_note: NoteSink) -> None:
        last: int | None = None
        while not self._closed.is_set():
            try:
                response = self.chain.w3.provider.make_request("eth_blockNumber", [])  # type: ignore[arg-type]
                number = _int(response.get("result"))
            except Exception as exc:  # the node is down: the peer's own reads report it
                log.debug("ledger events: block number: %s", exc)
                number = None
            if number is not None and number != last:
                last = number
                on_note(LedgerNote(block=number, unknown=True))
            self._closed.wait(self.poll_s)

    def close(self) -> None:
        self._closed.set()


def stream_url(chain: Chain, configured: str) -> str | None:
    """The WebSocket URL to subscribe at: the configured one, else anvil's (it serves WebSocket
    on its HTTP port), else None (poll for blocks). ``configured`` "off" turns streams off."""
    if configured == "off":
        return None
    if configured:
        return configured
    if isinstance(chain, RpcChain) and chain.is_anvil:
        return "ws" + chain.url[len("http") :]
    return None


def open_watch(
    chain: Chain,
    addresses: Iterable[str],
    abis: Iterable[Iterable[Mapping[str, Any]]],
    *,
    events_url: str = "",
    poll_s: float = 0.5,
    ignore: Iterable[str] = (),
) -> LedgerWatch:
    """The best watch this chain offers: a stream where there is one (without the events
    named in ``ignore``), else block polling."""
    url = stream_url(chain, events_url)
    if url is None:
        return BlockPollWatch(chain, poll_s)
    return StreamWatch(url, addresses, event_shapes(abis), ignore=ignore)


__all__ = [
    "BlockPollWatch",
    "LedgerNote",
    "LedgerWatch",
    "NoteSink",
    "StreamWatch",
    "event_shapes",
    "note_of_log",
    "open_watch",
    "stream_url",
]
