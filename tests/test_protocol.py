"""The protocol's rules, shared by the peer and the auditor (swarm.protocol)."""

from __future__ import annotations

from collections import Counter

from swarm.protocol import (
    GRACE_S,
    MIN_ACKS,
    ack_eligible,
    acks_needed,
    deadline_passed,
    deciders,
    finalizes,
    key_recipients,
    role_order,
    round_seed,
)

A, B, C, D = (f"0x{i:040X}" for i in (0xA, 0xB, 0xC, 0xD))
CONTRACT = "0x00000000000000000000000000000000000000C1"
OTHER_CONTRACT = "0x00000000000000000000000000000000000000C2"


def test_a_deadline_counts_as_passed_only_after_its_grace() -> None:
    """Clock skew and a block in flight: acting at the deadline itself would just revert."""
    assert not deadline_passed(100, 100 + GRACE_S)
    assert deadline_passed(100, 100 + GRACE_S + 0.01)
    assert not deadline_passed(0, 10**9)  # not set yet: never passed


def test_the_merge_peer_never_gets_the_key_nor_votes() -> None:
    """Who holds the key and who acknowledges: everyone but the attempt's merge peer."""
    assert key_recipients([A, B, C, D], C) == [A, B, D]
    assert ack_eligible([A, C, D], C) == {A, D}
    assert ack_eligible([A, D], C) == {A, D}  # a merge peer that did not contribute


def test_a_strict_majority_of_the_eligible_finalizes() -> None:
    """2 of 3 finalizes, 2 of 4 does not (a tie), nothing finalizes with nobody eligible."""
    assert finalizes(2, 3) and not finalizes(1, 3)
    assert not finalizes(2, 4) and finalizes(3, 4)
    assert not finalizes(0, 0)


def test_the_deciders_are_exactly_enough_to_finalize() -> None:
    """acks_needed is the fewest votes that finalize, for every size; the deciders are that
    many eligible holders in the drawn order, skipping those that left."""
    for eligible in range(1, 70):
        needed = acks_needed(eligible)
        assert needed == MIN_ACKS or finalizes(needed, eligible)
        assert not finalizes(needed - 1, eligible)
    order = (C, B, A, D)
    eligible = ack_eligible((A, B, C, D), C)
    assert deciders(order, eligible, (), 3) == (B, A)
    assert deciders(order, eligible, (B,), 3) == (A, D)


def test_one_key_holder_never_finalizes_alone() -> None:
    """A lone key holder (1 of 1 eligible, e.g. two contributors, one of them the merge peer,
    or the others removed) is a majority but not enough: at least MIN_ACKS must agree."""
    assert MIN_ACKS == 2
    assert not finalizes(1, 1)
    assert finalizes(2, 2) and finalizes(2, 3)


def test_the_role_order_is_a_permutation_that_the_seed_alone_decides() -> None:
    """The draw reorders the participants without losing or repeating one; the same seed gives
    the same order (every peer and the auditor agree), another seed another order."""
    people = [f"0x{i:040X}" for i in range(1, 11)]
    seed = round_seed(b"\x11" * 32, CONTRACT, 7)
    order = role_order(seed, people)
    assert sorted(order) == sorted(people) and order == role_order(seed, people)
    assert order != role_order(round_seed(b"\x12" * 32, CONTRACT, 7), people)


def test_the_seed_is_bound_to_the_block_the_contract_and_the_round() -> None:
    """A seed of another contract or round is another seed (no replaying a favourable draw)."""
    base = round_seed(b"\x11" * 32, CONTRACT, 7)
    assert base != round_seed(b"\x11" * 32, OTHER_CONTRACT, 7)
    assert base != round_seed(b"\x11" * 32, CONTRACT, 8)


def test_every_participant_is_equally_likely_to_merge() -> None:
    """Over many seeds each of 4 participants lands in position 0 (merge peer) and position 1
    (key steward) about a quarter of the time: the shuffle is not biased toward join order.
    2,000 draws: each count is 500 +- 19 (1 sigma); the bound is 5 sigma."""
    people = [A, B, C, D]
    merge: Counter[str] = Counter()
    steward: Counter[str] = Counter()
    for k in range(2000):
        order = role_order(round_seed(k.to_bytes(32, "big"), CONTRACT, 1), people)
        merge[order[0]] += 1
        steward[order[1]] += 1
    for counts in (merge, steward):
        assert all(abs(counts[p] - 500) < 5 * 19.4 for p in people), counts
