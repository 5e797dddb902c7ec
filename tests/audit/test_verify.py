"""The verifier: every rule of docs/protocol.md it checks, on histories with known anomalies.

Anomalies the contract refuses are built by hand (tests/audit/events.py); the rest, and a whole
clean history, are driven through the ledger client on the embedded chain (tests/audit/driven.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from swarm.audit import build_history
from swarm.audit.source import read_ledger
from swarm.audit.verify import (
    ChainFacts,
    Finding,
    FindingKind,
    Severity,
    role_order,
    round_seed,
    verify,
)
from swarm.ledger import LapseReason, RoundInfo, RoundState
from swarm.protocol import DRAW_DELAY
from tests.audit.driven import driven
from tests.audit.events import ADMIN, INITIAL_MODEL, WINDOW, EventLog, H
from tests.conftest import h

Key = tuple[str, str, int | None, str | None]


def keys(findings: list[Finding]) -> set[Key]:
    return {(f.severity.value, f.kind.value, f.round_id, f.account) for f in findings}


def check(log: EventLog, **kwargs: object) -> set[Key]:
    return keys(verify(build_history(log.events), **kwargs))  # type: ignore[arg-type]


def seed_where(joined: list[str], wanted: Callable[[list[str]], bool]) -> bytes:
    """A seed whose shuffle of ``joined`` has the shape a test needs."""
    for i in range(1000):
        seed = h(f"seed-search-{i}")
        if wanted(role_order(seed, joined)):
            return seed
    raise AssertionError("no such seed")


def base_log() -> EventLog:
    """Deployment, four hospitals, one clean finalized round (model m1)."""
    log = EventLog()
    log.deploy()
    log.clean_round(1, INITIAL_MODEL, h("m1"))
    return log


# --- the history with every anomaly of the issue, reported exactly -------------------------


def test_anomalous_history_is_reported_exactly() -> None:
    """A dissenting acknowledgement, a non-admin parameter change, a wrong base model, a merge
    peer replaced, a removed member acting, a lapsed round: each found once, nothing else."""
    log = EventLog()
    log.deploy()
    # Round 1: the third key holder acknowledges a model of its own.
    log.open(1, INITIAL_MODEL)
    order = log.close(1, H[:4])
    log.key(1, order[1])
    for a in H[:4]:
        log.commit(1, a)
    log.aggregate(1, order[0], H[:4], total=40)
    voters = [a for a in H[:4] if a != order[0]]
    log.ack(1, voters[0], h("m1"))
    log.ack(1, voters[1], h("m1"))
    log.finalize(1, h("m1"), 2, 3)
    log.ack(1, voters[2], h("something else"))
    # A hospital, not an admin, sets the parameters.
    log.set_params(by=H[0])
    # Round 2: opened from a stale model; the merge peer is replaced; H3 is removed mid-round
    # and commits anyway.
    log.open(2, h("stale model"), by=H[1])
    order = log.close(2, H[:4], seed=seed_where(H[:4], lambda o: o[3] == H[3]))
    log.key(2, order[1])
    for a in H[:4]:
        log.commit(2, a)
    log.wait(2 * WINDOW + 1)
    log.replace_merge_peer(2, order[0], order[2], attempt=1, by=order[1])
    log.remove_member(H[3])  # (the ledger's ParticipantLeft is missing: a forged log)
    log.key(2, order[1], attempt=1)
    for a in H[:4]:
        log.commit(2, a, attempt=1)
    log.aggregate(2, order[2], H[:4], total=40, attempt=1)
    for a in [a for a in H[:4] if a not in (order[2], H[3])]:
        log.ack(2, a, h("m2"))
    log.finalize(2, h("m2"), 2, 3)
    # Round 3: one hospital joins; the lapse is recorded when round 4 opens.
    log.open(3, h("m2"))
    log.join(3, H[0])
    log.wait(WINDOW + 1)
    log.lapse(3, LapseReason.TOO_FEW_JOINED)
    log.open(4, h("m2"))

    history = build_history(log.events)
    assert keys(verify(history)) == {
        ("warning", "ack-mismatch", 1, voters[2]),
        ("error", "not-admin", None, H[0]),
        ("error", "wrong-base-model", 2, H[1]),
        ("info", "role-replaced", 2, order[0]),
        ("error", "not-a-member", 2, H[3]),
        ("info", "round-lapsed", 3, None),
    }
    found = verify(history)
    assert [f.block_number for f in found] == sorted(f.block_number or 0 for f in found)
    wrong_base = next(f for f in found if f.kind == FindingKind.WRONG_BASE_MODEL)
    assert h("m1").hex() in wrong_base.message and wrong_base.severity == Severity.ERROR


def test_hand_built_clean_history_has_no_findings() -> None:
    """The builder's honest rounds (the baseline every other hand-built test changes)."""
    log = base_log()
    log.clean_round(2, h("m1"), h("m2"))
    log.clean_round(3, h("m2"), h("m3"), joined=H[1:4])
    assert check(log) == set()


