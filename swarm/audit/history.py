"""Rebuild the consortium's history from its two contracts' events: a pure fold over the list.

The Consortium emits membership, admin-role (OpenZeppelin ``RoleGranted``/``RoleRevoked`` and the
owner's two-step handover) and parameter events; the SwarmLedger emits the rounds'. Both come
in chain order (``LedgerClient.events``). What the events do not spell out is derived here the
way the contract derives it: a round's role order from its seed (``swarm.protocol.role_order``
over the participants in join order), an aggregate's contributors from its bitmap over the
``Joined`` indexes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak

from swarm.ledger.events import LedgerEvent
from swarm.ledger.types import LapseReason
from swarm.protocol import role_order

#: keccak256("swarm.ADMIN_ROLE"): admits and removes members, sets parameters
ADMIN_ROLE = keccak(b"swarm.ADMIN_ROLE")
#: OpenZeppelin's DEFAULT_ADMIN_ROLE: the consortium's owner (grants ADMIN_ROLE, binds the ledger)
DEFAULT_ADMIN_ROLE = b"\0" * 32


def role_name(role: bytes) -> str:
    """``admin``, ``owner``, or the role's hash for any other role."""
    if bytes(role) == ADMIN_ROLE:
        return "admin"
    if bytes(role) == DEFAULT_ADMIN_ROLE:
        return "owner"
    return "0x" + bytes(role).hex()


@dataclass
class MemberHistory:
    address: str
    name: str
    peer_id: str
    public_key: bytes
    multiaddrs: list[str]
    added_by: str
    added_at: int
    removed_by: str | None = None
    removed_at: int | None = None
    encryption_key: bytes = b"\0" * 32  # X25519 public key: round keys are sealed to it
    key_rotations: list[tuple[int, bytes]] = field(default_factory=list)  # (time, new key)
    missed_commits: list[tuple[int, int]] = field(default_factory=list)  # (round, in a row)
    sit_outs: list[tuple[int, int]] = field(default_factory=list)  # (from round, until round)

    @property
    def active(self) -> bool:
        return self.removed_at is None


@dataclass(frozen=True)
class Replacement:
    role: str  # "merge peer" | "key steward"
    previous: str
    next: str
    attempt: int
    by: str
    timestamp: int


@dataclass(frozen=True)
class CommitRecord:
    attempt: int
    account: str
    update_hash: bytes
    sample_count: int
    timestamp: int
    shares_hash: bytes = b"\0" * 32  # mask-share manifest hash (zero where the round does not mask)


@dataclass(frozen=True)
class PrivacyRecord:
    """One ``PrivacySpent``: what a member's training spent in a round, and its running total,
    against the round's budget (epsilon; the contract holds micro-epsilon)."""

    round_id: int
    account: str
    round_epsilon: float
    total_epsilon: float
    budget: float | None  # the round's epsilonBudget (None if its ParamsSet was not seen)
    timestamp: int


@dataclass
class RoundHistory:
    """One round, as its events tell it."""

    round_id: int
    base_model: bytes
    min_peers: int
    opened_by: str
    opened_at: int
    join_deadline: int
    params_version: int = 0
    params: dict[str, Any] | None = None  # the round's parameters (its version's ParamsSet)
    joined: list[str] = field(default_factory=list)  # by participant index (join order)
    draw_block: int | None = None  # the block whose hash seeds the roles
    seed: bytes | None = None  # from RolesDrawn (None until the seed is stored)
    order: list[str] = field(default_factory=list)  # role_order(seed, joined)
    closed_at: int | None = None
    merge_peers: list[str] = field(default_factory=list)  # the first, then each replacement
    key_stewards: list[str] = field(default_factory=list)
    replacements: list[Replacement] = field(default_factory=list)
    keys: list[tuple[int, str, bytes]] = field(default_factory=list)  # (attempt, steward, hash)
    commits: list[CommitRecord] = field(default_factory=list)
    aggregate_hash: bytes | None = None
    aggregate_attempt: int | None = None
    aggregate_by: str | None = None
    contributor_bits: int = 0
    contributors: list[str] = field(default_factory=list)  # ascending by address
    total_samples: int = 0
    acks: dict[str, bytes] = field(default_factory=dict)
    final_model: bytes | None = None
    finalized_at: int | None = None
    lapse_reason: LapseReason | None = None
    missed: list[tuple[str, int]] = field(default_factory=list)  # (account, misses in a row)
    sit_outs: list[tuple[str, int, int]] = field(default_factory=list)  # (account, from, until)
    left: list[str] = field(default_factory=list)  # removed from the consortium meanwhile
    metrics: list[dict[str, Any]] = field(default_factory=list)
    privacy: list[PrivacyRecord] = field(default_factory=list)  # PrivacySpent, in chain order
    events: list[LedgerEvent] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.final_model is not None:
            return "finalized"
        if self.lapse_reason is not None:
            return f"lapsed ({self.lapse_reason.name.lower().replace('_', ' ')})"
        return "in progress"

    @property
    def merge_peer(self) -> str | None:
        return self.merge_peers[-1] if self.merge_peers else None

    @property
    def key_steward(self) -> str | None:
        return self.key_stewards[-1] if self.key_stewards else None

    @property
    def attempt(self) -> int:
        return max([0, *(r.attempt for r in self.replacements if r.role == "merge peer")])

    def commits_of_attempt(self, attempt: int) -> list[CommitRecord]:
        return [c for c in self.commits if c.attempt == attempt]


