"""swarm.peer.catchup.catch_up when the peer's own adoption wins the race (no I/O: a peer
double with the fields catch_up reads).

Race between honest steps: a key holder whose decryption ends after the round finalized is
sent to fetch the model, then adopts the one it decrypted itself (decide lets the adoption
run beside the fetch). The fetch must then stop: no second checkpoint, no "caught up"."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
import trio

from swarm.peer.actions import CatchUp
from swarm.peer.catchup import catch_up
from swarm.training.checkpoint import model_bytes

OLD, NEW = b"\x01" * 32, b"\x02" * 32
ME, OTHER = "0x" + "aa" * 20, "0x" + "bb" * 20


def _peer(adopted_during_fetch: bool, adopted_before: bool = False) -> tuple[Any, list[str]]:
    happened: list[str] = []
    state = {"w": torch.zeros(3)}
    model = SimpleNamespace(
        swarm_state=state,
        hash=NEW if adopted_before else OLD,
        conform=lambda *_: None,
        adopt=lambda *_: happened.append("adopt"),
    )

    async def fetch_model(source: str, digest: bytes, *, max_size: int) -> bytes:
        happened.append(f"fetch {source}")
        if adopted_during_fetch:
            model.hash = NEW  # our own Adopt finished meanwhile
        return model_bytes(state)

    async def call(fn: Any, *args: Any) -> Any:
        return fn(*args)

    peer = SimpleNamespace(
        me=ME,
        model=model,
        call=call,
        net=SimpleNamespace(members=lambda: [OTHER], fetch_model=fetch_model),
        ledger=SimpleNamespace(view=lambda _round: SimpleNamespace(acks={OTHER: NEW})),
        emit=lambda event, **_: happened.append(event),
    )
    return peer, happened


def test_a_fetch_stops_once_our_own_adoption_made_the_model_ours() -> None:
    peer, happened = _peer(adopted_during_fetch=True)
    trio.run(catch_up, peer, CatchUp(5, NEW))
    assert happened == [f"fetch {OTHER}"]  # fetched, then nothing adopted a second time


def test_a_fetch_that_starts_after_our_adoption_fetches_nothing() -> None:
    peer, happened = _peer(adopted_during_fetch=False, adopted_before=True)
    trio.run(catch_up, peer, CatchUp(5, NEW))
    assert happened == []
