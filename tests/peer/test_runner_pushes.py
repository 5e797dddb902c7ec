"""How a peer judges a push by the ledger (``Peer.validate_on_ledger`` and the checks of
swarm.peer.merger, participant and masks), with ledger views built in memory and a stand-in
peer around the code under test (no chain, no network).

Faults exercised: a push that arrives before our own look at the ledger (the view we hold
refuses it, a fresh read accepts it); a late, replayed or altered update (no matching
commitment, even after a fresh read); a push for the wrong round; a round key from a member
that is not the steward; mask shares outside the commit phase.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from swarm.ledger import LedgerView, RoundState
from swarm.p2p import BlobKind, PushRequest
from swarm.peer import masks, merger, participant
from swarm.peer.runner import Peer
from tests.peer.test_decide import KEY, UA, A, B, C, ledger, rnd


class StandIn:
    """The two attributes validate_on_ledger reads, and a count of fresh reads."""

    def __init__(self, held: LedgerView | None, fresh: LedgerView, me: str = C) -> None:
        self.view = held
        self.fresh = fresh
        self.reads = 0
        self.me = me

    async def fresh_view(self) -> LedgerView:
        self.reads += 1
        self.view = self.fresh
        return self.fresh

    async def validate_on_ledger(self, refusal: Any) -> str | None:
        return await Peer.validate_on_ledger(self, refusal)  # type: ignore[arg-type]


def push(kind: BlobKind, sender: str, digest: bytes = UA, round_id: int = 5) -> PushRequest:
    return PushRequest(kind=kind, round_id=round_id, sender=sender, digest=digest, size=10)


def run(check: Any, peer: StandIn, req: PushRequest) -> str | None:
    return trio.run(check, peer, req)


COMMITTING = ledger(rnd(RoundState.COMMITTING))
COMMITTED = ledger(rnd(RoundState.COMMITTING), commitments={A: (UA, 100)})


def test_a_push_the_held_view_accepts_costs_no_read() -> None:
    peer = StandIn(held=COMMITTED, fresh=COMMITTED)
    assert run(merger.validate_update, peer, push(BlobKind.UPDATE, A)) is None
    assert peer.reads == 0


def test_a_push_before_our_look_at_the_ledger_is_judged_on_a_fresh_read() -> None:
    """Race between honest peers: A's update arrives before we saw its commitment."""
    peer = StandIn(held=COMMITTING, fresh=COMMITTED)
    assert run(merger.validate_update, peer, push(BlobKind.UPDATE, A)) is None
    assert peer.reads == 1
    fresh_only = StandIn(held=None, fresh=COMMITTED)
    assert run(merger.validate_update, fresh_only, push(BlobKind.UPDATE, A)) is None
    assert fresh_only.reads == 1


def test_an_update_without_its_commitment_is_refused_after_a_fresh_read() -> None:
    """A late, replayed or altered update: refused in one line, the ledger read again first."""
    peer = StandIn(held=COMMITTED, fresh=COMMITTED)
    refusal = run(merger.validate_update, peer, push(BlobKind.UPDATE, A, digest=b"\x05" * 32))
    assert refusal is not None and "no matching commitment" in refusal
    assert peer.reads == 1
    wrong_round = run(merger.validate_update, peer, push(BlobKind.UPDATE, A, round_id=4))
    assert wrong_round is not None and "wrong round 4" in wrong_round


def test_key_shares_and_reveal_checks_judge_the_view_they_are_given() -> None:
    keying = StandIn(held=COMMITTED, fresh=COMMITTED, me=A)
    context = push(BlobKind.ROUND_CONTEXT, B, digest=KEY)
    assert run(participant.validate_key_delivery, keying, context) is None
    impostor = run(participant.validate_key_delivery, keying, push(BlobKind.ROUND_CONTEXT, C))
    assert impostor == "only the round's key steward delivers round keys"
    shares = StandIn(held=COMMITTED, fresh=COMMITTED, me=A)
    assert run(masks.validate_shares, shares, push(BlobKind.SHARES, B)) is None
    acknowledging = ledger(rnd(RoundState.ACKNOWLEDGING))
    late = StandIn(held=acknowledging, fresh=acknowledging, me=A)
    refusal = run(masks.validate_shares, late, push(BlobKind.SHARES, B))
    assert refusal == "mask shares are handed out while updates are committed"
    assert run(masks.validate_reveal, late, push(BlobKind.REVEAL, B)) is None
    early = run(masks.validate_reveal, shares, push(BlobKind.REVEAL, B))
    assert early == "reveals are taken once the ledger names the contributors"


