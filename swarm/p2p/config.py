"""Configuration of the peer network: frozen values, parsed once at the edge and passed down."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from swarm.errors import ConfigError


@dataclass(frozen=True)
class TransferPolicy:
    """Deadlines and retries of one transfer.

    Every attempt runs under ``deadline_s(size)``; a timed-out, interrupted or unreachable
    attempt, or a ``busy`` refusal, is retried up to ``attempts`` times in all, waiting
    ``backoff_s`` (doubling, capped) in between. Any other refusal is an answer and is not
    retried. ``attempts=1`` (see :meth:`single_attempt`) makes exactly one try and raises its
    failure at once: for a caller that re-checks the ledger before trying again.
    """

    attempts: int = 3
    base_timeout_s: float = 10.0
    #: the slowest rate a healthy transfer is expected to keep up; sets the size-dependent part
    min_rate_bytes_per_s: float = 2_000_000.0
    backoff_s: float = 0.5
    max_backoff_s: float = 5.0
    connect_timeout_s: float = 10.0
    chunk_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("a transfer needs at least one attempt")
        if self.base_timeout_s <= 0 or self.min_rate_bytes_per_s <= 0:
            raise ConfigError("transfer deadlines must be positive")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.connect_timeout_s <= 0:
            raise ConfigError("backoff and connect timeout must be non-negative / positive")

    def single_attempt(self) -> TransferPolicy:
        """The same deadlines, one try: the caller decides whether and when to try again."""
        return replace(self, attempts=1)

    def deadline_s(self, size: int) -> float:
        return self.base_timeout_s + size / self.min_rate_bytes_per_s

    def backoff_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (1-based; 0 before the first)."""
        if attempt <= 1:
            return 0.0
        return float(min(self.backoff_s * 2 ** (attempt - 2), self.max_backoff_s))


@dataclass(frozen=True)
class P2PConfig:
    """The libp2p side of a peer's config file."""

    #: TCP multiaddrs to listen on, e.g. ``/ip4/0.0.0.0/tcp/4001``
    listen_addrs: tuple[str, ...] = ("/ip4/0.0.0.0/tcp/4001",)
    #: how often the member list is re-read from the ledger
    membership_poll_s: float = 5.0
    #: keep a connection to every active member, so a transfer rarely waits for a dial
    connect_to_members: bool = True
    #: inbound payload transfers read at once (each holds its payload in memory)
    max_concurrent_inbound: int = 8
    #: inbound pushes one member may have reading or waiting for a slot at once; more are
    #: refused at once (``sender_busy``), so one member cannot take every slot
    max_inbound_per_sender: int = 2
    #: how long an accepted push waits for one of the ``max_concurrent_inbound`` slots before it
    #: is refused ``busy``; keep it below the senders' ``transfer.base_timeout_s``, so they hear
    #: the refusal instead of timing out
    inbound_slot_wait_s: float = 5.0
    transfer: TransferPolicy = field(default_factory=TransferPolicy)
    #: bounded wait for closing connections and services at shutdown
    shutdown_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.listen_addrs:
            raise ConfigError("at least one listen address is needed")
        for addr in self.listen_addrs:
            check_tcp_multiaddr(addr)
        if self.membership_poll_s <= 0:
            raise ConfigError("membership poll interval must be positive")
        if self.max_concurrent_inbound < 1 or self.max_inbound_per_sender < 1:
            raise ConfigError("inbound concurrency limits must be at least 1")
        if self.inbound_slot_wait_s <= 0:
            raise ConfigError("the wait for an inbound slot must be positive")


def check_tcp_multiaddr(addr: str) -> None:
    """Only plain TCP is allowed: no QUIC, websockets or relays, whose stacks we do not gate."""
    parts = addr.strip("/").split("/")
    if len(parts) not in (4, 6) or parts[0] not in ("ip4", "ip6", "dns4", "dns6"):
        raise ConfigError(f"{addr!r} is not a TCP multiaddr like /ip4/0.0.0.0/tcp/4001")
    if parts[2] != "tcp" or not parts[3].isdigit() or not 0 <= int(parts[3]) <= 65535:
        raise ConfigError(f"{addr!r} is not a TCP multiaddr like /ip4/0.0.0.0/tcp/4001")
    if len(parts) == 6 and parts[4] != "p2p":
        raise ConfigError(f"{addr!r}: only a /p2p/<PeerID> suffix may follow the port")


def tcp_multiaddrs(addrs: Sequence[str]) -> tuple[str, ...]:
    for addr in addrs:
        check_tcp_multiaddr(addr)
    return tuple(addrs)
