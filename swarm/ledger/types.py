"""Plain values read from the ledger: members, consortium parameters, rounds.

These are what the rest of swarm sees of the chain; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType


@dataclass(frozen=True)
class Member:
    """A hospital admitted to the consortium, as the contract records it."""

    address: str  # checksummed Ethereum address
    public_key: bytes  # 64-byte uncompressed secp256k1 key (no 0x04 prefix); hashes to address
    peer_id: str  # libp2p PeerID of the same key
    multiaddrs: tuple[str, ...]  # where its libp2p host listens
    name: str  # display name, e.g. "Cleveland Clinic"
    active: bool  # False once removed
    added_at: int  # unix time of admission
    encryption_key: bytes = b"\0" * 32  # X25519 public key (round keys are sealed to it)


@dataclass(frozen=True)
class Params:
    """Consortium parameters, set by admins; windows are durations in seconds."""

    min_peers: int
    join_window: int
    key_window: int
    commit_window: int
    merge_window: int
    ack_window: int
    ckks_params_id: int
    task_id: bytes  # 32 bytes
    initial_model_hash: bytes  # 32 bytes: the base model of the first round
    metrics_enabled: bool
    max_missed_commits: int = 0  # consecutive missed commits before a member sits out; 0 = never
    sit_out_rounds: int = 0  # rounds such a member sits out (1..1000 when the above > 0)
    #: secure-aggregation share threshold, percent of a round's participants (0: no masking;
    #: else 51..100); a round's commitments carry a mask-share manifest hash when > 0
    mask_threshold_pct: int = 66
    #: each member's cumulative differential-privacy budget (epsilon; 0.0: DP off). The contract
    #: holds it in micro-epsilon.
    epsilon_budget: float = 0.0
    #: DP delta (0 < delta < 1 when the budget is > 0; the contract holds 1e-12 units)
    dp_delta: float = 0.0
    #: DP-SGD noise multiplier (> 0 when the budget is > 0; the contract holds thousandths)
    dp_noise_multiplier: float = 0.0
    #: DP-SGD per-sample clipping norm (> 0 when the budget is > 0; the contract holds thousandths)
    dp_clip_norm: float = 0.0


class RoundState(IntEnum):
    """The contract's derived round state (mirrors ``RoundState`` in the Solidity source)."""

    NONE = 0
    JOINING = 1
    DRAWING = 2  # the join window closed; the block whose hash draws the roles is not mined yet
    KEYING = 3
    COMMITTING = 4
    MERGING = 5
    ACKNOWLEDGING = 6
    FINALIZED = 7
    LAPSED = 8

    @property
    def mask_bit(self) -> int:
        """This state's bit in a ``WrongRoundState`` error's ``expectedMask``."""
        return 1 << int(self)

    @classmethod
    def from_mask(cls, mask: int) -> tuple[RoundState, ...]:
        """The states an ``expectedMask`` names."""
        return tuple(s for s in cls if mask & s.mask_bit)


class LapseReason(IntEnum):
    """Why a round ended without a model (mirrors ``LapseReason`` in Solidity)."""

    NONE = 0
    TOO_FEW_JOINED = 1
    TOO_FEW_COMMITTED = 2
    NO_STEWARD_LEFT = 3
    NO_MERGE_PEER_LEFT = 4
    NO_AGREEMENT = 5
    DRAW_EXPIRED = 6  # the draw block's hash left the 256-block horizon before anyone stored it


@dataclass(frozen=True)
class RoundInfo:
    """One round as the contract's views describe it now."""

    round_id: int
    state: RoundState
    lapse_reason: LapseReason
    base_model: bytes
    attempt: int
    participants: tuple[str, ...]
    order: tuple[str, ...]
    merge_peer: str | None
    key_steward: str | None
    key_hash: bytes
    aggregate_hash: bytes
    final_model: bytes
    contributors: tuple[str, ...]
    total_samples: int
    join_deadline: int
    key_deadline: int
    commit_deadline: int
    merge_deadline: int
    ack_deadline: int
    min_peers: int
    seed: bytes  # drives the role order (zero while Drawing)
    commit_count: int  # commitments in the current attempt
    ack_eligible: int  # contributors that hold the key and so may acknowledge
    draw_block: int = 0  # the block whose hash seeds the roles (0 while Joining)
    params_version: int = 0  # the parameter version the round opened with
    seed_stored: bool = False  # the seed is on chain (else derived from blockhash(draw_block))
    commit_bits: int = 0  # bit i: participant i committed in the current attempt
    contributor_bits: int = 0  # bit i: participant i is in the aggregate
    ack_bits: int = 0  # bit i: participant i acknowledged
    left: tuple[str, ...] = ()  # participants removed from the consortium during the round
    params: Params | None = None  # the round's parameter snapshot (version params_version)


@dataclass(frozen=True)
class LedgerView:
    """Everything a peer reads per poll, from one ``eth_call`` and so from one block
    (``SwarmLedger.peerView``): the reads cannot straddle a transaction."""

    block_number: int
    block_time: int  # the block's timestamp (what the contract compares deadlines with)
    current_round: int
    last_finalized: int  # the newest finalized round's id (0 before the first)
    finalized_count: int  # how many rounds were finalized (lapsed ones do not count)
    latest_model: bytes
    params: Params  # the newest parameters (the next round opens with them)
    round: RoundInfo | None  # None when there is no such round yet (current_round == 0)
    # participant -> (update hash, samples), only those that committed in the current attempt
    commitments: Mapping[str, tuple[bytes, int]]
    # participant -> acknowledged model hash, only those that acknowledged
    acks: Mapping[str, bytes]
    params_version: int = 0  # the newest parameter version's index
    # participant -> its mask-share manifest hash (32 bytes), only those that committed one in
    # the current attempt (none where the round does not mask)
    shares_hashes: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def progress(self) -> tuple[int, ...]:
        """How far the ledger had come when this view was read, as something to order views
        by: its block, then what the transactions since the round opened leave (a new round,
        a finalized one, a new attempt, a later state, joins, commitments, manifests, acks).

        The block alone does not order them: anvil answers a call while it mines a block with
        the state that block's transaction leaves but the block number before it, and the next
        call with the state before it again (anvil 1.7.1 under a stream of transactions: a
        quarter of the block numbers answered with two different states, one call in ~250
        showing less than the call before it). Two views of one block number are ordered by
        what they hold."""
        r = self.round
        in_round = (
            (r.attempt, int(r.state), len(r.participants), r.commit_count) if r else (0, 0, 0, 0)
        )
        return (
            self.block_number,
            self.current_round,
            self.finalized_count,
            *in_round,
            len(self.commitments),
            len(self.shares_hashes),
            len(self.acks),
            self.params_version,
        )
