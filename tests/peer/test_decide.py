"""``decide`` transition by transition, without I/O: every state, role, deadline and fault.

Each test builds a ledger view and a local view by hand and checks the actions. The docstring of
each says which situation or fault it covers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from swarm.ledger import LapseReason, LedgerView, Params, RoundInfo, RoundState
from swarm.ledger.watch import LedgerNote
from swarm.peer import LocalView, RoundProgress, decide
from swarm.peer.actions import (
    Absorb,
    Acknowledge,
    Action,
    Adopt,
    CatchUp,
    CloseJoin,
    Commit,
    Decrypt,
    DeliverRoundKeys,
    DrawRoles,
    FetchRoundKey,
    Join,
    MakeRoundKey,
    Merge,
    OpenRound,
    PostRoundKey,
    PushReveal,
    PushShares,
    PushUpdate,
    ReplaceKeySteward,
    ReplaceMergePeer,
    ReportMetrics,
    Stop,
    Train,
)
from swarm.peer.decide import (
    NOT_WATCHED,
    OPEN_FALLBACK_S,
    SEED_STORE_AFTER_BLOCKS,
    next_look_at,
    not_watched,
    worth_a_look,
)
from swarm.protocol import GRACE_S

A, B, C, D = (f"0x{i:040X}" for i in (0xA, 0xB, 0xC, 0xD))
M0, M1 = b"\x01" * 32, b"\x02" * 32  # the base model, the next one
KEY, UA, UB, UC, UD, AGG = (bytes([i]) * 32 for i in range(10, 16))
T = 1_000_000.0  # "now" in every test unless it moves
ZERO = b"\0" * 32

PARAMS = Params(
    min_peers=3,
    join_window=30,
    key_window=30,
    commit_window=30,
    merge_window=30,
    ack_window=30,
    ckks_params_id=1,
    task_id=b"\x07" * 32,
    initial_model_hash=M0,
    metrics_enabled=True,
)


def rnd(state: RoundState, **changes: object) -> RoundInfo:
    """Round 5 from M0, joined by A-D; order C (merge), B (steward), A, D; deadlines ahead."""
    base: dict[str, object] = dict(
        round_id=5,
        state=state,
        lapse_reason=LapseReason.NONE,
        base_model=M0,
        attempt=0,
        participants=(A, B, C, D),
        order=(C, B, A, D),
        merge_peer=C,
        key_steward=B,
        key_hash=ZERO,
        aggregate_hash=ZERO,
        final_model=ZERO,
        contributors=(),
        total_samples=0,
        join_deadline=int(T) + 10,
        key_deadline=int(T) + 10,
        commit_deadline=int(T) + 10,
        merge_deadline=int(T) + 20,
        ack_deadline=int(T) + 30,
        min_peers=3,
        seed=b"\x09" * 32,
        commit_count=0,
        ack_eligible=0,
        draw_block=90,
        seed_stored=True,
    )
    if state in (RoundState.JOINING, RoundState.DRAWING):
        base.update(order=(), merge_peer=None, key_steward=None, seed=ZERO, seed_stored=False)
    if state >= RoundState.COMMITTING:
        base.update(key_hash=KEY)
    if state == RoundState.ACKNOWLEDGING:
        base.update(aggregate_hash=AGG, contributors=(A, B, C, D), total_samples=400)
    base.update(changes)
    return RoundInfo(**base)  # type: ignore[arg-type]


def ledger(
    info: RoundInfo | None,
    *,
    latest: bytes = M0,
    last_finalized: int = 4,
    finalized_count: int = 4,
    commitments: Mapping[str, tuple[bytes, int]] | None = None,
    acks: Mapping[str, bytes] | None = None,
    block_number: int = 100,
) -> LedgerView:
    return LedgerView(
        block_number=block_number,
        block_time=int(T),
        current_round=info.round_id if info else 0,
        last_finalized=last_finalized,
        finalized_count=finalized_count,
        latest_model=latest,
        params=PARAMS,
        round=info,
        commitments=dict(commitments or {}),
        acks=dict(acks or {}),
    )


def local(me: str = A, progress: RoundProgress | None = None, **changes: object) -> LocalView:
    base: dict[str, object] = dict(
        me=me, model_hash=M0, model_round=4, metrics_round=4, progress=progress
    )
    base.update(changes)
    return LocalView(**base)  # type: ignore[arg-type]


def keyed(**changes: object) -> RoundProgress:
    """Round 5, attempt 0: trained and holding the context and our secret key."""
    base: dict[str, object] = dict(round_id=5, trained=True, has_context=True, has_secret=True)
    base.update(changes)
    return RoundProgress(**base)  # type: ignore[arg-type]


def kinds(actions: list[Action]) -> list[type[Action]]:
    return [type(a) for a in actions]


ALL_COMMITTED = {A: (UA, 100), B: (UB, 100), C: (UC, 100), D: (UD, 100)}

# --- our model against the ledger's ---------------------------------------------------------


def test_a_peer_behind_the_ledger_catches_up_first() -> None:
    """Restarted peer / late joiner: the ledger finalized a model we do not hold."""
    view = ledger(rnd(RoundState.JOINING, round_id=6, base_model=M1), latest=M1, last_finalized=5)
    assert decide(view, local(), T) == [CatchUp(5, M1)]


def test_a_peer_that_computed_the_finalized_model_adopts_it_instead_of_fetching() -> None:
    """The round finalized the model we computed: adopt it, no transfer."""
    view = ledger(rnd(RoundState.FINALIZED, final_model=M1), latest=M1, last_finalized=5)
    progress = keyed(new_model=M1)
    assert decide(view, local(progress=progress), T) == [Adopt(5, M1)]


def test_a_computed_model_the_ledger_did_not_finalize_is_not_adopted() -> None:
    """We computed a different model (we dissented, or our decryption was off): fetch the
    majority's model instead of adopting ours."""
    view = ledger(rnd(RoundState.FINALIZED, final_model=M1), latest=M1, last_finalized=5)
    progress = keyed(new_model=b"\x03" * 32)
    assert decide(view, local(progress=progress), T) == [CatchUp(5, M1)]


