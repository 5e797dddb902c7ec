"""Chain backends: an embedded py-evm chain in this process, or any EVM node over JSON-RPC.

The rest of swarm talks to the ledger through a :class:`Chain`'s ``w3`` only. What differs
between backends (how accounts get gas money on a development chain, how tests move the clock,
how fast to poll for receipts) lives here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import requests
from web3 import EthereumTesterProvider, Web3
from web3.middleware import Web3Middleware
from web3.types import RPCEndpoint, RPCResponse, Wei

from swarm.errors import ChainUnavailableError, LedgerError
from swarm.ledger.rpc import KeptAliveHTTPProvider

log = logging.getLogger(__name__)

EMBEDDED = "embedded"


class Chain:
    """A connected chain: ``w3`` plus what a development chain can do for tests and demos."""

    kind: str = "rpc"

    def __init__(self, w3: Web3, url: str) -> None:
        self.w3 = w3
        self.url = url
        self._chain_id_response: RPCResponse | None = None
        self._chain_id: int | None = None
        self._block_gas_limit: int | None = None
        self._cache_lock = threading.Lock()
        # web3 asks the node for eth_chainId before every eth_call and eth_estimateGas (its
        # validation middleware) and again while building a transaction: that doubled our
        # requests. A chain's id does not change, so the first answer is kept.
        w3.middleware_onion.add(_chain_id_cache(self), name="swarm_chain_id_cache")

    @property
    def chain_id(self) -> int:
        """The chain's id (read once: every signed transaction carries it)."""
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[RPCResponse] | None:
        """``calls`` as one JSON-RPC batch (one HTTP round trip): the node's raw responses in
        the order of ``calls``, each with its ``result`` or ``error``. None where batches are
        not to be had (this backend, a node that refuses them, a failed connection): the
        caller then asks one request at a time, the web3 way."""
        return None

    def block_gas_limit(self) -> int:
        """The gas limit of a block (read once: it caps every transaction's gas)."""
        if self._block_gas_limit is None:
            self._block_gas_limit = int(self.w3.eth.get_block("latest")["gasLimit"])
        return self._block_gas_limit

    #: how often to poll for a receipt; local chains mine instantly
    poll_latency: float = 0.1

    def fund(self, address: str, wei: int) -> None:
        """Give ``address`` gas money (development chains only)."""
        raise LedgerError(f"{self.url}: cannot mint funds on this chain; send ETH to {address}")

    def advance_time(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block (development chains only)."""
        raise LedgerError(f"{self.url}: cannot move this chain's clock")

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks (development chains only): e.g. the block whose hash
        draws a round's roles, on a chain that mines only when transactions come."""
        raise LedgerError(f"{self.url}: cannot mine blocks on demand on this chain")

    def timestamp(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


def _chain_id_cache(chain: Chain) -> type[Web3Middleware]:
    """A web3 middleware that answers eth_chainId from ``chain``'s memory after the first time."""

    class ChainIdCache(Web3Middleware):
        def wrap_make_request(
            self, make_request: Callable[[RPCEndpoint, Any], RPCResponse]
        ) -> Callable[[RPCEndpoint, Any], RPCResponse]:
            def middleware(method: RPCEndpoint, params: Any) -> RPCResponse:
                if method != "eth_chainId":
                    return make_request(method, params)
                cached = chain._chain_id_response
                if cached is not None:
                    return cached
                response = make_request(method, params)
                if "result" in response and "error" not in response:
                    with chain._cache_lock:
                        chain._chain_id_response = response
                return response

            return middleware

    return ChainIdCache


class EmbeddedChain(Chain):
    """eth-tester with py-evm, in this process: fast, private, gone when the process ends."""

    kind = "embedded"
    poll_latency = 0.0

    def __init__(self) -> None:
        from eth_tester import EthereumTester, PyEVMBackend

        self.tester = EthereumTester(PyEVMBackend())
        super().__init__(Web3(EthereumTesterProvider(self.tester)), EMBEDDED)
        self._faucet = self.w3.eth.accounts[0]

    def fund(self, address: str, wei: int) -> None:
        tx = self.w3.eth.send_transaction({"from": self._faucet, "to": address, "value": Wei(wei)})
        self.w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.0)

    def advance_time(self, seconds: int) -> None:
        self.tester.time_travel(self.timestamp() + int(seconds))

    def mine(self, blocks: int = 1) -> None:
        self.tester.mine_blocks(int(blocks))


class RpcChain(Chain):
    """Any EVM node by URL. On anvil, funding and the clock use anvil's own RPC methods."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        # web3's HTTP provider with kept-alive connections instead of requests (swarm.ledger.rpc)
        w3 = Web3(KeptAliveHTTPProvider(url, timeout=timeout))
        super().__init__(w3, url)
        #: whether to try JSON-RPC batches (turned off for good when the node refuses one)
        self.batches = True
        try:
            version = str(w3.client_version)
        except (requests.ConnectionError, requests.Timeout, OSError) as exc:
            raise ChainUnavailableError(
                f"cannot reach the chain at {url} ({_reason(exc)})"
            ) from exc
        self.client_version = version
        self.is_anvil = version.lower().startswith("anvil")
        host = url.split("://", 1)[-1]
        self.poll_latency = 0.005 if host.startswith(("127.", "localhost")) else 0.5
        log.debug("connected to %s (%s)", url, version)

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[RPCResponse] | None:
        if not self.batches:
            return None
        provider: Any = self.w3.provider
        try:
            responses = provider.make_batch_request(list(calls))
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 400
            if status >= 500:  # the node's trouble, not a refusal of batches
                return None
            self._no_batches(exc)
            return None
        except OSError:  # (requests' errors are OSErrors) not a refusal: the single
            return None  # requests retry, and say so if the node is gone
        except Exception as exc:  # a body that is not JSON-RPC
            self._no_batches(exc)
            return None
        if (
            not isinstance(responses, list)
            or len(responses) != len(calls)
            or not all(isinstance(r, dict) and ("result" in r or "error" in r) for r in responses)
        ):
            self._no_batches(responses)
            return None
        return responses

    def _no_batches(self, why: object) -> None:
        self.batches = False
        log.info("%s refused a JSON-RPC batch (%.200s): one request at a time", self.url, why)

    def _rpc(self, method: str, params: list[Any]) -> Any:
        if not self.is_anvil:
            raise LedgerError(f"{self.url}: {method} needs a development chain (anvil)")
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise LedgerError(f"{method} failed: {response['error']}")
        return response.get("result")

    def fund(self, address: str, wei: int) -> None:
        self._rpc("anvil_setBalance", [address, hex(wei)])

    def advance_time(self, seconds: int) -> None:
        self._rpc("evm_increaseTime", [int(seconds)])
        self._rpc("evm_mine", [])

    def mine(self, blocks: int = 1) -> None:
        self._rpc("anvil_mine", [hex(int(blocks))])


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused: is the node running?"),
        ("timed out", "timed out"),
        ("Name or service not known", "unknown host"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__


def connect(url: str) -> Chain:
    """A chain from a URL: ``embedded`` for an in-process chain, else a JSON-RPC endpoint."""
    if url == EMBEDDED:
        return EmbeddedChain()
    if not url.startswith(("http://", "https://")):
        raise ChainUnavailableError(
            f"unsupported chain URL {url!r}: use http(s)://... or 'embedded'"
        )
    return RpcChain(url)
