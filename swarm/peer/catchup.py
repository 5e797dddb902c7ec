"""Getting and keeping the ledger's latest model: adopt our own, fetch someone else's, evaluate.

A fetched model is checked twice before it is used: its bytes against the hash the ledger
finalized (the transfer does it), and its tensors against the task's model (names, shapes,
dtypes), so a member serving a wrong model is skipped for the next one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from swarm.errors import AlreadyDoneError, CheckpointError, LedgerError, P2PError
from swarm.p2p import BlobKind
from swarm.peer import personal
from swarm.peer.actions import Adopt, CatchUp, ReportMetrics
from swarm.peer.work import ActionSupersededError, StateDict, prune_steward_keys
from swarm.training.checkpoint import model_bytes, prune_checkpoints, state_dict_from_bytes

if TYPE_CHECKING:
    from swarm.peer.runner import Peer

log = logging.getLogger(__name__)


async def adopt(peer: Peer, action: Adopt) -> None:
    work = peer.work
    if work is None or work.round_id != action.round_id or work.new_state is None:
        raise ActionSupersededError("the model of that round is not computed here")
    body = work.new_bytes if work.new_hash == action.model_hash else None
    await _adopt(peer, action.round_id, work.new_state, action.model_hash, body)
    work.new_bytes = None  # checkpointed and offered: 45 MB at 11.2M parameters


async def _adopt(
    peer: Peer, round_id: int, state: StateDict, digest: bytes, body: bytes | None = None
) -> None:
    """Make ``state``, a swarm state (model and server-optimizer state) hashing to ``digest``,
    the current one: checkpointed, offered to others, older rounds' files pruned. ``body``:
    its canonical bytes (hashing to ``digest``: verified on the way in, or just encoded),
    where the caller has them, so they are neither encoded nor hashed again on this step:
    between a round's finalization and the next round's training for a member catching up."""
    await peer.call(peer.model.adopt, round_id, state, digest, body)
    await peer.offer_model(body)

    def prune() -> None:
        # Earlier rounds' keys, updates, aggregates and models are no longer needed by anyone;
        # checkpoints are kept as many as the operator asked for.
        peer.store.discard_before(round_id, tuple(BlobKind))
        prune_steward_keys(peer.keys_dir, round_id)
        prune_checkpoints(peer.model.directory, peer.config.keep_checkpoints)

    await peer.call(prune)
    peer.emit("finalized", round=round_id, model=digest.hex())


async def catch_up(peer: Peer, action: CatchUp) -> None:
    """Fetch the latest finalized model from a member that holds it: those that acknowledged
    it first, then everyone else. What is fetched is the swarm state (the model and the server
    optimizer's state, whose hash the ledger finalized), so the size limit is that of ours."""
    assert peer.net is not None
    if action.round_id == 0:
        raise CheckpointError(
            "the ledger's initial model is not this task's initial model (a different task)"
        )
    finished = await peer.call(peer.ledger.view, action.round_id)
    acked = [a for a, h in finished.acks.items() if h == action.model_hash]
    others = [m for m in peer.net.members() if m not in acked]
    limit = len(model_bytes(peer.model.swarm_state)) + 4096
    for source in [*acked, *others]:
        if peer.model.hash == action.model_hash:
            return  # we adopted the model we decrypted ourselves meanwhile
        if source == peer.me:
            continue
        try:
            data = await peer.net.fetch_model(source, action.model_hash, max_size=limit)
            state = await peer.call(state_dict_from_bytes, data)
            peer.model.conform(state, f"the model {source} served")
        except (P2PError, CheckpointError) as exc:
            log.info("model not fetched from %s: %s", source, exc)
            continue
        if peer.model.hash == action.model_hash:
            return
        await _adopt(peer, action.round_id, state, action.model_hash, data)
        peer.emit("caught up", round=action.round_id, source=source)
        return
    raise P2PError(f"no member could serve model 0x{action.model_hash.hex()} yet")


async def report_metrics(peer: Peer, action: ReportMetrics) -> None:
    """Evaluate the model on our test split; report it on the ledger if the consortium asks.

    With personalization on, also fine-tune, evaluate and keep this hospital's personal model
    (swarm.peer.personal); its numbers go into the local event only, never to the ledger.
    """
    round_id = action.round_id
    model = peer.task.build_model(peer.seed)
    model.load_state_dict(peer.model.state)
    metrics = await peer.call(peer.task.evaluate, model, peer.data)
    # this hospital's own fine-tuned copy (when the task file asks): kept here, never reported
    mine = await personal.after_round(peer, round_id)
    peer.metrics_round = max(peer.metrics_round, round_id)
    peer.emit(
        "metrics",
        round=round_id,
        accuracy=metrics.accuracy,
        auc=metrics.auc,
        loss=metrics.loss,
        **mine,
    )
    if not (peer.params.metrics_enabled and peer.config.report_metrics):
        return
    try:
        await peer.call(
            peer.ledger.report_metrics,
            round_id,
            metrics.samples,
            metrics.accuracy,
            metrics.auc,
            metrics.loss,
        )
    except AlreadyDoneError:
        pass
    except LedgerError as exc:  # metrics are a courtesy: never hold the swarm up for them
        log.info("metrics of round %d not reported: %s", round_id, exc)


__all__ = ["adopt", "catch_up", "report_metrics"]
