"""P2PConfig and TransferPolicy: TCP only, sane deadlines, inbound fairness limits."""

from __future__ import annotations

import pytest

from swarm.errors import ConfigError
from swarm.p2p.config import P2PConfig, TransferPolicy


@pytest.mark.parametrize(
    "addr",
    [
        "/ip4/0.0.0.0/udp/4001/quic-v1",
        "/ip4/127.0.0.1/tcp/4001/ws",
        "/ip4/127.0.0.1/tcp/99999",
        "127.0.0.1:4001",
        "/ip4/127.0.0.1/tcp/4001/p2p-circuit/p2p/x",
    ],
)
def test_only_tcp_listen_addresses(addr: str) -> None:
    with pytest.raises(ConfigError):
        P2PConfig(listen_addrs=(addr,))


def test_tcp_addresses_are_accepted() -> None:
    config = P2PConfig(listen_addrs=("/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/0"))
    assert config.listen_addrs == ("/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/0")


def test_inbound_fairness_defaults_and_limits() -> None:
    """Fault: without a per-sender cap one member can take every inbound slot; without a bound
    on the wait for a slot, a sender times out instead of hearing "busy"."""
    config = P2PConfig()
    assert config.max_inbound_per_sender == 2
    assert 0 < config.inbound_slot_wait_s < config.transfer.base_timeout_s
    for bad in (
        {"max_inbound_per_sender": 0},
        {"inbound_slot_wait_s": 0},
        {"max_concurrent_inbound": 0},
    ):
        with pytest.raises(ConfigError):
            P2PConfig(**bad)  # type: ignore[arg-type]


def test_deadline_grows_with_size_and_backoff_doubles_up_to_its_cap() -> None:
    policy = TransferPolicy(
        base_timeout_s=10, min_rate_bytes_per_s=1e6, backoff_s=1, max_backoff_s=3
    )
    assert policy.deadline_s(0) == 10
    assert policy.deadline_s(5_000_000) == 15
    assert [policy.backoff_before(n) for n in (1, 2, 3, 4, 5)] == [0, 1, 2, 3, 3]
    with pytest.raises(ConfigError):
        TransferPolicy(attempts=0)


def test_single_attempt_keeps_the_deadlines() -> None:
    """Fault: the peer re-checks the ledger between tries, so it needs a one-try policy that
    is otherwise the configured one."""
    policy = TransferPolicy(attempts=5, base_timeout_s=7, connect_timeout_s=2)
    once = policy.single_attempt()
    assert once.attempts == 1
    assert (once.base_timeout_s, once.connect_timeout_s) == (7, 2)
    assert policy.attempts == 5  # frozen: the original is untouched


def test_the_bulk_port_is_a_port_any_port_or_off() -> None:
    """Guard: the bulk channel listens on any free port by default (told to callers over
    libp2p), a fixed port for a firewall, or not at all; anything else is a config error."""
    assert P2PConfig().bulk_port == 0
    assert P2PConfig(bulk_port=4002).bulk_port == 4002
    assert P2PConfig(bulk_port=None).bulk_port is None
    for bad in (-1, 65536):
        with pytest.raises(ConfigError):
            P2PConfig(bulk_port=bad)
