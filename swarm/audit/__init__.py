"""Reading and verifying the ledger's history, from its events alone.

Events are the ledger's audit trail: they work against any archive node, need no keys, and carry
everything needed to rebuild who did what in which round (the contract emits one for every state
change).
"""

from swarm.audit.history import ConsortiumHistory, RoundHistory, build_history

__all__ = ["ConsortiumHistory", "RoundHistory", "build_history"]
