"""The ledger client: typed reads and signed writes against the SwarmLedger contract.

Transactions are signed locally with the caller's :class:`~swarm.identity.Identity`
(eth-account, coincurve) and sent raw, so the node never holds a key. Every revert comes back as
one of swarm's typed errors (``swarm.ledger.revert``), whichever backend raised it, and an
unreachable node as :class:`~swarm.errors.ChainUnavailableError`.

The client is blocking (web3 is); the trio peer calls it from worker threads. A lock serializes
one identity's transactions so nonces never collide inside a process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from eth_account import Account
from eth_utils import to_checksum_address
from web3.contract import Contract
from web3.exceptions import TimeExhausted, Web3Exception
from web3.types import BlockIdentifier

from swarm.errors import (
    ChainUnavailableError,
    ConfigError,
    ContractNotFoundError,
    LedgerError,
    TransactionError,
)
from swarm.identity import Identity, address_of_public_key, peer_id_of_public_key
from swarm.ledger.artifacts import load_artifact
from swarm.ledger.chain import Chain
from swarm.ledger.events import LedgerEvent, decode_logs
from swarm.ledger.revert import decoded_reverts
from swarm.ledger.types import LapseReason, Member, Params, RoundInfo, RoundState

log = logging.getLogger(__name__)

T = TypeVar("T")
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO_HASH = b"\0" * 32


@dataclass(frozen=True)
class TxResult:
    """What a mined transaction cost, for logs and benchmarks."""

    tx_hash: str
    block_number: int
    gas_used: int


@contextmanager
def _ledger_call(what: str) -> Iterator[None]:
    """Typed errors for reverts and for a node that is gone (e.g. a chain that restarted)."""
    try:
        with decoded_reverts():
            yield
    except (requests.ConnectionError, requests.Timeout, ConnectionError) as exc:
        if isinstance(exc, ChainUnavailableError):
            raise
        raise ChainUnavailableError(f"{what}: the chain cannot be reached ({exc})") from exc
    except Web3Exception as exc:  # the node answered with an error that is not a revert
        raise LedgerError(f"{what}: the chain refused the request ({exc})") from exc


class LedgerClient:
    """One contract on one chain, optionally acting as one identity."""

    def __init__(self, chain: Chain, address: str, identity: Identity | None = None) -> None:
        self.chain = chain
        self.w3 = chain.w3
        self.address = to_checksum_address(address)
        self.identity = identity
        self._lock = threading.Lock()
        artifact = load_artifact()
        with _ledger_call("reading the contract's code"):
            code = self.w3.eth.get_code(self.address)
        if not code:
            raise ContractNotFoundError(
                f"no contract at {self.address} on {chain.url} "
                "(wrong address, or a development chain that was restarted without its state)"
            )
        self.contract: Contract = self.w3.eth.contract(address=self.address, abi=artifact.abi)

    # --- deployment ----------------------------------------------------------------------

    @classmethod
    def deploy(cls, chain: Chain, identity: Identity, params: Params) -> LedgerClient:
        """Deploy a new consortium contract; ``identity`` becomes its first admin."""
        artifact = load_artifact()
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        with _ledger_call("deploying the contract"):
            tx = factory.constructor(params_to_tuple(params)).build_transaction(
                {"from": identity.address, "nonce": _pending_nonce(chain, identity.address)}
            )
            receipt = _sign_send_wait(chain, identity, tx)
        address = receipt["contractAddress"]
        log.info("deployed SwarmLedger at %s (gas %d)", address, receipt["gasUsed"])
        return cls(chain, address, identity)

    def as_identity(self, identity: Identity) -> LedgerClient:
        """The same contract, acting as another identity."""
        return LedgerClient(self.chain, self.address, identity)

    # --- reads ---------------------------------------------------------------------------

    def _read(self, fn: Callable[[], T], what: str) -> T:
        with _ledger_call(what):
            return fn()

    def is_admin(self, address: str) -> bool:
        return bool(self._read(lambda: self.contract.functions.isAdmin(address).call(), "isAdmin"))

    def is_member(self, address: str) -> bool:
        return bool(
            self._read(lambda: self.contract.functions.isMember(address).call(), "isMember")
        )

    def member(self, address: str) -> Member | None:
        """The record of ``address``, or None if it was never admitted."""
        raw = self._read(lambda: self.contract.functions.getMember(address).call(), "getMember")
        public_key, peer_id, multiaddrs, name, added_at, active = raw
        if added_at == 0:
            return None
        return Member(
            address=to_checksum_address(address),
            public_key=bytes(public_key),
            peer_id=peer_id,
            multiaddrs=tuple(multiaddrs),
            name=name,
            active=bool(active),
            added_at=int(added_at),
        )

    def members(self, *, include_removed: bool = True) -> list[Member]:
        """Every member in order of admission (removed ones too unless asked not to)."""
        addresses = self._read(
            lambda: self.contract.functions.memberAddresses().call(), "memberAddresses"
        )
        found = [m for m in (self.member(a) for a in addresses) if m is not None]
        return [m for m in found if include_removed or m.active]

    def active_members(self) -> list[Member]:
        return self.members(include_removed=False)

    def params(self) -> Params:
        raw = self._read(lambda: self.contract.functions.params().call(), "params")
        return params_from_tuple(raw)

    def current_round(self) -> int:
        return int(self._read(lambda: self.contract.functions.currentRound().call(), "round"))

    def last_finalized_round(self) -> int:
        return int(
            self._read(lambda: self.contract.functions.lastFinalizedRound().call(), "finalized")
        )

    def latest_model(self) -> bytes:
        return bytes(self._read(lambda: self.contract.functions.latestModel().call(), "model"))

    def round(self, round_id: int) -> RoundInfo:
        raw = self._read(lambda: self.contract.functions.getRound(round_id).call(), "getRound")
        return _round_from_tuple(raw)

    def commitment(self, round_id: int, attempt: int, address: str) -> tuple[bytes, int]:
        """(sha256 of the update, sample count) that ``address`` committed; zeros if none."""
        update_hash, samples = self._read(
            lambda: self.contract.functions.getCommitment(round_id, attempt, address).call(),
            "getCommitment",
        )
        return bytes(update_hash), int(samples)

    def ack(self, round_id: int, address: str) -> bytes:
        return bytes(
            self._read(lambda: self.contract.functions.getAck(round_id, address).call(), "getAck")
        )

    def has_joined(self, round_id: int, address: str) -> bool:
        return bool(
            self._read(
                lambda: self.contract.functions.hasJoined(round_id, address).call(), "hasJoined"
            )
        )

    def events(
        self, from_block: int = 0, to_block: BlockIdentifier = "latest"
    ) -> list[LedgerEvent]:
        """Every event the contract emitted in the block range, in chain order."""
        with _ledger_call("reading events"):
            logs = self.w3.eth.get_logs(
                {"address": self.address, "fromBlock": from_block, "toBlock": to_block}
            )
            return decode_logs(self.w3, self.contract, logs)

    # --- writes: membership and parameters -------------------------------------------------

    def add_member(
        self,
        account: str,
        public_key: bytes,
        name: str,
        multiaddrs: Sequence[str] = (),
        peer_id: str | None = None,
    ) -> TxResult:
        """Admit a hospital. The PeerID defaults to (and must equal) the one of its public key."""
        public_key = _raw_public_key(public_key)
        derived_peer_id = peer_id_of_public_key(public_key)
        if peer_id is not None and peer_id != derived_peer_id:
            raise ConfigError(
                f"PeerID {peer_id} is not the PeerID of that public key ({derived_peer_id})"
            )
        return self._send(
            self.contract.functions.addMember(
                to_checksum_address(account), public_key, derived_peer_id, list(multiaddrs), name
            )
        )

    def remove_member(self, account: str) -> TxResult:
        return self._send(self.contract.functions.removeMember(to_checksum_address(account)))

    def add_admin(self, account: str) -> TxResult:
        return self._send(self.contract.functions.addAdmin(to_checksum_address(account)))

    def remove_admin(self, account: str) -> TxResult:
        return self._send(self.contract.functions.removeAdmin(to_checksum_address(account)))

    def set_params(self, params: Params) -> TxResult:
        return self._send(self.contract.functions.setParams(params_to_tuple(params)))

    def update_multiaddrs(self, multiaddrs: Sequence[str]) -> TxResult:
        return self._send(self.contract.functions.updateMultiaddrs(list(multiaddrs)))

    # --- writes: the round protocol --------------------------------------------------------

    def open_round(self, base_model: bytes) -> int:
        """Open the next round from ``base_model`` (must be ``latest_model()``); its id."""
        self._send(self.contract.functions.openRound(_hash32(base_model, "base_model")))
        return self.current_round()

    def join(self, round_id: int) -> TxResult:
        return self._send(self.contract.functions.join(round_id))

    def close_join(self, round_id: int) -> TxResult:
        return self._send(self.contract.functions.closeJoin(round_id))

    def post_round_key(self, round_id: int, key_hash: bytes) -> TxResult:
        return self._send(
            self.contract.functions.postRoundKey(round_id, _hash32(key_hash, "key_hash"))
        )

    def replace_key_steward(self, round_id: int) -> TxResult:
        return self._send(self.contract.functions.replaceKeySteward(round_id))

    def commit_update(self, round_id: int, update_hash: bytes, sample_count: int) -> TxResult:
        return self._send(
            self.contract.functions.commitUpdate(
                round_id, _hash32(update_hash, "update_hash"), int(sample_count)
            )
        )

    def submit_aggregate(
        self, round_id: int, aggregate_hash: bytes, contributors: Sequence[str]
    ) -> TxResult:
        """Submit the aggregate; contributors are sorted as the contract requires."""
        ordered = sorted({to_checksum_address(c) for c in contributors}, key=lambda a: int(a, 16))
        return self._send(
            self.contract.functions.submitAggregate(
                round_id, _hash32(aggregate_hash, "aggregate_hash"), ordered
            )
        )

    def replace_merge_peer(self, round_id: int) -> TxResult:
        return self._send(self.contract.functions.replaceMergePeer(round_id))

    def acknowledge(self, round_id: int, model_hash: bytes) -> TxResult:
        return self._send(
            self.contract.functions.acknowledge(round_id, _hash32(model_hash, "model_hash"))
        )

    def report_metrics(
        self, round_id: int, test_samples: int, accuracy: float, auc: float, loss: float
    ) -> TxResult:
        """Report test metrics of a finalized model (stored as parts per million)."""
        return self._send(
            self.contract.functions.reportMetrics(
                round_id,
                int(test_samples),
                _ppm(accuracy),
                _ppm(auc),
                max(0, round(loss * 1_000_000)),
            )
        )

    # --- sending ---------------------------------------------------------------------------

    def _send(self, fn: Any) -> TxResult:
        if self.identity is None:
            raise ConfigError("this ledger client is read-only: it was given no key")
        identity = self.identity
        what = getattr(fn, "fn_name", "transaction")
        with self._lock, _ledger_call(what):
            tx = fn.build_transaction(
                {"from": identity.address, "nonce": _pending_nonce(self.chain, identity.address)}
            )
            receipt = _sign_send_wait(self.chain, identity, tx)
        result = TxResult(
            tx_hash=receipt["transactionHash"].to_0x_hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
        )
        log.debug("%s by %s: gas %d", what, identity.address, result.gas_used)
        return result


def _pending_nonce(chain: Chain, address: str) -> int:
    return int(chain.w3.eth.get_transaction_count(to_checksum_address(address), "pending"))


def _sign_send_wait(chain: Chain, identity: Identity, tx: dict[str, Any]) -> Any:
    signed = Account.sign_transaction(tx, identity.private_key)
    tx_hash = chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    try:
        receipt = chain.w3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=120, poll_latency=chain.poll_latency
        )
    except TimeExhausted as exc:
        raise TransactionError(f"transaction {tx_hash.to_0x_hex()} was not mined in 120 s") from exc
    if receipt["status"] != 1:
        raise TransactionError(f"transaction {tx_hash.to_0x_hex()} reverted after it was sent")
    return receipt


def _hash32(value: bytes, name: str) -> bytes:
    if len(value) != 32:
        raise ConfigError(f"{name} must be 32 bytes, got {len(value)}")
    return bytes(value)


def _ppm(value: float) -> int:
    return max(0, min(1_000_000, round(value * 1_000_000)))


def _raw_public_key(public_key: bytes) -> bytes:
    """64-byte X||Y form the contract stores, from 33-, 64- or 65-byte encodings."""
    if len(public_key) == 64:
        return bytes(public_key)
    import coincurve

    try:
        return coincurve.PublicKey(bytes(public_key)).format(compressed=False)[1:]
    except ValueError as exc:
        raise ConfigError(f"not a secp256k1 public key ({len(public_key)} bytes)") from exc


def member_card(identity: Identity) -> dict[str, str]:
    """What a hospital hands its consortium admin to be admitted (no secret in it)."""
    return {
        "address": identity.address,
        "public_key": "0x" + identity.public_key.hex(),
        "peer_id": identity.peer_id,
    }


def check_member_card(card: dict[str, Any]) -> tuple[str, bytes, str]:
    """Validate a member card: the public key must give both the address and the PeerID."""
    try:
        public_key = _raw_public_key(bytes.fromhex(str(card["public_key"]).removeprefix("0x")))
        address = to_checksum_address(card["address"])
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"invalid member card: {exc}") from exc
    if address_of_public_key(public_key) != address:
        raise ConfigError(f"member card: the public key does not belong to {address}")
    peer_id = card.get("peer_id") or peer_id_of_public_key(public_key)
    if peer_id != peer_id_of_public_key(public_key):
        raise ConfigError("member card: the PeerID does not belong to the public key")
    return address, public_key, peer_id


def params_to_tuple(p: Params) -> tuple[Any, ...]:
    return (
        p.min_peers,
        p.join_window,
        p.key_window,
        p.commit_window,
        p.merge_window,
        p.ack_window,
        p.ckks_params_id,
        _hash32(p.task_id, "task_id"),
        _hash32(p.initial_model_hash, "initial_model_hash"),
        p.metrics_enabled,
    )


def params_from_tuple(raw: Sequence[Any]) -> Params:
    return Params(
        min_peers=int(raw[0]),
        join_window=int(raw[1]),
        key_window=int(raw[2]),
        commit_window=int(raw[3]),
        merge_window=int(raw[4]),
        ack_window=int(raw[5]),
        ckks_params_id=int(raw[6]),
        task_id=bytes(raw[7]),
        initial_model_hash=bytes(raw[8]),
        metrics_enabled=bool(raw[9]),
    )


def _address_or_none(value: str) -> str | None:
    return None if int(value, 16) == 0 else to_checksum_address(value)


def _round_from_tuple(raw: Sequence[Any]) -> RoundInfo:
    (
        round_id,
        state,
        lapse,
        base_model,
        seed,
        key_hash,
        aggregate_hash,
        final_model,
        attempt,
        min_peers,
        commit_count,
        ack_eligible,
        merge_peer,
        key_steward,
        participants,
        order,
        contributors,
        total_samples,
        join_deadline,
        key_deadline,
        commit_deadline,
        merge_deadline,
        ack_deadline,
    ) = raw
    return RoundInfo(
        round_id=int(round_id),
        state=RoundState(state),
        lapse_reason=LapseReason(lapse),
        base_model=bytes(base_model),
        attempt=int(attempt),
        participants=tuple(to_checksum_address(a) for a in participants),
        order=tuple(to_checksum_address(a) for a in order),
        merge_peer=_address_or_none(merge_peer),
        key_steward=_address_or_none(key_steward),
        key_hash=bytes(key_hash),
        aggregate_hash=bytes(aggregate_hash),
        final_model=bytes(final_model),
        contributors=tuple(to_checksum_address(a) for a in contributors),
        total_samples=int(total_samples),
        join_deadline=int(join_deadline),
        key_deadline=int(key_deadline),
        commit_deadline=int(commit_deadline),
        merge_deadline=int(merge_deadline),
        ack_deadline=int(ack_deadline),
        min_peers=int(min_peers),
        seed=bytes(seed),
        commit_count=int(commit_count),
        ack_eligible=int(ack_eligible),
    )


__all__ = [
    "ZERO_HASH",
    "LedgerClient",
    "LedgerError",
    "TxResult",
    "check_member_card",
    "member_card",
    "params_from_tuple",
    "params_to_tuple",
]
