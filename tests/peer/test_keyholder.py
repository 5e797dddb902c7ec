"""The aggregate's fetch tree: which key holder fetches from whom (pure)."""

from __future__ import annotations

from swarm.ledger import RoundInfo, RoundState
from swarm.peer.keyholder import AGGREGATE_FANOUT, TREE_MIN_BYTES, fetch_parent
from tests.peer.test_decide import rnd

BIG = TREE_MIN_BYTES * 20  # an 11.2M-parameter aggregate


def _round(order: tuple[str, ...], left: tuple[str, ...] = ()) -> RoundInfo:
    import dataclasses

    info = rnd(RoundState.ACKNOWLEDGING)
    return dataclasses.replace(
        info, participants=order, order=order, merge_peer=order[0], left=left
    )


def test_the_merge_peer_serves_only_the_first_holders() -> None:
    """Nine hospitals: the merge peer uploads AGGREGATE_FANOUT aggregates, not eight; every
    other key holder has a parent one level up, and every holder works out the same tree."""
    order = tuple(f"0x{i:040x}" for i in range(9))
    info = _round(order)
    holders = order[1:]
    parents = {h: fetch_parent(info, h, BIG) for h in holders}
    from_merge_peer = [h for h, (parent, _) in parents.items() if parent is None]
    assert len(from_merge_peer) == AGGREGATE_FANOUT
    assert parents[holders[2]] == (holders[0], 1)
    assert parents[holders[3]] == (holders[0], 1)
    assert parents[holders[4]] == (holders[1], 1)
    assert parents[holders[6]] == (holders[2], 2)
    served: dict[str, int] = {}
    for parent, _ in parents.values():
        if parent is not None:
            served[parent] = served.get(parent, 0) + 1
    assert max(served.values()) <= AGGREGATE_FANOUT


def test_small_aggregates_and_departed_members_skip_the_tree() -> None:
    """A 36-parameter aggregate (62 kB) comes from the merge peer at once (waiting on a parent
    would cost more than the upload); a member removed mid-round is no one's parent."""
    order = tuple(f"0x{i:040x}" for i in range(6))
    info = _round(order)
    assert fetch_parent(info, order[5], 62_000) == (None, 0)
    gone = _round(order, left=(order[1],))
    # without order[1], order[4] is the third holder: its parent is the first, order[2]
    assert fetch_parent(gone, order[4], BIG) == (order[2], 1)
    assert fetch_parent(gone, order[1], BIG) == (None, 0)
