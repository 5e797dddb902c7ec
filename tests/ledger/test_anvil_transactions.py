"""Races inside one block on a real anvil node: automine is paused, two peers' transactions
(each estimated before the other landed) enter the pool, and one block mines both. Also the
single-request view over JSON-RPC, and the flags that bound anvil's memory."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from localnet.anvil import KEPT_STATES, MIN_BLOCK_TIME, AnvilNode, start_anvil
from swarm import errors
from swarm.ledger import EXACT_ESTIMATE, LedgerClient, RoundState, RpcChain
from tests.conftest import Consortium, h, make_consortium
from tests.ledger.rounds import draw, open_round, run_to_merging
from tests.ledger.test_view import check_view, counted_requests

pytestmark = pytest.mark.anvil


def in_one_block(
    chain: RpcChain, calls: list[tuple[LedgerClient, str, tuple[Any, ...]]]
) -> list[Any]:
    """Build every transaction first (gas estimated on the same state), then send them all
    into one block. Returns each call's receipt, or the exception it raised."""
    built = []
    for cl, fn_name, args in calls:
        fn = getattr(cl.contract.functions, fn_name)(*args)
        built.append((cl, fn, cl._build(fn)))
    chain._rpc("evm_setAutomine", [False])
    try:
        with ThreadPoolExecutor(len(built)) as pool:
            futures = [pool.submit(cl._transact, fn, tx) for cl, fn, tx in built]
            deadline = time.monotonic() + 10
            while int(chain._rpc("txpool_status", [])["pending"], 16) < len(built):
                assert time.monotonic() < deadline, "transactions did not reach the pool"
                time.sleep(0.01)
            chain._rpc("evm_mine", [])
            results: list[Any] = []
            for f in futures:
                try:
                    results.append(f.result(timeout=30))
                except Exception as exc:
                    results.append(exc)
    finally:
        chain._rpc("evm_setAutomine", [True])
    return results


def acknowledging(c: Consortium) -> tuple[int, list[LedgerClient]]:
    rid = open_round(c)
    info = run_to_merging(c, rid)
    assert info.merge_peer is not None
    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants)
    return rid, [c.client(p) for p in info.participants if p != info.merge_peer]


def test_two_acks_in_one_block_both_succeed(anvil: AnvilNode) -> None:
    """Fault: two acknowledgements in one block, both estimated as plain ones; the second
    finalizes the round and needs ~27k more gas than its estimate. With the margin: both
    succeed, in the same block."""
    c = make_consortium(RpcChain(anvil.url), 4)
    rid, ackers = acknowledging(c)
    results = in_one_block(
        c.chain,  # type: ignore[arg-type]
        [(a, "acknowledge", (rid, h("model-1"))) for a in ackers[:2]],
    )
    assert all(not isinstance(r, Exception) for r in results), results
    assert results[0]["blockNumber"] == results[1]["blockNumber"]
    assert c.admin.round(rid).state == RoundState.FINALIZED


def test_two_acks_in_one_block_without_margin_one_runs_out_of_gas(anvil: AnvilNode) -> None:
    """Fault: the same block race with web3's bare estimate (the old client): one of the two
    is mined with status 0 and surfaces as OutOfGasError, the other succeeds."""
    c = make_consortium(RpcChain(anvil.url), 4)
    rid, ackers = acknowledging(c)
    bare = [LedgerClient(a.chain, a.address, a.identity, gas_policy=EXACT_ESTIMATE) for a in ackers]
    results = in_one_block(
        c.chain,  # type: ignore[arg-type]
        [(a, "acknowledge", (rid, h("model-1"))) for a in bare[:2]],
    )
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1 and isinstance(failures[0], errors.OutOfGasError), results


