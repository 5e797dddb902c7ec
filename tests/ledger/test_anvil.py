"""The same client against a real anvil node over JSON-RPC: reverts decode to the same typed
errors as on the embedded chain, a full round runs, and a chain that restarts is handled."""

from __future__ import annotations

import json
import time

import pytest

from localnet.anvil import AnvilNode, start_anvil
from swarm import errors
from swarm.ledger import LedgerClient, RoundState, RpcChain
from tests.conftest import WINDOW, Consortium, h, make_consortium
from tests.ledger.rounds import SHARES, draw, finalize, join_all, open_round, run_to_merging

pytestmark = pytest.mark.anvil


def test_full_round_on_anvil(anvil: AnvilNode) -> None:
    """None (the happy path on a real node): both contracts deployed and bound, a round finalized,
    events from both read back."""
    c = make_consortium(RpcChain(anvil.url), 4)
    rid = open_round(c)
    run_to_merging(c, rid)
    info = finalize(c, rid, h("model-1"))
    assert info.state == RoundState.FINALIZED
    assert c.admin.latest_model() == h("model-1")
    names = [e.name for e in c.admin.events() if e.args.get("round") == rid]
    assert names[0] == "RoundOpened" and names.count("RoundFinalized") == 1


def test_reverts_decode_the_same_as_on_embedded_chain(anvil: AnvilNode) -> None:
    """Non-member, wrong round, bad value, wrong role: one typed error per meaning on anvil too."""
    c = make_consortium(RpcChain(anvil.url), 3)
    rid = open_round(c)
    outsider = c.admin.as_identity(c.new_identity())
    with pytest.raises(errors.NotAMemberError) as exc:
        outsider.join(rid)
    assert exc.value.values == {"account": outsider.identity.address}  # type: ignore[union-attr]
    with pytest.raises(errors.WrongRoundStateError) as wrong:
        c.client(c.addresses[0]).join(rid + 1)
    assert wrong.value.values == {
        "round": rid + 1,
        "found": "NONE",
        "expectedMask": 2,
        "expected": "JOINING",
    }
    info = join_all(c, rid)
    with pytest.raises(errors.NotYourRoleError):
        c.client(info.merge_peer).post_round_key(rid, h("key"))
    c.client(info.key_steward).post_round_key(rid, h("key"))
    with pytest.raises(errors.InvalidParameterError) as bad:  # a custom error with a string
        c.client(info.participants[0]).commit_update(rid, h("u"), 0, shares_hash=SHARES)
    assert bad.value.values == {"name": "sampleCount", "value": 0}


def test_merge_peer_replacement_on_anvil(anvil: AnvilNode) -> None:
    """A merge peer that misses its deadline, with anvil's clock moved past it."""
    c = make_consortium(RpcChain(anvil.url), 3)
    rid = open_round(c)
    info = run_to_merging(c, rid)
    c.chain.advance_time(2 * WINDOW + 1)
    c.client(info.key_steward).replace_merge_peer(rid)
    assert c.admin.round(rid).merge_peer == info.order[2]


def test_chain_restart_keeps_the_ledger(tmp_path: object, anvil: AnvilNode) -> None:
    """A chain that restarts: while it is down calls fail with ChainUnavailableError; once it is
    back (state file reloaded) the contract and the round are exactly where they were."""
    c: Consortium = make_consortium(RpcChain(anvil.url), 3)
    rid = open_round(c)
    join_all(c, rid, c.addresses[:2])
    before = c.admin.round(rid)
    anvil.stop()  # SIGTERM: anvil writes its state file

    with pytest.raises(errors.ChainUnavailableError):
        c.admin.round(rid)
    with pytest.raises(errors.ChainUnavailableError):
        c.client(c.addresses[2]).join(rid)

    restarted = start_anvil(anvil.workdir, port=anvil.port)
    try:
        ledger = LedgerClient(RpcChain(restarted.url), c.admin.address)
        assert ledger.round(rid) == before
        assert [m.address for m in ledger.members()] == c.addresses
        c.client(c.addresses[2]).join(rid)  # the same clients carry on
        assert draw(c, rid).state == RoundState.KEYING
    finally:
        restarted.stop()


def test_fresh_chain_without_state_is_detected(tmp_path: object, anvil: AnvilNode) -> None:
    """A chain restarted *without* its state: the contract is gone, and the client says so."""
    c = make_consortium(RpcChain(anvil.url), 2)
    anvil.stop()
    anvil.state_file.unlink()
    fresh = start_anvil(anvil.workdir, port=anvil.port)
    try:
        with pytest.raises(errors.ContractNotFoundError):
            LedgerClient(RpcChain(fresh.url), c.admin.address)
    finally:
        fresh.stop()


def test_chain_killed_hard_recovers_from_periodic_state(anvil: AnvilNode) -> None:
    """A chain that crashes (SIGKILL, no chance to save): the periodic state dump brings the
    contract and its members back once the node restarts."""
    c = make_consortium(RpcChain(anvil.url), 2)
    # Wait for two periodic dumps (one per second) after our last transaction: the second
    # certainly started after it.
    seen, dumps, deadline = _mtime(anvil), 0, time.monotonic() + 15
    while dumps < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        if _mtime(anvil) != seen:
            seen, dumps = _mtime(anvil), dumps + 1
    assert dumps == 2, "anvil did not write its state file"
    # anvil rewrites the file in place: kill right after a dump is complete, not in the middle
    # of the next one (that crash loses anvil's state; a development chain's limit)
    while time.monotonic() < deadline and not _complete(anvil):
        time.sleep(0.02)
    anvil.kill()
    restarted = start_anvil(anvil.workdir, port=anvil.port)
    try:
        ledger = LedgerClient(RpcChain(restarted.url), c.admin.address)
        assert [m.address for m in ledger.members()] == c.addresses
    finally:
        restarted.stop()


def _complete(node: AnvilNode) -> bool:
    try:
        json.loads(node.state_file.read_text())
    except (OSError, ValueError):
        return False
    return True


def _mtime(node: AnvilNode) -> int:
    return node.state_file.stat().st_mtime_ns if node.state_file.exists() else 0