# --- a real history, driven through the client ----------------------------------------------


def test_driven_history_verifies_without_errors() -> None:
    """A clean history on the embedded chain, read from both contracts (a dissent, a
    replacement, a member removed mid-round, a lapse, a committer left out, a member that
    stalls two rounds and sits one out, membership, parameter and role changes): exactly the
    expected warnings and notes, no error (the fault would be an auditor that cannot read the
    OpenZeppelin role events, the draw or the contributor bitmaps); the seeds check against the
    draw blocks' hashes and both contracts' code is the shipped code."""
    d = driven()
    snap = read_ledger(d.ledger)
    assert snap.facts.code_matches and snap.facts.code_problem is None
    assert snap.consortium == d.ledger.consortium_address
    assert len(snap.facts.block_hashes) == 5  # rounds 1, 2, 4, 5 and 6 drew their roles
    found = verify(snap.history, chain=snap.facts, current=snap.current)
    assert keys(found) == {
        ("warning", "ack-mismatch", 1, d.dissenter),
        ("info", "role-replaced", 2, d.replaced_merge_peer),
        ("info", "participant-left", 3, d.hostile),
        ("info", "round-lapsed", 3, None),
        ("warning", "committer-left-out", 4, d.left_out),
        ("warning", "commit-missed", 5, d.staller),
        ("warning", "commit-missed", 6, d.staller),
        ("info", "sitting-out", 6, d.staller),
    }
    sit = next(f for f in found if f.kind == FindingKind.SITTING_OUT)
    assert "rounds 7 to 7" in sit.message


def test_driven_seed_of_another_block_is_found() -> None:
    """The same real history checked against a forged draw-block hash: wrong-seed for that
    round only (the fault would be a seed check that never compares anything)."""
    d = driven()
    snap = read_ledger(d.ledger)
    first = min(snap.facts.block_hashes)
    forged = {**snap.facts.block_hashes, first: h("another block")}
    facts = ChainFacts(snap.facts.contract, True, forged)
    wrong = [f for f in verify(snap.history, chain=facts) if f.severity == Severity.ERROR]
    assert keys(wrong) == {("error", "wrong-seed", 1, None)}


def test_role_order_is_the_contracts_shuffle() -> None:
    """Python's Fisher-Yates over the stored seed gives the order the contract's view has, and
    the contributors decoded from the bitmap are the view's (the fault: an auditor's order or
    contributor list that differs from the contract's)."""
    d = driven()
    history = build_history(d.ledger.events())
    drawn = [r for r in history.rounds.values() if r.seed is not None]
    assert [r.round_id for r in drawn] == [1, 2, 4, 5, 6]
    for r in drawn:
        info = d.ledger.round(r.round_id)
        assert r.seed == info.seed and r.order == list(info.order)
        assert r.order == role_order(r.seed, r.joined)
        assert r.contributors == list(info.contributors)
        assert r.draw_block == info.draw_block


# --- roles ----------------------------------------------------------------------------------


def test_roles_that_are_not_the_seeds_draw() -> None:
    """RolesDrawn names a merge peer and key steward the seed does not give: wrong-order."""
    log = base_log()
    log.open(2, h("m1"))
    order = role_order(h("seed-2"), H[:4])
    log.close(2, H[:4], merge_peer=order[1], key_steward=order[0])
    assert check(log) == {("error", "wrong-order", 2, None)}