def test_a_peer_adopting_its_model_is_not_sent_to_fetch_it_when_the_next_round_opens() -> None:
    """Race between honest steps: a decider adopts the model it decrypted (checkpoint, a worker
    thread) while the next round opens; its progress is then the new round's, which knows no
    model of ours. It must not also fetch the same model from another member (measured at
    11.2M parameters: each decider did, every round). The other way round, a fetch that began
    before our decryption ended does not hold our adoption up."""
    info = rnd(RoundState.JOINING, round_id=6, base_model=M1)
    view = ledger(info, latest=M1, last_finalized=5, finalized_count=5)
    adopting = local(progress=RoundProgress(6), in_flight=frozenset({Adopt(5, M1).key}))
    assert decide(view, adopting, T) == []
    fetching = local(progress=keyed(new_model=M1), in_flight=frozenset({CatchUp(5, M1).key}))
    finalized = ledger(rnd(RoundState.FINALIZED, final_model=M1), latest=M1, last_finalized=5)
    assert decide(finalized, fetching, T) == [Adopt(5, M1)]
    # adopting an older round's model is not this one: fetch it
    older = local(progress=RoundProgress(6), in_flight=frozenset({Adopt(4, M1).key}))
    assert decide(view, older, T) == [CatchUp(5, M1)]


# --- between rounds ---------------------------------------------------------------------------


def test_the_first_round_is_opened_by_whoever_sees_it_first() -> None:
    """A fresh consortium: no round yet, anyone opens the first."""
    assert decide(ledger(None), local(), T) == [OpenRound(M0)]


@pytest.mark.parametrize(
    "info",
    [
        rnd(RoundState.FINALIZED, round_id=4, final_model=M0),
        rnd(RoundState.LAPSED, lapse_reason=LapseReason.NO_AGREEMENT),
    ],
    ids=["after a finalized round", "after a lapsed round"],
)
def test_one_designated_peer_opens_the_next_round_the_others_only_if_it_does_not(
    info: RoundInfo,
) -> None:
    """Race between honest peers: all see the round end at once. One designated participant
    opens at once; the others only after OPEN_FALLBACK_S (a dead designated peer costs seconds),
    so the chain does not collect one reverted openRound per peer and round."""
    designated = sorted(info.participants)[info.round_id % len(info.participants)]
    others = [p for p in info.participants if p != designated]
    assert decide(ledger(info), local(designated), T) == [OpenRound(M0)]
    for me in others:
        assert decide(ledger(info), local(me, idle_since=T), T + 1) == []
        assert decide(ledger(info), local(me, idle_since=T), T + OPEN_FALLBACK_S) == [OpenRound(M0)]


def test_a_new_model_is_evaluated_once() -> None:
    """After adopting round 4's model we report its metrics, while the next round goes on."""
    view = ledger(None)  # (no round: anyone may open)
    assert decide(view, local(metrics_round=3), T) == [ReportMetrics(4), OpenRound(M0)]


ENDED = rnd(RoundState.FINALIZED, round_id=4, final_model=M0)


@pytest.mark.parametrize(
    ("view", "me", "changes", "now", "reported"),
    [
        # between rounds: the next one opens at once on a healthy swarm, and we join it
        (ledger(ENDED), B, dict(idle_since=T), T + 1, False),
        (ledger(ENDED), B, dict(idle_since=T), T + OPEN_FALLBACK_S, True),
        # the next round: our join, training and commitment come first
        (ledger(rnd(RoundState.JOINING, participants=(B, C))), A, {}, T, False),
        (ledger(rnd(RoundState.JOINING)), A, dict(progress=keyed(trained=False)), T, False),
        (ledger(rnd(RoundState.KEYING)), B, dict(progress=keyed()), T, False),
        (ledger(rnd(RoundState.COMMITTING)), A, dict(progress=keyed()), T, False),
        (ledger(rnd(RoundState.COMMITTING), commitments={A: (UA, 100)}), A, {}, T, True),
        # the merge peer: its aggregate too
        (ledger(rnd(RoundState.MERGING), commitments=ALL_COMMITTED), C, {}, T, False),
        (ledger(rnd(RoundState.ACKNOWLEDGING), commitments=ALL_COMMITTED), C, {}, T, True),
        # a round we cannot join, or one we are not in any more, holds nothing up
        (
            ledger(rnd(RoundState.JOINING, participants=(B, C, D))),
            A,
            dict(sitting_out_until=5),
            T,
            True,
        ),
        (ledger(rnd(RoundState.COMMITTING, left=(A,))), A, {}, T, True),
        (ledger(rnd(RoundState.COMMITTING, participants=(B, C, D))), A, {}, T, True),
    ],
    ids=[
        "round just ended",
        "next round late",
        "not joined yet",
        "joined, training",
        "key steward",
        "not committed",
        "committed",
        "merge peer merging",
        "merge peer done",
        "sitting out",
        "left the round",
        "not in the round",
    ],
)
def test_metrics_wait_until_our_steps_of_the_round_are_on_the_ledger(
    view: LedgerView, me: str, changes: dict[str, object], now: float, reported: bool
) -> None:
    """The evaluation and the reportMetrics transaction are a courtesy: they must not hold
    back our join, round key, commitment or aggregate (one account sends one transaction at a
    time), nor take a core while we train and encrypt."""
    actions = decide(view, local(me, metrics_round=3, **changes), now)
    assert (ReportMetrics(4) in actions) is reported


