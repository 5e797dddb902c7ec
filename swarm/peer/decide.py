"""The peer's decision function: from what the ledger and the peer know, what to do next.

``decide(ledger, local, now)`` is pure: no I/O, no clock of its own, no hidden state. It knows
the whole round protocol from one hospital's side (docs/protocol.md, rules in swarm.protocol)
and is tested transition by transition in tests/peer/test_decide.py. The peer calls it after
every look at the ledger and every finished action, and carries out what it returns through the
role modules; an action whose key is still in flight is not returned again.

Stages, from the ledger's derived round state and our place in the round::

    our model is not the ledger's latest   adopt the one we computed, or catch up
    no round / finalized / lapsed          open the next round
    joining                                join (if we hold the base and do not sit out); train;
                                           close the window after its deadline
    drawing                                train; the roles are drawn from a block hash that
                                           does not exist yet: nobody acts on a role
    keying                                 steward: make the key, post its hash; others: replace
                                           a steward past its deadline, or one that was removed
                                           from the consortium at once (likewise a merge peer)
    committing / merging                   pull the key if it did not arrive; commit; hand out
                                           our mask shares; push to the merge peer; merge
                                           peer: merge when all are in or the commit window
                                           closed; others: replace a merge peer past its
                                           deadline
    acknowledging                          everyone: reveal the shares of the contributors' masks;
                                           key holders: once t holders revealed, unmask and
                                           decrypt, then acknowledge until recorded; for a
                                           large model only the deciders decrypt at once, the
                                           others stand by (they decrypt if the deciders split
                                           or half the ack window passes)
"""

from __future__ import annotations

from swarm.ledger.types import LedgerView, RoundInfo, RoundState
from swarm.ledger.watch import LedgerNote
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
from swarm.peer.local import LocalView, RoundProgress
from swarm.protocol import GRACE_S, ack_eligible, deadline_passed, deciders, mask_threshold

ZERO = b"\0" * 32
#: how long the others wait for the designated peer to open the next round
OPEN_FALLBACK_S = 3.0
#: blocks after the draw block from which participants store the seed themselves (drawRoles) if
#: the steward has not (a quarter of the 256 blocks ``blockhash`` reaches back)
SEED_STORE_AFTER_BLOCKS = 64
#: models from this many parameters decrypt at the deciders only (swarm.protocol.deciders):
#: about where decryption stops being a rounding error of the round (~0.3 s of CPU per key
#: holder at 1M parameters), so a small model's round never waits on a stand-by
STANDBY_MIN_PARAMS = 1_000_000
#: the part of the ack window after which a stand-by decrypts all the same; windows are derived
#: with a safety factor of 2 (swarm.sizing), so what is left still holds one fetch and decryption
STANDBY_PATIENCE = 0.5


def decide(ledger: LedgerView, local: LocalView, now: float) -> list[Action]:
    """What to start now. ``now`` is the wall clock (unix seconds), compared with the ledger's
    deadlines; actions already in flight are left out."""
    return [a for a in _decide(ledger, local, now) if a.key not in local.in_flight]


def _decide(ledger: LedgerView, local: LocalView, now: float) -> list[Action]:
    r = ledger.round
    between = r is None or r.state in (RoundState.FINALIZED, RoundState.LAPSED, RoundState.NONE)
    done = bool(local.rounds_target) and ledger.finalized_count >= local.rounds_target
    if local.model_hash != ledger.latest_model:
        # the next round opens on the ledger's hash while we fetch (or store) the model: the
        # designated opener is often a peer that did not decrypt (merge peer, stand-by)
        opening = between and not done and _opens_next(r, local, now)
        return [*_get_latest(ledger, local), *([OpenRound(ledger.latest_model)] if opening else [])]
    actions: list[Action] = []
    if local.metrics_round < local.model_round and (done or not _busy(ledger, local, now)):
        actions.append(ReportMetrics(local.model_round))
    if done:
        # Stop once the metrics of the model we stop with are out.
        return actions or [Stop(ledger.finalized_count)]
    if between:
        if _opens_next(r, local, now):
            actions.append(OpenRound(ledger.latest_model))
        return actions
    assert r is not None
    if r.base_model != local.model_hash:
        return actions  # cannot happen while our model is the latest; wait for the ledger
    progress = local.progress_in(r.round_id).for_attempt(r.attempt)
    actions += _in_round(ledger, r, local, progress, now)
    return actions


