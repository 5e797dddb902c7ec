"""The kept-alive JSON-RPC provider (swarm.ledger.rpc) against a small HTTP server in this
process standing in for the node (the real node, anvil, is what every other ledger test talks
to through it).

Faults exercised: a node that closes an idle kept-alive connection (the call is sent again on a
new one); a node that does not answer in time (requests.Timeout, what the client's retry rules
expect); a node that is not there (requests.ConnectionError); an HTTP error status
(requests.HTTPError); credentials in the chain URL (sent as basic auth).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from web3 import Web3

from swarm.ledger.rpc import KeptAliveHTTPProvider, KeptAlivePosts


class Node(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.close_after_reply = False
        self.delay_s = 0.0
        self.status = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as anvil
    server: Node

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        self.server.auth.append(self.headers.get("Authorization"))
        time.sleep(self.server.delay_s)
        calls = body if isinstance(body, list) else [body]
        replies = [{"jsonrpc": "2.0", "id": c["id"], "result": hex(1234)} for c in calls]
        data = json.dumps(replies if isinstance(body, list) else replies[0]).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.server.close_after_reply:
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def node() -> Iterator[Node]:
    server = Node()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_calls_share_one_kept_alive_connection_per_thread(node: Node) -> None:
    w3 = Web3(KeptAliveHTTPProvider(node.url))
    assert [w3.eth.block_number for _ in range(5)] == [1234] * 5
    assert node.connections == 1
    other = threading.Thread(target=lambda: w3.eth.block_number)
    other.start()
    other.join()
    assert node.connections == 2
    assert [r["method"] for r in node.requests] == ["eth_blockNumber"] * 6


def test_a_batch_is_one_post(node: Node) -> None:
    w3 = Web3(KeptAliveHTTPProvider(node.url))
    with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block_number())
        batch.add(w3.eth.get_block_number())
        assert batch.execute() == [1234, 1234]
    assert len(node.requests) == 1 and len(node.requests[0]) == 2


def test_a_connection_the_node_closed_is_reopened_and_the_call_sent_again(node: Node) -> None:
    w3 = Web3(KeptAliveHTTPProvider(node.url))
    node.close_after_reply = True
    assert [w3.eth.block_number for _ in range(3)] == [1234] * 3
    assert node.connections == 3 and len(node.requests) == 3


def test_a_silent_node_times_out_as_requests_does(node: Node) -> None:
    node.delay_s = 0.5
    posts = KeptAlivePosts(timeout=0.1)
    with pytest.raises(requests.Timeout):
        posts.make_post_request(node.url, b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}')


def test_an_absent_node_and_an_error_status_keep_requests_types(node: Node) -> None:
    posts = KeptAlivePosts(timeout=1.0)
    with pytest.raises(requests.ConnectionError):
        posts.make_post_request("http://127.0.0.1:1/", b"{}")
    node.status = 503
    with pytest.raises(requests.HTTPError, match="503") as raised:
        posts.make_post_request(node.url, b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}')
    assert raised.value.response is not None and raised.value.response.status_code == 503


def test_credentials_in_the_url_are_sent_as_basic_auth(node: Node) -> None:
    url = node.url.replace("http://", "http://alice:s%3Acret@")
    assert Web3(KeptAliveHTTPProvider(url)).eth.block_number == 1234
    assert node.auth == ["Basic " + base64.b64encode(b"alice:s:cret").decode()]
