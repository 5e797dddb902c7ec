"""Key holders: decrypt the aggregate, apply the server optimizer's step, acknowledge the hash.

The arithmetic is swarm.merge's: the decrypted float64 sum is divided by the contributors' total
sample count from the ledger (the mean update), and the consortium's server optimizer
(swarm.merge.server: FedAvg, or FedAvgM / FedAdam / FedYogi with their state) steps the base
model in float64, each result rounded once to float32. Every honest key holder gets
bit-identical weights and optimizer state, so the same swarm-state hash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from swarm import crypto
from swarm.crypto.masking import MaskTerm
from swarm.merge.server import ServerOptimizer, mean_delta, swarm_state
from swarm.p2p import BlobKind
from swarm.peer import masks
from swarm.peer.actions import Acknowledge, Decrypt
from swarm.peer.work import ActionSupersededError, StateDict
from swarm.training.checkpoint import model_bytes, model_hash

if TYPE_CHECKING:
    from swarm.peer.runner import Peer

log = logging.getLogger(__name__)


async def decrypt(peer: Peer, action: Decrypt) -> None:
    info = peer.round_of(action.round_id, action.attempt)
    work = peer.work_for(action.round_id)
    secret = work.secret
    if secret is None or info.merge_peer is None:
        raise ActionSupersededError("no secret key for this attempt")
    if info.base_model != peer.model.hash:
        raise ActionSupersededError("the round's base model is not the model we hold")
    assert peer.net is not None
    params = info.params or peer.params
    unmask: Sequence[MaskTerm] = ()
    if params.mask_threshold_pct > 0:
        # the correction from t holders' reveals; superseded (and decided again when another
        # reveal arrives) until there are enough
        t0 = time.perf_counter()
        unmask = await peer.call(masks.unmask_terms, peer, info, work)
        work.timed("unmask", time.perf_counter() - t0)
    t0 = time.perf_counter()
    aggregate = await peer.call(peer.store.get, info.aggregate_hash)
    if aggregate is None:
        aggregate = await peer.net.fetch_aggregate(
            info.merge_peer,
            info.round_id,
            info.aggregate_hash,
            max_size=crypto.max_blob_size(
                peer.layout.param_count,
                peer.params.ckks_params_id,
                crypto.PayloadKind.SEEDED_AGGREGATE,
            ),
        )
    work.timed("transfer", time.perf_counter() - t0)
    base, server, optimizer = peer.model.state, peer.model.server, peer.model.optimizer
    t0 = time.perf_counter()

    def decrypt_apply() -> StateDict:
        summed = crypto.decrypt_aggregate(
            aggregate,
            secret,
            round_id=info.round_id,
            layout=peer.layout,
            expected_count=len(info.contributors),
            unmask=unmask,
            mask_context=masks.mask_context(peer, info.round_id, info.attempt) if unmask else None,
        )
        return apply_decrypted_sum(
            base, summed, peer.layout, info.total_samples, optimizer=optimizer, server=server
        )

    new_state = await peer.call(decrypt_apply)
    work.timed("decryption", time.perf_counter() - t0)
    data = model_bytes(new_state)
    work.new_state, work.new_hash = new_state, model_hash(new_state)
    await peer.net.offer(BlobKind.MODEL, info.round_id, data)


def apply_decrypted_sum(
    base: StateDict,
    summed: npt.NDArray[np.float64],
    layout: crypto.Layout,
    total_samples: int,
    *,
    optimizer: ServerOptimizer | None = None,
    server: Mapping[str, torch.Tensor] | None = None,
) -> StateDict:
    """The next swarm state (model and server-optimizer state, swarm.merge.server.swarm_state)
    from the decrypted sum of n_i * delta_i: the mean update in float64, without rounding the
    sum first, then ``optimizer``'s step from ``server`` (its state of the base model; default:
    FedAvg, which has none, and whose swarm state is the model itself)."""
    optimizer = optimizer if optimizer is not None else ServerOptimizer()
    mean = mean_delta(crypto.unflatten(summed, layout, dtype=np.float64), total_samples)
    model, new_server = optimizer.step(base, server if server is not None else {}, mean)
    return swarm_state(model, new_server)


async def acknowledge(peer: Peer, action: Acknowledge) -> None:
    """Resent by the next decision until the ledger records it (a revert, out of gas included,
    changes nothing here: the model stays computed)."""
    await peer.tx(peer.ledger.acknowledge, action.round_id, action.model_hash)
    peer.emit("acknowledged", round=action.round_id, model=action.model_hash.hex())


__all__ = ["acknowledge", "apply_decrypted_sum", "decrypt"]
