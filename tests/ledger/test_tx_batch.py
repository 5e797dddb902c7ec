"""A transaction's reads in one JSON-RPC batch (issue 15): the gas estimate, the pending nonce,
the fee inputs and (for a join) the active member count go to the node as one HTTP request; a
node that refuses batches gets them one at a time, the web3 way; a revert at the estimate is
typed from the batch's answer and nothing is sent.

The fault it removes: one transaction cost six or seven HTTP round trips and ~30 ms of a peer's
CPU on the 2-core machine (web3 filled the fees with two more requests, and encoded the calldata
twice), most of a heart-task round's ledger time.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from localnet.anvil import AnvilNode
from swarm import errors
from swarm.ledger import RpcChain
from swarm.ledger.client import _raw_public_key, _TxInputs, _typed_revert
from tests.conftest import Consortium, h, make_consortium
from tests.ledger.rounds import encryption_card, open_round
from tests.ledger.test_view import counted_requests

READS = [
    "eth_estimateGas",
    "eth_getTransactionCount",
    "eth_maxPriorityFeePerGas",
    "eth_getBlockByNumber",
]


# --- pure parts ---------------------------------------------------------------------------


def test_fees_as_web3_fills_them() -> None:
    """EIP-1559: max fee = priority fee + twice the latest base fee; legacy: the gas price."""
    dynamic = _TxInputs(estimate=1, nonce=0, priority_fee=7, base_fee=100)
    assert dynamic.fees() == {"maxFeePerGas": 207, "maxPriorityFeePerGas": 7}
    legacy = _TxInputs(estimate=1, nonce=0, priority_fee=0, base_fee=None, gas_price=55)
    assert legacy.fees() == {"gasPrice": 55}


def test_typed_revert_from_a_json_rpc_error() -> None:
    """A node's error object with revert data (flat or nested) becomes the contract's typed
    error; one without decodable data is left to the web3 way (None)."""
    already = "0x" + _already_joined_data().hex()
    assert isinstance(_typed_revert({"code": 3, "data": already}), errors.AlreadyDoneError)
    assert isinstance(_typed_revert({"data": {"data": already}}), errors.AlreadyDoneError)
    assert _typed_revert({"code": -32000, "message": "nonce too low"}) is None
    assert _typed_revert({"data": "0xzz" + "00" * 8}) is None
    assert _typed_revert({"data": "0x1234"}) is None
    assert _typed_revert("execution reverted") is None


def _already_joined_data() -> bytes:
    from eth_abi import encode
    from eth_utils import keccak

    from swarm.ledger.artifacts import load_artifact

    abi = next(
        i
        for i in load_artifact("SwarmLedger").abi
        if i.get("type") == "error" and i["name"] == "AlreadyJoined"
    )
    types = [i["type"] for i in abi["inputs"]]
    selector = keccak(text=f"AlreadyJoined({','.join(types)})")[:4]
    examples = {"address": "0x" + "11" * 20, "bytes32": h("x")}
    return selector + encode(types, [examples.get(t, 1) for t in types])


class _FakeProvider:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def make_batch_request(self, calls: list[tuple[str, Any]]) -> Any:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def _fake_rpc_chain(answer: Any) -> RpcChain:
    chain = RpcChain.__new__(RpcChain)
    chain.url = "http://node.invalid"
    chain.batches = True
    chain.w3 = type("W3", (), {"provider": _FakeProvider(answer)})()  # type: ignore[assignment]
    return chain


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    return response


CALLS: list[tuple[str, list[Any]]] = [("eth_blockNumber", []), ("eth_chainId", [])]


@pytest.mark.parametrize(
    "refusal",
    [
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no batches"}},
        [{"jsonrpc": "2.0", "id": 1, "result": "0x1"}],  # fewer answers than requests
        [{"id": 1, "result": "0x1"}, {"id": 2}],  # an answer without result or error
        requests.HTTPError("405 Method Not Allowed"),  # (no response: taken as a 4xx)
        requests.HTTPError("413", response=_response(413)),
        ValueError("not JSON"),
    ],
)
def test_a_refused_batch_turns_batches_off(refusal: Any) -> None:
    """Fault: a node (or a proxy in front of it) that does not take batches: the chain says
    None (ask one at a time) and does not try a batch again."""
    chain = _fake_rpc_chain(refusal)
    assert chain.batch(CALLS) is None
    assert chain.batches is False
    chain.w3.provider.answer = [{"id": 1, "result": "0x1"}, {"id": 2, "result": "0x2"}]  # type: ignore[attr-defined]
    assert chain.batch(CALLS) is None  # off for good


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError("refused"),
        requests.Timeout("read timed out"),
        requests.HTTPError("503", response=_response(503)),
    ],
)
def test_a_failed_connection_keeps_batches_on(failure: BaseException) -> None:
    """A connection that fails is no refusal: this transaction asks the web3 way (which
    retries, and reports a node that is gone); the next one batches again."""
    chain = _fake_rpc_chain(failure)
    assert chain.batch(CALLS) is None
    assert chain.batches is True
    answer = [{"id": 1, "result": "0x1"}, {"id": 2, "result": "0x2"}]
    chain.w3.provider.answer = answer  # type: ignore[attr-defined]
    assert chain.batch(CALLS) == answer


# --- the embedded chain: one request at a time, the same transaction ----------------------


def test_embedded_chain_builds_what_web3_built(consortium: Consortium) -> None:
    """No batch in process; the transaction has web3's fields and values (calldata, chain id,
    EIP-1559 fees), so the chain accepts it as before."""
    c = consortium
    assert c.chain.batch(CALLS) is None
    rid = open_round(c)
    _check_same_as_web3(c, rid)


def _check_same_as_web3(c: Consortium, rid: int) -> None:
    cl = c.client(c.addresses[0])
    newcomer = c.new_identity()
    card = encryption_card(newcomer)
    for client, fn in (
        (cl, cl.contract.functions.join(rid)),
        (cl, cl.consortium.functions.updateMultiaddrs(["/ip4/10.0.0.1/tcp/1", "/dns4/x/tcp/2"])),
        (
            c.admin,
            c.admin.consortium.functions.addMember(
                newcomer.address,
                _raw_public_key(newcomer.public_key),
                card[0],
                card[1],
                newcomer.peer_id,
                ["/ip4/10.0.0.2/tcp/1"],
                "Newcomer",
            ),
        ),
    ):
        ours = client._build(fn)
        sender = client.identity.address  # type: ignore[union-attr]
        theirs = fn.build_transaction({"from": sender, "nonce": ours["nonce"], "gas": ours["gas"]})
        assert ours == dict(theirs), fn.fn_name


# --- anvil ----------------------------------------------------------------------------------


@pytest.fixture
def anvil_consortium(anvil: AnvilNode) -> Consortium:
    return make_consortium(RpcChain(anvil.url), 3)


@pytest.mark.anvil
def test_transaction_is_one_batch_one_send_one_receipt(anvil_consortium: Consortium) -> None:
    """A join on anvil: its reads (with the member count for its gas margin) in one batch, then
    the send, then the receipt (looked for at once: anvil mines on arrival)."""
    c = anvil_consortium
    rid = open_round(c)
    with counted_requests(c.chain.w3) as counter:
        c.client(c.addresses[0]).join(rid)
    assert counter.batches == [[*READS, "eth_call"]]
    singles = [m for m in counter.methods if m not in (*READS, "eth_call")]
    assert singles[0] == "eth_sendRawTransaction"
    assert set(singles[1:]) == {"eth_getTransactionReceipt"}
    with counted_requests(c.chain.w3) as counter:
        c.client(c.addresses[1]).update_multiaddrs(["/ip4/127.0.0.1/tcp/4100"])
    assert counter.batches == [READS]  # no member count where the gas margin needs none
    assert c.admin.has_joined(rid, c.addresses[0])


@pytest.mark.anvil
def test_batched_build_equals_what_web3_built(anvil_consortium: Consortium) -> None:
    c = anvil_consortium
    rid = open_round(c)
    _check_same_as_web3(c, rid)


@pytest.mark.anvil
def test_revert_at_estimate_is_typed_from_the_batch(anvil_consortium: Consortium) -> None:
    """Fault: a second join. The batch's estimate says AlreadyJoined: typed, nothing sent, no
    second look through web3, and batches stay on."""
    c = anvil_consortium
    rid = open_round(c)
    cl = c.client(c.addresses[0])
    cl.join(rid)
    with counted_requests(c.chain.w3) as counter, pytest.raises(errors.AlreadyDoneError) as exc:
        cl.join(rid)
    assert exc.value.name == "AlreadyJoined"
    assert counter.round_trips == 1 and len(counter.batches) == 1
    assert c.chain.batches  # type: ignore[attr-defined]


def _answers(chain: Any, change: Any) -> list[list[Any]]:
    """Let ``change(calls, responses)`` alter the chain's batch answers; the calls seen."""
    real = chain.batch
    seen: list[list[Any]] = []

    def batch(calls: Any) -> Any:
        seen.append(list(calls))
        responses = real(calls)
        return None if responses is None else change(calls, responses)

    chain.batch = batch
    return seen


