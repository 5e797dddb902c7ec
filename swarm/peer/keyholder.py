"""Key holders: decrypt the aggregate, apply the mean update, acknowledge the model's hash.

The arithmetic is swarm.merge's, the one FedAvg of the project: the decrypted float64 sum is
divided by the contributors' total sample count from the ledger and added to the base model in
float64, rounded once to float32. Every honest key holder gets bit-identical weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from swarm import crypto
from swarm.crypto.masking import MaskTerm
from swarm.merge import apply_mean_update
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
            max_size=crypto.max_blob_size(peer.layout.param_count, peer.params.ckks_params_id),
        )
    work.timed("transfer", time.perf_counter() - t0)
    base = peer.model.state
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
        return apply_decrypted_sum(base, summed, peer.layout, info.total_samples)

    new_state = await peer.call(decrypt_apply)
    work.timed("decryption", time.perf_counter() - t0)
    data = model_bytes(new_state)
    work.new_state, work.new_hash = new_state, model_hash(new_state)
    await peer.net.offer(BlobKind.MODEL, info.round_id, data)


def apply_decrypted_sum(
    base: StateDict, summed: npt.NDArray[np.float64], layout: crypto.Layout, total_samples: int
) -> StateDict:
    """The next model from the decrypted sum of n_i * delta_i: swarm.merge's FedAvg step, fed
    the float64 sum without rounding it first (so it is rounded once, to float32, at the end)."""
    return apply_mean_update(
        base, crypto.unflatten(summed, layout, dtype=np.float64), total_samples
    )


async def acknowledge(peer: Peer, action: Acknowledge) -> None:
    """Resent by the next decision until the ledger records it (a revert, out of gas included,
    changes nothing here: the model stays computed)."""
    await peer.tx(peer.ledger.acknowledge, action.round_id, action.model_hash)
    peer.emit("acknowledged", round=action.round_id, model=action.model_hash.hex())


__all__ = ["acknowledge", "apply_decrypted_sum", "decrypt"]