def test_the_target_counts_finalized_rounds_not_round_ids() -> None:
    """--rounds N: lapsed rounds do not count. Round id 9 exists but only 4 finalized."""
    view = ledger(rnd(RoundState.LAPSED, round_id=9), finalized_count=4)
    assert decide(view, local(rounds_target=5, idle_since=T - 60), T) == [OpenRound(M0)]
    done = ledger(rnd(RoundState.LAPSED, round_id=9), finalized_count=5)
    assert decide(done, local(rounds_target=5), T) == [Stop(5)]


def test_stop_waits_for_the_last_metrics() -> None:
    """The model we stop with is evaluated before we stop."""
    view = ledger(None, finalized_count=4)
    assert decide(view, local(rounds_target=4, metrics_round=3), T) == [ReportMetrics(4)]


# --- joining ----------------------------------------------------------------------------------


def test_joining_joins_and_trains_at_once() -> None:
    """Join when we hold the base model, and train at the same time (training is on the
    critical path; it does not wait for our join to be mined, nor for the others')."""
    info = rnd(RoundState.JOINING, participants=(B, C))
    assert decide(ledger(info), local(), T) == [Join(5), Train(5)]
    assert decide(ledger(info), local(progress=keyed()), T) == [Join(5)]
    joined = rnd(RoundState.JOINING, participants=(A, B))
    assert decide(ledger(joined), local(), T) == [Train(5)]
    assert decide(ledger(joined), local(progress=keyed()), T) == []


def test_a_member_sitting_out_does_not_join() -> None:
    """A member benched for missed commits (stalling): the contract would refuse its join, so
    it does not send one until the bench ends, then joins as before."""
    info = rnd(RoundState.JOINING, participants=(B, C))
    assert decide(ledger(info), local(sitting_out_until=5), T) == []
    assert decide(ledger(info), local(sitting_out_until=4), T) == [Join(5), Train(5)]


@pytest.mark.parametrize(
    ("participants", "now", "closes"),
    [
        ((A, B, C), T + 10 + GRACE_S + 1, True),
        ((A, B, C), T + 10 + GRACE_S - 1, False),  # inside the grace period: the chain may lag
        ((A, B), T + 10 + GRACE_S + 1, False),  # below minPeers: the round will lapse
    ],
)
def test_the_join_window_closes_after_its_deadline_with_enough_peers(
    participants: tuple[str, ...], now: float, closes: bool
) -> None:
    """An absent member: the window closes at its deadline without it (if minPeers joined)."""
    info = rnd(RoundState.JOINING, participants=participants)
    actions = decide(ledger(info), local(progress=keyed()), now)
    assert (CloseJoin(5) in actions) is closes


def test_a_peer_left_out_of_a_closed_round_waits() -> None:
    """We joined too late (or not at all): nothing to do until the next round."""
    info = rnd(RoundState.COMMITTING, participants=(B, C, D), order=(C, B, D))
    assert decide(ledger(info), local(), T) == []


# --- the round key ----------------------------------------------------------------------------


@pytest.mark.parametrize("me", [A, B, C, D])
def test_while_the_roles_are_drawn_participants_only_train(me: str) -> None:
    """Steering attempt: the join window closed, but the block whose hash draws the roles is not
    mined yet. Nobody knows its role, so nobody keys, merges or replaces anyone (even past the
    key deadline): an untrained participant trains, a trained one waits."""
    info = rnd(RoundState.DRAWING, key_deadline=int(T) - 10)
    assert decide(ledger(info), local(me, progress=RoundProgress(round_id=5)), T) == [Train(5)]
    assert decide(ledger(info), local(me, progress=keyed()), T) == []


def test_the_steward_makes_then_posts_and_delivers_the_key_at_once() -> None:
    """Key steward: make the key pair, then post its hash and push the keys at the same time
    (the participants hold them when the hash lands); once delivered, only the post is left."""
    info = rnd(RoundState.KEYING)
    assert decide(ledger(info), local(B, keyed(has_context=False, has_secret=False)), T) == [
        MakeRoundKey(5, 0)
    ]
    assert decide(ledger(info), local(B, keyed(steward_key=True)), T) == [
        PostRoundKey(5, 0),
        DeliverRoundKeys(5, 0),
    ]
    delivered = keyed(steward_key=True, keys_delivered=True)
    assert decide(ledger(info), local(B, delivered), T) == [PostRoundKey(5, 0)]


def test_a_silent_steward_is_replaced_after_its_deadline() -> None:
    """Dead or silent key steward: replaced once its deadline (plus grace) passed."""
    info = rnd(RoundState.KEYING)
    assert decide(ledger(info), local(progress=keyed()), T) == []
    late = T + 10 + GRACE_S + 1
    assert decide(ledger(info), local(progress=keyed()), late) == [ReplaceKeySteward(5, 0)]


def test_a_removed_steward_is_replaced_at_once() -> None:
    """A key steward removed from the consortium mid-round cannot post; nobody waits out its
    deadline: the next in the order takes over now."""
    info = rnd(RoundState.KEYING, left=(B,))
    assert decide(ledger(info), local(progress=keyed()), T) == [ReplaceKeySteward(5, 0)]


@pytest.mark.parametrize("state", [RoundState.KEYING, RoundState.COMMITTING])
def test_a_removed_merge_peer_is_replaced_at_once(state: RoundState) -> None:
    """A merge peer removed from the consortium must not receive this attempt's updates: the
    attempt starts over with the next merge peer, before the merge deadline."""
    info = rnd(state, left=(C,))
    actions = decide(ledger(info), local(D, keyed()), T)
    assert ReplaceMergePeer(5, 0) in actions
    assert not [a for a in actions if isinstance(a, PushUpdate)]


def test_a_removed_participant_does_nothing_more_in_the_round() -> None:
    """We were removed mid-round (the ledger lists us as left): no commit, push or vote."""
    info = rnd(RoundState.COMMITTING, left=(A,))
    assert decide(ledger(info), local(A, keyed()), T) == []


