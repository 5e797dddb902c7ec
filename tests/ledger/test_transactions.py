"""Sending transactions on the embedded chain: gas margins for the phase-ending paths, failures
after a transaction was mined, and bounded retries of transient refusals.

Races are reproduced by estimating (building) two transactions before either lands, then
sending both: exactly what happens when two peers act on the same block. Each test's docstring
names the fault it exercises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from swarm import errors
from swarm.ledger import EXACT_ESTIMATE, GasPolicy, LedgerClient, RoundState
from swarm.ledger import client as client_module
from tests.conftest import WINDOW, Consortium, h
from tests.ledger.rounds import SHARES, draw, join_all, open_round, run_to_merging


def with_policy(c: Consortium, policy: GasPolicy) -> None:
    c.clients = {
        a: LedgerClient(cl.chain, cl.address, cl.identity, gas_policy=policy)
        for a, cl in c.clients.items()
    }


def to_acknowledging(c: Consortium) -> tuple[int, list[str]]:
    rid = open_round(c)
    info = run_to_merging(c, rid)
    assert info.merge_peer is not None
    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants)
    return rid, [p for p in info.participants if p != info.merge_peer]


def race(c: Consortium, calls: list[tuple[str, str, tuple[Any, ...]]]) -> list[Any]:
    """Build every transaction (gas estimated now), then send them one after the other."""
    built = []
    for who, fn_name, args in calls:
        cl = c.client(who)
        fn = getattr(cl.contract.functions, fn_name)(*args)
        built.append((cl, fn, cl._build(fn)))
    return [cl._transact(fn, tx) for cl, fn, tx in built]


def test_two_acks_estimated_before_either_lands_both_succeed(consortium: Consortium) -> None:
    """Fault: an acknowledgement estimated as a plain one (~90k gas) lands after another peer's
    and is the one that finalizes the round (~117k): without a margin it ran out of gas."""
    c = consortium
    rid, ackers = to_acknowledging(c)
    first, second = race(
        c,
        [
            (ackers[0], "acknowledge", (rid, h("model-1"))),
            (ackers[1], "acknowledge", (rid, h("model-1"))),
        ],
    )
    assert first["status"] == second["status"] == 1
    info = c.admin.round(rid)
    assert info.state == RoundState.FINALIZED and info.final_model == h("model-1")
    assert second["gasUsed"] > first["gasUsed"] + 20_000  # it took the finalizing path


def test_without_margin_the_finalizing_ack_runs_out_of_gas_typed(consortium: Consortium) -> None:
    """Fault: the same race with web3's bare estimate (the old behaviour): the finalizing ack is
    mined with status 0 having used all its gas. It surfaces as OutOfGasError (its replay
    succeeds), the ledger is unchanged, and deciding again from the ledger succeeds."""
    c = consortium
    with_policy(c, EXACT_ESTIMATE)
    rid, ackers = to_acknowledging(c)
    with pytest.raises(errors.OutOfGasError) as exc:
        race(
            c,
            [
                (ackers[0], "acknowledge", (rid, h("model-1"))),
                (ackers[1], "acknowledge", (rid, h("model-1"))),
            ],
        )
    assert exc.value.gas_used == exc.value.gas_limit and exc.value.tx_hash
    assert c.admin.ack(rid, ackers[1]) == b"\0" * 32
    assert c.admin.round(rid).state == RoundState.ACKNOWLEDGING
    c.client(ackers[1]).acknowledge(rid, h("model-1"))  # the caller decides again: it works
    assert c.admin.round(rid).state == RoundState.FINALIZED


def test_worst_case_finalizing_ack_estimated_as_a_middle_one(
    consortium_factory: Callable[..., Consortium],
) -> None:
    """Fault: with 4 eligible voters, an ack estimated when it would be the 2nd (72k gas, no
    majority) lands 3rd and finalizes the consortium's first round (117k): the largest gap."""
    c = consortium_factory(5)
    rid, ackers = to_acknowledging(c)
    c.client(ackers[0]).acknowledge(rid, h("model-1"))
    second_cl = c.client(ackers[1])
    third_cl = c.client(ackers[2])
    fn2 = second_cl.contract.functions.acknowledge(rid, h("model-1"))
    fn3 = third_cl.contract.functions.acknowledge(rid, h("model-1"))
    tx2, tx3 = second_cl._build(fn2), third_cl._build(fn3)
    second_cl._transact(fn2, tx2)
    receipt = third_cl._transact(fn3, tx3)
    assert receipt["status"] == 1 and c.admin.round(rid).state == RoundState.FINALIZED


