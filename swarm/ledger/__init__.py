"""The ledger: the consortium's two smart contracts (Consortium: members, admins, parameters;
SwarmLedger: the rounds), through one typed client.

Two backends behind one interface (:mod:`swarm.ledger.chain`): an embedded py-evm chain in this
process, and any EVM node over JSON-RPC (an anvil that ``localnet`` starts, or a consortium's own
chain).
"""

from swarm.ledger.chain import EMBEDDED, Chain, EmbeddedChain, RpcChain, connect
from swarm.ledger.client import (
    ADMIN_ROLE,
    EXACT_ESTIMATE,
    GasPolicy,
    LedgerClient,
    TxResult,
    bits_to_addresses,
    check_member_card,
    contributor_bits,
    member_card,
)
from swarm.ledger.events import LedgerEvent
from swarm.ledger.types import LapseReason, LedgerView, Member, Params, RoundInfo, RoundState

__all__ = [
    "ADMIN_ROLE",
    "EMBEDDED",
    "EXACT_ESTIMATE",
    "Chain",
    "EmbeddedChain",
    "GasPolicy",
    "LapseReason",
    "LedgerClient",
    "LedgerEvent",
    "LedgerView",
    "Member",
    "Params",
    "RoundInfo",
    "RoundState",
    "RpcChain",
    "TxResult",
    "bits_to_addresses",
    "check_member_card",
    "connect",
    "contributor_bits",
    "member_card",
]