def test_a_seed_nobody_stored_is_stored_before_its_block_hash_is_gone() -> None:
    """A silent steward under a long key window: the draw's block hash would leave the 256-block
    horizon and the round lapse (DrawExpired). 64 blocks after the draw, participants store the
    seed themselves; the steward itself posts its key (which stores it) instead."""
    info = rnd(
        RoundState.KEYING,
        draw_block=100 - SEED_STORE_AFTER_BLOCKS,
        seed_stored=False,
        key_deadline=int(T) + 600,
    )
    assert decide(ledger(info), local(progress=keyed()), T) == [DrawRoles(5)]
    assert decide(ledger(info, block_number=99), local(progress=keyed()), T) == []
    assert DrawRoles(5) not in decide(ledger(info), local(B, keyed()), T)
    stored = rnd(RoundState.KEYING, draw_block=1, seed_stored=True, key_deadline=int(T) + 600)
    assert decide(ledger(stored), local(progress=keyed()), T) == []


def test_the_steward_delivers_once_the_key_is_posted() -> None:
    """The key's hash is on the ledger: now the steward pushes keys, concurrently."""
    info = rnd(RoundState.COMMITTING)
    actions = decide(ledger(info), local(B, keyed(steward_key=True)), T)
    assert DeliverRoundKeys(5, 0) in actions and Commit(5, 0) in actions
    delivered = keyed(steward_key=True, keys_delivered=True)
    assert DeliverRoundKeys(5, 0) not in decide(ledger(info), local(B, delivered), T)


def test_a_restarted_steward_reads_back_its_key() -> None:
    """Steward restarted after posting: it recovers its key from disk (fetch from itself)."""
    info = rnd(RoundState.COMMITTING)
    assert decide(ledger(info), local(B, keyed(has_context=False, has_secret=False)), T) == [
        FetchRoundKey(5, 0, B)
    ]


@pytest.mark.parametrize(
    "progress",
    [None, keyed(has_context=False, has_secret=False), keyed(has_secret=False)],
    ids=["restarted", "push not arrived", "context only"],
)
def test_a_participant_without_its_key_pulls_it_from_the_steward(
    progress: RoundProgress | None,
) -> None:
    """Restarted peer or missed delivery: pull the context and sealed key from the steward."""
    info = rnd(RoundState.COMMITTING)
    assert FetchRoundKey(5, 0, B) in decide(ledger(info), local(progress=progress), T)


def test_the_merge_peer_needs_only_the_public_context() -> None:
    """The merge peer never gets the secret key; the context is enough to encrypt."""
    info = rnd(RoundState.COMMITTING)
    progress = keyed(has_secret=False)
    actions = decide(ledger(info), local(C, progress), T)
    assert Commit(5, 0) in actions and not any(isinstance(a, FetchRoundKey) for a in actions)


# --- committing, pushing, merging -------------------------------------------------------------


def test_commit_needs_the_trained_update() -> None:
    """Keys arrived before training finished: train, commit after."""
    info = rnd(RoundState.COMMITTING)
    assert decide(ledger(info), local(progress=keyed(trained=False)), T) == [Train(5)]
    assert decide(ledger(info), local(progress=keyed()), T) == [Commit(5, 0)]


def test_no_commit_after_the_commit_deadline() -> None:
    """Late participant: past its commit deadline it does not commit (it would revert)."""
    info = rnd(RoundState.COMMITTING)
    assert decide(ledger(info), local(progress=keyed()), T + 11) == []


def test_a_committed_update_is_pushed_until_the_merge_peer_has_it() -> None:
    """Failed push (dead connection, restart): pushed again while the merge peer is the same;
    a confirmed push is not repeated."""
    info = rnd(RoundState.COMMITTING)
    view = ledger(info, commitments={A: (UA, 100)})
    assert decide(view, local(progress=keyed()), T) == [PushUpdate(5, 0, C)]
    assert decide(view, local(progress=keyed(pushed=True)), T) == []


def test_a_push_stops_when_the_merge_deadline_passed() -> None:
    """Silent merge peer: no more pushes past its deadline; it gets replaced instead."""
    info = rnd(RoundState.MERGING)
    view = ledger(info, commitments={A: (UA, 100)})
    late = T + 20 + GRACE_S + 1
    assert decide(view, local(progress=keyed()), late) == [ReplaceMergePeer(5, 0)]


def test_a_merge_peer_replacement_starts_the_attempt_over() -> None:
    """Merge peer replaced (attempt 1): our key and push of attempt 0 no longer count; the new
    steward's key is needed and the update is committed again."""
    info = rnd(RoundState.COMMITTING, attempt=1, merge_peer=A, key_steward=B, key_hash=b"\x11" * 32)
    stale = keyed(pushed=True, steward_key=True)  # attempt 0's
    assert decide(ledger(info), local(D, stale), T) == [FetchRoundKey(5, 1, B)]


def test_the_merge_peer_merges_once_every_update_is_here() -> None:
    """All four committed and delivered: merge at once, before the commit window closes."""
    info = rnd(RoundState.MERGING)
    held = frozenset((a, d) for a, (d, _) in ALL_COMMITTED.items())
    view = ledger(info, commitments=ALL_COMMITTED)
    assert decide(view, local(C, keyed(has_secret=False, held_updates=held)), T) == [Merge(5, 0)]


def test_the_merge_peer_waits_for_committed_updates_still_in_flight() -> None:
    """Everyone committed but one push is still under way: wait for it (window open), adding
    the updates already here into the running sum meanwhile, once each."""
    info = rnd(RoundState.MERGING)
    held = frozenset((a, d) for a, (d, _) in ALL_COMMITTED.items() if a != D)
    view = ledger(info, commitments=ALL_COMMITTED)
    assert decide(view, local(C, keyed(has_secret=False, held_updates=held)), T) == [Absorb(5, 0)]
    added = keyed(has_secret=False, held_updates=held, absorbed=held)
    assert decide(view, local(C, added), T) == []