@dataclass(frozen=True)
class AdminChange:
    account: str
    added: bool  # False: the role was revoked (or renounced, or handed over)
    by: str
    timestamp: int
    role: str = "admin"  # "admin" (ADMIN_ROLE) | "owner" (DEFAULT_ADMIN_ROLE) | another role's hash


@dataclass(frozen=True)
class ParamsRecord:
    """One parameter version, as ``ParamsSet`` recorded it."""

    version: int
    timestamp: int
    by: str
    values: dict[str, Any]


@dataclass
class ConsortiumHistory:
    admins: dict[str, bool] = field(default_factory=dict)  # ADMIN_ROLE, held now or not
    owners: dict[str, bool] = field(default_factory=dict)  # DEFAULT_ADMIN_ROLE, likewise
    admin_log: list[AdminChange] = field(default_factory=list)
    members: dict[str, MemberHistory] = field(default_factory=dict)
    params: list[ParamsRecord] = field(default_factory=list)
    ledger: str | None = None  # the SwarmLedger the Consortium is bound to (LedgerBound)
    rounds: dict[int, RoundHistory] = field(default_factory=dict)
    privacy: list[PrivacyRecord] = field(default_factory=list)  # every PrivacySpent, in order
    events: list[LedgerEvent] = field(default_factory=list)
    # Events naming a round never opened or a member never admitted: the contract cannot emit
    # them, so they are kept aside for the verifier instead of breaking the fold.
    unexplained: list[LedgerEvent] = field(default_factory=list)

    @property
    def owner(self) -> str | None:
        """The account that holds DEFAULT_ADMIN_ROLE now (None if nobody does)."""
        return next((a for a, held in self.owners.items() if held), None)

    def params_of(self, version: int) -> dict[str, Any] | None:
        for p in self.params:
            if p.version == version:
                return p.values
        return None


def build_history(events: Iterable[LedgerEvent]) -> ConsortiumHistory:
    """Fold the contracts' events, in chain order, into the consortium's history."""
    h = ConsortiumHistory()
    for e in events:
        h.events.append(e)
        a = e.args
        if _refers_to_unknown(h, e):
            h.unexplained.append(e)
            continue
        handler = _HANDLERS.get(e.name)
        if handler is not None:
            handler(h, e, a)
        rid = round_of(e)
        if rid is not None and rid in h.rounds:
            h.rounds[rid].events.append(e)
    return h


def round_of(e: LedgerEvent) -> int | None:
    """The round an event belongs to (a sit-out to the round whose miss caused it)."""
    if e.name == "SittingOut":
        start = e.args.get("fromRound")
        return start - 1 if isinstance(start, int) else None
    rid = e.args.get("round")
    return rid if isinstance(rid, int) else None


def _refers_to_unknown(h: ConsortiumHistory, e: LedgerEvent) -> bool:
    rid = round_of(e)
    if rid is not None and (rid in h.rounds) == (e.name == "RoundOpened"):
        return True  # a round acted on before it opened, or opened twice
    return e.name in ("MemberRemoved", "MemberAddressesUpdated", "EncryptionKeySet") and (
        e.args.get("account") not in h.members
    )


