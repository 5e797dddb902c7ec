"""Rebuild the consortium's history from the contract's events: a pure fold over the event list."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from swarm.ledger.events import LedgerEvent
from swarm.ledger.types import LapseReason


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


@dataclass
class RoundHistory:
    """One round, as its events tell it."""

    round_id: int
    base_model: bytes
    min_peers: int
    opened_by: str
    opened_at: int
    join_deadline: int
    joined: list[str] = field(default_factory=list)
    seed: bytes | None = None
    order: list[str] = field(default_factory=list)
    closed_at: int | None = None
    merge_peers: list[str] = field(default_factory=list)  # the first, then each replacement
    key_stewards: list[str] = field(default_factory=list)
    replacements: list[Replacement] = field(default_factory=list)
    keys: list[tuple[int, str, bytes]] = field(default_factory=list)  # (attempt, steward, hash)
    commits: list[CommitRecord] = field(default_factory=list)
    aggregate_hash: bytes | None = None
    aggregate_attempt: int | None = None
    aggregate_by: str | None = None
    contributors: list[str] = field(default_factory=list)
    total_samples: int = 0
    acks: dict[str, bytes] = field(default_factory=dict)
    final_model: bytes | None = None
    finalized_at: int | None = None
    lapse_reason: LapseReason | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
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
    added: bool  # False: the admin role was revoked
    by: str
    timestamp: int


@dataclass
class ConsortiumHistory:
    admins: dict[str, bool] = field(default_factory=dict)
    admin_log: list[AdminChange] = field(default_factory=list)
    members: dict[str, MemberHistory] = field(default_factory=dict)
    params: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    rounds: dict[int, RoundHistory] = field(default_factory=dict)
    events: list[LedgerEvent] = field(default_factory=list)
    # Events naming a round never opened or a member never admitted: the contract cannot emit
    # them, so they are kept aside for the verifier instead of breaking the fold.
    unexplained: list[LedgerEvent] = field(default_factory=list)


def build_history(events: Iterable[LedgerEvent]) -> ConsortiumHistory:
    """Fold the contract's events, in chain order, into the consortium's history."""
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
        rid = a.get("round")
        if isinstance(rid, int) and rid in h.rounds:
            h.rounds[rid].events.append(e)
    return h


def _refers_to_unknown(h: ConsortiumHistory, e: LedgerEvent) -> bool:
    rid = e.args.get("round")
    if isinstance(rid, int) and (rid in h.rounds) == (e.name == "RoundOpened"):
        return True  # a round acted on before it opened, or opened twice
    return e.name in ("MemberRemoved", "MemberAddressesUpdated") and (
        e.args.get("account") not in h.members
    )


def _admin_added(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.admins[a["account"]] = True
    h.admin_log.append(AdminChange(a["account"], True, a["by"], e.timestamp))


def _admin_removed(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.admins[a["account"]] = False
    h.admin_log.append(AdminChange(a["account"], False, a["by"], e.timestamp))


def _member_added(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.members[a["account"]] = MemberHistory(
        address=a["account"],
        name=a["name"],
        peer_id=a["peerId"],
        public_key=a["publicKey"],
        multiaddrs=list(a["multiaddrs"]),
        added_by=a["by"],
        added_at=e.timestamp,
    )


def _member_removed(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    m = h.members[a["account"]]
    m.removed_by, m.removed_at = a["by"], e.timestamp


def _addresses_updated(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.members[a["account"]].multiaddrs = list(a["multiaddrs"])


def _params_set(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.params.append((e.timestamp, a["by"], dict(a["params"])))


def _opened(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.rounds[a["round"]] = RoundHistory(
        round_id=a["round"],
        base_model=a["baseModel"],
        min_peers=a["minPeers"],
        opened_by=a["by"],
        opened_at=e.timestamp,
        join_deadline=a["joinDeadline"],
    )


def _joined(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    h.rounds[a["round"]].joined.append(a["account"])


def _closed(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    r = h.rounds[a["round"]]
    r.seed, r.order, r.closed_at = a["seed"], list(a["order"]), e.timestamp
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
        CommitRecord(a["attempt"], a["account"], a["updateHash"], a["sampleCount"], e.timestamp)
    )


def _aggregate(h: ConsortiumHistory, e: LedgerEvent, a: dict[str, Any]) -> None:
    r = h.rounds[a["round"]]
    r.aggregate_hash, r.aggregate_attempt, r.aggregate_by = (
        a["aggregateHash"],
        a["attempt"],
        a["mergePeer"],
    )
    r.contributors, r.total_samples = list(a["contributors"]), a["totalSamples"]


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
    "AdminAdded": _admin_added,
    "AdminRemoved": _admin_removed,
    "MemberAdded": _member_added,
    "MemberRemoved": _member_removed,
    "MemberAddressesUpdated": _addresses_updated,
    "ParamsSet": _params_set,
    "RoundOpened": _opened,
    "Joined": _joined,
    "JoinClosed": _closed,
    "RoundKeyPosted": _key_posted,
    "KeyStewardReplaced": _replacement("key steward"),
    "MergePeerReplaced": _replacement("merge peer"),
    "UpdateCommitted": _committed,
    "AggregateSubmitted": _aggregate,
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
        "joined": r.joined,
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
            }
            for c in r.commits
        ],
        "aggregate": None
        if r.aggregate_hash is None
        else {
            "hash": _hex(r.aggregate_hash),
            "attempt": r.aggregate_attempt,
            "merge_peer": r.aggregate_by,
            "contributors": r.contributors,
            "total_samples": r.total_samples,
        },
        "acks": {k: _hex(v) for k, v in r.acks.items()},
        "final_model": _hex(r.final_model),
        "lapse_reason": None if r.lapse_reason is None else r.lapse_reason.name,
        "metrics": [{**m, "model_hash": _hex(m["model_hash"])} for m in r.metrics],
    }