def test_an_update_is_added_as_it_arrives_and_a_late_one_is_not() -> None:
    """The merge peer adds each delivered, committed update at once (the merge then only adds
    the last), but nothing once the merge window has passed, nor an update whose digest is not
    its sender's commitment (added: A's, refused or replaced: not the same digest)."""
    info = rnd(RoundState.COMMITTING)
    view = ledger(info, commitments={A: (UA, 100)})
    held = frozenset({(A, UA)})
    assert Absorb(5, 0) in decide(view, local(C, keyed(has_secret=False, held_updates=held)), T)
    late = T + 20 + GRACE_S + 1
    assert Absorb(5, 0) not in decide(
        view, local(C, keyed(has_secret=False, held_updates=held)), late
    )
    stale = keyed(has_secret=False, held_updates=held, absorbed=frozenset({(A, UB)}))
    assert Absorb(5, 0) in decide(view, local(C, stale), T)


def test_the_merge_peer_leaves_out_a_silent_participant_when_the_window_closes() -> None:
    """One participant's connection is dead: at the commit deadline the others are merged."""
    info = rnd(RoundState.MERGING)
    committed = {a: v for a, v in ALL_COMMITTED.items() if a != D}
    held = frozenset((a, d) for a, (d, _) in committed.items())
    view = ledger(info, commitments=committed)
    after = T + 10 + GRACE_S + 1
    assert decide(view, local(C, keyed(has_secret=False, held_updates=held)), after) == [
        Merge(5, 0)
    ]


def test_the_merge_peer_does_not_wait_for_a_removed_participant() -> None:
    """A participant removed mid-round will never deliver: everyone still in is here, so the
    merge starts without waiting for the commit window to close, and leaves it out."""
    info = rnd(RoundState.COMMITTING, left=(D,))
    committed = {a: v for a, v in ALL_COMMITTED.items() if a != D}
    held = frozenset((a, d) for a, (d, _) in committed.items())
    view = ledger(info, commitments=ALL_COMMITTED)
    assert decide(view, local(C, keyed(has_secret=False, held_updates=held)), T) == [Merge(5, 0)]


def test_an_update_that_does_not_match_its_commitment_is_not_counted() -> None:
    """Altered or replayed update: held under a digest that is not the commitment."""
    info = rnd(RoundState.MERGING)
    held = frozenset({(A, UA), (B, UB), (C, b"\x99" * 32)})
    view = ledger(info, commitments={a: v for a, v in ALL_COMMITTED.items() if a != D})
    after = T + 10 + GRACE_S + 1
    counted = frozenset({(A, UA), (B, UB)})
    progress = keyed(has_secret=False, held_updates=held, absorbed=counted)
    assert decide(view, local(C, progress), after) == []


def test_the_merge_peer_without_the_context_pulls_it() -> None:
    """Restarted merge peer: it gets the public context (never a secret key) from the steward."""
    info = rnd(RoundState.MERGING)
    view = ledger(info, commitments=ALL_COMMITTED)
    assert decide(view, local(C, keyed(has_context=False, has_secret=False)), T) == [
        FetchRoundKey(5, 0, B)
    ]


# --- agreeing ---------------------------------------------------------------------------------


def test_a_key_holder_decrypts_then_acknowledges_until_recorded() -> None:
    """Decrypt, then acknowledge; an acknowledgement that reverted (out of gas when another
    landed first) is sent again because the ledger does not show it."""
    info = rnd(RoundState.ACKNOWLEDGING)
    assert decide(ledger(info), local(progress=keyed()), T) == [Decrypt(5, 0)]
    computed = keyed(new_model=M1)
    assert decide(ledger(info), local(progress=computed), T) == [Acknowledge(5, M1)]
    recorded = ledger(info, acks={A: M1})
    assert decide(recorded, local(progress=computed), T) == []


def test_a_merge_peer_that_could_not_commit_merges_the_others() -> None:
    """Fault: the merge peer's own update was refused (found by a ResNet-18 run: its codec's
    value range check failed every retry). With no commitment of its own there are no masks of
    its own to protect: once the commit window closed it merges the others' updates, instead of
    waiting for shares it never handed out until the merge window lapses."""
    info = rnd(RoundState.MERGING, params=MASKED)
    others = {a: c for a, c in ALL_COMMITTED.items() if a != C}
    held = frozenset((a, d) for a, (d, _) in others.items())
    view = ledger(info, commitments=others)
    progress = keyed(has_secret=False, held_updates=held, shares_held_by=0)
    assert decide(view, local(C, progress), T + 15) == [Merge(5, 0)]


@pytest.mark.parametrize(
    ("me", "contributors"), [(C, (A, B, C, D)), (D, (A, B, C))], ids=["merge peer", "left out"]
)
def test_only_key_holding_contributors_acknowledge(me: str, contributors: tuple[str, ...]) -> None:
    """The merge peer holds no key; a participant left out of the aggregate has no vote."""
    info = rnd(RoundState.ACKNOWLEDGING, contributors=contributors)
    assert decide(ledger(info), local(me, keyed(has_secret=False)), T) == []


def test_a_key_holder_restarted_before_decrypting_pulls_its_key() -> None:
    """Restart between commit and aggregate: the key is pulled again to decrypt."""
    info = rnd(RoundState.ACKNOWLEDGING)
    assert decide(ledger(info), local(), T) == [FetchRoundKey(5, 0, B)]


