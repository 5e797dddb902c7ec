"""Masked aggregation at a peer: make the masks and their shares, hand the shares out, reveal
what the ledger's contributor set allows, and gather the reveals a key holder unmasks with.

The arithmetic and the wire formats are swarm.crypto's (masking, shares; docs/crypto.md). This
module decides *to whom* and *when*, from the ledger:

- at commit, our update is masked with our self mask and one pairwise mask per participant,
  and our secrets are split into shares (threshold ``swarm.protocol.mask_threshold``);
  the shares' hash goes into our commitment;
- after the commitment, each participant gets its shares, sealed to its registered
  encryption key; our update goes to the merge peer only once enough holders have them;
- once the ledger names the contributors, every participant reveals the shares it holds of
  each contributor's self mask and of its pairwise masks with non-contributors, and nothing
  else: the rule that keeps every single update masked whatever the merge peer claims.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from swarm._files import write_atomic
from swarm.crypto import masking, shares
from swarm.errors import CryptoError, P2PError
from swarm.ledger import RoundState
from swarm.p2p import BlobKind, BlobRef, PushRequest, content_digest
from swarm.peer.actions import PushReveal, PushShares
from swarm.peer.work import ActionSupersededError, RoundWork
from swarm.protocol import ack_eligible, mask_threshold

if TYPE_CHECKING:
    from swarm.ledger import LedgerView, RoundInfo
    from swarm.peer.runner import Peer

log = logging.getLogger(__name__)

#: largest shares or reveal blob a peer accepts: a reveal carries one manifest (participants^2
#: share hashes) per contributor, 8.4 MB at the CKKS set's cap of 64 participants
MAX_MASK_BLOB = 16 * 1024 * 1024


@dataclass(frozen=True)
class Masks:
    """What ``commit`` needs from the masking side of one attempt."""

    context: masking.MaskContext
    terms: Sequence[masking.MaskTerm]
    shares_hash: bytes


def mask_context(peer: Peer, round_id: int, attempt: int) -> masking.MaskContext:
    return masking.MaskContext(
        chain_id=peer.ledger.chain.chain_id,
        contract=bytes.fromhex(peer.ledger.address[2:]),
        round_id=round_id,
        attempt=attempt,
    )


def threshold(peer: Peer, info: RoundInfo) -> int:
    params = info.params or peer.params
    return mask_threshold(len(info.participants), params.mask_threshold_pct)


def _encryption_keys(peer: Peer, participants: Sequence[str]) -> list[bytes]:
    """The participants' registered encryption keys (a member removed mid-round keeps its
    record on the ledger)."""
    members = peer.net.members() if peer.net is not None else {}
    keys = []
    for address in participants:
        member = members.get(address) or peer.ledger.member(address)
        if member is None:
            raise ActionSupersededError(f"{address} has no member record: cannot mask")
        keys.append(bytes(member.encryption_key))
    return keys


def prepare(peer: Peer, info: RoundInfo, work: RoundWork) -> Masks:
    """Our masks for this attempt and the shares of their secrets (blocking: key agreement,
    Shamir, HPKE). The shares for the others wait in ``work``; ours goes to our own store."""
    ctx = mask_context(peer, info.round_id, info.attempt)
    addresses = [bytes.fromhex(a[2:]) for a in info.participants]
    keys = _encryption_keys(peer, info.participants)
    me = info.participants.index(peer.me)
    private = peer.identity.encryption_private_key()
    secrets = masking.mask_secrets(
        ctx,
        my_index=me,
        my_private_key=private,
        addresses=addresses,
        encryption_keys=keys,
        self_seed=masking.new_self_seed(),
    )
    setup = shares.ShareSetup(ctx, me, tuple(addresses), threshold(peer, info))
    manifest, plain = shares.split(setup, secrets)
    out: dict[str, bytes] = {}
    for holder, address in enumerate(info.participants):
        out[address] = shares.seal_shares(setup, holder, plain[holder], keys[holder])
    own = out.pop(peer.me)
    peer.store.put(_ref(BlobKind.SHARES, info.round_id, peer.me, own), own)
    # Kept on disk before the commitment (each blob is sealed to its holder), so a peer
    # restarted after committing still hands its shares out and its update still counts.
    _save_outgoing(peer, info.round_id, info.attempt, out)
    work.shares_out = out
    work.shares_confirmed = {peer.me}
    work.shares_done = not out
    return Masks(ctx, masking.mask_terms(me, secrets), shares.shares_hash(manifest))


def _outgoing_path(peer: Peer, round_id: int, attempt: int) -> Path:
    return peer.config.data_dir / "shares" / f"round{round_id:06d}-attempt{attempt}.json"


def _save_outgoing(peer: Peer, round_id: int, attempt: int, blobs: dict[str, bytes]) -> None:
    folder = _outgoing_path(peer, round_id, attempt).parent
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("round*.json"):  # earlier rounds' shares are of no use any more
        if not old.name.startswith(f"round{round_id:06d}-"):
            old.unlink(missing_ok=True)
    data = json.dumps({a: b.hex() for a, b in blobs.items()}).encode()
    write_atomic(_outgoing_path(peer, round_id, attempt), data, mode=0o600)


def _load_outgoing(peer: Peer, round_id: int, attempt: int) -> dict[str, bytes]:
    try:
        raw = json.loads(_outgoing_path(peer, round_id, attempt).read_text())
        return {str(a): bytes.fromhex(h) for a, h in raw.items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _ref(kind: BlobKind, round_id: int, sender: str, data: bytes) -> BlobRef:
    return BlobRef(kind, round_id, sender, content_digest(kind, data), len(data))


async def push_shares(peer: Peer, action: PushShares) -> None:
    """Push each holder its shares, concurrently, one try each; the next decision retries the
    ones that failed while the round can still use them."""
    info = peer.round_of(action.round_id, action.attempt)
    work = peer.work_for(action.round_id)
    net = peer.net
    assert net is not None
    if not work.shares_out and not work.shares_done:
        # restarted after committing: the shares we made are on disk
        work.shares_out = await peer.call(_load_outgoing, peer, info.round_id, info.attempt)
        work.shares_confirmed = {peer.me}
        if not work.shares_out:
            # lost with the data directory: our update stays with us (its masks could not be
            # recovered without us) and the round goes on without it
            work.shares_done = True
            log.warning("round %d: our mask shares were lost: update left out", info.round_id)
            return
    pending = {
        a: blob
        for a, blob in work.shares_out.items()
        if a not in work.shares_confirmed and a not in info.left
    }
    policy = net.config.transfer.single_attempt()

    async def push(address: str, blob: bytes) -> None:
        try:
            await net.push_shares(address, info.round_id, blob, policy=policy)
            work.shares_confirmed.add(address)
        except P2PError as exc:
            log.info("round %d: mask shares not delivered to %s: %s", info.round_id, address, exc)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for address, blob in pending.items():
            nursery.start_soon(push, address, blob)
    work.timed("shares", time.perf_counter() - t0)
    missing = [a for a in pending if a not in work.shares_confirmed]
    if missing and len(work.shares_confirmed) < threshold(peer, info):
        raise P2PError(f"mask shares not yet with {', '.join(missing)}")
    if missing:
        # t holders have them: our masks are recoverable without us; a participant we could
        # not reach (dead, as likely as not) holds no shares of ours this attempt
        log.info("round %d: mask shares not delivered to %s", info.round_id, ", ".join(missing))
    work.shares_done = True
    peer.emit("shares sent", round=info.round_id, holders=len(work.shares_confirmed))


async def validate_shares(peer: Peer, req: PushRequest) -> str | None:
    return await peer.validate_on_ledger(lambda view: _shares_refusal(peer, req, view))


def _shares_refusal(peer: Peer, req: PushRequest, view: LedgerView) -> str | None:
    info = view.round
    if info is None or info.round_id != req.round_id:
        return f"round {req.round_id} is not the current round"
    if req.sender not in info.participants or req.sender in info.left:
        return "sender is not a participant of this round"
    if peer.me not in info.participants:
        return "this peer is not a participant of this round"
    if info.state not in (RoundState.COMMITTING, RoundState.MERGING):
        return "mask shares are handed out while updates are committed"
    return None


def _held(peer: Peer, info: RoundInfo, ctx: masking.MaskContext) -> dict[int, shares.HeldShares]:
    """The shares we hold of this attempt, by owner index, each checked against the hash its
    owner committed on the ledger (blocking)."""
    view = peer.view
    hashes = view.shares_hashes if view is not None else {}
    addresses = tuple(bytes.fromhex(a[2:]) for a in info.participants)
    me = info.participants.index(peer.me)
    private = peer.identity.encryption_private_key()
    held: dict[int, shares.HeldShares] = {}
    for ref in peer.store.find(kind=BlobKind.SHARES, round_id=info.round_id):
        if ref.sender not in info.participants or ref.sender not in hashes:
            continue
        blob = peer.store.get(ref.digest)
        if blob is None:
            continue
        owner = info.participants.index(ref.sender)
        try:
            held[owner] = shares.open_shares(
                blob,
                ctx=ctx,
                owner_index=owner,
                holder_index=me,
                addresses=addresses,
                private_key=private,
                expected_hash=hashes[ref.sender],
            )
        except CryptoError as exc:
            # an earlier attempt's shares, or a sender that sent what it did not commit to
            log.info("round %d: shares from %s not used: %s", info.round_id, ref.sender, exc)
    return held


def contributor_indexes(info: RoundInfo) -> frozenset[int]:
    return frozenset(info.participants.index(a) for a in info.contributors)


async def push_reveal(peer: Peer, action: PushReveal) -> None:
    """Build our reveal once (from the ledger's contributors), keep it, and push it to every key
    holder that does not have it yet."""
    info = peer.round_of(action.round_id, action.attempt)
    work = peer.work_for(action.round_id)
    net = peer.net
    assert net is not None
    if info.state != RoundState.ACKNOWLEDGING:
        raise ActionSupersededError("the round is not acknowledging")
    if work.reveal is None:
        ctx = mask_context(peer, info.round_id, info.attempt)

        def build() -> bytes:
            held = _held(peer, info, ctx)
            me = info.participants.index(peer.me)
            reveal = shares.build_reveal(ctx, me, held, contributor_indexes(info))
            peer.store.put(_ref(BlobKind.REVEAL, info.round_id, peer.me, reveal), reveal)
            return reveal

        work.reveal = await peer.call(build)
        work.reveal_confirmed = {peer.me}
    reveal = work.reveal
    holders = [
        a
        for a in ack_eligible(info.contributors, info.merge_peer)
        if a not in work.reveal_confirmed and a not in info.left
    ]
    policy = net.config.transfer.single_attempt()

    async def push(address: str) -> None:
        try:
            await net.push_reveal(address, info.round_id, reveal, policy=policy)
            work.reveal_confirmed.add(address)
        except P2PError as exc:
            log.info("round %d: reveal not delivered to %s: %s", info.round_id, address, exc)

    async with trio.open_nursery() as nursery:
        for address in holders:
            nursery.start_soon(push, address)
    missing = [a for a in holders if a not in work.reveal_confirmed]
    if missing:
        # a key holder that acknowledged before our reveal came refuses it once the round is
        # past acknowledging: normal between honest peers (a late revealer), not a fault
        now = (await peer.fresh_view()).round
        if now is None or now.round_id != info.round_id or now.state != RoundState.ACKNOWLEDGING:
            raise ActionSupersededError(f"round {info.round_id} moved on before every reveal")
        raise P2PError(f"reveal not yet with {', '.join(missing)}")
    work.revealed = True
    peer.emit("revealed", round=info.round_id, to=len(holders))


async def validate_reveal(peer: Peer, req: PushRequest) -> str | None:
    return await peer.validate_on_ledger(lambda view: _reveal_refusal(peer, req, view))


def _reveal_refusal(peer: Peer, req: PushRequest, view: LedgerView) -> str | None:
    info = view.round
    if info is None or info.round_id != req.round_id:
        return f"round {req.round_id} is not the current round"
    if req.sender not in info.participants:
        return "sender is not a participant of this round"
    if info.state > RoundState.ACKNOWLEDGING:
        return f"round {req.round_id} is past acknowledging: no reveal is needed any more"
    if info.state != RoundState.ACKNOWLEDGING:
        return "reveals are taken once the ledger names the contributors"
    if peer.me not in ack_eligible(info.contributors, info.merge_peer):
        return "this peer does not decrypt this round's aggregate"
    return None


def unmask_terms(peer: Peer, info: RoundInfo, work: RoundWork) -> Sequence[masking.MaskTerm]:
    """The correction a key holder subtracts from the aggregate, from the reveals it holds
    (blocking). Raises ActionSuperseded (the decision waits for more reveals) while some
    contributor's secrets lack ``t`` verified shares."""
    ctx = mask_context(peer, info.round_id, info.attempt)
    view = peer.view
    hashes = view.shares_hashes if view is not None else {}
    contributors = contributor_indexes(info)
    refs = peer.store.find(kind=BlobKind.REVEAL, round_id=info.round_id)
    reveals = [b for ref in refs if (b := peer.store.get(ref.digest)) is not None]
    state = shares.collect(
        ctx,
        reveals,
        {info.participants.index(a): h for a, h in hashes.items() if a in info.participants},
        contributors,
        len(info.participants),
        threshold=threshold(peer, info),
    )
    for reason in state.rejected:
        # a holder that revealed what its owners' manifests do not commit to: ignored
        log.warning("round %d: reveal refused: %s", info.round_id, reason)
    missing = state.missing()
    if missing:
        work.reveals_tried = len(refs)
        raise ActionSupersededError(
            f"waiting for reveals: {len(missing)} contributor(s) lack enough shares"
        )
    return masking.correction_terms(contributors, len(info.participants), state.recovered())


__all__ = [
    "MAX_MASK_BLOB",
    "Masks",
    "contributor_indexes",
    "mask_context",
    "prepare",
    "push_reveal",
    "push_shares",
    "threshold",
    "unmask_terms",
    "validate_reveal",
    "validate_shares",
]
