"""One hospital's peer: looks at the ledger, decides, and carries the decisions out.

The loop is: one consistent read of the ledger (``LedgerClient.view``), one call of the pure
:func:`swarm.peer.decide.decide`, and each returned action started as its own task, carried out
by a role module (participant, steward, merger, keyholder, catchup). An action that failed is
cooled down for a moment (so a dead peer is not hammered) and then decided afresh: nothing is
ever "remembered as done" unless the ledger or the local disk shows it.

The loop sleeps until something can change its decision (issue: "rounds at the speed of the
ledger"): an event on the ledger that matters to this peer (swarm.ledger.watch, filtered by
:func:`swarm.peer.decide.worth_a_look`), a finished action, a push from another peer, a round
deadline or a cool-down running out (:func:`swarm.peer.decide.next_look_at`). Every
``reconcile_s`` it reads the ledger anyway, so an event it missed costs seconds, not a round.

Blocking work (torch, TenSEAL, web3, disk) runs in worker threads; every network transfer runs
under its own deadline (swarm.p2p); every wait for another peer is bounded by a ledger deadline,
after which ``decide`` replaces the role holder or the round lapses.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar

import trio

from swarm import crypto, sizing
from swarm.config import PeerConfig
from swarm.errors import (
    AlreadyDoneError,
    DeadlineNotPassedError,
    DeadlinePassedError,
    SwarmError,
    WrongRoundError,
    WrongRoundStateError,
)
from swarm.identity import Identity
from swarm.ledger import LedgerClient, LedgerView, Params, RoundInfo, RoundState
from swarm.ledger.gas import funds as account_funds
from swarm.ledger.watch import LedgerNote, LedgerWatch
from swarm.p2p import BlobKind, BlobRef, LedgerMembershipSource, P2PConfig, P2PService, open_p2p
from swarm.p2p.disk_store import DirectoryBlobStore
from swarm.p2p.membership import run_in_thread_abandoning
from swarm.peer import (
    catchup,
    cores,
    keyholder,
    masks,
    merger,
    participant,
    personal,
    privacy,
    steward,
)
from swarm.peer.actions import (
    Absorb,
    Acknowledge,
    Action,
    Adopt,
    CatchUp,
    CloseJoin,
    Commit,
    Decrypt,
    DeliverRoundKeys,
    DrawRoles,
    FetchRoundKey,
    Join,
    MakeRoundKey,
    Merge,
    OpenRound,
    PostRoundKey,
    PushReveal,
    PushShares,
    PushUpdate,
    ReplaceKeySteward,
    ReplaceMergePeer,
    ReportMetrics,
    Stop,
    Train,
)
from swarm.peer.decide import decide, next_look_at, not_watched, worth_a_look
from swarm.peer.local import LocalView
from swarm.peer.model import ModelKeeper
from swarm.peer.work import ActionSupersededError, RoundWork
from swarm.training import Task, model_delta
from swarm.training.loop import resolve_device
from swarm.training.task_id import check_ledger_task, task_id
from swarm.training.taskfile import ConsortiumTask, consortium_task

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

#: how long a finished peer keeps serving its model to peers still catching up
LINGER_S = 5.0
#: first and longest pause before an action that failed is decided again
COOL_DOWN_S = (0.25, 5.0)
#: ledger reverts that only mean another peer (or our earlier try) got there first, and
#: actions the ledger has moved past while they ran
MOOT = (
    AlreadyDoneError,
    WrongRoundStateError,
    WrongRoundError,
    DeadlineNotPassedError,
    ActionSupersededError,
)


_OVER = (RoundState.NONE, RoundState.FINALIZED, RoundState.LAPSED)
#: wakes for something that happened here, not on the ledger: a blob another peer pushed to us
#: (a masked round at n peers brings ~2n of them), our own work reaching a point where the next
#: step can start. The loop decides again on the view it holds; reading the ledger on each
#: cost every peer n reads of an O(n) view per round.
LOCAL_WAKES = frozenset({"push", "local"})
#: the Consortium's events that change who is a member or how to reach one: the peer network's
#: member list is read again at once (between them, only every ``membership_poll_s``)
MEMBERSHIP_EVENTS = frozenset(
    {"MemberAdded", "MemberRemoved", "MemberAddressesUpdated", "EncryptionKeySet"}
)


class PeerHooks(Protocol):
    """Named points in a round where a test can step in (e.g. to kill the process there)."""

    def at(self, point: str, info: RoundInfo, me: str) -> None: ...

    def hears(self, note: LedgerNote, me: str) -> bool:
        """Whether the peer gets ``note`` from its ledger watch (a test drops some)."""
        ...


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
        hooks: PeerHooks | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.me = identity.address
        self.ledger = ledger
        # The consortium's task first: a peer set up for another task stops here, before it
        # loads data or builds a model (one line naming both task ids).
        self.params = ledger.params()
        if task is None:
            resolved = consortium_task(
                task_file=config.task_file,
                data=config.data,
                site=config.site,
                name=config.task,
                seed=config.seed,
            )
        else:  # a test's own task, under the built-in name it registers
            resolved = ConsortiumTask(
                task, task_id(config.task, config.seed), config.seed, None, f"task {config.task!r}"
            )
        check_ledger_task(self.params.task_id, resolved.task_id, resolved.described)
        self.consortium_task = resolved
        self.task_file = resolved.spec
        self.seed = resolved.seed
        self.server_optimizer = resolved.server_optimizer
        # Gas: refused with an empty account where gas costs; warned when it runs low.
        funds = account_funds(ledger.chain, identity.address)
        funds.require_some()
        if (low := funds.warning()) is not None:
            log.warning("%s", low)
        self.task = resolved.task
        self.on_event = on_event
        self.hooks = hooks
        self.p2p_config = p2p_config or config.p2p_config()
        self.data = self.task.load_site(config.site, seed=self.seed)
        self.train_config = dataclasses.replace(
            self.task.default_config, seed=self.seed, **config.training.given()
        )
        resolve_device(self.train_config.device)  # "cuda" on a machine without one: say so now
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = DirectoryBlobStore(config.data_dir / "blobs")
        self.keys_dir = config.data_dir / "roundkeys"
        task_meta = {"task": config.task, "site": config.site, "seed": self.seed}
        if resolved.spec is not None:
            task_meta.update(task=resolved.spec.name, task_file=str(resolved.spec.path))
        self.model = ModelKeeper(
            config.data_dir / "checkpoints",
            self.task.build_model(self.seed).state_dict(),
            self.params.initial_model_hash,
            task_meta,
            optimizer=self.server_optimizer,
        )
        self.layout = crypto.layout_of(model_delta(self.model.state, self.model.state))
        workers = cores.workers_for(config.crypto_workers, self.layout.param_count)
        #: worker processes for a large model's encryption and decryption; None: this process
        self.cores = cores.CryptoCores(workers) if workers > 1 else None
        self.sized_for: Params | None = None  # the parameters the windows were checked against
        self.net: P2PService | None = None
        self.view: LedgerView | None = None
        self.work: RoundWork | None = None
        self.metrics_round = self.model.round  # a resumed model was evaluated before
        self.own_models = personal.OwnModelCache()  # the personal mixture's own model
        self.secret_keys_held: set[tuple[int, int]] = set()  # (round, attempt), this round only
        self._in_flight: set[str] = set()
        self._cooling: dict[str, tuple[float, int]] = {}  # key -> (until, failures)
        self._wake = trio.Event()
        self._timer_is_reconcile = True
        self._stopped = False
        self._idle_since: float | None = None
        self._finished = 0  # actions ended so far (a view read across one is not decided on)
        self.sitting_out_until = 0  # benched by the ledger for missed commits, through this round
        self.privacy_spent = False  # our privacy budget cannot pay for another round
        self.privacy = privacy.PrivacyKeeper(config.data_dir / "privacy.json")
        self.watch: LedgerWatch = ledger.watch(
            events_url=config.events_url,
            poll_s=config.poll_s,
            ignore=not_watched(self.layout.param_count),
        )
        #: why the loop woke, counted (logged at the end): ledger events, reconciliation, ...
        self.wakes: dict[str, int] = {}
        self._woken_by = "start"
        #: whether the ledger may have changed since the view we hold was read: every wake but
        #: a local one (:data:`LOCAL_WAKES`) sets it, and only then does the loop read again
        self._ledger_may_have_changed = True
        self._reads_done = 0  # ledger reads that came back, and which of them the view held is
        self._held_read = 0

    # --- the loop ----------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._run(task_status)
        finally:
            if self.cores is not None:
                self.cores.close()

    async def _run(self, task_status: TaskStatus[None]) -> None:
        async with open_p2p(
            self.identity,
            self.p2p_config,
            LedgerMembershipSource(self.ledger),
            _WakingStore(self.store, lambda: self.wake("push")),
            status_provider=self._status,
        ) as net:
            self.net = net
            ckks = self.params.ckks_params_id
            net.accept_pushes(
                BlobKind.UPDATE,
                self._validate_update,
                crypto.max_blob_size(
                    self.layout.param_count, ckks, crypto.PayloadKind.SEEDED_UPDATE
                ),
            )
            for kind, limit in (
                (BlobKind.ROUND_CONTEXT, crypto.max_public_context_size(ckks)),
                (BlobKind.ROUND_KEY, crypto.max_sealed_key_size(ckks)),
            ):
                net.accept_pushes(kind, self._validate_key_delivery, limit)
            for kind, validator in (
                (BlobKind.SHARES, self._validate_shares),
                (BlobKind.REVEAL, self._validate_reveal),
            ):
                net.accept_pushes(kind, validator, masks.MAX_MASK_BLOB)
            net.serve_round_keys(self._provide_round_key)
            await self.offer_model()
            if self.params.epsilon_budget > 0:
                await self.call(privacy.warm_up)  # before any round: see warm_up
            self.emit("started", addrs=net.addrs(), model=self.model.hash.hex())
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._listen)
                while not self._stopped:
                    await self._step(nursery)
                    with trio.move_on_after(self._sleep_s()):
                        await self._wake.wait()
                    if not self._wake.is_set():
                        self._woken_by = "reconcile" if self._timer_is_reconcile else "deadline"
                        self._ledger_may_have_changed = True
                    self.wakes[self._woken_by] = self.wakes.get(self._woken_by, 0) + 1
                    self._wake = trio.Event()
                nursery.cancel_scope.cancel()
            log.info(
                "looked at the ledger after: %s",
                " ".join(f"{k}={v}" for k, v in sorted(self.wakes.items())),
            )
            await trio.sleep(LINGER_S)

    def wake(self, why: str = "action") -> None:
        """Decide again now (a push arrived, an action finished, the ledger changed). A local
        reason (:data:`LOCAL_WAKES`) decides on the view we hold; any other reads the ledger."""
        if why not in LOCAL_WAKES:
            self._ledger_may_have_changed = True
        if not self._wake.is_set():
            self._woken_by = why
        self._wake.set()

    def _sleep_s(self) -> float:
        """Until the next time the decision can change with nothing new on the ledger (a
        deadline, a cool-down ending), or the next reconciliation read if that is sooner."""
        now = time.time()
        reconcile = self.config.reconcile_s
        times = [until for until, _ in self._cooling.values() if until > now]
        if self.view is not None and (at := next_look_at(self.view, self._idle_since, now)):
            times.append(at)
        soonest = min(times, default=now + reconcile)
        self._timer_is_reconcile = soonest >= now + reconcile
        return max(0.0, min(soonest - now, reconcile))

    async def _listen(self) -> None:
        """Carry the ledger watch's notes (from its thread) to :meth:`_noted`."""
        watch = self.watch
        token = trio.lowlevel.current_trio_token()

        def deliver(note: LedgerNote) -> None:
            try:
                trio.from_thread.run_sync(self._noted, note, trio_token=token)
            except (trio.RunFinishedError, RuntimeError):
                watch.close()  # the peer is gone

        log.info("ledger events: %s", watch.kind)
        try:
            await run_in_thread_abandoning(lambda: watch.run(deliver))
        except Exception as exc:  # a bug in the watch must not stop the peer: it reconciles
            self._warn(
                f"watching the ledger's events (reading every {self.config.reconcile_s} s)", exc
            )
        finally:
            watch.close()

    def _noted(self, note: LedgerNote) -> None:
        if self.hooks is not None and not self.hooks.hears(note, self.me):
            return
        if self.net is not None and (note.unknown or note.event in MEMBERSHIP_EVENTS):
            self.net.watcher.poke()  # who may connect to us changed: read the member list now
        if worth_a_look(note, self.view, self.me, time.time()):
            self.wake(note.event or "block")

    async def _step(self, nursery: trio.Nursery) -> None:
        finished = self._finished
        if self._ledger_may_have_changed or self.view is None:
            self._ledger_may_have_changed = False  # a wake during the read sets it again
            try:
                view = await self._read_latest()
            except SwarmError as exc:
                self._ledger_may_have_changed = True
                self._warn("reading the ledger", exc)
                return
        else:
            view = self.view
        if self._finished != finished:
            # An action ended while we read: the view may predate its effect (a commitment
            # mined after the read began), and deciding on it would start the action again.
            # Its end woke the loop: the next look sees the effect.
            return
        self._observe(view)
        now = time.time()
        for action in decide(view, self._local(view, now), now):
            if isinstance(action, Stop):
                self._stopped = True
                self.emit("done", rounds=action.finalized, model=self.model.hash.hex())
                return
            self._start(nursery, action)

    def _local(self, view: LedgerView, now: float) -> LocalView:
        cooling = {k for k, (until, _) in self._cooling.items() if until > now}
        progress = None
        work = self.work
        if work is not None and view.round is not None and work.round_id == view.round.round_id:
            held = frozenset(
                (ref.sender, ref.digest)
                for ref in self.store.find(kind=BlobKind.UPDATE, round_id=work.round_id)
            )
            own = view.commitments.get(self.me, (b"", 0))[0]
            reveals = len(self.store.find(kind=BlobKind.REVEAL, round_id=work.round_id))
            progress = work.progress(held, own, reveals)
        return LocalView(
            me=self.me,
            model_hash=self.model.hash,
            model_round=self.model.round,
            metrics_round=self.metrics_round,
            rounds_target=self.config.rounds,
            progress=progress,
            in_flight=frozenset(self._in_flight | cooling),
            idle_since=self._idle_since,
            sitting_out_until=self.sitting_out_until,
            privacy_spent=self.privacy_spent,
            param_count=self.layout.param_count,
        )

    def _observe(self, view: LedgerView) -> None:
        """Keep the working state on the ledger's round and attempt; say when a round ends."""
        if view.params.task_id != self.params.task_id:
            # the consortium switched tasks: this peer's model and data are for the old one
            check_ledger_task(
                view.params.task_id, self.consortium_task.task_id, self.consortium_task.described
            )
        if view.params.epsilon_budget != self.params.epsilon_budget:
            self.privacy_spent = False  # a new budget: our account may afford rounds again
        # before a round starts, and again when the parameters change: can this model fit?
        hospitals = len(view.round.participants) if view.round is not None else None
        fit = sizing.fit_warning(
            view.params, self.layout.param_count, self.sized_for, hospitals=hospitals
        )
        if fit is not None:
            log.warning("%s", fit)
        self.sized_for = self.params = view.params
        info = view.round
        running = info is not None and info.state not in _OVER
        if running:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = time.time()
        if info is None:
            return
        work = self.work
        if work is None or work.round_id != info.round_id:
            if work is not None and not work.outcome:
                # The ledger moved on before we saw the end (e.g. the merge peer, which fetches
                # the model, or a peer that was busy): the next round opens only after this one
                # finalized or lapsed.
                ended = "finalized" if view.last_finalized >= work.round_id else "lapsed"
                self._conclude(work, ended, work.info)
            work = self.work = RoundWork(info.round_id, info.base_model, attempt=info.attempt)
            self._cooling.clear()
            self.secret_keys_held = {k for k in self.secret_keys_held if k[0] == info.round_id}
        work.info = info
        work.at_attempt(info.attempt)
        if work.key_seen_at is None and info.state >= RoundState.COMMITTING:
            work.key_seen_at = time.time()
        if not work.roles_seen and RoundState.KEYING <= info.state <= RoundState.ACKNOWLEDGING:
            work.roles_seen = True
            self.hook("round-closed", info)
        if not work.outcome and info.state == RoundState.LAPSED:
            self._conclude(work, f"lapsed ({info.lapse_reason.name.lower()})", info)
        elif (
            not work.outcome
            and info.state == RoundState.FINALIZED
            and self.model.hash == info.final_model
        ):
            self._conclude(work, "finalized", info)

    def _conclude(self, work: RoundWork, outcome: str, info: RoundInfo | None = None) -> None:
        work.outcome = outcome
        if outcome.startswith("lapsed"):
            self.emit("lapsed", round=work.round_id, reason=outcome)
        if info is not None and self.me in info.participants:
            self._write_round_log(info, work)

    def _start(self, nursery: trio.Nursery, action: Action) -> None:
        self._in_flight.add(action.key)
        nursery.start_soon(self._carry_out, action)

    async def _carry_out(self, action: Action) -> None:
        key = action.key
        try:
            await HANDLERS[type(action)](self, action)
            self._cooling.pop(key, None)
        except MOOT as exc:
            log.debug("%s: moot: %s", key, exc)
        except DeadlinePassedError as exc:
            log.info("%s: too late: %s", key, exc)
            self._cool(key)
        except SwarmError as exc:
            self._warn(_describe(action), exc)
            self._cool(key)
        except OSError as exc:
            # The machine, not the protocol: a full disk, a file another worker thread of ours
            # removed, a socket error that escaped the p2p layer. The action is retried after a
            # cool-down like any failed step; ending the process would lose the round.
            self._warn(_describe(action), exc)
            self._cool(key)
        finally:
            self._in_flight.discard(key)
            self._finished += 1
            self.wake()

    def _cool(self, key: str) -> None:
        _, failures = self._cooling.get(key, (0.0, 0))
        first, longest = COOL_DOWN_S
        pause = min(longest, first * 2**failures)
        self._cooling[key] = (time.time() + pause, failures + 1)

    # --- helpers for the role modules --------------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args)

    async def tx(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A ledger transaction, timed into the round's breakdown."""
        t0 = time.perf_counter()
        try:
            return await self.call(fn, *args)
        finally:
            if self.work is not None:
                self.work.timed("ledger", time.perf_counter() - t0)

    def work_for(self, round_id: int) -> RoundWork:
        """The working state of ``round_id``; ActionSuperseded once the ledger moved past it."""
        work = self.work
        if work is None or work.round_id != round_id:
            raise ActionSupersededError(f"round {round_id} is no longer the current round")
        return work

    def round_of(self, round_id: int, attempt: int | None = None) -> RoundInfo:
        """The round as the latest view has it, if it still is the current round (and attempt)."""
        info = self.view.round if self.view is not None else None
        if info is None or info.round_id != round_id:
            raise ActionSupersededError(f"round {round_id} is no longer the current round")
        if attempt is not None and info.attempt != attempt:
            raise ActionSupersededError(f"round {round_id} moved on to attempt {info.attempt}")
        return info

    def _read_view(self) -> LedgerView:
        """The ledger at its latest block; right after the join window closed, at the pending
        block: the closing block's hash draws the roles (DRAW_DELAY 0), so they exist from the
        next block on, which on a chain that mines on demand may not come for seconds. The key
        steward's transaction (estimated there too) is that next block."""
        view = self.ledger.view()
        r = view.round
        if r is not None and r.state == RoundState.DRAWING and view.block_number >= r.draw_block:
            view = self.ledger.view(block="pending")
        return view

    async def validate_on_ledger(self, refusal: Callable[[LedgerView], str | None]) -> str | None:
        """Judge a push by the ledger: ``refusal`` (None: accepted) on the view we hold, and
        only when that refuses, on a fresh read (the push may have come before our own next
        look at the ledger). Every push check is of a fact that, once true in a round, stays
        true or turns harmless (a commitment, a posted key hash, a later state): what a view a
        few blocks old accepts was valid at its block, and what it refuses is read again.
        Reading the ledger on every push cost each peer one JSON-RPC call per share, reveal,
        key and update it received: most of a masked round's reads."""
        view = self.view
        if view is not None and refusal(view) is None:
            return None
        return refusal(await self.fresh_view())

    async def fresh_view(self) -> LedgerView:
        return await self._read_latest()

    async def _read_latest(self) -> LedgerView:
        """Read the ledger and hold the result, unless it is behind the view held: the view
        held never goes back, which would make the round we just saw open look as if it
        ended (the peer logged it lapsed and trained it twice).

        Behind is by :attr:`LedgerView.progress`, not by the order reads began or came back
        in: reads overlap (the loop's, a push validator's) and run in worker threads, so the
        one that began first can reach the node last; and a node can answer a read with a
        block's state and the next read with the state before it (anvil, while it mines). A
        read that began after the view held came back and shows a lower block is held all
        the same: the chain restarted or reorganized, and the peer follows it. Returns the
        view held."""
        done_before = self._reads_done
        view = await self.call(self._read_view)
        self._reads_done += 1
        held = self.view
        if (
            held is None
            or view.progress >= held.progress
            or (done_before >= self._held_read and view.block_number < held.block_number)
        ):
            self.view = view
            self._held_read = self._reads_done
        assert self.view is not None
        return self.view

    async def offer_model(self, body: bytes | None = None) -> None:
        """Offer the current model to members catching up; ``body``: its canonical bytes
        (which hash to ``self.model.hash``), where the caller has them."""
        if self.net is None:
            return
        digest = None if body is None else self.model.hash  # else offer hashes what it encodes
        if body is None:
            body = await self.call(self.model.swarm_bytes)  # blocking for a large model
        await self.net.offer(BlobKind.MODEL, self.model.round, body, digest)

    def hook(self, point: str, info: RoundInfo) -> None:
        if self.hooks is not None:
            self.hooks.at(point, info, self.me)

    def emit(self, kind: str, **data: Any) -> None:
        log.info("%s %s", kind, " ".join(f"{k}={v}" for k, v in data.items()))
        if self.on_event is not None:
            try:
                self.on_event(kind, data)
            except Exception:  # a display problem must not stop the peer
                log.exception("event handler failed")

    def _warn(self, what: str, exc: BaseException) -> None:
        log.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
        if self.on_event is not None:
            try:
                self.on_event("warning", {"message": f"{what}: {type(exc).__name__}: {exc}"})
            except Exception:
                log.exception("event handler failed")

    # --- serving other peers -----------------------------------------------------------------

    async def _validate_update(self, req: Any) -> str | None:
        return await merger.validate_update(self, req)

    async def _validate_key_delivery(self, req: Any) -> str | None:
        return await participant.validate_key_delivery(self, req)

    async def _validate_shares(self, req: Any) -> str | None:
        return await masks.validate_shares(self, req)

    async def _validate_reveal(self, req: Any) -> str | None:
        return await masks.validate_reveal(self, req)

    async def _provide_round_key(self, requester: str, round_id: int) -> Any:
        return await steward.provide_round_key(self, requester, round_id)

    def _status(self) -> Mapping[str, Any]:
        return {
            "address": self.me,
            "site": self.config.site,
            "model_hash": self.model.hash.hex(),
            "model_round": self.model.round,
            "round": self.work.round_id if self.work else 0,
            "secret_keys_held": sorted(self.secret_keys_held),
        }

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
            "outcome": work.outcome,
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


def _describe(action: Action) -> str:
    return action.key.replace("(", " (", 1)


class _WakingStore:
    """The blob store, waking the peer whenever another peer's push is stored."""

    def __init__(self, store: DirectoryBlobStore, wake: Callable[[], None]) -> None:
        self._store = store
        self._wake = wake

    def put(self, ref: BlobRef, data: bytes | bytearray) -> None:
        self._store.put(ref, data)
        self._woken()

    def _woken(self) -> None:
        try:
            trio.from_thread.run_sync(self._wake)
        except RuntimeError:  # called from the trio thread itself
            self._wake()

    def get(self, digest: bytes) -> bytes | None:
        return self._store.get(digest)

    def find(self, **filters: Any) -> list[BlobRef]:
        return self._store.find(**filters)

    # swarm.p2p.FileBlobStore: large pushes and fetches go to disk, never whole in memory

    def staging_dir(self) -> Path:
        return self._store.staging_dir()

    def put_file(self, ref: BlobRef, path: Path) -> None:
        self._store.put_file(ref, path)
        self._woken()

    def open_blob(self, digest: bytes) -> BinaryIO | None:
        return self._store.open_blob(digest)


Handler = Callable[[Peer, Any], Awaitable[None]]

HANDLERS: dict[type[Action], Handler] = {
    Adopt: catchup.adopt,
    CatchUp: catchup.catch_up,
    ReportMetrics: catchup.report_metrics,
    OpenRound: participant.open_round,
    Join: participant.join,
    CloseJoin: participant.close_join,
    Train: participant.train,
    FetchRoundKey: participant.fetch_round_key,
    Commit: participant.commit,
    PushUpdate: participant.push_update,
    PushShares: masks.push_shares,
    PushReveal: masks.push_reveal,
    ReplaceKeySteward: participant.replace_key_steward,
    DrawRoles: participant.draw_roles,
    ReplaceMergePeer: participant.replace_merge_peer,
    MakeRoundKey: steward.make_round_key,
    PostRoundKey: steward.post_round_key,
    DeliverRoundKeys: steward.deliver_round_keys,
    Merge: merger.merge,
    Absorb: merger.absorb,
    Decrypt: keyholder.decrypt,
    Acknowledge: keyholder.acknowledge,
}

__all__ = ["Peer", "PeerHooks"]
