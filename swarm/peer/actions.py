"""What a peer can decide to do: one small frozen value per step of the protocol.

:func:`swarm.peer.decide.decide` returns these; the role modules carry them out. Each action has
a ``key``: while an action with that key is running, ``decide`` does not ask for it again, and
once it ended (done or failed) the next look at the ledger decides afresh whether it is still
needed. That is what makes every step idempotent and retried until the ledger shows its effect:
nothing is "remembered as sent", only observed on the ledger or held locally.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    """Base of every action. ``key`` identifies it for the in-flight set."""

    @property
    def key(self) -> str:
        fields = ",".join(str(v) for v in self.__dict__.values())
        return f"{type(self).__name__}({fields})"


# --- between rounds ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Stop(Action):
    """The target number of finalized rounds is on the ledger and we hold its model."""

    finalized: int


@dataclass(frozen=True)
class Adopt(Action):
    """The round finalized the model we computed ourselves: checkpoint it and use it."""

    round_id: int
    model_hash: bytes


@dataclass(frozen=True)
class CatchUp(Action):
    """The ledger's latest model is not ours: fetch it from a member, checked against its hash."""

    round_id: int
    model_hash: bytes


@dataclass(frozen=True)
class ReportMetrics(Action):
    """Evaluate the model of a finalized round on our test split (and report it on the ledger
    when the consortium collects metrics)."""

    round_id: int


@dataclass(frozen=True)
class OpenRound(Action):
    base_model: bytes


# --- joining ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Join(Action):
    round_id: int


@dataclass(frozen=True)
class CloseJoin(Action):
    round_id: int


@dataclass(frozen=True)
class Train(Action):
    """Train locally from the round's base model (runs while the roles and key are settled)."""

    round_id: int


# --- the round key ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MakeRoundKey(Action):
    """(Key steward) make this attempt's CKKS key pair and seal the secret key to every
    participant but the merge peer; kept on disk so a restart can still serve it."""

    round_id: int
    attempt: int


@dataclass(frozen=True)
class PostRoundKey(Action):
    """(Key steward) publish the key's hash: the commit window starts now. Posted as soon as the
    key exists, so no participant's connection can hold it back."""

    round_id: int
    attempt: int


@dataclass(frozen=True)
class DeliverRoundKeys(Action):
    """(Key steward) push the public context and sealed keys to participants, concurrently and
    bounded by the commit window; a participant that misses its push pulls instead."""

    round_id: int
    attempt: int


@dataclass(frozen=True)
class FetchRoundKey(Action):
    """Pull this attempt's public context (and, unless we merge, our sealed key) from the key
    steward: after a restart, or when its push has not arrived."""

    round_id: int
    attempt: int
    steward: str


@dataclass(frozen=True)
class ReplaceKeySteward(Action):
    round_id: int
    attempt: int


@dataclass(frozen=True)
class DrawRoles(Action):
    """Store the role draw's seed on chain (``drawRoles``) before its block hash leaves the
    256-block horizon: normally the steward's ``postRoundKey`` stores it, but a silent steward
    under a long key window would otherwise end the round in ``DrawExpired``."""

    round_id: int


# --- contributing and merging -----------------------------------------------------------------


@dataclass(frozen=True)
class Commit(Action):
    """Encrypt our update under this attempt's key, keep it, commit its hash and sample count."""

    round_id: int
    attempt: int


@dataclass(frozen=True)
class PushUpdate(Action):
    """One try at sending our committed update to the merge peer. Retried by the next decision,
    which sees a merge-peer replacement first."""

    round_id: int
    attempt: int
    merge_peer: str


@dataclass(frozen=True)
class PushShares(Action):
    """Hand every other participant its shares of our masks (sealed to its encryption key),
    after our commitment (which holds the shares' hash) and before our update: a contributor's
    masks must be recoverable by the others if it disappears."""

    round_id: int
    attempt: int


@dataclass(frozen=True)
class Merge(Action):
    """(Merge peer) add the committed ciphertexts we hold and submit the aggregate's hash."""

    round_id: int
    attempt: int


@dataclass(frozen=True)
class Absorb(Action):
    """(Merge peer) add the committed ciphertexts that arrived since the last look into the
    running sum, before every one is in: the merge is then done soon after the last push."""

    round_id: int
    attempt: int


@dataclass(frozen=True)
class ReplaceMergePeer(Action):
    round_id: int
    attempt: int


# --- agreeing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushReveal(Action):
    """(Every participant, once the ledger names the contributors) reveal the shares we hold of
    each contributor's self mask and of its pairwise masks with non-contributors, to the key
    holders: nothing more, so no single update is ever unmasked (docs/crypto.md)."""

    round_id: int
    attempt: int


@dataclass(frozen=True)
class Decrypt(Action):
    """(Key holder) fetch the aggregate, check its hash, decrypt, compute the new model."""

    round_id: int
    attempt: int


@dataclass(frozen=True)
class Acknowledge(Action):
    """(Key holder) acknowledge the model we computed; resent until the ledger records it."""

    round_id: int
    model_hash: bytes


__all__ = [
    "Acknowledge",
    "Action",
    "Adopt",
    "CatchUp",
    "CloseJoin",
    "Commit",
    "Decrypt",
    "DeliverRoundKeys",
    "FetchRoundKey",
    "Join",
    "MakeRoundKey",
    "Merge",
    "OpenRound",
    "PostRoundKey",
    "PushReveal",
    "PushShares",
    "PushUpdate",
    "ReplaceKeySteward",
    "ReplaceMergePeer",
    "ReportMetrics",
    "Stop",
    "Train",
]
