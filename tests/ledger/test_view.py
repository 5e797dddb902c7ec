"""``LedgerClient.view``: one ``eth_call`` (``peerView``) that returns what a peer used to read
with ~6 separate calls, all from one block. Checked against the individual getters in every
round state, and for the number of requests it costs.

The fault it removes: a peer's reads straddling blocks (a round read at one block, its
commitments or the latest model at the next), so that it decided from a state that never was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from web3 import Web3
from web3.middleware import Web3Middleware

from swarm.ledger import LapseReason, LedgerClient, LedgerView, RoundState
from tests.conftest import WINDOW, Consortium, h
from tests.ledger.rounds import SHARES, finalize, join_all, open_round, run_to_merging

ZERO = b"\0" * 32


def check_view(ledger: LedgerClient, round_id: int = 0) -> LedgerView:
    """The view, asserted equal to what the individual getters say at the same block."""
    v = ledger.view(round_id)
    assert v.block_number == ledger.w3.eth.block_number
    assert v.block_time == ledger.chain.timestamp()
    assert v.current_round == ledger.current_round()
    assert v.last_finalized == ledger.last_finalized_round()
    assert v.finalized_count == ledger.finalized_count()
    assert v.latest_model == ledger.latest_model()
    assert v.params == ledger.params()
    rid = round_id or v.current_round
    if rid == 0 or rid > v.current_round:
        assert v.round is None
        assert not v.commitments and not v.acks
        return v
    info = ledger.round(rid)
    assert v.round == info
    commitments = {p: ledger.commitment(rid, info.attempt, p) for p in info.participants}
    assert dict(v.commitments) == {p: c for p, c in commitments.items() if c[0] != ZERO}
    acks = {p: ledger.ack(rid, p) for p in info.participants}
    assert dict(v.acks) == {p: a for p, a in acks.items() if a != ZERO}
    return v


def test_view_before_any_round(consortium: Consortium) -> None:
    """None (an empty ledger): no round, the initial model."""
    v = check_view(consortium.admin)
    assert v.current_round == 0 and v.round is None
    assert v.latest_model == h("model-0")


def test_view_in_every_state_of_a_round(consortium: Consortium) -> None:
    """Joining, Keying, Committing (part committed), Merging, Acknowledging (part acknowledged),
    Finalized with a dissenting acknowledgement: the view equals the getters each time."""
    c = consortium
    ledger = c.admin
    rid = open_round(c)
    check_view(ledger)
    c.client(c.addresses[0]).join(rid)
    c.client(c.addresses[1]).join(rid)
    v = check_view(ledger)
    assert v.round is not None and v.round.state == RoundState.JOINING
    assert v.round.participants == tuple(c.addresses[:2])

    info = join_all(c, rid, c.addresses[2:])
    v = check_view(ledger)
    assert v.round is not None and v.round.state == RoundState.KEYING

    assert info.key_steward is not None and info.merge_peer is not None
    c.client(info.key_steward).post_round_key(rid, h("key"))
    first, second = info.participants[:2]
    c.client(first).commit_update(rid, h("u-first"), 7, shares_hash=SHARES)
    c.client(second).commit_update(rid, h("u-second"), 9, shares_hash=SHARES)
    v = check_view(ledger)
    assert v.round is not None and v.round.state == RoundState.COMMITTING
    assert dict(v.commitments) == {first: (h("u-first"), 7), second: (h("u-second"), 9)}

    for p in info.participants[2:]:
        c.client(p).commit_update(rid, h(f"u-{p}"), 5, shares_hash=SHARES)
    v = check_view(ledger)
    assert v.round is not None and v.round.state == RoundState.MERGING
    assert len(v.commitments) == 4

    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants)
    ackers = [p for p in info.participants if p != info.merge_peer]
    c.client(ackers[0]).acknowledge(rid, h("model-1"))
    v = check_view(ledger)
    assert v.round is not None and v.round.state == RoundState.ACKNOWLEDGING
    assert dict(v.acks) == {ackers[0]: h("model-1")}

    c.client(ackers[1]).acknowledge(rid, h("model-1"))
    c.client(ackers[2]).acknowledge(rid, h("tampered"))
    v = check_view(ledger)
    assert v.round is not None and v.round.state == RoundState.FINALIZED
    assert v.last_finalized == rid and v.latest_model == h("model-1")
    assert v.finalized_count == 1
    assert v.acks[ackers[2]] == h("tampered")

    # the next round: the view follows it, and the finished one stays readable by id
    rid2 = open_round(c)
    v = check_view(ledger)
    assert v.current_round == rid2 and v.round is not None and v.round.round_id == rid2
    assert not v.commitments and not v.acks
    old = check_view(ledger, rid)
    assert old.round is not None and old.round.round_id == rid and len(old.acks) == 3
    assert check_view(ledger, rid2 + 1).round is None  # no such round yet


def test_view_of_a_lapsed_round(consortium: Consortium) -> None:
    """A round that lapsed (too few joined by the deadline): derived state in the view too."""
    c = consortium
    rid = open_round(c)
    c.client(c.addresses[0]).join(rid)
    c.chain.advance_time(2 * WINDOW)
    v = check_view(c.admin)
    assert v.round is not None and v.round.state == RoundState.LAPSED
    assert v.round.lapse_reason == LapseReason.TOO_FEW_JOINED
    assert v.finalized_count == 0 and v.last_finalized == 0


def test_finalized_count_skips_lapsed_rounds(consortium: Consortium) -> None:
    """A lapsed round between two finalized ones: the count is 2 while the last finalized
    round's id is 3 (a peer's round target counts finalized rounds, not round ids)."""
    c = consortium
    rid = open_round(c)
    run_to_merging(c, rid)
    finalize(c, rid, h("model-1"))
    lapsed = open_round(c)
    c.chain.advance_time(2 * WINDOW)  # nobody joined: lapses
    assert c.admin.round(lapsed).state == RoundState.LAPSED
    rid3 = open_round(c)
    run_to_merging(c, rid3)
    finalize(c, rid3, h("model-3"))
    v = check_view(c.admin)
    assert (v.last_finalized, v.finalized_count) == (3, 2)


def test_view_after_merge_peer_replacement_shows_only_the_current_attempt(
    consortium: Consortium,
) -> None:
    """A merge peer that missed its deadline: the new attempt starts with no commitments, and
    the view must not report the previous attempt's as current."""
    c = consortium
    rid = open_round(c)
    info = run_to_merging(c, rid)
    assert len(check_view(c.admin).commitments) == 4
    c.chain.advance_time(2 * WINDOW + 1)
    assert info.key_steward is not None
    c.client(info.key_steward).replace_merge_peer(rid)
    v = check_view(c.admin)
    assert v.round is not None and v.round.attempt == 1 and v.round.state == RoundState.KEYING
    assert dict(v.commitments) == {}
    c.client(info.key_steward).post_round_key(rid, h("key-attempt-1"))
    c.client(info.participants[3]).commit_update(rid, h("again"), 3, shares_hash=SHARES)
    v = check_view(c.admin)
    assert dict(v.commitments) == {info.participants[3]: (h("again"), 3)}


