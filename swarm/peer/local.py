"""What one peer knows that the ledger does not: its model and its progress in the round.

Frozen values, rebuilt for every decision from the peer's working state. Everything here is
either on disk (checkpoints, blobs, round keys) or cheap to redo after a restart, so a restarted
peer's first decision starts from what survived and the ledger fills in the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RoundProgress:
    """This peer's progress in one round. ``attempt`` is the attempt that the key and update
    fields belong to: a merge-peer replacement starts a new attempt with a new key."""

    round_id: int
    attempt: int = 0
    trained: bool = False  # the local update for this round's base model is ready
    has_context: bool = False  # the attempt's public context, matching the ledger's key hash
    has_secret: bool = False  # the attempt's secret key (never at this attempt's merge peer)
    steward_key: bool = False  # (steward) the attempt's key pair is made and its keys sealed
    keys_delivered: bool = False  # (steward) the pushes to the participants are over
    own_update: bytes = b""  # digest of our encrypted update for this attempt (kept on disk)
    pushed: bool = False  # the merge peer confirmed it stored our update of this attempt
    shares_held_by: int = 0  # participants (us included) holding our mask shares of this attempt
    shares_done: bool = False  # every other participant has our shares (or left)
    revealed: bool = False  # our reveal is built and every key holder has it
    reveals_held: int = 0  # reveals of this attempt we hold (ours included)
    reveals_tried: int = 0  # reveals we held when unmasking last found too few shares
    held_updates: frozenset[tuple[str, bytes]] = frozenset()  # (merge peer) (sender, digest)
    absorbed: frozenset[tuple[str, bytes]] = frozenset()  # (merge peer) in the running sum, or
    # refused by it: (sender, digest)
    new_model: bytes = b""  # hash of the model we computed from this round's aggregate

    def for_attempt(self, attempt: int) -> RoundProgress:
        """This progress as it stands for ``attempt``: what belonged to an earlier attempt
        (its key, its update) no longer counts."""
        if attempt == self.attempt:
            return self
        return RoundProgress(self.round_id, attempt, trained=self.trained, new_model=self.new_model)


@dataclass(frozen=True)
class LocalView:
    me: str  # our checksummed address
    model_hash: bytes  # the model we hold (the last one adopted)
    model_round: int  # the round that finalized it (0: the task's initial model)
    metrics_round: int = 0  # the newest round whose model we evaluated
    rounds_target: int = 0  # stop once the ledger has this many finalized rounds (0: never)
    progress: RoundProgress | None = None  # in the ledger's current round, if any
    in_flight: frozenset[str] = field(default_factory=frozenset)  # keys of running actions
    idle_since: float | None = None  # when we first saw no round running (wall clock)
    privacy_spent: bool = False  # our privacy budget cannot pay for another round of training
    sitting_out_until: int = 0  # the ledger benched us (missed commits) through this round
    param_count: int = 0  # the model's float parameters (what decryption costs grows with)

    def progress_in(self, round_id: int) -> RoundProgress:
        if self.progress is not None and self.progress.round_id == round_id:
            return self.progress
        return RoundProgress(round_id)


__all__ = ["LocalView", "RoundProgress"]
