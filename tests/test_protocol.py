"""The protocol's rules, shared by the peer and the auditor (swarm.protocol)."""

from __future__ import annotations

from swarm.protocol import GRACE_S, ack_eligible, deadline_passed, finalizes, key_recipients

A, B, C, D = (f"0x{i:040X}" for i in (0xA, 0xB, 0xC, 0xD))


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