def test_view_pinned_to_a_block(consortium: Consortium) -> None:
    """``block=`` reads the view as of an earlier block (e.g. to read events up to it)."""
    c = consortium
    rid = open_round(c)
    before = c.admin.view()
    c.client(c.addresses[0]).join(rid)
    assert c.admin.view(block=before.block_number) == before
    assert c.admin.view().round != before.round


class _Counter:
    def __init__(self) -> None:
        self.methods: list[str] = []  # every JSON-RPC request, those in batches too
        self.batches: list[list[str]] = []  # the methods of each batch

    @property
    def round_trips(self) -> int:
        """Requests to the node: a batch is one."""
        return len(self.methods) - sum(map(len, self.batches)) + len(self.batches)


@contextmanager
def counted_requests(w3: Web3) -> Iterator[_Counter]:
    """Every request that reaches the provider: through web3's (and our) middleware, or
    straight to the provider (``LedgerClient.view`` on an RPC chain), each counted once; a
    batch's requests each, and the batch in ``batches``."""
    counter = _Counter()
    inside = threading.local()

    class Count(Web3Middleware):
        def wrap_make_request(self, make_request: Callable[..., Any]) -> Callable[..., Any]:
            def middleware(method: str, params: Any) -> Any:
                counter.methods.append(method)
                inside.depth = getattr(inside, "depth", 0) + 1  # requests nest (eth_accounts)
                try:
                    return make_request(method, params)
                finally:
                    inside.depth -= 1

            return middleware

    provider: Any = w3.provider
    direct = provider.make_request

    def counted(method: str, params: Any) -> Any:
        if not getattr(inside, "depth", 0):
            counter.methods.append(method)
        return direct(method, params)

    batch = getattr(provider, "make_batch_request", None)

    def counted_batch(calls: list[tuple[str, Any]]) -> Any:
        counter.batches.append([method for method, _ in calls])
        counter.methods.extend(counter.batches[-1])
        assert batch is not None
        return batch(calls)

    patched = {"make_request": counted, "make_batch_request": counted_batch}
    saved = {name: provider.__dict__.get(name) for name in patched}  # a test's own patch
    w3.middleware_onion.inject(Count, name="test_counter", layer=0)
    for name, fn in patched.items():
        setattr(provider, name, fn)
    try:
        yield counter
    finally:
        for name, fn in saved.items():
            if fn is None:
                delattr(provider, name)
            else:
                setattr(provider, name, fn)
        w3.middleware_onion.remove("test_counter")


