"""Configuration of the peer network: frozen values, parsed once at the edge and passed down."""

from __future__ import annotations

import ipaddress
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
    """The libp2p side of a peer's config file.

    Where a peer *listens* and what it *announces* are separate. Others never dial what a peer
    announces: they dial the multiaddrs the ledger lists for it (``swarm admin add-member
    --multiaddr``, ``swarm peer set-address``). The announcement is what identify tells
    connected peers, and it is never an unspecified address (``0.0.0.0``, ``::``): see
    :func:`addresses_to_announce`.
    """

    #: TCP multiaddrs to listen on, e.g. ``/ip4/0.0.0.0/tcp/4001`` (every interface)
    listen_addrs: tuple[str, ...] = ("/ip4/0.0.0.0/tcp/4001",)
    #: what identify announces, e.g. ``/ip4/203.0.113.10/tcp/4001``; empty: the listen addresses
    #: that are specific (not 0.0.0.0 / ::), or nothing
    announce_addrs: tuple[str, ...] = ()
    #: how often the member list is re-read from the ledger
    membership_poll_s: float = 5.0
    #: keep a connection to every active member, so a transfer rarely waits for a dial
    connect_to_members: bool = True
    #: inbound payload transfers read at once (each holds its payload in memory, or, with a
    #: disk store, a piece of it)
    max_concurrent_inbound: int = 8
    #: pushes this peer sends at once, all kinds together; the others wait their turn before
    #: their deadline starts. A masked round at n peers has every peer push ~n shares and ~n
    #: reveals at once: on a loaded machine they all crawled together and timed out together
    #: (at 30 peers on 2 cores, hundreds of reveal pushes a round), each retry adding load.
    max_concurrent_outbound: int = 4
    #: inbound pushes one member may have reading or waiting for a slot at once; more are
    #: refused at once (``sender_busy``), so one member cannot take every slot
    max_inbound_per_sender: int = 2
    #: how long an accepted push waits for one of the ``max_concurrent_inbound`` slots before it
    #: is refused ``busy``; keep it below the senders' ``transfer.base_timeout_s``, so they hear
    #: the refusal instead of timing out
    inbound_slot_wait_s: float = 5.0
    #: fetches (aggregates, models) served at once; a fetch that names other providers is
    #: refused ``busy`` when none is free (it turns to a member that holds the blob too), one
    #: that does not waits up to ``inbound_slot_wait_s``
    max_concurrent_serves: int = 4
    transfer: TransferPolicy = field(default_factory=TransferPolicy)
    #: bounded wait for closing connections and services at shutdown
    shutdown_timeout_s: float = 5.0
    #: before listening, ask the addresses the ledger lists for us whether a peer with our key
    #: already answers there (DuplicatePeerError); this long per address at most
    duplicate_probe_timeout_s: float = 3.0
    #: the bulk channel (swarm/p2p/bulk.py): payloads of 256 KiB and more move over TLS 1.3 on
    #: this TCP port, on the host of the first listen address, after a libp2p stream admitted
    #: them. 0: any free port (it is told to callers on the libp2p stream); set a fixed port
    #: where a firewall must let it in. None: no bulk listener (everything over libp2p).
    #: Callers that cannot reach it fall back to the libp2p stream.
    bulk_port: int | None = 0

    def __post_init__(self) -> None:
        if self.bulk_port is not None and not 0 <= self.bulk_port < 65536:
            raise ConfigError(f"bulk_port {self.bulk_port} is not a TCP port (0: any free one)")
        if not self.listen_addrs:
            raise ConfigError("at least one listen address is needed")
        for addr in self.listen_addrs:
            check_tcp_multiaddr(addr)
        for addr in self.announce_addrs:
            check_dialable_multiaddr(addr, what="announce address")
        if self.membership_poll_s <= 0:
            raise ConfigError("membership poll interval must be positive")
        if self.max_concurrent_serves < 1:
            raise ConfigError("max_concurrent_serves must be at least 1")
        if (
            self.max_concurrent_inbound < 1
            or self.max_inbound_per_sender < 1
            or self.max_concurrent_outbound < 1
        ):
            raise ConfigError("inbound and outbound concurrency limits must be at least 1")
        if self.inbound_slot_wait_s <= 0:
            raise ConfigError("the wait for an inbound slot must be positive")
        if self.duplicate_probe_timeout_s < 0:
            raise ConfigError("the duplicate-peer probe timeout must not be negative")


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


def _parts(addr: str) -> list[str]:
    return addr.strip("/").split("/")


def multiaddr_host(addr: str) -> tuple[str, str]:
    """(protocol, host) of a checked TCP multiaddr: ``("ip4", "10.0.0.5")``."""
    parts = _parts(addr)
    return parts[0], parts[1]


def multiaddr_port(addr: str) -> int:
    """The TCP port of a checked TCP multiaddr."""
    return int(_parts(addr)[3])


def is_unspecified(addr: str) -> bool:
    """Whether a TCP multiaddr names no host to dial: ``0.0.0.0`` or ``::`` ("every
    interface"), which a dialer would take for itself."""
    proto, host = multiaddr_host(addr)
    if proto not in ("ip4", "ip6"):
        return False
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def check_dialable_multiaddr(addr: str, *, what: str = "address") -> None:
    """A TCP multiaddr another host can dial: a specific host and a port other than 0."""
    check_tcp_multiaddr(addr)
    proto, host = multiaddr_host(addr)
    if proto in ("ip4", "ip6"):
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise ConfigError(f"{what} {addr!r}: {host!r} is not an IP address") from exc
    if is_unspecified(addr):
        raise ConfigError(
            f"{what} {addr!r} is not dialable: {host} means every interface of the listener; "
            "give the address others reach this peer at, e.g. /ip4/203.0.113.10/tcp/4001"
        )
    if multiaddr_port(addr) == 0:
        raise ConfigError(f"{what} {addr!r} is not dialable: port 0 is not a port to dial")


def dialable_multiaddrs(addrs: Sequence[str], *, what: str = "address") -> tuple[str, ...]:
    for addr in addrs:
        check_dialable_multiaddr(addr, what=what)
    return tuple(addrs)


def addresses_to_announce(announce: Sequence[str], listening: Sequence[str]) -> tuple[str, ...]:
    """What a peer announces (identify's listen addresses and signed peer record).

    ``announce`` if given; otherwise the addresses it listens on (ports resolved) that are
    specific, i.e. not ``0.0.0.0`` / ``::`` and not port 0; otherwise nothing. Never an
    unspecified address: identify's signed peer record *replaces* the receiver's address book
    for the peer (py-libp2p 0.8.1), and a dialer takes 0.0.0.0 for itself.
    """
    if announce:
        return tuple(announce)
    return tuple(a for a in listening if not is_unspecified(a) and multiaddr_port(a) != 0)
