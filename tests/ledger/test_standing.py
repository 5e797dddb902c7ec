"""Members that stall and members that leave: a participant that joins and never commits is
recorded and, past maxMissedCommits, sits out; a member removed mid-round leaves it without
holding it back. Each test's docstring names the fault it exercises."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from swarm import errors
from swarm.ledger import LapseReason, RoundState
from tests.conftest import WINDOW, Consortium, h
from tests.ledger.rounds import SHARES, draw, join_all, open_round, skip_gas_estimates


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_gas_estimates(monkeypatch)


def events(c: Consortium, name: str) -> list[dict[str, object]]:
    return [e.args for e in c.admin.events() if e.name == name]


def play_round(
    c: Consortium, committers: Iterable[str], joiners: Iterable[str] | None = None
) -> int:
    """Open, join (default: everyone), key, commit from ``committers`` only, aggregate what was
    committed, acknowledge: a finalized round in which the others stalled."""
    rid = open_round(c)
    info = join_all(c, rid, joiners)
    assert info.key_steward is not None and info.merge_peer is not None
    c.client(info.key_steward).post_round_key(rid, h(f"key-{rid}"))
    committed = [a for a in info.participants if a in set(committers)]
    for a in committed:
        c.client(a).commit_update(rid, h(f"u-{rid}-{a}"), 10, shares_hash=SHARES)
    if len(committed) < len(info.participants):
        c.chain.advance_time(WINDOW + 5)  # the stallers hold the commit window open
    c.client(info.merge_peer).submit_aggregate(rid, h(f"agg-{rid}"), committed)
    for a in committed:
        if a != info.merge_peer:
            c.client(a).acknowledge(rid, h(f"model-{rid}"))
    assert c.admin.round(rid).state == RoundState.FINALIZED
    return rid


def test_stalling_member_is_recorded_then_sits_out(
    consortium_factory: Callable[..., Consortium],
) -> None:
    """Fault: a member that joins every round and never commits (it holds every commit window
    open until its deadline). Each aggregate records CommitMissed with its consecutive count; at
    maxMissedCommits it sits out sitOutRounds rounds (join reverts SittingOut), the others'
    window closes without waiting for it, and afterwards it may join again."""
    c = consortium_factory(5, max_missed_commits=2, sit_out_rounds=2)
    staller, others = c.addresses[0], c.addresses[1:]
    r1 = play_round(c, others)
    assert events(c, "CommitMissed") == [{"round": r1, "account": staller, "consecutiveMisses": 1}]
    assert c.admin.missed_commits(staller) == 1
    r2 = play_round(c, others)
    assert events(c, "CommitMissed")[-1] == {
        "round": r2,
        "account": staller,
        "consecutiveMisses": 2,
    }
    assert events(c, "SittingOut") == [
        {"account": staller, "fromRound": r2 + 1, "untilRound": r2 + 2}
    ]
    assert c.admin.sitting_out_until(staller) == r2 + 2 and c.admin.missed_commits(staller) == 0

    r3 = open_round(c)
    with pytest.raises(errors.NotParticipantError) as exc:
        c.client(staller).join(r3)
    assert exc.value.name == "SittingOut"
    assert exc.value.values == {"account": staller, "untilRound": r2 + 2}
    for a in others:
        c.client(a).join(r3)
    # every member that may join did: the window closed early, without the one sitting out
    assert c.admin.round(r3).state == RoundState.DRAWING
    info = draw(c, r3)
    c.client(info.key_steward).post_round_key(r3, h("k3"))  # type: ignore[arg-type]
    for a in info.participants:
        c.client(a).commit_update(r3, h(f"u3-{a}"), 10, shares_hash=SHARES)
    c.client(info.merge_peer).submit_aggregate(r3, h("agg3"), info.participants)  # type: ignore[arg-type]
    for a in info.participants:
        if a != info.merge_peer:
            c.client(a).acknowledge(r3, h("model-3"))

    play_round(c, others, joiners=others)  # round r2 + 2: still sitting out
    r5 = open_round(c)
    c.client(staller).join(r5)  # its sit-out is over
    assert c.admin.has_joined(r5, staller)


def test_a_commit_resets_the_count(consortium_factory: Callable[..., Consortium]) -> None:
    """Fault: an occasional miss. Misses must be consecutive to count: one commit resets the
    counter, so a member that misses every other round never sits out."""
    c = consortium_factory(4, max_missed_commits=2, sit_out_rounds=5)
    flaky, others = c.addresses[0], c.addresses[1:]
    play_round(c, others)
    assert c.admin.missed_commits(flaky) == 1
    play_round(c, c.addresses)
    assert c.admin.missed_commits(flaky) == 0
    play_round(c, others)
    assert c.admin.missed_commits(flaky) == 1 and events(c, "SittingOut") == []


def test_too_few_commitments_lapse_records_the_stallers(consortium: Consortium) -> None:
    """Fault: so many stall that the round lapses (TooFewCommitted). The lapse is recorded when
    the next round opens, and with it a CommitMissed for each participant that did not commit."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    c.client(info.key_steward).post_round_key(rid, h("key"))  # type: ignore[arg-type]
    c.client(c.addresses[0]).commit_update(rid, h("u"), 5, shares_hash=SHARES)
    c.chain.advance_time(WINDOW + 5)
    assert c.admin.round(rid).lapse_reason == LapseReason.TOO_FEW_COMMITTED
    assert events(c, "CommitMissed") == []
    open_round(c)
    missed = events(c, "CommitMissed")
    assert sorted(str(m["account"]) for m in missed) == sorted(c.addresses[1:])
    assert all(m["round"] == rid and m["consecutiveMisses"] == 1 for m in missed)