def test_view_is_one_request_and_chain_id_is_asked_once(consortium: Consortium) -> None:
    """web3 asks eth_chainId before every eth_call and estimate, doubling the requests: the
    chain backend answers it from memory after the first time. (The embedded provider also
    asks eth_accounts to fill in a default sender: in process, and not on an RPC chain.)"""
    c = consortium
    rid = open_round(c)
    c.admin.view()  # warm
    with counted_requests(c.chain.w3) as view:
        c.admin.view()
    with counted_requests(c.chain.w3) as rest:
        c.admin.round(rid)
        c.client(c.addresses[0]).join(rid)
    assert [m for m in view.methods if m != "eth_accounts"] == ["eth_call"]
    assert "eth_chainId" not in rest.methods, rest.methods


@pytest.mark.parametrize("members", [3, 7])  # 3: the smallest, minPeers
def test_view_with_consortium_sizes(
    consortium_factory: Callable[..., Consortium], members: int
) -> None:
    """Alignment of the per-participant arrays with the participants, at two sizes."""
    c = consortium_factory(members)
    rid = open_round(c)
    info = run_to_merging(c, rid, samples={a: i + 1 for i, a in enumerate(c.addresses)})
    v = check_view(c.admin)
    assert v.round is not None
    assert {p: n for p, (_, n) in v.commitments.items()} == {
        a: i + 1 for i, a in enumerate(c.addresses)
    }
    assert set(v.commitments) == set(info.participants)


def test_view_while_drawing_has_no_roles_yet(consortium: Consortium) -> None:
    """In the block that closed the join window (the draw block): the view at that block says
    DRAWING with the draw block and no roles (a peer must not act on roles that do not exist
    yet), and equals the getters; the next block knows the roles."""
    c = consortium
    rid = open_round(c)
    for a in c.addresses:
        c.client(a).join(rid)
    v = check_view(c.admin)
    assert v.round is not None and v.round.state == RoundState.DRAWING
    assert v.round.draw_block == v.block_number
    assert v.round.merge_peer is None and v.round.order == () and v.round.seed == ZERO
    assert v.round.params is not None and v.round.params == v.params
    c.chain.mine(1)
    v = check_view(c.admin)
    assert v.round is not None and v.round.state == RoundState.KEYING
    assert v.round.merge_peer == v.round.order[0] and not v.round.seed_stored
