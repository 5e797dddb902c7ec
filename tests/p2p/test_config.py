"""P2PConfig and TransferPolicy: TCP only, sane deadlines."""

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
    assert config.heartbeat_s == 1
    assert config.max_announcement_bytes == 64 * 1024


def test_announcements_cannot_be_configured_above_64_kib() -> None:
    with pytest.raises(ConfigError):
        P2PConfig(max_announcement_bytes=1 << 20)


def test_deadline_grows_with_size_and_backoff_doubles_up_to_its_cap() -> None:
    policy = TransferPolicy(
        base_timeout_s=10, min_rate_bytes_per_s=1e6, backoff_s=1, max_backoff_s=3
    )
    assert policy.deadline_s(0) == 10
    assert policy.deadline_s(5_000_000) == 15
    assert [policy.backoff_before(n) for n in (1, 2, 3, 4, 5)] == [0, 1, 2, 3, 3]
    with pytest.raises(ConfigError):
        TransferPolicy(attempts=0)