def test_a_finalized_round_with_our_model_goes_on_to_the_next() -> None:
    """The round finalized our model and we adopted it: open the next round."""
    info = rnd(RoundState.FINALIZED, final_model=M1)
    view = ledger(info, latest=M1, last_finalized=5, finalized_count=5)
    me = sorted(info.participants)[5 % 4]  # the designated opener
    assert decide(view, local(me, model_hash=M1, model_round=5, metrics_round=5), T) == [
        OpenRound(M1)
    ]


def test_the_designated_opener_opens_the_next_round_while_it_fetches_the_model() -> None:
    """The opener that did not decrypt (merge peer, stand-by) fetches the finalized model and
    opens the next round on the ledger's hash at the same time, instead of after the fetch
    (measured: 1-2 s per round at 11.2M parameters). Nobody else opens early; nobody opens
    past the rounds the operator asked for."""
    info = rnd(RoundState.FINALIZED, final_model=M1)
    view = ledger(info, latest=M1, last_finalized=5, finalized_count=5)
    opener = sorted(info.participants)[5 % 4]
    other = next(a for a in info.participants if a != opener)
    assert decide(view, local(opener), T) == [CatchUp(5, M1), OpenRound(M1)]
    assert decide(view, local(other), T) == [CatchUp(5, M1)]
    assert decide(view, local(opener, rounds_target=5), T) == [CatchUp(5, M1)]


# --- deciders and stand-bys (large models) ----------------------------------------------------

BIG = 11_187_138  # a ResNet-18's parameters
#: A, B, D hold the key (C merges); two acknowledgements of three finalize; in the drawn order
#: (C, B, A, D) the deciders are B and A, D stands by. The aggregate came at T (ack window 30).
UNMASKED = dataclasses.replace(PARAMS, mask_threshold_pct=0)
STANDBY = rnd(RoundState.ACKNOWLEDGING, ack_eligible=3, params=UNMASKED)


@pytest.mark.parametrize(("me", "decrypts"), [(B, True), (A, True), (D, False)])
def test_a_large_aggregate_is_decrypted_by_the_deciders_only(me: str, decrypts: bool) -> None:
    """The first majority of key holders in the drawn order decrypt; the others stand by and
    fetch the finalized model (measured: 3 key holders decrypting an 11.2M-parameter aggregate
    on 2 cores took 8 s, 2 take ~5)."""
    actions = decide(ledger(STANDBY), local(me, keyed(), param_count=BIG), T)
    assert actions == ([Decrypt(5, 0)] if decrypts else [])


def test_a_small_model_is_decrypted_by_every_key_holder() -> None:
    """A small model's decryption costs milliseconds: nobody stands by, so a dead decider
    never makes the round wait."""
    assert decide(ledger(STANDBY), local(D, keyed(), param_count=36), T) == [Decrypt(5, 0)]


def test_a_stand_by_decrypts_when_half_the_ack_window_passed() -> None:
    """Dead or silent decider: at half the ack window the stand-by decrypts all the same (the
    window is sized for twice the work, so the rest still holds one decryption), and the peer
    is woken for it with nothing new on the ledger."""
    me = local(D, keyed(), param_count=BIG)
    assert decide(ledger(STANDBY), me, T + 14) == []
    assert decide(ledger(STANDBY), me, T + 15) == [Decrypt(5, 0)]
    assert next_look_at(ledger(STANDBY), None, T + 13) == T + 15  # before the merge deadline


def test_a_stand_by_decrypts_at_once_when_the_deciders_disagree() -> None:
    """Misbehaving member: the two deciders acknowledged different models; a majority now
    needs the stand-by's vote, so it decrypts without waiting, and the acknowledgement that
    split the vote is worth a look to it (not to a decider, nor to the merge peer)."""
    split = ledger(STANDBY, acks={A: M1, B: b"\x03" * 32})
    assert decide(split, local(D, keyed(), param_count=BIG), T) == [Decrypt(5, 0)]
    agreeing = ledger(STANDBY, acks={A: M1})
    assert decide(agreeing, local(D, keyed(), param_count=BIG), T) == []
    assert worth_a_look(_note("Acknowledged", B), split, D, T)
    assert not worth_a_look(_note("Acknowledged", B), split, A, T)
    assert not worth_a_look(_note("Acknowledged", B), split, C, T)


def test_a_decider_that_left_is_replaced_by_the_next_key_holder() -> None:
    """Member removed mid-round: a decider that left no longer counts; the next key holder in
    the order decides in its place."""
    info = dataclasses.replace(STANDBY, left=(B,))
    assert decide(ledger(info), local(D, keyed(), param_count=BIG), T) == [Decrypt(5, 0)]


# --- masks (threshold 3 of 4 at 66 %) ---------------------------------------------------------

MASKED = dataclasses.replace(PARAMS, mask_threshold_pct=66)


def test_a_masked_commitment_hands_out_shares_before_the_update() -> None:
    """Dropout safety: our update goes to the merge peer only once enough holders (t = 3 of 4,
    us included) have the shares that recover its masks without us."""
    info = rnd(RoundState.COMMITTING, params=MASKED)
    view = ledger(info, commitments={A: (UA, 100)})
    assert decide(view, local(progress=keyed(shares_held_by=1)), T) == [PushShares(5, 0)]
    assert decide(view, local(progress=keyed(shares_held_by=2)), T) == [PushShares(5, 0)]
    # three holders have them; the fourth (unreachable) is retried next to the push
    assert decide(view, local(progress=keyed(shares_held_by=3)), T) == [
        PushShares(5, 0),
        PushUpdate(5, 0, C),
    ]
    done = keyed(shares_held_by=4, shares_done=True)
    assert decide(view, local(progress=done), T) == [PushUpdate(5, 0, C)]


