"""`swarm peer run` with faults injected at named points of a round (a test hook, not a
library feature). Run as ``python -m tests.e2e.faulty_peer <the arguments of cli.app>`` with
``SWARM_TEST_FAULTS`` set, e.g. ``before-merge@2:0,freeze@4:3``:

- ``before-merge@R:P``: the peer at position P of round R's role order dies right before it
  merges, the way a killed process dies (no clean-up, no goodbye; exit code 137);
- ``before-commit@R:P``: the same, right before it commits its update;
- ``before-decrypt@R:P``: the same, right before it decrypts the aggregate (a decider that
  dies: the stand-by key holders decrypt in its place);
- ``after-commit@R:P``: the same, right after its commitment is on the ledger (before it hands
  out its mask shares or sends its update: a participant that drops out after committing);
- ``freeze@R:P``: the peer stops itself (SIGSTOP) as soon as it sees round R's roles: its
  connections stay open but nothing answers on them, a silently dead peer, until the test
  sends SIGCONT;
- ``stall`` (no round, no position: give it to one process): the peer joins every round and
  never commits, a member that stalls rounds on purpose; it does everything else as usual.
- ``deaf`` (likewise): the peer hears none of the ledger's events (its watch's notes are
  dropped): it goes on by its reconciliation reads, deadlines, pushes and its own actions.

Positions make it deterministic which of the identically configured processes is hit.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass

from swarm.ledger import RoundInfo
from swarm.ledger.watch import LedgerNote
from swarm.peer.work import ActionSupersededError

log = logging.getLogger("swarm.tests.faults")

#: the exit code of a process killed by SIGKILL, which the crash imitates
CRASH_EXIT = 137


@dataclass(frozen=True)
class Fault:
    point: str
    round_id: int
    position: int


class FaultHooks:
    """A :class:`swarm.peer.PeerHooks` that acts out the faults of a spec string."""

    def __init__(self, spec: str) -> None:
        self.faults = []
        self.stall = False
        self.deaf = False
        self.dropped = 0
        for item in filter(None, spec.split(",")):
            if item == "stall":
                self.stall = True
                continue
            if item == "deaf":
                self.deaf = True
                continue
            name, _, where = item.partition("@")
            round_text, _, position = where.partition(":")
            self.faults.append(Fault(name, int(round_text), int(position)))
        self.fired: set[Fault] = set()

    def hears(self, note: LedgerNote, me: str) -> bool:
        if self.deaf:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 50 == 0:
                log.error("fault deaf: dropped %d ledger notes so far", self.dropped)
        return not self.deaf

    def at(self, point: str, info: RoundInfo, me: str) -> None:
        if self.stall and point == "before-commit":
            # superseded: the peer drops this commit quietly and decides again, forever
            raise ActionSupersededError("stalling on purpose (test fault)")
        for fault in self.faults:
            if fault in self.fired or fault.round_id != info.round_id or me not in info.order:
                continue
            if info.order.index(me) != fault.position:
                continue
            stage = "round-closed" if fault.point == "freeze" else fault.point
            if stage != point:
                continue
            self.fired.add(fault)
            if fault.point == "freeze":
                log.error("fault %s: freezing on purpose", fault)
                os.kill(os.getpid(), signal.SIGSTOP)
            else:
                log.error("fault %s: crashing on purpose", fault)
                os._exit(CRASH_EXIT)


def main() -> int:
    from cli import peer as peer_cli
    from cli.app import run

    peer_cli.PEER_HOOKS = FaultHooks(os.environ.get("SWARM_TEST_FAULTS", ""))
    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
