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
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
import trio

from swarm import crypto, sizing
from swarm.crypto.masking import MaskTerm
from swarm.crypto.parallel import decrypt_aggregate_split
from swarm.errors import P2PError
from swarm.ledger import RoundInfo
from swarm.merge.server import ServerOptimizer, mean_delta, swarm_state
from swarm.p2p import BlobKind
from swarm.peer import masks
from swarm.peer.actions import Acknowledge, Decrypt
from swarm.peer.work import ActionSupersededError, RoundWork, StateDict
from swarm.training.checkpoint import model_bytes, model_bytes_hash

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
    peer.hook("before-decrypt", info)
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
        aggregate = await _fetch_aggregate(peer, info, work)
    work.timed("transfer", time.perf_counter() - t0)
    work.timed("aggregate fetch", time.perf_counter() - t0)
    base, server, optimizer = peer.model.state, peer.model.server, peer.model.optimizer
    t0 = time.perf_counter()

    def decrypt_apply() -> StateDict:
        options: dict[str, Any] = dict(
            round_id=info.round_id,
            layout=peer.layout,
            expected_count=len(info.contributors),
            unmask=unmask,
            mask_context=masks.mask_context(peer, info.round_id, info.attempt) if unmask else None,
        )
        if peer.cores is None:
            summed = crypto.decrypt_aggregate(aggregate, secret, **options)
        else:
            summed = decrypt_aggregate_split(
                aggregate, secret, run=peer.cores.run, parts=peer.cores.workers, **options
            )
        return apply_decrypted_sum(
            base, summed, peer.layout, info.total_samples, optimizer=optimizer, server=server
        )

    new_state = await peer.call(decrypt_apply)
    work.timed("decryption", time.perf_counter() - t0)
    # serializing and hashing 45 MB (a ResNet-18) is blocking work: not on the peer's loop
    data = await peer.call(model_bytes, new_state)
    digest = await peer.call(model_bytes_hash, data)
    work.new_state, work.new_hash, work.new_bytes = new_state, digest, data
    await peer.net.offer(BlobKind.MODEL, info.round_id, data, digest)


#: Key holders fetch a large aggregate along a tree: the merge peer serves the first
#: AGGREGATE_FANOUT of them (in the round's drawn order), each of those the next AGGREGATE_FANOUT,
#: and so on, so the merge peer's upload stays AGGREGATE_FANOUT aggregates however many hospitals
#: take part (168 MB each at 11.2M parameters).
AGGREGATE_FANOUT = 2
#: below this size (bytes) every key holder fetches from the merge peer at once: a tree's wait
#: would cost more than the merge peer's upload
TREE_MIN_BYTES = 8_000_000
#: how long a key holder waits for its parent in the tree to hold the aggregate before it also
#: asks the merge peer: a fixed allowance plus the transfer at a cautious rate, per level above
PARENT_WAIT_S = 5.0
PARENT_WAIT_BYTES_PER_S = 20e6
#: pause before asking the parent again after "not yet"
PARENT_RETRY_S = 0.5


def fetch_parent(info: RoundInfo, me: str, aggregate_bytes: int) -> tuple[str | None, int]:
    """Our parent in the aggregate's fetch tree and our depth under the merge peer (None, 0:
    fetch from the merge peer). Pure: every key holder works out the same tree from the ledger.
    """
    if aggregate_bytes < TREE_MIN_BYTES:
        return None, 0
    holders = [a for a in info.order if a != info.merge_peer and a not in info.left]
    if me not in holders:
        return None, 0
    index, depth = holders.index(me), 0
    parent: str | None = None
    while index >= AGGREGATE_FANOUT:
        index = (index - AGGREGATE_FANOUT) // AGGREGATE_FANOUT
        parent = parent or holders[index]
        depth += 1
    return parent, depth


async def _fetch_aggregate(peer: Peer, info: RoundInfo, work: RoundWork) -> bytes:
    """The round's aggregate from our parent in the fetch tree, or the merge peer once the
    parent has had its time (or where there is no tree). The parent's "not yet" is an ordinary
    wait (superseded, decided again), not a failure."""
    assert peer.net is not None and info.merge_peer is not None
    params_id = peer.params.ckks_params_id
    contributors = len(info.contributors)
    expected = sizing.round_bytes(peer.layout.param_count, contributors, params_id).aggregate
    parent, depth = fetch_parent(info, peer.me, expected)
    max_size = crypto.max_blob_size(
        peer.layout.param_count, params_id, crypto.PayloadKind.SEEDED_AGGREGATE
    )
    now = time.time()
    if work.aggregate_asked_at is None:
        work.aggregate_asked_at = now
    patience = depth * (PARENT_WAIT_S + expected / PARENT_WAIT_BYTES_PER_S)
    if parent is not None and now - work.aggregate_asked_at < patience:
        policy = peer.net.config.transfer.single_attempt()
        try:
            return await peer.net.fetch_aggregate(
                [parent], info.round_id, info.aggregate_hash, max_size=max_size, policy=policy
            )
        except P2PError as exc:
            await trio.sleep(PARENT_RETRY_S)
            raise ActionSupersededError(f"the aggregate is not at {parent} yet: {exc}") from exc
    providers = [parent, info.merge_peer] if parent is not None else [info.merge_peer]
    return await peer.net.fetch_aggregate(
        providers, info.round_id, info.aggregate_hash, max_size=max_size
    )


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


__all__ = ["acknowledge", "apply_decrypted_sum", "decrypt", "fetch_parent"]
