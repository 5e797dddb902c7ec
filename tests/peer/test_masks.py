"""The peer's side of masking that needs no network (swarm.peer.masks).

Fault exercised: a peer restarted between its commitment and handing out its mask shares. The
shares it made (each sealed to its holder) are on disk, so it hands them out after the restart
and its committed update still counts; a data directory without them leaves the update out.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from swarm.peer import masks


def fake_peer(tmp_path: Path) -> Any:
    """The one attribute the shares' persistence reads: a stand-in around the code under test."""
    return SimpleNamespace(config=SimpleNamespace(data_dir=tmp_path))


def test_shares_made_before_a_commitment_survive_a_restart(tmp_path: Path) -> None:
    peer = fake_peer(tmp_path)
    blobs = {"0x" + "AB" * 20: b"sealed to B", "0x" + "CD" * 20: b"sealed to C"}
    masks._save_outgoing(peer, 7, 1, blobs)
    assert masks._load_outgoing(peer, 7, 1) == blobs
    assert masks._load_outgoing(peer, 7, 0) == {}  # another attempt's are not ours to send


def test_a_new_round_forgets_the_shares_of_earlier_rounds(tmp_path: Path) -> None:
    peer = fake_peer(tmp_path)
    masks._save_outgoing(peer, 7, 0, {"0x" + "AB" * 20: b"old"})
    masks._save_outgoing(peer, 8, 0, {"0x" + "AB" * 20: b"new"})
    assert masks._load_outgoing(peer, 7, 0) == {}
    assert masks._load_outgoing(peer, 8, 0) == {"0x" + "AB" * 20: b"new"}


def test_an_unreadable_shares_file_reads_as_lost(tmp_path: Path) -> None:
    peer = fake_peer(tmp_path)
    masks._save_outgoing(peer, 3, 0, {"0x" + "AB" * 20: b"x"})
    path = tmp_path / "shares" / "round000003-attempt0.json"
    path.write_text("{not json")
    assert masks._load_outgoing(peer, 3, 0) == {}
