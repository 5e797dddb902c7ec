"""localnet.anvil.free_port: ports a local network writes into configs before anything listens.

Config error class: a peer whose port was taken in the meantime refuses to start. A port from
the kernel's ephemeral range (what binding port 0 gives) can be taken by any outgoing
connection on the host in those seconds; one below the range cannot (seen: a 4-peer local
network in which one peer refused to start, its port the source port of another's
connection).
"""

from __future__ import annotations

import socket

import pytest

from localnet import anvil
from localnet.anvil import ephemeral_range, free_port


def test_a_free_port_is_below_the_kernels_ephemeral_range_and_free() -> None:
    low, high = ephemeral_range()
    assert 1024 <= low <= high
    ports = {free_port() for _ in range(20)}
    assert all(1024 <= port < low for port in ports)
    assert len(ports) > 1  # drawn at random, not the same one every time
    port = ports.pop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free when handed out


def test_with_no_room_below_the_range_the_kernel_chooses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(anvil, "ephemeral_range", lambda: (1024, 65535))
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