def test_seed_checked_against_the_chain() -> None:
    """A seed that is not keccak(tag, blockhash(drawBlock), contract, round): wrong-seed; the
    right one passes."""
    contract = "0x" + "cc" * 20
    block_hash = h("draw block")
    log = base_log()
    log.open(2, h("m1"))
    log.close(2, H[:4], seed=round_seed(block_hash, contract, 2))
    draw = next(e for e in reversed(log.events) if e.name == "JoinClosed").args["drawBlock"]

    def facts(draw_hash: bytes) -> ChainFacts:
        return ChainFacts(contract, True, {draw: draw_hash})

    assert check(log, chain=facts(block_hash)) == set()
    assert check(log, chain=facts(h("another block"))) == {("error", "wrong-seed", 2, None)}


def test_draw_block_is_the_closing_block() -> None:
    """A JoinClosed whose draw block is not the closing block itself (one a closer could
    already see or wait for): wrong-seed; roles drawn before the draw block exists:
    out-of-phase."""
    log = base_log()
    log.open(2, h("m1"))
    for a in H[:4]:
        log.join(2, a)
    log.emit("JoinClosed", round=2, drawBlock=log.block + 5, keyDeadline=log.time + WINDOW,
             by=H[3])  # fmt: skip
    order = role_order(h("seed-2"), H[:4])
    log.emit("RolesDrawn", round=2, seed=h("seed-2"), mergePeer=order[0], keySteward=order[1])
    assert check(log) == {("error", "wrong-seed", 2, None), ("error", "out-of-phase", 2, None)}


def test_join_window_closed_early_without_everyone() -> None:
    """The window closed before its deadline while an active member had not joined (nor sat
    out): out-of-phase, by the closer."""
    log = base_log()
    log.open(2, h("m1"))
    for a in H[:3]:
        log.join(2, a)
    log.emit("JoinClosed", round=2, drawBlock=log.block + DRAW_DELAY,
             keyDeadline=log.time + WINDOW, by=H[2])  # fmt: skip
    assert check(log) == {("error", "out-of-phase", 2, H[2])}


def test_join_index_out_of_order() -> None:
    """A Joined whose index is not its place in the join order: the bitmaps cannot be read."""
    log = base_log()
    log.open(2, h("m1"))
    log.emit("Joined", round=2, account=H[0], index=1)
    assert check(log) == {("error", "wrong-participant-index", 2, H[0])}


def test_round_opened_with_an_old_parameter_version() -> None:
    """A round that opens with another than the newest parameter version: wrong-params."""
    log = base_log()
    log.set_params(commitWindow=2 * WINDOW)
    log.emit("RoundOpened", round=2, baseModel=h("m1"), paramsVersion=0, minPeers=3,
             joinDeadline=log.time + WINDOW, by=H[0])  # fmt: skip
    assert check(log) == {("error", "wrong-params", 2, H[0])}


def test_round_key_posted_by_someone_other_than_the_steward() -> None:
    """A participant that is not the key steward posts the round key: wrong-role."""
    log = base_log()
    log.open(2, h("m1"))
    order = log.close(2, H[:4])
    log.key(2, order[2])
    assert check(log) == {("error", "wrong-role", 2, order[2])}


def test_aggregate_by_the_replaced_merge_peer() -> None:
    """After its replacement the old merge peer submits the aggregate: wrong-role (the
    replacement itself is a note)."""
    log = base_log()
    log.open(2, h("m1"))
    order = log.close(2, H[:4])
    log.key(2, order[1])
    for a in H[:4]:
        log.commit(2, a)
    log.wait(2 * WINDOW + 1)
    log.replace_merge_peer(2, order[0], order[2], attempt=1, by=order[3])
    log.key(2, order[1], attempt=1)
    for a in H[:4]:
        log.commit(2, a, attempt=1)
    log.aggregate(2, order[0], H[:4], total=40, attempt=1)
    assert check(log) == {
        ("info", "role-replaced", 2, order[0]),
        ("error", "wrong-role", 2, order[0]),
    }


def test_replacement_that_skips_the_next_fallback() -> None:
    """The merge peer's role goes to order[3] instead of the next fallback order[2]."""
    log = base_log()
    log.open(2, h("m1"))
    order = log.close(2, H[:4])
    log.key(2, order[1])
    for a in H[:4]:
        log.commit(2, a)
    log.wait(2 * WINDOW + 1)
    log.replace_merge_peer(2, order[0], order[3], attempt=1, by=order[1])
    assert check(log) == {
        ("info", "role-replaced", 2, order[0]),
        ("error", "wrong-replacement", 2, order[3]),
    }


