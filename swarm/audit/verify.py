"""Check a consortium's history against the rules of the round protocol (docs/protocol.md).

The contract enforces these rules when it accepts a transaction; the verifier checks that the
recorded history actually obeys them, from the events alone. Rebuilding the history independently
catches a contract that is not the one it claims to be, a node that serves forged or missing logs,
and the things the contract allows but an auditor wants to see (a committer left out of the
aggregate, a member acknowledging a different model, a role holder replaced, a lapsed round).

Pure: the input is a :class:`~swarm.audit.history.ConsortiumHistory` plus, optionally, facts read
from the chain (:class:`ChainFacts`), the contract's derived view of the newest round and
checkpoint files already read (:class:`CheckpointRecord`, see ``swarm.audit.checkpoints``); the
output is a list of :class:`Finding`. Every kind of finding is a :class:`FindingKind`;
docs/auditor-guide.md says what each one means.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from swarm.audit.history import ConsortiumHistory, RoundHistory
from swarm.ledger.events import LedgerEvent
from swarm.ledger.types import LapseReason, RoundInfo, RoundState
from swarm.protocol import ack_eligible, finalizes, role_order, round_seed


class Severity(StrEnum):
    """How bad a finding is. Only errors make ``swarm audit verify`` fail."""

    ERROR = "error"  # the history breaks a rule: it cannot be trusted as recorded
    WARNING = "warning"  # allowed by the rules, but a person should look (e.g. a dissent)
    INFO = "info"  # a notable, legitimate event (a replacement, a lapse)


class FindingKind(StrEnum):
    """What a finding is about; stable names for scripts (docs/auditor-guide.md)."""

    WRONG_BASE_MODEL = "wrong-base-model"
    ROUND_OUT_OF_SEQUENCE = "round-out-of-sequence"
    NOT_ADMIN = "not-admin"
    NOT_A_MEMBER = "not-a-member"
    NOT_PARTICIPANT = "not-participant"
    WRONG_ORDER = "wrong-order"
    WRONG_SEED = "wrong-seed"
    WRONG_REPLACEMENT = "wrong-replacement"
    WRONG_ROLE = "wrong-role"
    OUT_OF_PHASE = "out-of-phase"
    UNCOMMITTED_CONTRIBUTOR = "uncommitted-contributor"
    TOO_FEW_CONTRIBUTORS = "too-few-contributors"
    TOTAL_SAMPLES_MISMATCH = "total-samples-mismatch"
    ACK_NOT_ELIGIBLE = "ack-not-eligible"
    FINALIZED_WITHOUT_MAJORITY = "finalized-without-majority"
    UNEXPLAINED_EVENT = "unexplained-event"
    CHECKPOINT_CORRUPT = "checkpoint-corrupt"
    CHECKPOINT_MISMATCH = "checkpoint-mismatch"
    COMMITTER_LEFT_OUT = "committer-left-out"
    ACK_MISMATCH = "ack-mismatch"
    CHECKPOINT_MISSING = "checkpoint-missing"
    CHECKPOINT_NOT_FINALIZED = "checkpoint-not-finalized"
    UNKNOWN_CONTRACT_CODE = "unknown-contract-code"
    ROLE_REPLACED = "role-replaced"
    ROUND_LAPSED = "round-lapsed"


SEVERITY: Mapping[FindingKind, Severity] = {
    **{k: Severity.ERROR for k in FindingKind},
    FindingKind.COMMITTER_LEFT_OUT: Severity.WARNING,
    FindingKind.ACK_MISMATCH: Severity.WARNING,
    FindingKind.CHECKPOINT_MISSING: Severity.WARNING,
    FindingKind.CHECKPOINT_NOT_FINALIZED: Severity.WARNING,
    FindingKind.UNKNOWN_CONTRACT_CODE: Severity.WARNING,
    FindingKind.ROLE_REPLACED: Severity.INFO,
    FindingKind.ROUND_LAPSED: Severity.INFO,
}


@dataclass(frozen=True)
class Finding:
    """One thing the verifier found, tied to a round, an account and a block where it can be."""

    severity: Severity
    kind: FindingKind
    message: str
    round_id: int | None = None
    account: str | None = None
    block_number: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "kind": self.kind.value,
            "round": self.round_id,
            "account": self.account,
            "block": self.block_number,
            "message": self.message,
        }


@dataclass(frozen=True)
class ChainFacts:
    """What the verifier needs from the chain beyond its events (read by swarm.audit.source)."""

    contract: str  # the contract's address: part of every round's seed
    code_matches: bool  # its runtime code is the SwarmLedger this version of swarm ships
    parent_hashes: Mapping[int, bytes]  # block number -> hash of the block before it


@dataclass(frozen=True)
class CheckpointRecord:
    """One checkpoint file as read from disk; ``model_hash`` recomputed from its weights."""

    path: str
    round_id: int  # from the file name (round-000007.ckpt)
    model_hash: bytes | None  # None when the file could not be read
    header_round: int | None = None  # the round the file's own header names
    problem: str | None = None  # why it could not be read


def verify(
    history: ConsortiumHistory,
    *,
    chain: ChainFacts | None = None,
    current: RoundInfo | None = None,
    checkpoints: Sequence[CheckpointRecord] | None = None,
) -> list[Finding]:
    """Every finding about ``history``, in chain order (checkpoint findings last).

    ``current`` is the contract's derived view of the newest round (a lapse is only recorded
    as an event when the next round opens); ``checkpoints`` are checked against the finalized
    model of their round when given.
    """
    v = _Verifier(history, chain)
    if chain is not None and not chain.code_matches:
        v.add(
            FindingKind.UNKNOWN_CONTRACT_CODE,
            f"the code at {chain.contract} is not the SwarmLedger this version of swarm ships: "
            "the rules checked here may not be the ones it enforced",
        )
    v.check_consortium()
    for r in history.rounds.values():
        v.check_round(r)
    if current is not None:
        v.check_current(current)
    found = sorted(v.findings, key=_chain_order)
    if checkpoints is not None:
        found += verify_checkpoints(history, checkpoints)
    return found


def verify_checkpoints(
    history: ConsortiumHistory, checkpoints: Sequence[CheckpointRecord]
) -> list[Finding]:
    """Each checkpoint against its round's finalized model; each finalized round needs one."""
    out: list[Finding] = []

    def add(kind: FindingKind, message: str, round_id: int) -> None:
        out.append(Finding(SEVERITY[kind], kind, message, round_id))

    seen = set()
    for c in sorted(checkpoints, key=lambda c: (c.round_id, c.path)):
        seen.add(c.round_id)
        r = history.rounds.get(c.round_id)
        final = r.final_model if r is not None else None
        if c.problem is not None or c.model_hash is None:
            add(FindingKind.CHECKPOINT_CORRUPT, f"{c.path}: {c.problem}", c.round_id)
        elif c.header_round is not None and c.header_round != c.round_id:
            add(
                FindingKind.CHECKPOINT_MISMATCH,
                f"{c.path}: the file is named for round {c.round_id} "
                f"but its header says round {c.header_round}",
                c.round_id,
            )
        elif final is None:
            add(
                FindingKind.CHECKPOINT_NOT_FINALIZED,
                f"{c.path}: round {c.round_id} has no finalized model on the ledger",
                c.round_id,
            )
        elif c.model_hash != final:
            add(
                FindingKind.CHECKPOINT_MISMATCH,
                f"{c.path}: its weights hash to {_hex(c.model_hash)}, "
                f"the ledger finalized {_hex(final)}",
                c.round_id,
            )
    for r in history.rounds.values():
        if r.final_model is not None and r.round_id not in seen:
            add(
                FindingKind.CHECKPOINT_MISSING,
                f"no checkpoint of round {r.round_id} (finalized model {_hex(r.final_model)})",
                r.round_id,
            )
    return out