@pytest.mark.parametrize("members", [4, 12])
def test_two_last_joins_estimated_together_both_succeed(
    consortium_factory: Callable[..., Consortium], members: int
) -> None:
    """Fault: the last two members join on the same block; the one that lands second closes
    the window although it was estimated as a plain join. Closing no longer draws the roles
    (it records the draw block), so the extra is small and the same at any size."""
    c = consortium_factory(members)
    rid = open_round(c)
    for a in c.addresses[:-2]:
        c.client(a).join(rid)
    first, second = race(c, [(a, "join", (rid,)) for a in c.addresses[-2:]])
    assert c.admin.round(rid).state == RoundState.DRAWING
    assert second["gasUsed"] - first["gasUsed"] < 15_000
    info = draw(c, rid)
    assert info.state == RoundState.KEYING and sorted(info.order) == sorted(c.addresses)


def test_gas_limit_is_capped_at_the_block_gas_limit(consortium: Consortium) -> None:
    """A margin never asks for more gas than a block holds (the node would refuse the tx)."""
    huge = GasPolicy(factor=1000.0)
    assert huge.gas_limit("join", 100_000, 4, 30_000_000) == 30_000_000
    assert GasPolicy().gas_limit("join", 80_000, 10, 30_000_000) == 100_000 + 40_000 + 10_000
    assert GasPolicy().gas_limit("commitUpdate", 80_000, 10, 30_000_000) == 100_000
    c = consortium
    with_policy(c, huge)
    rid = open_round(c)
    result = c.client(c.addresses[0]).join(rid)
    tx = c.chain.w3.eth.get_transaction(result.tx_hash)  # type: ignore[arg-type]
    assert tx["gas"] == c.chain.block_gas_limit()


