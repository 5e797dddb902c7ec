"""Helpers that drive rounds through the ledger client, as peers would."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import pytest

from swarm.identity import Identity
from swarm.ledger import LedgerClient, RoundInfo, RoundState
from tests.conftest import Consortium, h

#: a stand-in mask-share manifest hash: the test consortia mask (maskThresholdPct 66, the
#: default), so every commitment carries a nonzero one
SHARES = hashlib.sha256(b"shares").digest()


def _build_without_estimate(self: LedgerClient, fn: Any) -> dict[str, Any]:
    sender = self._signer().address
    nonce = self.w3.eth.get_transaction_count(sender, "pending")
    return dict(fn.build_transaction({"from": sender, "nonce": nonce, "gas": 2_000_000}))


def skip_gas_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every client transaction with a fixed gas limit instead of eth-tester's estimate (a
    binary search of executions: most of a round's time), for tests that are not about gas.
    A refusal then comes from the mined transaction's replay: the same typed error."""
    monkeypatch.setattr(LedgerClient, "_build", _build_without_estimate)


def encryption_card(identity: Identity) -> tuple[bytes, bytes]:
    """(X25519 public key, the identity key's signature over it) as the contract checks them."""
    return identity.encryption_public_key, identity.encryption_key_signature()


def open_round(c: Consortium, opener: str | None = None) -> int:
    who = opener or c.addresses[0]
    return c.client(who).open_round(c.admin.latest_model())


def draw(c: Consortium, round_id: int) -> RoundInfo:
    """Mine past the draw block (the embedded chain mines only on transactions): the block whose
    hash seeds the roles, and one more so that views at the latest block see it."""
    info = c.admin.round(round_id)
    if info.state == RoundState.DRAWING:
        c.chain.mine(max(1, info.draw_block - c.chain.w3.eth.block_number + 1))
        info = c.admin.round(round_id)
    return info


def join_all(c: Consortium, round_id: int, joiners: Iterable[str] | None = None) -> RoundInfo:
    """Join ``joiners`` (default: everyone); if that closed the window, mine past the draw."""
    for a in joiners if joiners is not None else c.addresses:
        c.client(a).join(round_id)
    return draw(c, round_id)


def run_to_merging(
    c: Consortium, round_id: int, samples: dict[str, int] | None = None
) -> RoundInfo:
    """Join everyone (unless the window already closed), post the key, commit from everyone."""
    info = draw(c, round_id)
    if info.state == RoundState.JOINING:
        info = join_all(c, round_id)
    assert info.key_steward is not None
    c.client(info.key_steward).post_round_key(round_id, h(f"key-{round_id}-{info.attempt}"))
    for a in info.participants:
        n = (samples or {}).get(a, 10)
        c.client(a).commit_update(round_id, h(f"update-{round_id}-{a}"), n, shares_hash=SHARES)
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