def test_key_steward_replaced_then_round_finalizes() -> None:
    """A steward that missed its deadline, replaced by the next fallback who posts the key:
    only a note (the new steward in force may post the key)."""
    log = base_log()
    log.open(2, h("m1"))
    order = log.close(2, H[:4])
    log.wait(WINDOW + 1)
    log.emit(
        "KeyStewardReplaced", round=2, attempt=0, previous=order[1], next=order[2],
        keyDeadline=log.time + 1 + WINDOW, by=order[3],
    )  # fmt: skip
    log.key(2, order[2])
    for a in H[:4]:
        log.commit(2, a)
    log.aggregate(2, order[0], H[:4], total=40)
    voters = [a for a in H[:4] if a != order[0]]
    for a in voters[:2]:
        log.ack(2, a, h("m2"))
    log.finalize(2, h("m2"), 2, 3)
    assert check(log) == {("info", "role-replaced", 2, order[1])}
    log.key(2, order[1], attempt=0)  # the replaced steward posts a key anyway
    assert ("error", "wrong-role", 2, order[1]) in check(log)


def test_merge_peer_replaced_before_its_deadline() -> None:
    """A replacement while the merge window is still open: out-of-phase."""
    log = base_log()
    log.open(2, h("m1"))
    order = log.close(2, H[:4])
    log.key(2, order[1])
    log.replace_merge_peer(2, order[0], order[2], attempt=1, by=order[1])
    assert check(log) == {
        ("info", "role-replaced", 2, order[0]),
        ("error", "out-of-phase", 2, order[1]),
    }


# --- the aggregate and its contributors -----------------------------------------------------


def _round_to_commits(log: EventLog, committers: list[str]) -> list[str]:
    log.open(2, h("m1"))
    order = log.close(2, H[:4])
    log.key(2, order[1])
    for a in committers:
        log.commit(2, a)
    return order


def test_committer_left_out_is_a_warning() -> None:
    """A participant committed, the merge peer left it out: a warning only."""
    log = base_log()
    order = _round_to_commits(log, H[:4])
    log.aggregate(2, order[0], order[:3], total=30)
    assert check(log) == {("warning", "committer-left-out", 2, order[3])}


def test_contributor_that_did_not_commit_is_an_error() -> None:
    """The aggregate's bitmap names a participant with no commitment in its attempt (its
    missed commit is recorded too)."""
    log = base_log()
    order = _round_to_commits(log, H[:3])
    missing = H[3]
    log.aggregate(2, order[0], H[:4], total=30)
    assert check(log) == {
        ("error", "uncommitted-contributor", 2, missing),
        ("warning", "commit-missed", 2, missing),
    }


def test_commit_after_the_deadline_does_not_count() -> None:
    """A commitment after the commit deadline (the contract refuses it): out-of-phase, and a
    contributor whose only commitment was late did not commit."""
    log = base_log()
    order = _round_to_commits(log, H[:3])
    log.wait(WINDOW + 1)
    log.commit(2, H[3])
    log.aggregate(2, order[0], H[:4], total=30, missed=[(H[3], 1)])
    assert check(log) == {
        ("error", "out-of-phase", 2, H[3]),
        ("error", "uncommitted-contributor", 2, H[3]),
        ("warning", "commit-missed", 2, H[3]),
    }


def test_bitmap_bits_past_the_participants() -> None:
    """A contributor bit with no participant behind it: uncommitted-contributor."""
    log = base_log()
    order = _round_to_commits(log, H[:4])
    log.emit("AggregateSubmitted", round=2, attempt=0, mergePeer=order[0],
             aggregateHash=h("agg"), contributorBits=0b1_1111, totalSamples=40,
             ackDeadline=log.time + WINDOW)  # fmt: skip
    assert check(log) == {("error", "uncommitted-contributor", 2, order[0])}


def test_total_samples_that_are_not_the_contributors_sum() -> None:
    """The aggregate's total sample count differs from its contributors' commitments."""
    log = base_log()
    order = _round_to_commits(log, H[:4])
    log.aggregate(2, order[0], H[:4], total=41)
    assert check(log) == {("error", "total-samples-mismatch", 2, order[0])}