def _busy(ledger: LedgerView, local: LocalView, now: float) -> bool:
    """Whether a step of ours in the swarm's next or running round is still ahead.

    Metrics are a courtesy: evaluating (and fine-tuning the personal model) takes a core from
    the round, and the ``reportMetrics`` transaction holds the account's next one (join,
    round key, commitment, aggregate) back. So they wait until this peer's commitment is on the
    ledger (the merge peer: its aggregate), and between rounds until the next round is late
    (``OPEN_FALLBACK_S``): on a healthy swarm it opens at once and we join it. A round we
    cannot join, or a swarm that stays idle, does not hold them up.
    """
    r = ledger.round
    if r is None or r.state in (RoundState.NONE, RoundState.FINALIZED, RoundState.LAPSED):
        return local.idle_since is not None and now < local.idle_since + OPEN_FALLBACK_S
    me = local.me
    if me not in r.participants:
        benched = r.round_id <= local.sitting_out_until or local.privacy_spent
        return r.state == RoundState.JOINING and not benched
    if me in r.left:
        return False
    if r.state <= RoundState.COMMITTING and me not in ledger.commitments:
        return True
    return me == r.merge_peer and r.state <= RoundState.MERGING


def _opens_next(r: RoundInfo | None, local: LocalView, now: float) -> bool:
    """Who opens the next round: one designated participant of the round that ended at once,
    everyone else only if it has not happened ``OPEN_FALLBACK_S`` later. Without this, every peer
    sends ``openRound`` at the same moment and all but one revert on chain (paid for)."""
    if r is None or not r.participants:
        return True
    designated = sorted(r.participants)[r.round_id % len(r.participants)]
    if local.me == designated:
        return True
    return local.idle_since is not None and now >= local.idle_since + OPEN_FALLBACK_S


def _get_latest(ledger: LedgerView, local: LocalView) -> list[Action]:
    """Our model is behind (or beside) the ledger's: use the one we computed if the ledger
    finalized exactly it, else fetch it from a member that holds it.

    Not both: while we adopt our own, the next round may open, and our progress is then that
    round's, which holds no model of ours; fetching the same model from another member then
    was wasted (measured at 11.2M parameters: every decider, every round, ~1.5 s of CPU as
    the next round started). The other way round, a fetch already running when our own
    decryption ends does not hold the adoption up (the fetch then stops, see catchup)."""
    rid, target = ledger.last_finalized, ledger.latest_model
    adopt = Adopt(rid, target)
    progress = local.progress
    if progress is not None and progress.round_id == rid and progress.new_model == target:
        return [adopt]
    if adopt.key in local.in_flight:
        return []
    return [CatchUp(rid, target)]


def _in_round(
    ledger: LedgerView, r: RoundInfo, local: LocalView, p: RoundProgress, now: float
) -> list[Action]:
    rid, me = r.round_id, local.me
    joined = me in r.participants
    if r.state == RoundState.JOINING:
        joining: list[Action] = []
        if not joined and (rid <= local.sitting_out_until or local.privacy_spent):
            # benched for missed commits, or our privacy budget is spent: the contract would
            # refuse the join
            return []
        if not joined:
            joining.append(Join(rid))
        private = r.params is not None and r.params.epsilon_budget > 0
        if not p.trained and (joined or not private):
            # train while we and the others join: it is on the critical path (for a large
            # model, seconds), and a join the contract refuses costs only the training. Not
            # under DP-SGD: training is recorded in our privacy account, joined or not.
            joining.append(Train(rid))
        if deadline_passed(r.join_deadline, now) and len(r.participants) >= r.min_peers:
            joining.append(CloseJoin(rid))
        return joining
    if not joined or me in r.left:
        return []  # not in this round (or removed from the consortium): wait
    # Training only helps while our update can still be committed.
    may_commit = r.state in (RoundState.DRAWING, RoundState.KEYING, RoundState.COMMITTING)
    out: list[Action] = []
    if may_commit and not p.trained and me not in ledger.commitments:
        out.append(Train(rid))
    if r.state == RoundState.KEYING:
        return out + _keying(ledger, r, me, p, now)
    if r.state in (RoundState.COMMITTING, RoundState.MERGING):
        return out + _committing(ledger, r, me, p, now)
    if r.state == RoundState.ACKNOWLEDGING:
        return out + _acknowledging(ledger, r, me, p, now, local.param_count)
    return out


