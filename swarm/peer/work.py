"""A peer's working state in the current round, and the round keys a key steward keeps on disk.

``RoundWork`` is the mutable side of :class:`swarm.peer.local.RoundProgress`: the role modules
write results into it, and :meth:`RoundWork.progress` turns it into the frozen value that
``decide`` reads. ``StewardKeys`` survive a restart, so a steward that crashed after posting its
key's hash still serves the key to participants that pull it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from swarm import crypto
from swarm._files import write_atomic
from swarm.errors import SwarmError
from swarm.ledger import RoundInfo
from swarm.peer.local import RoundProgress

StateDict = dict[str, torch.Tensor]


class ActionSupersededError(SwarmError):
    """The ledger moved on (a new round or attempt) while an action was under way: it is moot."""


@dataclass
class RunningSum:
    """(Merge peer) the attempt's sum of updates as they arrive (swarm.peer.merger): the
    Aggregator and which update of each sender went in or was refused. Absorb and Merge run in
    worker threads, one after the other, under ``lock``; ``done`` is replaced whole (never
    mutated), so the peer's loop reads it without waiting for an addition in progress."""

    aggregator: crypto.Aggregator
    added: dict[str, bytes] = field(default_factory=dict)  # sender -> digest in the sum
    done: frozenset[tuple[str, bytes]] = frozenset()  # (sender, digest) added or refused
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class RoundWork:
    """What this peer has done in one round (in memory)."""

    round_id: int
    base_hash: bytes
    delta: StateDict | None = None
    samples: int = 0
    attempt: int = 0  # the attempt the fields below belong to
    public: crypto.PublicRoundContext | None = None
    secret: crypto.SecretRoundContext | None = None
    steward: StewardKeys | None = None
    keys_delivered: bool = False
    pushed: bool = False
    # masks (swarm.peer.masks): our shares for each holder, who confirmed them, our reveal
    shares_out: dict[str, bytes] = field(default_factory=dict)  # holder address -> pushed blob
    shares_confirmed: set[str] = field(default_factory=set)  # holders that stored theirs
    shares_done: bool = False
    reveal: bytes | None = None
    reveal_confirmed: set[str] = field(default_factory=set)
    revealed: bool = False
    reveals_tried: int = 0
    privacy: tuple[float, float] | None = None  # (this round's epsilon, our cumulative epsilon)
    aggregate: tuple[bytes, tuple[str, ...]] | None = None  # (merge peer) digest, contributors
    running: RunningSum | None = None  # (merge peer) the updates added so far (swarm.peer.merger)
    new_state: StateDict | None = None
    new_hash: bytes = b""
    new_bytes: bytes | None = None  # new_state's canonical bytes, until adopted
    outcome: str = ""  # "finalized" / "lapsed ..." once the round is over for us
    roles_seen: bool = False  # we looked at the round once its roles were drawn
    key_seen_at: float | None = None  # when we first saw this attempt's key on the ledger
    aggregate_asked_at: float | None = None  # when we first went to fetch the aggregate
    info: RoundInfo | None = None  # the round as last seen on the ledger
    timings: dict[str, float] = field(default_factory=dict)

    def at_attempt(self, attempt: int) -> None:
        """A merge-peer replacement starts a new attempt: a new key, new commitments."""
        if attempt == self.attempt:
            return
        self.attempt = attempt
        self.public = self.secret = None
        self.steward = None
        self.keys_delivered = self.pushed = False
        self.aggregate = None
        self.running = None
        self.shares_out = {}
        self.shares_confirmed = set()
        self.shares_done = self.revealed = False
        self.reveal = None
        self.reveal_confirmed = set()
        self.reveals_tried = 0
        self.key_seen_at = None
        self.aggregate_asked_at = None

    def timed(self, phase: str, seconds: float) -> None:
        self.timings[phase] = self.timings.get(phase, 0.0) + seconds

    def progress(
        self,
        held_updates: frozenset[tuple[str, bytes]],
        own_update: bytes,
        reveals_held: int = 0,
    ) -> RoundProgress:
        return RoundProgress(
            round_id=self.round_id,
            attempt=self.attempt,
            trained=self.delta is not None,
            has_context=self.public is not None,
            has_secret=self.secret is not None,
            steward_key=self.steward is not None,
            keys_delivered=self.keys_delivered,
            own_update=own_update,
            pushed=self.pushed,
            shares_held_by=len(self.shares_confirmed),
            shares_done=self.shares_done,
            revealed=self.revealed,
            reveals_held=reveals_held,
            reveals_tried=self.reveals_tried,
            held_updates=held_updates,
            absorbed=self.running.done if self.running is not None else frozenset(),
            new_model=self.new_hash,
        )


@dataclass(frozen=True)
class StewardKeys:
    """One attempt's round key as its steward made it: the public context and the secret key
    sealed to each key holder (the steward included, so no plaintext key lies on disk)."""

    round_id: int
    attempt: int
    public_bytes: bytes
    context_hash: bytes
    sealed: dict[str, bytes]  # recipient address -> sealed secret key

    def save(self, directory: Path) -> None:
        folder = _folder(directory, self.round_id, self.attempt)
        for address, blob in self.sealed.items():
            write_atomic(folder / f"{address}.sealed", blob, mode=0o600)
        write_atomic(folder / "context.bin", self.public_bytes)
        # written last: a folder without it is an interrupted save, ignored on load
        index = {"context_hash": self.context_hash.hex(), "recipients": sorted(self.sealed)}
        write_atomic(folder / "index.json", json.dumps(index).encode(), mode=0o600)

    @classmethod
    def load(cls, directory: Path, round_id: int, attempt: int) -> StewardKeys | None:
        folder = _folder(directory, round_id, attempt)
        try:
            index = json.loads((folder / "index.json").read_text())
            public_bytes = (folder / "context.bin").read_bytes()
            sealed = {a: (folder / f"{a}.sealed").read_bytes() for a in index["recipients"]}
            context_hash = bytes.fromhex(index["context_hash"])
        except (OSError, ValueError, KeyError):
            return None
        return cls(round_id, attempt, public_bytes, context_hash, sealed)


def prune_steward_keys(directory: Path, before_round: int) -> None:
    """Forget the round keys of rounds before ``before_round`` (nobody needs them any more).

    Two prunes may run at once (adopting a model and catching up, in worker threads): what the
    other one removed first is simply gone (a 200-round run lost a peer to that race)."""
    if not directory.is_dir():
        return
    for folder in directory.iterdir():
        try:
            round_id = int(folder.name.split("-")[0].removeprefix("round"))
        except ValueError:
            continue
        if round_id < before_round:
            try:
                for f in folder.iterdir():
                    f.unlink(missing_ok=True)
                folder.rmdir()
            except FileNotFoundError:
                continue


def _folder(directory: Path, round_id: int, attempt: int) -> Path:
    return directory / f"round{round_id:06d}-attempt{attempt}"


__all__ = ["ActionSupersededError", "RoundWork", "StateDict", "StewardKeys", "prune_steward_keys"]
