"""Hand-built event logs for the verifier's unit tests.

The contracts refuse most anomalies an auditor looks for (a removed member acting, a non-admin
changing parameters, a wrong base model), so a history that contains them has to be written by
hand: this builder emits events with the same names and arguments the two contracts' events
decode to (the Consortium's, OpenZeppelin's role events among them, and the SwarmLedger's), one
per block, one second apart, with the deadlines and draw blocks the contract would set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address

from swarm.audit.history import ADMIN_ROLE, DEFAULT_ADMIN_ROLE
from swarm.audit.verify import role_order
from swarm.ledger.events import LedgerEvent
from swarm.ledger.types import LapseReason
from swarm.protocol import DRAW_DELAY, finalizes
from tests.conftest import h

WINDOW = 100
ADMIN: str = to_checksum_address("0x" + "ad" * 20)
LEDGER: str = to_checksum_address("0x" + "cc" * 20)
H: list[str] = [to_checksum_address(f"0x{i:040x}") for i in range(0x1001, 0x1007)]  # hospitals
INITIAL_MODEL = h("model-0")


def params(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "minPeers": 3,
        "joinWindow": WINDOW,
        "keyWindow": WINDOW,
        "commitWindow": WINDOW,
        "mergeWindow": WINDOW,
        "ackWindow": WINDOW,
        "ckksParamsId": 1,
        "taskId": h("task"),
        "initialModelHash": INITIAL_MODEL,
        "metricsEnabled": True,
        "maxMissedCommits": 0,
        "sitOutRounds": 0,
    }
    base.update(changes)
    return base


def bits(joined: Sequence[str], contributors: Sequence[str]) -> int:
    """The contributor bitmap over the participants' join indexes."""
    return sum(1 << joined.index(c) for c in set(contributors))