def _keying(
    ledger: LedgerView, r: RoundInfo, me: str, p: RoundProgress, now: float
) -> list[Action]:
    if r.merge_peer in r.left and me != r.merge_peer:
        # a removed merge peer must not get this attempt's contributions: a new attempt now
        return [ReplaceMergePeer(r.round_id, r.attempt)]
    if me == r.key_steward:
        if not p.steward_key:
            return [MakeRoundKey(r.round_id, r.attempt)]
        # the keys go out while the hash is being mined: a participant holds them when the
        # ledger shows the hash (it keeps a context only if its hash is the ledger's)
        posting = [PostRoundKey(r.round_id, r.attempt)]
        return posting + ([] if p.keys_delivered else [DeliverRoundKeys(r.round_id, r.attempt)])
    if deadline_passed(r.key_deadline, now) or r.key_steward in r.left:
        return [ReplaceKeySteward(r.round_id, r.attempt)]
    if not r.seed_stored and ledger.block_number >= r.draw_block + SEED_STORE_AFTER_BLOCKS:
        return [DrawRoles(r.round_id)]
    return []


def _need_keys(r: RoundInfo, me: str, p: RoundProgress) -> bool:
    """Whether we still lack this attempt's context, or the secret key we are owed."""
    return not p.has_context or (me != r.merge_peer and not p.has_secret)


def _committing(
    ledger: LedgerView, r: RoundInfo, me: str, p: RoundProgress, now: float
) -> list[Action]:
    rid, attempt = r.round_id, r.attempt
    out: list[Action] = []
    steward = r.key_steward
    if me == steward and p.steward_key and not p.keys_delivered:
        out.append(DeliverRoundKeys(rid, attempt))
    # A steward still pushing the keys (context and sealed key: two pushes per holder, all a
    # receiver takes from one sender at once, p2p max_inbound_per_sender) hands its shares out
    # after them or once committed, not before (alongside, they were refused "sender_busy");
    # never later: a frozen participant holds its key push until the commit deadline.
    sharing = _masking(r) and not p.shares_done
    committed = ledger.commitments.get(me)
    if committed is None:
        open_ = r.state == RoundState.COMMITTING and now <= r.commit_deadline
        if open_ and _need_keys(r, me, p) and steward is not None:
            out.append(FetchRoundKey(rid, attempt, steward))
        elif open_ and p.trained and not _need_keys(r, me, p):
            out.append(Commit(rid, attempt))
        if open_ and sharing and p.shares_held_by > 0 and (me != steward or p.keys_delivered):
            # our masks are made (the commitment is on its way): their shares go out while we
            # encrypt and commit, not after (the holders check them against the commitment's
            # shares hash when they reveal, so shares of an update never committed are unused)
            out.append(PushShares(rid, attempt))
    else:
        masking = _masking(r)
        if sharing:
            out.append(PushShares(rid, attempt))
        # Our update goes out only once enough holders have our shares to recover its masks
        # without us: otherwise a crash after the merge would stall the round.
        shares_ok = not masking or p.shares_held_by >= _threshold(r)
        if shares_ok and _should_push(r, me, p, now):
            assert r.merge_peer is not None
            out.append(PushUpdate(rid, attempt, r.merge_peer))
    if me == r.merge_peer:
        out += _merging(ledger, r, me, p, now)
    elif r.merge_peer in r.left or (
        r.state == RoundState.MERGING and deadline_passed(r.merge_deadline, now)
    ):
        out.append(ReplaceMergePeer(rid, attempt))
    return out