def test_shares_go_out_while_the_commitment_is_on_its_way() -> None:
    """Our masks are made at the start of Commit (shares_held_by 1: ours): their shares go to
    the holders while we encrypt and the transaction is mined, not one look at the ledger
    later. Before the masks exist, and after the commit window, there is nothing to push."""
    info = rnd(RoundState.COMMITTING, params=MASKED)
    committing = local(progress=keyed(shares_held_by=1), in_flight=frozenset({Commit(5, 0).key}))
    actions = decide(ledger(info), committing, T)
    assert PushShares(5, 0) in actions
    assert PushShares(5, 0) not in decide(ledger(info), local(progress=keyed()), T)
    late = decide(ledger(info), local(progress=keyed(shares_held_by=1)), T + 11)
    assert PushShares(5, 0) not in late


def test_the_steward_hands_out_its_shares_after_the_round_keys() -> None:
    """Race between honest peers: the steward's key pushes (context and sealed key) take both
    of a receiver's slots for one sender; shares pushed alongside were refused sender_busy
    (a warning and a retry in a long run). They go out once the keys are delivered."""
    info = rnd(RoundState.COMMITTING, params=MASKED)
    delivering = keyed(steward_key=True, shares_held_by=1)
    actions = decide(ledger(info), local(B, delivering), T)
    assert DeliverRoundKeys(5, 0) in actions and PushShares(5, 0) not in actions
    committed = ledger(info, commitments={B: (UB, 100)})
    # once committed, not later (a frozen participant holds its key push until the deadline)
    assert PushShares(5, 0) in decide(committed, local(B, delivering), T)
    delivered = keyed(steward_key=True, keys_delivered=True, shares_held_by=1)
    assert PushShares(5, 0) in decide(ledger(info), local(B, delivered), T)
    assert PushShares(5, 0) in decide(committed, local(B, delivered), T)


def test_without_masks_no_shares_are_handed_out() -> None:
    """maskThresholdPct 0 (masking off): commit, push, nothing else."""
    info = rnd(RoundState.COMMITTING, params=dataclasses.replace(PARAMS, mask_threshold_pct=0))
    view = ledger(info, commitments={A: (UA, 100)})
    assert decide(view, local(progress=keyed()), T) == [PushUpdate(5, 0, C)]


def test_the_merge_peer_merges_only_once_its_own_masks_are_recoverable() -> None:
    """The merge peer's update goes into the sum at once; t holders must hold its shares first,
    or its death after the merge would leave its self mask in the aggregate for good."""
    info = rnd(RoundState.MERGING, params=MASKED)
    held = frozenset((a, d) for a, (d, _) in ALL_COMMITTED.items())
    view = ledger(info, commitments=ALL_COMMITTED)
    waiting = keyed(has_secret=False, held_updates=held, absorbed=held, shares_held_by=2)
    assert decide(view, local(C, waiting), T) == [PushShares(5, 0)]
    ready = keyed(has_secret=False, held_updates=held, shares_held_by=4, shares_done=True)
    assert decide(view, local(C, ready), T) == [Merge(5, 0)]


@pytest.mark.parametrize(
    ("me", "contributors"), [(C, (A, B, C, D)), (D, (A, B, C))], ids=["merge peer", "left out"]
)
def test_every_participant_reveals_even_without_a_vote(
    me: str, contributors: tuple[str, ...]
) -> None:
    """The merge peer and a participant left out of the aggregate hold shares of the
    contributors' masks too: they reveal, and do nothing else."""
    info = rnd(RoundState.ACKNOWLEDGING, contributors=contributors, params=MASKED)
    assert decide(ledger(info), local(me, keyed(has_secret=False)), T) == [PushReveal(5, 0)]
    revealed = keyed(has_secret=False, revealed=True)
    assert decide(ledger(info), local(me, revealed), T) == []


def test_a_key_holder_decrypts_once_t_holders_revealed() -> None:
    """Waits for t reveals (ours included); a try that found too few shares is not repeated
    until another reveal arrives (e.g. a holder sent shares that do not match its manifest)."""
    info = rnd(RoundState.ACKNOWLEDGING, params=MASKED)
    base = dict(revealed=True)
    assert decide(ledger(info), local(progress=keyed(**base, reveals_held=2)), T) == []
    assert decide(ledger(info), local(progress=keyed(**base, reveals_held=3)), T) == [Decrypt(5, 0)]
    tried = keyed(**base, reveals_held=3, reveals_tried=3)
    assert decide(ledger(info), local(progress=tried), T) == []
    assert decide(
        ledger(info), local(progress=keyed(**base, reveals_held=4, reveals_tried=3)), T
    ) == [Decrypt(5, 0)]
    assert decide(ledger(info), local(progress=keyed(reveals_held=1)), T) == [PushReveal(5, 0)]


# --- privacy ----------------------------------------------------------------------------------


def test_a_peer_whose_privacy_budget_is_spent_does_not_join() -> None:
    """Budget enforcement: the contract would refuse the join (PrivacyBudgetExhausted), and
    the peer does not ask; the others close the window without it."""
    info = rnd(RoundState.JOINING, participants=(B, C, D))
    assert decide(ledger(info), local(privacy_spent=True), T) == []
    assert decide(ledger(info), local(), T) == [Join(5), Train(5)]
    # under DP-SGD, training waits for the join: it is recorded in our privacy account
    private = dataclasses.replace(info, params=dataclasses.replace(PARAMS, epsilon_budget=5.0))
    assert decide(ledger(private), local(), T) == [Join(5)]
    joined = dataclasses.replace(private, participants=(A, B, C, D))
    assert decide(ledger(joined), local(), T) == [Train(5)]


# --- in flight --------------------------------------------------------------------------------


def test_actions_in_flight_or_cooling_down_are_not_started_again() -> None:
    """A slow push is not started twice; a failed one waits out its cool-down."""
    info = rnd(RoundState.COMMITTING)
    view = ledger(info, commitments={A: (UA, 100)})
    busy = local(progress=keyed(), in_flight=frozenset({PushUpdate(5, 0, C).key}))
    assert decide(view, busy, T) == []


