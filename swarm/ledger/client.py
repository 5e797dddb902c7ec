"""The ledger client: typed reads and signed writes against the consortium's two contracts.

A consortium is two contracts (contracts/src): ``Consortium`` (members, admin roles, versioned
parameters) and ``SwarmLedger`` (the rounds), bound to each other. A client is made from the
SwarmLedger's address and finds the Consortium through it (``consortium()``); its methods talk to
whichever contract holds what they read or change.

Transactions are signed locally with the caller's :class:`~swarm.identity.Identity`
(eth-account, coincurve) and sent raw, so the node never holds a key. Every revert comes back as
one of swarm's typed errors (``swarm.ledger.revert``), whichever backend raised it, and an
unreachable node as :class:`~swarm.errors.ChainUnavailableError`.

The client is blocking (web3 is); the trio peer calls it from worker threads. A lock serializes
one identity's transactions so nonces never collide inside a process.

Sending a transaction (``_send``):

- what it needs from the node (the gas estimate, the pending nonce, the fee inputs and, for a
  join, the active member count) is asked in one JSON-RPC batch where the node takes batches
  (``Chain.batch``), else one request at a time through web3; then the send, then the receipt
  (looked for at once: a local chain mines on arrival);
- its gas limit is the node's estimate with a margin (:class:`GasPolicy`), because an estimate is
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

import functools
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import requests
from eth_abi import decode, encode
from eth_account import Account
from eth_typing import ChecksumAddress
from eth_utils import (
    collapse_if_tuple,
    function_abi_to_4byte_selector,
    function_signature_to_4byte_selector,
    is_address,
    to_checksum_address,
)
from hexbytes import HexBytes
from web3.contract import Contract
from web3.exceptions import TimeExhausted, TransactionNotFound, Web3Exception
from web3.logs import DISCARD
from web3.types import BlockIdentifier, RPCEndpoint

from swarm.errors import (
    ChainUnavailableError,
    ConfigError,
    ContractNotFoundError,
    InvalidContributorsError,
    LedgerError,
    OutOfGasError,
    TransactionError,
)
from swarm.identity import Identity, parse_member_card, peer_id_of_public_key
from swarm.ledger.artifacts import load_artifact
from swarm.ledger.chain import Chain
from swarm.ledger.events import LedgerEvent, decode_logs
from swarm.ledger.revert import decode_exception, decode_revert_data, decoded_reverts
from swarm.ledger.types import LapseReason, LedgerView, Member, Params, RoundInfo, RoundState
from swarm.ledger.watch import LedgerWatch, open_watch

log = logging.getLogger(__name__)

T = TypeVar("T")
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO_HASH = b"\0" * 32


#: extra gas for the longer path a transaction may take when others land first (see GasPolicy)
DEFAULT_EXTRA_GAS: Mapping[str, int] = MappingProxyType(
    {
        # the finalizing acknowledgement: +24.6k..+36.4k gas measured (4..30 participants;
        # the first finalization of a consortium costs most)
        "acknowledge": 60_000,
        # the join that closes the window: it records the draw block (+7.0k gas measured at
        # 4..30 members: the roles are drawn later, from that block's hash)
        "join": 40_000,
    }
)
DEFAULT_EXTRA_GAS_PER_MEMBER: Mapping[str, int] = MappingProxyType({"join": 1_000})

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


@dataclass(frozen=True)
class _TxInputs:
    """What a transaction needs from the node: its gas estimate, the sender's pending nonce,
    the fee inputs and (for a join's gas margin) the consortium's active member count."""

    estimate: int
    nonce: int
    priority_fee: int
    base_fee: int | None  # None: a chain without EIP-1559 (then ``gas_price``)
    members: int = 0
    gas_price: int | None = None

    def fees(self) -> dict[str, int]:
        """The fee fields as web3 fills them: an EIP-1559 transaction whose max fee is the
        priority fee plus twice the latest base fee; a legacy gas price where there is none."""
        if self.base_fee is None:
            return {"gasPrice": int(self.gas_price or 0)}
        return {
            "maxFeePerGas": self.priority_fee + 2 * self.base_fee,
            "maxPriorityFeePerGas": self.priority_fee,
        }


#: Consortium.activeMemberCount()'s selector (a join's gas margin grows with the member count)
_ACTIVE_MEMBER_COUNT = function_signature_to_4byte_selector("activeMemberCount()")


def _typed_revert(error: Any) -> LedgerError | None:
    """The contract's typed error for a JSON-RPC error object that carries revert data."""
    data = error.get("data") if isinstance(error, dict) else None
    if isinstance(data, dict):  # some nodes nest it: {"data": {"data": "0x..."}}
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return None
    try:
        return decode_revert_data(bytes.fromhex(data[2:]))
    except ValueError:
        return None


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


#: keccak256("swarm.ADMIN_ROLE"): admits/removes members and sets parameters (Consortium)
ADMIN_ROLE = bytes.fromhex("285d678ce4fb26b8c269b7317e06b9784b0b1bb3cd860770ce6e3a8e0142357e")
#: OpenZeppelin's DEFAULT_ADMIN_ROLE: the consortium's owner (grants ADMIN_ROLE; two-step handover)
DEFAULT_ADMIN_ROLE = ZERO_HASH


def _checked_address(address: str, what: str) -> ChecksumAddress:
    if not isinstance(address, str) or not is_address(address):
        raise ConfigError(f"{what} {address!r} is not an Ethereum address (0x and 40 hex digits)")
    return to_checksum_address(address)


class LedgerClient:
    """A consortium's SwarmLedger (and through it its Consortium) on one chain, optionally
    acting as one identity. ``contract`` is the SwarmLedger, ``consortium`` the Consortium."""

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
        self.address = _checked_address(address, "contract address")
        self.identity = identity
        self.gas_policy = gas_policy or GasPolicy()
        self._lock = threading.Lock()
        with _ledger_call("reading the contract's code"):
            code = self.w3.eth.get_code(self.address)
        if not code:
            raise ContractNotFoundError(
                f"no contract at {self.address} on {chain.url} "
                "(wrong address, or a development chain that was restarted without its state)"
            )
        self.contract: Contract = self.w3.eth.contract(
            address=self.address, abi=load_artifact("SwarmLedger").abi
        )
        try:
            with _ledger_call("reading the ledger's consortium"):
                consortium = self.contract.functions.consortium().call()
        except LedgerError as exc:  # not a SwarmLedger (e.g. the Consortium's address)
            raise ContractNotFoundError(
                f"the contract at {self.address} on {chain.url} is not a SwarmLedger "
                "(give the SwarmLedger's address, not the Consortium's)"
            ) from exc
        self.consortium_address = to_checksum_address(consortium)
        self.consortium: Contract = self.w3.eth.contract(
            address=self.consortium_address, abi=load_artifact("Consortium").abi
        )
        self._view_shape: tuple[bytes, list[str]] | None = None  # peerView's selector, outputs

    # --- deployment ----------------------------------------------------------------------

    @classmethod
    def deploy(
        cls,
        chain: Chain,
        identity: Identity,
        params: Params,
        *,
        gas_policy: GasPolicy | None = None,
        admin_delay: int = 0,
    ) -> LedgerClient:
        """Deploy a new consortium: the Consortium (``identity`` becomes its owner and first
        admin; ``admin_delay`` seconds between beginning and accepting an ownership handover),
        the SwarmLedger reading it, and bind the two. A client of the SwarmLedger."""
        consortium = _deploy(
            chain, identity, "Consortium", int(admin_delay), params_to_tuple(params)
        )
        ledger = _deploy(chain, identity, "SwarmLedger", consortium)
        client = cls(chain, ledger, identity, gas_policy=gas_policy)
        client._send(client.consortium.functions.bindLedger(ledger))
        return client

    def as_identity(self, identity: Identity) -> LedgerClient:
        """The same contract, acting as another identity (with the same gas policy)."""
        return LedgerClient(self.chain, self.address, identity, gas_policy=self.gas_policy)

    # --- reads ---------------------------------------------------------------------------

    def _read(self, fn: Callable[[], T], what: str) -> T:
        with _ledger_call(what):
            return fn()

    def is_admin(self, address: str) -> bool:
        """Whether ``address`` holds ADMIN_ROLE (admits members, sets parameters)."""
        return bool(
            self._read(
                lambda: self.consortium.functions.hasRole(ADMIN_ROLE, address).call(), "hasRole"
            )
        )

    def owner(self) -> str:
        """The consortium's owner (DEFAULT_ADMIN_ROLE): it grants and revokes ADMIN_ROLE."""
        return to_checksum_address(
            self._read(lambda: self.consortium.functions.defaultAdmin().call(), "defaultAdmin")
        )

    def is_member(self, address: str) -> bool:
        return bool(
            self._read(lambda: self.consortium.functions.isMember(address).call(), "isMember")
        )

    def member(self, address: str) -> Member | None:
        """The record of ``address``, or None if it was never admitted."""
        raw = self._read(lambda: self.consortium.functions.getMember(address).call(), "getMember")
        public_key, encryption_key, peer_id, multiaddrs, name, added_at, active = raw
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
            encryption_key=bytes(encryption_key),
        )

    def members(self, *, include_removed: bool = True) -> list[Member]:
        """Every member in order of admission (removed ones too unless asked not to)."""
        addresses = self._read(
            lambda: self.consortium.functions.memberAddresses().call(), "memberAddresses"
        )
        found = [m for m in (self.member(a) for a in addresses) if m is not None]
        return [m for m in found if include_removed or m.active]

    def active_members(self) -> list[Member]:
        return self.members(include_removed=False)

    def params(self) -> Params:
        """The newest parameters (the next round opens with them)."""
        raw = self._read(lambda: self.consortium.functions.params().call(), "params")
        return params_from_tuple(raw)

    def params_version(self) -> int:
        """The newest parameter version's index (0: the deployment's)."""
        return int(
            self._read(lambda: self.consortium.functions.paramsVersion().call(), "paramsVersion")
        )

    def params_at(self, version: int) -> Params:
        """Parameter version ``version`` (what a round that opened with it uses)."""
        raw = self._read(lambda: self.consortium.functions.paramsAt(version).call(), "paramsAt")
        return params_from_tuple(raw)

    def missed_commits(self, address: str) -> int:
        """``address``'s consecutive missed commits (reset by a commit and by sitting out)."""
        return int(
            self._read(
                lambda: self.contract.functions.missedCommits(address).call(), "missedCommits"
            )
        )

    def sitting_out_until(self, address: str) -> int:
        """The last round ``address`` sits out (0: it never sat out)."""
        return int(
            self._read(
                lambda: self.contract.functions.sittingOutUntil(address).call(), "sittingOutUntil"
            )
        )

    def epsilon_spent(self, address: str) -> float:
        """``address``'s cumulative privacy spending as the ledger records it (0.0: none)."""
        return micro_to_epsilon(
            int(
                self._read(
                    lambda: self.contract.functions.epsilonSpent(address).call(), "epsilonSpent"
                )
            )
        )

    def shares_hash(self, round_id: int, attempt: int, address: str) -> bytes:
        """The mask-share manifest hash ``address`` committed in ``round_id``'s ``attempt``
        (32 zero bytes if none)."""
        return bytes(
            self._read(
                lambda: self.contract.functions.sharesHashOf(round_id, attempt, address).call(),
                "sharesHashOf",
            )
        )

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
        """``round_id`` as the contract's views describe it now, with its parameter snapshot."""
        raw = self._read(lambda: self.contract.functions.getRound(round_id).call(), "getRound")
        params = None if RoundState(raw[1]) == RoundState.NONE else self.params_at(int(raw[24]))
        return _round_from_tuple(raw, params)

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
        return _view_from_tuple(
            self._read(lambda: self._peer_view_raw(round_id, block), "peerView")
        )

    def _peer_view_raw(self, round_id: int, block: BlockIdentifier) -> Any:
        """``peerView`` as one plain ``eth_call``, encoded and decoded here.

        Every peer reads this after each event that concerns it: through web3's contract
        machinery (its middlewares, formatters and validation) one read cost about 12 ms of CPU
        on this project's 2-core machine, a large share of a busy swarm's work; this way about a
        tenth of it (``benchmarks/ledger_bench.py``). A node's error goes the web3 way, so
        reverts and refusals are decoded as everywhere else."""
        shape = self._view_shape
        if shape is None:
            abi = self.contract.get_function_by_name("peerView").abi
            shape = self._view_shape = (
                function_abi_to_4byte_selector(abi),
                [collapse_if_tuple(dict(o)) for o in abi["outputs"]],
            )
        selector, outputs = shape
        data = "0x" + (selector + encode(["uint256"], [round_id])).hex()
        call = {"to": self.address, "data": data}
        if self.chain.kind == "embedded" or not isinstance(block, str | int):
            # in this process (nothing to save), or pinned by hash: the web3 way
            return self.contract.functions.peerView(round_id).call(block_identifier=block)
        tag = block if isinstance(block, str) else hex(block)
        response = self.w3.provider.make_request(RPCEndpoint("eth_call"), [call, tag])
        result = response.get("result")
        if "error" in response or not isinstance(result, str) or result in ("0x", ""):
            return self.contract.functions.peerView(round_id).call(block_identifier=block)
        values = decode(outputs, bytes.fromhex(result[2:]))
        return values[0] if len(values) == 1 else values  # one struct: as web3 returns it

    def active_member_count(self) -> int:
        return int(
            self._read(
                lambda: self.consortium.functions.activeMemberCount().call(), "activeMemberCount"
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
        """Every event both contracts emitted in the block range, in chain order."""
        with _ledger_call("reading events"):
            logs = self.w3.eth.get_logs(
                {
                    "address": [self.address, self.consortium_address],
                    "fromBlock": from_block,
                    "toBlock": to_block,
                }
            )
            return decode_logs(self.w3, [self.contract, self.consortium], logs)

    def watch(
        self, *, events_url: str = "", poll_s: float = 0.5, ignore: Iterable[str] = ()
    ) -> LedgerWatch:
        """What tells a peer that this consortium's ledger changed (swarm.ledger.watch): a
        subscription to both contracts' events (less those named in ``ignore``) where the node
        streams them, else a cheap poll for new blocks every ``poll_s``."""
        return open_watch(
            self.chain,
            [self.address, self.consortium_address],
            [self.contract.abi, self.consortium.abi],
            events_url=events_url,
            poll_s=poll_s,
            ignore=ignore,
        )

    # --- writes: membership and parameters -------------------------------------------------

    def add_member(
        self,
        account: str,
        public_key: bytes,
        name: str,
        multiaddrs: Sequence[str] = (),
        peer_id: str | None = None,
        *,
        encryption_key: bytes,
        encryption_key_sig: bytes,
    ) -> TxResult:
        """Admit a hospital (ADMIN_ROLE). The PeerID defaults to (and must equal) the one of its
        public key; ``encryption_key`` (32-byte X25519) must carry ``encryption_key_sig``, the
        identity key's 65-byte signature (``Identity.encryption_key_signature()``): the contract
        checks both."""
        public_key = _raw_public_key(public_key)
        derived_peer_id = peer_id_of_public_key(public_key)
        if peer_id is not None and peer_id != derived_peer_id:
            raise ConfigError(
                f"PeerID {peer_id} is not the PeerID of that public key ({derived_peer_id})"
            )
        return self._send(
            self.consortium.functions.addMember(
                _checked_address(account, "member address"),
                public_key,
                _hash32(encryption_key, "encryption_key"),
                bytes(encryption_key_sig),
                derived_peer_id,
                list(multiaddrs),
                name,
            )
        )

    def add_member_identity(
        self, identity: Identity, name: str, multiaddrs: Sequence[str] = ()
    ) -> TxResult:
        """Admit ``identity``'s hospital (development chains and tests: the admin holds the key)."""
        return self.add_member(
            identity.address,
            identity.public_key,
            name,
            multiaddrs,
            encryption_key=identity.encryption_public_key,
            encryption_key_sig=identity.encryption_key_signature(),
        )

    def remove_member(self, account: str) -> TxResult:
        """Remove a hospital (ADMIN_ROLE); it leaves the running round too."""
        return self._send(
            self.consortium.functions.removeMember(_checked_address(account, "member address"))
        )

    def add_admin(self, account: str) -> TxResult:
        """Grant ADMIN_ROLE (the owner only)."""
        return self._send(
            self.consortium.functions.grantRole(
                ADMIN_ROLE, _checked_address(account, "admin address")
            )
        )

    def remove_admin(self, account: str) -> TxResult:
        """Revoke ADMIN_ROLE (the owner only)."""
        return self._send(
            self.consortium.functions.revokeRole(
                ADMIN_ROLE, _checked_address(account, "admin address")
            )
        )

    def begin_ownership_transfer(self, new_owner: str) -> TxResult:
        """Begin handing the consortium's ownership (DEFAULT_ADMIN_ROLE) to ``new_owner``."""
        return self._send(
            self.consortium.functions.beginDefaultAdminTransfer(
                _checked_address(new_owner, "new owner")
            )
        )

    def accept_ownership_transfer(self) -> TxResult:
        """The pending owner accepts, once the consortium's delay has passed."""
        return self._send(self.consortium.functions.acceptDefaultAdminTransfer())

    def set_params(self, params: Params) -> TxResult:
        """Append a parameter version (ADMIN_ROLE); running rounds keep theirs."""
        return self._send(self.consortium.functions.setParams(params_to_tuple(params)))

    def update_multiaddrs(self, multiaddrs: Sequence[str]) -> TxResult:
        return self._send(self.consortium.functions.updateMultiaddrs(list(multiaddrs)))

    def set_encryption_key(self, encryption_key: bytes, signature: bytes) -> TxResult:
        """Rotate this member's encryption key (signed by its identity key)."""
        return self._send(
            self.consortium.functions.setEncryptionKey(
                _hash32(encryption_key, "encryption_key"), bytes(signature)
            )
        )

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

    def draw_roles(self, round_id: int) -> TxResult:
        """Store the round's seed while its draw block's hash is within reach (256 blocks)."""
        return self._send(self.contract.functions.drawRoles(round_id))

    def replace_key_steward(self, round_id: int) -> TxResult:
        return self._send(self.contract.functions.replaceKeySteward(round_id))

    def commit_update(
        self,
        round_id: int,
        update_hash: bytes,
        sample_count: int,
        *,
        shares_hash: bytes = ZERO_HASH,
        round_epsilon: float = 0.0,
        total_epsilon: float = 0.0,
    ) -> TxResult:
        """Commit an update's hash and sample count. ``shares_hash``: the hash of this member's
        mask-share manifest (nonzero exactly when the round's ``mask_threshold_pct`` > 0).
        ``round_epsilon`` / ``total_epsilon``: the privacy this round's training spent and the
        member's cumulative spending with it (both 0.0 unless the round has an epsilon budget;
        then the total must not decrease nor exceed the budget). Epsilons go on chain in
        micro-epsilon, rounded up."""
        return self._send(
            self.contract.functions.commitUpdate(
                round_id,
                _hash32(update_hash, "update_hash"),
                int(sample_count),
                _hash32(shares_hash, "shares_hash"),
                epsilon_to_micro(round_epsilon, "round_epsilon"),
                epsilon_to_micro(total_epsilon, "total_epsilon"),
            )
        )

    def submit_aggregate(
        self, round_id: int, aggregate_hash: bytes, contributors: Sequence[str]
    ) -> TxResult:
        """Submit the aggregate; the contributors (addresses) go to the contract as a bitmap over
        the round's participant indexes. An address that is not a participant is refused here
        (InvalidContributorsError) before anything is sent."""
        participants = self.round(round_id).participants
        return self._send(
            self.contract.functions.submitAggregate(
                round_id,
                _hash32(aggregate_hash, "aggregate_hash"),
                contributor_bits(round_id, participants, contributors),
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
        """The unsigned transaction: a fresh nonce, gas from the estimate (``GasPolicy``), and
        EIP-1559 fees as web3 would fill them (the node's priority fee, plus twice the latest
        block's base fee).

        A revert during the estimate raises the contract's typed error: nothing is sent. The
        estimate runs on the pending block, where the transaction will run: right after the
        join window closed, the roles exist there (DRAW_DELAY 0) but not yet at "latest".

        The calldata is encoded once. What the transaction needs from the node (the estimate,
        the nonce, the fees and, for a join, the active member count) is asked in one JSON-RPC
        batch where the node takes batches (``_batched_inputs``), else one request at a time
        through web3 (``_single_inputs``).
        """
        sender = self._signer().address
        name = getattr(fn, "fn_name", "")
        data = fn._encode_transaction_data()
        call = {"from": sender, "to": fn.address, "data": data}
        members = self.gas_policy.needs_member_count(name)
        inputs = self._batched_inputs(call, members) or self._single_inputs(call, members)
        gas = self.gas_policy.gas_limit(
            name, inputs.estimate, inputs.members, self.chain.block_gas_limit()
        )
        return {
            **call,
            "value": 0,
            "nonce": inputs.nonce,
            "gas": gas,
            "chainId": self.chain.chain_id,
            **inputs.fees(),
        }

    def _batched_inputs(self, call: dict[str, Any], members: bool) -> _TxInputs | None:
        """The transaction's inputs in one HTTP round trip; None where the node takes no batch
        or any answer other than a typed revert is amiss (the caller then asks the web3 way,
        which retries, and reports what is wrong as it always did)."""
        calls: list[tuple[str, list[Any]]] = [
            ("eth_estimateGas", [call, "pending"]),
            ("eth_getTransactionCount", [call["from"], "pending"]),
            ("eth_maxPriorityFeePerGas", []),
            ("eth_getBlockByNumber", ["latest", False]),
        ]
        if members:
            data = "0x" + _ACTIVE_MEMBER_COUNT.hex()
            calls.append(("eth_call", [{"to": self.consortium_address, "data": data}, "latest"]))
        responses = self.chain.batch(calls)
        if responses is None:
            return None
        estimate = responses[0]
        if "error" in estimate:
            typed = _typed_revert(estimate["error"])
            if typed is not None:
                raise typed  # what the web3 way raises too; nothing was sent
            return None
        try:
            results = [r["result"] for r in responses]
            block = results[3]
            base_fee = block.get("baseFeePerGas")
            return _TxInputs(
                estimate=int(results[0], 16),
                nonce=int(results[1], 16),
                priority_fee=int(results[2], 16),
                base_fee=None if base_fee is None else int(base_fee, 16),
                members=int(results[4], 16) if members else 0,
                gas_price=None if base_fee is not None else int(self.w3.eth.gas_price),
            )
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            return None

    def _single_inputs(self, call: dict[str, Any], members: bool) -> _TxInputs:
        """The transaction's inputs one request at a time, through web3 (its retries, its
        errors: a revert raises here and ``_ledger_call`` types it)."""
        eth = self.w3.eth
        # (the embedded chain estimates only at its default, the pending block)
        at = None if self.chain.kind == "embedded" else "pending"
        estimate = int(eth.estimate_gas(call, block_identifier=at))  # type: ignore[arg-type]
        count = int(self.consortium.functions.activeMemberCount().call()) if members else 0
        nonce = _pending_nonce(self.chain, call["from"])
        base_fee = eth.get_block("latest").get("baseFeePerGas")
        return _TxInputs(
            estimate=estimate,
            nonce=nonce,
            priority_fee=int(eth.max_priority_fee) if base_fee is not None else 0,
            base_fee=None if base_fee is None else int(base_fee),
            members=count,
            gas_price=None if base_fee is not None else int(eth.gas_price),
        )

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


def _deploy(chain: Chain, identity: Identity, name: str, *args: Any) -> str:
    """Deploy artifact ``name`` with constructor ``args``; its address."""
    artifact = load_artifact(name)
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    with _ledger_call(f"deploying {name}"):
        tx = factory.constructor(*args).build_transaction(
            {"from": identity.address, "nonce": _pending_nonce(chain, identity.address)}
        )
        tx["gas"] = min(math.ceil(int(tx["gas"]) * 1.1), chain.block_gas_limit())
        signed = Account.sign_transaction(tx, identity.private_key)
        tx_hash = chain.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = _wait_for_receipt(chain, HexBytes(tx_hash))
    if receipt["status"] != 1:
        raise TransactionError(f"deploying {name} failed ({tx_hash.to_0x_hex()})")
    address = to_checksum_address(receipt["contractAddress"])
    log.info("deployed %s at %s (gas %d)", name, address, receipt["gasUsed"])
    return address


def contributor_bits(
    round_id: int, participants: Sequence[str], contributors: Sequence[str]
) -> int:
    """The bitmap ``submitAggregate`` takes: bit i set for participant i among ``contributors``."""
    index = {to_checksum_address(p): i for i, p in enumerate(participants)}
    bits = 0
    for c in contributors:
        address = to_checksum_address(c)
        if address not in index:
            raise InvalidContributorsError(
                "NotAParticipant", {"round": round_id, "account": address}
            )
        bits |= 1 << index[address]
    return bits


def bits_to_addresses(participants: Sequence[str], bits: int) -> tuple[str, ...]:
    """The participants whose bit is set, in participant (index) order."""
    return tuple(p for i, p in enumerate(participants) if bits >> i & 1)


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
    from swarm.identity import member_card as card

    return card(identity)


def check_member_card(card: dict[str, Any]) -> tuple[str, bytes, str, bytes, bytes]:
    """Validate a member card (swarm.identity.parse_member_card): the public key must give the
    address and the PeerID, and the encryption key must carry the identity key's signature.
    (address, public key, PeerID, encryption key, its signature)."""
    c = parse_member_card(card)
    return c.address, c.public_key, c.peer_id, c.encryption_key, c.encryption_key_sig


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
        p.max_missed_commits,
        p.sit_out_rounds,
        int(p.mask_threshold_pct),
        epsilon_to_micro(p.epsilon_budget, "epsilon_budget"),
        _scaled(p.dp_delta, DP_DELTA_SCALE, "dp_delta"),
        _scaled(p.dp_noise_multiplier, MILLI, "dp_noise_multiplier"),
        _scaled(p.dp_clip_norm, MILLI, "dp_clip_norm"),
    )


#: the contract's units: epsilon in millionths, delta in 1e-12, noise and clip norm in thousandths
MICRO = 1_000_000
DP_DELTA_SCALE = 1_000_000_000_000
MILLI = 1_000


def _scaled(value: float, scale: int, name: str) -> int:
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
    # round to the unit first so that 0.1 * 1e6 == 100000.00000000001 does not become 100001
    return math.ceil(round(value * scale, 6))


def epsilon_to_micro(epsilon: float, name: str = "epsilon") -> int:
    """Epsilon in the contract's micro-epsilon, rounded up (spending is never understated)."""
    return _scaled(epsilon, MICRO, name)


def micro_to_epsilon(micro: int) -> float:
    return micro / MICRO


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
        max_missed_commits=int(raw[10]),
        sit_out_rounds=int(raw[11]),
        mask_threshold_pct=int(raw[12]),
        epsilon_budget=micro_to_epsilon(int(raw[13])),
        dp_delta=int(raw[14]) / DP_DELTA_SCALE,
        dp_noise_multiplier=int(raw[15]) / MILLI,
        dp_clip_norm=int(raw[16]) / MILLI,
    )


def _address_or_none(value: str) -> str | None:
    return None if int(value, 16) == 0 else _checksummed(value)


@functools.lru_cache(maxsize=4096)
def _checksummed(address: str) -> str:
    """``to_checksum_address`` (a keccak per call), kept: a view names the same few members'
    addresses on every read, a round's participants up to four times."""
    return str(to_checksum_address(address))


def _round_from_tuple(raw: Sequence[Any], params: Params | None = None) -> RoundInfo:
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
        draw_block,
        params_version,
        seed_stored,
        commit_bits,
        contributor_bits,
        ack_bits,
        left_bits,
    ) = raw
    members = tuple(_checksummed(a) for a in participants)
    return RoundInfo(
        round_id=int(round_id),
        state=RoundState(state),
        lapse_reason=LapseReason(lapse),
        base_model=bytes(base_model),
        attempt=int(attempt),
        participants=members,
        order=tuple(_checksummed(a) for a in order),
        merge_peer=_address_or_none(merge_peer),
        key_steward=_address_or_none(key_steward),
        key_hash=bytes(key_hash),
        aggregate_hash=bytes(aggregate_hash),
        final_model=bytes(final_model),
        contributors=tuple(_checksummed(a) for a in contributors),
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
        draw_block=int(draw_block),
        params_version=int(params_version),
        seed_stored=bool(seed_stored),
        commit_bits=int(commit_bits),
        contributor_bits=int(contributor_bits),
        ack_bits=int(ack_bits),
        left=bits_to_addresses(members, int(left_bits)),
        params=params,
    )


def _view_from_tuple(raw: Sequence[Any]) -> LedgerView:
    (
        block_number,
        block_time,
        current_round,
        last_finalized,
        finalized_count,
        latest_model,
        params_version,
        params,
        round_params,
        round_raw,
        commit_hashes,
        commit_samples,
        acks,
        _left,
        shares_hashes,
    ) = raw
    state = RoundState(round_raw[1])
    info = _round_from_tuple(
        round_raw, None if state == RoundState.NONE else params_from_tuple(round_params)
    )
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
        params_version=int(params_version),
        shares_hashes=MappingProxyType(
            {
                p: bytes(sh)
                for p, sh in zip(participants, shares_hashes, strict=True)
                if bytes(sh) != ZERO_HASH
            }
        ),
    )


__all__ = [
    "ADMIN_ROLE",
    "DEFAULT_ADMIN_ROLE",
    "EXACT_ESTIMATE",
    "ZERO_HASH",
    "GasPolicy",
    "LedgerClient",
    "LedgerError",
    "TxResult",
    "bits_to_addresses",
    "check_member_card",
    "contributor_bits",
    "epsilon_to_micro",
    "member_card",
    "micro_to_epsilon",
    "params_from_tuple",
    "params_to_tuple",
]
