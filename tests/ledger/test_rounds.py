"""The round protocol on the embedded chain: happy paths, replacements, lapses, refusals.

Each test's docstring names the failure it exercises, where it exercises one.
"""

from __future__ import annotations

import pytest

from swarm import errors
from swarm.ledger import LapseReason, RoundState
from tests.conftest import WINDOW, Consortium, h
from tests.ledger.rounds import SHARES, draw, finalize, join_all, open_round, run_to_merging


def test_full_round_finalizes_on_majority(consortium: Consortium) -> None:
    """None (the happy path): one attempt, the merge peer does not vote, two of three acks
    finalize."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    # Everyone joined: the window closed by itself; once the draw block exists, its hash fixed a
    # permutation of the participants.
    assert info.state == RoundState.KEYING
    assert sorted(info.order) == sorted(c.addresses)
    assert info.merge_peer == info.order[0] and info.key_steward == info.order[1]

    info = run_to_merging(c, rid, samples={a: 10 * (i + 1) for i, a in enumerate(c.addresses)})
    assert info.state == RoundState.MERGING  # all committed: no need to wait for the deadline

    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants)
    info = c.admin.round(rid)
    assert info.state == RoundState.ACKNOWLEDGING
    assert info.total_samples == 10 + 20 + 30 + 40
    assert info.ack_eligible == 3  # the merge peer holds no key: it does not vote

    ackers = [a for a in info.participants if a != info.merge_peer]
    c.client(ackers[0]).acknowledge(rid, h("model-1"))
    assert c.admin.round(rid).state == RoundState.ACKNOWLEDGING  # 1 of 3 is no majority
    c.client(ackers[1]).acknowledge(rid, h("model-1"))
    info = c.admin.round(rid)
    assert info.state == RoundState.FINALIZED
    assert info.final_model == h("model-1")
    assert c.admin.latest_model() == h("model-1")
    assert c.admin.last_finalized_round() == rid


def test_dissenting_ack_is_recorded_after_finalization(consortium: Consortium) -> None:
    """A member acknowledging a different hash: recorded, visible, does not finalize."""
    c = consortium
    rid = open_round(c)
    info = run_to_merging(c, rid)
    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants)
    a, b, d = (x for x in info.participants if x != info.merge_peer)
    c.client(a).acknowledge(rid, h("good"))
    c.client(b).acknowledge(rid, h("good"))
    c.client(d).acknowledge(rid, h("tampered"))
    assert c.admin.round(rid).final_model == h("good")
    assert c.admin.ack(rid, d) == h("tampered")


def test_next_round_starts_from_finalized_model(consortium: Consortium) -> None:
    """A stale base model (wrong round's model) is refused with the expected hash."""
    c = consortium
    rid = open_round(c)
    run_to_merging(c, rid)
    finalize(c, rid, h("model-1"))
    with pytest.raises(errors.WrongRoundStateError) as exc:
        c.client(c.addresses[0]).open_round(h("model-0"))
    assert exc.value.name == "WrongBaseModel"
    assert exc.value.values == {"expected": h("model-1"), "given": h("model-0")}
    assert c.client(c.addresses[1]).open_round(h("model-1")) == rid + 1


def test_cannot_open_while_a_round_runs(consortium: Consortium) -> None:
    """A second opener while a round runs: WrongRoundState names what it found and expected."""
    c = consortium
    rid = open_round(c)
    with pytest.raises(errors.WrongRoundStateError) as exc:
        open_round(c)
    assert exc.value.name == "WrongRoundState"
    assert exc.value.values["round"] == rid
    assert exc.value.values["found"] == "JOINING"
    assert exc.value.values["expected"] == "FINALIZED|LAPSED"


def test_join_closes_at_deadline_with_min_peers(consortium: Consortium) -> None:
    """Fault: a member that never joins: the window closes at the deadline with minPeers, a late
    joiner is refused, the roles come after the draw block."""
    c = consortium
    rid = open_round(c)
    join_all(c, rid, c.addresses[:3])
    with pytest.raises(errors.DeadlineNotPassedError):
        c.client(c.addresses[0]).close_join(rid)
    c.chain.advance_time(WINDOW + 1)
    with pytest.raises(errors.DeadlinePassedError) as exc:
        c.client(c.addresses[3]).join(rid)  # a late joiner
    assert exc.value.values["round"] == rid
    c.client(c.addresses[0]).close_join(rid)
    assert c.admin.round(rid).state == RoundState.DRAWING
    info = draw(c, rid)
    assert info.state == RoundState.KEYING
    assert sorted(info.participants) == sorted(c.addresses[:3])


def test_round_lapses_below_min_peers_and_next_opens_from_same_base(
    consortium_factory: object,
) -> None:
    """A round below minPeers lapses; the lapse is recorded and the next round reuses the base."""
    c: Consortium = consortium_factory(4, min_peers=3)  # type: ignore[operator]
    rid = open_round(c)
    join_all(c, rid, c.addresses[:2])
    c.chain.advance_time(WINDOW + 1)
    with pytest.raises(errors.WrongRoundStateError) as exc:
        c.client(c.addresses[0]).close_join(rid)
    assert exc.value.values["found"] == "LAPSED" and exc.value.values["expected"] == "JOINING"
    info = c.admin.round(rid)
    assert info.state == RoundState.LAPSED and info.lapse_reason == LapseReason.TOO_FEW_JOINED
    rid2 = open_round(c)
    assert c.admin.round(rid2).base_model == h("model-0")
    lapses = [e for e in c.admin.events() if e.name == "RoundLapsed"]
    assert [(e.args["round"], e.args["reason"]) for e in lapses] == [
        (rid, LapseReason.TOO_FEW_JOINED)
    ]


def test_participant_that_misses_commit_deadline_is_left_out(consortium: Consortium) -> None:
    """A late update: its commitment is refused after the deadline; the round goes on without it."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    c.client(info.key_steward).post_round_key(rid, h("key"))
    late = next(a for a in info.participants if a not in (info.merge_peer, info.key_steward))
    for a in info.participants:
        if a != late:
            c.client(a).commit_update(rid, h(f"u-{a}"), 5, shares_hash=SHARES)
    assert c.admin.round(rid).state == RoundState.COMMITTING
    c.chain.advance_time(WINDOW + 1)
    with pytest.raises(errors.WrongRoundStateError) as exc:
        c.client(late).commit_update(rid, h("late"), 5, shares_hash=SHARES)
    assert exc.value.values["found"] == "MERGING"
    assert c.admin.round(rid).state == RoundState.MERGING
    # The merge peer cannot slip the late participant in either.
    with pytest.raises(errors.InvalidContributorsError) as exc:
        c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants)
    late_bit = 1 << info.participants.index(late)
    assert exc.value.values == {
        "round": rid,
        "contributorBits": 0b1111,
        "commitBits": 0b1111 & ~late_bit,
    }
    committed = [a for a in info.participants if a != late]
    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), committed)
    assert c.admin.round(rid).total_samples == 15


def test_too_few_commitments_lapse(consortium: Consortium) -> None:
    """Fault: participants that do not commit: below minPeers commitments the round lapses
    (TooFewCommitted)."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    c.client(info.key_steward).post_round_key(rid, h("key"))
    c.client(info.participants[0]).commit_update(rid, h("u"), 5, shares_hash=SHARES)
    c.chain.advance_time(WINDOW + 1)
    info = c.admin.round(rid)
    assert info.state == RoundState.LAPSED
    assert info.lapse_reason == LapseReason.TOO_FEW_COMMITTED


def test_merge_peer_that_misses_deadline_is_replaced(consortium: Consortium) -> None:
    """A dead merge peer: the next in the order takes over, with a new key and fresh commits."""
    c = consortium
    rid = open_round(c)
    info = run_to_merging(c, rid)
    first_merge, steward = info.merge_peer, info.key_steward
    assert first_merge is not None
    with pytest.raises(errors.DeadlineNotPassedError):
        c.client(steward).replace_merge_peer(rid)
    c.chain.advance_time(2 * WINDOW + 1)  # past the merge deadline
    with pytest.raises(errors.DeadlinePassedError):
        c.client(first_merge).submit_aggregate(rid, h("agg"), info.participants)
    c.client(steward).replace_merge_peer(rid)

    info = c.admin.round(rid)
    assert info.merge_peer == info.order[2]  # the first fallback
    assert info.key_steward == steward  # unchanged
    assert info.attempt == 1 and info.state == RoundState.KEYING
    # The new merge peer held the old round key's secret: commitments start over.
    assert c.admin.commitment(rid, 1, info.participants[0]) == (b"\0" * 32, 0)
    c.client(steward).post_round_key(rid, h("key-attempt-1"))
    for a in info.participants:
        c.client(a).commit_update(rid, h(f"u1-{a}"), 7, shares_hash=SHARES)
    with pytest.raises(errors.NotYourRoleError) as exc:
        c.client(first_merge).submit_aggregate(rid, h("agg"), info.participants)
    assert exc.value.values["mergePeer"] == info.merge_peer
    final = finalize(c, rid, h("model-1"))
    assert final.state == RoundState.FINALIZED and final.total_samples == 28


def test_key_steward_that_misses_deadline_is_replaced(consortium: Consortium) -> None:
    """Fault: a dead key steward: after its deadline the next fallback takes over; the old one is
    refused."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    old = info.key_steward
    c.chain.advance_time(WINDOW + 1)
    with pytest.raises(errors.DeadlinePassedError):
        c.client(old).post_round_key(rid, h("key"))
    c.client(info.merge_peer).replace_key_steward(rid)
    info = c.admin.round(rid)
    assert info.key_steward == info.order[2] != old
    with pytest.raises(errors.NotYourRoleError):
        c.client(old).post_round_key(rid, h("key"))
    c.client(info.key_steward).post_round_key(rid, h("key"))
    assert c.admin.round(rid).state == RoundState.COMMITTING


def test_round_lapses_when_no_fallback_is_left(consortium_factory: object) -> None:
    """Every merge peer candidate failed: the round lapses instead of hanging."""
    c: Consortium = consortium_factory(3)  # type: ignore[operator]
    rid = open_round(c)
    info = run_to_merging(c, rid)
    c.chain.advance_time(2 * WINDOW + 1)
    c.client(info.key_steward).replace_merge_peer(rid)  # uses the only fallback
    c.client(info.key_steward).post_round_key(rid, h("key-1"))
    for a in info.participants:
        c.client(a).commit_update(rid, h(f"u1-{a}"), 3, shares_hash=SHARES)
    c.chain.advance_time(2 * WINDOW + 1)
    info = c.admin.round(rid)
    assert info.state == RoundState.LAPSED
    assert info.lapse_reason == LapseReason.NO_MERGE_PEER_LEFT
    with pytest.raises(errors.WrongRoundStateError):
        c.client(info.key_steward).replace_merge_peer(rid)


def test_no_agreement_lapses(consortium: Consortium) -> None:
    """Acknowledgements split across hashes: no majority by the deadline, the round lapses."""
    c = consortium
    rid = open_round(c)
    info = run_to_merging(c, rid)
    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants)
    ackers = [a for a in info.participants if a != info.merge_peer]
    for i, a in enumerate(ackers):
        c.client(a).acknowledge(rid, h(f"model-{i}"))
    c.chain.advance_time(WINDOW + 1)
    info = c.admin.round(rid)
    assert info.state == RoundState.LAPSED and info.lapse_reason == LapseReason.NO_AGREEMENT


# --- refusals ----------------------------------------------------------------------------


def test_non_member_cannot_join_or_commit(consortium: Consortium) -> None:
    """A non-member peer: its transactions are refused with its address."""
    c = consortium
    rid = open_round(c)
    outsider = c.admin.as_identity(c.new_identity())
    with pytest.raises(errors.NotAMemberError) as exc:
        outsider.join(rid)
    assert exc.value.values == {"account": outsider.identity.address}  # type: ignore[union-attr]
    run_to_merging(c, rid)
    with pytest.raises(errors.NotAMemberError):
        outsider.commit_update(rid, h("x"), 1, shares_hash=SHARES)
    with pytest.raises(errors.NotAMemberError):
        outsider.open_round(h("model-0"))


def test_member_cannot_commit_twice(consortium: Consortium) -> None:
    """A replayed update: the second commitment is refused."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    c.client(info.key_steward).post_round_key(rid, h("key"))
    a = info.participants[0]
    c.client(a).commit_update(rid, h("u"), 5, shares_hash=SHARES)
    with pytest.raises(errors.AlreadyDoneError) as exc:
        c.client(a).commit_update(rid, h("u"), 5, shares_hash=SHARES)
    assert exc.value.name == "AlreadyCommitted"
    assert c.admin.commitment(rid, 0, a) == (h("u"), 5)


def test_commit_to_wrong_round_is_refused(consortium: Consortium) -> None:
    """A wrong round: commitments name the round, and only the current one is accepted."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    c.client(info.key_steward).post_round_key(rid, h("key"))
    with pytest.raises(errors.WrongRoundStateError) as exc:
        c.client(info.participants[0]).commit_update(rid + 1, h("u"), 5, shares_hash=SHARES)
    assert exc.value.values["round"] == rid + 1 and exc.value.values["found"] == "NONE"
    with pytest.raises(errors.WrongRoundStateError):
        c.client(info.participants[0]).commit_update(rid - 1, h("u"), 5, shares_hash=SHARES)


def test_commit_before_round_key_is_refused(consortium: Consortium) -> None:
    """Fault: a commitment before the round key: WrongRoundState (found Keying, expected
    Committing)."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    with pytest.raises(errors.WrongRoundStateError) as exc:
        c.client(info.participants[0]).commit_update(rid, h("u"), 5, shares_hash=SHARES)
    assert exc.value.values["found"] == "KEYING"
    assert exc.value.values["expected"] == "COMMITTING"


def test_non_participant_member_cannot_commit(consortium: Consortium) -> None:
    """Fault: a member that did not join commits: NotParticipant."""
    c = consortium
    rid = open_round(c)
    join_all(c, rid, c.addresses[:3])
    c.chain.advance_time(WINDOW + 1)
    c.client(c.addresses[0]).close_join(rid)
    info = draw(c, rid)
    c.client(info.key_steward).post_round_key(rid, h("key"))
    with pytest.raises(errors.NotParticipantError):
        c.client(c.addresses[3]).commit_update(rid, h("u"), 5, shares_hash=SHARES)


def test_only_merge_peer_submits_aggregate(consortium: Consortium) -> None:
    """A participant that is not the merge peer submits the aggregate: refused with both names."""
    c = consortium
    rid = open_round(c)
    info = run_to_merging(c, rid)
    impostor = info.key_steward
    with pytest.raises(errors.NotYourRoleError) as exc:
        c.client(impostor).submit_aggregate(rid, h("agg"), info.participants)
    assert exc.value.values == {"round": rid, "account": impostor, "mergePeer": info.merge_peer}


def test_only_key_steward_posts_key(consortium: Consortium) -> None:
    """Fault: another participant posts the round key: NotKeySteward."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    with pytest.raises(errors.NotYourRoleError) as exc:
        c.client(info.merge_peer).post_round_key(rid, h("key"))
    assert exc.value.name == "NotKeySteward"


def test_aggregate_needs_min_peers_contributors(consortium_factory: object) -> None:
    """An aggregate of one update would reveal that update: fewer than minPeers is refused."""
    c: Consortium = consortium_factory(4, min_peers=3)  # type: ignore[operator]
    rid = open_round(c)
    info = run_to_merging(c, rid)
    with pytest.raises(errors.InvalidContributorsError) as exc:
        c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants[:2])
    assert exc.value.name == "TooFewContributors"


def test_ack_when_round_not_awaiting_one_is_refused(consortium: Consortium) -> None:
    """An acknowledgement for a round not awaiting one (still committing, or nonexistent)."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    with pytest.raises(errors.WrongRoundStateError) as exc:
        c.client(info.participants[0]).acknowledge(rid, h("m"))
    assert exc.value.values["found"] == "KEYING"
    with pytest.raises(errors.WrongRoundStateError) as exc:
        c.client(info.participants[0]).acknowledge(rid + 5, h("m"))
    assert exc.value.values["found"] == "NONE"


def test_merge_peer_and_non_contributors_cannot_ack(consortium: Consortium) -> None:
    """Fault: the merge peer (no secret key) or a participant left out of the aggregate
    acknowledges: NotContributor."""
    c = consortium
    rid = open_round(c)
    info = run_to_merging(c, rid)
    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants[:3])
    left_out = info.participants[3]
    with pytest.raises(errors.NotParticipantError) as exc:
        c.client(info.merge_peer).acknowledge(rid, h("m"))
    assert exc.value.name == "NotContributor"
    if left_out != info.merge_peer:
        with pytest.raises(errors.NotParticipantError):
            c.client(left_out).acknowledge(rid, h("m"))


