"""How the peer's runner ends an action that failed: which errors it survives.

A unit test of the runner's error policy (``Peer._carry_out``) with a stand-in action and
handler; the peer around it is a bare object with only the fields the policy touches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
import trio

from swarm.errors import LedgerError
from swarm.peer import runner
from swarm.peer.actions import Action


@dataclass(frozen=True)
class _Probe(Action):
    round_id: int


def _bare_peer() -> runner.Peer:
    peer = runner.Peer.__new__(runner.Peer)
    peer._cooling = {}
    peer._in_flight = set()
    peer._finished = 0
    peer._wake = trio.Event()
    peer._woken_by = ""
    peer.on_event = None
    return peer


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(2, "No such file or directory", "blobs/round_key/7-0x1.blob"),
        OSError(28, "No space left on device"),
        LedgerError("the node went away"),
    ],
    ids=["file-gone", "disk-full", "swarm-error"],
)
def test_an_action_that_fails_on_the_machine_is_retried_not_fatal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    """Fault: a step fails with an OSError (a file another worker removed, a full disk) or a
    typed SwarmError. The peer logs one warning naming the step, cools the step down so the next
    decision retries it later, and keeps running (the process used to end on an OSError: a
    long localnet run lost a peer that way)."""

    async def fails(peer: runner.Peer, action: Action) -> None:
        raise error

    monkeypatch.setitem(runner.HANDLERS, _Probe, fails)
    peer = _bare_peer()
    action = _Probe(7)
    with caplog.at_level(logging.WARNING, logger="swarm.peer.runner"):
        trio.run(peer._carry_out, action)
    assert action.key in peer._cooling  # retried after a pause, not dropped
    assert action.key not in peer._in_flight
    assert peer._finished == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "_Probe (7) failed" in warnings[0]


def test_a_programming_error_still_ends_the_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (here a TypeError) is not swallowed: it ends the run with its traceback, where a
    retry would repeat it forever."""

    async def broken(peer: runner.Peer, action: Action) -> None:
        raise TypeError("unsupported operand")

    monkeypatch.setitem(runner.HANDLERS, _Probe, broken)
    peer = _bare_peer()
    with pytest.raises(TypeError):
        trio.run(peer._carry_out, _Probe(1))
    assert peer._in_flight == set()
