"""Check a consortium's history against the rules of the round protocol (docs/protocol.md).

The contracts enforce these rules when they accept a transaction; the verifier checks that the
recorded history actually obeys them, from the events alone. Rebuilding the history independently
catches a contract that is not the one it claims to be, a node that serves forged or missing logs,
and the things the contracts allow but an auditor wants to see (a committer left out of the
aggregate, a member acknowledging a different model, a role holder replaced, a member that keeps
missing its commits and sits rounds out, a lapsed round).

Pure: the input is a :class:`~swarm.audit.history.ConsortiumHistory` plus, optionally, facts read
from the chain (:class:`ChainFacts`), the contract's derived view of the newest round and
checkpoint files already read (:class:`CheckpointRecord`, see ``swarm.audit.checkpoints``); the
output is a list of :class:`Finding`. Every kind of finding is a :class:`FindingKind`;
docs/auditor-guide.md says what each one means.

The events are replayed once, in chain order, so that every check sees the consortium as it was
at that moment: who held which role (OpenZeppelin's ``RoleGranted``/``RoleRevoked`` and the
owner's two-step handover), who was an active member, who sat rounds out, which parameter
version was the newest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from swarm.audit.history import (
    ConsortiumHistory,
    RoundHistory,
    decode_bits,
    role_name,
    round_of,
)
from swarm.ledger.events import LedgerEvent
from swarm.ledger.types import LapseReason, RoundInfo, RoundState
from swarm.protocol import DRAW_DELAY, ack_eligible, finalizes, role_order, round_seed


class Severity(StrEnum):
    """How bad a finding is. Only errors make ``swarm audit verify`` fail."""

    ERROR = "error"  # the history breaks a rule: it cannot be trusted as recorded
    WARNING = "warning"  # allowed by the rules, but a person should look (e.g. a dissent)
    INFO = "info"  # a notable, legitimate event (a replacement, a lapse)


class FindingKind(StrEnum):
    """What a finding is about; stable names for scripts (docs/auditor-guide.md)."""

    WRONG_BASE_MODEL = "wrong-base-model"
    ROUND_OUT_OF_SEQUENCE = "round-out-of-sequence"
    WRONG_PARAMS = "wrong-params"
    NOT_ADMIN = "not-admin"
    NOT_A_MEMBER = "not-a-member"
    NOT_PARTICIPANT = "not-participant"
    WRONG_PARTICIPANT_INDEX = "wrong-participant-index"
    JOINED_WHILE_SITTING_OUT = "joined-while-sitting-out"
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
    WRONG_STANDING = "wrong-standing"
    UNEXPLAINED_EVENT = "unexplained-event"
    CHECKPOINT_CORRUPT = "checkpoint-corrupt"
    CHECKPOINT_MISMATCH = "checkpoint-mismatch"
    COMMITTER_LEFT_OUT = "committer-left-out"
    ACK_MISMATCH = "ack-mismatch"
    COMMIT_MISSED = "commit-missed"
    CHECKPOINT_MISSING = "checkpoint-missing"
    CHECKPOINT_NOT_FINALIZED = "checkpoint-not-finalized"
    UNKNOWN_CONTRACT_CODE = "unknown-contract-code"
    ROLE_REPLACED = "role-replaced"
    ROUND_LAPSED = "round-lapsed"
    SITTING_OUT = "sitting-out"
    PARTICIPANT_LEFT = "participant-left"


SEVERITY: Mapping[FindingKind, Severity] = {
    **{k: Severity.ERROR for k in FindingKind},
    FindingKind.COMMITTER_LEFT_OUT: Severity.WARNING,
    FindingKind.ACK_MISMATCH: Severity.WARNING,
    FindingKind.COMMIT_MISSED: Severity.WARNING,
    FindingKind.CHECKPOINT_MISSING: Severity.WARNING,
    FindingKind.CHECKPOINT_NOT_FINALIZED: Severity.WARNING,
    FindingKind.UNKNOWN_CONTRACT_CODE: Severity.WARNING,
    FindingKind.ROLE_REPLACED: Severity.INFO,
    FindingKind.ROUND_LAPSED: Severity.INFO,
    FindingKind.SITTING_OUT: Severity.INFO,
    FindingKind.PARTICIPANT_LEFT: Severity.INFO,
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

    contract: str  # the SwarmLedger's address: part of every round's seed
    code_matches: bool  # both contracts' runtime code is what this version of swarm ships
    block_hashes: Mapping[int, bytes] = field(default_factory=dict)  # draw block -> its hash
    consortium: str | None = None  # the Consortium's address
    code_problem: str | None = None  # which code differs, when one does


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
            f"the code of {chain.code_problem or f'the contracts of {chain.contract}'} is not "
            "what this version of swarm ships: the rules checked here may not be the ones it "
            "enforced",
        )
    v.run()
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


def max_contributors(ckks_params_id: int) -> int:
    """Consortium.maxContributors: most participants under a CKKS parameter set (0: unknown),
    from the registry (swarm.crypto.params.PARAMETER_SETS; imported here, not at the top, since
    importing swarm.crypto loads TenSEAL and torch)."""
    from swarm.crypto.params import PARAMETER_SETS

    params = PARAMETER_SETS.get(ckks_params_id)
    return params.max_contributors if params is not None else 0


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
    "PrivacySpent": "account",
    "AggregateSubmitted": "mergePeer",
    "Acknowledged": "account",
    "MetricsReported": "account",
}
# Consortium changes only an ADMIN_ROLE holder may make.
_ADMIN_ACTIONS = {
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


@dataclass
class _Standing:
    """A member's record of missed commits, as the ledger keeps it."""

    missed: int = 0  # consecutive missed commits
    until: int = 0  # the last round it sits out


