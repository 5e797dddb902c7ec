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


#: Blocks between the join window's close and the block whose hash draws the roles. The closing
#: transaction is in block B; the seed uses the hash of block B + DRAW_DELAY (0: B itself),
#: which no member knows when it joins or closes (a block producer still can:
#: docs/threat-model.md). The roles are known once B is mined, at the pending block.
DRAW_DELAY = 0
#: Domain tag of the role draw, hashed as the contract hashes it: keccak256("swarm.v1.role-draw").
ROLE_DRAW_TAG = keccak(b"swarm.v1.role-draw")
#: Fewest acknowledgements on one model hash that finalize a round, whatever the majority.
MIN_ACKS = 2


def mask_threshold(participants: int, percent: int) -> int:
    """Shares needed to recover a mask secret (Shamir threshold t) in a round of
    ``participants``: ``ceil(participants * percent / 100)``, at least 2, at most everyone.
    ``percent`` is the consortium's ``maskThresholdPct`` (0: masking off, threshold 0).

    t is what a collusion needs: the merge peer and t-1 key holders together could recover
    one contributor's masks; fewer than t holders alive after the merge stall the round.
    """
    if percent <= 0:
        return 0
    return min(participants, max(2, -(-participants * percent // 100)))


def role_order(seed: bytes, participants: Sequence[str]) -> list[str]:
    """The contract's role draw (``RoleDraw``): a forward Fisher-Yates shuffle of the
    participants, in join order, driven by the seed.

    For i from 0 to n-2: ``j = i + uint256(keccak256(abi.encode(seed, i))) % (n - i)``, swap
    positions i and j. Position k depends only on the steps i <= k, so the contract computes a
    role without shuffling the rest. order[0] merges, order[1] is the key steward, the rest are
    fallbacks in that order.
    """
    order = list(participants)
    n = len(order)
    for i in range(n - 1):
        digest = keccak(bytes(seed) + i.to_bytes(32, "big"))
        j = i + int.from_bytes(digest, "big") % (n - i)
        order[i], order[j] = order[j], order[i]
    return order


def round_seed(draw_block_hash: bytes, contract: str, round_id: int) -> bytes:
    """The contract's seed: ``keccak256(abi.encode(ROLE_DRAW_TAG, blockhash(drawBlock), this,
    round))``, where drawBlock is DRAW_DELAY blocks after the block that closed the join window."""
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "address", "uint256"],
            [ROLE_DRAW_TAG, bytes(draw_block_hash), contract, round_id],
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
    """A strict majority of the eligible acknowledgements on one model hash finalizes it, and
    never fewer than ``MIN_ACKS``: one key holder alone never decides."""
    return votes >= MIN_ACKS and votes * 2 > eligible


def acks_needed(eligible: int) -> int:
    """The fewest acknowledgements on one hash that finalize a round of ``eligible`` key
    holders (:func:`finalizes`)."""
    return max(MIN_ACKS, eligible // 2 + 1)


def deciders(
    order: Sequence[str], eligible: Collection[str], left: Collection[str], count: int
) -> tuple[str, ...]:
    """The key holders that decrypt a large aggregate at once: the first :func:`acks_needed`
    (of ``count``, the ledger's eligible number) of the eligible holders still members, in the
    round's drawn role ``order``. The others stand by (swarm.peer.decide): the round finalizes
    on the deciders' acknowledgements and the others fetch the finalized model, so a round
    decrypts its aggregate a majority of times rather than once per key holder. Pure: every
    peer (and an auditor) works out the same set from the ledger."""
    holders = [a for a in order if a in eligible and a not in left]
    return tuple(holders[: acks_needed(count)])


__all__ = [
    "DRAW_DELAY",
    "GRACE_S",
    "MIN_ACKS",
    "ROLE_DRAW_TAG",
    "ack_eligible",
    "acks_needed",
    "deadline_passed",
    "deciders",
    "finalizes",
    "key_recipients",
    "mask_threshold",
    "role_order",
    "round_seed",
]
