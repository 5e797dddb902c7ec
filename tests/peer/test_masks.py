"""The peer's side of masking that needs no network (swarm.peer.masks).

Faults exercised: a peer restarted between its commitment and handing out its mask shares (the
shares it made, each sealed to its holder, are on disk, so it hands them out after the restart
and its committed update still counts; a data directory without them leaves the update out);
a reveal that comes after the round moved on.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from swarm.ledger import RoundState
from swarm.p2p import BlobKind, PushRequest
from swarm.peer import masks
from tests.peer.test_decide import A, B, ledger, rnd


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


def _reveal_from(sender: str) -> PushRequest:
    return PushRequest(sender=sender, kind=BlobKind.REVEAL, round_id=5, digest=b"\1" * 32, size=9)


def test_a_reveal_after_the_round_moved_past_acknowledging_is_refused_as_not_needed() -> None:
    """Fault: a late reveal (its sender was the last to see the aggregate; the key holders had
    acknowledged and the round finalized). It is refused saying so, not as one that came
    before the contributors were named: the sender's step is then moot, not a warning."""
    holder = SimpleNamespace(me=A)  # A is a key holder of rnd(): not the merge peer C
    for state in (RoundState.FINALIZED, RoundState.LAPSED):
        refusal = masks._reveal_refusal(holder, _reveal_from(B), ledger(rnd(state)))
        assert refusal is not None and "past acknowledging" in refusal
    early = masks._reveal_refusal(holder, _reveal_from(B), ledger(rnd(RoundState.MERGING)))
    assert early is not None and "names the contributors" in early
    assert (
        masks._reveal_refusal(holder, _reveal_from(B), ledger(rnd(RoundState.ACKNOWLEDGING)))
        is None
    )
