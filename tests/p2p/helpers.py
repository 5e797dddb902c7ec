"""Shared helpers for the p2p tests: free loopback ports, members, running trio from pytest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from localnet.anvil import free_port as free_port  # re-exported: the p2p tests take ports here
from swarm.identity import Identity
from swarm.ledger.types import Member
from swarm.p2p.config import P2PConfig, TransferPolicy
from swarm.p2p.host import P2PHost
from swarm.p2p.membership import MembershipGate, member_of_identity
from swarm.p2p.protocols import ProtocolServer
from swarm.p2p.store import BlobStore, MemoryBlobStore

#: a safety net against a hung test, never a measurement
TEST_DEADLINE_S = 60.0

#: short deadlines, so fault tests finish quickly
FAST_POLICY = TransferPolicy(
    attempts=2, base_timeout_s=3.0, backoff_s=0.1, max_backoff_s=0.2, connect_timeout_s=3.0
)


def loopback_addr(port: int) -> str:
    return f"/ip4/127.0.0.1/tcp/{port}"


def make_member(identity: Identity, port: int, name: str = "") -> Member:
    return member_of_identity(identity, [loopback_addr(port)], name=name or identity.address[:8])


def config_for(port: int, **changes: Any) -> P2PConfig:
    base: dict[str, Any] = {
        "listen_addrs": (loopback_addr(port),),
        "membership_poll_s": 0.1,
        "transfer": FAST_POLICY,
    }
    base.update(changes)
    return P2PConfig(**base)


def run_trio(fn: Callable[[], Awaitable[Any]], deadline_s: float = TEST_DEADLINE_S) -> Any:
    """Run an async test body under a hard deadline (pytest-trio is not used)."""

    async def main() -> Any:
        with trio.fail_after(deadline_s):
            return await fn()

    return trio.run(main)


def identities(n: int) -> list[Identity]:
    return [Identity.generate() for _ in range(n)]


def members_of(ids: Sequence[Identity], ports: Sequence[int]) -> list[Member]:
    return [make_member(i, p) for i, p in zip(ids, ports, strict=True)]


@asynccontextmanager
async def running_host(
    identity: Identity, port: int, members: Sequence[Member]
) -> AsyncIterator[P2PHost]:
    """A P2PHost listening on ``port`` whose gate admits ``members``."""
    gate = MembershipGate()
    gate.update(members)
    host = P2PHost(identity, gate, [loopback_addr(port)])
    async with host.running():
        yield host


@asynccontextmanager
async def serving_host(
    identity: Identity,
    port: int,
    members: Sequence[Member],
    store: BlobStore | None = None,
    policy: TransferPolicy = FAST_POLICY,
    **server_options: Any,
) -> AsyncIterator[tuple[P2PHost, ProtocolServer]]:
    """A running host that serves the swarm protocols from ``store`` (``server_options`` go to
    ProtocolServer: inbound limits, a status provider)."""
    async with running_host(identity, port, members) as host:
        server = ProtocolServer(host, store or MemoryBlobStore(), policy=policy, **server_options)
        server.install()
        yield host, server