class _Verifier:
    def __init__(self, history: ConsortiumHistory, chain: ChainFacts | None) -> None:
        self.h = history
        self.chain = chain
        self.findings: list[Finding] = []
        self.names = {a: m.name for a, m in history.members.items()}
        self.unexplained = {_event_key(e) for e in history.unexplained}
        # the consortium as it stands at the event being checked
        self.roles: dict[str, set[str]] = {"admin": set(), "owner": set()}
        self.role_admin: dict[str, str] = {}  # role -> the role that administers it
        self.pending_owner: tuple[str, int] | None = None  # (new owner, accept after)
        self.granted_any = False
        self.active: set[str] = set()
        self.standing: dict[str, _Standing] = {}
        self.params: dict[int, dict[str, Any]] = {}
        self.newest_version: int | None = None
        self.removed_in_tx: dict[str, set[str]] = {}  # tx hash -> accounts removed in it
        self.initial_model: bytes | None = None
        self.latest_model: bytes | None = None  # the last finalized model
        self.last_finalized = 0
        self.last_round, self.last_ended = 0, True
        self.rounds: dict[int, _RoundCheck] = {}

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

    def standing_of(self, account: str) -> _Standing:
        return self.standing.setdefault(account, _Standing())

    def sitting_out(self, account: str, round_id: int) -> bool:
        s = self.standing.get(account)
        return s is not None and s.until >= round_id

    # --- one pass over every event, in chain order ------------------------------------------

    def run(self) -> None:
        for e in self.h.events:
            a = e.args
            rid = round_of(e)
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
            self.check_roles(e, a)
            if e.name in _ADMIN_ACTIONS and a["by"] not in self.roles["admin"]:
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
            if actor_field is not None and a[actor_field] not in self.active:
                self.add(
                    FindingKind.NOT_A_MEMBER,
                    f"{self.who(a[actor_field])} acted ({e.name}) while not an active member",
                    rid,
                    a[actor_field],
                    e,
                )
            self.consortium_event(e, a)
            if rid is not None and rid in self.rounds:
                self.rounds[rid].handle(e)
        for check in self.rounds.values():
            check.finish()

    def check_roles(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        """OpenZeppelin AccessControlDefaultAdminRules: the owner (DEFAULT_ADMIN_ROLE) grants and
        revokes the other roles; the owner role itself changes hands only by a handover the
        new owner accepts after its schedule; anyone may renounce its own role."""
        match e.name:
            case "RoleGranted" | "RoleRevoked":
                role = role_name(a["role"])
                account, sender = a["account"], a["sender"]
                granted = e.name == "RoleGranted"
                verb = "granted" if granted else "revoked"
                held = self.roles.setdefault(role, set())
                if role == "owner":
                    constructor = granted and not self.granted_any and account == sender
                    pending = self.pending_owner
                    handover = (
                        pending is not None
                        and sender == pending[0]
                        and e.timestamp > pending[1]
                        and (account == sender if granted else True)
                    )
                    renounced = not granted and account == sender
                    if not (constructor or handover or renounced):
                        self.add(
                            FindingKind.NOT_ADMIN,
                            f"{self.who(sender)} {verb} the owner role "
                            f"{'to' if granted else 'of'} {self.who(account)} outside an "
                            "accepted two-step handover",
                            None,
                            sender,
                            e,
                        )
                    if granted:
                        self.pending_owner = None
                else:
                    admin_role = self.role_admin.get(role, "owner")
                    renounced = not granted and account == sender
                    if not renounced and sender not in self.roles.get(admin_role, set()):
                        self.add(
                            FindingKind.NOT_ADMIN,
                            f"{self.who(sender)} {verb} the {role} role "
                            f"{'to' if granted else 'of'} {self.who(account)} without holding "
                            f"the {admin_role} role",
                            None,
                            sender,
                            e,
                        )
                (held.add if granted else held.discard)(account)
                self.granted_any = self.granted_any or granted
            case "RoleAdminChanged":
                self.role_admin[role_name(a["role"])] = role_name(a["newAdminRole"])
            case "DefaultAdminTransferScheduled":
                self.pending_owner = (a["newAdmin"], int(a["acceptSchedule"]))
            case "DefaultAdminTransferCanceled":
                self.pending_owner = None
            case "LedgerBound":
                if a["by"] not in self.roles["owner"]:
                    self.add(
                        FindingKind.NOT_ADMIN,
                        f"{self.who(a['by'])} bound the ledger {a['ledger']} without holding "
                        "the owner role",
                        None,
                        a["by"],
                        e,
                    )
                chain = self.chain
                if chain is not None and a["ledger"].lower() != chain.contract.lower():
                    self.add(
                        FindingKind.UNEXPLAINED_EVENT,
                        f"the consortium is bound to {a['ledger']}, not to the audited ledger "
                        f"{chain.contract}",
                        None,
                        a["by"],
                        e,
                    )

    def consortium_event(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        match e.name:
            case "MemberAdded":
                self.active.add(a["account"])
            case "MemberRemoved":
                self.active.discard(a["account"])
                self.standing.pop(a["account"], None)  # the ledger forgets its standing
                self.removed_in_tx.setdefault(e.tx_hash, set()).add(a["account"])
            case "ParamsSet":
                version = int(a.get("version", len(self.params)))
                self.params[version] = dict(a["params"])
                self.newest_version = version
                self.initial_model = bytes(a["params"]["initialModelHash"])
            case "RoundOpened":
                self.round_opened(e, a)
            case "RoundFinalized":
                self.latest_model = bytes(a["modelHash"])
                self.last_finalized = a["round"]
                self.last_ended = self.last_ended or a["round"] == self.last_round
            case "RoundLapsed":
                self.last_ended = self.last_ended or a["round"] == self.last_round

    def round_opened(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        rid = a["round"]
        if rid != self.last_round + 1 or not self.last_ended:
            why = (
                f"after round {self.last_round}"
                if rid != self.last_round + 1
                else f"before round {self.last_round} was finalized or recorded as lapsed"
            )
            self.add(FindingKind.ROUND_OUT_OF_SEQUENCE, f"round {rid} was opened {why}", rid,
                     a["by"], e)  # fmt: skip
        expected = self.latest_model if self.latest_model is not None else self.initial_model
        if bytes(a["baseModel"]) != expected:
            source = (
                "the last finalized model"
                if self.latest_model is not None
                else "the initial model of the newest parameters"
            )
            self.add(
                FindingKind.WRONG_BASE_MODEL,
                f"round {rid} starts from {_hex(a['baseModel'])}, but {source} is {_hex(expected)}",
                rid,
                a["by"],
                e,
            )
        version = a.get("paramsVersion")
        if version is not None and self.newest_version is not None:
            values = self.params.get(version)
            if version != self.newest_version:
                self.add(
                    FindingKind.WRONG_PARAMS,
                    f"round {rid} opened with parameter version {version}; the newest was "
                    f"{self.newest_version}",
                    rid,
                    a["by"],
                    e,
                )
            elif values is not None and values.get("minPeers") != a["minPeers"]:
                self.add(
                    FindingKind.WRONG_PARAMS,
                    f"round {rid} needs {a['minPeers']} peers; its parameter version {version} "
                    f"says {values.get('minPeers')}",
                    rid,
                    a["by"],
                    e,
                )
        self.last_round, self.last_ended = rid, False
        r = self.h.rounds[rid]
        params = self.params.get(version) if version is not None else None
        self.rounds[rid] = _RoundCheck(self, r, params or {})

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

    def __init__(self, v: _Verifier, r: RoundHistory, params: Mapping[str, Any]) -> None:
        self.v, self.r, self.params = v, r, params
        self.rid = r.round_id
        self.joined: list[str] = []
        self.left: set[str] = set()
        self.closed = False
        self.draw_block: int | None = None
        self.drawn = False
        self.order: list[str] = []
        self.merge_peer: str | None = None
        self.steward: str | None = None
        self.next_pos = 2
        self.attempt = 0
        self.key_deadline: int | None = None
        self.keys: dict[int, tuple[int, int]] = {}  # attempt -> (commit, merge deadline)
        self.commits: dict[int, dict[str, int]] = {}  # attempt -> account -> sample count
        self.aggregated = False
        self.contributors: list[str] = []
        self.ack_deadline: int | None = None
        self.ack_counts: Counter[bytes] = Counter()
        self.acked: set[str] = set()
        self.finalized = False
        self.ended = False
        # missed commits the ledger must record: tx hash -> (accounts, the event that ended
        # the attempt); and sit-outs a miss made due: account -> (from, until, the miss)
        self.due_misses: dict[str, tuple[set[str], LedgerEvent]] = {}
        self.due_sit_outs: dict[str, tuple[int, int, LedgerEvent]] = {}

    def add(self, kind: FindingKind, message: str, account: str | None, e: LedgerEvent) -> None:
        self.v.add(kind, message, self.rid, account, e)

    def out_of_phase(self, e: LedgerEvent, account: str | None, why: str) -> None:
        self.add(FindingKind.OUT_OF_PHASE, why, account, e)

    def in_round(self, account: str) -> bool:
        """A participant that did not leave."""
        return account in self.joined and account not in self.left

    def require_participant(self, e: LedgerEvent, account: str, what: str) -> bool:
        if self.in_round(account) and self.closed:
            return True
        why = "without being a participant"
        if account in self.left:
            why = "after leaving the consortium"
        self.add(FindingKind.NOT_PARTICIPANT, f"{self.v.who(account)} {what} {why}", account, e)
        return False

    def handle(self, e: LedgerEvent) -> None:
        handler = {
            "Joined": self.joined_,
            "JoinClosed": self.join_closed,
            "RolesDrawn": self.roles_drawn,
            "KeyStewardReplaced": self.steward_replaced,
            "MergePeerReplaced": self.merge_peer_replaced,
            "RoundKeyPosted": self.key_posted,
            "UpdateCommitted": self.committed,
            "AggregateSubmitted": self.aggregate,
            "CommitMissed": self.commit_missed,
            "SittingOut": self.sitting_out,
            "ParticipantLeft": self.participant_left,
            "Acknowledged": self.acknowledged,
            "RoundFinalized": self.finalized_,
            "RoundLapsed": self.lapsed,
            "MetricsReported": self.metrics,
        }.get(e.name)
        if handler is not None:
            handler(e, e.args)

    # --- joining and the draw ---------------------------------------------------------------

    def joined_(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        who = a["account"]
        if self.closed or e.timestamp > self.r.join_deadline or who in self.joined:
            self.out_of_phase(e, who, f"{self.v.who(who)} joined after the window closed or twice")
            return
        if self.v.sitting_out(who, self.rid):
            until = self.v.standing_of(who).until
            self.add(
                FindingKind.JOINED_WHILE_SITTING_OUT,
                f"{self.v.who(who)} joined round {self.rid} while it sits out until round "
                f"{until} (it missed too many commits in a row)",
                who,
                e,
            )
        cap = max_contributors(int(self.params.get("ckksParamsId", 1)))
        if cap and len(self.joined) >= cap:
            self.out_of_phase(e, who, f"{self.v.who(who)} joined a full round ({cap} joined)")
        index = a.get("index", len(self.joined))
        if index != len(self.joined):
            self.add(
                FindingKind.WRONG_PARTICIPANT_INDEX,
                f"{self.v.who(who)} joined as participant {index}, but {len(self.joined)} had "
                "joined before it: the round's bitmaps cannot be read",
                who,
                e,
            )
        self.joined.append(who)

    def join_closed(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        if self.closed:
            self.out_of_phase(e, a["by"], "the join window closed twice")
            return
        self.closed = True
        staying = [p for p in self.joined if p not in self.left]
        if len(staying) < self.r.min_peers:
            self.out_of_phase(
                e, a["by"], f"closed with {len(staying)} of {self.r.min_peers} needed"
            )
        elif e.timestamp <= self.r.join_deadline:
            waiting = sorted(
                m for m in self.v.active if m not in staying and not self.v.sitting_out(m, self.rid)
            )
            if waiting:
                self.out_of_phase(
                    e,
                    a["by"],
                    "the join window closed before its deadline while "
                    + ", ".join(self.v.who(m) for m in waiting)
                    + " had not joined",
                )
        self.draw_block = int(a["drawBlock"])
        if self.draw_block != e.block_number + DRAW_DELAY:
            self.add(
                FindingKind.WRONG_SEED,
                f"the roles are to be drawn from block {self.draw_block}; the window closed in "
                f"block {e.block_number}, so it must be block {e.block_number + DRAW_DELAY}",
                None,
                e,
            )
        self.key_deadline = a["keyDeadline"]

    def roles_drawn(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        if (
            not self.closed
            or self.drawn
            or (self.draw_block is not None and e.block_number <= self.draw_block)
        ):
            self.out_of_phase(
                e, None, "roles drawn before the draw block was mined, before the close, or twice"
            )
        self.drawn = True
        seed = bytes(a["seed"])
        self.order = role_order(seed, self.joined)
        if len(self.order) >= 2 and [a["mergePeer"], a["keySteward"]] != self.order[:2]:
            self.add(
                FindingKind.WRONG_ORDER,
                "the roles are not the seed's draw over the participants (expected merge peer "
                f"{self.order[0]}, key steward {self.order[1]}; recorded {a['mergePeer']}, "
                f"{a['keySteward']})",
                None,
                e,
            )
        chain = self.v.chain
        block_hash = (
            chain.block_hashes.get(self.draw_block)
            if chain is not None and self.draw_block is not None
            else None
        )
        if chain is not None and block_hash is not None:
            expected = round_seed(block_hash, chain.contract, self.rid)
            if expected != seed:
                self.add(
                    FindingKind.WRONG_SEED,
                    f"seed {_hex(seed)} is not the one the hash of draw block {self.draw_block} "
                    f"gives ({_hex(expected)})",
                    None,
                    e,
                )
        self.merge_peer, self.steward = a["mergePeer"], a["keySteward"]

    # --- roles ------------------------------------------------------------------------------

    def _next_fallback(self) -> tuple[str | None, int]:
        """The first participant from position next_pos on that did not leave."""
        pos = self.next_pos
        while pos < len(self.order) and self.order[pos] in self.left:
            pos += 1
        return (self.order[pos], pos) if pos < len(self.order) else (None, pos)

    def _replacement(self, e: LedgerEvent, a: dict[str, Any], role: str) -> None:
        holder = self.merge_peer if role == "merge peer" else self.steward
        why = "left the consortium" if a["previous"] in self.left else "missed its deadline"
        self.add(
            FindingKind.ROLE_REPLACED,
            f"{role} {self.v.who(a['previous'])} {why}; replaced by {self.v.who(a['next'])}",
            a["previous"],
            e,
        )
        self.require_participant(e, a["by"], f"replaced the {role}")
        expected_next, pos = self._next_fallback()
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
        self.next_pos = pos + 1
        self.key_deadline = a["keyDeadline"]

    def steward_replaced(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        left = self.steward in self.left
        if (
            not self.drawn
            or self.attempt in self.keys
            or self.key_deadline is None
            or (e.timestamp <= self.key_deadline and not left)
        ):
            self.out_of_phase(e, a["by"], "key steward replaced before it missed its deadline")
        self._replacement(e, a, "key steward")
        self.steward = a["next"]

    def merge_peer_replaced(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        deadlines = self.keys.get(self.attempt)
        left = self.merge_peer in self.left
        missed = deadlines is not None and e.timestamp > deadlines[1]
        if not self.drawn or self.aggregated or not (missed or left):
            self.out_of_phase(e, a["by"], "merge peer replaced before it missed its deadline")
        self._replacement(e, a, "merge peer")
        self.merge_peer = a["next"]
        self.attempt += 1

    def key_posted(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        who = a["keySteward"]
        if not self.drawn:
            self.out_of_phase(e, who, "round key posted before the roles were drawn")
        elif who != self.steward:
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

    # --- commitments, the aggregate, missed commits -----------------------------------------

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
        self.v.standing_of(who).missed = 0  # a commit ends a run of misses

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
        bits = int(a["contributorBits"])
        committed = self.commits.get(a["attempt"], {})
        contributors = decode_bits(self.joined, bits)
        if bits >> len(self.joined):
            self.add(
                FindingKind.UNCOMMITTED_CONTRIBUTOR,
                f"the contributor bitmap {bits:#x} names indexes past the {len(self.joined)} "
                "participants",
                by,
                e,
            )
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
        if len(contributors) < self.r.min_peers:
            self.add(
                FindingKind.TOO_FEW_CONTRIBUTORS,
                f"{len(contributors)} contributors, fewer than the {self.r.min_peers} "
                "the round needs",
                by,
                e,
            )
        total = sum(committed.get(c, 0) for c in contributors)
        if total != a["totalSamples"]:
            self.add(
                FindingKind.TOTAL_SAMPLES_MISMATCH,
                f"the aggregate says {a['totalSamples']} samples; its contributors committed "
                f"{total}",
                by,
                e,
            )
        self.contributors = contributors
        self.ack_deadline = a["ackDeadline"]
        self.expect_misses(e, a["attempt"])

    def expect_misses(self, e: LedgerEvent, attempt: int) -> None:
        """The attempt ended (aggregate, or a too-few-committed lapse): every participant that
        did not commit in it and did not leave must get a CommitMissed in the same transaction."""
        committed = self.commits.get(attempt, {})
        due = {p for p in self.joined if p not in committed and p not in self.left}
        self.due_misses[e.tx_hash] = (due, e)

    def commit_missed(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        who, count = a["account"], int(a["consecutiveMisses"])
        due = self.due_misses.get(e.tx_hash)
        if due is None or who not in due[0]:
            self.add(
                FindingKind.WRONG_STANDING,
                f"a missed commit is recorded for {self.v.who(who)}, which "
                + ("committed in the final attempt or " if who in self.joined else "")
                + "was not a participant that missed it (or not when the attempt ended)",
                who,
                e,
            )
        else:
            due[0].discard(who)
        standing = self.v.standing_of(who)
        if count != standing.missed + 1:
            self.add(
                FindingKind.WRONG_STANDING,
                f"{self.v.who(who)}'s missed commit is recorded as {count} in a row; the history "
                f"counts {standing.missed + 1}",
                who,
                e,
            )
        limit = int(self.params.get("maxMissedCommits", 0))
        self.add(
            FindingKind.COMMIT_MISSED,
            f"{self.v.who(who)} joined round {self.rid} but did not commit in its final attempt "
            f"({count} in a row" + (f"; it sits out at {limit})" if limit else ")"),
            who,
            e,
        )
        if limit and count >= limit:
            until = self.rid + int(self.params.get("sitOutRounds", 0))
            self.due_sit_outs[who] = (self.rid + 1, until, e)
            standing.missed = 0
        else:
            standing.missed = count

    def sitting_out(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        who, start, until = a["account"], int(a["fromRound"]), int(a["untilRound"])
        due = self.due_sit_outs.pop(who, None)
        if due is None or (due[0], due[1]) != (start, until):
            expected = (
                f"rounds {due[0]} to {due[1]}"
                if due is not None
                else "none (it had not reached the round's maxMissedCommits)"
            )
            self.add(
                FindingKind.WRONG_STANDING,
                f"{self.v.who(who)} is to sit out rounds {start} to {until}; the history and the "
                f"round's parameters give {expected}",
                who,
                e,
            )
        self.v.standing_of(who).until = until
        self.add(
            FindingKind.SITTING_OUT,
            f"{self.v.who(who)} missed too many commits in a row: it sits out rounds {start} "
            f"to {until} (it may not join them)",
            who,
            e,
        )

    def participant_left(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        who = a["account"]
        removed = who in self.v.removed_in_tx.get(e.tx_hash, set())
        if who not in self.joined or who in self.left:
            self.add(
                FindingKind.NOT_PARTICIPANT,
                f"{self.v.who(who)} left round {self.rid} without being a participant",
                who,
                e,
            )
        elif not removed or self.ended:
            self.out_of_phase(
                e,
                who,
                f"{self.v.who(who)} left round {self.rid} without being removed from the "
                "consortium in the same transaction, or after the round ended",
            )
        self.left.add(who)
        self.add(
            FindingKind.PARTICIPANT_LEFT,
            f"{self.v.who(who)} was removed from the consortium while round {self.rid} ran: it "
            "no longer counts for its phases or its acknowledgement majority",
            who,
            e,
        )

    # --- acknowledgements and the end -------------------------------------------------------

    def eligible(self) -> set[str]:
        """Who may still acknowledge, or already did: the key-holding contributors (the merge
        peer holds no secret key), less those that left before acknowledging."""
        return ack_eligible(self.contributors, self.merge_peer) - (self.left - self.acked)

    def acknowledged(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        who = a["account"]
        if not self.aggregated or (
            self.ack_deadline is not None and e.timestamp > self.ack_deadline
        ):
            self.out_of_phase(e, who, f"{self.v.who(who)} acknowledged outside the window")
        if who not in self.eligible() or who in self.acked:
            self.add(
                FindingKind.ACK_NOT_ELIGIBLE,
                f"{self.v.who(who)} acknowledged a model but is not a key-holding contributor "
                "(or acknowledged twice, or left the consortium)",
                who,
                e,
            )
            return
        self.acked.add(who)
        self.ack_counts[bytes(a["modelHash"])] += 1

    def finalized_(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        votes = self.ack_counts[bytes(a["modelHash"])]
        eligible = len(self.eligible())
        if not self.aggregated or self.finalized or not finalizes(votes, eligible):
            self.add(
                FindingKind.FINALIZED_WITHOUT_MAJORITY,
                f"model {_hex(a['modelHash'])} finalized with {votes} of {eligible} eligible "
                "acknowledgements (a strict majority, and at least 2, is needed)",
                None,
                e,
            )
        self.finalized = self.ended = True

    def lapsed(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        reason = LapseReason(a["reason"])
        self.add(
            FindingKind.ROUND_LAPSED,
            f"lapsed: {_reason(reason)}; the next round starts again from the same base model",
            None,
            e,
        )
        self.ended = True
        if reason == LapseReason.TOO_FEW_COMMITTED:
            self.expect_misses(e, self.attempt)

    def metrics(self, e: LedgerEvent, a: dict[str, Any]) -> None:
        who = a["account"]
        if not self.finalized or self.v.last_finalized != self.rid:
            self.out_of_phase(
                e, who, "metrics reported for a round that is not the newest finalized one"
            )
        elif not self.params.get("metricsEnabled", True):
            self.out_of_phase(
                e, who, "metrics reported though the round's parameters do not collect them"
            )
        if who not in self.joined or who in self.left:
            self.add(
                FindingKind.NOT_PARTICIPANT,
                f"{self.v.who(who)} reported metrics without being a participant",
                who,
                e,
            )

    def finish(self) -> None:
        for due, e in self.due_misses.values():
            for who in sorted(due):
                self.add(
                    FindingKind.WRONG_STANDING,
                    f"{self.v.who(who)} did not commit in the round's final attempt, but no "
                    "CommitMissed records it",
                    who,
                    e,
                )
        for who, (start, until, e) in self.due_sit_outs.items():
            self.add(
                FindingKind.WRONG_STANDING,
                f"{self.v.who(who)} reached the round's maxMissedCommits, but no SittingOut "
                f"(rounds {start} to {until}) records it",
                who,
                e,
            )
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
