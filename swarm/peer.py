"""The round state machine of one hospital peer: the one place that puts the parts together.

The peer is a trio program. Every ``poll_s`` it reads the ledger (the single source of truth for
the round's state, roles and deadlines) and does whatever its role needs next, so a restarted
peer, a replaced merge peer or a lapsed round all need no special path: the next look at the
ledger tells the peer where things stand. Blocking work (torch, TenSEAL, web3) runs in worker
threads; every network transfer runs under its own deadline (swarm.p2p), and every wait for
another peer is bounded by a ledger deadline, after which the role is replaced or the round
lapses.

One round, from this peer's side (docs/protocol.md has the ledger's side):

    joining      join if we hold the base model; close the window once its deadline passed
    keying       train locally while waiting; the key steward makes the round key, delivers the
                 public context to every participant and the sealed secret key to every
                 participant except the merge peer, then posts the context's hash
    committing   encrypt (weight = our sample count), commit sha256(blob), push it to the merge
                 peer; the merge peer accepts only blobs matching a commitment on the ledger
    merging      the merge peer adds the ciphertexts it holds and submits the aggregate's hash
    acknowledging  key holders fetch the aggregate, check its hash, decrypt, divide by the
                 total sample count (from the ledger), apply, and acknowledge the model's hash
    finalized    adopt the model (or fetch it, checked against the ledger), checkpoint it,
                 report test metrics if the consortium collects them
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import trio

from swarm import crypto
from swarm.config import PeerConfig
from swarm.errors import (
    AlreadyDoneError,
    CheckpointError,
    ConfigError,
    CryptoError,
    DeadlineNotPassedError,
    LedgerError,
    P2PError,
    SwarmError,
    WrongRoundStateError,
)
from swarm.identity import Identity
from swarm.ledger import LedgerClient, Params, RoundInfo, RoundState
from swarm.p2p import BlobKind, LedgerMembershipSource, P2PConfig, P2PService, PushRequest, open_p2p
from swarm.p2p.disk_store import DirectoryBlobStore
from swarm.training import Task, get_task, model_delta
from swarm.training.checkpoint import (
    latest_checkpoint,
    model_bytes,
    model_hash,
    state_dict_from_bytes,
    write_checkpoint,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger(__name__)

T = TypeVar("T")
StateDict = dict[str, torch.Tensor]

#: seconds past a deadline before we replace a role holder (clock skew, a block in flight)
GRACE_S = 2.0
#: how long a finished peer keeps serving models to peers still catching up
LINGER_S = 5.0


@dataclass
class RoundWork:
    """What this peer has done in one round (in memory; the ledger and the blob store are what
    survive a restart)."""

    round_id: int
    base_hash: bytes
    delta: StateDict | None = None
    samples: int = 0
    attempt: int = -1  # the attempt that secret/public/blob below belong to
    public: crypto.PublicRoundContext | None = None
    secret: crypto.SecretRoundContext | None = None
    key_posted: bool = False
    pushed: bool = False
    aggregated: bool = False
    new_state: StateDict | None = None
    finished: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def reset_attempt(self, attempt: int) -> None:
        """A merge peer replacement starts a new attempt with a new round key."""
        self.attempt = attempt
        self.public = self.secret = None
        self.key_posted = self.pushed = self.aggregated = False

    def timed(self, phase: str, seconds: float) -> None:
        self.timings[phase] = self.timings.get(phase, 0.0) + seconds


@dataclass(frozen=True)
class Snapshot:
    """One look at the ledger."""

    round: RoundInfo | None
    latest_model: bytes
    last_finalized: int
    joined: bool
    committed: bytes
    acked: bytes


class Peer:
    """One hospital's peer. ``await peer.run()`` until its target round count is reached."""

    def __init__(
        self,
        config: PeerConfig,
        identity: Identity,
        ledger: LedgerClient,
        *,
        task: Task | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        p2p_config: P2PConfig | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.me = identity.address
        self.ledger = ledger
        self.task = task or get_task(config.task)
        self.on_event = on_event
        self.p2p_config = p2p_config or P2PConfig(listen_addrs=config.listen, membership_poll_s=2.0)
        self.data = self.task.load_site(config.site, seed=config.seed)
        self.train_config = dataclasses.replace(
            self.task.default_config, seed=config.seed, **config.training.given()
        )
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints = config.data_dir / "checkpoints"
        self.store = DirectoryBlobStore(config.data_dir / "blobs")
        self.params: Params = ledger.params()
        self._tensor_names = list(self.task.build_model(config.seed).state_dict())
        self.model_state, self.model_hash, self.model_round = self._initial_model()
        self.layout = crypto.layout_of(model_delta(self.model_state, self.model_state))
        self.net: P2PService | None = None
        self.work: RoundWork | None = None
        self.snapshot: Snapshot | None = None
        # (round, attempt) whose secret key this process held: never one it merged
        self.secret_keys_held: set[tuple[int, int]] = set()
        self.reported: set[int] = set()
        self.done = False

    # --- start-up --------------------------------------------------------------------------

    def _ordered(self, state: Mapping[str, torch.Tensor]) -> StateDict:
        """``state`` in the model's own tensor order: the update layout depends on it, and a
        checkpoint or a fetched model comes back in the canonical (sorted) order."""
        if set(state) != set(self._tensor_names):
            raise CheckpointError(
                f"model tensors {sorted(state)} are not this task's {sorted(self._tensor_names)}"
            )
        return {name: state[name] for name in self._tensor_names}

    def _initial_model(self) -> tuple[StateDict, bytes, int]:
        """The newest verified checkpoint, or the task's initial model (which must be the one
        whose hash the consortium recorded)."""
        ck = latest_checkpoint(self.checkpoints)
        if ck is not None:
            log.info("resuming from round %d checkpoint 0x%s", ck.round_id, ck.model_hash.hex())
            return self._ordered(ck.state_dict), ck.model_hash, ck.round_id
        state = self.task.build_model(self.config.seed).state_dict()
        digest = model_hash(state)
        if digest != self.params.initial_model_hash:
            raise ConfigError(
                f"this task's initial model hashes to 0x{digest.hex()[:16]}…, but the consortium "
                f"recorded 0x{self.params.initial_model_hash.hex()[:16]}… (different task or "
                "seed; the admin sets it with --initial-model-hash)"
            )
        return dict(state), digest, 0

    # --- running ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        store = self.store
        async with open_p2p(
            self.identity,
            self.p2p_config,
            LedgerMembershipSource(self.ledger),
            store,
            status_provider=self._status,
        ) as net:
            self.net = net
            max_blob = crypto.max_blob_size(self.layout.param_count, self.params.ckks_params_id)
            net.accept_pushes(BlobKind.UPDATE, self._validate_update, max_blob)
            net.accept_pushes(
                BlobKind.ROUND_CONTEXT,
                self._validate_key_delivery,
                crypto.max_public_context_size(self.params.ckks_params_id),
            )
            net.accept_pushes(
                BlobKind.ROUND_KEY,
                self._validate_key_delivery,
                crypto.max_sealed_key_size(self.params.ckks_params_id),
            )
            await self._offer_model()
            self._emit("started", addrs=net.addrs(), model=self.model_hash.hex())
            task_status.started()
            while not self.done:
                try:
                    await self.step()
                except (LedgerError, P2PError, CryptoError, CheckpointError) as exc:
                    # One failed step is not fatal: the next look at the ledger retries.
                    log.warning("step failed: %s: %s", type(exc).__name__, exc)
                    self._emit("warning", message=f"{type(exc).__name__}: {exc}")
                await trio.sleep(self.config.poll_s)
            await trio.sleep(LINGER_S)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args)

    async def _tx(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A ledger transaction, timed into the round's breakdown."""
        t0 = time.perf_counter()
        try:
            return await self._call(fn, *args)
        finally:
            if self.work is not None:
                self.work.timed("ledger", time.perf_counter() - t0)

    def _look(self) -> Snapshot:
        rid = self.ledger.current_round()
        info = self.ledger.round(rid) if rid else None
        joined = info is not None and self.me in info.participants
        committed = acked = b""
        if info is not None and joined:
            committed = _nonzero(self.ledger.commitment(rid, info.attempt, self.me)[0])
            acked = _nonzero(self.ledger.ack(rid, self.me))
        return Snapshot(
            round=info,
            latest_model=self.ledger.latest_model(),
            last_finalized=self.ledger.last_finalized_round(),
            joined=joined,
            committed=committed,
            acked=acked,
        )

    async def step(self) -> None:
        """Look at the ledger once and do what our role needs next."""
        snap = await self._call(self._look)
        self.snapshot = snap
        info = snap.round

        if self.model_hash != snap.latest_model and not self._finishing(info, snap):
            await self._catch_up(snap)
            return

        if info is None or info.state in (RoundState.FINALIZED, RoundState.LAPSED):
            if info is not None and info.state == RoundState.FINALIZED:
                await self._finish_round(info)
            elif info is not None and self.work is not None and not self.work.finished:
                self.work.finished = True
                self._emit("lapsed", round=info.round_id, reason=info.lapse_reason.name)
            if self.config.rounds and snap.last_finalized >= self.config.rounds:
                self.done = True
                self._emit("done", rounds=snap.last_finalized, model=self.model_hash.hex())
                return
            await self._open_next(snap)
            return

        work = self._work_for(info)
        if info.state == RoundState.JOINING:
            await self._joining(info, snap)
            return
        if self.me not in info.participants:
            return  # not in this round: wait for the next one
        if info.attempt != work.attempt:
            work.reset_attempt(info.attempt)

        if info.state == RoundState.KEYING:
            await self._keying(info, work)
        elif info.state in (RoundState.COMMITTING, RoundState.MERGING):
            if not snap.committed:
                await self._contribute(info, work)
            elif not work.pushed and self.me != info.merge_peer:
                await self._push_again(info, work, snap.committed)
            if self.me == info.merge_peer:
                await self._merge(info, work)
            elif info.state == RoundState.MERGING and self._past(info.merge_deadline):
                await self._replace("merge peer", self.ledger.replace_merge_peer, info.round_id)
        elif (
            info.state == RoundState.ACKNOWLEDGING
            and self.me in info.contributors
            and self.me != info.merge_peer
            and not snap.acked
            and work.new_state is None
        ):
            await self._decrypt_and_ack(info, work)

    def _crash_point(self, point: str, info: RoundInfo) -> None:
        """Fault injection for end-to-end tests: ``SWARM_FAULT="before-merge@2:0"`` makes the
        peer at position 0 of round 2's order die right before it merges, the way a killed
        process dies (no clean-up, no goodbye). Positions make it deterministic which one of
        the identically configured processes crashes."""
        spec = os.environ.get("SWARM_FAULT", "")
        for item in filter(None, spec.split(",")):
            name, _, where = item.partition("@")
            round_text, _, position = where.partition(":")
            if (
                name == point
                and int(round_text) == info.round_id
                and info.order.index(self.me) == int(position)
            ):
                log.error("SWARM_FAULT %s: crashing on purpose", item)
                os._exit(137)

    def _finishing(self, info: RoundInfo | None, snap: Snapshot) -> bool:
        """True while the model we hold for a just-finalized round is about to be adopted."""
        return (
            info is not None
            and info.state == RoundState.FINALIZED
            and self.work is not None
            and self.work.round_id == info.round_id
            and self.work.new_state is not None
            and model_hash(self.work.new_state) == snap.latest_model
        )

    def _work_for(self, info: RoundInfo) -> RoundWork:
        if self.work is None or self.work.round_id != info.round_id:
            self.work = RoundWork(info.round_id, info.base_model)
        return self.work

    @staticmethod
    def _past(deadline: int) -> bool:
        return deadline > 0 and time.time() > deadline + GRACE_S

    # --- opening and joining ---------------------------------------------------------------

    async def _open_next(self, snap: Snapshot) -> None:
        if self.model_hash != snap.latest_model:
            return
        try:
            rid = await self._call(self.ledger.open_round, self.model_hash)
            self._emit("opened", round=rid)
        except (WrongRoundStateError, AlreadyDoneError) as exc:
            log.debug("another peer opened the round first: %s", exc)

    async def _joining(self, info: RoundInfo, snap: Snapshot) -> None:
        if not snap.joined and info.base_model == self.model_hash:
            try:
                await self._tx(self.ledger.join, info.round_id)
                self._emit("joined", round=info.round_id)
            except (AlreadyDoneError, WrongRoundStateError) as exc:
                log.debug("join: %s", exc)
        elif self._past(info.join_deadline) and len(info.participants) >= info.min_peers:
            try:
                await self._tx(self.ledger.close_join, info.round_id)
            except (WrongRoundStateError, DeadlineNotPassedError) as exc:
                log.debug("close: %s", exc)

    # --- the round key ---------------------------------------------------------------------

    async def _keying(self, info: RoundInfo, work: RoundWork) -> None:
        await self._train(work)
        if self.me == info.key_steward:
            if not work.key_posted:
                await self._steward(info, work)
        elif self._past(info.key_deadline):
            await self._replace("key steward", self.ledger.replace_key_steward, info.round_id)

    async def _steward(self, info: RoundInfo, work: RoundWork) -> None:
        """Make this attempt's round key, hand it out, then publish its hash."""
        assert self.net is not None
        rid = info.round_id
        t0 = time.perf_counter()
        secret = await self._call(crypto.generate_round_keys, self.params.ckks_params_id)
        public_bytes = secret.public_bytes
        members = self.net.members()
        sealed: dict[str, bytes] = {}
        for address in info.participants:
            if address == info.merge_peer:
                continue  # by construction, the merge peer never receives the secret key
            member = members.get(address)
            if member is None:
                continue
            sealed[address] = await self._call(
                lambda m=member: crypto.seal_secret_key(
                    secret,
                    round_id=rid,
                    recipient_public_key=m.public_key,
                    recipient_address=bytes.fromhex(m.address[2:]),
                )
            )
        work.timed("keys", time.perf_counter() - t0)

        async def deliver(address: str) -> None:
            assert self.net is not None
            try:
                await self.net.deliver_round_context(address, rid, public_bytes)
                if address in sealed:
                    await self.net.deliver_round_key(address, rid, sealed[address])
            except P2PError as exc:
                log.warning("could not deliver the round key to %s: %s", address, exc)

        t0 = time.perf_counter()
        await self.net.offer(BlobKind.ROUND_CONTEXT, rid, public_bytes)
        await self.net.offer(BlobKind.ROUND_KEY, rid, sealed[self.me])
        async with trio.open_nursery() as nursery:
            for address in info.participants:
                if address != self.me:
                    nursery.start_soon(deliver, address)
        work.timed("transfer", time.perf_counter() - t0)
        await self._tx(self.ledger.post_round_key, rid, secret.context_hash)
        work.key_posted = True
        work.secret = secret
        self.secret_keys_held.add((rid, info.attempt))
        self._emit("round key", round=rid, attempt=info.attempt)

    async def _replace(self, role: str, fn: Callable[[int], Any], round_id: int) -> None:
        try:
            await self._tx(fn, round_id)
            self._emit("replaced", round=round_id, role=role)
        except (WrongRoundStateError, DeadlineNotPassedError) as exc:
            log.debug("replacing the %s: %s", role, exc)  # another peer was faster

    async def _fresh_round(self, round_id: int) -> RoundInfo | None:
        """The round as the snapshot has it, or re-read from the ledger when the snapshot is
        older than the request (a delivery can arrive before our next look)."""
        info = self.snapshot.round if self.snapshot else None
        if info is not None and info.round_id == round_id and info.state > RoundState.JOINING:
            return info
        fresh = await self._call(self.ledger.round, round_id)
        return fresh if fresh.state != RoundState.NONE else None

    async def _validate_key_delivery(self, req: PushRequest) -> str | None:
        info = await self._fresh_round(req.round_id)
        if info is None:
            return "not the current round"
        if req.sender != info.key_steward:
            info = await self._call(self.ledger.round, req.round_id)  # a replacement since
        if req.sender != info.key_steward:
            return "only the round's key steward delivers round keys"
        if req.kind == BlobKind.ROUND_KEY and self.me == info.merge_peer:
            return "the merge peer must not hold the round's secret key"
        return None

    def _round_contexts(
        self, info: RoundInfo
    ) -> tuple[crypto.PublicRoundContext | None, crypto.SecretRoundContext | None]:
        """This attempt's public context (its hash is on the ledger) and, unless we merge, our
        opened secret key."""
        refs = self.store.find(kind=BlobKind.ROUND_CONTEXT, round_id=info.round_id)
        public = None
        for ref in refs:
            if ref.digest == info.key_hash:
                data = self.store.get(ref.digest)
                if data is not None:
                    public = crypto.PublicRoundContext.from_bytes(
                        data, params_id=self.params.ckks_params_id, expected_hash=info.key_hash
                    )
                    break
        if public is None or self.me == info.merge_peer:
            return public, None
        for ref in reversed(self.store.find(kind=BlobKind.ROUND_KEY, round_id=info.round_id)):
            sealed = self.store.get(ref.digest)
            if sealed is None:
                continue
            try:
                secret = crypto.open_sealed_key(
                    sealed, public, round_id=info.round_id, private_key=self.identity.private_key
                )
            except CryptoError:
                continue  # an earlier attempt's key, or not ours
            self.secret_keys_held.add((info.round_id, info.attempt))
            return public, secret
        return public, None

    # --- training and contributing -----------------------------------------------------------

    async def _train(self, work: RoundWork) -> None:
        if work.delta is not None or work.base_hash != self.model_hash:
            return
        t0 = time.perf_counter()

        def train() -> tuple[StateDict, int]:
            model = self.task.build_model(self.config.seed)
            model.load_state_dict(self.model_state)
            cfg = self.train_config.for_round(work.round_id, self.config.site)
            samples = self.task.train(model, self.data, cfg, self.model_state)
            return model_delta(model.state_dict(), self.model_state), samples

        work.delta, work.samples = await self._call(train)
        work.timed("training", time.perf_counter() - t0)
        self._emit("trained", round=work.round_id, samples=work.samples)

    async def _contribute(self, info: RoundInfo, work: RoundWork) -> None:
        """Encrypt our update, commit its hash, push it to the merge peer."""
        assert self.net is not None
        if self._past(info.commit_deadline) or info.state != RoundState.COMMITTING:
            return
        await self._train(work)
        if work.delta is None:
            return
        if work.public is None:
            work.public, work.secret = await self._call(self._round_contexts, info)
        if work.public is None or (self.me != info.merge_peer and work.secret is None):
            return  # the steward's delivery has not arrived yet
        ctx: crypto.PublicRoundContext | crypto.SecretRoundContext = work.secret or work.public
        t0 = time.perf_counter()
        blob = await self._call(
            lambda: crypto.encrypt_update(
                work.delta,  # type: ignore[arg-type]
                ctx,
                layout=self.layout,
                weight=work.samples,
                round_id=info.round_id,
                sender=bytes.fromhex(self.me[2:]),
            )
        )
        work.timed("encryption", time.perf_counter() - t0)
        self._crash_point("before-commit", info)
        ref = await self.net.offer(BlobKind.UPDATE, info.round_id, blob)
        await self._call(self._keep_own_update, ref.round_id, blob, ref.digest)
        await self._tx(self.ledger.commit_update, info.round_id, ref.digest, work.samples)
        self._emit("committed", round=info.round_id, attempt=info.attempt, bytes=len(blob))
        if self.me == info.merge_peer:
            work.pushed = True
            return
        await self._push(info, work, blob, ref.digest)

    def _keep_own_update(self, round_id: int, blob: bytes, digest: bytes) -> None:
        """Our own update, stored under our address like a received one, so the merge peer's
        path is uniform and a restarted peer can push it again."""
        from swarm.p2p import BlobRef

        self.store.put(BlobRef(BlobKind.UPDATE, round_id, self.me, digest, len(blob)), blob)

    async def _push(self, info: RoundInfo, work: RoundWork, blob: bytes, digest: bytes) -> None:
        assert self.net is not None and info.merge_peer is not None
        t0 = time.perf_counter()
        try:
            await self.net.push_update(info.merge_peer, info.round_id, blob, digest=digest)
            work.pushed = True
            self._emit("sent", round=info.round_id, to=info.merge_peer)
        except P2PError as exc:
            log.warning("push to merge peer %s failed: %s", info.merge_peer, exc)
        finally:
            work.timed("transfer", time.perf_counter() - t0)

    async def _push_again(self, info: RoundInfo, work: RoundWork, committed: bytes) -> None:
        """Committed but not delivered (a failed push, or a restart): send the same blob."""
        blob = await self._call(self.store.get, committed)
        if blob is None:
            return  # lost with a crash before it was stored: we are left out of this round
        await self._push(info, work, blob, committed)

    # --- merging -----------------------------------------------------------------------------

    async def _validate_update(self, req: PushRequest) -> str | None:
        current = self.snapshot.round.round_id if self.snapshot and self.snapshot.round else 0
        if req.round_id != current:
            return f"wrong round {req.round_id} (current round is {current})"
        info = await self._fresh_round(req.round_id)
        if info is None:
            return f"wrong round {req.round_id}"
        if self.me != info.merge_peer or info.attempt != (self.work.attempt if self.work else -1):
            info = await self._call(self.ledger.round, req.round_id)
        if self.me != info.merge_peer:
            return "this peer is not the round's merge peer"
        if req.sender not in info.participants:
            return "sender is not a participant of this round"
        digest, _ = await self._call(
            self.ledger.commitment, info.round_id, info.attempt, req.sender
        )
        if digest != req.digest:
            return "no matching commitment on the ledger (a late, replayed or altered update)"
        return None

    async def _merge(self, info: RoundInfo, work: RoundWork) -> None:
        """Add the committed ciphertexts we hold, once all are in or the commit deadline passed."""
        assert self.net is not None
        if work.aggregated:
            return
        if work.public is None:
            work.public, _ = await self._call(self._round_contexts, info)
        if work.public is None:
            return
        commitments = await self._call(
            lambda: {
                p: self.ledger.commitment(info.round_id, info.attempt, p)[0]
                for p in info.participants
            }
        )
        held = {
            ref.sender: ref.digest
            for ref in self.store.find(kind=BlobKind.UPDATE, round_id=info.round_id)
        }
        ready = [p for p, d in commitments.items() if d.strip(b"\0") and held.get(p) == d]
        everyone = len(ready) == len(info.participants)
        if not everyone and not self._past(info.commit_deadline):
            return
        if self._past(info.merge_deadline):
            return
        self._crash_point("before-merge", info)
        t0 = time.perf_counter()

        def add_all() -> tuple[bytes | None, list[str]]:
            agg = crypto.Aggregator(
                work.public,  # type: ignore[arg-type]
                round_id=info.round_id,
                layout=self.layout,
                merge_peer=bytes.fromhex(self.me[2:]),
            )
            added = []
            for p in ready:
                blob = self.store.get(commitments[p])
                if blob is None:
                    continue
                try:
                    agg.add(blob, expected_sender=bytes.fromhex(p[2:]), expected_id=commitments[p])
                    added.append(p)
                except CryptoError as exc:
                    log.warning("refused the update of %s: %s", p, exc)
            if len(added) < info.min_peers:
                return None, added
            return agg.finish(), added

        aggregate, contributors = await self._call(add_all)
        work.timed("merge", time.perf_counter() - t0)
        if aggregate is None:
            self._emit("waiting", round=info.round_id, reason="too few valid updates to merge")
            return
        ref = await self.net.offer(BlobKind.AGGREGATE, info.round_id, aggregate)
        await self._tx(self.ledger.submit_aggregate, info.round_id, ref.digest, contributors)
        work.aggregated = True
        self._emit(
            "merged", round=info.round_id, contributors=len(contributors), bytes=len(aggregate)
        )

    # --- decrypting and acknowledging ------------------------------------------------------

    async def _decrypt_and_ack(self, info: RoundInfo, work: RoundWork) -> None:
        assert self.net is not None and info.merge_peer is not None
        if info.base_model != self.model_hash:
            return
        if work.secret is None:
            work.public, work.secret = await self._call(self._round_contexts, info)
        if work.secret is None:
            log.warning("round %d: no secret key for this attempt: cannot decrypt", info.round_id)
            return
        t0 = time.perf_counter()
        aggregate = await self._call(self.store.get, info.aggregate_hash)
        if aggregate is None:
            aggregate = await self.net.fetch_aggregate(
                info.merge_peer,
                info.round_id,
                info.aggregate_hash,
                max_size=crypto.max_blob_size(self.layout.param_count, self.params.ckks_params_id),
            )
        work.timed("transfer", time.perf_counter() - t0)
        t0 = time.perf_counter()
        secret = work.secret

        def decrypt_apply() -> StateDict:
            mean = crypto.mean_update(
                aggregate,
                secret,
                round_id=info.round_id,
                layout=self.layout,
                total_weight=info.total_samples,
                expected_count=len(info.contributors),
            )
            return apply_update(self.model_state, mean)

        new_state = await self._call(decrypt_apply)
        work.timed("decryption", time.perf_counter() - t0)
        digest = model_hash(new_state)
        work.new_state = new_state
        await self.net.offer(BlobKind.MODEL, info.round_id, model_bytes(new_state))
        await self._tx(self.ledger.acknowledge, info.round_id, digest)
        self._emit("acknowledged", round=info.round_id, model=digest.hex())

    # --- finishing and catching up -----------------------------------------------------------

    async def _finish_round(self, info: RoundInfo) -> None:
        work = self.work
        if work is not None and work.round_id == info.round_id and work.finished:
            return
        if self.model_hash != info.final_model:
            if (
                work is not None
                and work.new_state is not None
                and model_hash(work.new_state) == info.final_model
            ):
                await self._adopt(info.round_id, work.new_state, info.final_model)
            else:
                return  # the catch-up path fetches it
        if work is not None and work.round_id == info.round_id:
            work.finished = True
            self._write_round_log(info, work)
        await self._report_metrics(info.round_id)

    async def _adopt(self, round_id: int, state: StateDict, digest: bytes) -> None:
        state = self._ordered(state)
        await self._call(
            lambda: write_checkpoint(
                self.checkpoints,
                round_id,
                state,
                {"task": self.config.task, "site": self.config.site, "seed": self.config.seed},
            )
        )
        self.model_state, self.model_hash, self.model_round = state, digest, round_id
        await self._offer_model()
        # Earlier rounds' keys, updates, aggregates and models are no longer needed by anyone.
        await self._call(self.store.discard_before, round_id, tuple(BlobKind))
        self._emit("finalized", round=round_id, model=digest.hex())

    async def _offer_model(self) -> None:
        if self.net is not None:
            await self.net.offer(BlobKind.MODEL, self.model_round, model_bytes(self.model_state))

    async def _catch_up(self, snap: Snapshot) -> None:
        """Fetch the latest finalized model from a member that holds it, checked against the
        ledger's hash (the transfer checks sha256, which is the model hash)."""
        assert self.net is not None
        target, round_id = snap.latest_model, snap.last_finalized
        if round_id == 0:
            raise ConfigError("the ledger's initial model is not this task's initial model")
        finished = await self._call(self.ledger.round, round_id)
        acked = await self._call(
            lambda: [p for p in finished.participants if self.ledger.ack(round_id, p) == target]
        )
        others = [m for m in self.net.members() if m not in acked and m != self.me]
        limit = len(model_bytes(self.model_state)) + 4096
        for source in [*acked, *others]:
            if source == self.me:
                continue
            try:
                data = await self.net.fetch_model(source, target, max_size=limit)
            except P2PError as exc:
                log.debug("model not fetched from %s: %s", source, exc)
                continue
            state = await self._call(state_dict_from_bytes, data)
            await self._adopt(round_id, state, target)
            self._emit("caught up", round=round_id, source=source)
            if self.work is not None and self.work.round_id == round_id and not self.work.finished:
                self.work.finished = True
                self._write_round_log(finished, self.work)
            await self._report_metrics(round_id)
            return
        log.info("no member could serve model 0x%s yet", target.hex()[:16])

    async def _report_metrics(self, round_id: int) -> None:
        if round_id in self.reported or round_id == 0:
            return
        self.reported.add(round_id)
        model = self.task.build_model(self.config.seed)
        model.load_state_dict(self.model_state)
        metrics = await self._call(self.task.evaluate, model, self.data)
        self._emit(
            "metrics", round=round_id, accuracy=metrics.accuracy, auc=metrics.auc, loss=metrics.loss
        )
        if not (self.params.metrics_enabled and self.config.report_metrics):
            return
        try:
            await self._call(
                self.ledger.report_metrics,
                round_id,
                metrics.samples,
                metrics.accuracy,
                metrics.auc,
                metrics.loss,
            )
        except (AlreadyDoneError, WrongRoundStateError) as exc:
            log.debug("metrics: %s", exc)

    def _write_round_log(self, info: RoundInfo, work: RoundWork) -> None:
        role = (
            "merge peer"
            if info.merge_peer == self.me
            else "key steward"
            if info.key_steward == self.me
            else "participant"
        )
        entry = {
            "round": info.round_id,
            "site": self.config.site,
            "role": role,
            "participants": len(info.participants),
            "samples": work.samples,
            "attempt": info.attempt,
            "merged": info.merge_peer == self.me,
            # which attempts of this round this process held the secret key of
            "secret_key_attempts": sorted(
                a for r, a in self.secret_keys_held if r == info.round_id
            ),
            "timings_s": {k: round(v, 4) for k, v in work.timings.items()},
        }
        with (self.config.data_dir / "rounds.jsonl").open("a") as fh:
            fh.write(json.dumps(entry) + "\n")

    # --- reporting ---------------------------------------------------------------------------

    def _status(self) -> Mapping[str, Any]:
        return {
            "address": self.me,
            "site": self.config.site,
            "model_hash": self.model_hash.hex(),
            "model_round": self.model_round,
            "round": self.work.round_id if self.work else 0,
            "secret_keys_held": sorted(self.secret_keys_held),
        }

    def _emit(self, kind: str, **data: Any) -> None:
        log.info("%s %s", kind, data)
        if self.on_event is not None:
            try:
                self.on_event(kind, data)
            except Exception:  # a display problem must not stop the peer
                log.exception("event handler failed")


def _nonzero(value: bytes) -> bytes:
    """The ledger answers zeros for "nothing recorded": make that falsy."""
    return value if value.strip(b"\0") else b""


def apply_update(base: Mapping[str, torch.Tensor], mean: Mapping[str, torch.Tensor]) -> StateDict:
    """base + mean, in float32, for the tensors the update covers; others are copied.

    Deterministic: every honest peer adds the same decrypted mean to the same base and gets
    bit-identical weights, hence the same model hash.
    """
    out: StateDict = {}
    for name, tensor in base.items():
        if name in mean:
            out[name] = (tensor.to(torch.float32) + mean[name].to(torch.float32)).to(tensor.dtype)
        else:
            out[name] = tensor.clone()
    return out


__all__ = ["Peer", "PeerConfig", "RoundWork", "SwarmError", "apply_update"]
