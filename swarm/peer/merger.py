"""The merge peer: accepts committed updates and adds what it cannot read.

It accepts a pushed ciphertext only when the ledger holds the sender's commitment to exactly
that hash in the current attempt, so a late, replayed or altered update is refused before a
byte of it is read. It never holds the attempt's secret key (the steward seals none to it).

Its own update is a plain one (CKKS-encoded, not encrypted: swarm.crypto's PLAIN_UPDATE),
committed by hash like any other and read back from its own blob store under its own address;
the Aggregator adds a plain update only from the aggregate's author. The aggregate it publishes
is the sum of the first polynomials plus every seeded contributor's seeds (SEEDED_AGGREGATE,
~15 bytes per parameter), which key holders decrypt.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from swarm import crypto
from swarm.errors import CryptoError
from swarm.p2p import BlobKind, BlobStore, FileBlobStore, PushRequest
from swarm.peer.actions import Absorb, Merge
from swarm.peer.work import ActionSupersededError, RunningSum

if TYPE_CHECKING:
    from swarm.ledger import LedgerView, RoundInfo
    from swarm.peer.runner import Peer

log = logging.getLogger(__name__)


async def validate_update(peer: Peer, req: PushRequest) -> str | None:
    return await peer.validate_on_ledger(lambda view: _update_refusal(peer, req, view))


def _update_refusal(peer: Peer, req: PushRequest, view: LedgerView) -> str | None:
    info = view.round
    if info is None or req.round_id != info.round_id:
        return f"wrong round {req.round_id} (current round is {view.current_round})"
    if peer.me != info.merge_peer:
        return "this peer is not the round's merge peer"
    if req.sender not in info.participants:
        return "sender is not a participant of this round"
    if req.sender in info.left:
        return "sender was removed from the consortium during this round"
    committed = view.commitments.get(req.sender)
    if committed is None or committed[0] != req.digest:
        return "no matching commitment on the ledger (a late, replayed or altered update)"
    return None


def _committed(peer: Peer, info: RoundInfo) -> dict[str, bytes]:
    """sender -> committed update hash, for the attempt's participants still members (a member
    removed mid-round is left out: it may have been removed for what it sends)."""
    view = peer.view
    assert view is not None
    return {a: digest for a, (digest, _) in view.commitments.items() if a not in info.left}


def _add_held(peer: Peer, running: RunningSum, commitments: dict[str, bytes]) -> None:
    """Add every committed update we hold that is not in the sum yet (worker thread, under the
    sum's lock). A refused one is logged once and not tried again in this attempt."""
    done = dict(running.done)
    for address, digest in sorted(commitments.items()):
        if done.get(address) == digest:
            continue
        with _mapped(peer.store, digest) as blob:
            if blob is None:
                if not peer.store.find(kind=BlobKind.UPDATE, digest=digest):
                    continue  # not here yet
                # listed as held but gone (pruned meanwhile): not looked for again, so that
                # the merge peer does not spin on it
                log.warning("the update of %s is no longer in the store", address)
                done[address] = digest
                running.done = frozenset(done.items())
                continue
            try:
                running.aggregator.add(
                    blob, expected_sender=bytes.fromhex(address[2:]), expected_id=digest
                )
                running.added[address] = digest
            except CryptoError as exc:
                log.warning("refused the update of %s: %s", address, exc)
        done[address] = digest
        running.done = frozenset(done.items())


def _running(peer: Peer, info: RoundInfo, public: crypto.PublicRoundContext) -> RunningSum:
    work = peer.work_for(info.round_id)
    if work.running is None:
        aggregator = crypto.Aggregator(
            public,
            round_id=info.round_id,
            layout=peer.layout,
            merge_peer=bytes.fromhex(peer.me[2:]),
        )
        work.running = RunningSum(aggregator)
    return work.running


async def absorb(peer: Peer, action: Absorb) -> None:
    """Add the committed updates that arrived since the last look (the merge itself then only
    adds the last ones and writes the aggregate). Idempotent: what is in the sum stays."""
    info = peer.round_of(action.round_id, action.attempt)
    work = peer.work_for(action.round_id)
    if work.public is None:
        raise ActionSupersededError("no public context for this attempt yet")
    if work.aggregate is not None:
        return
    running = _running(peer, info, work.public)
    commitments = _committed(peer, info)
    t0 = time.perf_counter()

    def add() -> None:
        with running.lock:
            if work.running is running and work.aggregate is None:
                _add_held(peer, running, commitments)

    await peer.call(add)
    work.timed("merge (as updates arrive)", time.perf_counter() - t0)


async def merge(peer: Peer, action: Merge) -> None:
    """Add every committed update we hold that is not in the running sum yet; submit the
    aggregate's hash and its contributors.

    Idempotent: an aggregate already built for this attempt is submitted again as it is.
    """
    info = peer.round_of(action.round_id, action.attempt)
    work = peer.work_for(action.round_id)
    assert peer.net is not None
    if work.public is None:
        raise ActionSupersededError("no public context for this attempt yet")
    if work.aggregate is None:
        peer.hook("before-merge", info)
        commitments = _committed(peer, info)
        public = work.public
        t0 = time.perf_counter()

        def add_all() -> tuple[bytes | None, list[str]]:
            running = _running(peer, info, public)
            with running.lock:
                stale = any(commitments.get(a) != d for a, d in running.added.items())
            if stale:
                # a sender left (or its commitment is not the one we added): start over from
                # the commitments that count rather than subtract it (a fault, rare)
                work.running = None
                running = _running(peer, info, public)
            with running.lock:
                _add_held(peer, running, commitments)
                added = sorted(running.added)
                if len(added) < info.min_peers:
                    return None, added
                return running.aggregator.finish(), added

        aggregate, contributors = await peer.call(add_all)
        work.timed("merge", time.perf_counter() - t0)
        if aggregate is None:
            raise ActionSupersededError(
                f"only {len(contributors)} valid updates of {info.min_peers} needed"
            )
        ref = await peer.net.offer(BlobKind.AGGREGATE, info.round_id, aggregate)
        work.aggregate = (ref.digest, tuple(contributors))
        work.running = None  # the sum is in the aggregate now: free its memory
        peer.emit(
            "merged", round=info.round_id, contributors=len(contributors), bytes=len(aggregate)
        )
    digest, contributors_ = work.aggregate
    await peer.tx(peer.ledger.submit_aggregate, info.round_id, digest, list(contributors_))
    peer.emit("aggregate submitted", round=info.round_id, attempt=info.attempt)


@contextlib.contextmanager
def _mapped(store: BlobStore, digest: bytes) -> Iterator[memoryview | bytes | None]:
    """A stored update, memory-mapped where the store keeps files: the merge peer reads each
    update from disk as it adds it, so its memory holds the running sum and not the updates
    (11.2M parameters: 168 MB each, however many hospitals contribute)."""
    fh = store.open_blob(digest) if isinstance(store, FileBlobStore) else None
    if fh is None:
        yield store.get(digest)
        return
    with fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        try:
            yield view
        finally:
            view.release()


__all__ = ["absorb", "merge", "validate_update"]
