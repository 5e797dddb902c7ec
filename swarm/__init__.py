"""swarm: hospitals train one model together with no central server.

Each round, peers exchange CKKS-encrypted model updates over libp2p and coordinate membership
and merge rounds through a smart contract on an Ethereum ledger. See docs/architecture.md.
"""

__version__ = "0.1.0"
