"""Reading and verifying the ledger's history, from its events alone.

Events are the ledger's audit trail: they work against any archive node, need no keys, and carry
everything needed to rebuild who did what in which round (the Consortium and the SwarmLedger emit
one for every state change).

- ``history``: the events folded into each round's history (pure);
- ``verify``: the history checked against the protocol's rules, as findings (pure);
- ``report``: the history and findings as JSON data and one HTML page (pure);
- ``source``: everything an audit reads from the chain (I/O);
- ``checkpoints``: checkpoint files read for the verifier (I/O; loads torch).
"""

from swarm.audit.history import ConsortiumHistory, RoundHistory, build_history
from swarm.audit.verify import Finding, FindingKind, Severity, verify

__all__ = [
    "ConsortiumHistory",
    "Finding",
    "FindingKind",
    "RoundHistory",
    "Severity",
    "build_history",
    "verify",
]