def test_aggregate_of_one_update() -> None:
    """An aggregate with fewer contributors than minPeers would reveal a single update."""
    log = base_log()
    order = _round_to_commits(log, H[:4])
    log.aggregate(2, order[0], [order[1]], total=10)
    assert check(log) - {("warning", "committer-left-out", 2, a) for a in H} == {
        ("error", "too-few-contributors", 2, order[0])
    }


# --- acknowledgements and finalization -------------------------------------------------------


def test_ack_by_the_merge_peer_or_a_non_contributor() -> None:
    """The merge peer (no secret key) and a left-out participant acknowledge: ack-not-eligible."""
    log = base_log()
    order = _round_to_commits(log, H[:4])
    log.aggregate(2, order[0], order[:3], total=30)
    log.ack(2, order[0], h("m2"))
    log.ack(2, order[3], h("m2"))
    assert check(log) == {
        ("warning", "committer-left-out", 2, order[3]),
        ("error", "ack-not-eligible", 2, order[0]),
        ("error", "ack-not-eligible", 2, order[3]),
    }


def test_finalized_without_a_majority() -> None:
    """One acknowledgement of three eligible finalizes a model: finalized-without-majority."""
    log = base_log()
    order = _round_to_commits(log, H[:4])
    log.aggregate(2, order[0], H[:4], total=40)
    log.ack(2, order[1], h("m2"))
    log.finalize(2, h("m2"), 1, 3)
    assert check(log) == {("error", "finalized-without-majority", 2, None)}


def test_one_key_holder_never_decides() -> None:
    """Two key holders leave the consortium before acknowledging; the one left is a majority
    of the eligible but fewer than MIN_ACKS=2: finalized-without-majority. The leaves are
    notes; the same round with two acknowledgements of two eligible is clean."""
    log = base_log()
    order = _round_to_commits(log, H[:4])
    log.aggregate(2, order[0], H[:4], total=40)
    log.remove_member(order[3], round_id=2)
    base = list(log.events)
    log.remove_member(order[2], round_id=2)
    log.ack(2, order[1], h("m2"))
    log.finalize(2, h("m2"), 1, 1)
    assert check(log) == {
        ("info", "participant-left", 2, order[3]),
        ("info", "participant-left", 2, order[2]),
        ("error", "finalized-without-majority", 2, None),
    }
    log.events = base
    log.ack(2, order[1], h("m2"))
    log.ack(2, order[2], h("m2"))
    log.finalize(2, h("m2"), 2, 2)
    assert check(log) == {("info", "participant-left", 2, order[3])}


def test_a_member_that_left_acts_no_more() -> None:
    """A participant removed mid-round (ParticipantLeft) commits anyway: not-a-member and
    not-participant."""
    log = base_log()
    log.open(2, h("m1"))
    order = log.close(2, H[:4])
    log.key(2, order[1])
    log.remove_member(H[3], round_id=2)
    log.commit(2, H[3])
    assert check(log) == {
        ("info", "participant-left", 2, H[3]),
        ("error", "not-a-member", 2, H[3]),
        ("error", "not-participant", 2, H[3]),
    }


def test_role_holder_that_left_is_replaced_at_once() -> None:
    """The key steward leaves: it is replaced before its deadline, by the next fallback that
    did not leave too. Notes only; handing the role to a participant that left is
    wrong-replacement."""
    log = base_log()
    log.open(2, h("m1"))
    order = log.close(2, H[:4])
    log.remove_member(order[1], round_id=2)
    log.remove_member(order[2], round_id=2)
    base = list(log.events)
    log.emit("KeyStewardReplaced", round=2, attempt=0, previous=order[1], next=order[3],
             keyDeadline=log.time + WINDOW, by=order[0])  # fmt: skip
    notes = {
        ("info", "participant-left", 2, order[1]),
        ("info", "participant-left", 2, order[2]),
        ("info", "role-replaced", 2, order[1]),
    }
    assert check(log) == notes
    log.events = base
    log.emit("KeyStewardReplaced", round=2, attempt=0, previous=order[1], next=order[2],
             keyDeadline=log.time + WINDOW, by=order[0])  # fmt: skip
    assert check(log) == notes | {("error", "wrong-replacement", 2, order[2])}


# --- members that stall rounds ---------------------------------------------------------------