def test_removed_participant_does_not_hold_the_commit_phase(consortium: Consortium) -> None:
    """Fault: a participant is removed from the consortium while the round waits for its
    commitment. It leaves the round (ParticipantLeft): the commit phase closes as soon as the
    others committed, it gets no CommitMissed, and the acknowledgement majority counts without
    it."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    c.client(info.key_steward).post_round_key(rid, h("key"))  # type: ignore[arg-type]
    gone = next(a for a in info.participants if a not in (info.merge_peer, info.key_steward))
    stay = [a for a in info.participants if a != gone]
    for a in stay:
        c.client(a).commit_update(rid, h(f"u-{a}"), 10, shares_hash=SHARES)
    assert c.admin.round(rid).state == RoundState.COMMITTING
    c.admin.remove_member(gone)
    info = c.admin.round(rid)
    assert info.state == RoundState.MERGING and info.left == (gone,)  # no deadline wait
    assert events(c, "ParticipantLeft") == [{"round": rid, "account": gone}]
    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), stay)  # type: ignore[arg-type]
    assert events(c, "CommitMissed") == []
    info = c.admin.round(rid)
    assert info.ack_eligible == 2  # 3 contributors less the merge peer
    ackers = [a for a in stay if a != info.merge_peer]
    c.client(ackers[0]).acknowledge(rid, h("m"))
    c.client(ackers[1]).acknowledge(rid, h("m"))
    assert c.admin.round(rid).state == RoundState.FINALIZED


def test_removed_merge_peer_is_replaced_at_once(consortium: Consortium) -> None:
    """Fault: the merge peer is removed while the others wait for the aggregate. Its replacement
    does not wait for the merge deadline; the new attempt starts right away."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    c.client(info.key_steward).post_round_key(rid, h("key"))  # type: ignore[arg-type]
    for a in info.participants:
        c.client(a).commit_update(rid, h(f"u-{a}"), 10, shares_hash=SHARES)
    c.admin.remove_member(info.merge_peer)  # type: ignore[arg-type]
    c.client(info.key_steward).replace_merge_peer(rid)  # type: ignore[arg-type]
    after = c.admin.round(rid)
    assert after.attempt == 1 and after.state == RoundState.KEYING
    assert after.merge_peer == info.order[2]


def test_removed_key_steward_is_replaced_at_once(consortium: Consortium) -> None:
    """Fault: the key steward is removed before it posted the key: replaced without waiting for
    the key deadline; a fallback that also left is skipped."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    with pytest.raises(errors.DeadlineNotPassedError):
        c.client(info.merge_peer).replace_key_steward(rid)  # type: ignore[arg-type]
    c.admin.remove_member(info.key_steward)  # type: ignore[arg-type]
    c.admin.remove_member(info.order[2])  # the first fallback too
    c.client(info.merge_peer).replace_key_steward(rid)  # type: ignore[arg-type]
    after = c.admin.round(rid)
    assert after.key_steward == info.order[3]
    assert set(after.left) == {info.key_steward, info.order[2]}


def test_removed_joiner_does_not_count_for_the_join(
    consortium_factory: Callable[..., Consortium],
) -> None:
    """Fault: a member joins and is removed while the window is open. It does not count toward
    minPeers, and once every remaining member joined the window closes without waiting."""
    c = consortium_factory(4, min_peers=3)
    rid = open_round(c)
    c.client(c.addresses[0]).join(rid)
    c.client(c.addresses[1]).join(rid)
    c.admin.remove_member(c.addresses[0])
    c.client(c.addresses[2]).join(rid)
    assert c.admin.round(rid).state == RoundState.JOINING  # 2 remaining joined: < minPeers
    c.client(c.addresses[3]).join(rid)
    assert c.admin.round(rid).state == RoundState.DRAWING  # all 3 remaining members joined
    info = draw(c, rid)
    assert info.left == (c.addresses[0],)


def test_removal_that_completes_a_majority_finalizes(
    consortium_factory: Callable[..., Consortium],
) -> None:
    """Fault: the last contributor that had not acknowledged is removed, and the others' votes
    (2 of 4 eligible: no majority) are now a majority of 3. Nobody is left to send the
    acknowledgement that would finalize: the removal itself finalizes, instead of the round
    lapsing (NoAgreement) with a majority on the ledger."""
    c = consortium_factory(5)
    rid = open_round(c)
    info = join_all(c, rid)
    c.client(info.key_steward).post_round_key(rid, h("key"))  # type: ignore[arg-type]
    for a in info.participants:
        c.client(a).commit_update(rid, h(f"u-{a}"), 10, shares_hash=SHARES)
    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants)  # type: ignore[arg-type]
    a, b, d, gone = (p for p in info.participants if p != info.merge_peer)
    c.client(a).acknowledge(rid, h("good"))
    c.client(b).acknowledge(rid, h("good"))
    c.client(d).acknowledge(rid, h("other"))
    assert c.admin.round(rid).state == RoundState.ACKNOWLEDGING  # 2 of 4
    c.admin.remove_member(gone)
    info = c.admin.round(rid)
    assert info.state == RoundState.FINALIZED and info.final_model == h("good")
    assert events(c, "RoundFinalized") == [
        {"round": rid, "modelHash": h("good"), "acks": 2, "eligible": 3}
    ]