def test_every_action_kind_is_reachable() -> None:
    """The tests above reach every action decide can return (guards against a dead branch)."""
    import swarm.peer.actions as module

    defined = {
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Action) and obj is not Action
    }
    reached = {
        Absorb, Acknowledge, Adopt, CatchUp, CloseJoin, Commit, Decrypt, DeliverRoundKeys,
        DrawRoles, FetchRoundKey, PushReveal, PushShares,
        Join, MakeRoundKey, Merge, OpenRound, PostRoundKey, PushUpdate, ReplaceKeySteward,
        ReplaceMergePeer, ReportMetrics, Stop, Train,
    }  # fmt: skip
    assert defined == reached
    assert all(dataclasses.is_dataclass(k) for k in defined)


# --- when to look at the ledger again (worth_a_look, next_look_at) ----------------------------


def _note(event: str | None = None, account: str | None = None, **kw: object) -> LedgerNote:
    return LedgerNote(block=101, event=event, round=5, account=account, **kw)  # type: ignore[arg-type]


def test_an_unknown_change_or_no_view_yet_is_always_worth_a_look() -> None:
    """A polled new block, a reconnected stream (events may have been missed), or a peer that
    has not read the ledger yet: read it."""
    assert worth_a_look(_note(unknown=True), ledger(rnd(RoundState.COMMITTING)), A, T)
    assert worth_a_look(_note("MetricsReported", B), None, A, T)


@pytest.mark.parametrize("event", ["Joined", "Acknowledged", "MetricsReported", "PrivacySpent"])
def test_another_members_join_ack_or_metrics_wakes_nobody(event: str) -> None:
    """What made rounds quadratic: every peer read the ledger after every member's join, ack and
    metrics. The last join closes the window (JoinClosed) and the last ack finalizes
    (RoundFinalized): those wake everyone. Our own event always wakes us."""
    view = ledger(rnd(RoundState.JOINING))
    assert not worth_a_look(_note(event, B), view, A, T)
    assert worth_a_look(_note(event, A), view, A, T)


def test_another_members_commitment_wakes_only_the_merge_peer() -> None:
    """The merge peer merges once every participant's commitment is in; nobody else cares."""
    view = ledger(rnd(RoundState.COMMITTING))  # C merges
    assert worth_a_look(_note("UpdateCommitted", A), view, C, T)
    assert not worth_a_look(_note("UpdateCommitted", A), view, D, T)
    # a commitment in a round we have not seen yet: look
    assert worth_a_look(dataclasses.replace(_note("UpdateCommitted", A), round=6), view, D, T)


@pytest.mark.parametrize(
    "event",
    [
        "RoundOpened",
        "JoinClosed",
        "RoundKeyPosted",
        "AggregateSubmitted",
        "RoundFinalized",
        "KeyStewardReplaced",
        "MergePeerReplaced",
        "ParticipantLeft",
        "MemberRemoved",
        "ParamsSet",
    ],
)
def test_every_step_of_the_round_wakes_everyone(event: str) -> None:
    """Each step starts the moment the step before it is on the ledger."""
    assert worth_a_look(_note(event, B), ledger(rnd(RoundState.COMMITTING)), A, T)


def test_an_empty_block_matters_only_while_drawing_or_past_a_deadline() -> None:
    """Roles wait for the draw block; a round's state changes by the block's time once a
    deadline passed (a lapse). Otherwise blocks without our events are nothing to us."""
    empty = LedgerNote(block=101)
    assert worth_a_look(empty, ledger(rnd(RoundState.DRAWING)), A, T)
    assert not worth_a_look(empty, ledger(rnd(RoundState.COMMITTING)), A, T)
    assert worth_a_look(empty, ledger(rnd(RoundState.COMMITTING)), A, T + 11)  # commit passed
    assert not worth_a_look(empty, ledger(rnd(RoundState.FINALIZED)), A, T + 100)
    assert not worth_a_look(empty, ledger(None), A, T)


def test_next_look_is_the_next_deadline_with_its_grace() -> None:
    """With nothing new on the ledger, decide changes its answer only when a deadline (plus
    the grace decide allows) passes: the peer sleeps until then, not a poll interval."""
    view = ledger(rnd(RoundState.COMMITTING))  # deadlines T+10 (key, commit), T+20, T+30
    assert next_look_at(view, None, T) == T + 10 + GRACE_S
    assert next_look_at(view, None, T + 12.5) == T + 20 + GRACE_S
    assert next_look_at(view, None, T + 40) is None


def test_next_look_between_rounds_is_the_openers_head_start() -> None:
    """Between rounds only the designated opener acts at once; the others step in after
    OPEN_FALLBACK_S: that is when to look again."""
    view = ledger(rnd(RoundState.FINALIZED))
    assert next_look_at(view, T - 1, T) == T - 1 + OPEN_FALLBACK_S
    assert next_look_at(view, None, T) is None


def test_events_a_peer_does_not_subscribe_to_change_nothing_it_decides() -> None:
    """NOT_WATCHED (each sent once per member and round to every member): another member's
    such event never makes the peer look at the ledger, so not receiving it loses nothing."""
    view = ledger(rnd(RoundState.JOINING, participants=(B, C)))
    for event in NOT_WATCHED:
        assert not worth_a_look(_note(event, B), view, A, T)
    # acknowledgements matter to stand-bys only, and there are none below STANDBY_MIN_PARAMS
    assert not_watched(BIG) == NOT_WATCHED
    assert not_watched(36) == NOT_WATCHED | {"Acknowledged"}
    # (a split vote, what a stand-by reads the acknowledgements for, changes nothing then)
    split = ledger(STANDBY, acks={A: M1, B: b"\x03" * 32})
    assert decide(split, local(D, keyed(), param_count=36), T) == decide(
        ledger(STANDBY), local(D, keyed(), param_count=36), T
    )