@dataclass
class EventLog:
    events: list[LedgerEvent] = field(default_factory=list)
    time: int = 1_800_000_000
    members: list[str] = field(default_factory=list)  # active, in order of admission
    versions: list[dict[str, Any]] = field(default_factory=list)  # parameter versions
    joined: dict[int, list[str]] = field(default_factory=dict)  # round -> participants
    last_block: int = 0
    round_versions: dict[int, int] = field(default_factory=dict)  # round -> its params version
    committed: dict[tuple[int, int], set[str]] = field(default_factory=dict)  # (round, attempt)
    left: dict[int, set[str]] = field(default_factory=dict)  # round -> removed while it ran
    misses: dict[str, int] = field(default_factory=dict)  # account -> missed commits in a row

    def emit(self, event: str, /, *, tx: str | None = None, **args: Any) -> LedgerEvent:
        """One event in its own block and transaction; with ``tx`` (the previous event's
        transaction), the next log of that transaction."""
        last = self.events[-1] if self.events else None
        if tx is not None and last is not None and last.tx_hash == tx:
            e = LedgerEvent(event, args, last.block_number, last.log_index + 1, tx, last.timestamp)
        else:
            self.time += 1
            self.last_block += 1
            n = self.last_block
            e = LedgerEvent(event, args, n, 0, f"0x{n:064x}", self.time)
        self.events.append(e)
        return e

    def wait(self, seconds: int) -> None:
        self.time += seconds

    @property
    def block(self) -> int:
        """The block the next event goes into."""
        return self.last_block + 1

    # --- the consortium ----------------------------------------------------------------

    def deploy(self, members: Sequence[str] = H[:4], **changes: Any) -> None:
        """The Consortium's constructor (the deployer is owner and admin), parameter version 0,
        the binding, and the hospitals' admission."""
        self.emit("RoleGranted", role=DEFAULT_ADMIN_ROLE, account=ADMIN, sender=ADMIN)
        self.emit("RoleGranted", role=ADMIN_ROLE, account=ADMIN, sender=ADMIN)
        self.set_params(**changes)
        self.emit("LedgerBound", ledger=LEDGER, by=ADMIN)
        for i, a in enumerate(members):
            self.add_member(a, f"Hospital {i}")

    def set_params(self, by: str = ADMIN, **changes: Any) -> None:
        values = params(**changes)
        self.emit("ParamsSet", version=len(self.versions), params=values, by=by)
        self.versions.append(values)

    def grant_admin(self, account: str, by: str = ADMIN) -> None:
        self.emit("RoleGranted", role=ADMIN_ROLE, account=account, sender=by)

    def revoke_admin(self, account: str, by: str = ADMIN) -> None:
        self.emit("RoleRevoked", role=ADMIN_ROLE, account=account, sender=by)

    def add_member(self, account: str, name: str, by: str = ADMIN) -> None:
        key = h(f"encryption key of {account}")
        e = self.emit(
            "MemberAdded",
            account=account,
            publicKey=b"\x01" * 64,
            encryptionKey=key,
            peerId=f"16Uiu2-{name}",
            multiaddrs=[],
            name=name,
            by=by,
        )
        self.emit("EncryptionKeySet", tx=e.tx_hash, account=account, key=key)
        self.members.append(account)

    def remove_member(self, account: str, by: str = ADMIN, round_id: int | None = None) -> None:
        """MemberRemoved; with ``round_id``, the ledger's ParticipantLeft in the same tx."""
        e = self.emit("MemberRemoved", account=account, by=by)
        if round_id is not None:
            self.emit("ParticipantLeft", tx=e.tx_hash, round=round_id, account=account)
            self.left.setdefault(round_id, set()).add(account)
        self.misses.pop(account, None)
        if account in self.members:
            self.members.remove(account)

    # --- one round, step by step ---------------------------------------------------------

    def open(self, rid: int, base: bytes, by: str = H[0]) -> None:
        version = max(0, len(self.versions) - 1)
        min_peers = self.versions[version]["minPeers"] if self.versions else 3
        self.round_versions[rid] = version
        self.emit(
            "RoundOpened",
            round=rid,
            baseModel=base,
            paramsVersion=version,
            minPeers=min_peers,
            joinDeadline=self.time + 1 + WINDOW,
            by=by,
        )

    def join(self, rid: int, account: str) -> None:
        joined = self.joined.setdefault(rid, [])
        self.emit("Joined", round=rid, account=account, index=len(joined))
        joined.append(account)

    def close(
        self,
        rid: int,
        joined: Sequence[str],
        seed: bytes | None = None,
        merge_peer: str | None = None,
        key_steward: str | None = None,
    ) -> list[str]:
        """Joined events, JoinClosed (after the join deadline unless every active member
        joined), then RolesDrawn two blocks on with the seed's roles (or those given); the
        order the seed gives."""
        for a in joined:
            self.join(rid, a)
        if set(self.members) - set(joined):
            self.wait(WINDOW + 1)
        self.emit(
            "JoinClosed",
            round=rid,
            drawBlock=self.block + DRAW_DELAY,
            keyDeadline=self.time + 1 + WINDOW,
            by=joined[-1],
        )
        self.time += 1  # a block with no event of the consortium's in it
        self.last_block += 1
        seed = seed if seed is not None else h(f"seed-{rid}")
        order = role_order(seed, self.joined[rid])
        self.emit(
            "RolesDrawn",
            round=rid,
            seed=seed,
            mergePeer=merge_peer or order[0],
            keySteward=key_steward or order[1],
        )
        return order

    def key(self, rid: int, steward: str, attempt: int = 0) -> None:
        t = self.time + 1
        self.emit(
            "RoundKeyPosted",
            round=rid,
            attempt=attempt,
            keySteward=steward,
            keyHash=h(f"key-{rid}-{attempt}"),
            commitDeadline=t + WINDOW,
            mergeDeadline=t + 2 * WINDOW,
        )

    def commit(self, rid: int, account: str, n: int = 10, attempt: int = 0) -> None:
        self.committed.setdefault((rid, attempt), set()).add(account)
        self.misses[account] = 0
        self.emit(
            "UpdateCommitted",
            round=rid,
            attempt=attempt,
            account=account,
            updateHash=h(f"update-{rid}-{attempt}-{account}"),
            sampleCount=n,
        )

    def aggregate(
        self,
        rid: int,
        merge_peer: str,
        contributors: Sequence[str],
        total: int,
        attempt: int = 0,
        missed: Sequence[tuple[str, int]] | None = None,
    ) -> LedgerEvent:
        """AggregateSubmitted, then in the same transaction what the contract records of the
        participants that did not commit in the attempt (CommitMissed, SittingOut at the
        round's maxMissedCommits), or, given ``missed``, a CommitMissed for each
        ``(account, misses in a row)`` in it and nothing else."""
        e = self.emit(
            "AggregateSubmitted",
            round=rid,
            attempt=attempt,
            mergePeer=merge_peer,
            aggregateHash=h(f"aggregate-{rid}-{attempt}"),
            contributorBits=bits(self.joined[rid], contributors),
            totalSamples=total,
            ackDeadline=self.time + 1 + WINDOW,
        )
        if missed is not None:
            for account, count in missed:
                self.miss(rid, account, count, tx=e.tx_hash)
        else:
            self.record_misses(rid, attempt, e.tx_hash)
        return e

    def record_misses(self, rid: int, attempt: int, tx: str) -> None:
        """What the contract's ``_recordMisses`` emits at the end of an attempt."""
        values = self.versions[self.round_versions.get(rid, 0)] if self.versions else params()
        done = self.committed.get((rid, attempt), set()) | self.left.get(rid, set())
        for account in self.joined.get(rid, []):
            if account in done:
                continue
            count = self.misses.get(account, 0) + 1
            self.miss(rid, account, count, tx=tx)
            limit = values["maxMissedCommits"]
            if limit and count >= limit:
                self.sit_out(account, rid + 1, rid + values["sitOutRounds"], tx=tx)
                count = 0
            self.misses[account] = count

    def miss(self, rid: int, account: str, count: int, tx: str) -> None:
        self.emit("CommitMissed", tx=tx, round=rid, account=account, consecutiveMisses=count)

    def sit_out(self, account: str, start: int, until: int, tx: str) -> None:
        self.emit("SittingOut", tx=tx, account=account, fromRound=start, untilRound=until)

    def ack(self, rid: int, account: str, model: bytes) -> None:
        self.emit("Acknowledged", round=rid, account=account, modelHash=model)

    def finalize(self, rid: int, model: bytes, acks: int, eligible: int) -> None:
        self.emit("RoundFinalized", round=rid, modelHash=model, acks=acks, eligible=eligible)

    def replace_merge_peer(self, rid: int, previous: str, nxt: str, attempt: int, by: str) -> None:
        self.emit(
            "MergePeerReplaced",
            round=rid,
            attempt=attempt,
            previous=previous,
            next=nxt,
            keyDeadline=self.time + 1 + WINDOW,
            by=by,
        )

    def lapse(self, rid: int, reason: LapseReason) -> LedgerEvent:
        return self.emit("RoundLapsed", round=rid, reason=int(reason))

    def acks_until_final(self, rid: int, voters: Sequence[str], model: bytes) -> None:
        """Each voter acknowledges ``model``; RoundFinalized after the finalizing one."""
        for i, a in enumerate(voters):
            self.ack(rid, a, model)
            if finalizes(i + 1, len(voters)) and not finalizes(i, len(voters)):
                self.finalize(rid, model, i + 1, len(voters))

    def clean_round(
        self, rid: int, base: bytes, model: bytes, joined: Sequence[str] = H[:4]
    ) -> list[str]:
        """A round as honest peers run it: everyone commits 10 samples, every voter agrees."""
        self.open(rid, base, by=joined[0])
        order = self.close(rid, joined)
        self.key(rid, order[1])
        for a in joined:
            self.commit(rid, a)
        self.aggregate(rid, order[0], joined, total=10 * len(joined))
        self.acks_until_final(rid, [a for a in joined if a != order[0]], model)
        return order