def count_by_severity(findings: Sequence[Finding]) -> dict[str, int]:
    counts = Counter(f.severity for f in findings)
    return {s.value: counts.get(s, 0) for s in Severity}


# --- the checks ----------------------------------------------------------------------------

# Who acted, for every event that records its sender: used for the membership checks.
_ACTOR = {
    "MemberAddressesUpdated": "account",
    "RoundOpened": "by",
    "Joined": "account",
    "JoinClosed": "by",
    "RoundKeyPosted": "keySteward",
    "KeyStewardReplaced": "by",
    "MergePeerReplaced": "by",
    "UpdateCommitted": "account",
    "AggregateSubmitted": "mergePeer",
    "Acknowledged": "account",
    "MetricsReported": "account",
}
_ADMIN_ACTIONS = {
    "AdminAdded": "granted the admin role to",
    "AdminRemoved": "revoked the admin role of",
    "MemberAdded": "admitted",
    "MemberRemoved": "removed",
    "ParamsSet": "set the parameters",
}


def _chain_order(f: Finding) -> tuple[int, int]:
    return (f.block_number if f.block_number is not None else 1 << 62, f.round_id or 0)


def _hex(value: bytes | None) -> str:
    return "-" if value is None else "0x" + bytes(value).hex()


def _event_key(e: LedgerEvent) -> tuple[int, int]:
    return (e.block_number, e.log_index)


