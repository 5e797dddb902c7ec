"""What swarm.p2p ships: no pubsub, no test harness; the round-key API is exported."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

import swarm.p2p
from swarm.identity import Identity
from tests.support.node import NodeProcess

P2P_SOURCES = sorted(Path(swarm.p2p.__file__).parent.glob("*.py"))


def test_no_pubsub_module_or_import_is_left() -> None:
    """Fault: py-libp2p's pubsub handler lets a malformed protobuf stop the host; the
    announcer that built it must be gone, and nothing in swarm.p2p may import pubsub."""
    assert importlib.util.find_spec("swarm.p2p.announce") is None
    for source in P2P_SOURCES:
        assert "libp2p.pubsub" not in source.read_text(), source.name
    for name in (
        "Announcement",
        "AnnouncementKind",
        "ReceivedAnnouncement",
        "MAX_ANNOUNCEMENT_BYTES",
    ):
        assert not hasattr(swarm.p2p, name)


def test_the_node_harness_lives_in_tests_support() -> None:
    """Fault: the scriptable node process is a test and benchmark harness, not library code;
    it moved to tests.support.node, and the processes it starts run that module."""
    assert importlib.util.find_spec("swarm.p2p.node") is None
    node = NodeProcess(Identity.generate(), "/ip4/127.0.0.1/tcp/1", Path("members.json"))
    assert node.args[1:3] == ["-m", "tests.support.node"]


def test_round_key_bundle_is_exported_and_frozen() -> None:
    """Fault: the peer imports the round-key API from swarm.p2p."""
    bundle = swarm.p2p.RoundKeyBundle(context=b"ctx", sealed_key=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        bundle.context = b"other"  # type: ignore[misc]
    assert swarm.p2p.ROUND_KEY_FETCH_PROTOCOL == "/swarm/roundkey-fetch/1.0.0"
    assert callable(swarm.p2p.P2PService.serve_round_keys)
    assert callable(swarm.p2p.P2PService.fetch_round_key)
