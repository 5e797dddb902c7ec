"""What every participant does: open and join rounds, train, get the round key, commit, push.

Each function carries out one action of :mod:`swarm.peer.actions` and returns once its effect
is done or raised a typed error; the next decision checks the ledger for the effect.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import trio

from swarm import crypto
from swarm.crypto.parallel import encrypt_vector_split
from swarm.errors import CryptoError, NotParticipantError, P2PError
from swarm.ledger import RoundState
from swarm.p2p import BlobKind, BlobRef, PushRequest
from swarm.peer import masks, privacy, steward
from swarm.peer.actions import (
    CloseJoin,
    Commit,
    DrawRoles,
    FetchRoundKey,
    Join,
    OpenRound,
    PushUpdate,
    ReplaceKeySteward,
    ReplaceMergePeer,
    Train,
)
from swarm.peer.work import ActionSupersededError, RoundWork, StateDict
from swarm.training import model_delta

#: how long a participant leaves the key steward to push the round's key before pulling it
KEY_PUSH_WAIT_S = 2.0
_KEY_BLOBS = (BlobKind.ROUND_CONTEXT, BlobKind.ROUND_KEY)

if TYPE_CHECKING:
    from swarm.ledger import LedgerView, RoundInfo
    from swarm.peer.runner import Peer

log = logging.getLogger(__name__)


# --- opening and joining ----------------------------------------------------------------------


async def open_round(peer: Peer, action: OpenRound) -> None:
    # read before the transaction: the view may be refreshed (to the new round) while it is mined
    opening = (peer.view.current_round + 1) if peer.view else "?"
    await peer.tx(peer.ledger.open_round, action.base_model)
    peer.emit("opened", round=opening)


async def join(peer: Peer, action: Join) -> None:
    params = peer.params
    if params.epsilon_budget > 0:
        # our own account first: a round we cannot pay for is not joined (the ledger would
        # accept the join and then refuse the commit, and we would stall the round)
        cfg = peer.train_config.for_round(action.round_id, peer.config.site)
        ok, projected = await peer.call(privacy.affordable, peer, params, cfg)
        if not ok:
            privacy.refuse(peer, params, action.round_id, projected)
            return
    try:
        await peer.tx(peer.ledger.join, action.round_id)
    except NotParticipantError as exc:
        if exc.name == "PrivacyBudgetExhausted":
            # the ledger holds our cumulative epsilon at the consortium's budget: our data may
            # not be used for another round, now or later
            if not peer.privacy_spent:
                peer.emit("privacy budget spent", round=action.round_id, **exc.values)
            peer.privacy_spent = True
            return
        if exc.name != "SittingOut":
            raise
        # benched for missed commits: say so once, and stop asking until the bench ends
        until = int(exc.values.get("untilRound", action.round_id))
        peer.sitting_out_until = until
        peer.emit("sitting out", round=action.round_id, until=until)
        return
    peer.emit("joined", round=action.round_id)


async def close_join(peer: Peer, action: CloseJoin) -> None:
    await peer.tx(peer.ledger.close_join, action.round_id)


async def draw_roles(peer: Peer, action: DrawRoles) -> None:
    await peer.tx(peer.ledger.draw_roles, action.round_id)


async def replace_key_steward(peer: Peer, action: ReplaceKeySteward) -> None:
    await peer.tx(peer.ledger.replace_key_steward, action.round_id)
    peer.emit("replaced", round=action.round_id, role="key steward")


async def replace_merge_peer(peer: Peer, action: ReplaceMergePeer) -> None:
    await peer.tx(peer.ledger.replace_merge_peer, action.round_id)
    peer.emit("replaced", round=action.round_id, role="merge peer")


# --- training ---------------------------------------------------------------------------------


async def train(peer: Peer, action: Train) -> None:
    work = peer.work_for(action.round_id)
    base = peer.model.state
    if work.base_hash != peer.model.hash:
        raise ActionSupersededError("the round's base model is not the model we hold")
    t0 = time.perf_counter()
    # the round's parameters (a snapshot taken when it opened): DP-SGD when it has a budget
    params = work.info.params if work.info is not None and work.info.params else peer.params
    cfg = peer.train_config.for_round(action.round_id, peer.config.site)
    if params.epsilon_budget > 0:
        delta, samples, spent = await peer.call(
            privacy.train_round, peer, params, cfg, base, action.round_id
        )
        work.privacy = spent
    else:

        def run() -> tuple[StateDict, int]:
            model = peer.task.build_model(peer.seed)
            model.load_state_dict(base)
            samples = peer.task.train(model, peer.data, cfg, base)
            return model_delta(model.state_dict(), base), samples

        delta, samples = await peer.call(run)
    work.delta, work.samples = delta, samples
    work.timed("training", time.perf_counter() - t0)
    peer.emit("trained", round=action.round_id, samples=samples)


# --- the round key ----------------------------------------------------------------------------


def load_round_keys(peer: Peer, info: RoundInfo, work: RoundWork) -> None:
    """Open this attempt's context and our sealed key from the blob store, where the steward's
    push (or our pull) put them. Blocking: call from a worker thread."""
    if work.public is None:
        for ref in peer.store.find(kind=BlobKind.ROUND_CONTEXT, round_id=info.round_id):
            if ref.digest != info.key_hash:
                continue
            data = peer.store.get(ref.digest)
            if data is not None:
                work.public = crypto.PublicRoundContext.from_bytes(
                    data, params_id=peer.params.ckks_params_id, expected_hash=info.key_hash
                )
                break
    if work.public is None or work.secret is not None or peer.me == info.merge_peer:
        return
    for ref in reversed(peer.store.find(kind=BlobKind.ROUND_KEY, round_id=info.round_id)):
        sealed = peer.store.get(ref.digest)
        if sealed is None:
            continue
        try:
            binding = steward.seal_binding(
                peer, info.round_id, info.attempt, work.public.context_hash, peer.me
            )
            work.secret = crypto.open_sealed_key(
                sealed,
                work.public,
                binding=binding,
                private_key=peer.identity.encryption_private_key(),
            )
        except CryptoError:
            continue  # an earlier attempt's key
        peer.secret_keys_held.add((info.round_id, info.attempt))
        return


async def fetch_round_key(peer: Peer, action: FetchRoundKey) -> None:
    """The key from what was pushed to us, or else pulled from the steward (a steward that
    restarted reads back the keys it made)."""
    info = peer.round_of(action.round_id, action.attempt)
    work = peer.work_for(action.round_id)
    if action.steward == peer.me:
        if await peer.call(steward.restore, peer, action.round_id, action.attempt) is None:
            raise ActionSupersededError("this steward's round key was lost (data directory)")
        return
    # The steward pushes the key the moment it is on the ledger, and this action starts at
    # the same moment: pulling at once would send the (large) context twice. Give the push
    # KEY_PUSH_WAIT_S to land; a pull is for a push that failed or was lost (we restarted).
    wanted = (BlobKind.ROUND_CONTEXT,) if peer.me == info.merge_peer else _KEY_BLOBS
    wait_until = (work.key_seen_at or 0.0) + KEY_PUSH_WAIT_S
    while time.time() < wait_until and not all(
        peer.store.find(kind=kind, round_id=action.round_id) for kind in wanted
    ):
        await trio.sleep(0.05)
    await peer.call(load_round_keys, peer, info, work)
    if work.public is not None and (work.secret is not None or peer.me == info.merge_peer):
        return
    assert peer.net is not None
    ckks = peer.params.ckks_params_id
    bundle = await peer.net.fetch_round_key(
        action.steward,
        action.round_id,
        max_context=crypto.max_public_context_size(ckks),
        max_key=crypto.max_sealed_key_size(ckks),
    )
    if crypto.context_hash(bundle.context) != info.key_hash:
        raise CryptoError("the steward served a context that is not the one on the ledger")
    await peer.call(
        peer.store.put,
        BlobRef(
            BlobKind.ROUND_CONTEXT,
            action.round_id,
            action.steward,
            crypto.context_hash(bundle.context),
            len(bundle.context),
        ),
        bundle.context,
    )
    if bundle.sealed_key is not None:
        await peer.call(
            peer.store.put,
            BlobRef(
                BlobKind.ROUND_KEY,
                action.round_id,
                action.steward,
                crypto.sealed_key_id(bundle.sealed_key),
                len(bundle.sealed_key),
            ),
            bundle.sealed_key,
        )
    await peer.call(load_round_keys, peer, info, work)
    peer.emit("round key pulled", round=action.round_id, attempt=action.attempt)


async def validate_key_delivery(peer: Peer, req: PushRequest) -> str | None:
    """Only this attempt's steward delivers keys, the context must be the one on the ledger
    once its hash is there (the steward pushes while the hash is being mined: a context taken
    before is kept only if its hash turns out to be the ledger's, see load_round_keys), and the
    merge peer takes no secret key."""
    return await peer.validate_on_ledger(lambda view: _key_delivery_refusal(peer, req, view))


def _key_delivery_refusal(peer: Peer, req: PushRequest, view: LedgerView) -> str | None:
    info = view.round
    if info is None or info.round_id != req.round_id:
        return f"round {req.round_id} is not the current round"
    if req.sender != info.key_steward:
        return "only the round's key steward delivers round keys"
    if req.kind == BlobKind.ROUND_KEY and peer.me == info.merge_peer:
        return "the merge peer must not hold the round's secret key"
    posted = info.key_hash.strip(b"\0")
    if not posted and info.state != RoundState.KEYING:
        return "no round key is being posted in this round"
    if req.kind == BlobKind.ROUND_CONTEXT and posted and req.digest != info.key_hash:
        return "this context's hash is not the round key's hash on the ledger"
    return None


# --- contributing -----------------------------------------------------------------------------


async def commit(peer: Peer, action: Commit) -> None:
    """Encrypt our update (weight: our sample count), keep it, commit its hash."""
    info = peer.round_of(action.round_id, action.attempt)
    work = peer.work_for(action.round_id)
    if peer.me in (await peer.fresh_view()).commitments:
        # Never encrypt again over a commitment on the ledger: the new blob would replace the
        # committed one on disk, and nothing could be pushed or merged.
        raise ActionSupersededError("our update of this attempt is already committed")
    ctx: crypto.PublicRoundContext | crypto.SecretRoundContext | None = work.secret or work.public
    if work.delta is None or ctx is None:
        raise ActionSupersededError("no update or no round key yet")
    delta = work.delta
    params = info.params or peer.params
    if params.epsilon_budget > 0 and work.privacy is None:
        raise ActionSupersededError("trained without the round's privacy accounting")
    t0 = time.perf_counter()
    mask = None
    if params.mask_threshold_pct > 0:
        mask = await peer.call(masks.prepare, peer, info, work)
        peer.wake("local")  # the shares can go out while we encrypt (decide: PushShares)

    def encrypt() -> bytes:
        options: dict[str, Any] = dict(
            layout=peer.layout,
            weight=work.samples,
            round_id=action.round_id,
            sender=bytes.fromhex(peer.me[2:]),
            masks=mask.terms if mask else (),
            mask_context=mask.context if mask else None,
            contributors=len(info.participants),
        )
        if peer.cores is None:
            return crypto.encrypt_update(delta, ctx, **options)
        values = crypto.flatten(delta, peer.layout)
        return encrypt_vector_split(
            values, ctx, run=peer.cores.run, parts=peer.cores.workers, **options
        )

    blob = await peer.call(encrypt)
    work.timed("encryption", time.perf_counter() - t0)
    peer.hook("before-commit", info)
    # Kept (under our own address, like a received update) before the commitment is sent, so
    # a commitment on the ledger always has its blob here, even across a crash.
    digest = crypto.blob_id(blob)
    ref = BlobRef(BlobKind.UPDATE, action.round_id, peer.me, digest, len(blob))
    await peer.call(peer.store.put, ref, blob)
    round_eps, total_eps = work.privacy or (0.0, 0.0)
    await peer.tx(
        lambda: peer.ledger.commit_update(
            action.round_id,
            digest,
            work.samples,
            shares_hash=mask.shares_hash if mask else bytes(32),
            round_epsilon=round_eps,
            total_epsilon=total_eps,
        )
    )
    peer.hook("after-commit", info)
    peer.emit("committed", round=action.round_id, attempt=action.attempt, bytes=len(blob))


async def push_update(peer: Peer, action: PushUpdate) -> None:
    """One try at delivering our committed update; the next decision retries if needed, after
    looking whether the merge peer was replaced meanwhile."""
    assert peer.net is not None
    work = peer.work_for(action.round_id)
    view = peer.view
    committed = view.commitments.get(peer.me) if view is not None else None
    if committed is None:
        raise ActionSupersededError("no commitment of ours in this attempt")
    blob = await peer.call(peer.store.get, committed[0])
    if blob is None:
        # Lost with a crash between commit and store cannot happen (we store first); a wiped
        # data directory can. Nothing to send: we are left out of this attempt.
        log.warning("round %d: our committed update is not on disk", action.round_id)
        work.pushed = True
        return
    policy = peer.net.config.transfer
    t0 = time.perf_counter()
    try:
        await peer.net.push_update(
            action.merge_peer,
            action.round_id,
            blob,
            digest=committed[0],
            policy=policy.single_attempt(),
        )
    except P2PError:
        work.timed("transfer", time.perf_counter() - t0)
        raise
    work.timed("transfer", time.perf_counter() - t0)
    work.timed("push", time.perf_counter() - t0)
    work.pushed = True
    peer.emit("sent", round=action.round_id, to=action.merge_peer)


__all__ = [
    "close_join",
    "commit",
    "fetch_round_key",
    "join",
    "load_round_keys",
    "open_round",
    "push_update",
    "replace_key_steward",
    "replace_merge_peer",
    "train",
    "validate_key_delivery",
]
