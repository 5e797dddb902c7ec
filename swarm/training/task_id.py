"""What a consortium records about its task on the ledger: the task id and the initial model.

One function, :func:`task_fingerprint`, computes both from the task's name and seed, so the
admin's deployment (``swarm admin deploy``), a local network (``localnet``), ``swarm task info``
and every peer's start-up check agree by construction.

- the **task id** is a tagged hash (``swarm/v1/task``, swarm.hashing) of the name and the
  seed: ``tagged_hash(Tag.TASK, name + b"\\0" + decimal seed)``. The tag keeps it apart from
  any other hash of the same bytes; the seed is in it because a different seed is a different
  initial model, so a peer with the wrong seed is told so by the id, not only by the hash;
- the **initial model hash** is :func:`swarm.training.checkpoint.model_hash` of
  ``get_task(name).build_model(seed).state_dict()``: the first round's base.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarm.errors import TaskMismatchError
from swarm.hashing import Tag, tagged_hash
from swarm.training.checkpoint import model_hash
from swarm.training.registry import get_task

#: domain separation of the task id (a new tag if what goes into the id ever changes)
TASK_ID_TAG = Tag.TASK


def task_id(name: str, seed: int = 0) -> bytes:
    """The 32-byte task id of task ``name`` built with ``seed`` (cheap: builds no model)."""
    if seed < 0:
        raise ValueError(f"seed must be at least 0, not {seed}")
    return tagged_hash(TASK_ID_TAG, name.encode() + b"\0" + str(seed).encode())


@dataclass(frozen=True)
class TaskFingerprint:
    """A task as the ledger knows it."""

    name: str
    seed: int
    task_id: bytes  # 32 bytes
    initial_model_hash: bytes  # 32 bytes
    param_count: int  # number of model parameters (scalars)


def task_fingerprint(name: str, seed: int = 0) -> TaskFingerprint:
    """Task id, initial-model hash and parameter count of task ``name`` with ``seed``.
    ConfigError for an unknown task name."""
    state = get_task(name).build_model(seed).state_dict()
    return TaskFingerprint(
        name=name,
        seed=seed,
        task_id=task_id(name, seed),
        initial_model_hash=model_hash(state),
        param_count=sum(int(t.numel()) for t in state.values()),
    )


def check_task_id(ledger_task_id: bytes, name: str, seed: int = 0) -> None:
    """TaskMismatchError (one line: both ids, who acts) unless task ``name`` with ``seed`` is the
    task the ledger records."""
    mine = task_id(name, seed)
    if mine != bytes(ledger_task_id):
        raise TaskMismatchError(
            f"this peer's task {name!r} (seed {seed}) has task id 0x{mine.hex()}, but the "
            f"consortium's ledger records task id 0x{bytes(ledger_task_id).hex()}: the hospital's "
            "operator must use the consortium's task and seed ([task] in the peer config, "
            "`peer init --task --seed`; ask the admin; `swarm task info NAME --seed N` prints "
            "a task's id)"
        )


def check_ledger_task(ledger_task_id: bytes, mine: bytes, described: str) -> None:
    """TaskMismatchError (one line: both ids, who acts) unless ``mine`` (the id of the task
    ``described``, e.g. "task file /x/task.toml") is the task the ledger records."""
    if mine != bytes(ledger_task_id):
        raise TaskMismatchError(
            f"this peer's {described} has task id 0x{mine.hex()}, but the consortium's ledger "
            f"records task id 0x{bytes(ledger_task_id).hex()}: the hospital's operator must use "
            "the consortium's task file (ask the admin; `swarm task info FILE` prints a task "
            "file's id)"
        )


__all__ = [
    "TASK_ID_TAG",
    "TaskFingerprint",
    "check_ledger_task",
    "check_task_id",
    "task_fingerprint",
    "task_id",
]
