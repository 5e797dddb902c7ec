"""The hospital peer: a pure decision function and the role modules that carry it out.

``decide(ledger view, local view, now) -> actions`` (swarm.peer.decide) knows the whole round
protocol from one peer's side and does no I/O; :class:`Peer` (swarm.peer.runner) reads the
ledger once per look, calls it, and runs each action through a role module: participant
(open, join, train, key, commit, push), steward (round keys), merger (the merge peer),
keyholder (decrypt, acknowledge) and catchup (adopt, fetch, evaluate). docs/architecture.md
draws it.
"""

from swarm.peer.decide import decide
from swarm.peer.local import LocalView, RoundProgress
from swarm.peer.runner import Peer, PeerHooks

__all__ = ["LocalView", "Peer", "PeerHooks", "RoundProgress", "decide"]