def test_competing_open_round_mined_after_another_is_decoded(consortium: Consortium) -> None:
    """Fault: two members open the next round on the same block; the second transaction is
    mined with status 0. Its replay decodes the contract's reason (WrongRoundState: the round
    the first opened is Joining) into the same typed error a refused estimate gives, with the
    transaction's hash."""
    c = consortium
    model = c.admin.latest_model()
    with pytest.raises(errors.WrongRoundStateError) as exc:
        race(c, [(a, "openRound", (model,)) for a in c.addresses[:2]])
    assert exc.value.name == "WrongRoundState" and exc.value.values["found"] == "JOINING"
    assert exc.value.tx_hash is not None
    receipt = c.chain.w3.eth.get_transaction_receipt(exc.value.tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 0
    assert c.admin.current_round() == 1


def test_commit_that_lands_after_the_deadline_is_decoded(consortium: Consortium) -> None:
    """Fault: a late update. The commitment was estimated before the deadline and mined after
    it: the commit phase is over (WrongRoundState, found Merging), not a bare failure."""
    c = consortium
    rid = open_round(c)
    info = join_all(c, rid)
    assert info.key_steward is not None
    c.client(info.key_steward).post_round_key(rid, h("key"))
    for a in info.participants[1:]:
        c.client(a).commit_update(rid, h(f"u-{a}"), 10, shares_hash=SHARES)
    cl = c.client(info.participants[0])
    fn = cl.contract.functions.commitUpdate(rid, h("late"), 10, SHARES, 0, 0)
    tx = cl._build(fn)
    c.chain.advance_time(WINDOW + 5)
    with pytest.raises(errors.WrongRoundStateError) as exc:
        cl._transact(fn, tx)
    assert exc.value.values["round"] == rid and exc.value.tx_hash is not None
    assert exc.value.values["found"] == "MERGING"


def test_already_done_stays_typed_after_sending(consortium: Consortium) -> None:
    """Fault: the same member's join sent twice on one block (e.g. two workers of one peer):
    the second is mined and reverts; it is AlreadyDoneError, not hidden and not a bare error."""
    c = consortium
    rid = open_round(c)
    cl = c.client(c.addresses[0])
    fn = cl.contract.functions.join(rid)
    tx1 = cl._build(fn)
    tx2 = dict(tx1, nonce=tx1["nonce"] + 1)
    cl._transact(fn, tx1)
    with pytest.raises(errors.AlreadyDoneError) as exc:
        cl._transact(fn, tx2)
    assert exc.value.name == "AlreadyJoined"


# --- transient refusals ----------------------------------------------------------------


def test_stale_nonce_is_retried_with_a_fresh_one(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: 'nonce too low' (another process with the same key, or a node that lags): the
    transaction is built again with a fresh nonce and goes through once."""
    c = consortium
    rid = open_round(c)
    real = client_module._pending_nonce
    stale = iter([True])

    def nonce(chain: Any, address: str) -> int:
        n = real(chain, address)
        return n - 1 if next(stale, False) else n

    who = c.addresses[0]
    c.client(who).join(rid)  # so that nonce - 1 was used
    before = c.chain.w3.eth.get_transaction_count(who)
    monkeypatch.setattr(client_module, "_pending_nonce", nonce)
    c.client(who).update_multiaddrs(["/ip4/10.0.0.1/tcp/4001"])
    assert c.chain.w3.eth.get_transaction_count(who) == before + 1
    member = c.admin.member(who)
    assert member is not None and member.multiaddrs == ("/ip4/10.0.0.1/tcp/4001",)


def _patch_send(
    monkeypatch: pytest.MonkeyPatch, cl: LedgerClient, behaviour: Callable[[Any, Any], Any]
) -> list[bytes]:
    sent: list[bytes] = []
    real = cl.w3.eth.send_raw_transaction

    def send(raw: Any) -> Any:
        sent.append(bytes(raw))
        return behaviour(real, raw)

    monkeypatch.setattr(cl.w3.eth, "send_raw_transaction", send)
    return sent


def test_node_that_briefly_refuses_is_retried(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: the node refuses the connection once while sending: the same signed transaction
    is sent again and goes through."""
    c = consortium
    rid = open_round(c)
    cl = c.client(c.addresses[0])
    refusals = iter([True])

    def behaviour(real: Any, raw: Any) -> Any:
        if next(refusals, False):
            raise requests.ConnectionError("Connection refused")
        return real(raw)

    sent = _patch_send(monkeypatch, cl, behaviour)
    cl.join(rid)
    assert len(sent) == 2 and sent[0] == sent[1]
    assert c.admin.has_joined(rid, cl.identity.address)  # type: ignore[union-attr]


def test_lost_answer_to_a_send_does_not_act_twice(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: the node took the transaction but its answer was lost (a timeout): the client
    resends the same signed transaction, the node says its nonce is used, and the client finds
    its receipt by hash. One join, one nonce, no AlreadyJoined."""
    c = consortium
    rid = open_round(c)
    cl = c.client(c.addresses[0])
    who = c.addresses[0]
    lost = iter([True])

    def behaviour(real: Any, raw: Any) -> Any:
        result = real(raw)
        if next(lost, False):
            raise requests.Timeout("read timed out")
        return result

    before = c.chain.w3.eth.get_transaction_count(who)
    sent = _patch_send(monkeypatch, cl, behaviour)
    result = cl.join(rid)
    assert len(sent) == 2 and sent[0] == sent[1]
    assert c.chain.w3.eth.get_transaction_count(who) == before + 1
    assert c.chain.w3.eth.get_transaction_receipt(result.tx_hash)["status"] == 1  # type: ignore[arg-type]


def test_already_known_waits_for_the_same_transaction(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: the node answers 'already known' (our resend found it in the pool): the client
    waits for that transaction instead of failing or sending another."""
    c = consortium
    rid = open_round(c)
    cl = c.client(c.addresses[0])
    first = iter([True])

    def behaviour(real: Any, raw: Any) -> Any:
        result = real(raw)
        if next(first, False):
            raise ValueError({"code": -32000, "message": "already known"})
        return result

    sent = _patch_send(monkeypatch, cl, behaviour)
    cl.join(rid)
    assert len(sent) == 1
    assert c.admin.has_joined(rid, c.addresses[0])


def test_retries_are_bounded(consortium: Consortium, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault: a node that keeps refusing: after SEND_ATTEMPTS sends the call fails with
    ChainUnavailableError instead of retrying forever."""
    c = consortium
    rid = open_round(c)
    cl = c.client(c.addresses[0])
    monkeypatch.setattr(client_module, "_BACKOFF_S", (0.0,))

    def behaviour(real: Any, raw: Any) -> Any:
        raise requests.ConnectionError("Connection refused")

    sent = _patch_send(monkeypatch, cl, behaviour)
    with pytest.raises(errors.ChainUnavailableError):
        cl.join(rid)
    assert len(sent) == client_module.SEND_ATTEMPTS


def test_stale_nonce_retries_are_bounded(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: a nonce that stays taken (a stuck transaction of another process with our key):
    a bounded number of rebuilds, then a TransactionError that says so."""
    c = consortium
    rid = open_round(c)
    cl = c.client(c.addresses[0])
    monkeypatch.setattr(client_module, "_BACKOFF_S", (0.0,))

    def behaviour(real: Any, raw: Any) -> Any:
        raise ValueError({"code": -32003, "message": "replacement transaction underpriced"})

    sent = _patch_send(monkeypatch, cl, behaviour)
    with pytest.raises(errors.TransactionError, match="refused the transaction"):
        cl.join(rid)
    assert len(sent) == client_module.SEND_ATTEMPTS
