"""The round protocol's rules, written once: the peer acts by them, the auditor checks by them.

Pure functions over plain values (no I/O). The contract enforces the same rules on chain
(contracts/src/SwarmLedger.sol); docs/protocol.md describes them. ``swarm.peer.decide`` uses
them to choose what to do next, ``swarm.audit.verify`` to check that a recorded history obeys
them, so the two can never disagree about who may do what.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from eth_abi import encode as abi_encode
from eth_utils import keccak

#: Seconds past a deadline before a peer acts on it (replaces a role holder, closes a window).
#: Covers clock skew between the peer and the chain and a block still in flight: acting earlier
#: only earns a ``DeadlineNotPassed`` revert.
GRACE_S = 2.0


def role_order(seed: bytes, participants: Sequence[str]) -> list[str]:
    """The contract's ``_order``: a Fisher-Yates shuffle of the participants driven by the seed.

    ``j = uint256(keccak256(abi.encode(seed, i))) % (i + 1)`` for i from n-1 down to 1.
    order[0] merges, order[1] is the key steward, the rest are fallbacks in that order.
    """
    order = list(participants)
    for i in range(len(order) - 1, 0, -1):
        digest = keccak(bytes(seed) + i.to_bytes(32, "big"))
        j = int.from_bytes(digest, "big") % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def round_seed(
    parent_hash: bytes, contract: str, round_id: int, participants: Sequence[str]
) -> bytes:
    """The contract's seed: ``keccak256(abi.encode(blockhash(n-1), this, round, participants))``."""
    return keccak(
        abi_encode(
            ["bytes32", "address", "uint256", "address[]"],
            [bytes(parent_hash), contract, round_id, list(participants)],
        )
    )


def deadline_passed(deadline: int, now: float, grace_s: float = GRACE_S) -> bool:
    """Whether a peer may act on ``deadline`` (0 means "not set yet": never passed)."""
    return deadline > 0 and now > deadline + grace_s


def key_recipients(participants: Sequence[str], merge_peer: str | None) -> list[str]:
    """Who receives the round's sealed secret key: every participant except the merge peer,
    which must never hold the key of an attempt it merges."""
    return [p for p in participants if p != merge_peer]


def ack_eligible(contributors: Collection[str], merge_peer: str | None) -> set[str]:
    """Who may acknowledge: the aggregate's contributors that hold the round key, i.e. all of
    them but the merge peer (it has no secret key, so it cannot decrypt and vote)."""
    return set(contributors) - {merge_peer} if merge_peer else set(contributors)


def finalizes(votes: int, eligible: int) -> bool:
    """A strict majority of the eligible acknowledgements on one model hash finalizes it."""
    return eligible > 0 and votes * 2 > eligible


__all__ = [
    "GRACE_S",
    "ack_eligible",
    "deadline_passed",
    "finalizes",
    "key_recipients",
    "role_order",
    "round_seed",
]
