"""The peer's side of masking that needs no network (swarm.peer.masks).

Faults exercised: a peer restarted between its commitment and handing out its mask shares (the
shares it made, each sealed to its holder, are on disk, so it hands them out after the restart
and its committed update still counts; a data directory without them leaves the update out);
a reveal that comes after the round moved on, and the revealer's side of that race (its step
is moot once the ledger shows the round over, and retried while it does not).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from swarm.errors import P2PError
from swarm.ledger import LedgerView, RoundState
from swarm.p2p import BlobKind, PushRequest
from swarm.peer import masks
from swarm.peer.actions import PushReveal
from swarm.peer.work import ActionSupersededError, RoundWork
from tests.peer.test_decide import M0, A, B, C, D, ledger, rnd


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


class LateRevealer:
    """A revealer whose reveal is built and whose pushes every key holder refuses as late:
    the attributes push_reveal uses, around the code under test."""

    def __init__(self, after: LedgerView) -> None:
        self.info = rnd(RoundState.ACKNOWLEDGING, contributors=(A, B, C, D))
        self.work = RoundWork(5, M0)
        self.work.reveal = b"our reveal"
        self.work.reveal_confirmed = {D}
        self.after = after
        self.me = D
        self.net = SimpleNamespace(
            config=SimpleNamespace(transfer=SimpleNamespace(single_attempt=lambda: None)),
            push_reveal=self._refused,
        )

    async def _refused(self, address: str, round_id: int, data: bytes, policy: Any) -> None:
        raise P2PError("refused: round 5 is past acknowledging: no reveal is needed any more")

    def round_of(self, round_id: int, attempt: int) -> Any:
        return self.info

    def work_for(self, round_id: int) -> RoundWork:
        return self.work

    async def fresh_view(self) -> LedgerView:
        return self.after


def test_a_revealer_refused_as_late_is_moot_once_the_ledger_shows_the_round_over() -> None:
    """Race between honest peers: the key holders acknowledged (the round finalized) before
    our reveal reached them. Our step is moot (no WARNING, no retry); while the ledger still
    shows the round acknowledging it fails and is retried, as a reveal that was not delivered."""
    finalized = LateRevealer(ledger(rnd(RoundState.FINALIZED)))
    with pytest.raises(ActionSupersededError, match="moved on before every reveal"):
        trio.run(masks.push_reveal, finalized, PushReveal(5, 0))
    still = LateRevealer(ledger(rnd(RoundState.ACKNOWLEDGING)))
    with pytest.raises(P2PError, match="reveal not yet with"):
        trio.run(masks.push_reveal, still, PushReveal(5, 0))
    assert not finalized.work.revealed and not still.work.revealed
