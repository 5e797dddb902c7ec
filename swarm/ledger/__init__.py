"""The ledger: the consortium's smart contract, through one typed client.

Two backends behind one interface (:mod:`swarm.ledger.chain`): an embedded py-evm chain in this
process, and any EVM node over JSON-RPC (an anvil that ``localnet`` starts, or a consortium's own
chain).
"""

from swarm.ledger.chain import EMBEDDED, Chain, EmbeddedChain, RpcChain, connect
from swarm.ledger.client import (
    EXACT_ESTIMATE,
    GasPolicy,
    LedgerClient,
    TxResult,
    check_member_card,
    member_card,
)
from swarm.ledger.events import LedgerEvent
from swarm.ledger.types import LapseReason, LedgerView, Member, Params, RoundInfo, RoundState

__all__ = [
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
    "check_member_card",
    "connect",
    "member_card",
]