@pytest.mark.anvil
def test_undecodable_estimate_error_asks_the_web3_way(anvil_consortium: Consortium) -> None:
    """Fault: a node whose estimate error carries no revert data: the build asks again one
    request at a time, and web3's answer is typed as it always was."""
    c = anvil_consortium
    rid = open_round(c)
    cl = c.client(c.addresses[0])
    cl.join(rid)

    def strip(calls: Any, responses: Any) -> Any:
        responses[0] = {"id": responses[0]["id"], "error": {"code": -32000, "message": "no"}}
        return responses

    _answers(c.chain, strip)
    with counted_requests(c.chain.w3) as counter, pytest.raises(errors.AlreadyDoneError):
        cl.join(rid)
    assert "eth_estimateGas" in counter.methods[len(READS) + 1 :]  # asked again, alone
    assert "eth_sendRawTransaction" not in counter.methods


@pytest.mark.anvil
def test_node_refusing_batches_gets_single_requests(anvil_consortium: Consortium) -> None:
    """Fault: a node that answers a batch with one error object (as some hosted nodes do):
    the transaction goes through with single requests, and later ones do not try again."""
    c = anvil_consortium
    rid = open_round(c)
    provider: Any = c.chain.w3.provider
    refused: list[Any] = []

    def refuse(calls: Any) -> Any:
        refused.append(calls)
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no batch"}}

    provider.make_batch_request = refuse
    try:
        c.client(c.addresses[0]).join(rid)
        with counted_requests(c.chain.w3) as counter:
            c.client(c.addresses[1]).join(rid)
    finally:
        del provider.make_batch_request
    assert len(refused) == 1 and not c.chain.batches  # type: ignore[attr-defined]
    assert counter.batches == []
    assert {"eth_estimateGas", "eth_getTransactionCount", "eth_sendRawTransaction"} <= set(
        counter.methods
    )
    assert c.admin.has_joined(rid, c.addresses[0]) and c.admin.has_joined(rid, c.addresses[1])


