"""JSON-RPC over HTTP for web3, without requests' cost per call.

web3's ``HTTPProvider`` posts each call through requests (a session, its adapters, urllib3's
pool): about 2 ms of CPU per call on this project's 2-core machine, against 0.3 ms for the
same POST on a kept-alive ``http.client`` connection (``benchmarks/ledger_bench.py``). A peer
makes tens of calls per round (its views of the ledger, each transaction's estimate, nonce,
send and receipt), and on a machine that runs several peers that difference was a large share
of the swarm's CPU. :class:`KeptAliveHTTPProvider` keeps everything of web3's provider (request
encoding, response decoding, batches, its retry rule for connection errors) and replaces only
the POST: one connection per thread and node, kept open between calls.

Failures keep requests' exception types, which the ledger client's retry and error rules
expect: a timeout is ``requests.Timeout``, a connection that cannot be made or breaks is
``requests.ConnectionError``, an HTTP error status is ``requests.HTTPError``. A kept-alive
connection the node closed meanwhile is reopened and the call sent once more (every call the
client makes may be repeated: reads, and a signed transaction whose resend the node recognizes).
"""

from __future__ import annotations

import base64
import http.client
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from web3 import HTTPProvider

#: what web3's provider sends besides the body
_HEADERS = {"Content-Type": "application/json"}


class KeptAlivePosts:
    """POST requests on one kept-alive connection per thread (the shape of web3's session
    manager: ``make_post_request(uri, data, **kwargs) -> bytes``)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._local = threading.local()

    def make_post_request(self, endpoint_uri: str, data: bytes | str, **kwargs: Any) -> bytes:
        uri = str(endpoint_uri)
        timeout = float(kwargs.get("timeout") or self.timeout)
        body = data.encode() if isinstance(data, str) else bytes(data)
        for attempt in (1, 2):
            connection, reused = self._connection(str(endpoint_uri), timeout)
            try:
                connection.request("POST", self._target, body=body, headers=self._headers)
                response = connection.getresponse()
                content = response.read()
            except TimeoutError as exc:
                self._drop()
                raise requests.Timeout(f"{endpoint_uri}: no answer within {timeout:g} s") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if reused and attempt == 1:
                    continue  # the node closed the idle connection: a new one, once
                raise requests.ConnectionError(f"{endpoint_uri}: {exc}") from exc
            if response.will_close:
                self._drop()
            if response.status >= 400:
                reply = requests.Response()  # (callers read the status, as from requests)
                reply.status_code, reply.reason, reply.url = response.status, response.reason, uri
                reply._content = content
                raise requests.HTTPError(
                    f"{response.status} {response.reason} from {uri}", response=reply
                )
            return content
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self, uri: str, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is not None and local.uri == uri:
            return connection, True
        self._drop()
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise requests.ConnectionError(f"{uri}: not an http(s) URL")
        secure = parts.scheme == "https"
        kind = http.client.HTTPSConnection if secure else http.client.HTTPConnection
        connection = kind(parts.hostname, parts.port, timeout=timeout)
        headers = dict(_HEADERS)
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        local.connection, local.uri = connection, uri
        local.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        local.headers = headers
        return connection, False

    @property
    def _target(self) -> str:
        return str(self._local.target)

    @property
    def _headers(self) -> dict[str, str]:
        return dict(self._local.headers)

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()


class KeptAliveHTTPProvider(HTTPProvider):
    """web3's HTTP provider with :class:`KeptAlivePosts` for its POSTs."""

    def __init__(self, endpoint_uri: str, *, timeout: float = 10.0) -> None:
        super().__init__(endpoint_uri, request_kwargs={"timeout": timeout})
        self._request_session_manager = KeptAlivePosts(timeout)  # type: ignore[assignment]


__all__ = ["KeptAliveHTTPProvider", "KeptAlivePosts"]
