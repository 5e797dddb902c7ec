"""Hand-built event logs for the verifier's unit tests.

The contract refuses most anomalies an auditor looks for (a removed member acting, a non-admin
changing parameters, a wrong base model), so a history that contains them has to be written by
hand: this builder emits events with the same names and arguments the contract's events decode
to, one per block, one second apart, with the deadlines the contract would set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address

from swarm.audit.verify import role_order
from swarm.ledger.events import LedgerEvent
from swarm.ledger.types import LapseReason
from tests.conftest import h

WINDOW = 100
ADMIN: str = to_checksum_address("0x" + "ad" * 20)
H: list[str] = [to_checksum_address(f"0x{i:040x}") for i in range(0x1001, 0x1007)]  # hospitals
INITIAL_MODEL = h("model-0")


def params(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "minPeers": 2,
        "joinWindow": WINDOW,
        "keyWindow": WINDOW,
        "commitWindow": WINDOW,
        "mergeWindow": WINDOW,
        "ackWindow": WINDOW,
        "ckksParamsId": 1,
        "taskId": h("task"),
        "initialModelHash": INITIAL_MODEL,
        "metricsEnabled": True,
    }
    base.update(changes)
    return base


@dataclass
class EventLog:
    events: list[LedgerEvent] = field(default_factory=list)
    time: int = 1_800_000_000

    def emit(self, event: str, /, **args: Any) -> LedgerEvent:
        self.time += 1
        e = LedgerEvent(
            event, args, len(self.events) + 1, 0, f"0x{len(self.events):064x}", self.time
        )
        self.events.append(e)
        return e

    def wait(self, seconds: int) -> None:
        self.time += seconds

    # --- membership --------------------------------------------------------------------

    def deploy(self, members: Sequence[str] = H[:4]) -> None:
        self.emit("AdminAdded", account=ADMIN, by=ADMIN)
        self.emit("ParamsSet", params=params(), by=ADMIN)
        for i, a in enumerate(members):
            self.add_member(a, f"Hospital {i}")

    def add_member(self, account: str, name: str, by: str = ADMIN) -> None:
        self.emit(
            "MemberAdded",
            account=account,
            publicKey=b"\x01" * 64,
            peerId=f"16Uiu2-{name}",
            multiaddrs=[],
            name=name,
            by=by,
        )

    # --- one round, step by step ---------------------------------------------------------

    def open(self, rid: int, base: bytes, by: str = H[0]) -> None:
        self.emit(
            "RoundOpened",
            round=rid,
            baseModel=base,
            minPeers=2,
            joinDeadline=self.time + 1 + WINDOW,
            by=by,
        )

    def close(
        self,
        rid: int,
        joined: Sequence[str],
        seed: bytes | None = None,
        order: Sequence[str] | None = None,
    ) -> list[str]:
        """Joined events, then JoinClosed with the seed's order (or ``order`` if given)."""
        for a in joined:
            self.emit("Joined", round=rid, account=a)
        seed = seed if seed is not None else h(f"seed-{rid}")
        order = list(order) if order is not None else role_order(seed, joined)
        self.emit(
            "JoinClosed",
            round=rid,
            seed=seed,
            order=order,
            mergePeer=order[0],
            keySteward=order[1],
            keyDeadline=self.time + 1 + WINDOW,
            by=joined[-1],
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
    ) -> None:
        self.emit(
            "AggregateSubmitted",
            round=rid,
            attempt=attempt,
            mergePeer=merge_peer,
            aggregateHash=h(f"aggregate-{rid}-{attempt}"),
            contributors=sorted(contributors, key=lambda a: int(a, 16)),
            totalSamples=total,
            ackDeadline=self.time + 1 + WINDOW,
        )

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

    def lapse(self, rid: int, reason: LapseReason) -> None:
        self.emit("RoundLapsed", round=rid, reason=int(reason))

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
        voters = [a for a in joined if a != order[0]]
        for i, a in enumerate(voters):
            self.ack(rid, a, model)
            if i == len(voters) // 2:  # the first strict majority
                self.finalize(rid, model, i + 1, len(voters))
        return order
