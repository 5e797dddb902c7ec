"""The model a peer holds: where it comes from at start-up, how a new one is adopted.

What the swarm hashes, checkpoints and hands over is the *swarm state*: the model's tensors plus
the server optimizer's state (swarm.merge.server.swarm_state; with FedAvg, which has none, the
model alone). The keeper holds the two apart: ``state`` is the model (what training and
``load_state_dict`` take), ``server`` the optimizer's state (what the next step needs).

A swarm state is accepted only if its tensors are exactly the task's (names, shapes, dtypes),
the optimizer's included: a checkpoint or a fetched model that merely has the right names would
be adopted and then make the peer refuse every update of every later round.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from swarm.errors import CheckpointError, ConfigError
from swarm.merge.server import ServerOptimizer, split_swarm_state, swarm_state
from swarm.training.checkpoint import latest_checkpoint, model_bytes, model_hash, write_checkpoint

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


class ModelSpec:
    """The tensors a task's model has, in the model's own order (the update layout's order)."""

    def __init__(self, reference: Mapping[str, torch.Tensor]) -> None:
        self.names = list(reference)
        self.shapes = {k: tuple(v.shape) for k, v in reference.items()}
        self.dtypes = {k: v.dtype for k, v in reference.items()}

    def conform(self, state: Mapping[str, torch.Tensor], what: str) -> StateDict:
        """``state`` in the model's order, or CheckpointError naming the first difference."""
        if set(state) != set(self.names):
            missing = sorted(set(self.names) - set(state))
            extra = sorted(set(state) - set(self.names))
            raise CheckpointError(
                f"{what} is not this task's model: missing tensors {missing}, unexpected {extra}"
            )
        for name in self.names:
            shape, dtype = tuple(state[name].shape), state[name].dtype
            if shape != self.shapes[name] or dtype != self.dtypes[name]:
                raise CheckpointError(
                    f"{what} is not this task's model: tensor {name} is {dtype} {list(shape)}, "
                    f"the task's is {self.dtypes[name]} {list(self.shapes[name])}"
                )
        return {name: state[name] for name in self.names}


class ModelKeeper:
    """The current model and server-optimizer state, their ledger hash and round; checkpoints
    (of the swarm state) in ``directory``.

    ``optimizer`` is the consortium's server optimizer (the task file's [server]; FedAvg when
    none is given): its initial state is part of round 0's swarm state, whose hash the ledger
    recorded, and its step makes every later one (swarm.peer.keyholder).
    """

    def __init__(
        self,
        directory: Path,
        initial: Mapping[str, torch.Tensor],
        consortium_initial_hash: bytes,
        checkpoint_meta: Mapping[str, Any],
        optimizer: ServerOptimizer | None = None,
    ) -> None:
        self.directory = directory
        self.optimizer = optimizer if optimizer is not None else ServerOptimizer()
        initial_server = self.optimizer.initial_state(initial)
        #: the tensors of the swarm state (the model's, then the optimizer's)
        self.spec = ModelSpec(swarm_state(initial, initial_server))
        self.meta = dict(checkpoint_meta)
        self.state: StateDict
        self.server: StateDict
        ck = latest_checkpoint(directory)
        if ck is not None:
            self.state, self.server = self.conform(
                ck.state_dict, f"checkpoint of round {ck.round_id}"
            )
            log.info("resuming from round %d checkpoint 0x%s", ck.round_id, ck.model_hash.hex())
            self.hash, self.round = ck.model_hash, ck.round_id
            return
        digest = model_hash(swarm_state(initial, initial_server))
        if digest != consortium_initial_hash:
            raise ConfigError(
                f"this task's initial model hashes to 0x{digest.hex()}, but the consortium "
                f"recorded 0x{consortium_initial_hash.hex()}: the peer's task or seed differs "
                "from the consortium's (check [task] in the peer config with the admin)"
            )
        self.state, self.server = dict(initial), initial_server
        self.hash, self.round = digest, 0

    def conform(self, full: Mapping[str, torch.Tensor], what: str) -> tuple[StateDict, StateDict]:
        """(model, server state) of a swarm state, or CheckpointError naming the first tensor
        that differs from the task's (and the server optimizer's)."""
        return split_swarm_state(self.spec.conform(full, what))

    @property
    def swarm_state(self) -> StateDict:
        """The current swarm state: what the ledger's hash is the hash of."""
        return swarm_state(self.state, self.server)

    def swarm_bytes(self) -> bytes:
        """The current swarm state's canonical bytes: what a member catching up fetches (and
        what ``self.hash`` hashes)."""
        return model_bytes(self.swarm_state)

    def adopt(
        self,
        round_id: int,
        full: Mapping[str, torch.Tensor],
        digest: bytes,
        body: bytes | None = None,
    ) -> None:
        """Checkpoint the swarm state ``full`` (whose hash the ledger finalized) and make it the
        current model and server state; ``body``: its canonical bytes, where the caller has
        them. Blocking (disk): call from a worker thread."""
        model, server = self.conform(full, f"the model of round {round_id}")
        write_checkpoint(self.directory, round_id, swarm_state(model, server), self.meta, body=body)
        self.state, self.server, self.hash, self.round = model, server, digest, round_id


__all__ = ["ModelKeeper", "ModelSpec", "StateDict"]