def _should_push(r: RoundInfo, me: str, p: RoundProgress, now: float) -> bool:
    """Committed, not yet confirmed at the merge peer, and the merge peer may still merge."""
    return (
        r.merge_peer is not None
        and r.merge_peer != me
        and not p.pushed
        and (now <= r.merge_deadline)
    )


def _merging(
    ledger: LedgerView, r: RoundInfo, me: str, p: RoundProgress, now: float
) -> list[Action]:
    """The merge peer merges once every participant's committed update is here, or once the
    commit window closed with at least ``min_peers`` of them (the rest are left out). Its own
    update, when it committed one, waits for its mask shares to be held; when it could not
    commit (its update refused by the codec, say), it merges the others' all the same."""
    if not p.has_context:
        steward = r.key_steward
        return [FetchRoundKey(r.round_id, r.attempt, steward)] if steward else []
    held = dict(p.held_updates)
    ready = [
        a
        for a, (digest, _) in ledger.commitments.items()
        if held.get(a) == digest and a not in r.left
    ]
    everyone = len(ready) == len([a for a in r.participants if a not in r.left])
    window_closed = deadline_passed(r.commit_deadline, now)
    own_waits = _masking(r) and me in ledger.commitments and p.shares_held_by < _threshold(r)
    # (own_waits: our own masks must be recoverable without us before the sum is published)
    merge_now = (everyone or window_closed) and len(ready) >= r.min_peers
    if merge_now and not own_waits and now <= r.merge_deadline:
        return [Merge(r.round_id, r.attempt)]
    if now <= r.merge_deadline and any((a, held[a]) not in p.absorbed for a in ready):
        # add each update as it arrives: the merge is then done soon after the last push
        return [Absorb(r.round_id, r.attempt)]
    return []


def _masking(r: RoundInfo) -> bool:
    return r.params is not None and r.params.mask_threshold_pct > 0


def _threshold(r: RoundInfo) -> int:
    pct = r.params.mask_threshold_pct if r.params is not None else 0
    return mask_threshold(len(r.participants), pct)


def _acknowledging(
    ledger: LedgerView, r: RoundInfo, me: str, p: RoundProgress, now: float, param_count: int
) -> list[Action]:
    out: list[Action] = []
    masking = _masking(r)
    if masking and not p.revealed:
        # every participant holds shares of the contributors' masks, the merge peer and
        # participants left out of the aggregate too
        out.append(PushReveal(r.round_id, r.attempt))
    if me not in ack_eligible(r.contributors, r.merge_peer) or me in ledger.acks:
        return out
    if p.new_model:
        return [*out, Acknowledge(r.round_id, p.new_model)]
    if _need_keys(r, me, p):
        steward = r.key_steward
        return [*out, FetchRoundKey(r.round_id, r.attempt, steward)] if steward else out
    if masking and (p.reveals_held < _threshold(r) or p.reveals_held <= p.reveals_tried):
        return out  # waiting for enough holders' reveals to unmask the aggregate
    if param_count >= STANDBY_MIN_PARAMS and _standing_by(ledger, r, me, now):
        return out  # the deciders' acknowledgements finalize; we fetch the model then
    return [*out, Decrypt(r.round_id, r.attempt)]


def _standing_by(ledger: LedgerView, r: RoundInfo, me: str, now: float) -> bool:
    """Whether this key holder, not one of the round's deciders, still leaves the decryption
    to them: until their acknowledgements disagree (two hashes on the ledger: a majority now
    needs the rest of us) or :data:`STANDBY_PATIENCE` of the ack window has passed (a decider
    is dead or slow)."""
    if not is_standby(r, me):
        return False
    if len(set(ledger.acks.values())) > 1:
        return False
    return now < standby_until(r)


def is_standby(r: RoundInfo, me: str) -> bool:
    """Whether we hold a vote on the round's aggregate but are not one of its deciders."""
    eligible = ack_eligible(r.contributors, r.merge_peer)
    return me in eligible and me not in deciders(r.order, eligible, r.left, r.ack_eligible)