class _Verifier:
    def __init__(self, history: ConsortiumHistory, chain: ChainFacts | None) -> None:
        self.h = history
        self.chain = chain
        self.findings: list[Finding] = []
        self.names = {a: m.name for a, m in history.members.items()}
        self.unexplained = {_event_key(e) for e in history.unexplained}

    def add(
        self,
        kind: FindingKind,
        message: str,
        round_id: int | None = None,
        account: str | None = None,
        event: LedgerEvent | None = None,
    ) -> None:
        block = event.block_number if event is not None else None
        self.findings.append(Finding(SEVERITY[kind], kind, message, round_id, account, block))

    def who(self, address: str | None) -> str:
        if address is None:
            return "nobody"
        name = self.names.get(address)
        return f"{name} ({address})" if name is not None else address

    # --- membership, admins, parameters, the sequence of rounds -----------------------------

    def check_consortium(self) -> None:
        admins: set[str] = set()
        active: set[str] = set()
        admins_granted = False
        initial_model: bytes | None = None
        latest_model: bytes | None = None  # the last finalized model
        last_round, last_ended = 0, True
        for e in self.h.events:
            a = e.args
            rid = a.get("round") if isinstance(a.get("round"), int) else None
            if _event_key(e) in self.unexplained:
                self.add(
                    FindingKind.UNEXPLAINED_EVENT,
                    f"{e.name} names "
                    + (f"round {rid}, which " if rid is not None else f"{a.get('account')}, who ")
                    + ("was already opened" if e.name == "RoundOpened" else "the ledger never had"),
                    rid,
                    a.get("account") or a.get("by"),
                    e,
                )
                continue
            if e.name in _ADMIN_ACTIONS:
                # The constructor's first event grants the deployer the admin role: the one
                # change made by someone who was not an admin yet.
                is_constructor = (
                    e.name == "AdminAdded" and not admins_granted and a["account"] == a["by"]
                )
                admins_granted = admins_granted or e.name == "AdminAdded"
                if not is_constructor and a["by"] not in admins:
                    target = "" if e.name == "ParamsSet" else " " + self.who(a["account"])
                    self.add(
                        FindingKind.NOT_ADMIN,
                        f"{self.who(a['by'])} {_ADMIN_ACTIONS[e.name]}{target} "
                        "without holding the admin role",
                        None,
                        a["by"],
                        e,
                    )
            actor_field = _ACTOR.get(e.name)
            if actor_field is not None and a[actor_field] not in active:
                self.add(
                    FindingKind.NOT_A_MEMBER,
                    f"{self.who(a[actor_field])} acted ({e.name}) while not an active member",
                    rid,
                    a[actor_field],
                    e,
                )
            match e.name:
                case "AdminAdded":
                    admins.add(a["account"])
                case "AdminRemoved":
                    admins.discard(a["account"])
                case "MemberAdded":
                    active.add(a["account"])
                case "MemberRemoved":
                    active.discard(a["account"])
                case "ParamsSet":
                    initial_model = bytes(a["params"]["initialModelHash"])
                case "RoundOpened":
                    if a["round"] != last_round + 1 or not last_ended:
                        why = (
                            f"after round {last_round}"
                            if a["round"] != last_round + 1
                            else f"before round {last_round} was finalized or recorded as lapsed"
                        )
                        self.add(
                            FindingKind.ROUND_OUT_OF_SEQUENCE,
                            f"round {a['round']} was opened {why}",
                            a["round"],
                            a["by"],
                            e,
                        )
                    expected = latest_model if latest_model is not None else initial_model
                    if bytes(a["baseModel"]) != expected:
                        source = (
                            "the last finalized model"
                            if latest_model is not None
                            else "the initial model of the parameters in force"
                        )
                        self.add(
                            FindingKind.WRONG_BASE_MODEL,
                            f"round {a['round']} starts from {_hex(a['baseModel'])}, "
                            f"but {source} is {_hex(expected)}",
                            a["round"],
                            a["by"],
                            e,
                        )
                    last_round, last_ended = a["round"], False
                case "RoundFinalized":
                    latest_model = bytes(a["modelHash"])
                    last_ended = last_ended or a["round"] == last_round
                case "RoundLapsed":
                    last_ended = last_ended or a["round"] == last_round

    # --- one round: roles, commitments, the aggregate, acknowledgements ---------------------

    def check_round(self, r: RoundHistory) -> None:
        _RoundCheck(self, r).run()

    def check_current(self, info: RoundInfo) -> None:
        r = self.h.rounds.get(info.round_id)
        if r is None or info.state != RoundState.LAPSED or r.lapse_reason is not None:
            return
        self.add(
            FindingKind.ROUND_LAPSED,
            f"round {info.round_id} has lapsed ({_reason(info.lapse_reason)}); derived from the "
            "contract's view now, recorded as an event when the next round opens",
            info.round_id,
        )