def stalling_log() -> EventLog:
    """maxMissedCommits 2, sitOutRounds 1: H3 joins rounds 2 and 3 and commits in neither."""
    log = EventLog()
    log.deploy(maxMissedCommits=2, sitOutRounds=1)
    log.clean_round(1, INITIAL_MODEL, h("m1"))
    for rid in (2, 3):
        log.open(rid, h(f"m{rid - 1}"))
        order = log.close(rid, H[:4])
        log.key(rid, order[1])
        for a in H[:3]:
            log.commit(rid, a)
        log.wait(WINDOW + 1)
        log.aggregate(rid, order[0], H[:3], total=30)
        voters = [a for a in H[:3] if a != order[0]]
        log.acks_until_final(rid, voters, h(f"m{rid}"))
    return log


def test_a_stalling_member_is_visible_and_sits_out() -> None:
    """A member that joins and never commits: a commit-missed warning per miss; at the
    round's maxMissedCommits it sits out (a note); the round it sits out closes without it."""
    log = stalling_log()
    assert check(log) == {
        ("warning", "commit-missed", 2, H[3]),
        ("warning", "commit-missed", 3, H[3]),
        ("info", "sitting-out", 3, H[3]),
    }
    log.clean_round(4, h("m3"), h("m4"), joined=H[:3])
    history = build_history(log.events)
    assert history.members[H[3]].missed_commits == [(2, 1), (3, 2)]
    assert history.members[H[3]].sit_outs == [(4, 4)]
    assert history.rounds[3].sit_outs == [(H[3], 4, 4)]
    assert len(check(log)) == 3


def test_joining_while_sitting_out_is_an_error() -> None:
    """The member that sits out round 4 joins it (the contract refuses that): an error."""
    log = stalling_log()
    log.clean_round(4, h("m3"), h("m4"))
    assert ("error", "joined-while-sitting-out", 4, H[3]) in check(log)


def test_misses_the_ledger_records_wrongly() -> None:
    """A miss recorded for a member that committed, a count that does not follow the
    history, a miss not recorded, and a sit-out before the threshold: wrong-standing each."""
    log = EventLog()
    log.deploy(maxMissedCommits=3, sitOutRounds=2)
    log.clean_round(1, INITIAL_MODEL, h("m1"))
    log.open(2, h("m1"))
    order = log.close(2, H[:4])
    log.key(2, order[1])
    for a in H[:2]:
        log.commit(2, a)
    log.wait(WINDOW + 1)
    # H2 and H3 missed; the log records H0 (who committed) and H2 with a count of 2.
    e = log.aggregate(2, order[0], H[:2], total=20, missed=[(H[0], 1), (H[2], 2)])
    log.sit_out(H[2], 3, 4, tx=e.tx_hash)
    found = check(log)
    assert {k for k in found if k[1] == "wrong-standing"} == {
        ("error", "wrong-standing", 2, H[0]),  # committed
        ("error", "wrong-standing", 2, H[2]),  # 2 in a row, and a sit-out below 3
        ("error", "wrong-standing", 2, H[3]),  # not recorded
    }


# --- membership, admins, the sequence of rounds ---------------------------------------------


def test_removed_admin_admits_a_member() -> None:
    """An admin whose role was revoked still admits a hospital: not-admin (the admin set is
    tracked through OpenZeppelin's RoleGranted/RoleRevoked of ADMIN_ROLE)."""
    log = base_log()
    log.grant_admin(H[5])
    log.add_member(H[4], "Newcomer", by=H[5])  # fine: H5 is an admin now
    log.revoke_admin(H[5])
    log.add_member(H[5], "Self-admitted", by=H[5])
    assert check(log) == {("error", "not-admin", None, H[5])}


def test_only_the_owner_grants_the_admin_role() -> None:
    """An admin that is not the owner grants the admin role: not-admin; an admin renouncing
    its own role is fine."""
    log = base_log()
    log.grant_admin(H[0])
    log.grant_admin(H[1], by=H[0])
    log.revoke_admin(H[0], by=H[0])  # renounced
    assert check(log) == {("error", "not-admin", None, H[0])}


