"""Opening a stream for one known protocol in one round trip instead of two.

py-libp2p's multistream-select client sends the handshake (``/multistream/1.0.0``), waits for
the answer, then sends the protocol and waits again: two round trips and four messages (each a
yamux frame and a Noise message) before a stream carries a byte. Every push and fetch opens a
stream, and a masked round makes dozens of small pushes, so that was a large part of a small
round's cost. The multistream-select spec lets a client that knows which protocol it wants
send the handshake and the protocol together (go-libp2p and rust-libp2p do); the listener's
side is unchanged: it reads and answers the two messages in order.

Several candidate protocols fall back to py-libp2p's step-by-step negotiation.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio
from libp2p.abc import IMultiselectCommunicator
from libp2p.custom_types import TProtocol
from libp2p.protocol_muxer.exceptions import (
    MultiselectClientError,
    MultiselectCommunicatorError,
    ProtocolNotSupportedError,
)
from libp2p.protocol_muxer.multiselect_client import (
    DEFAULT_NEGOTIATE_TIMEOUT,
    MULTISELECT_PROTOCOL_ID,
    PROTOCOL_NOT_FOUND_MSG,
    MultiselectClient,
)
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.utils import encode_delim


class PipelinedMultiselectClient(MultiselectClient):
    """A multistream-select client that sends handshake and protocol in one write."""

    async def select_one_of(
        self,
        protocols: Sequence[TProtocol],
        communicator: IMultiselectCommunicator,
        negotiate_timeout: int = DEFAULT_NEGOTIATE_TIMEOUT,
    ) -> TProtocol:
        if len(protocols) != 1 or not isinstance(communicator, MultiselectCommunicator):
            return await super().select_one_of(protocols, communicator, negotiate_timeout)
        protocol = protocols[0]
        with trio.move_on_after(negotiate_timeout):
            try:
                await communicator.read_writer.write(
                    encode_delim(MULTISELECT_PROTOCOL_ID.encode())
                    + encode_delim(str(protocol).encode())
                )
            except Exception as exc:  # what py-libp2p's own write would have wrapped
                raise MultiselectClientError(f"handshake write failed: {exc}") from exc
            try:
                handshake = await communicator.read()
                if handshake != MULTISELECT_PROTOCOL_ID:
                    raise MultiselectClientError(f"invalid handshake {handshake!r}")
                answer = await communicator.read()
            except MultiselectCommunicatorError as exc:
                raise MultiselectClientError(f"negotiation read failed: {exc}") from exc
            if answer == protocol:
                return protocol
            if answer == PROTOCOL_NOT_FOUND_MSG:
                raise ProtocolNotSupportedError(f"protocol not supported: {protocol}")
            raise MultiselectClientError(f"unexpected answer {answer!r} to {protocol!r}")
        raise MultiselectClientError(
            f"response timed out after {negotiate_timeout}s, protocol tried: {protocol}"
        )