def test_removed_member_cannot_act(consortium: Consortium) -> None:
    """A removed member acts: every round call is refused, its record remains."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    c.client(info.key_steward).post_round_key(rid, h("key"))
    removed = next(a for a in info.participants if a not in (info.merge_peer, info.key_steward))
    c.admin.remove_member(removed)
    with pytest.raises(errors.NotAMemberError):
        c.client(removed).commit_update(rid, h("u"), 5, shares_hash=SHARES)
    record = c.admin.member(removed)
    assert record is not None and not record.active


def test_zero_values_are_refused(consortium: Consortium) -> None:
    """Fault: a zero sample count: InvalidParameter names it."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    c.client(info.key_steward).post_round_key(rid, h("key"))
    with pytest.raises(errors.InvalidParameterError) as exc:
        c.client(info.participants[0]).commit_update(rid, h("u"), 0, shares_hash=SHARES)
    assert exc.value.values == {"name": "sampleCount", "value": 0}


def test_metrics_for_finalized_round(consortium: Consortium) -> None:
    """Fault: metrics before finalization, or reported twice: refused; once each after."""
    c = consortium
    rid = open_round(c)
    run_to_merging(c, rid)
    with pytest.raises(errors.WrongRoundStateError):
        c.client(c.addresses[0]).report_metrics(rid, 50, 0.8, 0.9, 0.4)
    finalize(c, rid, h("model-1"))
    c.client(c.addresses[0]).report_metrics(rid, 50, 0.8, 0.9, 0.4)
    with pytest.raises(errors.AlreadyDoneError):
        c.client(c.addresses[0]).report_metrics(rid, 50, 0.8, 0.9, 0.4)
    event = next(e for e in c.admin.events() if e.name == "MetricsReported")
    assert event.args["accuracyPpm"] == 800_000 and event.args["modelHash"] == h("model-1")