def test_owner_handover_in_two_steps() -> None:
    """The owner role changes hands only when the new owner accepts after the schedule: an
    early acceptance is not-admin; after a proper one the new owner grants admin, the old one
    no longer may."""
    from swarm.audit.history import DEFAULT_ADMIN_ROLE

    def accept(log: EventLog) -> None:
        e = log.emit("RoleRevoked", role=DEFAULT_ADMIN_ROLE, account=ADMIN, sender=H[5])
        log.emit("RoleGranted", tx=e.tx_hash, role=DEFAULT_ADMIN_ROLE, account=H[5], sender=H[5])

    log = base_log()
    log.emit("DefaultAdminTransferScheduled", newAdmin=H[5], acceptSchedule=log.time + 50)
    early = EventLog(events=list(log.events), time=log.time, last_block=log.last_block)
    accept(early)
    assert check(early) == {("error", "not-admin", None, H[5])}
    log.wait(60)
    accept(log)
    log.grant_admin(H[1], by=H[5])
    log.grant_admin(H[2], by=ADMIN)
    assert check(log) == {("error", "not-admin", None, ADMIN)}
    assert build_history(log.events).owner == H[5]


def test_non_member_opens_a_round() -> None:
    """An account that was never admitted opens a round: not-a-member."""
    log = base_log()
    log.open(2, h("m1"), by=H[5])
    assert check(log) == {("error", "not-a-member", 2, H[5])}


def test_base_model_of_the_first_round_follows_the_parameters_in_force() -> None:
    """Before any round finalized, the base is the initial model of the latest ParamsSet."""
    log = EventLog()
    log.deploy()
    log.set_params(initialModelHash=h("pretrained"))
    log.clean_round(1, h("pretrained"), h("m1"))
    assert check(log) == set()
    log.clean_round(2, h("pretrained"), h("m2"))  # but round 2 must start from m1
    assert check(log) == {("error", "wrong-base-model", 2, H[0])}


def test_round_opened_before_the_previous_ended() -> None:
    """Round 2 opens while round 1 neither finalized nor lapsed: round-out-of-sequence."""
    log = EventLog()
    log.deploy()
    log.open(1, INITIAL_MODEL)
    log.open(2, INITIAL_MODEL)
    assert check(log) == {("error", "round-out-of-sequence", 2, H[0])}


def test_event_for_a_round_never_opened() -> None:
    """A commitment to a round that was never opened (a forged log): unexplained-event, and
    the history is still built."""
    log = base_log()
    log.commit(7, H[0])
    history = build_history(log.events)
    assert len(history.unexplained) == 1 and set(history.rounds) == {1}
    assert check(log) == {("error", "unexplained-event", 7, H[0])}


def test_unknown_contract_code_is_a_warning() -> None:
    """A contract's code is not what this swarm ships: a warning naming it."""
    facts = ChainFacts("0x" + "cc" * 20, False, {}, code_problem="the Consortium at 0xdd")
    assert check(base_log(), chain=facts) == {("warning", "unknown-contract-code", None, None)}
    (found,) = verify(build_history(base_log().events), chain=facts)
    assert "the Consortium at 0xdd" in found.message


@pytest.mark.parametrize("state", [RoundState.LAPSED, RoundState.COMMITTING])
def test_derived_lapse_of_the_newest_round(state: RoundState) -> None:
    """The newest round has lapsed by the contract's view but no event says so yet: a note,
    labelled as derived; a round still running gives none."""
    log = base_log()
    log.open(2, h("m1"))
    info = _round_info(2, state)
    expected = {("info", "round-lapsed", 2, None)} if state == RoundState.LAPSED else set()
    found = verify(build_history(log.events), current=info)
    assert keys(found) == expected
    assert all("derived" in f.message for f in found)


def _round_info(rid: int, state: RoundState) -> RoundInfo:
    lapsed = state == RoundState.LAPSED
    return RoundInfo(
        round_id=rid,
        state=state,
        lapse_reason=LapseReason.TOO_FEW_JOINED if lapsed else LapseReason.NONE,
        base_model=h("m1"),
        attempt=0,
        participants=(),
        order=(),
        merge_peer=None,
        key_steward=None,
        key_hash=b"",
        aggregate_hash=b"",
        final_model=b"",
        contributors=(),
        total_samples=0,
        join_deadline=0,
        key_deadline=0,
        commit_deadline=0,
        merge_deadline=0,
        ack_deadline=0,
        min_peers=3,
        seed=b"",
        commit_count=0,
        ack_eligible=0,
    )