def _role_granted(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    _role_change(h, e, a, True)


def _role_revoked(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    _role_change(h, e, a, False)


def _role_change(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any], added: bool) -> None:
    role = role_name(a["role"])
    if role == "admin":
        h.admins[a["account"]] = added
    elif role == "owner":
        h.owners[a["account"]] = added
    h.admin_log.append(AdminChange(a["account"], added, a["sender"], e.timestamp, role))


def _member_added(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    previous = h.members.get(a["account"])  # re-admitted after a removal: its record goes on
    m = MemberHistory(
        address=a["account"],
        name=a["name"],
        peer_id=a["peerId"],
        public_key=a["publicKey"],
        multiaddrs=list(a["multiaddrs"]),
        added_by=a["by"],
        added_at=e.timestamp,
        encryption_key=bytes(a.get("encryptionKey", b"\0" * 32)),
    )
    if previous is not None:
        m.missed_commits, m.sit_outs = previous.missed_commits, previous.sit_outs
    h.members[a["account"]] = m


def _member_removed(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    m = h.members[a["account"]]
    m.removed_by, m.removed_at = a["by"], e.timestamp


def _addresses_updated(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.members[a["account"]].multiaddrs = list(a["multiaddrs"])


def _encryption_key_set(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    m = h.members[a["account"]]
    key = bytes(a["key"])
    if key != m.encryption_key:  # MemberAdded's own key is announced again at admission
        m.key_rotations.append((e.timestamp, key))
        m.encryption_key = key


def _params_set(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    version = a.get("version", len(h.params))
    h.params.append(ParamsRecord(version, e.timestamp, a["by"], dict(a["params"])))


def _ledger_bound(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.ledger = a["ledger"]


def _opened(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    version = a.get("paramsVersion", 0)
    h.rounds[a["round"]] = RoundHistory(
        round_id=a["round"],
        base_model=a["baseModel"],
        min_peers=a["minPeers"],
        opened_by=a["by"],
        opened_at=e.timestamp,
        join_deadline=a["joinDeadline"],
        params_version=version,
        params=h.params_of(version),
    )


def _joined(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.rounds[a["round"]].joined.append(a["account"])


def _closed(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    r = h.rounds[a["round"]]
    r.draw_block, r.closed_at = a["drawBlock"], e.timestamp


def _roles_drawn(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    r = h.rounds[a["round"]]
    r.seed = bytes(a["seed"])
    r.order = role_order(r.seed, r.joined)
    r.merge_peers.append(a["mergePeer"])
    r.key_stewards.append(a["keySteward"])


def _key_posted(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.rounds[a["round"]].keys.append((a["attempt"], a["keySteward"], a["keyHash"]))


def _replacement(role: str) -> Any:
    def handle(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
        r = h.rounds[a["round"]]
        r.replacements.append(
            Replacement(role, a["previous"], a["next"], a["attempt"], a["by"], e.timestamp)
        )
        (r.merge_peers if role == "merge peer" else r.key_stewards).append(a["next"])

    return handle


def _committed(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.rounds[a["round"]].commits.append(
        CommitRecord(
            a["attempt"],
            a["account"],
            a["updateHash"],
            a["sampleCount"],
            e.timestamp,
            a.get("sharesHash", b"\0" * 32),
        )
    )


#: the contract's epsilon unit (micro-epsilon)
EPSILON_UNIT = 1_000_000


def _privacy_spent(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    r = h.rounds[a["round"]]
    budget = (r.params or {}).get("epsilonBudget")
    record = PrivacyRecord(
        round_id=a["round"],
        account=a["account"],
        round_epsilon=a["roundEpsilon"] / EPSILON_UNIT,
        total_epsilon=a["totalEpsilon"] / EPSILON_UNIT,
        budget=None if budget is None else budget / EPSILON_UNIT,
        timestamp=e.timestamp,
    )
    r.privacy.append(record)
    h.privacy.append(record)


def decode_bits(participants: list[str], bits: int) -> list[str]:
    """The participants whose index bit is set, ascending by address (as the contract's views
    list contributors). Bits past the last participant name nobody and are dropped."""
    chosen = {p for i, p in enumerate(participants) if bits >> i & 1}
    return sorted(chosen, key=lambda p: int(p, 16))


def _aggregate(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    r = h.rounds[a["round"]]
    r.aggregate_hash, r.aggregate_attempt, r.aggregate_by = (
        a["aggregateHash"],
        a["attempt"],
        a["mergePeer"],
    )
    r.contributor_bits = int(a["contributorBits"])
    r.contributors = decode_bits(r.joined, r.contributor_bits)
    r.total_samples = a["totalSamples"]


def _commit_missed(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.rounds[a["round"]].missed.append((a["account"], a["consecutiveMisses"]))
    m = h.members.get(a["account"])
    if m is not None:
        m.missed_commits.append((a["round"], a["consecutiveMisses"]))


def _sitting_out(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.rounds[a["fromRound"] - 1].sit_outs.append((a["account"], a["fromRound"], a["untilRound"]))
    m = h.members.get(a["account"])
    if m is not None:
        m.sit_outs.append((a["fromRound"], a["untilRound"]))


def _participant_left(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.rounds[a["round"]].left.append(a["account"])


def _acknowledged(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.rounds[a["round"]].acks[a["account"]] = a["modelHash"]


def _finalized(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    r = h.rounds[a["round"]]
    r.final_model, r.finalized_at = a["modelHash"], e.timestamp


def _lapsed(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.rounds[a["round"]].lapse_reason = LapseReason(a["reason"])


def _metrics(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.rounds[a["round"]].metrics.append(
        {
            "account": a["account"],
            "model_hash": a["modelHash"],
            "test_samples": a["testSamples"],
            "accuracy": a["accuracyPpm"] / 1e6,
            "auc": a["aucPpm"] / 1e6,
            "loss": a["lossPpm"] / 1e6,
        }
    )


_HANDLERS = {
    "RoleGranted": _role_granted,
    "RoleRevoked": _role_revoked,
    "MemberAdded": _member_added,
    "MemberRemoved": _member_removed,
    "MemberAddressesUpdated": _addresses_updated,
    "EncryptionKeySet": _encryption_key_set,
    "ParamsSet": _params_set,
    "LedgerBound": _ledger_bound,
    "RoundOpened": _opened,
    "Joined": _joined,
    "JoinClosed": _closed,
    "RolesDrawn": _roles_drawn,
    "RoundKeyPosted": _key_posted,
    "KeyStewardReplaced": _replacement("key steward"),
    "MergePeerReplaced": _replacement("merge peer"),
    "UpdateCommitted": _committed,
    "PrivacySpent": _privacy_spent,
    "AggregateSubmitted": _aggregate,
    "CommitMissed": _commit_missed,
    "SittingOut": _sitting_out,
    "ParticipantLeft": _participant_left,
    "Acknowledged": _acknowledged,
    "RoundFinalized": _finalized,
    "RoundLapsed": _lapsed,
    "MetricsReported": _metrics,
}


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def round_summary(r: RoundHistory) -> dict[str, Any]:
    """A round as plain JSON-able values (for `--json` and reports)."""
    return {
        "round": r.round_id,
        "outcome": r.outcome,
        "base_model": _hex(r.base_model),
        "opened_by": r.opened_by,
        "opened_at": r.opened_at,
        "min_peers": r.min_peers,
        "params_version": r.params_version,
        "joined": r.joined,
        "draw_block": r.draw_block,
        "seed": _hex(r.seed),
        "order": r.order,
        "merge_peers": r.merge_peers,
        "key_stewards": r.key_stewards,
        "replacements": [
            {
                "role": x.role,
                "previous": x.previous,
                "next": x.next,
                "attempt": x.attempt,
                "by": x.by,
                "timestamp": x.timestamp,
            }
            for x in r.replacements
        ],
        "round_keys": [
            {"attempt": att, "steward": who, "key_hash": _hex(h)} for att, who, h in r.keys
        ],
        "commits": [
            {
                "attempt": c.attempt,
                "account": c.account,
                "update_hash": _hex(c.update_hash),
                "sample_count": c.sample_count,
                "timestamp": c.timestamp,
                "shares_hash": _hex(c.shares_hash),
            }
            for c in r.commits
        ],
        "aggregate": None
        if r.aggregate_hash is None
        else {
            "hash": _hex(r.aggregate_hash),
            "attempt": r.aggregate_attempt,
            "merge_peer": r.aggregate_by,
            "contributor_bits": r.contributor_bits,
            "contributors": r.contributors,
            "total_samples": r.total_samples,
        },
        "acks": {k: _hex(v) for k, v in r.acks.items()},
        "final_model": _hex(r.final_model),
        "lapse_reason": None if r.lapse_reason is None else r.lapse_reason.name,
        "missed_commits": [{"account": a, "in_a_row": n} for a, n in r.missed],
        "sit_outs": [{"account": a, "from": f, "until": u} for a, f, u in r.sit_outs],
        "left": r.left,
        "metrics": [{**m, "model_hash": _hex(m["model_hash"])} for m in r.metrics],
        "privacy": [privacy_summary(p) for p in r.privacy],
    }


def privacy_summary(p: PrivacyRecord) -> dict[str, Any]:
    """A PrivacySpent record as plain JSON-able values."""
    return {
        "round": p.round_id,
        "account": p.account,
        "round_epsilon": p.round_epsilon,
        "total_epsilon": p.total_epsilon,
        "budget": p.budget,
        "timestamp": p.timestamp,
    }
