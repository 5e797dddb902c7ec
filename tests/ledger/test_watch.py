"""``swarm.ledger.watch``: what tells a peer that the ledger changed, against a real anvil node.

Faults exercised: a node that restarts under a subscription (the stream reconnects and says
"anything may have changed"), a log of an event the peer does not know (treated as "look"),
a typo in ``events_url`` (one config line).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from localnet.anvil import AnvilNode, start_anvil
from swarm.config import PeerConfig
from swarm.errors import ConfigError
from swarm.ledger import EmbeddedChain, RpcChain
from swarm.ledger.artifacts import load_artifact
from swarm.ledger.watch import (
    BlockPollWatch,
    LedgerNote,
    StreamWatch,
    event_shapes,
    note_of_log,
    open_watch,
    stream_url,
)
from tests.conftest import make_consortium
from tests.ledger.rounds import open_round

SHAPES = event_shapes([load_artifact("SwarmLedger").abi, load_artifact("Consortium").abi])
WAIT_S = 20.0  # for a note that should come within milliseconds (a loaded CI machine)


class Running:
    """A watch running in its thread, its notes in a queue."""

    def __init__(self, watch: StreamWatch | BlockPollWatch) -> None:
        self.watch = watch
        self.notes: queue.Queue[LedgerNote] = queue.Queue()
        self.seen: list[LedgerNote] = []  # every note taken from the queue, in order
        self.thread = threading.Thread(target=watch.run, args=(self.notes.put,), daemon=True)
        self.thread.start()

    def next_matching(self, want: dict[str, object]) -> LedgerNote:
        while True:
            note = self.notes.get(timeout=WAIT_S)
            self.seen.append(note)
            if _matches(note, want):
                return note

    def saw(self, want: dict[str, object]) -> LedgerNote:
        """A note seen so far, or the next one, that matches (a block's header and its logs
        arrive in no fixed order)."""
        for note in self.seen:
            if _matches(note, want):
                return note
        return self.next_matching(want)

    def stop(self) -> None:
        self.watch.close()
        self.thread.join(timeout=WAIT_S)
        assert not self.thread.is_alive(), "the watch did not stop on close()"


def _matches(note: LedgerNote, want: dict[str, object]) -> bool:
    return all(getattr(note, k) == v for k, v in want.items())


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for r in started:
        r.stop()


def test_a_joined_log_names_its_event_round_and_account() -> None:
    """The indexed round and account come out of the topics, the address checksummed."""
    topic0 = next(t for t, s in SHAPES.items() if s.name == "Joined")
    account = "0x" + "ab" * 20
    log = {
        "topics": [topic0, "0x" + f"{7:064x}", "0x" + "00" * 12 + account[2:]],
        "blockNumber": "0x2a",
    }
    note = note_of_log(log, SHAPES)
    assert (note.event, note.round, note.block, note.unknown) == ("Joined", 7, 42, False)
    assert note.account == to_checksum_address(account)


def test_an_unknown_or_removed_log_means_look_again() -> None:
    """An event this version does not know (a newer contract), or a log a reorg removed."""
    assert note_of_log({"topics": ["0x" + "11" * 32]}, SHAPES).unknown
    topic0 = next(iter(SHAPES))
    assert note_of_log({"topics": [topic0], "removed": True}, SHAPES).unknown


def test_where_events_come_from(anvil: AnvilNode) -> None:
    """anvil streams on its HTTP port; the embedded chain and "off" poll for blocks."""
    assert stream_url(RpcChain(anvil.url), "") == "ws" + anvil.url[4:]
    assert stream_url(RpcChain(anvil.url), "off") is None
    assert stream_url(EmbeddedChain(), "") is None
    assert stream_url(EmbeddedChain(), "ws://node:8546") == "ws://node:8546"


def test_a_typo_in_events_url_is_one_config_line(tmp_path: Path) -> None:
    """Fault: a typo in a config (http:// where a WebSocket URL belongs)."""
    base = (
        '[identity]\nkeystore = "k.json"\n[ledger]\nchain_url = "http://127.0.0.1:8545"\n'
        'contract = "0x' + "00" * 20 + '"\nevents_url = "http://127.0.0.1:8545"\n'
        '[task]\nsite = "Cleveland"\n'
    )
    path = tmp_path / "peer.toml"
    path.write_text(base)
    with pytest.raises(ConfigError, match=r"\[ledger\] events_url must be a ws://"):
        PeerConfig.load(path)


def test_the_stream_brings_our_events_and_new_blocks(
    anvil: AnvilNode, running: list[Running]
) -> None:
    """A join arrives as a Joined note naming the round and the member; each transaction's
    block as a new-head note. The first note says "look": what happened before it connected."""
    c = make_consortium(RpcChain(anvil.url), 3)
    r = Running(c.admin.watch())
    running.append(r)
    assert r.watch.kind == "stream"
    assert r.next_matching({"unknown": True})
    rid = open_round(c)
    member = c.addresses[0]
    c.client(member).join(rid)
    joined = r.next_matching({"event": "Joined"})
    assert (joined.round, joined.account) == (rid, member)
    assert r.saw({"event": None, "unknown": False}).block is not None


def test_events_the_subscriber_ignores_are_not_streamed(
    anvil: AnvilNode, running: list[Running]
) -> None:
    """A peer acts on no other member's join (the last one closes the window: JoinClosed):
    the node does not send it Joined logs at all, and still sends the rest."""
    c = make_consortium(RpcChain(anvil.url), 3)
    client = c.admin
    watch = open_watch(
        client.chain,
        [client.address, client.consortium_address],
        [client.contract.abi, client.consortium.abi],
        ignore={"Joined"},
    )
    r = Running(watch)
    running.append(r)
    r.next_matching({"unknown": True})
    rid = open_round(c)
    for member in c.addresses:
        c.client(member).join(rid)
    assert r.next_matching({"event": "JoinClosed"}).round == rid
    assert not [n for n in r.seen if n.event == "Joined"]
    assert r.saw({"event": "RoundOpened"}).round == rid


def test_the_stream_reconnects_after_the_node_restarts(
    tmp_path: Path, running: list[Running]
) -> None:
    """Fault: a chain that restarts. The stream breaks, opens again once the node is back, and
    says "look" (events in between were not seen); it keeps delivering after that."""
    node = start_anvil(tmp_path / "anvil")
    try:
        c = make_consortium(RpcChain(node.url), 3)
        r = Running(c.admin.watch())
        running.append(r)
        r.next_matching({"unknown": True})
        node.stop()
        node = start_anvil(tmp_path / "anvil", port=node.port)  # its state file: same chain
        assert r.next_matching({"unknown": True})
        rid = open_round(c)
        assert r.next_matching({"event": "RoundOpened"}).round == rid
    finally:
        node.stop()


def test_block_polling_reports_each_new_block_once() -> None:
    """Where no stream exists: a new block is "look again"; no new block, no note."""
    chain = EmbeddedChain()
    r = Running(BlockPollWatch(chain, poll_s=0.01))
    try:
        first = r.next_matching({"unknown": True})
        chain.mine(1)
        second = r.next_matching({"unknown": True})
        assert second.block == (first.block or 0) + 1
        with pytest.raises(queue.Empty):
            r.notes.get(timeout=0.3)
    finally:
        r.stop()
