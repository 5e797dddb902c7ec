"""Everything an audit reads from the chain, in one snapshot: both contracts' events, the newest
round's derived state, and the facts the verifier checks the events against (each round's draw
block hash, both contracts' code). Needs no key.
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
    contract: str  # the SwarmLedger
    chain_url: str
    block_number: int  # events were read up to and including this block
    history: ConsortiumHistory
    current: RoundInfo | None  # the newest round as the contract's views derive it now
    facts: ChainFacts
    consortium: str | None = None  # the Consortium the SwarmLedger reads


def shipped_code(name: str) -> bytes:
    """The runtime code this version of swarm ships for contract ``name``."""
    return bytes.fromhex(load_artifact(name).deployed_bytecode.removeprefix("0x"))


def code_matches(name: str, code: bytes, immutables: tuple[str, ...] = ()) -> bool:
    """Whether ``code`` (read from the chain) is the shipped runtime code of ``name``.

    The compiler leaves an immutable's slots zero in the shipped code and the constructor fills
    them in: each address in ``immutables`` (the SwarmLedger's consortium) is zeroed again in
    ``code`` before the comparison."""
    for address in immutables:
        word = bytes(12) + bytes.fromhex(address.removeprefix("0x"))
        code = code.replace(word, bytes(32))
    return code == shipped_code(name)


def read_ledger(ledger: LedgerClient) -> LedgerSnapshot:
    """Read the whole history of ``ledger``'s two contracts, and what verifying it needs."""
    w3 = ledger.w3
    try:
        # The view and the events at one block: a round cannot move between the two reads.
        view = ledger.view()
        block = view.block_number
        history = build_history(ledger.events(to_block=block))
        current = view.round
        # Each round's seed mixes in the hash of its draw block (the block after the one that
        # closed its join window): one header per round, once that block exists.
        draws = {
            int(e.args["drawBlock"])
            for e in history.events
            if e.name == "JoinClosed" and int(e.args["drawBlock"]) <= block
        }
        hashes = {n: bytes(w3.eth.get_block(n)["hash"]) for n in sorted(draws)}
        ledger_code = bytes(w3.eth.get_code(ledger.address))
        consortium_code = bytes(w3.eth.get_code(ledger.consortium_address))
    except (requests.ConnectionError, requests.Timeout, ConnectionError) as exc:
        if isinstance(exc, ChainUnavailableError):
            raise
        raise ChainUnavailableError(
            f"reading the ledger: the chain cannot be reached ({exc})"
        ) from exc
    problems = []
    if not code_matches("SwarmLedger", ledger_code, (ledger.consortium_address,)):
        problems.append(f"the SwarmLedger at {ledger.address}")
    if not code_matches("Consortium", consortium_code):
        problems.append(f"the Consortium at {ledger.consortium_address}")
    facts = ChainFacts(
        ledger.address,
        not problems,
        hashes,
        consortium=ledger.consortium_address,
        code_problem=" and ".join(problems) or None,
    )
    return LedgerSnapshot(
        ledger.address,
        ledger.chain.url,
        block,
        history,
        current,
        facts,
        consortium=ledger.consortium_address,
    )