def test_last_joins_in_one_block_both_succeed(anvil: AnvilNode) -> None:
    """Fault: the last three members join in one block; the third closes the window (it records
    the draw block) though estimated as a plain join."""
    c = make_consortium(RpcChain(anvil.url), 6)
    rid = open_round(c)
    for a in c.addresses[:3]:
        c.client(a).join(rid)
    results = in_one_block(
        c.chain,  # type: ignore[arg-type]
        [(c.client(a), "join", (rid,)) for a in c.addresses[3:]],
    )
    assert all(not isinstance(r, Exception) for r in results), results
    assert draw(c, rid).state == RoundState.KEYING


def test_competing_open_round_in_one_block_is_decoded(anvil: AnvilNode) -> None:
    """Fault: two members open the next round in one block. The loser's replay at the parent
    block succeeds (the round was not open yet); at its own block it says WrongRoundState
    (found Joining), which is what the caller gets, typed, with the transaction's hash."""
    c = make_consortium(RpcChain(anvil.url), 3)
    model = c.admin.latest_model()
    results = in_one_block(
        c.chain,  # type: ignore[arg-type]
        [(c.client(a), "openRound", (model,)) for a in c.addresses[:2]],
    )
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1, results
    assert isinstance(failures[0], errors.WrongRoundStateError), failures
    assert failures[0].name == "WrongRoundState" and failures[0].tx_hash
    assert c.admin.current_round() == 1


def test_view_on_anvil_is_one_request(anvil: AnvilNode) -> None:
    """The peer's poll over JSON-RPC: one eth_call, no eth_chainId, matching the getters."""
    c = make_consortium(RpcChain(anvil.url), 3)
    rid = open_round(c)
    c.client(c.addresses[0]).join(rid)
    c.admin.view()
    with counted_requests(c.chain.w3) as counter:
        v = c.admin.view()
    assert counter.methods == ["eth_call"]
    assert v.round is not None and v.round.state == RoundState.JOINING
    check_view(c.admin)


def test_transaction_requests_without_chain_id(anvil: AnvilNode) -> None:
    """Fault: web3 asked eth_chainId before every eth_call and estimate (3 per transaction);
    a transaction now costs the estimate, the nonce, fees, the send and the receipt."""
    c = make_consortium(RpcChain(anvil.url), 3)
    rid = open_round(c)
    cl = c.client(c.addresses[0])
    with counted_requests(c.chain.w3) as counter:
        cl.update_multiaddrs(["/ip4/127.0.0.1/tcp/4100"])
    assert "eth_chainId" not in counter.methods
    assert counter.methods.count("eth_sendRawTransaction") == 1
    assert len(counter.methods) <= 7, counter.methods
    assert rid == 1


def _cmdline(node: AnvilNode) -> list[str]:
    return Path(f"/proc/{node.pid}/cmdline").read_bytes().decode().split("\0")


def test_anvil_keeps_few_states_in_memory(anvil: AnvilNode, tmp_path: Path) -> None:
    """Fault: anvil's memory grew without bound (1.7 GB in a 200-round run): with 1 s interval
    blocks anvil 1.7.1 keeps up to 1,500 full state copies whatever --prune-history says, and
    even within the limit each kept state is a full copy. Started with KEPT_STATES (64) and an
    interval of at least MIN_BLOCK_TIME (3 s), even when asked for 1 s; 64 states are still
    enough for reads a few blocks back (the replay of a failed transaction reads its parent)."""
    cmdline = _cmdline(anvil)
    assert cmdline[cmdline.index("--prune-history") + 1] == str(KEPT_STATES)
    assert 16 <= KEPT_STATES <= 64
    interval = start_anvil(tmp_path / "interval", block_time=1)
    try:
        flags = _cmdline(interval)
        assert float(flags[flags.index("--block-time") + 1]) == MIN_BLOCK_TIME > 2
        assert "--mixed-mining" in flags
    finally:
        interval.stop()
    c = make_consortium(RpcChain(anvil.url), 2)
    rid = open_round(c)
    old = c.admin.view()
    for a in c.addresses:
        c.client(a).join(rid)
    c.client(c.addresses[0]).update_multiaddrs(["/ip4/127.0.0.1/tcp/4100"])
    assert c.admin.view().block_number >= old.block_number + 3
    assert c.admin.view(block=old.block_number) == old
