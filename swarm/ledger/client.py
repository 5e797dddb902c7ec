"""The ledger client: typed reads and signed writes against the SwarmLedger contract.

Transactions are signed locally with the caller's :class:`~swarm.identity.Identity`
(eth-account, coincurve) and sent raw, so the node never holds a key. Every revert comes back as
one of swarm's typed errors (``swarm.ledger.revert``), whichever backend raised it, and an
unreachable node as :class:`~swarm.errors.ChainUnavailableError`.

The client is blocking (web3 is); the trio peer calls it from worker threads. A lock serializes
one identity's transactions so nonces never collide inside a process.

Sending a transaction (``_send``):

- its gas limit is web3's estimate with a margin (:class:`GasPolicy`), because an estimate is
  exact only for the state it was made in: a join that another peer's join turns into the
  closing one, or an acknowledgement that another's turns into the finalizing one, needs more;
- a transient refusal (a stale nonce, the same transaction already in the pool, a node that
  briefly refuses the connection) is retried a bounded number of times; the same signed
  transaction is resent where it may already have arrived, so one call never acts twice;
- a transaction mined with status 0 is replayed with ``eth_call`` (at the parent block, then at
  its own block) and its revert decoded into the same typed error a refused estimate gives;
  one that used all its gas and whose replay succeeds raises
  :class:`~swarm.errors.OutOfGasError`. Nothing is hidden: the caller decides again from the
  ledger.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import requests
from eth_account import Account
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.contract import Contract
from web3.exceptions import TimeExhausted, TransactionNotFound, Web3Exception
from web3.logs import DISCARD
from web3.types import BlockIdentifier

from swarm.errors import (
    ChainUnavailableError,
    ConfigError,
    ContractNotFoundError,
    LedgerError,
    OutOfGasError,
    TransactionError,
)
from swarm.identity import Identity, address_of_public_key, peer_id_of_public_key
from swarm.ledger.artifacts import load_artifact
from swarm.ledger.chain import Chain
from swarm.ledger.events import LedgerEvent, decode_logs
from swarm.ledger.revert import decode_exception, decoded_reverts
from swarm.ledger.types import LapseReason, LedgerView, Member, Params, RoundInfo, RoundState

log = logging.getLogger(__name__)

T = TypeVar("T")
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO_HASH = b"\0" * 32


#: extra gas for the longer path a transaction may take when others land first (see GasPolicy)
DEFAULT_EXTRA_GAS: Mapping[str, int] = MappingProxyType(
    {
        # the finalizing acknowledgement: +44.8k gas measured (the first finalization of a
        # consortium, 72.4k -> 117.2k), whatever the number of participants
        "acknowledge": 60_000,
        # the join that closes the window: +77.6k + 3.70k per participant measured (4..30)
        "join": 100_000,
    }
)
DEFAULT_EXTRA_GAS_PER_MEMBER: Mapping[str, int] = MappingProxyType({"join": 4_000})

#: how many times one call sends (or resends) its transaction before giving up
SEND_ATTEMPTS = 4
_BACKOFF_S = (0.05, 0.2, 0.5)


@dataclass(frozen=True)
class GasPolicy:
    """A transaction's gas limit: web3's estimate with a margin, capped at the block gas limit.

    An estimate is exact for the state it is made in. When other peers' transactions land first
    (in the same block, or between the estimate and ours), ours may take a longer path: the
    join that closes the window (it draws the roles: a shuffle over every participant) or the
    acknowledgement that reaches the majority (it finalizes the round). Without a margin those
    run out of gas. ``factor`` covers small drifts; ``extra[fn]`` plus ``extra_per_member[fn]``
    times the consortium's active member count (read before such a transaction: a round closes
    when every active member joined) covers the phase-ending path of ``fn``. Unused gas is not
    charged.
    """

    factor: float = 1.25
    extra: Mapping[str, int] = field(default_factory=lambda: DEFAULT_EXTRA_GAS)
    extra_per_member: Mapping[str, int] = field(
        default_factory=lambda: DEFAULT_EXTRA_GAS_PER_MEMBER
    )

    def needs_member_count(self, fn_name: str) -> bool:
        return bool(self.extra_per_member.get(fn_name))

    def gas_limit(self, fn_name: str, estimate: int, members: int, block_gas_limit: int) -> int:
        gas = (
            math.ceil(estimate * self.factor)
            + self.extra.get(fn_name, 0)
            + self.extra_per_member.get(fn_name, 0) * members
        )
        return min(gas, block_gas_limit)


#: web3's estimate as it is (what the client did before GasPolicy): for tests and comparisons
EXACT_ESTIMATE = GasPolicy(factor=1.0, extra={}, extra_per_member={})


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

    def __init__(
        self,
        chain: Chain,
        address: str,
        identity: Identity | None = None,
        *,
        gas_policy: GasPolicy | None = None,
    ) -> None:
        self.chain = chain
        self.w3 = chain.w3
        self.address = to_checksum_address(address)
        self.identity = identity
        self.gas_policy = gas_policy or GasPolicy()
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
    def deploy(
        cls,
        chain: Chain,
        identity: Identity,
        params: Params,
        *,
        gas_policy: GasPolicy | None = None,
    ) -> LedgerClient:
        """Deploy a new consortium contract; ``identity`` becomes its first admin."""
        artifact = load_artifact()
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        with _ledger_call("deploying the contract"):
            tx = factory.constructor(params_to_tuple(params)).build_transaction(
                {"from": identity.address, "nonce": _pending_nonce(chain, identity.address)}
            )
            tx["gas"] = min(math.ceil(int(tx["gas"]) * 1.1), chain.block_gas_limit())
            signed = Account.sign_transaction(tx, identity.private_key)
            tx_hash = chain.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = _wait_for_receipt(chain, HexBytes(tx_hash))
        if receipt["status"] != 1:
            raise TransactionError(f"deploying the contract failed ({tx_hash.to_0x_hex()})")
        address = receipt["contractAddress"]
        log.info("deployed SwarmLedger at %s (gas %d)", address, receipt["gasUsed"])
        return cls(chain, address, identity, gas_policy=gas_policy)

    def as_identity(self, identity: Identity) -> LedgerClient:
        """The same contract, acting as another identity (with the same gas policy)."""
        return LedgerClient(self.chain, self.address, identity, gas_policy=self.gas_policy)

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

    def finalized_count(self) -> int:
        """How many rounds were finalized (lapsed ones do not count)."""
        return int(
            self._read(lambda: self.contract.functions.finalizedRounds().call(), "finalizedRounds")
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

    def view(self, round_id: int = 0, *, block: BlockIdentifier = "latest") -> LedgerView:
        """Everything a peer decides from, in one ``eth_call`` and so at one block.

        ``round_id`` 0 is the current round. ``block`` pins the read to a block (e.g. to read
        events up to ``view.block_number`` afterwards); the default is the latest.
        """
        raw = self._read(
            lambda: self.contract.functions.peerView(round_id).call(block_identifier=block),
            "peerView",
        )
        return _view_from_tuple(raw)

    def active_member_count(self) -> int:
        return int(
            self._read(
                lambda: self.contract.functions.activeMemberCount().call(), "activeMemberCount"
            )
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
        receipt = self._send_for_receipt(
            self.contract.functions.openRound(_hash32(base_model, "base_model"))
        )
        for event in self.contract.events.RoundOpened().process_receipt(receipt, errors=DISCARD):
            return int(event["args"]["round"])
        return self.current_round()  # unreachable: a successful openRound emits RoundOpened

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
        receipt = self._send_for_receipt(fn)
        return TxResult(
            tx_hash=receipt["transactionHash"].to_0x_hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
        )

    def _send_for_receipt(self, fn: Any) -> Any:
        what = getattr(fn, "fn_name", "transaction")
        with self._lock, _ledger_call(what):
            return self._transact(fn)

    def _signer(self) -> Identity:
        if self.identity is None:
            raise ConfigError("this ledger client is read-only: it was given no key")
        return self.identity

    def _build(self, fn: Any) -> dict[str, Any]:
        """The unsigned transaction: a fresh nonce, and gas from the estimate (``GasPolicy``).

        A revert during the estimate raises the contract's typed error: nothing is sent.
        """
        sender = self._signer().address
        name = getattr(fn, "fn_name", "")
        estimate = int(fn.estimate_gas({"from": sender}))
        members = (
            int(self.contract.functions.activeMemberCount().call())
            if self.gas_policy.needs_member_count(name)
            else 0
        )
        gas = self.gas_policy.gas_limit(name, estimate, members, self.chain.block_gas_limit())
        tx = fn.build_transaction(
            {"from": sender, "nonce": _pending_nonce(self.chain, sender), "gas": gas}
        )
        return dict(tx)

    def _transact(self, fn: Any, tx: dict[str, Any] | None = None) -> Any:
        """Build (unless ``tx`` is given), sign, send and wait; the receipt of a success.

        Retries a bounded number of times: a stale nonce or a pool that holds another
        transaction with our nonce gets a freshly built transaction; a send that may have
        reached the node (connection refused, timed out) resends the same signed transaction,
        whose hash is the same, so that it is never executed twice.
        """
        identity = self._signer()
        what = getattr(fn, "fn_name", "transaction")
        for attempt in range(1, SEND_ATTEMPTS + 1):
            if tx is None:
                tx = self._build(fn)
            signed = Account.sign_transaction(tx, identity.private_key)
            tx_hash = HexBytes(signed.hash)
            try:
                self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as exc:
                if attempt == SEND_ATTEMPTS:
                    raise
                log.info("%s: sending failed (%s); sending it again", what, exc)
            except Exception as exc:
                refusal = _send_refusal(exc)
                if refusal is None:
                    raise
                if refusal == "known" or (
                    refusal == "stale" and self._receipt_or_none(tx_hash) is not None
                ):
                    # this very transaction is in the pool, or was mined after all: wait for it
                    return self._check(fn, tx, _wait_for_receipt(self.chain, tx_hash))
                if attempt == SEND_ATTEMPTS:
                    raise TransactionError(
                        f"{what}: the node refused the transaction {SEND_ATTEMPTS} times ({exc})"
                    ) from exc
                log.info("%s: %s; building it again with a fresh nonce", what, exc)
                tx = None
            else:
                return self._check(fn, tx, _wait_for_receipt(self.chain, tx_hash))
            time.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S)) - 1])
        raise AssertionError("unreachable")  # pragma: no cover

    def _receipt_or_none(self, tx_hash: HexBytes) -> Any:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def _check(self, fn: Any, tx: dict[str, Any], receipt: Any) -> Any:
        if receipt["status"] == 1:
            what = getattr(fn, "fn_name", "transaction")
            log.debug("%s by %s: gas %d of %d", what, tx["from"], receipt["gasUsed"], tx["gas"])
            return receipt
        raise self._failure(tx, receipt)

    def _failure(self, tx: dict[str, Any], receipt: Any) -> LedgerError:
        """Why a mined transaction failed: its replay's typed revert, or out of gas.

        The replay runs at the parent block (the state the block started from) and, if it
        passes there, at the block itself (where a transaction ahead of ours in the same block
        may have changed the state that made ours revert). A transaction that used all its gas
        and whose replay at the parent block passes ran out of gas.
        """
        tx_hash = receipt["transactionHash"].to_0x_hex()
        block = int(receipt["blockNumber"])
        gas_used, gas_limit = int(receipt["gasUsed"]), int(tx["gas"])
        call = {"from": tx["from"], "to": tx["to"], "data": tx["data"], "value": tx.get("value", 0)}
        for at in (block - 1, block):
            try:
                self.w3.eth.call(call, at)  # type: ignore[arg-type]
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise ChainUnavailableError(
                    f"transaction {tx_hash} failed, and the chain cannot be reached to say why"
                ) from exc
            except Exception as exc:
                # a typed revert; or not (e.g. the node no longer holds that block's state)
                typed = decode_exception(exc)
                if typed is not None:
                    typed.tx_hash = tx_hash
                    typed.add_note(f"transaction {tx_hash} was mined in block {block} and reverted")
                    return typed
            else:
                if gas_used >= gas_limit:
                    return OutOfGasError(
                        f"transaction {tx_hash} ran out of gas ({gas_used} of {gas_limit}) in "
                        f"block {block}: the state changed between its estimate and its execution",
                        tx_hash=tx_hash,
                        gas_limit=gas_limit,
                        gas_used=gas_used,
                    )
        error = TransactionError(
            f"transaction {tx_hash} reverted in block {block} (gas {gas_used} of {gas_limit}); "
            "its replay did not say why"
        )
        error.tx_hash = tx_hash
        return error


# Messages with which nodes refuse a raw transaction for a reason that another try can fix.
_ALREADY_KNOWN = re.compile(r"already known|already imported|known transaction", re.I)
_STALE = re.compile(
    r"nonce too low|replacement transaction underpriced|invalid transaction nonce", re.I
)


def _send_refusal(exc: BaseException) -> str | None:
    """``known``: the same transaction is already in the pool; ``stale``: our nonce is taken
    (used, or held by another pending transaction); None: not a refusal another try fixes."""
    text = str(exc)
    if _ALREADY_KNOWN.search(text):
        return "known"
    if _STALE.search(text):
        return "stale"
    return None


def _pending_nonce(chain: Chain, address: str) -> int:
    return int(chain.w3.eth.get_transaction_count(to_checksum_address(address), "pending"))


def _wait_for_receipt(chain: Chain, tx_hash: HexBytes) -> Any:
    try:
        return chain.w3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=120, poll_latency=chain.poll_latency
        )
    except TimeExhausted as exc:
        error = TransactionError(f"transaction {tx_hash.to_0x_hex()} was not mined in 120 s")
        error.tx_hash = tx_hash.to_0x_hex()
        raise error from exc


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


def _view_from_tuple(raw: Sequence[Any]) -> LedgerView:
    (
        block_number,
        block_time,
        current_round,
        last_finalized,
        finalized_count,
        latest_model,
        params,
        round_raw,
        commit_hashes,
        commit_samples,
        acks,
    ) = raw
    info = _round_from_tuple(round_raw)
    participants = info.participants
    return LedgerView(
        block_number=int(block_number),
        block_time=int(block_time),
        current_round=int(current_round),
        last_finalized=int(last_finalized),
        finalized_count=int(finalized_count),
        latest_model=bytes(latest_model),
        params=params_from_tuple(params),
        round=None if info.state == RoundState.NONE else info,
        commitments=MappingProxyType(
            {
                p: (bytes(update), int(samples))
                for p, update, samples in zip(
                    participants, commit_hashes, commit_samples, strict=True
                )
                if bytes(update) != ZERO_HASH
            }
        ),
        acks=MappingProxyType(
            {p: bytes(a) for p, a in zip(participants, acks, strict=True) if bytes(a) != ZERO_HASH}
        ),
    )


__all__ = [
    "EXACT_ESTIMATE",
    "ZERO_HASH",
    "GasPolicy",
    "LedgerClient",
    "LedgerError",
    "TxResult",
    "check_member_card",
    "member_card",
    "params_from_tuple",
    "params_to_tuple",
]