def _reason(reason: LapseReason) -> str:
    return reason.name.lower().replace("_", " ")


class _RoundCheck:
    """Replays one round's events in order, tracking the roles and deadlines in force."""

    def __init__(self, v: _Verifier, r: RoundHistory) -> None:
        self.v, self.r = v, r
        self.joined: list[str] = []
        self.closed = False
        self.order: list[str] = []
        self.merge_peer: str | None = None
        self.steward: str | None = None
        self.next_idx = 2
        self.attempt = 0
        self.key_deadline: int | None = None
        self.keys: dict[int, tuple[int, int]] = {}  # attempt -> (commit, merge deadline)
        self.commits: dict[int, dict[str, int]] = {}  # attempt -> account -> sample count
        self.aggregated = False
        self.eligible: set[str] = set()
        self.ack_deadline: int | None = None
        self.ack_counts: Counter[bytes] = Counter()
        self.finalized = False

    def add(self, kind: FindingKind, message: str, account: str | None, e: LedgerEvent) -> None:
        self.v.add(kind, message, self.r.round_id, account, e)

    def out_of_phase(self, e: LedgerEvent, account: str | None, why: str) -> None:
        self.add(FindingKind.OUT_OF_PHASE, why, account, e)

    def require_participant(self, e: LedgerEvent, account: str, what: str) -> bool:
        if account in self.joined and self.closed:
            return True
        self.add(
            FindingKind.NOT_PARTICIPANT,
            f"{self.v.who(account)} {what} without being a participant",
            account,
            e,
        )
        return False

    def run(self) -> None:
        handlers = {
            "Joined": self.joined_,
            "JoinClosed": self.join_closed,
            "KeyStewardReplaced": self.steward_replaced,
            "MergePeerReplaced": self.merge_peer_replaced,
            "RoundKeyPosted": self.key_posted,
            "UpdateCommitted": self.committed,
            "AggregateSubmitted": self.aggregate,
            "Acknowledged": self.acknowledged,
            "RoundFinalized": self.finalized_,
            "RoundLapsed": self.lapsed,
            "MetricsReported": self.metrics,
        }
        for e in self.r.events:
            handler = handlers.get(e.name)
            if handler is not None:
                handler(e, e.args)
        self.check_acks()

    def joined_(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        who = a["account"]
        if self.closed or e.timestamp > self.r.join_deadline or who in self.joined:
            self.out_of_phase(e, who, f"{self.v.who(who)} joined after the window closed or twice")
            return
        self.joined.append(who)

    def join_closed(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        if self.closed:
            self.out_of_phase(e, a["by"], "the join window closed twice")
            return
        self.closed = True
        self.order = list(a["order"])
        if len(self.joined) < self.r.min_peers:
            self.out_of_phase(
                e, a["by"], f"closed with {len(self.joined)} of {self.r.min_peers} needed"
            )
        expected = role_order(a["seed"], self.joined)
        if self.order != expected or self.order[:2] != [a["mergePeer"], a["keySteward"]]:
            self.add(
                FindingKind.WRONG_ORDER,
                "the role order is not the seed's shuffle of the participants "
                f"(expected {', '.join(expected)}; recorded {', '.join(self.order)}, "
                f"merge peer {a['mergePeer']}, key steward {a['keySteward']})",
                None,
                e,
            )
        chain = self.v.chain
        parent = chain.parent_hashes.get(e.block_number) if chain is not None else None
        if chain is not None and parent is not None:
            seed = round_seed(parent, chain.contract, self.r.round_id, self.joined)
            if seed != bytes(a["seed"]):
                self.add(
                    FindingKind.WRONG_SEED,
                    f"seed {_hex(a['seed'])} is not the one block {e.block_number}'s parent "
                    f"hash gives ({_hex(seed)})",
                    None,
                    e,
                )
        self.merge_peer, self.steward = a["mergePeer"], a["keySteward"]
        self.key_deadline = a["keyDeadline"]

    def _replacement(self, e: LedgerEvent, a: dict[str, Any], role: str) -> None:
        holder = self.merge_peer if role == "merge peer" else self.steward
        self.add(
            FindingKind.ROLE_REPLACED,
            f"{role} {self.v.who(a['previous'])} missed its deadline; "
            f"replaced by {self.v.who(a['next'])}",
            a["previous"],
            e,
        )
        self.require_participant(e, a["by"], f"replaced the {role}")
        expected_next = self.order[self.next_idx] if self.next_idx < len(self.order) else None
        expected_attempt = self.attempt + (1 if role == "merge peer" else 0)
        if (a["previous"], a["next"], a["attempt"]) != (holder, expected_next, expected_attempt):
            self.add(
                FindingKind.WRONG_REPLACEMENT,
                f"{role} replacement should hand the role from {self.v.who(holder)} to "
                f"{self.v.who(expected_next)} in attempt {expected_attempt}; recorded "
                f"{self.v.who(a['previous'])} -> {self.v.who(a['next'])}, attempt {a['attempt']}",
                a["next"],
                e,
            )
        self.next_idx += 1
        self.key_deadline = a["keyDeadline"]

    def steward_replaced(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        if (
            self.attempt in self.keys
            or self.key_deadline is None
            or (e.timestamp <= self.key_deadline)
        ):
            self.out_of_phase(e, a["by"], "key steward replaced before it missed its deadline")
        self._replacement(e, a, "key steward")
        self.steward = a["next"]

    def merge_peer_replaced(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        deadlines = self.keys.get(self.attempt)
        if self.aggregated or deadlines is None or e.timestamp <= deadlines[1]:
            self.out_of_phase(e, a["by"], "merge peer replaced before it missed its deadline")
        self._replacement(e, a, "merge peer")
        self.merge_peer = a["next"]
        self.attempt += 1

    def key_posted(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        who = a["keySteward"]
        if who != self.steward:
            self.add(
                FindingKind.WRONG_ROLE,
                f"round key posted by {self.v.who(who)}; the key steward in force is "
                f"{self.v.who(self.steward)}",
                who,
                e,
            )
        if (
            not self.closed
            or a["attempt"] != self.attempt
            or self.attempt in self.keys
            or (self.key_deadline is not None and e.timestamp > self.key_deadline)
        ):
            self.out_of_phase(e, who, f"round key for attempt {a['attempt']} posted out of turn")
        self.keys.setdefault(a["attempt"], (a["commitDeadline"], a["mergeDeadline"]))

    def committed(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        who = a["account"]
        if not self.require_participant(e, who, "committed an update"):
            return
        deadlines = self.keys.get(a["attempt"])
        mine = self.commits.setdefault(a["attempt"], {})
        if (
            a["attempt"] != self.attempt
            or deadlines is None
            or e.timestamp > deadlines[0]
            or self.aggregated
            or who in mine
        ):
            self.out_of_phase(
                e, who, f"{self.v.who(who)} committed outside the commit window or twice"
            )
            return
        mine[who] = a["sampleCount"]

    def aggregate(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        by = a["mergePeer"]
        if by != self.merge_peer:
            self.add(
                FindingKind.WRONG_ROLE,
                f"aggregate submitted by {self.v.who(by)}; the merge peer in force is "
                f"{self.v.who(self.merge_peer)}",
                by,
                e,
            )
        deadlines = self.keys.get(self.attempt)
        if (
            self.aggregated
            or a["attempt"] != self.attempt
            or deadlines is None
            or e.timestamp > deadlines[1]
        ):
            self.out_of_phase(e, by, "aggregate submitted outside the merge window or twice")
        self.aggregated = True
        committed = self.commits.get(a["attempt"], {})
        contributors = list(a["contributors"])
        for c in contributors:
            if c not in committed:
                self.add(
                    FindingKind.UNCOMMITTED_CONTRIBUTOR,
                    f"{self.v.who(c)} is a contributor but did not commit in attempt "
                    f"{a['attempt']} before the deadline",
                    c,
                    e,
                )
        for c in committed:
            if c not in contributors:
                self.add(
                    FindingKind.COMMITTER_LEFT_OUT,
                    f"{self.v.who(c)} committed in attempt {a['attempt']} but the merge peer "
                    "left it out of the aggregate (its update may not have arrived)",
                    c,
                    e,
                )
        if len(set(contributors)) < self.r.min_peers:
            self.add(
                FindingKind.TOO_FEW_CONTRIBUTORS,
                f"{len(set(contributors))} contributors, fewer than the {self.r.min_peers} "
                "the round needs",
                by,
                e,
            )
        total = sum(committed.get(c, 0) for c in set(contributors))
        if total != a["totalSamples"]:
            self.add(
                FindingKind.TOTAL_SAMPLES_MISMATCH,
                f"the aggregate says {a['totalSamples']} samples; its contributors committed "
                f"{total}",
                by,
                e,
            )
        # The merge peer holds no secret key, so it cannot decrypt and does not vote.
        self.eligible = ack_eligible(contributors, by)
        self.ack_deadline = a["ackDeadline"]

    def acknowledged(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        who = a["account"]
        if not self.aggregated or (
            self.ack_deadline is not None and e.timestamp > self.ack_deadline
        ):
            self.out_of_phase(e, who, f"{self.v.who(who)} acknowledged outside the window")
        if who not in self.eligible:
            self.add(
                FindingKind.ACK_NOT_ELIGIBLE,
                f"{self.v.who(who)} acknowledged a model but is not a key-holding contributor",
                who,
                e,
            )
            return
        self.ack_counts[bytes(a["modelHash"])] += 1

    def finalized_(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        votes = self.ack_counts[bytes(a["modelHash"])]
        if not self.aggregated or self.finalized or not finalizes(votes, len(self.eligible)):
            self.add(
                FindingKind.FINALIZED_WITHOUT_MAJORITY,
                f"model {_hex(a['modelHash'])} finalized with {votes} of "
                f"{len(self.eligible)} eligible acknowledgements",
                None,
                e,
            )
        self.finalized = True

    def lapsed(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        self.add(
            FindingKind.ROUND_LAPSED,
            f"lapsed: {_reason(LapseReason(a['reason']))}; the next round starts again from "
            "the same base model",
            None,
            e,
        )

    def metrics(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        if not self.finalized:
            self.out_of_phase(e, a["account"], "metrics reported before the round finalized")

    def check_acks(self) -> None:
        final = self.r.final_model
        if final is None:
            return
        for e in self.r.events:
            if e.name == "Acknowledged" and bytes(e.args["modelHash"]) != final:
                who = e.args["account"]
                self.add(
                    FindingKind.ACK_MISMATCH,
                    f"{self.v.who(who)} acknowledged {_hex(e.args['modelHash'])}, "
                    f"not the finalized {_hex(final)}",
                    who,
                    e,
                )
