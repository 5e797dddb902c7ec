"""Everything an audit reads from the chain, in one snapshot: events, the newest round's derived
state, and the facts the verifier checks the events against. Needs no key.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from swarm.audit.history import ConsortiumHistory, build_history
from swarm.audit.verify import ChainFacts
from swarm.errors import ChainUnavailableError
from swarm.ledger.artifacts import load_artifact
from swarm.ledger.client import LedgerClient
from swarm.ledger.types import RoundInfo


@dataclass(frozen=True)
class LedgerSnapshot:
    contract: str
    chain_url: str
    block_number: int  # events were read up to and including this block
    history: ConsortiumHistory
    current: RoundInfo | None  # the newest round as the contract's views derive it now
    facts: ChainFacts


def read_ledger(ledger: LedgerClient) -> LedgerSnapshot:
    """Read the whole history of ``ledger``'s contract, and what verifying it needs."""
    w3 = ledger.w3
    try:
        # The view and the events at one block: a round cannot move between the two reads.
        view = ledger.view()
        block = view.block_number
        history = build_history(ledger.events(to_block=block))
        current = view.round
        # Each round's seed mixes in the hash of the block before the one that closed its
        # join window: one header per round.
        parents = {
            e.block_number: bytes(w3.eth.get_block(e.block_number - 1)["hash"])
            for e in history.events
            if e.name == "JoinClosed"
        }
        code = bytes(w3.eth.get_code(ledger.address))
    except (requests.ConnectionError, requests.Timeout, ConnectionError) as exc:
        if isinstance(exc, ChainUnavailableError):
            raise
        raise ChainUnavailableError(
            f"reading the ledger: the chain cannot be reached ({exc})"
        ) from exc
    shipped = bytes.fromhex(load_artifact().deployed_bytecode.removeprefix("0x"))
    facts = ChainFacts(ledger.address, code == shipped, parents)
    return LedgerSnapshot(ledger.address, ledger.chain.url, block, history, current, facts)
