"""Shared fixtures: a consortium on the embedded chain (fast, in process)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from localnet.anvil import AnvilNode, start_anvil
from swarm.identity import Identity
from swarm.ledger import EmbeddedChain, LedgerClient, Params
from swarm.ledger.chain import Chain

WINDOW = 100  # seconds; every window of the test consortium


def h(label: str) -> bytes:
    """A 32-byte hash standing for a named artefact (model, ciphertext, key) in ledger tests."""
    return hashlib.sha256(label.encode()).digest()


def make_params(**changes: object) -> Params:
    base = dict(
        min_peers=3,
        join_window=WINDOW,
        key_window=WINDOW,
        commit_window=WINDOW,
        merge_window=WINDOW,
        ack_window=WINDOW,
        ckks_params_id=1,
        task_id=h("task"),
        initial_model_hash=h("model-0"),
        metrics_enabled=True,
    )
    base.update(changes)
    return Params(**base)  # type: ignore[arg-type]


@dataclass
class Consortium:
    """A deployed contract, its admin and N admitted hospitals, each with its own client."""

    chain: Chain
    admin: LedgerClient
    hospitals: list[Identity]
    clients: dict[str, LedgerClient] = field(default_factory=dict)

    def client(self, who: str | Identity) -> LedgerClient:
        address = who.address if isinstance(who, Identity) else who
        return self.clients[address]

    @property
    def addresses(self) -> list[str]:
        return [i.address for i in self.hospitals]

    def new_identity(self) -> Identity:
        ident = Identity.generate()
        self.chain.fund(ident.address, 10**20)
        return ident


def make_consortium(chain: Chain, n: int, params: Params | None = None) -> Consortium:
    admin = Identity.generate()
    chain.fund(admin.address, 10**20)
    ledger = LedgerClient.deploy(chain, admin, params or make_params())
    hospitals = []
    for i in range(n):
        ident = Identity.generate()
        chain.fund(ident.address, 10**20)
        ledger.add_member_identity(ident, f"Hospital {i}", [f"/ip4/127.0.0.1/tcp/{4000 + i}"])
        hospitals.append(ident)
    c = Consortium(chain, ledger, hospitals)
    c.clients = {i.address: ledger.as_identity(i) for i in hospitals}
    return c


@pytest.fixture
def chain() -> EmbeddedChain:
    return EmbeddedChain()


@pytest.fixture
def consortium_factory(chain: EmbeddedChain) -> Callable[..., Consortium]:
    def make(n: int = 4, **param_changes: object) -> Consortium:
        return make_consortium(chain, n, make_params(**param_changes))

    return make


@pytest.fixture
def consortium(consortium_factory: Callable[..., Consortium]) -> Consortium:
    return consortium_factory(4)


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[AnvilNode]:
    """A real anvil node for this test, its HOME and state in the test's temporary directory."""
    node = start_anvil(tmp_path / "anvil")
    try:
        yield node
    finally:
        node.stop()
