"""One peer per port: the check made before a peer starts listening.

py-libp2p 0.8.1's TCP listener sets SO_REUSEPORT, so a second process can listen on a port that
is already in use, silently taking some of its connections; both start without a word and spoil
rounds. This check refuses it with one line (PortInUseError). Whether a peer with our *key*
already answers at the address the ledger lists needs a libp2p host:
``host.own_key_answers_at``; `swarm peer run` also locks its data directory (cli/pidfile.py).
"""

from __future__ import annotations

import errno
import logging
import socket

from swarm.errors import ConfigError, PortInUseError
from swarm.p2p.config import multiaddr_host, multiaddr_port

logger = logging.getLogger(__name__)


def check_can_listen(addr: str) -> None:
    """Refuse a listen address whose port another socket already listens on (PortInUseError),
    or that this machine cannot listen on at all (ConfigError), before libp2p tries.

    Binds a throwaway socket *without* SO_REUSEPORT (with SO_REUSEADDR, so connections of a
    previous run still in TIME_WAIT do not count): the bind fails exactly when a listener holds
    the port, whether on the same address or on 0.0.0.0 / ``::``. Port 0 (any free port) and
    DNS names are not checked. A second process that binds in the few milliseconds between this
    check and libp2p's listen is not caught; the data directory's lock and the key probe cover
    a second peer of the same member.
    """
    proto, host = multiaddr_host(addr)
    port = multiaddr_port(addr)
    if port == 0 or proto not in ("ip4", "ip6"):
        return
    family = socket.AF_INET if proto == "ip4" else socket.AF_INET6
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"cannot listen on {addr}: port {port} is already in use on this host "
                    "(another peer, or another program); stop it or choose another port"
                ) from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(
                    f"cannot listen on {addr}: {host} is not an address of this host "
                    "(listen on /ip4/0.0.0.0/tcp/PORT, or on one of this host's addresses)"
                ) from exc
            raise ConfigError(f"cannot listen on {addr}: {exc.strerror or exc}") from exc