@pytest.mark.anvil
def test_stale_nonce_from_the_batch_is_rebuilt(anvil_consortium: Consortium) -> None:
    """Fault: the batch's pending nonce is one behind (a node that lags): anvil says 'nonce
    too low', the transaction is built again with a fresh nonce, and acts once."""
    c = anvil_consortium
    rid = open_round(c)
    who = c.addresses[0]
    c.client(who).join(rid)
    stale = iter([True])

    def behind(calls: Any, responses: Any) -> Any:
        if next(stale, False):
            responses[1] = dict(responses[1], result=hex(int(responses[1]["result"], 16) - 1))
        return responses

    seen = _answers(c.chain, behind)
    before = c.chain.w3.eth.get_transaction_count(who)  # type: ignore[arg-type]
    c.client(who).update_multiaddrs(["/ip4/10.0.0.1/tcp/4001"])
    assert len(seen) == 2  # built twice
    assert c.chain.w3.eth.get_transaction_count(who) == before + 1  # type: ignore[arg-type]
    member = c.admin.member(who)
    assert member is not None and member.multiaddrs == ("/ip4/10.0.0.1/tcp/4001",)


@pytest.mark.anvil
def test_chain_without_base_fee_gets_a_legacy_transaction(anvil_consortium: Consortium) -> None:
    """A block without ``baseFeePerGas`` (a chain before EIP-1559): a gas-price transaction."""
    c = anvil_consortium
    rid = open_round(c)

    def no_base_fee(calls: Any, responses: Any) -> Any:
        block = dict(responses[3]["result"])
        del block["baseFeePerGas"]
        responses[3] = dict(responses[3], result=block)
        return responses

    _answers(c.chain, no_base_fee)
    result = c.client(c.addresses[0]).join(rid)
    tx = c.chain.w3.eth.get_transaction(result.tx_hash)  # type: ignore[arg-type]
    assert tx["type"] == 0 and tx["gasPrice"] > 0 and "maxFeePerGas" not in tx
