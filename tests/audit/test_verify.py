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
from tests.audit.driven import driven
from tests.audit.events import ADMIN, INITIAL_MODEL, WINDOW, EventLog, H, params
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
    log.emit("ParamsSet", params=params(), by=H[0])
    # Round 2: opened from a stale model; the merge peer is replaced; H3 is removed mid-round
    # and commits anyway.
    log.open(2, h("stale model"), by=H[1])
    order = log.close(2, H[:4], seed=seed_where(H[:4], lambda o: o[3] == H[3]))
    log.key(2, order[1])
    for a in H[:4]:
        log.commit(2, a)
    log.wait(2 * WINDOW + 1)
    log.replace_merge_peer(2, order[0], order[2], attempt=1, by=order[1])
    log.emit("MemberRemoved", account=H[3], by=ADMIN)
    log.key(2, order[1], attempt=1)
    for a in H[:4]:
        log.commit(2, a, attempt=1)
    log.aggregate(2, order[2], H[:4], total=40, attempt=1)
    for a in [a for a in H[:4] if a not in (order[2], H[3])]:
        log.ack(2, a, h("m2"))
    log.finalize(2, h("m2"), 2, 3)
    # Round 3: one hospital joins; the lapse is recorded when round 4 opens.
    log.open(3, h("m2"))
    log.emit("Joined", round=3, account=H[0])
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
    """A clean history on the embedded chain (a dissent, a replacement, a lapse, a committer
    left out, membership changes): exactly the expected warnings and notes, no error; the
    seeds check against the chain's block hashes and the contract's code is the shipped one."""
    d = driven()
    snap = read_ledger(d.ledger)
    assert snap.facts.code_matches
    assert len(snap.facts.parent_hashes) == 3  # rounds 1, 2, 4 closed
    found = verify(snap.history, chain=snap.facts, current=snap.current)
    assert keys(found) == {
        ("warning", "ack-mismatch", 1, d.dissenter),
        ("info", "role-replaced", 2, d.replaced_merge_peer),
        ("info", "round-lapsed", 3, None),
        ("warning", "committer-left-out", 4, d.left_out),
    }


def test_role_order_is_the_contracts_shuffle() -> None:
    """Python's Fisher-Yates over the seed gives the order the contract put in JoinClosed."""
    history = build_history(driven().ledger.events())
    closed = [r for r in history.rounds.values() if r.seed is not None]
    assert len(closed) == 3
    for r in closed:
        assert r.seed is not None
        assert role_order(r.seed, r.joined) == r.order


# --- roles ----------------------------------------------------------------------------------


def test_order_that_is_not_the_seeds_shuffle() -> None:
    """JoinClosed carries an order the seed does not give: wrong-order."""
    log = base_log()
    log.open(2, h("m1"))
    seed = h("seed-2")
    forged = list(reversed(role_order(seed, H[:4])))
    log.close(2, H[:4], seed=seed, order=forged)
    assert check(log) == {("error", "wrong-order", 2, None)}


def test_seed_checked_against_the_chain() -> None:
    """A seed that is not keccak(parent block hash, contract, round, participants): wrong-seed;
    the right one passes."""
    contract = "0x" + "cc" * 20
    parent = h("parent block")
    log = base_log()
    log.open(2, h("m1"))
    log.close(2, H[:4], seed=round_seed(parent, contract, 2, H[:4]))
    closing = log.events[-1].block_number

    def facts(parent_hash: bytes) -> ChainFacts:
        return ChainFacts(contract, True, {closing: parent_hash})

    assert check(log, chain=facts(parent)) == set()
    assert check(log, chain=facts(h("another block"))) == {("error", "wrong-seed", 2, None)}


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
    """The aggregate names a participant with no commitment in its attempt."""
    log = base_log()
    order = _round_to_commits(log, H[:3])
    missing = H[3]
    log.aggregate(2, order[0], H[:4], total=30)
    assert check(log) == {("error", "uncommitted-contributor", 2, missing)}


def test_commit_after_the_deadline_does_not_count() -> None:
    """A commitment after the commit deadline (the contract refuses it): out-of-phase, and a
    contributor whose only commitment was late did not commit."""
    log = base_log()
    order = _round_to_commits(log, H[:3])
    log.wait(WINDOW + 1)
    log.commit(2, H[3])
    log.aggregate(2, order[0], H[:4], total=30)
    assert check(log) == {
        ("error", "out-of-phase", 2, H[3]),
        ("error", "uncommitted-contributor", 2, H[3]),
    }


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


# --- membership, admins, the sequence of rounds ---------------------------------------------


def test_removed_admin_admits_a_member() -> None:
    """An admin whose role was revoked still admits a hospital: not-admin (the admin set is
    tracked through AdminAdded/AdminRemoved)."""
    log = base_log()
    log.emit("AdminAdded", account=H[5], by=ADMIN)
    log.add_member(H[4], "Newcomer", by=H[5])  # fine: H5 is an admin now
    log.emit("AdminRemoved", account=H[5], by=ADMIN)
    log.add_member(H[5], "Self-admitted", by=H[5])
    assert check(log) == {("error", "not-admin", None, H[5])}


def test_non_member_opens_a_round() -> None:
    """An account that was never admitted opens a round: not-a-member."""
    log = base_log()
    log.open(2, h("m1"), by=H[5])
    assert check(log) == {("error", "not-a-member", 2, H[5])}


def test_base_model_of_the_first_round_follows_the_parameters_in_force() -> None:
    """Before any round finalized, the base is the initial model of the latest ParamsSet."""
    log = EventLog()
    log.deploy()
    log.emit("ParamsSet", params=params(initialModelHash=h("pretrained")), by=ADMIN)
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
    """The contract's code is not the SwarmLedger this swarm ships: a warning."""
    facts = ChainFacts("0x" + "cc" * 20, False, {})
    assert check(base_log(), chain=facts) == {("warning", "unknown-contract-code", None, None)}


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
        min_peers=2,
        seed=b"",
        commit_count=0,
        ack_eligible=0,
    )
