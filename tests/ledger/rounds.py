"""Helpers that drive rounds through the ledger client, as peers would."""

from __future__ import annotations

from collections.abc import Iterable

from swarm.ledger import RoundInfo, RoundState
from tests.conftest import Consortium, h


def open_round(c: Consortium, opener: str | None = None) -> int:
    who = opener or c.addresses[0]
    return c.client(who).open_round(c.admin.latest_model())


def join_all(c: Consortium, round_id: int, joiners: Iterable[str] | None = None) -> RoundInfo:
    for a in joiners if joiners is not None else c.addresses:
        c.client(a).join(round_id)
    info = c.admin.round(round_id)
    return info


def run_to_merging(
    c: Consortium, round_id: int, samples: dict[str, int] | None = None
) -> RoundInfo:
    """Join everyone (unless the window already closed), post the key, commit from everyone."""
    info = c.admin.round(round_id)
    if info.state == RoundState.JOINING:
        info = join_all(c, round_id)
    c.client(info.key_steward).post_round_key(round_id, h(f"key-{round_id}-{info.attempt}"))
    for a in info.participants:
        n = (samples or {}).get(a, 10)
        c.client(a).commit_update(round_id, h(f"update-{round_id}-{a}"), n)
    return c.admin.round(round_id)


def finalize(c: Consortium, round_id: int, model: bytes) -> RoundInfo:
    info = c.admin.round(round_id)
    assert info.merge_peer is not None
    c.client(info.merge_peer).submit_aggregate(
        round_id, h(f"aggregate-{round_id}"), info.participants
    )
    for a in info.participants:
        if a != info.merge_peer:
            c.client(a).acknowledge(round_id, model)
    return c.admin.round(round_id)
