"""Merge strategies: how the round's updates become the next model.

Pure arithmetic on state_dicts (no I/O, never imports ``swarm.p2p`` or ``swarm.ledger``).
The encrypted path sums ``n_i * delta_i`` under CKKS (swarm.crypto); this package computes what
happens around that sum: the update each site encrypts (:func:`model_delta`) and the new model
every key holder derives from the decrypted sum (:func:`apply_mean_update`, or in general a
server optimizer's step, :class:`ServerOptimizer`, whose state travels with the model in the
:func:`swarm_state`), plus the plaintext reference (:func:`fedavg`) that tests and benchmarks
compare the encrypted path against.
"""

from swarm.merge.fedavg import apply_mean_update, fedavg, model_delta, weighted_sum
from swarm.merge.server import ServerOptimizer, mean_delta, split_swarm_state, swarm_state

__all__ = [
    "ServerOptimizer",
    "apply_mean_update",
    "fedavg",
    "mean_delta",
    "model_delta",
    "split_swarm_state",
    "swarm_state",
    "weighted_sum",
]