def standby_until(r: RoundInfo) -> float:
    """When stand-by key holders decrypt all the same: :data:`STANDBY_PATIENCE` into the ack
    window, which opened when the aggregate was submitted (ack deadline minus the window)."""
    window = r.params.ack_window if r.params is not None else 0
    return r.ack_deadline - window + STANDBY_PATIENCE * window


# --- when to look at the ledger again ---------------------------------------------------------

#: events of other members that change nothing this peer decides (it reads them on its next look)
_OTHERS_ONLY_INFORM = frozenset({"Joined", "Acknowledged", "MetricsReported", "PrivacySpent"})

#: events a peer does not even subscribe to: nobody's, ours included, changes what it decides
#: (the last join closes the window: JoinClosed; our own steps wake us when they end). Each is
#: sent once per member and round to every member: with N peers, N^2 messages a round.
NOT_WATCHED = frozenset({"Joined", "MetricsReported", "PrivacySpent"})


def not_watched(param_count: int) -> frozenset[str]:
    """The events a peer with a model of ``param_count`` parameters does not subscribe to:
    :data:`NOT_WATCHED`, and below :data:`STANDBY_MIN_PARAMS` (no stand-bys: every key holder
    decrypts at once) the acknowledgements too, N per round to each of N peers."""
    if param_count >= STANDBY_MIN_PARAMS:
        return NOT_WATCHED
    return NOT_WATCHED | {"Acknowledged"}


def worth_a_look(note: LedgerNote, ledger: LedgerView | None, me: str, now: float) -> bool:
    """Whether what the ledger just told us (``note``) can change what :func:`decide` returns,
    so that the peer reads the contract again. Reading on every event would make a round cost
    every peer a read per member's transaction (quadratic in the swarm's size); reading on too
    few would leave a step waiting for the slow reconciliation read.

    A join by another member changes nothing we do (the window closes by itself when the last
    one joins: JoinClosed), nor do another member's acknowledgement (the last one finalizes:
    RoundFinalized) or metrics. Another member's commitment matters to the merge peer only. A
    block without our events matters while the roles wait for their draw block, and once one of
    the round's deadlines has passed (the round's state is judged by the block's time)."""
    if note.unknown or ledger is None:
        return True
    r = ledger.round
    if note.event is None:  # a new block with none of our events in it
        if r is None or r.state in (RoundState.NONE, RoundState.FINALIZED, RoundState.LAPSED):
            return False
        if r.state == RoundState.DRAWING:
            return True
        return any(0 < d < now for d in _deadlines(r))
    if note.account == me:
        return True
    if (
        note.event == "Acknowledged"
        and r is not None
        and r.state == RoundState.ACKNOWLEDGING
        and is_standby(r, me)
    ):
        return True  # a stand-by decrypts once the deciders disagree
    if note.event in _OTHERS_ONLY_INFORM:
        return False
    if note.event == "UpdateCommitted":
        return r is None or r.merge_peer == me or note.round != r.round_id
    return True


def next_look_at(ledger: LedgerView, idle_since: float | None, now: float) -> float | None:
    """The earliest time after ``now`` at which :func:`decide` may answer differently with
    nothing new on the ledger: a round deadline passing (with its grace), or the designated
    opener's head start running out (``idle_since`` as in LocalView). None if no such time."""
    times: list[float] = []
    r = ledger.round
    if r is not None and r.state not in (RoundState.NONE, RoundState.FINALIZED, RoundState.LAPSED):
        times += [d + GRACE_S for d in _deadlines(r) if d > 0]
        if r.state == RoundState.ACKNOWLEDGING and r.ack_deadline > 0:
            times.append(standby_until(r))
    elif idle_since is not None:
        times.append(idle_since + OPEN_FALLBACK_S)
    later = [t for t in times if t > now]
    return min(later) if later else None


def _deadlines(r: RoundInfo) -> tuple[int, ...]:
    return (r.join_deadline, r.key_deadline, r.commit_deadline, r.merge_deadline, r.ack_deadline)


__all__ = ["NOT_WATCHED", "decide", "next_look_at", "not_watched", "worth_a_look"]
