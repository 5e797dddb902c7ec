"""The key steward: makes the attempt's round key, posts its hash, hands it out.

The key's hash goes on the ledger as soon as the key exists, and the keys are pushed at the
same time, concurrently and bounded by the commit window: a participant then holds them when
the ledger shows the hash (it keeps a pushed context only if its hash is the ledger's, and a
sealed key opens only under that context). A participant whose connection is dead costs the
steward nothing (its push fails in the background), and any participant that missed its push
pulls the key from the steward instead.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import trio

from swarm import crypto
from swarm.errors import P2PError, SealedKeyError
from swarm.p2p import BlobKind, RoundKeyBundle
from swarm.peer.actions import DeliverRoundKeys, MakeRoundKey, PostRoundKey
from swarm.peer.work import ActionSupersededError, RoundWork, StewardKeys
from swarm.protocol import key_recipients

if TYPE_CHECKING:
    from swarm.peer.runner import Peer

log = logging.getLogger(__name__)


def restore(peer: Peer, round_id: int, attempt: int) -> StewardKeys | None:
    """The keys this steward made for the attempt before a restart (blocking: disk, crypto)."""
    keys = StewardKeys.load(peer.keys_dir, round_id, attempt)
    work = peer.work
    if keys is None or work is None or work.round_id != round_id:
        return keys
    _use(peer, work, keys)
    return keys


def seal_binding(
    peer: Peer, round_id: int, attempt: int, context_hash: bytes, recipient: str
) -> crypto.SealBinding:
    """What a sealed round key is bound to: this consortium's chain and ledger contract, the
    round, the attempt, the public context and the recipient (blocking: the chain id may be read
    from the node once)."""
    return crypto.SealBinding.of(
        chain_id=peer.ledger.chain.chain_id,
        contract=peer.ledger.address,
        round_id=round_id,
        attempt=attempt,
        context_hash=context_hash,
        recipient=recipient,
    )


def _use(peer: Peer, work: RoundWork, keys: StewardKeys) -> None:
    """Make the steward a key holder of its own key (it contributes like everyone else)."""
    public = crypto.PublicRoundContext.from_bytes(
        keys.public_bytes, params_id=peer.params.ckks_params_id, expected_hash=keys.context_hash
    )
    work.public = public
    own = keys.sealed.get(peer.me)
    if own is not None:
        work.secret = crypto.open_sealed_key(
            own,
            public,
            binding=seal_binding(peer, keys.round_id, keys.attempt, keys.context_hash, peer.me),
            private_key=peer.identity.encryption_private_key(),
        )
        peer.secret_keys_held.add((keys.round_id, keys.attempt))
    work.steward = keys


async def make_round_key(peer: Peer, action: MakeRoundKey) -> None:
    info = peer.round_of(action.round_id, action.attempt)
    work = peer.work_for(action.round_id)
    if await peer.call(restore, peer, action.round_id, action.attempt) is not None:
        return  # made before a restart: post that one
    members = peer.net.members() if peer.net is not None else {}
    t0 = time.perf_counter()

    def make() -> tuple[StewardKeys, crypto.SecretRoundContext]:
        secret = crypto.generate_round_keys(peer.params.ckks_params_id)
        sealed: dict[str, bytes] = {}
        for address in key_recipients(info.participants, info.merge_peer):
            member = members.get(address)
            if member is None:
                log.warning("round %d: %s is not an active member: no key", info.round_id, address)
                continue
            binding = seal_binding(peer, info.round_id, info.attempt, secret.context_hash, address)
            try:
                sealed[address] = crypto.seal_secret_key(secret, binding, member.encryption_key)
            except SealedKeyError as exc:  # no usable encryption key on record: no key
                log.warning("round %d: %s: %s", info.round_id, address, exc)
        keys = StewardKeys(
            info.round_id, info.attempt, secret.public_bytes, secret.context_hash, sealed
        )
        keys.save(peer.keys_dir)
        return keys, secret

    keys, secret = await peer.call(make)
    # the contexts just made, as they are: reading them back from what was published and
    # opening our own sealed key (what a restarted steward does: restore) cost ~30 ms of the
    # critical path for the same keys
    work.public = secret.public
    if peer.me in keys.sealed:
        work.secret = secret
        peer.secret_keys_held.add((keys.round_id, keys.attempt))
    work.steward = keys
    if peer.net is not None:
        await peer.net.offer(BlobKind.ROUND_CONTEXT, info.round_id, keys.public_bytes)
    work.timed("keys", time.perf_counter() - t0)


async def post_round_key(peer: Peer, action: PostRoundKey) -> None:
    peer.round_of(action.round_id, action.attempt)
    work = peer.work_for(action.round_id)
    if work.steward is None:
        raise ActionSupersededError("no round key made for this attempt")
    await peer.tx(peer.ledger.post_round_key, action.round_id, work.steward.context_hash)
    peer.emit("round key", round=action.round_id, attempt=action.attempt)


async def deliver_round_keys(peer: Peer, action: DeliverRoundKeys) -> None:
    """Push the context and sealed keys to every other participant at once, for at most the
    commit window: whoever is not reached by then pulls, or is left out."""
    info = peer.round_of(action.round_id, action.attempt)
    work = peer.work_for(action.round_id)
    keys = work.steward
    net = peer.net
    if keys is None or net is None:
        raise ActionSupersededError("no round key made for this attempt")

    async def deliver(address: str) -> None:
        # the context and the sealed key side by side: one round trip, not two in a row
        sealed = keys.sealed.get(address)
        async with trio.open_nursery() as both:
            both.start_soon(push, address, net.deliver_round_context, keys.public_bytes)
            if sealed is not None:
                both.start_soon(push, address, net.deliver_round_key, sealed)

    async def push(address: str, send: Any, data: bytes) -> None:
        try:
            await send(address, info.round_id, data)
        except P2PError as exc:
            log.info("round key not pushed to %s (it can pull it): %s", address, exc)

    t0 = time.perf_counter()
    params = info.params or peer.params
    # (while the hash is being mined the commit deadline is not set yet: the key deadline's)
    deadline = info.commit_deadline or info.key_deadline + params.commit_window
    with trio.move_on_after(max(1.0, deadline - time.time())):
        async with trio.open_nursery() as nursery:
            for address in info.participants:
                if address != peer.me:
                    nursery.start_soon(deliver, address)
    work.keys_delivered = True
    work.timed("transfer", time.perf_counter() - t0)


async def provide_round_key(peer: Peer, requester: str, round_id: int) -> RoundKeyBundle | None:
    """Serve a pull: the current attempt's context to a participant, and its sealed key unless
    it is the merge peer (which never gets one: it has no sealed key in StewardKeys)."""
    view = await peer.fresh_view()
    info = view.round
    if info is None or info.round_id != round_id or info.key_steward != peer.me:
        return None
    if requester not in info.participants or not info.key_hash.strip(b"\0"):
        return None
    work = peer.work
    keys = work.steward if work is not None and work.round_id == round_id else None
    if keys is None or keys.attempt != info.attempt:
        keys = await peer.call(StewardKeys.load, peer.keys_dir, round_id, info.attempt)
    if keys is None or keys.context_hash != info.key_hash:
        return None
    sealed = None if requester == info.merge_peer else keys.sealed.get(requester)
    return RoundKeyBundle(context=keys.public_bytes, sealed_key=sealed)


__all__ = [
    "deliver_round_keys",
    "make_round_key",
    "post_round_key",
    "provide_round_key",
    "restore",
]