def test_round_keys_pushed_while_their_hash_is_mined_are_taken_from_the_steward_only() -> None:
    """The steward pushes the keys while its postRoundKey is being mined: in KEYING (no hash on
    the ledger yet) its context and sealed key are taken and kept (load_round_keys uses a
    context only once its hash is the ledger's); anyone else's are refused; once the hash is
    posted, a context with another hash is refused."""
    keying = ledger(rnd(RoundState.KEYING))
    peer = StandIn(held=keying, fresh=keying, me=A)
    early = push(BlobKind.ROUND_CONTEXT, B, digest=b"\x44" * 32)
    assert run(participant.validate_key_delivery, peer, early) is None
    assert run(participant.validate_key_delivery, peer, push(BlobKind.ROUND_KEY, B)) is None
    impostor = run(participant.validate_key_delivery, peer, push(BlobKind.ROUND_KEY, C))
    assert impostor == "only the round's key steward delivers round keys"
    posted = StandIn(held=COMMITTED, fresh=COMMITTED, me=A)
    wrong = run(participant.validate_key_delivery, posted, early)
    assert wrong == "this context's hash is not the round key's hash on the ledger"


class Reader:
    """The attributes Peer._read_latest uses; each read returns its view when the test says."""

    def __init__(self) -> None:
        self.view: LedgerView | None = None
        self._reads_done = 0
        self._held_read = 0
        self.results: list[tuple[trio.Event, LedgerView]] = []
        self.order: list[trio.Event] = []  # the event a test of overlapping reads sets first

    def _read_view(self) -> LedgerView:  # stands in for the blocking ledger read
        raise AssertionError("call() answers in its place")

    async def call(self, fn: Any) -> LedgerView:
        release, view = self.results.pop(0)
        await release.wait()
        return view


def overlapping_reads(reader: Reader) -> list[LedgerView]:
    """Two reads that overlap: the first to begin waits for the reader's first result's event,
    the second for the second's; ``reader.order[0]`` is the event set first, so it decides
    which read comes back first. Returns the views handed back, in the order they came back."""
    held: list[LedgerView] = []
    events = [reader.results[0][0], reader.results[1][0]]

    async def main() -> None:
        async def read() -> None:
            held.append(await Peer._read_latest(reader))  # type: ignore[arg-type]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            for release in sorted(events, key=lambda e: e is not reader.order[0]):
                release.set()
                await trio.testing.wait_all_tasks_blocked()

    trio.run(main)
    return held


OLDER = ledger(rnd(RoundState.FINALIZED), block_number=100)
NEWER = ledger(rnd(RoundState.JOINING, round_id=6), block_number=101)


def test_a_read_that_began_earlier_and_came_back_last_never_replaces_a_newer_view() -> None:
    """Race between honest steps: the loop's read and a push validator's fresh read overlap,
    and the earlier one comes back last with the older block. The view held stays the newer
    one (round 6 open), instead of going back to the round before it, finalized: that made
    the peer log the new round as lapsed and train it twice (a 10-minute localnet run)."""
    reader = Reader()
    slow, fast = trio.Event(), trio.Event()
    reader.results = [(slow, OLDER), (fast, NEWER)]
    reader.order = [fast]
    assert overlapping_reads(reader) == [NEWER, NEWER]  # the late answer hands back the newer
    assert reader.view is NEWER


def test_a_read_that_began_earlier_but_reached_the_node_last_is_the_one_held() -> None:
    """The same race the other way round: reads run in worker threads, so the one that began
    first can reach the node last, see the newer block and come back first. The read that
    began after it comes back with the older block and must not replace it (holding the read
    that began last let a 300-round run conclude a finalized round lapsed)."""
    reader = Reader()
    first, second = trio.Event(), trio.Event()
    reader.results = [(first, NEWER), (second, OLDER)]
    reader.order = [first]
    assert overlapping_reads(reader) == [NEWER, NEWER]
    assert reader.view is NEWER


def test_a_read_begun_after_the_held_view_came_back_is_held_at_any_block() -> None:
    """A chain that restarted (anvil again from block 0): a read that began after the view
    held came back is newer in time, and its lower block is the chain's, not a race. Holding
    the old view instead would leave the peer deciding on a chain that no longer exists."""
    reader = Reader()
    restarted = ledger(rnd(RoundState.JOINING, round_id=1), block_number=3, last_finalized=0)
    released = trio.Event()
    released.set()
    reader.results = [(released, NEWER), (released, restarted)]

    async def main() -> list[LedgerView]:
        return [
            await Peer._read_latest(reader),  # type: ignore[arg-type]
            await Peer._read_latest(reader),  # type: ignore[arg-type]
        ]

    assert trio.run(main) == [NEWER, restarted]
    assert reader.view is restarted


def test_a_read_of_the_same_block_that_shows_less_is_not_held() -> None:
    """anvil, while it mines a block, can answer a read with the state that block's
    transaction leaves under the block number before it, and the next read with that block's
    state again: round 6 open, then round 5 finalized, both at block 101 (a 5-minute localnet
    run logged a round lapsed that way, and its peer trained it twice). The view held is the
    one that shows more; a later block is held again."""
    behind = ledger(rnd(RoundState.FINALIZED), block_number=101)
    later = ledger(rnd(RoundState.JOINING, round_id=6), block_number=102)
    reader = Reader()
    released = trio.Event()
    released.set()
    reader.results = [(released, NEWER), (released, behind), (released, later)]

    async def main() -> list[LedgerView]:
        return [await Peer._read_latest(reader) for _ in range(3)]  # type: ignore[arg-type]

    assert trio.run(main) == [NEWER, NEWER, later]
    assert NEWER.progress > behind.progress  # same block: round 6 open is further
